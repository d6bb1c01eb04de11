import Logging
import NIOCore
import ParleyRules
import ParleyDialog
import ParleySIP
import ParleyTransaction
import ParleyTransport

extension BufferServer {
    // MARK: ACK

    func receivedACK(_ ack: SIPMessage, from source: SIPSource) {
        guard let ids = ack.dialogIDs, let toTag = ids.toTag,
              let (call, side) = dialogs[DialogKey(callID: ids.callID, localTag: toTag)] else { return }
        call.noteFlow(side, from: source)
        if side == .caller { call.noteCallerSDP(ack) }  // an answer to a late offer
        let number = ((try? ack.cseq()) ?? nil)?.sequence
        if side == .caller, number == call.caller.remoteCSeq, call.callerAnswered, !call.callerAcked {
            // The ACK for the answer: on to the agent (with the SDP answer, if the offer was late).
            call.ackTimer?.cancel()
            call.ackTimer = nil
            if call.treatment == nil { call.releaseCallerInvite() }
            // A handoff through a link has no transaction whose end forgets its branch: nothing
            // more of that handoff can come once its answer is ACKed.
            if case .link(_, let branch) = call.ingress, byLinkBranch[branch] === call { byLinkBranch[branch] = nil }
            apply(call, .callerAcked, ack: ack)
            return
        }
        // The ACK for a relayed re-INVITE's 2xx.
        if let pending = call.pendingAck[side], pending.incoming == number {
            call.pendingAck[side] = nil
            var other = call.leg(side.other)
            var a = other.makeRequest(.ack, contact: "", payload: ack, cseq: pending.outgoing)
            call.setLeg(side.other, other)
            guard let hop = call.hop(side.other) else { return }
            a.headers.prepend(HeaderName(.via), stack.makeVia(for: hop, branch: stack.newBranch()))
            call.lastRelayedAck[side.other] = a
            stack.sendStateless(a, to: hop)
        }
    }

    func ackAgent(_ call: B2BCall, payload: SIPMessage?) {
        guard let hop = call.agent.nextHop() else { return }
        var a = call.agent.makeRequest(.ack, contact: "", payload: payload, cseq: call.agentInviteCSeq)
        a.headers.prepend(HeaderName(.via), stack.makeVia(for: hop, branch: stack.newBranch()))
        call.ackToAgent = a
        releaseAck(call)
        stack.sendStateless(a, to: hop)
    }

    /// The ACK sent to the agent answers its 2xx retransmissions, which stop within 64*T1: then
    /// it goes.
    func releaseAck(_ call: B2BCall) {
        stack.schedule(after: configuration.ackTimeout) { [weak call] in call?.ackToAgent = nil }
    }

    // MARK: In-dialog requests, either side

    func inDialog(_ request: SIPMessage, key: TransactionKey, ids: (callID: String, fromTag: String?, toTag: String?),
                          from source: SIPSource) {
        guard let toTag = ids.toTag, let (call, side) = dialogs[DialogKey(callID: ids.callID, localTag: toTag)] else {
            // A leg Parley hung up itself a moment ago (the agent of a transfer, a treatment):
            // its own BYE, crossing ours, is answered 200, not 481.
            let retired = ids.toTag.map { retiredLegs.contains(DialogKey(callID: ids.callID, localTag: $0)) } ?? false
            stack.respond(retired && request.method == .bye ? 200 : 481, to: key)
            return
        }
        call.noteFlow(side, from: source)
        let unsupported = HeaderPolicy.unsupportedRequired(request)
        if !unsupported.isEmpty, request.method != .ack, request.method != .cancel {
            stack.respond(420, "Bad Extension", to: key, extraHeaders: [("Unsupported", unsupported.joined(separator: ", "))])
            return
        }
        var leg = call.leg(side)
        let number = ((try? request.cseq()) ?? nil)?.sequence ?? 0
        if let last = leg.remoteCSeq, number < last, request.method != .ack {
            stack.respond(500, "Server Internal Error: CSeq out of order", to: key)
            return
        }
        leg.remoteCSeq = number
        if request.method == .invite || request.method == .update, let target = request.contactURI {
            leg.remoteTarget = target  // a target refresh (12.2.2)
        }
        call.setLeg(side, leg)
        switch request.method {
        case .bye?:
            stack.respond(200, to: key)
            if side == .agent, call.transfer != nil, !call.over {
                // A blind transfer: the agent hangs up once it asked; the caller waits for the target.
                apply(call, .agentLeftForTransfer)
                return
            }
            // In an early dialog a BYE from the caller is a CANCEL; from the agent, a refusal.
            if side == .agent, !call.callerFinalSent { _ = call.agentInvite.transactionFailed(code: 480) }
            apply(call, .bye(from: side), reason: side == .agent ? "Temporarily Unavailable" : nil)
        case .cancel?:
            stack.respond(481, to: key)
        case .refer?:
            guard side == .agent else {
                // Callers do not transfer through Parley (their leg's Allow has no REFER).
                stack.respond(405, to: key, extraHeaders: [("Allow", Self.callerAllow)])
                return
            }
            referred(request, key: key, call: call)
        default:
            guard !call.over, call.callerAnswered, call.agent.remoteTag != nil else {
                stack.respond(call.over ? 481 : 491, to: key)
                return
            }
            relay(request, key: key, call: call, from: side)
        }
    }

    /// Sends the same request on the other leg, re-addressed; its responses come back to `key`.
    func relay(_ request: SIPMessage, key: TransactionKey, call: B2BCall, from side: Side) {
        guard let method = request.method else { return }
        if side == .caller { call.noteCallerSDP(request) }
        var other = call.leg(side.other)
        let contact = side.other == .caller ? call.callerContact : call.agentContact
        let out = other.makeRequest(method, contact: contact, payload: request)
        call.setLeg(side.other, other)
        guard let hop = call.hop(side.other), let client = stack.sendRequest(out, to: hop) else {
            stack.respond(503, to: key)
            return
        }
        counters.relayedInDialog += 1
        if method == .invite {
            call.pendingAck[side] = (incoming: ((try? request.cseq()) ?? nil)?.sequence ?? 0, outgoing: other.localCSeq)
        }
        clientTransactions[client] = .relay(call, server: key, request: request, from: side)
    }

    func relayResponse(_ response: SIPMessage, server: TransactionKey, request: SIPMessage, call: B2BCall, from side: Side) {
        guard let code = response.statusCode, code > 100 else { return }
        if side == .agent, code < 300 { call.noteCallerSDP(response) }  // the caller's answer
        var r = SIPTransport.makeResponse(to: request, code: code, reason: response.reasonPhrase)
        if code < 300, request.method == .invite || request.method == .update || request.method == .subscribe {
            r.headers.append(HeaderName(.contact), side == .caller ? call.callerContact : call.agentContact)
        }
        if code < 300, request.method == .invite || request.method == .update || request.method == .options,
           let allow = call.leg(side).allow {
            r.headers.append(HeaderName(.allow), allow)
        }
        HeaderPolicy.copyPayload(from: response, into: &r)
        var leg = call.leg(side)
        leg.ownSDP(&r)
        call.setLeg(side, leg)
        if code >= 200, request.method == .invite {
            if code >= 300 { call.pendingAck[side] = nil }
            if code < 300, let ack = call.lastRelayedAck[side.other], call.pendingAck[side] == nil,
               let hop = call.hop(side.other), ((try? ack.cseq()) ?? nil)?.sequence == ((try? response.cseq()) ?? nil)?.sequence {
                // A retransmitted 2xx that we have ACKed already.
                stack.sendStateless(ack, to: hop)
                return
            }
        }
        stack.respond(r, to: server)
    }
}
