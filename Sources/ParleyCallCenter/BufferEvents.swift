import Logging
import NIOCore
import ParleyRules
import ParleyDialog
import ParleySIP
import ParleyTransaction
import ParleyTransport

extension BufferServer {
    // MARK: Reconciliation: probes and heartbeats

    func scheduleProbe() {
        guard let interval = configuration.probeInterval else { return }
        probe = stack.schedule(after: interval) { [weak self] in
            guard let self else { return }
            for call in self.calls.values where call.callerAcked && !call.over {
                for side in [Side.caller, .agent] { self.sendProbe(call, side) }
            }
            self.scheduleProbe()
        }
    }

    func sendProbe(_ call: B2BCall, _ side: Side) {
        var leg = call.leg(side)
        let options = leg.makeRequest(.options, contact: side == .caller ? call.callerContact : call.agentContact, payload: nil)
        call.setLeg(side, leg)
        if let hop = call.hop(side), let key = stack.sendRequest(options, to: hop) {
            clientTransactions[key] = .probe(call, side)
        }
    }

    func probeFailed(_ call: B2BCall, _ side: Side) {
        guard !call.over else { return }
        counters.probesFailed += 1
        logger.info("call \(call.id): the \(side) leg is gone (probe failed); hanging up the other")
        apply(call, .legGone(side))  // nobody there to hang up: the other side is
    }

    func scheduleHeartbeat() {
        guard configuration.eventTarget != nil else { return }
        heartbeat = stack.schedule(after: configuration.heartbeatInterval) { [weak self] in
            guard let self else { return }
            self.sendEvent(.live(calls: self.liveCallReferences))
            self.scheduleHeartbeat()
        }
    }

    /// Sends a call event to the distributor in a MESSAGE.
    public func sendEvent(_ event: CallEvent) {
        flushEvents()  // what ended before goes first
        sendEvents([event])
    }

    func sendEvents(_ events: [CallEvent]) {
        guard let target = configuration.eventTarget else { return }
        eventCSeq += 1
        let uri = configuration.eventURI ?? .sip(SIPURI(user: "distributor", host: SIPHost.from(address: target.address), port: target.address.port))
        let local = stack.transport.advertisedAddress(for: target.transport, toward: target.address)
        var m = HandoffWire.eventMessage(events, requestURI: uri, from: "<sip:buffer@\(local.map(hostPort) ?? "invalid")>;tag=\(eventCallID.prefix(12))",
                                         to: "<\(uri)>", callID: eventCallID, cseq: eventCSeq)
        auth.sign(&m, nowMs: wallClock())
        if let key = stack.sendRequest(m, to: target) {
            clientTransactions[key] = .event
            counters.eventsSent += events.count
        }
    }

    /// Calls that end go to the distributor together: one MESSAGE for what ended within
    /// `eventDelay`, at most `eventBatch` to a MESSAGE (so it stays one datagram), instead of one
    /// MESSAGE (and two transactions) per call.
    func queueEvent(_ event: CallEvent) {
        guard configuration.eventTarget != nil else { return }
        pendingEvents.append(event)
        if pendingEvents.count >= configuration.eventBatch {
            flushEvents()
        } else if eventFlush == nil {
            eventFlush = stack.schedule(after: configuration.eventDelay) { [weak self] in
                self?.eventFlush = nil
                self?.flushEvents()
            }
        }
    }

    /// Sends the queued events now.
    public func flushEvents() {
        eventFlush?.cancel()
        eventFlush = nil
        guard !pendingEvents.isEmpty else { return }
        let events = pendingEvents
        pendingEvents = []
        sendEvents(events)
    }

    /// Sends a MESSAGE for a reply path (the `message` encoding).
    func sendLinkMessage(_ message: SIPMessage, to destination: SIPDestination) {
        var message = message
        auth.sign(&message, nowMs: wallClock())
        if let key = stack.sendRequest(message, to: destination) { clientTransactions[key] = .event }
    }
}

/// `message` encoding: what goes back to the distributor goes in MESSAGEs.
final class MessageReplyPath: HandoffReplyPath {
    weak var server: BufferServer?
    let destination: SIPDestination
    let requestURI: URI
    let from: String
    let to: String
    let callID: String
    var cseq: UInt32 = 0

    init(server: BufferServer, destination: SIPDestination, requestURI: URI, from: String, to: String, callID: String) {
        self.server = server
        self.destination = destination
        self.requestURI = requestURI
        self.from = from
        self.to = to
        self.callID = callID
    }

    func send(_ message: SIPMessage) {
        cseq += 1
        let m = HandoffWire.wrap(message, requestURI: requestURI, from: from, to: to, callID: callID, cseq: cseq)
        server?.sendLinkMessage(m, to: destination)
    }
}
