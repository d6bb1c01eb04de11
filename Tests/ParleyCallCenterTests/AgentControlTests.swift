import ParleyRules
import Testing

@testable import ParleyCallCenter

/// An operator's requests on an agent (break with a reason, log off, available), on a virtual
/// clock: at once between calls, pending while ringing or busy, the call never cut.
@Suite struct AgentControlTests {
    func agent(wrapUp: Int64 = 10_000, maxNoAnswer: Int = 3) -> AgentStateMachine {
        AgentStateMachine(id: "bob", skills: ["sales"], contact: nil,
                          timers: AgentTimers(wrapUpMs: wrapUp, maxNoAnswer: maxNoAnswer, breakMs: 60_000), now: 0)
    }

    @Test func aBreakBetweenCallsIsAtOnceAndEndsWhenMadeAvailable() {
        var a = agent()
        do { let r = a.pause(reason: "lunch", now: 1_000); #expect(r == .changed) }
        #expect(a.adminState == "break" && a.reason == "lunch" && a.sinceMs == 1_000)
        #expect(a.ruleState == .offline)
        do { let r = a.offer(call: "c1", now: 1_100); #expect(!r) }
        #expect(a.nextDeadline == nil)  // an operator's break has no end of its own
        do { let r = a.pause(reason: "lunch", now: 1_200); #expect(r == .unchanged) }
        do { let r = a.pause(reason: "training", now: 1_300); #expect(r == .changed) }
        #expect(a.reason == "training" && a.sinceMs == 1_000)  // still on break since 1 000
        do { let r = a.makeAvailable(now: 5_000); #expect(r == .changed) }
        #expect(a.isAvailable && a.reason == nil && a.sinceMs == 5_000 && a.idleSinceMs == 5_000)
        do { let r = a.makeAvailable(now: 6_000); #expect(r == .unchanged) }
    }

    @Test func aBusyAgentKeepsItsCallAndGoesOnBreakAfterIt() {
        var a = agent()
        a.offer(call: "c1", now: 0)
        a.answered(call: "c1", now: 1_000)
        do { let r = a.pause(reason: "lunch", now: 2_000); #expect(r == .pending) }
        #expect(a.adminState == "busy" && a.currentCall == "c1" && a.pending == .pause(reason: "lunch"))
        do { let r = a.pause(reason: "lunch", now: 2_100); #expect(r == .unchanged) }
        do { let r = a.callEnded(call: "c1", now: 30_000); #expect(r) }
        // Straight to the break, no wrap-up; the call counted.
        #expect(a.adminState == "break" && a.reason == "lunch" && a.pending == nil && a.sinceMs == 30_000)
        #expect(a.callsHandled == 1 && a.talkMs == 29_000)
    }

    @Test func aRingingAgentIsNotOfferedAgainAfterItsOfferEnds() {
        var a = agent()
        a.offer(call: "c1", now: 0)
        do { let r = a.logOff(reason: "shift over", now: 100); #expect(r == .pending) }
        do { let r = a.noAnswer(call: "c1", now: 15_000); #expect(r) }
        #expect(a.adminState == "offline" && a.reason == "shift over")
        #expect(a.noAnswers == 1)
        var b = agent()
        b.offer(call: "c1", now: 0)
        _ = b.pause(reason: nil, now: 100)
        do { let r = b.rejected(call: "c1", now: 200); #expect(r) }
        #expect(b.adminState == "break" && b.reason == nil)
        // Answered: the change waits for the call's end.
        var c = agent()
        c.offer(call: "c1", now: 0)
        _ = c.pause(reason: "x", now: 100)
        c.answered(call: "c1", now: 200)
        #expect(c.adminState == "busy" && c.pending == .pause(reason: "x"))
    }

    @Test func availableCancelsAPendingChange() {
        var a = agent()
        a.offer(call: "c1", now: 0)
        a.answered(call: "c1", now: 0)
        _ = a.logOff(reason: nil, now: 1)
        do { let r = a.makeAvailable(now: 2); #expect(r == .changed) }
        #expect(a.pending == nil && a.adminState == "busy")
        do { let r = a.makeAvailable(now: 3); #expect(r == .unchanged) }
        a.callEnded(call: "c1", now: 4)
        #expect(a.adminState == "wrapup")
    }

    @Test func logOffAndLogIn() {
        var a = agent()
        do { let r = a.logOff(reason: nil, now: 10); #expect(r == .changed) }
        #expect(a.adminState == "offline" && a.sinceMs == 10)
        do { let r = a.logOff(reason: nil, now: 11); #expect(r == .unchanged) }
        do { let r = a.pause(reason: "lunch", now: 12); #expect(r == .notAllowed("bob is logged off; log it in first")) }
        do { let r = a.makeAvailable(now: 20); #expect(r == .changed) }
        #expect(a.isAvailable && a.sinceMs == 20)
    }

    /// Wrap-up and a no-answer break end early when made available; the missed-call count
    /// starts again.
    @Test func availableEndsWrapUpAndANoAnswerBreak() {
        var a = agent(maxNoAnswer: 1)
        a.offer(call: "c1", now: 0)
        a.noAnswer(call: "c1", now: 15_000)
        #expect(a.adminState == "break" && a.reason == "no_answer" && a.nextDeadline == 75_000)
        do { let r = a.makeAvailable(now: 20_000); #expect(r == .changed) }
        #expect(a.isAvailable && a.consecutiveNoAnswers == 0)
        a.offer(call: "c2", now: 21_000)
        a.answered(call: "c2", now: 22_000)
        a.callEnded(call: "c2", now: 23_000)
        #expect(a.adminState == "wrapup")
        do { let r = a.pause(reason: "coffee", now: 24_000); #expect(r == .changed) }
        #expect(a.adminState == "break" && a.nextDeadline == nil)
    }
}

/// Which changes of an agent's state are queue-log lines, and what is kept for the next start.
@Suite struct AgentLogEntryTests {
    func agent() -> AgentStateMachine {
        AgentStateMachine(id: "bob", skills: [], contact: nil, timers: AgentTimers(wrapUpMs: 0, maxNoAnswer: 1, breakMs: 60_000), now: 0)
    }

    @Test func eachChangeAndItsLine() {
        var a = agent()
        var before = a
        func line() -> (String, String?, String?)? {
            defer { before = a }
            return Distributor.logEntry(before, a, at: 5).map { ($0.event.rawValue, $0.reason, $0.presence?.rawValue) }
        }
        _ = a.pause(reason: "lunch", now: 1)
        #expect(line()! == ("PAUSE", "lunch", "break"))
        _ = a.pause(reason: "training", now: 2)
        #expect(line()! == ("PAUSE", "training", "break"))
        _ = a.makeAvailable(now: 3)
        #expect(line()! == ("UNPAUSE", nil, "available"))
        a.offer(call: "c1", now: 4)
        #expect(line() == nil)  // ringing is no line of its own
        a.noAnswer(call: "c1", now: 5)
        #expect(line()! == ("PAUSE", "no_answer", nil))  // a break after missed calls: not kept
        _ = a.logOff(reason: "home", now: 6)
        #expect(line()! == ("LOGOFF", "home", "offline"))
        _ = a.makeAvailable(now: 7)
        #expect(line()! == ("LOGIN", nil, "available"))
    }
}
