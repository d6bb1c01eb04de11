import Logging
import ParleyRecords
import ParleyRules
import ParleySIP
import ParleyTransport

/// Transfers (REFER, RFC 3515): the buffer server takes an agent's REFER and asks the
/// distributor, which owns agent state, to find the target. A transfer waits like a caller on
/// a treatment, except that what the caller hears meanwhile is the agent who asked: that agent
/// stays on until the target answers (then the buffer server hangs its leg up), and gets the
/// caller back if no one does.
extension Distributor {
    /// The buffer server's `transfer` event: `agent` asked to transfer call `reference` to
    /// `target`, an agent's id (that agent or no one) or a queue (its rules choose).
    func transferAsked(_ reference: String, by agent: String, to target: String, caller: String) {
        counters.transfersAsked += 1
        let refuse = { [self] (code: Int, why: String) in
            counters.transfersFailed += 1
            logger.info("call \(reference): \(agent)'s transfer to \(target) refused: \(why)")
            sendControl(.transferFailed(call: reference, code: code))
        }
        guard answeredCalls[reference] == agent, onTreatment[reference] == nil else {
            return refuse(481, "not a call \(agent) is connected to, or one being moved already")
        }
        guard target != agent else { return refuse(403, "an agent cannot transfer a call to itself") }
        let toAgent = agents.agent(target) != nil
        guard toAgent || configuration.skills.contains(target) || configuration.queues[target] != nil else {
            return refuse(404, "no agent or queue of that name")
        }
        let now = clock()
        let type = toAgent ? "transfer" : target
        let invite = transferInvite(target: target, caller: caller, agent: agent)
        let info = CallInfo(id: reference, type: type, priority: 0, arrivedMs: now, attempts: [agent],
                            invite: InviteView(message: invite))
        // The caller is answered already (a queue's max length does not turn it away) and hears
        // the agent who asked meanwhile.
        let call = DistributorCall(serverKey: nil, invite: invite, reference: reference, info: info, rules: engine.pin(),
                                   policy: configuration.policy(for: type), treatmentConfigured: false, answeredOn: agent)
        call.transferFrom = agent
        call.transferTo = toAgent ? target : nil
        onTreatment[reference] = call
        record(.transferred(call: reference, agent: agent, target: target, at: now))
        logger.debug("call \(reference): \(agent) transfers it to \(toAgent ? "agent" : "queue") \(target)")
        tryNext(call)
    }

    /// A transfer to one agent: offered to that agent alone.
    func offerTransfer(_ call: DistributorCall, to target: String) {
        guard !call.info.attempts.contains(target), agents.offer(target, call: call.reference) else {
            giveUp(call, code: 486, reason: "\(target) cannot take the transfer now", exit: .failed)
            return
        }
        call.info.attempts.append(target)
        agentCallQueue[target] = call.info.type
        counters.moves += 1
        handOff(call, to: target, encoding: .uri, kind: .move)
    }

    /// The INVITE a transfer stands for, written here (the caller's own is long answered): what
    /// the rules see as `call.invite` (Request-URI the target at the buffer server's host, From
    /// the caller, Referred-By the agent who asked, RFC 3892) and what the move to the buffer
    /// server is made from (our own tag, Call-ID and CSeq, which the handoff signature covers).
    func transferInvite(target: String, caller: String, agent: String) -> SIPMessage {
        let host = configuration.bufferURI.host.description
        let callerFrom = (try? NameAddress.parse(caller)).map { a -> String in
            var a = a
            a.parameters.remove("tag")
            a.angleBrackets = true
            return a.description
        } ?? "<sip:anonymous@anonymous.invalid>"
        var h = SIPHeaders()
        h.append(HeaderName(.maxForwards), "70")
        h.append(HeaderName(.from), callerFrom + ";tag=" + stack.newTag())
        h.append(HeaderName(.to), "<sip:\(target)@\(host)>")
        h.append(HeaderName(.callID), "xfer-" + stack.newTag() + "@parley")
        h.append(HeaderName(.cseq), "1 INVITE")
        h.append(HeaderName(.referredBy), "<sip:\(agent)@\(host)>")
        h.append(HeaderName(.contentLength), "0")
        let uri = (try? URI.parse("sip:\(target)@\(host)")) ?? .sip(configuration.bufferURI)
        return .request(.invite, uri, headers: h)
    }
}
