import Logging
import NIOCore
import ParleyRules
import ParleyDialog
import ParleySIP
import ParleyTransaction
import ParleyTransport

extension BufferServer {
    // MARK: Ending

    /// Whether `side` has a confirmed dialog to hang up.
    func established(_ call: B2BCall, _ side: Side) -> Bool {
        side == .caller ? call.callerAnswered : call.agentAnswered
    }

    func sendBye(_ call: B2BCall, _ side: Side) {
        guard !call.byeSent[side], established(call, side) else { return }
        call.byeSent[side] = true
        var leg = call.leg(side)
        let bye = leg.makeRequest(.bye, contact: "", payload: nil)
        call.setLeg(side, leg)
        if let hop = call.hop(side), let key = stack.sendRequest(bye, to: hop) {
            clientTransactions[key] = .bye(call)
            call.outstanding += 1
        }
    }

    /// The other side hung up (or is gone): BYE on `side`, the call is over, the distributor told.
    func hangUp(_ call: B2BCall, side: Side) {
        call.over = true
        if let move = call.move { cancelMove(move) }
        call.ackTimer?.cancel()
        sendBye(call, side)
        if call.callerAnswered, !call.endedReported {
            call.endedReported = true
            counters.ended += 1
            queueEvent(.ended(call: call.reference, agent: call.agentID))
        }
        finishIfDone(call)
    }

    /// Ends an answered call from here: BYE on both legs.
    func endCall(_ call: B2BCall, reason: String) {
        logger.debug("call \(call.id) ended here: \(reason)")
        sendBye(call, .caller)
        hangUp(call, side: .agent)
    }

    /// Removes a call from the routing table once nothing of it is left: the caller has its final
    /// answer and, for an answered call, both legs are hung up and their BYEs done.
    func finishIfDone(_ call: B2BCall) {
        guard calls[call.id] != nil, call.callerFinalSent, call.agentFinal || call.agentGone, call.outstanding == 0, call.move == nil else { return }
        if call.callerAnswered && !call.over { return }
        calls[call.id] = nil
        dialogs[DialogKey(callID: call.caller.callID, localTag: call.caller.localTag)] = nil
        dialogs[DialogKey(callID: call.agent.callID, localTag: call.agent.localTag)] = nil
        switch call.ingress {
        case .transaction(let key): byInviteTransaction[key.value] = nil
        case .link(_, let branch): byLinkBranch[branch] = nil
        }
        if onTreatment[call.reference] === call { onTreatment[call.reference] = nil }
        call.ackTimer?.cancel()
        logger.debug("call \(call.id) left the routing table")
    }

    // MARK: Responses and transaction ends

    public func stack(_ stack: SIPStack, didReceiveResponse response: SIPMessage, transaction: TransactionKey) {
        guard let purpose = clientTransactions[transaction] else { return }
        switch purpose {
        case .agentInvite(let call):
            if transaction.method == .invite { agentInviteResponse(call, response) }
        case .relay(let call, let server, let request, let side):
            relayResponse(response, server: server, request: request, call: call, from: side)
        case .bye(let call):
            if (response.statusCode ?? 0) >= 200 { byeDone(call, transaction) }
        case .probe(let call, let side):
            if let code = response.statusCode, code == 481 || code == 408 { probeFailed(call, side) }
        case .moveInvite(let call):
            if transaction.method == .invite { moveResponse(call, response) }
        case .reinvite(let call):
            if transaction.method == .invite { reinviteResponse(call, response) }
        case .event:
            break
        }
    }

    public func stack(_ stack: SIPStack, transaction: TransactionKey, didFail failure: TransactionFailure) {
        guard let purpose = clientTransactions[transaction] else { return }
        switch purpose {
        case .agentInvite(let call):
            guard !call.agentFinal else { return }
            call.agentGone = true
            let (code, reason) = failure == .transportError ? (503, "Service Unavailable") : (408, "Request Timeout")
            failCall(call, code: code, reason: reason)
        case .relay(let call, let server, let request, let side):
            let code = failure == .transportError ? 503 : 408
            relayResponse(SIPTransport.makeResponse(to: request, code: code), server: server, request: request, call: call, from: side)
        case .bye(let call):
            byeDone(call, transaction)
        case .probe(let call, let side):
            probeFailed(call, side)
        case .moveInvite(let call):
            if let move = call.move, move.clientKey == transaction, !move.final {
                moveResponse(call, SIPTransport.makeResponse(to: move.request, code: failure == .transportError ? 503 : 408))
            }
        case .reinvite(let call):
            endCall(call, reason: "the caller did not answer the re-INVITE")
        case .event:
            break
        }
    }

    public func stack(_ stack: SIPStack, didTerminate transaction: TransactionKey) {
        // The caller's INVITE transaction is over: nothing can reach the call through it any more
        // (a CANCEL needs it alive), so the index entry goes now rather than with the call.
        if byInviteTransaction.removeValue(forKey: transaction) != nil { return }
        if byMove.removeValue(forKey: transaction) != nil { return }
        guard let purpose = clientTransactions.removeValue(forKey: transaction) else { return }
        switch purpose {
        case .agentInvite(let call):
            if !call.agentFinal {
                call.agentGone = true
                failCall(call, code: 408, reason: "Request Timeout")
            }
            finishIfDone(call)
        case .bye(let call):
            byeDone(call, transaction)
        case .moveInvite(let call):
            if let move = call.move, move.clientKey == transaction, !move.final {
                moveResponse(call, SIPTransport.makeResponse(to: move.request, code: 408))
            }
        default:
            break
        }
    }

    func byeDone(_ call: B2BCall, _ key: TransactionKey) {
        guard call.finishedByes.insert(key).inserted else { return }
        call.outstanding -= 1
        finishIfDone(call)
    }
}
