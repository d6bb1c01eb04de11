import Logging
import NIOCore
import ParleyRecords
import ParleyRules
import ParleyDialog
import ParleySIP
import ParleyTransaction
import ParleyTransport

extension Distributor {
    /// How a call left the queue without an agent, for the records.
    enum Exit { case failed, timeout, full }

    /// Answers the caller: the best response any agent gave, or `code`.
    /// What `CallerAnswer` decided (`answerFailure`): no other path sends the caller a final.
    func finish(_ call: DistributorCall, code: Int, reason: String? = nil, exit: Exit = .failed) {
        if code == 487 {
            // Recorded when the caller gets the 487, not at the CANCEL: an agent's 2xx that
            // crosses the CANCEL connects the call instead.
            record(.abandoned(call: call.reference, at: clock()))
        } else {
            let sent = call.best == nil ? code : call.bestCode
            recordExit(call, code: sent, exit: exit)
        }
        call.cancelGuard?.cancel()
        route(call, .end)
        writeTrace(call)
        if code == 487 || call.best == nil {
            if let key = call.serverKey { stack.respond(code, reason, to: key) }
        } else if let best = call.best {
            if let key = call.serverKey { stack.respond(best, to: key) }
        }
        if code != 487 { counters.failed += 1 }
        // Link attempts that are final can go; the rest go when their guard fires.
        for a in call.attempts where a.final { forgetLinkAttempt(a) }
    }

    func recordExit(_ call: DistributorCall, code: Int?, exit: Exit, treatment: String? = nil) {
        if let code, treatment == nil, exit != .full {
            record(.failed(call: call.reference, code: code, timedOut: exit == .timeout, at: clock()))
        } else {
            record(.overflowed(call: call.reference, full: exit == .full, treatment: treatment, code: code, at: clock()))
        }
    }

    /// The call gets no agent: the caller is answered `code`, or, if a treatment answered it
    /// already, hung up by the buffer server.
    func giveUp(_ call: DistributorCall, code: Int, reason: String, exit: Exit) {
        guard !call.routing.isOver else { return }
        if !call.finalSent {
            logger.debug("call \(call.reference): \(code) (\(reason))")
            answer(call, .refuse(code: code), reason: QueuePolicy.reason(for: code) + ": " + reason, exit: exit)
            return
        }
        route(call, .end)
        if call.transferFrom != nil {
            // A transfer that found no one: the caller stays with the agent who asked for it.
            logger.debug("call \(call.reference): transfer failed (\(reason)); back to \(call.transferFrom ?? "?")")
            counters.transfersFailed += 1
            writeTrace(call)
            sendControl(.transferFailed(call: call.reference, code: code))
            return
        }
        logger.debug("call \(call.reference): hanging up the caller on its treatment (\(reason))")
        counters.failed += 1
        recordExit(call, code: nil, exit: exit)
        writeTrace(call)
        sendControl(.hangup(call: call.reference))
    }

    /// Over max wait or max length: the queue's overflow treatment, or its status.
    func overflow(_ call: DistributorCall, full: Bool) {
        guard call.routing.isOpen else { return }
        if full { counters.overflows += 1 } else { counters.queueTimeouts += 1 }
        let exit: Exit = full ? .full : .timeout
        guard case .treatment(let name) = call.policy.overflow, configuration.treatments.contains(name), call.transferFrom == nil else {
            giveUp(call, code: call.policy.status, reason: full ? "the queue is full" : "no agent answered in time", exit: exit)
            return
        }
        recordExit(call, code: nil, exit: exit, treatment: name)
        writeTrace(call)
        route(call, .overflow(to: name))
    }

    // MARK: The queue

    /// Waiting order: higher priority first, then earlier arrival.
    static func before(_ a: DistributorCall, _ b: DistributorCall) -> Bool {
        a.info.priority != b.info.priority ? a.info.priority > b.info.priority : a.info.arrivedMs < b.info.arrivedMs
    }

    func enqueue(_ call: DistributorCall) {
        route(call, .wait(nowMs: clock(), waitingOfType: waitingPerType[call.info.type, default: 0], callerOpen: !call.finalSent))
    }

    /// An agent became available: offer it the waiting calls, highest priority first.
    func serveQueue() {
        for call in waiting where !call.routing.treatmentPending {
            guard agents.anyAvailable else { return }  // nobody left to offer to
            tryNext(call)
        }
    }

    /// Feeds an event to where the call is on its way to an agent (`CallRouting`) and does what
    /// it says. `why`: what failed, when the call is given up.
    func route(_ call: DistributorCall, _ event: CallRouting.Event, why: String = "") {
        defer { if !call.routing.isOpen { openCalls[call.reference] = nil } }
        for action in call.routing.handle(event) {
            switch action {
            case .choose:
                choose(call)
            case .enqueue:
                enqueue(call)
            case .routeAgain:
                tryNext(call)
            case .joinQueue:
                counters.queued += 1
                let i = waiting.firstIndex { Self.before(call, $0) } ?? waiting.endIndex
                waiting.insert(call, at: i)
                waitingPerType[call.info.type, default: 0] += 1
                answer(call, .queued)
            case .leaveQueue:
                waiting.removeAll { $0 === call }
                waitingPerType[call.info.type, default: 1] -= 1
            case .armMaxWait(let at):
                call.queueTimer = stack.schedule(after: .milliseconds(max(0, at - clock()))) { [weak self, weak call] in
                    guard let self, let call else { return }
                    self.route(call, .maxWait)
                }
            case .stopMaxWait:
                call.queueTimer?.cancel()
            case .overflow(let full):
                overflow(call, full: full)
            case .connectTreatment(let name):
                logger.debug("call \(call.reference): connecting the caller to \(name) while it waits")
                handOff(call, to: name, encoding: .uri, kind: .treatment)
            case .treatmentMissing(let name):
                logger.warning("call \(call.reference): treatment \(name) is not configured")
            case .takeBack(let id):
                cancelAttempt(call.attempts[id])
            case .connectOverflow(let name, let move):
                logger.debug("call \(call.reference): overflows to \(name)")
                handOff(call, to: name, encoding: .uri, kind: move ? .treatmentMove : .treatment)
            case .keepOnTreatment:
                onTreatment[call.reference] = call
            case .forget:
                if onTreatment[call.reference] === call { onTreatment[call.reference] = nil }
            case .giveUp:
                giveUp(call, code: call.policy.status, reason: why, exit: .failed)
            }
        }
    }

    /// Sends a control event to the buffer server (in a MESSAGE, like its events to us).
    func sendControl(_ event: CallEvent) {
        let dest = configuration.bufferDestination
        let local = stack.transport.advertisedAddress(for: dest.transport, toward: dest.address)
        linkCSeq += 1
        var m = HandoffWire.eventMessage(event, requestURI: .sip(configuration.bufferURI),
                                         from: "<sip:distributor@\(local.map(hostPort) ?? "invalid")>;tag=\(stack.newTag())",
                                         to: "<\(configuration.bufferURI)>", callID: "ctl-" + stack.newTag() + "@parley", cseq: linkCSeq)
        auth.sign(&m, nowMs: clock())
        stack.sendRequest(m, to: dest)
    }
}
