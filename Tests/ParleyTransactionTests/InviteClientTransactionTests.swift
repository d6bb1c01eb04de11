// INVITE client transaction: RFC 3261 section 17.1.1 with RFC 6026 section 7.2.

import ParleySIP
import Testing
@testable import ParleyTransaction

@Suite("INVITE client transaction")
struct InviteClientTransactionTests {
    func make(_ transport: TransportReliability = .unreliable, request: SIPMessage = Msg.invite()) -> Driven<InviteClientTransaction> {
        var d = Driven(InviteClientTransaction(request: request, transport: transport))
        d.start()
        return d
    }

    @Test("RFC 3261 17.1.1.2: Timer A doubles until Timer B reports a timeout")
    func timerADoublesUntilB() {
        var d = make()
        #expect(d.machine.state == .calling)
        d.advance(to: 40_000)
        // 0, then T1, 2T1, 4T1, ... after each send: 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s; B at 64*T1.
        #expect(d.sendTimes == [0, 500, 1500, 3500, 7500, 15500, 31500])
        #expect(d.sent.map(\.retransmission) == [false, true, true, true, true, true, true])
        #expect(d.sent.allSatisfy { $0.message == Msg.invite() })
        #expect(d.reports.map(\.at) == [32_000])
        #expect(d.reports.first?.action == .timeout(.b))
        #expect(d.terminatedAt == 32_000)
        #expect(d.machine.state == .terminated)
        #expect(d.scheduled.isEmpty)
    }

    @Test("A TU that gives the INVITE up stops its retransmissions; a late provisional still reaches it until Timer B")
    func givenUpStopsRetransmitting() {
        var d = make()
        d.advance(to: 1_000)
        #expect(d.handle(.tuGiveUp).isEmpty == false)  // Timer A cancelled
        d.advance(to: 4_000)
        #expect(d.sendTimes == [0, 500])  // nothing after the TU gave up (1.5 s and 3.5 s before)
        let late = Msg.response(180, to: Msg.invite())
        #expect(d.handle(.received(late)).passedToTU == [late])
        #expect(d.machine.canCancel)
        // given up with no answer at all: Timer B still ends it
        var silent = make()
        silent.advance(to: 600)
        _ = silent.handle(.tuGiveUp)
        silent.advance(to: 40_000)
        #expect(silent.sendTimes == [0, 500])
        #expect(silent.reports.first?.action == .timeout(.b))
        #expect(silent.terminatedAt == 32_000)
    }

    @Test("RFC 3261 17.1.1.2: no retransmissions over a reliable transport; Timer B still fires")
    func reliableNoTimerA() {
        var d = make(.reliable)
        d.advance(to: 40_000)
        #expect(d.sendTimes == [0])
        #expect(d.reports.first?.action == .timeout(.b))
        #expect(d.terminatedAt == 32_000)
    }

    @Test("RFC 3261 17.1.1.2: a provisional moves Calling to Proceeding, stops retransmissions and Timer B")
    func provisionalToProceeding() {
        var d = make()
        d.advance(to: 700)
        let ringing = Msg.response(180, to: Msg.invite())
        let actions = d.handle(.received(ringing))
        #expect(d.machine.state == .proceeding)
        #expect(actions.passedToTU == [ringing])
        #expect(d.machine.canCancel)
        d.advance(to: 100_000)
        #expect(d.sendTimes == [0, 500])
        #expect(d.reports.isEmpty)
        #expect(d.machine.state == .proceeding)
        // More provisionals are passed up too.
        let progress = Msg.response(183, to: Msg.invite())
        #expect(d.handle(.received(progress)).passedToTU == [progress])
    }

    @Test("RFC 6026 7.2: a 2xx in Calling moves to Accepted and starts Timer M, with no ACK")
    func twoHundredToAccepted() {
        var d = make()
        let ok = Msg.response(200, to: Msg.invite())
        let actions = d.handle(.received(ok))
        #expect(d.machine.state == .accepted)
        #expect(actions.passedToTU == [ok])
        #expect(actions.sentMessages.isEmpty)
        #expect(actions.startedTimers == [.m])
        #expect(d.armed(.a) == nil && d.armed(.b) == nil)
    }

    @Test("Accepted keeps a compacted INVITE for Timer M's 32 s; Completed one too, and its ACK whole")
    func finishedStatesKeepCompactedInvite() {
        var invite = Msg.invite(extra: ["Subject: lunch", "Content-Type: application/sdp"])
        invite.body = Array("v=0\r\n".utf8)
        var d = make(request: invite)
        #expect(d.machine.request == invite)
        d.handle(.received(Msg.response(200, to: invite)))
        #expect(d.machine.request == invite.compacted())
        #expect(d.machine.request.body.isEmpty)
        var f = make(request: invite)
        let busy = Msg.response(486, to: invite)
        f.handle(.received(busy))
        #expect(f.machine.request == invite.compacted())
        #expect(f.machine.ack == invite.makeACK(for: busy))
        #expect(f.handle(.received(busy)) == [.send(invite.makeACK(for: busy), retransmission: true)])
    }

    @Test("RFC 6026 7.2: in Accepted further 2xx (retransmitted or forked) go to the TU until Timer M")
    func acceptedPassesFurther2xx() {
        var d = make()
        d.handle(.received(Msg.response(180, to: Msg.invite())))
        d.advance(to: 1000)
        d.handle(.received(Msg.response(200, to: Msg.invite(), toTag: "a")))
        #expect(d.machine.state == .accepted)
        d.advance(to: 2000)
        let again = Msg.response(200, to: Msg.invite(), toTag: "a")
        let fork = Msg.response(200, to: Msg.invite(), toTag: "b")
        #expect(d.handle(.received(again)).passedToTU == [again])
        #expect(d.handle(.received(fork)).passedToTU == [fork])
        // Non-2xx in Accepted is discarded.
        #expect(d.handle(.received(Msg.response(486, to: Msg.invite()))).isEmpty)
        #expect(d.handle(.received(Msg.response(180, to: Msg.invite()))).isEmpty)
        d.advance(to: 1000 + 31_999)
        #expect(d.machine.state == .accepted)
        d.advance(by: 1)
        #expect(d.terminatedAt == 33_000)
        #expect(d.sent.count == 1)
        #expect(d.reports.isEmpty)
    }

    @Test("RFC 3261 17.1.1.3: a non-2xx final response is ACKed by the transaction")
    func ackForNonSuccess() throws {
        let invite = Msg.invite(extra: ["Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>", "Route: <sip:p3.example.com;lr>"])
        var d = make(request: invite)
        let busy = Msg.response(486, to: invite, toTag: "busy1")
        let actions = d.handle(.received(busy))
        #expect(d.machine.state == .completed)
        #expect(actions.passedToTU == [busy])
        let ack = try #require(actions.sentMessages.first)
        #expect(ack.method == .ack)
        #expect(ack.requestURI == invite.requestURI)
        #expect(ack.callID == invite.callID)
        #expect(try ack.from() == invite.from())
        #expect(try ack.to()?.tag == "busy1")
        #expect(try ack.cseq() == CSeq(314159, .ack))
        let vias = try ack.vias()
        #expect(vias.count == 1)
        #expect(vias.first == (try invite.topVia()))
        #expect(try ack.routes() == invite.routes())
        #expect(try ack.routes().count == 3)
        #expect(ack.body.isEmpty)
        #expect(try ack.maxForwards() == 70)
        #expect(d.machine.ack == ack)
    }

    @Test("RFC 3261 17.1.1.2: a retransmitted final response is ACKed again, not passed up; Timer D ends Completed")
    func completedReAcksUntilTimerD() {
        var d = make()
        d.advance(to: 600)
        d.handle(.received(Msg.response(183, to: Msg.invite())))
        let busy = Msg.response(486, to: Msg.invite())
        d.handle(.received(busy))
        #expect(d.machine.state == .completed)
        d.advance(to: 1_000)
        let again = d.handle(.received(busy))
        #expect(again.passedToTU.isEmpty)
        #expect(again == [.send(d.machine.ack!, retransmission: true)])
        // Provisional and 2xx responses in Completed are discarded.
        #expect(d.handle(.received(Msg.response(200, to: Msg.invite()))).isEmpty)
        d.advance(to: 600 + 31_999)
        #expect(d.machine.state == .completed)
        d.advance(by: 1)
        #expect(d.terminatedAt == 32_600)
        #expect(d.reports.isEmpty)
        #expect(d.passedToTU.count == 2)
    }

    @Test("RFC 3261 17.1.1.2: Timer D is zero over a reliable transport")
    func reliableTimerDZero() {
        var d = make(.reliable)
        let busy = Msg.response(603, to: Msg.invite())
        let actions = d.handle(.received(busy))
        #expect(actions.passedToTU == [busy])
        #expect(actions.sentMessages.map(\.method) == [.ack])
        #expect(actions.last == .terminated)
        #expect(!actions.startedTimers.contains(.d))
        #expect(d.machine.state == .terminated)
    }

    @Test("RFC 3261 17.1.4: a transport error in Calling informs the TU and terminates")
    func transportErrorInCalling() {
        var d = make()
        let actions = d.handle(.transportError)
        #expect(actions.contains(.transportError))
        #expect(actions.last == .terminated)
        #expect(d.scheduled.isEmpty)
        #expect(d.handle(.received(Msg.response(200, to: Msg.invite()))).isEmpty)
    }

    @Test("RFC 3261 17.1.4: a transport error sending the ACK in Completed informs the TU and terminates")
    func transportErrorInCompleted() {
        var d = make()
        d.handle(.received(Msg.response(404, to: Msg.invite())))
        let actions = d.handle(.transportError)
        #expect(actions.contains(.transportError))
        #expect(d.machine.state == .terminated)
    }

    @Test("RFC 6026 7.2: Accepted sends nothing, so a transport error there changes nothing")
    func transportErrorInAcceptedIgnored() {
        var d = make()
        d.handle(.received(Msg.response(200, to: Msg.invite())))
        #expect(d.handle(.transportError).isEmpty)
        #expect(d.machine.state == .accepted)
    }

    @Test("RFC 3261 17.1.1.2: a stale Timer A (cancelled by a provisional) is ignored")
    func staleTimerIgnored() throws {
        var d = make()
        let firstA = try #require(d.armed(.a))
        let firstB = try #require(d.armed(.b))
        d.handle(.received(Msg.response(100, to: Msg.invite())))
        // A driver that could not cancel in time still delivers them: nothing happens.
        #expect(d.machine.handle(.timerFired(firstA), now: SIPInstant(milliseconds: 500)).isEmpty)
        #expect(d.machine.handle(.timerFired(firstB), now: SIPInstant(milliseconds: 32_000)).isEmpty)
        #expect(d.machine.state == .proceeding)
        // A timer of the right kind but an older generation is stale too.
        var e = make()
        let a1 = try #require(e.armed(.a))
        e.advance(to: 500)
        #expect(e.armed(.a) != a1)
        #expect(e.machine.handle(.timerFired(a1), now: e.now).isEmpty)
        #expect(e.sendTimes == [0, 500])
    }

    @Test("RFC 3261 17.1.1.2: events before start and after Terminated do nothing")
    func eventsOutsideLifetime() {
        var fresh = InviteClientTransaction(request: Msg.invite(), transport: .unreliable)
        #expect(fresh.handle(.received(Msg.response(200, to: Msg.invite())), now: .zero).isEmpty)
        #expect(fresh.start(now: .zero).count == 3)
        #expect(fresh.start(now: .zero).isEmpty)
        var d = make()
        d.advance(to: 40_000)
        #expect(d.handle(.received(Msg.response(486, to: Msg.invite()))).isEmpty)
        #expect(d.handle(.transportError).isEmpty)
    }

    @Test("RFC 3261 17.1.1.2: start sends the INVITE and arms A (T1) and B (64*T1)")
    func startActions() {
        var t = InviteClientTransaction(request: Msg.invite(), transport: .unreliable)
        let actions = t.start(now: SIPInstant(milliseconds: 1000))
        #expect(actions == [
            .send(Msg.invite(), retransmission: false),
            .startTimer(TransactionTimer(.a, generation: 1), after: .milliseconds(500)),
            .startTimer(TransactionTimer(.b, generation: 2), after: .seconds(32)),
        ])
        #expect(t.nextDeadline == SIPInstant(milliseconds: 1500))
        #expect(Set(t.armedTimers.map(\.deadline)) == [SIPInstant(milliseconds: 1500), SIPInstant(milliseconds: 33_000)])
    }
}
