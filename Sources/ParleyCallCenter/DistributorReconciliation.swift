import Logging
import NIOCore
import ParleyRecords
import ParleyRules
import ParleyDialog
import ParleySIP
import ParleyTransaction
import ParleyTransport

extension Distributor {
    // MARK: Events from the buffer server

    func receivedMessage(_ message: SIPMessage, key: TransactionKey) {
        // Only the buffer server may send us events or handoff responses: signed with the secret.
        let verdict = auth.verify(message, nowMs: clock())
        guard verdict == .valid else {
            counters.unauthenticated += 1
            logger.debug("MESSAGE refused: signature \(verdict.rawValue)")
            stack.refuseStatelessly(403, "Forbidden", to: key)
            return
        }
        if let ct = (try? message.contentType()) ?? nil, ct.essence == HandoffWire.eventType {
            stack.respond(200, to: key)
            for event in CallEvent.list(body: message.bodyText) {
                counters.eventsReceived += 1
                handle(event)
            }
            return
        }
        if let inner = HandoffWire.unwrap(message) {
            stack.respond(200, to: key)
            linkReceived(inner)
            return
        }
        stack.respond(415, to: key, extraHeaders: [("Accept", "\(HandoffWire.messageSIP), \(HandoffWire.eventType)")])
    }

    public func handle(_ event: CallEvent) {
        switch event {
        case .ended(let reference, let agent):
            if let call = onTreatment.removeValue(forKey: reference), !call.routing.isOver {
                // The caller hung up while it waited on a treatment (or during a transfer).
                route(call, .end)
                if call.transferFrom == nil {
                    counters.cancelled += 1
                    record(.abandoned(call: reference, at: clock()))
                    writeTrace(call)
                    logger.debug("call \(reference): the caller hung up on \(agent) while waiting")
                    return
                }
                logger.debug("call \(reference): the call ended during its transfer")
            }
            if answeredCalls.removeValue(forKey: reference) != nil {
                record(.completed(call: reference, agent: agent, at: clock()))
            }
            agents.callEnded(agent, call: reference)
        case .transfer(let reference, let agent, let target, let caller):
            transferAsked(reference, by: agent, to: target, caller: caller)
        case .hangup, .transferFailed:
            break  // ours to send, not to receive
        case .live(let refs):
            let live = Set(refs)
            lastHeartbeat = (clock(), live)
            for (ref, agent) in answeredCalls where live.contains(ref) { agents.confirm(agent, call: ref) }
        }
    }

    func scheduleReconcile() {
        reconcileTimer = stack.schedule(after: configuration.reconcileInterval) { [weak self] in
            self?.reconcile()
            self?.scheduleReconcile()
        }
    }

    /// Agent state against what the buffer server last said is up: a busy agent whose call it no
    /// longer lists (a lost "ended" event), or whose buffer server went silent (crashed), ends its
    /// call after `staleMs`; a ringing agent the distributor is not waiting on is released.
    public func reconcile() {
        let now = clock()
        var live: Set<String> = []
        if let hb = lastHeartbeat, now - hb.at <= configuration.heartbeatTimeout.milliseconds {
            live = hb.calls
        }
        // Calls still being set up are live whatever the buffer server says.
        var pending: Set<String> = []
        for call in calls.values where !call.finalSent { pending.insert(call.reference) }
        for call in waiting { pending.insert(call.reference) }
        for call in onTreatment.values where !call.routing.isOver { pending.insert(call.reference) }
        let before = agents.all.map(\.state)
        agents.reconcile(liveCalls: live.union(pending), pendingOffers: pending)
        let after = agents.all.map(\.state)
        let changed = zip(before, after).filter { $0 != $1 }.count
        if changed > 0 {
            counters.reconciled += changed
            logger.info("reconciled \(changed) agent(s) against the buffer server's calls")
        }
        for (ref, agent) in answeredCalls where agents.agent(agent)?.currentCall != ref {
            answeredCalls[ref] = nil
            record(.completed(call: ref, agent: agent, at: now))  // ended by reconciliation
        }
        collectRuleGarbage()
    }

    /// A full Lua collection when the state has grown by a quarter (and a megabyte) since the
    /// last: Lua collects only as it allocates, so what a burst of calls left would otherwise
    /// stay resident once calls stop coming.
    func collectRuleGarbage() {
        guard let used = engine.luaMemory, used > luaAfterCollect + luaAfterCollect / 4 + (1 << 20) else { return }
        let t0 = ContinuousClock.now
        luaAfterCollect = engine.collectGarbage() ?? used
        logger.debug("rules: Lua garbage collected, \(used / 1024) -> \(luaAfterCollect / 1024) KiB in \(ContinuousClock.now - t0)")
    }
}
