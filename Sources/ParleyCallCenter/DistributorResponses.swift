import Logging
import NIOCore
import ParleyRecords
import ParleyRules
import ParleyDialog
import ParleySIP
import ParleyTransaction
import ParleyTransport

extension Distributor {
    // MARK: Responses from the buffer server

    public func stack(_ stack: SIPStack, didReceiveResponse response: SIPMessage, transaction: TransactionKey) {
        if transaction.method == .message, let code = response.statusCode, code >= 200 {
            messageLinkResult(transaction, failed: code >= 300)
            return
        }
        guard transaction.method == .invite, let attempt = attemptsByKey[transaction] else { return }
        attemptResponse(attempt, response)
    }

    /// A response (or a request) that came back through a link.
    public func linkReceived(_ message: SIPMessage) {
        guard !message.isRequest, let branch = (try? message.topVia())??.branch, let attempt = attemptsByBranch[branch] else { return }
        guard ((try? message.cseq()) ?? nil)?.method == .invite else { return }  // the 200 for a CANCEL
        attemptResponse(attempt, message)
        if let code = message.statusCode, code >= 300, attempt.encoding == .tunnel, let invite = attempt.linkInvite,
           let link = attempt.link {
            link.send(invite.makeACK(for: message)) {}  // 17.1.1.3, hop by hop
        }
    }

    /// A handoff's response as the caller gets it: our Via and the handoff's call header removed.
    static func upstream(_ response: SIPMessage) -> SIPMessage {
        var r = response
        r.headers.removeFirstElement(HeaderName(.via))
        r.headers.removeAll(HandoffWire.callHeader)
        return r
    }

    func attemptResponse(_ attempt: Attempt, _ response: SIPMessage) {
        guard let code = response.statusCode, let call = attempt.call else { return }
        if attempt.kind.isTreatment {
            treatmentResponse(attempt, call: call, code: code, response: response)
            return
        }
        // Built only for a response that goes on to the caller: a 100 stops here.
        var upstream: SIPMessage { Self.upstream(response) }
        for action in attempt.invite.received(status: code) {
            switch action {
            case .sendCancel:
                sendCancel(attempt)
            case .provisional(let code):
                if code > 100, attempt.kind == .agent, call.routing.offerOut == attempt.id, !attempt.abandoned, !call.finalSent, !call.cancelled {
                    if let key = call.serverKey { stack.respond(upstream, to: key) }
                }
            case .answered, .ackAgain:
                // Wanted or not: a 2xx that crossed the caller's CANCEL (or came after the
                // no-answer timer) connects the call all the same.
                attemptAnswered(attempt, call: call, response, first: action != .ackAgain)
            case .failed(let code):
                attemptRefused(attempt, call: call, code: code, response: response)
            }
        }
    }

    private func attemptAnswered(_ attempt: Attempt, call: DistributorCall, _ response: SIPMessage, first: Bool) {
        attempt.noAnswerTimer?.cancel()
        if attempt.kind == .move {
            // The buffer server connected the agent and re-INVITEd the caller to it: this
            // hop is ours alone, so the ACK goes back statelessly (and again for each
            // retransmission).
            ackMove(attempt, response)
        }
        if attempt.kind == .agent { answer(call, .answered) }
        if first {
            if !attempt.abandoned { answer(call, .offerEnded(treatmentPending: true)) }
            counters.answered += 1
            // A late answer from an agent we had given up on still wins: the caller gets it.
            agents.apply(attempt.agent) { m, t in
                m.answered(call: call.reference, now: t) || m.answeredLate(call: call.reference, now: t)
            }
            if let from = call.transferFrom, from != attempt.agent {
                // A transfer connected: the agent who asked for it is free (the buffer server
                // hung its leg up).
                counters.transfers += 1
                agents.callEnded(from, call: call.reference)
            }
            answeredCalls[call.reference] = attempt.agent
            record(.connected(call: call.reference, agent: attempt.agent, at: clock()))
            writeTrace(call)
            call.cancelGuard?.cancel()
            route(call, .connected(attempt: attempt.id))
        }
        if attempt.kind == .agent {
            if let key = call.serverKey { stack.respond(Self.upstream(response), to: key) }  // 2xx retransmissions too (16.7 step 5)
        }
        if first { call.answered(attempt, transactionInvite: call.serverKey.flatMap { stack.request(of: $0) }) }
    }

    private func attemptRefused(_ attempt: Attempt, call: DistributorCall, code: Int, response: SIPMessage) {
        attempt.noAnswerTimer?.cancel()
        if !attempt.abandoned {
            answer(call, .offerEnded(treatmentPending: call.routing.treatmentPending))
            agents.rejected(attempt.agent, call: call.reference)
            record(.notAnswered(call: call.reference, agent: attempt.agent, code: code, at: clock()))
            if attempt.kind == .agent { call.record(code: code, reason: response.reasonPhrase, response: Self.upstream(response)) }
        } else {
            // The agent was already released when its no-answer timer fired.
            if case .ringing(let c, _)? = agents.agent(attempt.agent)?.state, c == call.reference {
                agents.rejected(attempt.agent, call: call.reference)
            }
        }
        if call.cancelled {
            if call.answer.offersOut == 0, !call.routing.treatmentPending { answer(call, .refuse(code: 487)) }
        } else {
            route(call, .offerEnded(attempt: attempt.id))
        }
    }

    func attemptFailed(_ attempt: Attempt, code: Int) {
        guard !attempt.final else { return }
        var response = SIPTransport.makeResponse(to: attempt.call?.invite ?? SIPMessage.request(.invite, .sip(SIPURI(host: .name("invalid")))), code: code)
        response.headers.prepend(HeaderName(.via), "SIP/2.0/UDP invalid;branch=z9hG4bKlocal")
        attemptResponse(attempt, response)
    }

    public func stack(_ stack: SIPStack, transaction: TransactionKey, didFail failure: TransactionFailure) {
        if transaction.method == .message {
            messageLinkResult(transaction, failed: true)
            return
        }
        guard let attempt = attemptsByKey[transaction], transaction.method == .invite else { return }
        attemptFailed(attempt, code: failure == .transportError ? 503 : 408)
    }

    public func stack(_ stack: SIPStack, didTerminate transaction: TransactionKey) {
        if let call = calls.removeValue(forKey: transaction) {
            call.cancelGuard?.cancel()
            for a in call.attempts where a.final { forgetLinkAttempt(a) }
            // A caller on a treatment is answered but still waits: it stays queued.
            if onTreatment[call.reference] === call, !call.routing.isOver { return }
            route(call, .end)
            return
        }
        if transaction.method == .message {
            messageLinkResult(transaction, failed: false)
            return
        }
        if let attempt = attemptsByKey.removeValue(forKey: transaction) {
            attempt.noAnswerTimer?.cancel()
            if !attempt.final { attemptFailed(attempt, code: 408) }
        }
    }

    func forgetLinkAttempt(_ attempt: Attempt) {
        guard let branch = attempt.branch else { return }
        attemptsByBranch[branch] = nil
        attempt.linkGuard?.cancel()
    }
}
