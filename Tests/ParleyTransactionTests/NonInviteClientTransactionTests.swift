// Non-INVITE client transaction: RFC 3261 section 17.1.2.

import ParleySIP
import Testing
@testable import ParleyTransaction

@Suite("Non-INVITE client transaction")
struct NonInviteClientTransactionTests {
    func make(_ transport: TransportReliability = .unreliable) -> Driven<NonInviteClientTransaction> {
        var d = Driven(NonInviteClientTransaction(request: Msg.options(), transport: transport))
        d.start()
        return d
    }

    @Test("RFC 3261 17.1.2.2: Timer E doubles up to T2 until Timer F reports a timeout")
    func timerEDoublesCappedAtT2() {
        var d = make()
        #expect(d.machine.state == .trying)
        d.advance(to: 40_000)
        // Intervals 0.5, 1, 2, 4, 4, 4, ... s.
        #expect(d.sendTimes == [0, 500, 1500, 3500, 7500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500])
        #expect(d.reports.map(\.action) == [.timeout(.f)])
        #expect(d.reports.map(\.at) == [32_000])
        #expect(d.terminatedAt == 32_000)
        #expect(d.scheduled.isEmpty)
    }

    @Test("RFC 3261 17.1.2.2: no retransmissions over a reliable transport; Timer F still fires")
    func reliableNoTimerE() {
        var d = make(.reliable)
        d.advance(to: 40_000)
        #expect(d.sendTimes == [0])
        #expect(d.reports.map(\.action) == [.timeout(.f)])
    }

    @Test("RFC 3261 17.1.2.2: a provisional moves Trying to Proceeding, where Timer E retransmits every T2")
    func proceedingRetransmitsAtT2() {
        var d = make()
        d.advance(to: 600)
        let trying = Msg.response(100, to: Msg.options())
        #expect(d.handle(.received(trying)).passedToTU == [trying])
        #expect(d.machine.state == .proceeding)
        d.advance(to: 20_000)
        // E armed at 500 for 1 s fires at 1500 in Proceeding; then every T2.
        #expect(d.sendTimes == [0, 500, 1500, 5500, 9500, 13_500, 17_500])
        let more = Msg.response(180, to: Msg.options())
        #expect(d.handle(.received(more)).passedToTU == [more])
        d.advance(to: 40_000)
        #expect(d.reports.map(\.action) == [.timeout(.f)])
        #expect(d.terminatedAt == 32_000)
    }

    @Test("RFC 3261 17.1.2.2: a final response moves to Completed; Timer K absorbs retransmissions, then ends it")
    func finalToCompletedTimerK() {
        var d = make()
        d.advance(to: 700)
        let ok = Msg.response(200, to: Msg.options())
        let actions = d.handle(.received(ok))
        #expect(actions.passedToTU == [ok])
        #expect(actions.startedTimers == [.k])
        #expect(d.machine.state == .completed)
        d.advance(to: 1000)
        #expect(d.handle(.received(ok)).isEmpty)
        #expect(d.handle(.received(Msg.response(180, to: Msg.options()))).isEmpty)
        d.advance(to: 700 + 4_999)
        #expect(d.machine.state == .completed)
        d.advance(by: 1)
        #expect(d.terminatedAt == 5_700)
        #expect(d.sendTimes == [0, 500])
        #expect(d.reports.isEmpty)
    }

    @Test("RFC 3261 17.1.2.2: a final response from Proceeding also completes the transaction")
    func finalFromProceeding() {
        var d = make()
        d.handle(.received(Msg.response(100, to: Msg.options())))
        let notFound = Msg.response(404, to: Msg.options())
        #expect(d.handle(.received(notFound)).passedToTU == [notFound])
        #expect(d.machine.state == .completed)
    }

    @Test("RFC 3261 17.1.2.2: Timer K is zero over a reliable transport")
    func reliableTimerKZero() {
        var d = make(.reliable)
        let actions = d.handle(.received(Msg.response(200, to: Msg.options())))
        #expect(actions.last == .terminated)
        #expect(!actions.startedTimers.contains(.k))
        #expect(d.machine.state == .terminated)
    }

    @Test("RFC 3261 17.1.4: a transport error informs the TU and terminates")
    func transportError() {
        var d = make()
        d.advance(to: 500)
        let actions = d.handle(.transportError)
        #expect(actions.contains(.transportError))
        #expect(actions.last == .terminated)
        #expect(d.scheduled.isEmpty)
    }

    @Test("RFC 3261 17.1.2.2: a stale Timer E after the final response is ignored")
    func staleTimerE() throws {
        var d = make()
        let e = try #require(d.armed(.e))
        d.handle(.received(Msg.response(200, to: Msg.options())))
        #expect(d.machine.handle(.timerFired(e), now: SIPInstant(milliseconds: 500)).isEmpty)
        #expect(d.machine.state == .completed)
    }
}
