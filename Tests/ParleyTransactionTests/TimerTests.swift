// Timer values: RFC 3261 Table 4 (appendix A) and RFC 6026 section 8.11; the virtual instant.

import ParleySIP
import Testing
@testable import ParleyTransaction

@Suite("Timers")
struct TimerTests {
    @Test("RFC 3261 Table 4 and RFC 6026: the defaults derive from T1 500 ms, T2 4 s, T4 5 s")
    func defaults() {
        let t = SIPTimers()
        #expect(t.t1 == .milliseconds(500) && t.t2 == .seconds(4) && t.t4 == .seconds(5))
        #expect(t.timerA == .milliseconds(500) && t.timerE == .milliseconds(500) && t.timerG == .milliseconds(500))
        for d in [t.timerB, t.timerF, t.timerH, t.timerJ, t.timerL, t.timerM] { #expect(d == .seconds(32)) }
        #expect(t.timerC > .seconds(180))
        #expect(t.timerD == .seconds(32))
        #expect(t.timerI == .seconds(5) && t.timerK == .seconds(5))
        #expect(t.tryingDelay == .milliseconds(200))
    }

    @Test("RFC 3261 Table 4: changing T1 moves every timer derived from it; overrides win and can be removed")
    func derivationAndOverrides() {
        var t = SIPTimers(t1: .milliseconds(250))
        #expect(t.timerA == .milliseconds(250))
        #expect(t.timerB == .seconds(16))
        #expect(t.timerL == .seconds(16))
        t.timerB = .seconds(10)
        t.t1 = .milliseconds(100)
        #expect(t.timerB == .seconds(10))
        #expect(t.timerF == .milliseconds(6400))
        t.removeOverride(.b)
        #expect(t.timerB == .milliseconds(6400))
        t[.d] = .seconds(40)
        #expect(t.timerD == .seconds(40))
    }

    @Test("RFC 3261 17.1.1.2, 17.1.2.2, 17.2.1, 17.2.2: D, I, J and K are zero over a reliable transport")
    func reliableZeroes() {
        let t = SIPTimers()
        for k in [TimerKind.d, .i, .j, .k] {
            #expect(t.value(k, on: .reliable) == .zero)
            #expect(t.value(k, on: .unreliable) == t[k])
        }
        for k in [TimerKind.a, .b, .e, .f, .g, .h, .l, .m] { #expect(t.value(k, on: .reliable) == t[k]) }
    }

    @Test("RFC 3261 17.1.1.2: a machine uses the timers it was given (T1 100 ms)")
    func machineUsesInjectedTimers() {
        var d = Driven(InviteClientTransaction(request: Msg.invite(), transport: .unreliable, timers: SIPTimers(t1: .milliseconds(100))))
        d.start()
        d.advance(to: 10_000)
        #expect(d.sendTimes == [0, 100, 300, 700, 1500, 3100, 6300])
        #expect(d.terminatedAt == 6400)
    }

    @Test("Injected clock: instants add durations rounded up to the millisecond")
    func instantArithmetic() {
        let t = SIPInstant(milliseconds: 1000)
        #expect(t + .milliseconds(500) == SIPInstant(milliseconds: 1500))
        #expect(t + .microseconds(1) == SIPInstant(milliseconds: 1001))
        #expect(t + .seconds(2) - t == .seconds(2))
        #expect(SIPInstant.zero < t)
    }
}
