import Testing

@testable import ParleyCallCenter

/// The life of a back-to-back call (`CallLife`) with no sockets, on a virtual clock: every state
/// and transition, what each decides.
@Suite struct CallLifeTests {
    static let t0: Int64 = 1_000_000

    /// Set up, answered, ACKed, talking: the caller hangs up, the agent is hung up, the
    /// distributor told, and the entry goes once the agent's BYE transaction ends.
    @Test func answeredCallHungUpByTheCaller() {
        var l = CallLife(ackTimeoutMs: 32_000)
        #expect(l.state == .settingUp && !l.callerFinal)
        #expect(l.handle(.agentAnswered(nowMs: Self.t0, unwanted: false)) == [.answerCaller(ackDeadlineMs: Self.t0 + 32_000)])
        #expect(l.state == .answered(ackDeadlineMs: Self.t0 + 32_000))
        #expect(l.handle(.tick(nowMs: Self.t0 + 1_000)) == [])  // not yet
        #expect(l.handle(.callerAcked) == [.ackAgent])
        #expect(l.state == .talking && l.callerAcked)
        #expect(l.handle(.callerAcked) == [])  // a retransmitted ACK
        #expect(l.handle(.bye(from: .caller)) == [.bye(.agent), .reportEnded])
        #expect(l.state == .ending && l.hungUp)
        #expect(l.handle(.bye(from: .caller)) == [])  // its BYE again: nothing twice
        #expect(l.handle(.byeFinished) == [.remove])
        #expect(l.state == .over)
    }

    @Test func theAgentHangsUp() {
        var l = talking()
        #expect(l.handle(.bye(from: .agent)) == [.bye(.caller), .reportEnded])
        #expect(l.handle(.byeFinished) == [.remove])
    }

    /// No ACK by the deadline: both legs hung up.
    @Test func noAckFromTheCaller() {
        var l = CallLife(ackTimeoutMs: 32_000)
        _ = l.handle(.agentAnswered(nowMs: Self.t0, unwanted: false))
        #expect(l.handle(.tick(nowMs: Self.t0 + 32_000)) == [.bye(.caller), .bye(.agent), .reportEnded])
        #expect(l.handle(.callerAcked) == [])  // too late
        #expect(l.handle(.byeFinished) == [])
        #expect(l.handle(.byeFinished) == [.remove])
    }

    /// The agent refuses: the caller gets the agent's failure; the entry goes at once.
    @Test func theAgentRefuses() {
        var l = CallLife(ackTimeoutMs: 32_000)
        #expect(l.handle(.agentFailed(code: nil)) == [.failCaller(code: nil), .remove])
        #expect(l.state == .over && !l.hungUp)
    }

    /// Its INVITE cannot be sent or times out: Parley's own status.
    @Test func theAgentLegTimesOut() {
        var l = CallLife(ackTimeoutMs: 32_000)
        #expect(l.handle(.agentFailed(code: 408)) == [.failCaller(code: 408), .remove])
    }

    /// The caller cancels: 487 at once, the agent cancelled; the entry waits for the agent
    /// INVITE's end (its 487).
    @Test func theCallerCancels() {
        var l = CallLife(ackTimeoutMs: 32_000)
        #expect(l.handle(.callerCancelled) == [.failCaller(code: 487), .cancelAgent])
        #expect(l.state == .failed)
        #expect(l.handle(.callerCancelled) == [])
        #expect(l.handle(.agentFailed(code: nil)) == [.remove])
    }

    /// The CANCEL crosses the agent's 2xx: the caller has its 487; the agent's dialog exists and
    /// is ACKed and hung up; the distributor is not told of a call that never was.
    @Test func aCancelCrossingTheAgentsTwoHundred() {
        var l = CallLife(ackTimeoutMs: 32_000)
        _ = l.handle(.callerCancelled)
        #expect(l.handle(.agentAnswered(nowMs: Self.t0, unwanted: true)) == [.ackAgent, .bye(.agent)])
        #expect(l.state == .ending && !l.callerAnswered)
        #expect(l.handle(.byeFinished) == [.remove])
    }

    /// A BYE in an early dialog: from the caller, a CANCEL; from the agent, a refusal (480).
    @Test func byesBeforeTheAnswer() {
        var c = CallLife(ackTimeoutMs: 32_000)
        #expect(c.handle(.bye(from: .caller)) == [.failCaller(code: 487), .cancelAgent])
        #expect(c.handle(.agentFailed(code: nil)) == [.remove])
        var a = CallLife(ackTimeoutMs: 32_000)
        #expect(a.handle(.bye(from: .agent)) == [.failCaller(code: 480), .remove])
    }

    /// A leg found gone (its probe failed): the other is hung up, nobody BYEs the gone one.
    @Test func aLegFoundGone() {
        var l = talking()
        #expect(l.handle(.legGone(.caller)) == [.bye(.agent), .reportEnded])
        #expect(!l.owesBye(.caller))
        #expect(l.handle(.legGone(.agent)) == [])
        #expect(l.handle(.byeFinished) == [.remove])
    }

    /// Parley ends the call (the distributor gave the caller on hold up).
    @Test func endedHere() {
        var l = talking()
        #expect(l.handle(.endHere) == [.bye(.caller), .bye(.agent), .reportEnded])
        #expect(l.handle(.byeFinished) == [])
        #expect(l.handle(.byeFinished) == [.remove])
    }

    /// A move (off a treatment, or a transfer) that connects: the old party's BYE counted until
    /// it ends, the new party in the agent leg's place; the call goes on.
    @Test func aMoveThatConnects() {
        var l = talking()
        #expect(l.handle(.moveStarted) == [])
        #expect(l.handle(.byeOut) == [])  // the old party's BYE
        #expect(l.handle(.agentReplaced) == [])
        #expect(l.handle(.moveEnded) == [])
        #expect(l.state == .talking && l.owesBye(.agent))
        #expect(l.handle(.byeFinished) == [])
        #expect(l.handle(.bye(from: .caller)) == [.bye(.agent), .reportEnded])
        #expect(l.handle(.byeFinished) == [.remove])
    }

    /// The caller hangs up during a move: the move is taken back; the entry stays until the
    /// move has ended (its new party answered late is hung up too).
    @Test func aByeDuringAMove() {
        var l = talking()
        _ = l.handle(.moveStarted)
        #expect(l.handle(.bye(from: .caller)) == [.cancelMove, .bye(.agent), .reportEnded])
        #expect(l.handle(.byeFinished) == [])  // the old party's BYE ended: the move is still out
        #expect(l.state == .ending)
        #expect(l.handle(.byeOut) == [])  // the new party answered late: BYE to it too
        #expect(l.handle(.moveEnded) == [])
        #expect(l.handle(.byeFinished) == [.remove])
    }

    /// The agent leg fails during a move (its probe finds it gone): the caller is hung up, the
    /// move cancelled, the entry kept until the move ends.
    @Test func theAgentLegFailsDuringAMove() {
        var l = talking()
        _ = l.handle(.moveStarted)
        #expect(l.handle(.legGone(.agent)) == [.cancelMove, .bye(.caller), .reportEnded])
        #expect(l.handle(.byeFinished) == [])
        #expect(l.handle(.moveEnded) == [.remove])
    }

    /// A blind transfer whose agent hung up after asking: nothing to BYE on its leg; a
    /// transfer that then fails ends the call with a BYE to the caller alone.
    @Test func aTransferWhoseAgentLeft() {
        var l = talking()
        _ = l.handle(.agentLeftForTransfer)
        #expect(!l.owesBye(.agent))
        #expect(l.handle(.endHere) == [.bye(.caller), .reportEnded])
        #expect(l.handle(.byeFinished) == [.remove])
    }

    func talking() -> CallLife {
        var l = CallLife(ackTimeoutMs: 32_000)
        _ = l.handle(.agentAnswered(nowMs: Self.t0, unwanted: false))
        _ = l.handle(.callerAcked)
        return l
    }
}
