// INVITE server transaction: RFC 3261 section 17.2.1 with RFC 6026 section 7.1.

import ParleySIP
import Testing
@testable import ParleyTransaction

@Suite("INVITE server transaction")
struct InviteServerTransactionTests {
    static let invite = Msg.invite(extra: ["Timestamp: 54", "Subject: lunch"])

    func make(_ transport: TransportReliability = .unreliable, timers: SIPTimers = SIPTimers()) -> Driven<InviteServerTransaction> {
        var d = Driven(InviteServerTransaction(request: Self.invite, transport: transport, timers: timers))
        d.start()
        return d
    }

    func makeCompleted(_ transport: TransportReliability = .unreliable) -> Driven<InviteServerTransaction> {
        var d = make(transport)
        d.handle(.tuResponse(Msg.response(486, to: Self.invite)))
        return d
    }

    @Test("RFC 3261 17.2.1: the INVITE goes to the TU and 100 Trying follows 200 ms later if the TU is silent")
    func tryingAfterDelay() throws {
        var d = make()
        #expect(d.machine.state == .proceeding)
        #expect(d.passedToTU == [Self.invite])
        d.advance(to: 199)
        #expect(d.sent.isEmpty)
        d.advance(to: 200)
        let trying = try #require(d.sent.first?.message)
        #expect(d.sendTimes == [200])
        #expect(trying.statusCode == 100)
        // 8.2.6: Via (all), From, To, Call-ID, CSeq, Timestamp copied; nothing else but Content-Length.
        #expect(try trying.vias() == Self.invite.vias())
        #expect(try trying.vias().count == 2)
        #expect(try trying.from() == Self.invite.from())
        #expect(try trying.to() == Self.invite.to())
        #expect(trying.callID == Self.invite.callID)
        #expect(try trying.cseq() == Self.invite.cseq())
        #expect(trying.headers[HeaderName(.timestamp)] == "54")
        #expect(trying.headers[HeaderName(.contact)] == nil)
        #expect(trying.headers[HeaderName(.subject)] == nil)
        #expect(d.machine.lastProvisional == trying)
    }

    @Test("RFC 3261 17.2.1: no 100 Trying when the TU sends a provisional within 200 ms")
    func noTryingWhenTUAnswers() {
        var d = make()
        d.advance(to: 150)
        let ringing = Msg.response(180, to: Self.invite)
        let actions = d.handle(.tuResponse(ringing))
        #expect(actions.sentMessages == [ringing])
        #expect(actions.contains { if case .cancelTimer(let t) = $0 { t.kind == .trying } else { false } })
        d.advance(to: 10_000)
        #expect(d.sent.map(\.message) == [ringing])
    }

    @Test("RFC 3261 17.2.1: with a Trying delay of zero 100 Trying goes out at once")
    func tryingImmediately() {
        var timers = SIPTimers()
        timers.tryingDelay = .zero
        var t = InviteServerTransaction(request: Self.invite, transport: .unreliable, timers: timers)
        let actions = t.start(now: .zero)
        #expect(actions.passedToTU == [Self.invite])
        #expect(actions.sentMessages.map(\.statusCode) == [100])
        #expect(actions.startedTimers.isEmpty)
    }

    @Test("RFC 3261 17.2.1: an INVITE retransmission in Proceeding re-sends the last provisional")
    func proceedingResendsProvisional() {
        var d = make()
        // Before any provisional: the retransmission gets 100 Trying at once.
        d.advance(to: 100)
        let early = d.handle(.received(Self.invite))
        #expect(early.sentMessages.map(\.statusCode) == [100])
        #expect(early.passedToTU.isEmpty)
        d.advance(to: 1000)
        #expect(d.sent.count == 1)  // the Trying timer was cancelled
        let ringing = Msg.response(180, to: Self.invite)
        d.handle(.tuResponse(ringing))
        let again = d.handle(.received(Self.invite))
        #expect(again == [.send(ringing, retransmission: true)])
        #expect(d.machine.state == .proceeding)
    }

    @Test("RFC 3261 17.2.1: a non-2xx final moves to Completed; Timer G retransmits it, doubling to T2, until Timer H")
    func timerGUntilH() {
        var d = make()
        d.advance(to: 1000)
        let busy = Msg.response(486, to: Self.invite)
        let actions = d.handle(.tuResponse(busy))
        #expect(actions.startedTimers == [.g, .h])
        #expect(d.machine.state == .completed)
        d.advance(to: 40_000)
        let finals = d.sent.filter { $0.message == busy }
        // Sent at 1 s, then after 0.5, 1, 2, 4, 4, 4 ... s; H at 1 + 32 s.
        #expect(finals.map(\.at) == [1000, 1500, 2500, 4500, 8500, 12_500, 16_500, 20_500, 24_500, 28_500, 32_500])
        #expect(finals.map(\.retransmission) == [false] + Array(repeating: true, count: 10))
        #expect(d.reports.map(\.action) == [.timeout(.h)])
        #expect(d.reports.map(\.at) == [33_000])
        #expect(d.terminatedAt == 33_000)
        #expect(d.scheduled.isEmpty)
    }

    @Test("RFC 3261 17.2.1: no Timer G over a reliable transport; Timer H still reports the missing ACK")
    func reliableNoTimerG() {
        var d = makeCompleted(.reliable)
        d.advance(to: 40_000)
        #expect(d.sent.filter { $0.message.statusCode == 486 }.count == 1)
        #expect(d.reports.map(\.action) == [.timeout(.h)])
    }

    @Test("RFC 3261 17.2.1: an INVITE retransmission in Completed re-sends the final response")
    func completedResendsFinal() {
        var d = makeCompleted()
        let again = d.handle(.received(Self.invite))
        #expect(again == [.send(d.machine.finalResponse!, retransmission: true)])
        #expect(again.passedToTU.isEmpty)
    }

    @Test("RFC 3261 17.2.1: the ACK moves Completed to Confirmed, absorbed; Timer I then ends it")
    func ackToConfirmedTimerI() {
        var d = makeCompleted()
        d.advance(to: 700)
        let ack = Msg.ack(for: Self.invite, response: d.machine.finalResponse!)
        let actions = d.handle(.received(ack))
        #expect(d.machine.state == .confirmed)
        #expect(actions.passedToTU.isEmpty)
        #expect(actions.startedTimers == [.i])
        let sentBefore = d.sent.count
        // Confirmed absorbs ACK and INVITE retransmissions; G and H no longer act.
        #expect(d.handle(.received(ack)).isEmpty)
        #expect(d.handle(.received(Self.invite)).isEmpty)
        d.advance(to: 700 + 4_999)
        #expect(d.machine.state == .confirmed)
        d.advance(by: 1)
        #expect(d.terminatedAt == 5_700)
        #expect(d.sent.count == sentBefore)
        #expect(d.reports.isEmpty)
    }

    @Test("RFC 3261 17.2.1: Timer I is zero over a reliable transport")
    func reliableTimerIZero() {
        var d = makeCompleted(.reliable)
        let ack = Msg.ack(for: Self.invite, response: d.machine.finalResponse!)
        let actions = d.handle(.received(ack))
        #expect(actions.last == .terminated)
        #expect(!actions.startedTimers.contains(.i))
    }

    @Test("RFC 6026 7.1: a 2xx from the TU moves to Accepted with Timer L and is never retransmitted by the transaction")
    func twoHundredToAccepted() {
        var d = make()
        d.advance(to: 100)
        let ok = Msg.response(200, to: Self.invite)
        let actions = d.handle(.tuResponse(ok))
        #expect(actions.sentMessages == [ok])
        #expect(actions.startedTimers == [.l])
        #expect(d.machine.state == .accepted)
        d.advance(to: 100 + 31_999)
        #expect(d.sent.map(\.message) == [ok])
        #expect(d.machine.state == .accepted)
        d.advance(by: 1)
        #expect(d.terminatedAt == 32_100)
        #expect(d.reports.isEmpty)
    }

    @Test("Accepted keeps a compacted INVITE and 2xx for Timer L's 32 s: matching headers only, no body")
    func acceptedKeepsCompactedMessages() {
        var d = make()
        #expect(d.machine.request.headers[HeaderName(.subject)] == "lunch")
        var ok = Msg.response(200, to: Self.invite)
        ok.headers.append(HeaderName(.contentType), "application/sdp")
        ok.body = Array("v=0\r\n".utf8)
        d.handle(.tuResponse(ok))
        #expect(d.machine.request == Self.invite.compacted())
        #expect(d.machine.request.headers[HeaderName(.subject)] == nil)
        #expect(d.machine.finalResponse == ok.compacted())
        #expect(d.machine.finalResponse?.body.isEmpty == true)
        // Still matched and answered as before: the INVITE retransmission absorbed, the ACK up.
        #expect(d.handle(.received(Self.invite)).isEmpty)
        let ack = Msg.ack(for: Self.invite, response: ok)
        #expect(d.handle(.received(ack)) == [.passToTU(ack)])
    }

    @Test("Completed keeps the final response whole (it is sent again) and a compacted INVITE")
    func completedKeepsWholeResponse() {
        var d = make()
        let busy = Msg.response(486, to: Self.invite)
        d.handle(.tuResponse(busy))
        #expect(d.machine.request == Self.invite.compacted())
        d.advance(to: 500)
        #expect(d.sent.last?.message == busy)
        #expect(d.sent.last?.retransmission == true)
    }

    @Test("RFC 6026 7.1: in Accepted INVITE retransmissions are absorbed, ACKs go to the TU, the TU's 2xx are sent")
    func acceptedBehaviour() {
        var d = make()
        let ok = Msg.response(200, to: Self.invite)
        d.handle(.tuResponse(ok))
        d.advance(to: 500)
        #expect(d.handle(.received(Self.invite)).isEmpty)
        #expect(d.handle(.tuResponse(ok)) == [.send(ok, retransmission: true)])
        let ok2 = Msg.response(200, to: Self.invite, toTag: "other")
        #expect(d.handle(.tuResponse(ok2)) == [.send(ok2, retransmission: false)])
        var ack = Msg.ack(for: Self.invite, response: ok)
        ack.headers.set(HeaderName(.via), "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnewack")
        #expect(d.handle(.received(ack)) == [.passToTU(ack)])
        // A non-2xx from the TU after the 2xx is dropped.
        #expect(d.handle(.tuResponse(Msg.response(500, to: Self.invite))).isEmpty)
        #expect(d.machine.state == .accepted)
    }

    @Test("RFC 6026 figure 5: a transport error informs the TU and leaves the state as it was")
    func transportErrorKeepsState() {
        var p = make()
        #expect(p.handle(.transportError) == [.transportError])
        #expect(p.machine.state == .proceeding)
        var c = makeCompleted()
        #expect(c.handle(.transportError) == [.transportError])
        #expect(c.machine.state == .completed)
        c.advance(to: 40_000)
        #expect(c.reports.map(\.action) == [.transportError, .timeout(.h)])
        var a = make()
        a.handle(.tuResponse(Msg.response(200, to: Self.invite)))
        #expect(a.handle(.transportError) == [.transportError])
        #expect(a.machine.state == .accepted)
    }

    @Test("RFC 3261 17.2.1: a stale Timer G after the ACK is ignored")
    func staleTimerG() throws {
        var d = makeCompleted()
        let g = try #require(d.armed(.g))
        let h = try #require(d.armed(.h))
        d.handle(.received(Msg.ack(for: Self.invite, response: d.machine.finalResponse!)))
        #expect(d.machine.handle(.timerFired(g), now: SIPInstant(milliseconds: 500)).isEmpty)
        #expect(d.machine.handle(.timerFired(h), now: SIPInstant(milliseconds: 32_000)).isEmpty)
        #expect(d.machine.state == .confirmed)
    }

    @Test("RFC 3261 17.2.1: responses from the TU after the final one are dropped")
    func lateTUResponsesDropped() {
        var d = makeCompleted()
        #expect(d.handle(.tuResponse(Msg.response(180, to: Self.invite))).isEmpty)
        #expect(d.handle(.tuResponse(Msg.response(200, to: Self.invite))).isEmpty)
        #expect(d.machine.state == .completed)
    }
}
