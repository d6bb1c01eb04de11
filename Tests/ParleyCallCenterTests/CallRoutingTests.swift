import Testing

import ParleyRecords
@testable import ParleyCallCenter

/// Where a distributor call is on its way to an agent (`CallRouting`), with no sockets, on a
/// virtual clock: one offer at a time, the queue with its max wait and max length, the queue's
/// treatment beside it, the overflow treatment, and the ends.
@Suite struct CallRoutingTests {
    /// A call that arrived at 0 with 60 s max wait, at most 2 waiting, music on hold.
    func routing(maxLength: Int? = 2, treatment: String? = "moh", configured: Bool = true) -> CallRouting {
        CallRouting(deadlineMs: 60_000, maxLength: maxLength, queueTreatment: treatment, treatmentConfigured: configured)
    }

    @Test func anOfferRefusedRoutesAgain() {
        var r = routing()
        #expect(r.handle(.next) == [.choose])
        #expect(r.handle(.offered(attempt: 0)) == [])
        #expect(r.phase == .offering(attempt: 0) && r.offerOut == 0)
        #expect(r.handle(.next) == [])  // one offer at a time
        #expect(r.handle(.offerEnded(attempt: 0)) == [.routeAgain])
        #expect(r.phase == .routing)
        #expect(r.handle(.offerEnded(attempt: 0)) == [])  // its late refusal, after a no-answer
    }

    /// An offer given up on (no answer) is replaced; the old one ending later changes nothing.
    @Test func anOfferGivenUpOnDoesNotRouteTwice() {
        var r = routing()
        _ = r.handle(.offered(attempt: 0))
        #expect(r.handle(.offerEnded(attempt: 0)) == [.routeAgain])
        _ = r.handle(.offered(attempt: 1))
        #expect(r.handle(.offerEnded(attempt: 0)) == [])
        #expect(r.phase == .offering(attempt: 1))
    }

    @Test func waitingJoinsOnceArmsMaxWaitAndConnectsTheTreatment() {
        var r = routing()
        #expect(r.handle(.wait(nowMs: 1_000, waitingOfType: 0, callerOpen: true))
            == [.joinQueue, .armMaxWait(atMs: 60_000), .connectTreatment("moh")])
        #expect(r.isWaiting && r.counted)
        #expect(r.handle(.wait(nowMs: 1_100, waitingOfType: 1, callerOpen: true)) == [])  // already waiting
        _ = r.handle(.treatmentOffered(attempt: 0, name: "moh"))
        #expect(r.treatmentPending)
        #expect(r.handle(.next) == [])  // an agent came free: it waits until the treatment answers
        #expect(r.handle(.treatmentAnswered(attempt: 0)) == [.keepOnTreatment, .leaveQueue, .routeAgain])
        #expect(r.onTreatment == "moh" && r.phase == .routing)
        // No agent yet: back in the queue, on the treatment, the timer armed once.
        #expect(r.handle(.next) == [.choose])
        #expect(r.handle(.wait(nowMs: 2_000, waitingOfType: 0, callerOpen: false)) == [.joinQueue])
        // An agent: the offer takes it out of the queue.
        #expect(r.handle(.next) == [.leaveQueue, .choose])
        #expect(r.handle(.offered(attempt: 1)) == [])
        #expect(r.handle(.connected(attempt: 1)) == [.stopMaxWait, .forget])
        #expect(r.isOver && r.onTreatment == nil)
        #expect(r.handle(.end) == [])
    }

    @Test func routingWhileTheTreatmentConnectsQueuesIt() {
        var r = routing()
        _ = r.handle(.wait(nowMs: 0, waitingOfType: 0, callerOpen: true))
        _ = r.handle(.treatmentOffered(attempt: 0, name: "moh"))
        #expect(r.handle(.next) == [])
        // The treatment fails: the caller waits without it, routed again now.
        #expect(r.handle(.treatmentFailed(attempt: 0)) == [.leaveQueue, .routeAgain])
        #expect(r.treatment == .failed)
        #expect(r.handle(.next) == [.choose])
        // No second try at the treatment.
        #expect(r.handle(.wait(nowMs: 10, waitingOfType: 0, callerOpen: true)) == [.joinQueue])
    }

    @Test func anUnconfiguredTreatmentIsReportedOnce() {
        var r = routing(configured: false)
        #expect(r.handle(.wait(nowMs: 0, waitingOfType: 0, callerOpen: true))
            == [.joinQueue, .armMaxWait(atMs: 60_000), .treatmentMissing("moh")])
        #expect(r.treatment == .failed)
    }

    @Test func noTreatmentForAnAnsweredCaller() {
        var r = routing()
        #expect(r.handle(.wait(nowMs: 0, waitingOfType: 0, callerOpen: false)) == [.joinQueue, .armMaxWait(atMs: 60_000)])
    }

    @Test func maxLengthOverflowsOnlyOnFirstWait() {
        var r = routing()
        #expect(r.handle(.wait(nowMs: 0, waitingOfType: 2, callerOpen: true)) == [.overflow(full: true)])
        var s = routing(treatment: nil)
        _ = s.handle(.wait(nowMs: 0, waitingOfType: 1, callerOpen: true))
        _ = s.handle(.next)
        // Counted once: a queue that filled up meanwhile does not turn it away.
        #expect(s.handle(.wait(nowMs: 10, waitingOfType: 5, callerOpen: true)) == [.joinQueue])
    }

    @Test func maxWait() {
        var r = routing(treatment: nil)
        #expect(r.handle(.wait(nowMs: 60_000, waitingOfType: 0, callerOpen: true)) == [.overflow(full: false)])
        _ = r.handle(.wait(nowMs: 0, waitingOfType: 0, callerOpen: true))
        #expect(r.handle(.maxWait) == [.overflow(full: false)])
        _ = r.handle(.next)
        _ = r.handle(.offered(attempt: 0))
        #expect(r.handle(.maxWait) == [])  // an offer is out: it gets its no-answer time
    }

    /// Overflow of a caller on the queue's treatment: a move to the overflow treatment. Its
    /// failure gives the call up.
    @Test func overflowFromTheTreatmentMovesAndItsFailureGivesUp() {
        var r = routing()
        _ = r.handle(.wait(nowMs: 0, waitingOfType: 0, callerOpen: true))
        _ = r.handle(.treatmentOffered(attempt: 0, name: "moh"))
        _ = r.handle(.treatmentAnswered(attempt: 0))
        _ = r.handle(.next)
        _ = r.handle(.wait(nowMs: 1, waitingOfType: 0, callerOpen: false))
        #expect(r.handle(.overflow(to: "voicemail")) == [.leaveQueue, .stopMaxWait, .forget, .connectOverflow("voicemail", move: true)])
        #expect(!r.isOpen && !r.isOver)
        #expect(r.handle(.next) == [])
        _ = r.handle(.treatmentOffered(attempt: 1, name: "voicemail"))
        #expect(r.phase == .overflowing("voicemail", attempt: 1))
        #expect(r.handle(.treatmentFailed(attempt: 1)) == [.giveUp])
        #expect(r.handle(.end) == [.forget])  // what giving up feeds
        #expect(r.handle(.end) == [])
        #expect(r.isOver)
    }

    @Test func overflowToTheTreatmentItIsOnEndsIt() {
        var r = routing()
        _ = r.handle(.wait(nowMs: 0, waitingOfType: 0, callerOpen: true))
        _ = r.handle(.treatmentOffered(attempt: 0, name: "moh"))
        _ = r.handle(.treatmentAnswered(attempt: 0))
        #expect(r.handle(.overflow(to: "moh")) == [.stopMaxWait, .forget])
        #expect(r.isOver && r.onTreatment == "moh")
    }

    /// Overflow while the queue's treatment is still connecting: that one is taken back, and
    /// its 487 does not give the overflowing call up.
    @Test func overflowWhileTheTreatmentConnects() {
        var r = routing()
        _ = r.handle(.wait(nowMs: 0, waitingOfType: 0, callerOpen: true))
        _ = r.handle(.treatmentOffered(attempt: 0, name: "moh"))
        #expect(r.handle(.overflow(to: "voicemail"))
            == [.leaveQueue, .takeBack(attempt: 0), .stopMaxWait, .forget, .connectOverflow("voicemail", move: false)])
        _ = r.handle(.treatmentOffered(attempt: 1, name: "voicemail"))
        #expect(r.handle(.treatmentFailed(attempt: 0)) == [])
        #expect(r.handle(.treatmentAnswered(attempt: 1)) == [])
        #expect(r.onTreatment == "voicemail")
    }

    /// A late answer from an agent given up on, while the treatment connects: the treatment is
    /// taken back, and its 487 changes nothing (before, it hung the connected call up).
    @Test func aLateAnswerWhileTheTreatmentConnects() {
        var r = routing()
        _ = r.handle(.offered(attempt: 0))
        _ = r.handle(.offerEnded(attempt: 0))  // no answer in time
        _ = r.handle(.wait(nowMs: 0, waitingOfType: 0, callerOpen: true))
        _ = r.handle(.treatmentOffered(attempt: 1, name: "moh"))
        #expect(r.handle(.connected(attempt: 0)) == [.leaveQueue, .takeBack(attempt: 1), .stopMaxWait, .forget])
        #expect(r.handle(.treatmentFailed(attempt: 1)) == [])
        #expect(r.isOver)
    }

    /// A second agent answering (a late answer) while another is offered: that offer goes back.
    @Test func aLateAnswerTakesBackTheOfferOut() {
        var r = routing()
        _ = r.handle(.offered(attempt: 0))
        _ = r.handle(.offerEnded(attempt: 0))
        _ = r.handle(.offered(attempt: 1))
        #expect(r.handle(.connected(attempt: 0)) == [.takeBack(attempt: 1), .forget])
    }

    /// The end (a CANCEL, a final answer, the caller hanging up on its treatment) takes back
    /// what is out; a connecting treatment stays pending until its answer comes back.
    @Test func theEndTakesEverythingBack() {
        var r = routing()
        _ = r.handle(.wait(nowMs: 0, waitingOfType: 0, callerOpen: true))
        _ = r.handle(.treatmentOffered(attempt: 0, name: "moh"))
        #expect(r.handle(.end) == [.leaveQueue, .takeBack(attempt: 0), .stopMaxWait, .forget])
        #expect(r.treatmentPending && r.isOver)
        #expect(r.handle(.next) == [] && r.handle(.maxWait) == [])
        // Its answer crossed the CANCEL: the caller is on it, but the distributor lets it go.
        #expect(r.handle(.treatmentAnswered(attempt: 0)) == [.forget])
        #expect(!r.treatmentPending)
        var s = routing()
        _ = s.handle(.offered(attempt: 0))
        #expect(s.handle(.end) == [.takeBack(attempt: 0), .forget])
        #expect(s.handle(.offerEnded(attempt: 0)) == [])
        #expect(s.handle(.offered(attempt: 1)) == [])
        #expect(s.offerOut == nil)
    }

    /// A transfer: the caller is answered and hears the agent who asked; counted already.
    @Test func aTransferStartsAnsweredOnTheAgent() {
        var r = CallRouting(deadlineMs: 60_000, maxLength: 0, queueTreatment: "moh", treatmentConfigured: true, answeredOn: "a1")
        #expect(r.onTreatment == "a1" && r.counted)
        #expect(r.handle(.next) == [.choose])
        #expect(r.handle(.wait(nowMs: 0, waitingOfType: 3, callerOpen: false)) == [.joinQueue, .armMaxWait(atMs: 60_000)])
        _ = r.handle(.next)
        _ = r.handle(.offered(attempt: 0))
        #expect(r.handle(.connected(attempt: 0)) == [.stopMaxWait, .forget])
        #expect(r.onTreatment == nil)
    }

    @Test func anOfferWhileWaitingLeavesTheQueue() {
        var r = routing(treatment: nil)
        _ = r.handle(.wait(nowMs: 0, waitingOfType: 0, callerOpen: true))
        #expect(r.handle(.offered(attempt: 0)) == [.leaveQueue])
        #expect(r.handle(.treatmentFailed(attempt: 9)) == [] && r.handle(.treatmentAnswered(attempt: 9)) == [])
    }
}

/// A call's decision trace keeps at most `traceLimit` hook calls however long it waits, and says
/// how many it left out.
@Suite struct TraceLimitTests {
    @Test func theTraceStopsGrowingAndSaysSo() {
        var trace: [TraceEntry] = []
        var omitted = 0
        var built = 0
        func entry(_ i: Int) -> TraceEntry {
            built += 1
            return TraceEntry(hook: "select_agent", atMs: Int64(i), tookUs: 1, result: .agent(nil))
        }
        for i in 0..<(Distributor.traceLimit + 3) { Distributor.keep(&trace, omitted: &omitted, entry(i)) }
        #expect(trace.count == Distributor.traceLimit && omitted == 3)
        #expect(built == Distributor.traceLimit)  // entries past the limit are not even built
        #expect(trace.last?.notes == ["3 later hook calls not traced (at most \(Distributor.traceLimit) per call)"])
    }
}
