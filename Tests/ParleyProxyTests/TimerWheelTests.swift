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
