import Testing

@testable import ParleyCallCenter

/// What a distributor call's caller is told (`CallerAnswer`), with no sockets, on a virtual
/// clock: 182 once, a CANCEL's 487 once the offer is back (or at the guard), one final answer.
@Suite struct CallerAnswerTests {
    @Test func queuedIsAnnouncedOnce() {
        var a = CallerAnswer()
        #expect(a.handle(.queued) == [.announceQueued])
        #expect(a.handle(.queued) == [])
        #expect(a.announced && a.state == .unanswered)
    }

    /// A CANCEL with no offer out: 487 at once.
    @Test func cancelWithNothingOut() {
        var a = CallerAnswer()
        #expect(a.handle(.cancel(nowMs: 1_000)) == [.takeBackOffers, .answerFailure(code: 487)])
        #expect(a.state == .refused(code: 487) && a.cancelled && a.isFinal)
        #expect(a.handle(.cancel(nowMs: 1_100)) == [])
        #expect(a.handle(.queued) == [])  // no 182 after the final
    }

    /// A CANCEL while an agent rings: the offer is taken back, the 487 waits for it to come
    /// back (the buffer server's 487), once.
    @Test func cancelWaitsForTheOfferToComeBack() {
        var a = CallerAnswer()
        _ = a.handle(.offerOut)
        #expect(a.handle(.cancel(nowMs: 1_000)) == [.takeBackOffers, .armCancelGuard(atMs: 5_000)])
        #expect(a.state == .cancelling(deadlineMs: 5_000) && !a.isFinal)
        #expect(a.handle(.tick(nowMs: 2_000)) == [])
        #expect(a.handle(.offerEnded(treatmentPending: false)) == [.answerFailure(code: 487)])
        #expect(a.handle(.tick(nowMs: 5_000)) == [])  // the guard fires for nothing
    }

    /// The offer never comes back: the guard answers 487.
    @Test func theGuardAnswersIfTheOfferDoesNotComeBack() {
        var a = CallerAnswer()
        _ = a.handle(.offerOut)
        _ = a.handle(.cancel(nowMs: 0))
        #expect(a.handle(.tick(nowMs: CallerAnswer.cancelGuardMs)) == [.answerFailure(code: 487)])
        #expect(a.handle(.offerEnded(treatmentPending: false)) == [])
    }

    /// A treatment still being connected keeps the 487 waiting after the offer is back.
    @Test func aPendingTreatmentKeepsTheCancelWaiting() {
        var a = CallerAnswer()
        _ = a.handle(.offerOut)
        _ = a.handle(.cancel(nowMs: 0))
        #expect(a.handle(.offerEnded(treatmentPending: true)) == [])
        #expect(a.handle(.refuse(code: 487)) == [.answerFailure(code: 487)])
    }

    /// The agent's 2xx crosses the CANCEL: the call connects; no 487 follows.
    @Test func anAnswerCrossingTheCancelConnects() {
        var a = CallerAnswer()
        _ = a.handle(.offerOut)
        _ = a.handle(.cancel(nowMs: 0))
        #expect(a.handle(.answered) == [])
        #expect(a.state == .answered && a.cancelled)
        #expect(a.handle(.offerEnded(treatmentPending: false)) == [])
        #expect(a.handle(.tick(nowMs: 10_000)) == [])
        #expect(a.handle(.refuse(code: 480)) == [])
    }

    /// No agent: the queue's status, once; a transfer starts answered and is never refused here.
    @Test func refusedOnceAndTransfersStartAnswered() {
        var a = CallerAnswer()
        #expect(a.handle(.refuse(code: 486)) == [.answerFailure(code: 486)])
        #expect(a.handle(.refuse(code: 480)) == [])
        #expect(a.handle(.answered) == [])
        var t = CallerAnswer(answered: true)
        #expect(t.isFinal && t.handle(.refuse(code: 486)) == [] && t.handle(.queued) == [])
    }
}
