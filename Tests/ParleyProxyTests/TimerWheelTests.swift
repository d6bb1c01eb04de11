import ParleySIP
import ParleyTransaction
@testable import ParleyTransport
import Testing

@Suite("Timer wheel (virtual clock)")
struct TimerWheelTests {
    func key(_ n: Int) -> TransactionKey {
        TransactionKey.client(sending: try! ParleySIPTestMessages.invite(branch: "z9hG4bK\(n)"))!
    }

    @Test("timers fire at or after their deadline, in deadline order, never early")
    func ordering() {
        var w = TimerWheel(now: SIPInstant(milliseconds: 1000))
        let t = { (g: UInt64) in TransactionTimer(.a, generation: g) }
        w.add(.transaction(key(1), t(1)), after: .milliseconds(500), now: SIPInstant(milliseconds: 1000))
        w.add(.transaction(key(2), t(2)), after: .milliseconds(30), now: SIPInstant(milliseconds: 1000))
        w.add(.transaction(key(3), t(3)), after: .seconds(32), now: SIPInstant(milliseconds: 1000))
        #expect(w.count == 3)
        #expect(w.due(now: SIPInstant(milliseconds: 1025)).isEmpty)
        #expect(gens(w.due(now: SIPInstant(milliseconds: 1030))) == [2])
        #expect(w.due(now: SIPInstant(milliseconds: 1499)).isEmpty)
        #expect(gens(w.due(now: SIPInstant(milliseconds: 1500))) == [1])
        #expect(w.count == 1)
        // A long gap (the loop stalled) still fires what is due, and only that.
        #expect(gens(w.due(now: SIPInstant(milliseconds: 40_000))) == [3])
        #expect(w.count == 0)
    }

    @Test("timers beyond the ring's reach wait in the far map and fire in order with the ring's, also after a long gap")
    func farTimers() {
        let t = { (g: UInt64) in TransactionTimer(.a, generation: g) }
        let spanMs = TimerWheel.span * 10
        var w = TimerWheel(now: SIPInstant(milliseconds: 0))
        w.add(.transaction(key(1), t(1)), after: .milliseconds(spanMs + 500), now: SIPInstant(milliseconds: 0))  // far
        w.add(.transaction(key(2), t(2)), after: .milliseconds(spanMs - 10), now: SIPInstant(milliseconds: 0))  // last ring bucket
        w.add(.transaction(key(3), t(3)), after: .milliseconds(3 * spanMs), now: SIPInstant(milliseconds: 0))  // far
        #expect(w.count == 3)
        // Step by step past the ring's first turn: the ring's timer, then the far one, each at its tick.
        #expect(w.due(now: SIPInstant(milliseconds: spanMs - 20)).isEmpty)
        #expect(gens(w.due(now: SIPInstant(milliseconds: spanMs - 10))) == [2])
        #expect(w.due(now: SIPInstant(milliseconds: spanMs + 490)).isEmpty)
        #expect(gens(w.due(now: SIPInstant(milliseconds: spanMs + 500))) == [1])
        // Ring and far timers added at different times, then one gap longer than the ring.
        w.add(.transaction(key(4), t(4)), after: .milliseconds(spanMs + 100), now: SIPInstant(milliseconds: spanMs + 500))  // far
        w.add(.transaction(key(5), t(5)), after: .milliseconds(40), now: SIPInstant(milliseconds: spanMs + 500))  // ring
        w.add(.transaction(key(6), t(6)), after: .milliseconds(2 * spanMs), now: SIPInstant(milliseconds: spanMs + 500))  // far
        #expect(gens(w.due(now: SIPInstant(milliseconds: 10 * spanMs))) == [5, 4, 3, 6])
        #expect(w.count == 0)
    }

    @Test("a busy bucket keeps every entry, in the order added; the ring is reused turn after turn")
    func busyBuckets() {
        var w = TimerWheel(now: SIPInstant(milliseconds: 0))
        var now: Int64 = 0
        for turn in 0..<3 {
            for g in 0..<500 {
                w.add(.transaction(key(g), TransactionTimer(.e, generation: UInt64(turn * 1000 + g))), after: .milliseconds(30),
                      now: SIPInstant(milliseconds: now))
            }
            now += TimerWheel.span * 10 / 2 + 7
            #expect(gens(w.due(now: SIPInstant(milliseconds: now))) == (0..<500).map { UInt64(turn * 1000 + $0) })
        }
        #expect(w.count == 0)
    }

    @Test("a timer set for zero or a past time fires at the next tick, not in a bucket already passed")
    func zeroDelay() {
        var w = TimerWheel(now: SIPInstant(milliseconds: 0))
        _ = w.due(now: SIPInstant(milliseconds: 100))
        w.add(.transaction(key(1), TransactionTimer(.k, generation: 9)), after: .zero, now: SIPInstant(milliseconds: 95))
        #expect(gens(w.due(now: SIPInstant(milliseconds: 110))) == [9])
    }

    @Test("a cancelled closure timer does not run")
    func cancelledClosure() {
        var w = TimerWheel(now: SIPInstant(milliseconds: 0))
        let token = TimerToken()
        nonisolated(unsafe) var ran = false
        w.add(.closure(token, { ran = true }), after: .milliseconds(20), now: SIPInstant(milliseconds: 0))
        token.cancel()
        for e in w.due(now: SIPInstant(milliseconds: 50)) {
            if case .closure(let tok, let body) = e, !tok.cancelled { body() }
        }
        #expect(!ran)
    }

    func gens(_ entries: [TimerWheel.Entry]) -> [UInt64] {
        entries.compactMap { if case .transaction(_, let t) = $0 { t.generation } else { nil } }
    }
}

enum ParleySIPTestMessages {
    static func invite(branch: String) throws -> ParleySIP.SIPMessage {
        try ParleySIP.SIPParser.parse("INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=\(branch)\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
    }
}
