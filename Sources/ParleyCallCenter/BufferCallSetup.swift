import Logging
import NIOCore
import ParleyRules
import ParleyDialog
import ParleySIP
import ParleyTransaction
import ParleyTransport

extension BufferServer {
    /// Enters a call in the routing table and calls the agent.
    func startCall(_ invite: SIPMessage, agent: String, treatment: Bool, encoding: HandoffEncoding, ingress: CallerIngress) {
        counters.handoffs[encoding.rawValue, default: 0] += 1
        let refuse: (Int, String) -> Void = { [self] code, reason in
            counters.refused += 1
            let tag: String
            switch ingress {
            case .transaction(let key): tag = stack.localTag(of: key.value)
            case .link: tag = stack.newTag()
            }
            let r = SIPTransport.makeResponse(to: invite, code: code, reason: reason, toTag: tag)
            switch ingress {
            case .transaction(let key): stack.respond(r, to: key.value)
            case .link(let path, _): path.send(r)
            }
        }
        guard let contact = treatment ? configuration.treatmentContacts[agent] : configuration.agentContacts[agent],
              let agentHop = Resolver.destination(for: contact) else {
            return refuse(404, treatment ? "Not Found: unknown treatment \(agent)" : "Not Found: unknown agent \(agent)")
        }
        guard let callerFrom = (try? invite.from()) ?? nil, let callerTo = (try? invite.to()) ?? nil, let fromTag = callerFrom.tag,
              let callID = invite.callID, let cseq = (try? invite.cseq()) ?? nil else {
            return refuse(400, "Bad Request")
        }
        let mf = ((try? invite.maxForwards()) ?? nil) ?? 70
        guard mf > 0 else { return refuse(483, "Too Many Hops") }

        // Caller leg: we are the UAS (12.1.1). Its route set is the INVITE's Record-Route, in order.
        var callerLocal = callerTo
        callerLocal.parameters.remove("tag")
        var callerRemote = callerFrom
        callerRemote.parameters.remove("tag")
        let callerContact = invite.contactURI?.sipURI
        let callerTransport: SIPTransportKind = callerContact?.secure == true ? .tls
            : callerContact?.transportParameter.flatMap(SIPTransportKind.init(token:)) ?? .udp
        // Our To tag toward the caller: one for every response to its INVITE (8.2.6.2); for a
        // real transaction, the one the stack gives its own responses (a 100 has none).
        let callerTag: String
        switch ingress {
        case .transaction(let key): callerTag = stack.localTag(of: key.value)
        case .link: callerTag = stack.newTag()
        }
        var callerLeg = DialogLeg(callID: callID, localTag: callerTag, remoteTag: fromTag, local: callerLocal, remote: callerRemote,
                                  localCSeq: 0, remoteCSeq: cseq.sequence, remoteTarget: invite.contactURI,
                                  routeSet: invite.headers.elements(HeaderName(.recordRoute)), transport: callerTransport)
        callerLeg.allow = Self.callerAllow

        guard var agentLeg = newAgentLeg(callerFrom: callerFrom, contact: contact, hop: agentHop) else {
            return refuse(500, "Server Internal Error: no listener toward the agent")
        }
        var agentInvite = agentLeg.makeRequest(.invite, contact: contactHeader(toward: agentHop), payload: invite)
        agentInvite.headers.set(HeaderName(.maxForwards), String(min(70, mf - 1)))

        let reference = invite.headers[HandoffWire.callHeader] ?? ("local-" + stack.newTag())
        let call = B2BCall(id: stack.newTag(), reference: reference, agentID: agent, encoding: encoding, callerInvite: invite,
                           ingress: ingress, caller: callerLeg, agent: agentLeg, ackTimeoutMs: configuration.ackTimeout.milliseconds)
        if treatment {
            call.treatment = agent
            counters.treatments += 1
            if let old = onTreatment[reference], old !== call, !old.over { endCall(old, reason: "handed off again") }
            onTreatment[reference] = call
        }
        // Our Contact toward the caller names the transport of the caller's own Contact, or,
        // when that names none, the one its INVITE reached Parley on: a caller that came over
        // TCP sends its ACK and BYE over TCP too (if we listen on that transport). Requests to
        // the caller still go as its Contact says (RFC 3263: UDP when it names no transport).
        let callerHop = callerLeg.nextHop() ?? agentHop
        var contactHop = callerHop
        if invite.contactURI?.sipURI?.transportParameter == nil, let arrivedOn = Self.callerIngressTransport(invite),
           arrivedOn != callerHop.transport, stack.transport.advertisedAddress(for: arrivedOn, toward: callerHop.address) != nil {
            contactHop = SIPDestination(transport: arrivedOn, address: callerHop.address)
        }
        call.callerContact = contactHeader(toward: contactHop)
        call.agentContact = contactHeader(toward: agentHop)
        if let ours = stack.transport.advertisedListener(for: contactHop.transport, toward: contactHop.address) {
            call.caller.sdp = SDPSession(host: ours.ip)
        }
        calls[call.id] = call
        switch ingress {
        case .transaction(let key): byInviteTransaction[key.value] = call
        case .link(_, let branch): byLinkBranch[branch] = call
        }
        dialogs[DialogKey(callID: callerLeg.callID, localTag: callerLeg.localTag)] = (call, .caller)
        dialogs[DialogKey(callID: agentLeg.callID, localTag: agentLeg.localTag)] = (call, .agent)

        guard let key = stack.sendRequest(agentInvite, to: agentHop) else {
            failCall(call, code: 503, reason: "Service Unavailable: cannot reach the agent")
            return
        }
        call.agentInviteKey = key
        clientTransactions[key] = .agentInvite(call)
        logger.debug("call \(call.id) (\(reference)) from \(callID) to agent \(agent) via \(encoding)")
    }

    /// A leg toward an agent (or a treatment system): we are the UAC, with a Call-ID, tag and
    /// From of our own. The agent sees the caller's user part and display name (caller ID) at
    /// our host, never the caller's host.
    func newAgentLeg(callerFrom: NameAddress, contact: URI, hop: SIPDestination) -> DialogLeg? {
        guard let listener = stack.transport.advertisedListener(for: hop.transport, toward: hop.address) else { return nil }
        let local = listener.local
        var fromURI = SIPURI(host: SIPHost.from(address: local, ip: listener.ip), port: local.port)
        fromURI.user = callerFrom.uri.user.map { Self.safeUser($0) }
        let agentLocal = NameAddress(displayName: callerFrom.displayName, uri: .sip(fromURI))
        var leg = DialogLeg(callID: "b2b-" + stack.newTag() + stack.newTag() + "@" + listener.hostPort, localTag: stack.newTag(),
                            remoteTag: nil, local: agentLocal, remote: NameAddress(uri: contact), localCSeq: 0,
                            remoteCSeq: nil, remoteTarget: contact, routeSet: [], transport: hop.transport)
        leg.sdp = SDPSession(host: listener.ip)
        leg.allow = Self.agentAllow
        return leg
    }

    // MARK: The caller leg's INVITE transaction

    public func stack(_ stack: SIPStack, didReceiveCancel cancel: SIPMessage, forInvite invite: TransactionKey) {
        if let call = byInviteTransaction[invite] { callerCancelled(call) }
        if let call = byMove[invite], let move = call.move { cancelMove(move) }
    }

    /// CANCEL from the caller's side before an answer (9.2): 487 to the caller at once, and the
    /// agent leg cancelled (after its first provisional, 9.1).
    func callerCancelled(_ call: B2BCall) {
        apply(call, .callerCancelled)
    }

    func cancelAgent(_ call: B2BCall) {
        for action in call.agentInvite.cancel() where action == .sendCancel {
            if let key = call.agentInviteKey { stack.cancel(key) }
        }
    }

    /// A response on the caller leg's INVITE (whether it is its final one, `CallLife` keeps).
    func sendToCaller(_ call: B2BCall, _ response: SIPMessage) {
        switch call.ingress {
        case .transaction(let key): stack.respond(response, to: key.value)
        case .link(let path, _): path.send(response)
        }
    }

    /// A response of the agent's INVITE, re-addressed for the caller leg.
    func callerResponse(_ call: B2BCall, from agentResponse: SIPMessage) -> SIPMessage {
        let code = agentResponse.statusCode ?? 500
        var r = SIPTransport.makeResponse(to: call.callerInvite, code: code, reason: agentResponse.reasonPhrase, toTag: call.caller.localTag)
        if code < 300 {
            for rr in call.callerInvite.headers.values(HeaderName(.recordRoute)) { r.headers.append(HeaderName(.recordRoute), rr) }
            r.headers.append(HeaderName(.contact), call.callerContact)
            if let allow = call.caller.allow { r.headers.append(HeaderName(.allow), allow) }
        }
        HeaderPolicy.copyPayload(from: agentResponse, into: &r)
        call.caller.ownSDP(&r)
        return r
    }

    func agentInviteResponse(_ call: B2BCall, _ response: SIPMessage) {
        guard let code = response.statusCode else { return }
        for action in call.agentInvite.received(status: code) {
            switch action {
            case .sendCancel:
                if let key = call.agentInviteKey { stack.cancel(key) }
            case .provisional(let code):
                guard code > 100 else { continue }
                if call.agent.remoteTag == nil, let tag = (try? response.to())??.tag { call.agent.remoteTag = tag }
                if !call.callerFinalSent { sendToCaller(call, callerResponse(call, from: response)) }
            case .ackAgain:
                // A retransmission: the agent has not had our ACK (or it was lost).
                if let ack = call.ackToAgent, let hop = call.agent.nextHop() { stack.sendStateless(ack, to: hop) }
                else if !call.callerAcked, !call.over { sendToCaller(call, callerResponse(call, from: response)) }
            case .answered(let unwanted):
                call.agentInviteKey = nil  // nothing left to CANCEL
                // The agent leg's dialog (12.1.2): remote tag, target, route set reversed.
                call.agent.remoteTag = (try? response.to())??.tag
                call.agent.remoteTarget = response.contactURI ?? call.agent.remoteTarget
                call.agent.routeSet = response.headers.elements(HeaderName(.recordRoute)).reversed()
                call.agentInviteCSeq = (try? response.cseq())??.sequence ?? 1
                // Relayed to the caller; or, the caller gone (cancelled or failed meanwhile),
                // ACKed and hung up.
                apply(call, .agentAnswered(nowMs: nowMs(), unwanted: unwanted), response: response)
            case .failed:
                apply(call, .agentFailed(code: nil), response: response)
            }
        }
    }

    /// The agent leg's INVITE failed without a response (cannot be sent, timed out).
    func failCall(_ call: B2BCall, code: Int, reason: String) {
        _ = call.agentInvite.transactionFailed(code: code)
        apply(call, .agentFailed(code: code), reason: reason)
    }
}
