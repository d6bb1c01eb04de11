import Logging
import NIOCore
import ParleyRules
import ParleyDialog
import ParleySIP
import ParleyTransaction
import ParleyTransport

extension BufferServer {
    // MARK: Ending

    /// Feeds an event to the call's life and performs what it decides. `response`: the agent's
    /// response an `answerCaller` or `failCaller` relays; `ack`: the caller's ACK an `ackAgent`
    /// carries on (its body answers a late offer); `reason`: Parley's own failure's phrase.
    func apply(_ call: B2BCall, _ event: CallLife.Event, response: SIPMessage? = nil, ack: SIPMessage? = nil, reason: String? = nil) {
        for action in call.life.handle(event) {
            switch action {
            case .answerCaller(let deadline):
                counters.answered += 1
                if let response { sendToCaller(call, callerResponse(call, from: response)) }
                call.ackTimer = stack.schedule(after: .milliseconds(max(0, deadline - nowMs()))) { [weak self, weak call] in
                    guard let self, let call, !call.callerAcked, !call.over else { return }
                    self.logger.info("call \(call.id): no ACK from the caller; hanging up both legs")
                    self.apply(call, .tick(nowMs: deadline))
                }
            case .failCaller(let code):
                if code == 487 { counters.cancelled += 1 } else { counters.failed += 1 }
                if code == nil, let response {
                    sendToCaller(call, callerResponse(call, from: response))
                } else {
                    sendToCaller(call, SIPTransport.makeResponse(to: call.callerInvite, code: code ?? 500, reason: reason,
                                                                 toTag: call.caller.localTag))
                }
            case .cancelAgent:
                cancelAgent(call)
            case .ackAgent:
                ackAgent(call, payload: ack)
            case .bye(let side):
                var leg = call.leg(side)
                let bye = leg.makeRequest(.bye, contact: "", payload: nil)
                call.setLeg(side, leg)
                if let hop = call.hop(side), let key = stack.sendRequest(bye, to: hop) {
                    clientTransactions[key] = .bye(call)
                } else {
                    apply(call, .byeFinished)
                }
            case .cancelMove:
                if let move = call.move { cancelMove(move) }
            case .reportEnded:
                call.ackTimer?.cancel()
                counters.ended += 1
                queueEvent(.ended(call: call.reference, agent: call.agentID))
            case .remove:
                remove(call)
            }
        }
    }

    /// Parley ends an answered call itself: BYE on both legs.
    func endCall(_ call: B2BCall, reason: String) {
        logger.debug("call \(call.id) ended here: \(reason)")
        apply(call, .endHere)
    }

    /// The call leaves the routing table: nothing of it is left (`CallLife` said so).
    func remove(_ call: B2BCall) {
        guard calls[call.id] != nil else { return }
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

    /// Milliseconds on the buffer server's clock (the ACK deadline's).
    func nowMs() -> Int64 { wallClock() }

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
            if !call.agentFinal { failCall(call, code: 408, reason: "Request Timeout") }
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
        apply(call, .byeFinished)
    }
}
