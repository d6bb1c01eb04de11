// Non-INVITE server transaction: RFC 3261 section 17.2.2.

import ParleySIP
import Testing
@testable import ParleyTransaction

@Suite("Non-INVITE server transaction")
struct NonInviteServerTransactionTests {
    func make(_ transport: TransportReliability = .unreliable) -> Driven<NonInviteServerTransaction> {
        var d = Driven(NonInviteServerTransaction(request: Msg.options(), transport: transport))
        d.start()
        return d
    }

    @Test("RFC 3261 17.2.2: the request goes to the TU; Trying discards retransmissions")
    func tryingDiscardsRetransmissions() {
        var d = make()
        #expect(d.passedToTU == [Msg.options()])
        #expect(d.machine.state == .trying)
        #expect(d.handle(.received(Msg.options())).isEmpty)
        #expect(d.sent.isEmpty)
        #expect(d.scheduled.isEmpty)
    }

    @Test("RFC 3261 17.2.2: a provisional moves to Proceeding, where retransmissions get it again")
    func proceedingResendsProvisional() {
        var d = make()
        let trying = Msg.response(100, to: Msg.options())
        #expect(d.handle(.tuResponse(trying)) == [.send(trying, retransmission: false)])
        #expect(d.machine.state == .proceeding)
        #expect(d.handle(.received(Msg.options())) == [.send(trying, retransmission: true)])
        let session = Msg.response(183, to: Msg.options())
        d.handle(.tuResponse(session))
        #expect(d.handle(.received(Msg.options())) == [.send(session, retransmission: true)])
    }

    @Test("RFC 3261 17.2.2: a final moves to Completed; retransmissions get it again; Timer J ends it")
    func completedTimerJ() {
        var d = make()
        d.advance(to: 300)
        let ok = Msg.response(200, to: Msg.options())
        let actions = d.handle(.tuResponse(ok))
        #expect(actions.sentMessages == [ok])
        #expect(actions.startedTimers == [.j])
        #expect(d.machine.state == .completed)
        d.advance(to: 10_000)
        #expect(d.handle(.received(Msg.options())) == [.send(ok, retransmission: true)])
        // Further responses from the TU are discarded.
        #expect(d.handle(.tuResponse(Msg.response(500, to: Msg.options()))).isEmpty)
        d.advance(to: 300 + 31_999)
        #expect(d.machine.state == .completed)
        d.advance(by: 1)
        #expect(d.terminatedAt == 32_300)
        #expect(d.reports.isEmpty)
    }

    @Test("RFC 3261 17.2.2: a final from Proceeding completes the transaction too")
    func finalFromProceeding() {
        var d = make()
        d.handle(.tuResponse(Msg.response(100, to: Msg.options())))
        d.handle(.tuResponse(Msg.response(404, to: Msg.options())))
        #expect(d.machine.state == .completed)
        #expect(d.machine.lastResponse?.statusCode == 404)
    }

    @Test("RFC 3261 17.2.2: Timer J is zero over a reliable transport")
    func reliableTimerJZero() {
        var d = make(.reliable)
        let actions = d.handle(.tuResponse(Msg.response(200, to: Msg.options())))
        #expect(actions.sentMessages.count == 1)
        #expect(actions.last == .terminated)
        #expect(!actions.startedTimers.contains(.j))
    }

    @Test("RFC 3261 17.2.4: a transport error informs the TU and terminates")
    func transportError() {
        var d = make()
        d.handle(.tuResponse(Msg.response(100, to: Msg.options())))
        let actions = d.handle(.transportError)
        #expect(actions == [.transportError, .terminated])
        var c = make()
        c.handle(.tuResponse(Msg.response(200, to: Msg.options())))
        let cActions = c.handle(.transportError)
        #expect(cActions.contains(.transportError))
        #expect(cActions.last == .terminated)
        #expect(c.scheduled.isEmpty)
    }

    @Test("RFC 3261 17.2.2: a stale Timer J is ignored")
    func staleTimerJ() {
        var t = NonInviteServerTransaction(request: Msg.options(), transport: .unreliable)
        _ = t.start(now: .zero)
        _ = t.handle(.tuResponse(Msg.response(200, to: Msg.options())), now: .zero)
        #expect(t.handle(.timerFired(TransactionTimer(.j, generation: 99)), now: SIPInstant(milliseconds: 32_000)).isEmpty)
        #expect(t.state == .completed)
    }
}
