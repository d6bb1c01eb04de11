import Logging
import NIOCore
import ParleyRecords
import ParleyRules
import ParleyDialog
import ParleySIP
import ParleyTransaction
import ParleyTransport

extension Distributor {
    /// A response to a treatment handoff (the caller is not answered yet) or a move to a
    /// treatment (overflow of a caller already on one).
    func treatmentResponse(_ attempt: Attempt, call: DistributorCall, code: Int, response: SIPMessage) {
        for action in attempt.invite.received(status: code) {
            switch action {
            case .sendCancel:
                sendCancel(attempt)
            case .provisional:
                break
            case .answered, .ackAgain:
                treatmentAnswered(attempt, call: call, response, first: action != .ackAgain)
            case .failed(let code):
                attempt.noAnswerTimer?.cancel()
                if attempt.abandoned { return }
                treatmentFailed(attempt, call: call, why: "answered \(code)")
            }
        }
    }

    private func treatmentAnswered(_ attempt: Attempt, call: DistributorCall, _ response: SIPMessage, first: Bool) {
        if attempt.kind == .treatmentMove { ackMove(attempt, response) }
        attempt.noAnswerTimer?.cancel()
        // Given up on: the caller is not connected to it (the buffer server, missing the
        // caller's ACK, hangs the treatment up).
        if attempt.abandoned { return }
        if attempt.kind == .treatment {
            answer(call, .answered)
            if let key = call.serverKey { stack.respond(Self.upstream(response), to: key) }  // retransmissions too
        }
        guard first else { return }
        counters.treatments += 1
        record(.treatment(call: call.reference, treatment: attempt.agent, at: clock()))
        logger.debug("call \(call.reference): caller connected to \(attempt.agent)")
        route(call, .treatmentAnswered(attempt: attempt.id))
    }

    func treatmentNoAnswer(_ attempt: Attempt) {
        guard !attempt.final, !attempt.abandoned, let call = attempt.call else { return }
        attempt.abandoned = true
        cancelAttempt(attempt)
        treatmentFailed(attempt, call: call, why: "did not answer")
    }

    /// A treatment that failed or did not answer: a waiting caller goes on waiting without it;
    /// a caller sent to an overflow treatment gets the queue's status instead.
    func treatmentFailed(_ attempt: Attempt, call: DistributorCall, why: String) {
        logger.warning("call \(call.reference): treatment \(attempt.agent) \(why)")
        route(call, .treatmentFailed(attempt: attempt.id), why: "overflow treatment \(attempt.agent) \(why)")
        if call.cancelled, call.answer.offersOut == 0, !call.routing.treatmentPending { answer(call, .refuse(code: 487)) }
    }

    /// The ACK for a 2xx to a move (buffer server hop only).
    func ackMove(_ attempt: Attempt, _ response: SIPMessage) {
        guard let key = attempt.key, let invite = stack.request(of: key) ?? attempt.sentInvite else { return }
        var ack = invite.makeACK(for: response)
        if let contact = response.contactURI { ack.requestURI = contact }
        ack.headers.removeAll(HeaderName(.via))
        ack.headers.prepend(HeaderName(.via), stack.makeVia(for: configuration.bufferDestination, branch: stack.newBranch()))
        stack.sendStateless(ack, to: configuration.bufferDestination)
    }
}
