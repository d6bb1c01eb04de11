import ParleyRules
import Testing

@testable import ParleyCallCenter

/// The agent life cycle on a virtual clock: every event takes `now`, nothing reads a clock.
@Suite struct AgentStateMachineTests {
    func agent(wrapUp: Int64 = 10_000, maxNoAnswer: Int = 3, breakMs: Int64 = 60_000, stale: Int64 = 15_000) -> AgentStateMachine {
        AgentStateMachine(id: "alice", skills: ["sales"], contact: "sip:alice@192.0.2.1",
                          timers: AgentTimers(wrapUpMs: wrapUp, maxNoAnswer: maxNoAnswer, breakMs: breakMs, staleMs: stale), now: 0)
    }

    @Test func answeredCallGoesBusyThenWrapUpThenAvailable() {
        var a = agent()
        do { let r = a.offer(call: "c1", now: 1_000); #expect(r) }
        #expect(a.ruleState == .ringing)
        do { let r = a.answered(call: "c1", now: 3_000); #expect(r) }
        #expect(a.ruleState == .busy)
        do { let r = a.callEnded(call: "c1", now: 63_000); #expect(r) }
        #expect(a.ruleState == .wrapup)
        #expect(a.callsHandled == 1)
        #expect(a.talkMs == 60_000)
        #expect(a.nextDeadline == 73_000)
        do { let r = a.tick(now: 72_999); #expect(!r) }
        do { let r = a.tick(now: 73_000); #expect(r) }
        #expect(a.ruleState == .available)
        #expect(a.info.idleMs(at: 75_000) == 2_000)
    }

    @Test func noWrapUpMeansAvailableAtOnce() {
        var a = agent(wrapUp: 0)
        a.offer(call: "c1", now: 0)
        a.answered(call: "c1", now: 0)
        a.callEnded(call: "c1", now: 5_000)
        #expect(a.state == .available)
        #expect(a.nextDeadline == nil)
    }

    @Test func noAnswersInARowPutTheAgentOnBreak() {
        var a = agent(maxNoAnswer: 2, breakMs: 30_000)
        a.offer(call: "c1", now: 0)
        do { let r = a.noAnswer(call: "c1", now: 15_000); #expect(r) }
        #expect(a.state == .available)
        #expect(a.consecutiveNoAnswers == 1)
        a.offer(call: "c2", now: 16_000)
        a.noAnswer(call: "c2", now: 31_000)
        #expect(a.state == .offline(.onBreak(untilMs: 61_000)))
        #expect(a.ruleState == .offline)
        do { let r = a.offer(call: "c3", now: 40_000); #expect(!r) }
        a.tick(now: 61_000)
        #expect(a.state == .available)
        #expect(a.consecutiveNoAnswers == 0)
    }

    @Test func anAnswerResetsTheNoAnswerCount() {
        var a = agent(maxNoAnswer: 2)
        a.offer(call: "c1", now: 0)
        a.noAnswer(call: "c1", now: 1)
        a.offer(call: "c2", now: 2)
        a.answered(call: "c2", now: 3)
        #expect(a.consecutiveNoAnswers == 0)
    }

    @Test func aRefusalFreesTheAgentWithoutCountingANoAnswer() {
        var a = agent(maxNoAnswer: 1)
        a.offer(call: "c1", now: 0)
        do { let r = a.rejected(call: "c1", now: 100); #expect(r) }
        #expect(a.state == .available)
        #expect(a.consecutiveNoAnswers == 0)
    }

    @Test func reportsForAnotherCallChangeNothing() {
        var a = agent()
        a.offer(call: "c1", now: 0)
        do { let r = a.answered(call: "c0", now: 1); #expect(!r) }
        do { let r = a.callEnded(call: "c1", now: 1); #expect(!r) }
        do { let r = a.noAnswer(call: "c9", now: 1); #expect(!r) }
        #expect(a.state == .ringing(call: "c1", sinceMs: 0))
        a.answered(call: "c1", now: 2)
        do { let r = a.offer(call: "c2", now: 3); #expect(!r) }
        do { let r = a.callEnded(call: "c2", now: 4); #expect(!r) }
        #expect(a.currentCall == "c1")
    }

    @Test func aLateAnswerMakesAnAvailableAgentBusy() {
        var a = agent()
        a.offer(call: "c1", now: 0)
        a.noAnswer(call: "c1", now: 15_000)
        do { let r = a.answeredLate(call: "c1", now: 15_010); #expect(r) }
        #expect(a.state == .busy(call: "c1", sinceMs: 15_010))
        var b = agent()
        b.offer(call: "c2", now: 0)
        do { let r = b.answeredLate(call: "c1", now: 1); #expect(!r) }
    }

    @Test func reconcileEndsABusyCallTheBufferServerNoLongerHasAfterStaleTime() {
        var a = agent(wrapUp: 0, stale: 15_000)
        a.offer(call: "c1", now: 0)
        a.answered(call: "c1", now: 1_000)
        do { let r = a.reconcile(liveCalls: ["c1"], pendingOffers: [], now: 10_000); #expect(!r) }
        // A lost "ended" event: the call is gone from the heartbeat, but not yet for long.
        do { let r = a.reconcile(liveCalls: [], pendingOffers: [], now: 20_000); #expect(!r) }
        do { let r = a.reconcile(liveCalls: [], pendingOffers: [], now: 25_000); #expect(r) }
        #expect(a.state == .available)
        #expect(a.callsHandled == 1)
    }

    @Test func reconcileReleasesARingingAgentNobodyWaitsOn() {
        var a = agent(stale: 5_000)
        a.offer(call: "c1", now: 0)
        do { let r = a.reconcile(liveCalls: [], pendingOffers: ["c1"], now: 60_000); #expect(!r) }
        do { let r = a.reconcile(liveCalls: [], pendingOffers: [], now: 4_000); #expect(!r) }
        do { let r = a.reconcile(liveCalls: [], pendingOffers: [], now: 6_000); #expect(r) }
        #expect(a.state == .available)
    }

    @Test func loggedOutAgentsAreOfflineUntilLoggedIn() {
        var a = AgentStateMachine(id: "bob", skills: [], contact: nil, available: false, now: 0)
        #expect(a.ruleState == .offline)
        do { let r = a.offer(call: "c1", now: 1); #expect(!r) }
        a.setAvailable(now: 5)
        #expect(a.isAvailable)
        a.offer(call: "c1", now: 6)
        a.setOffline(now: 7)
        #expect(a.ruleState == .ringing)  // a call in progress is not cut by a log-out
    }

    @Test func theRuleViewFollowsTheState() {
        var a = agent()
        a.offer(call: "c1", now: 0)
        #expect(a.info.state == .ringing)
        #expect(a.info.idleSinceMs == nil)
        #expect(a.info.skills == ["sales"])
    }
}
