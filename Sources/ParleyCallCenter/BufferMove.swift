import Logging
import NIOCore
import ParleyRules
import ParleyDialog
import ParleySIP
import ParleyTransaction
import ParleyTransport

extension BufferServer {
    // MARK: Moving a caller off a treatment

    /// The distributor moves a caller who is connected to a treatment to an agent (or another
    /// treatment): the buffer server calls the new party with the caller's original offer, and
    /// when it answers, re-INVITEs the caller with its answer and hangs up the treatment. The
    /// distributor's INVITE gets the new party's provisional and final responses.
    func startMove(_ request: SIPMessage, key: TransactionKey, target: String, treatment: Bool) {
        let toTag = stack.newTag()
        let refuse: (Int, String) -> Void = { [self] code, reason in
            counters.movesFailed += 1
            stack.respond(SIPTransport.makeResponse(to: request, code: code, reason: reason, toTag: toTag), to: key)
        }
        guard let reference = request.headers[HandoffWire.callHeader], let call = onTreatment[reference], !call.over,
              call.callerAnswered else {
            return refuse(481, "Call Does Not Exist: no caller on a treatment with this reference")
        }
        guard call.move == nil else { return refuse(491, "Request Pending: the caller is being moved already") }
        guard let contact = treatment ? configuration.treatmentContacts[target] : configuration.agentContacts[target],
              let hop = Resolver.destination(for: contact) else {
            return refuse(404, treatment ? "Not Found: unknown treatment \(target)" : "Not Found: unknown agent \(target)")
        }
        guard let callerFrom = call.callerFrom, var leg = newAgentLeg(callerFrom: callerFrom, contact: contact, hop: hop) else {
            return refuse(500, "Server Internal Error: no listener toward the agent")
        }
        let contactHeader = contactHeader(toward: hop)
        let invite = leg.makeRequest(.invite, contact: contactHeader, payload: call.callerOffer)
        let move = Move(serverKey: key, request: request, target: target, treatment: treatment, leg: leg, contact: contactHeader, toTag: toTag)
        guard let client = stack.sendRequest(invite, to: hop) else {
            return refuse(503, "Service Unavailable: cannot reach \(target)")
        }
        move.clientKey = client
        call.move = move
        apply(call, .moveStarted)
        byMove[key] = call
        clientTransactions[client] = .moveInvite(call)
        counters.moves += 1
        logger.debug("call \(call.id) (\(reference)): moving the caller from \(call.agentID) to \(target)")
    }

    func moveResponse(_ call: B2BCall, _ response: SIPMessage) {
        guard let move = call.move, let code = response.statusCode else {
            // A 2xx retransmission after the move completed: ACK it again.
            if (200..<300).contains(response.statusCode ?? 0), let ack = call.ackToAgent, let hop = call.agent.nextHop() {
                stack.sendStateless(ack, to: hop)
            }
            return
        }
        let reply: (Int, String?) -> Void = { [self] code, reason in
            var r = SIPTransport.makeResponse(to: move.request, code: code, reason: reason, toTag: move.toTag)
            if code < 300, let source = stack.source(of: move.serverKey) {
                r.headers.append(HeaderName(.contact), contactHeader(toward: SIPDestination(transport: source.transport, address: source.remote)))
            }
            stack.respond(r, to: move.serverKey)
        }
        for action in move.invite.received(status: code) {
            switch action {
            case .sendCancel:
                if let key = move.clientKey { stack.cancel(key) }
            case .provisional(let code):
                guard code > 100 else { continue }
                if move.leg.remoteTag == nil, let tag = (try? response.to())??.tag { move.leg.remoteTag = tag }
                reply(code, response.reasonPhrase)
                notifyTransfer(call, status: code, reason: response.reasonPhrase ?? "Ringing", final: false)
            case .ackAgain:
                break  // the move is over once answered: a retransmission finds no move (above)
            case .answered(let unwanted):
                moveAnswered(call, move, response, unwanted: unwanted, reply: reply)
            case .failed(let code):
                counters.movesFailed += 1
                reply(code, response.reasonPhrase)
                endMove(call)
            }
        }
    }

    /// The new party answered: it takes the old one's place and the caller is re-INVITEd to it;
    /// unless the caller hung up (or the distributor gave up) meanwhile: then it is hung up.
    private func moveAnswered(_ call: B2BCall, _ move: Move, _ response: SIPMessage, unwanted: Bool, reply: (Int, String?) -> Void) {
        move.leg.remoteTag = (try? response.to())??.tag
        move.leg.remoteTarget = response.contactURI ?? move.leg.remoteTarget
        move.leg.routeSet = response.headers.elements(HeaderName(.recordRoute)).reversed()
        let cseq = (try? response.cseq())??.sequence ?? 1
        var ack: SIPMessage?
        if let hop = move.leg.nextHop() {
            var a = move.leg.makeRequest(.ack, contact: "", payload: nil, cseq: cseq)
            a.headers.prepend(HeaderName(.via), stack.makeVia(for: hop, branch: stack.newBranch()))
            stack.sendStateless(a, to: hop)
            ack = a
        }
        if call.over || unwanted {
            byeLeg(call, move.leg)
            reply(487, "Request Terminated")
            endMove(call)
            return
        }
        endMove(call)
        // Hang up the treatment (or the agent who transferred the call, told first that it
        // worked), put the new party in its place, re-INVITE the caller.
        notifyTransfer(call, status: 200, reason: "OK", final: true)
        call.transfer = nil
        let old = call.agent
        if call.life.owesBye(.agent) { byeLeg(call, old) }
        retire(DialogKey(callID: old.callID, localTag: old.localTag))
        call.agent = move.leg
        call.agentInvite = move.invite
        call.forgetFlow(.agent)
        call.agentID = move.target
        call.agentContact = move.contact
        call.agentInviteCSeq = cseq
        call.ackToAgent = ack
        releaseAck(call)
        apply(call, .agentReplaced)
        call.pendingAck = PerSide(caller: nil, agent: nil)
        call.lastRelayedAck = PerSide(caller: nil, agent: nil)
        dialogs[DialogKey(callID: move.leg.callID, localTag: move.leg.localTag)] = (call, .agent)
        if move.treatment {
            call.treatment = move.target
        } else {
            call.treatment = nil
            onTreatment[call.reference] = nil
            if call.callerAcked { call.releaseCallerInvite() }
        }
        reinviteCaller(call, with: response)
        reply(200, "OK")
    }

    func endMove(_ call: B2BCall) {
        guard let move = call.move else { return }
        call.move = nil
        byMove[move.serverKey] = nil
        apply(call, .moveEnded)
    }

    func cancelMove(_ move: Move) {
        for action in move.invite.cancel() where action == .sendCancel {
            if let key = move.clientKey { stack.cancel(key) }
        }
    }

    /// Sends the caller the new party's session description in a re-INVITE.
    func reinviteCaller(_ call: B2BCall, with answer: SIPMessage) {
        var leg = call.caller
        let reinvite = leg.makeRequest(.invite, contact: call.callerContact, payload: answer)
        call.caller = leg
        guard let hop = call.hop(.caller), let key = stack.sendRequest(reinvite, to: hop) else {
            endCall(call, reason: "cannot re-INVITE the caller")
            return
        }
        clientTransactions[key] = .reinvite(call)
    }

    func reinviteResponse(_ call: B2BCall, _ response: SIPMessage) {
        guard let code = response.statusCode, code >= 200 else { return }
        if code >= 300 {
            logger.info("call \(call.id): the caller refused the move (\(code)); hanging up")
            endCall(call, reason: "move refused")
            return
        }
        guard let hop = call.hop(.caller) else { return }
        var leg = call.caller
        var ack = leg.makeRequest(.ack, contact: "", payload: nil, cseq: (try? response.cseq())??.sequence ?? leg.localCSeq)
        ack.headers.prepend(HeaderName(.via), stack.makeVia(for: hop, branch: stack.newBranch()))
        stack.sendStateless(ack, to: hop)
    }

    /// A BYE on a leg that is no longer (or not yet) the call's agent leg.
    func byeLeg(_ call: B2BCall, _ leg: DialogLeg) {
        var l = leg
        let bye = l.makeRequest(.bye, contact: "", payload: nil)
        if let hop = l.nextHop(), let key = stack.sendRequest(bye, to: hop) {
            clientTransactions[key] = .bye(call)
            apply(call, .byeOut)
        }
    }
}
