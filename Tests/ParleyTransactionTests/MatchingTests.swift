// Matching: RFC 3261 sections 17.1.3, 17.2.3 (with the RFC 2543 fallback) and 9.2.

import ParleySIP
import Testing
@testable import ParleyTransaction

@Suite("Transaction matching")
struct MatchingTests {
    /// RFC 4475 section 3.3.15 (badbranch): the branch is exactly the magic cookie.
    static let badBranch = Msg.parse([
        "OPTIONS sip:user@example.com SIP/2.0",
        "To: sip:user@example.com",
        "From: sip:caller@example.org;tag=33242",
        "Max-Forwards: 3",
        "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK",
        "Accept: application/sdp",
        "Call-ID: badbranch.sadonfo23i420jv0as0derf3j3n",
        "CSeq: 8 OPTIONS",
        "l: 0",
    ])

    @Test("RFC 3261 17.1.3: a response matches the client transaction by top Via branch and CSeq method")
    func clientKey() throws {
        let invite = Msg.invite()
        let key = try #require(TransactionKey.client(sending: invite))
        #expect(key.side == .client)
        #expect(key.method == .invite)
        #expect(TransactionKey.client(matching: Msg.response(180, to: invite)) == key)
        #expect(TransactionKey.client(matching: Msg.response(486, to: invite)) == key)
        // The CANCEL for it shares the branch but not the method: another transaction.
        let cancel = invite.makeCancel()
        let cancelKey = try #require(TransactionKey.client(sending: cancel))
        #expect(cancelKey != key)
        #expect(TransactionKey.client(matching: Msg.response(200, to: cancel)) == cancelKey)
        // Another branch is another transaction.
        #expect(TransactionKey.client(matching: Msg.response(200, to: Msg.invite(branch: "z9hG4bKother"))) != key)
        // An ACK never has a client transaction of its own.
        #expect(TransactionKey.client(sending: invite.makeACK(for: Msg.response(486, to: invite))) == nil)
    }

    @Test("A key keeps a branch without its cookie: case folded, a cookie-less branch never equals a cookie branch's rest")
    func branchKeys() throws {
        let invite = Msg.invite(branch: "z9hG4bK74bf9")
        let key = try #require(TransactionKey.client(sending: invite))
        #expect(key.branch == "z9hg4bk74bf9")
        // The cookie and the rest compare case-insensitively (7.3.1).
        for b in ["Z9HG4BK74BF9", "z9hg4bk74bf9", "z9hG4bK74Bf9"] {
            #expect(TransactionKey.client(matching: Msg.response(180, to: Msg.invite(branch: b))) == key, "\(b)")
        }
        // A branch that lacks the cookie is another transaction, even when it is the rest.
        let bare = try #require(TransactionKey.client(sending: Msg.invite(branch: "74bf9")))
        #expect(bare != key)
        #expect(bare.branch == "74bf9")
        #expect(TransactionKey.client(matching: Msg.response(180, to: Msg.invite(branch: "74BF9"))) == bare)
        // Long branches (past what a String keeps inline) and the description keep the whole branch.
        let long = "z9hG4bK" + String(repeating: "Ab", count: 40)
        let longKey = try #require(TransactionKey.client(sending: Msg.invite(branch: long)))
        #expect(longKey.branch == long.lowercased())
        #expect(longKey.description == "client INVITE " + long.lowercased())
        // A server key's sent-by keeps its port.
        let server = try #require(TransactionKey.server(matching: Msg.invite(sentBy: "PC33.atlanta.example.com:5062")))
        #expect(server.description == "server INVITE z9hg4bk74bf9 pc33.atlanta.example.com:5062")
    }

    @Test("RFC 3261 17.2.3: a request matches by branch, sent-by and method; the ACK matches its INVITE")
    func serverKey() throws {
        let invite = Msg.invite()
        let key = try #require(TransactionKey.server(matching: invite))
        #expect(key.side == .server)
        #expect(!key.isRFC2543)
        #expect(key.branch == "z9hg4bk74bf9")
        #expect(TransactionKey.server(matching: Msg.invite()) == key)
        let ack = invite.makeACK(for: Msg.response(486, to: invite))
        #expect(TransactionKey.server(matching: ack) == key)
        // Same branch from another sent-by (host or port) is another transaction.
        #expect(TransactionKey.server(matching: Msg.invite(sentBy: "pc34.atlanta.example.com")) != key)
        #expect(TransactionKey.server(matching: Msg.invite(sentBy: "pc33.atlanta.example.com:5062")) != key)
        // Host and branch compare case-insensitively (7.3.1); received/rport don't matter.
        #expect(TransactionKey.server(matching: Msg.invite(branch: "z9hG4bK74BF9", sentBy: "PC33.atlanta.example.com")) == key)
        var received = invite
        received.headers.set(HeaderName(.via), "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK74bf9;received=192.0.2.4;rport=5060")
        #expect(TransactionKey.server(matching: received) == key)
        // A request of another method with the same branch is another transaction.
        #expect(TransactionKey.server(matching: Msg.request("BYE", branch: "z9hG4bK74bf9")) != key)
    }

    @Test("RFC 3261 9.2: a CANCEL is its own transaction and names its INVITE by the same key with method INVITE")
    func cancelKey() throws {
        let invite = Msg.invite()
        let cancel = invite.makeCancel()
        let cancelKey = try #require(TransactionKey.server(matching: cancel))
        let inviteKey = try #require(TransactionKey.server(matching: invite))
        #expect(cancelKey != inviteKey)
        #expect(cancelKey.method == .cancel)
        #expect(TransactionKey.invite(cancelledBy: cancel) == inviteKey)
        #expect(TransactionKey.invite(cancelledBy: invite) == nil)
    }

    @Test("RFC 3261 9.1: the CANCEL carries the INVITE's Request-URI, Call-ID, To, From, CSeq number, top Via and Route")
    func cancelBuilder() throws {
        let invite = Msg.invite(extra: ["Route: <sip:p1.example.com;lr>"])
        let cancel = invite.makeCancel()
        #expect(cancel.method == .cancel)
        #expect(cancel.requestURI == invite.requestURI)
        #expect(cancel.callID == invite.callID)
        #expect(try cancel.to() == invite.to())
        #expect(try cancel.from() == invite.from())
        #expect(try cancel.cseq() == CSeq(314159, .cancel))
        #expect(try cancel.vias() == [try #require(try invite.topVia())])
        #expect(try cancel.routes() == invite.routes())
    }

    @Test("RFC 4475 3.3.15: a branch that is exactly z9hG4bK falls back to RFC 2543 matching")
    func badBranchFallsBack() throws {
        #expect(TransactionKey.isRFC3261Branch("z9hG4bK") == false)
        #expect(TransactionKey.isRFC3261Branch("z9hG4bKx") == true)
        #expect(TransactionKey.isRFC3261Branch("1234") == false)
        #expect(TransactionKey.isRFC3261Branch(nil) == false)
        let key = try #require(TransactionKey.server(matching: Self.badBranch))
        #expect(key.isRFC2543)
        #expect(key.branch == nil)
        #expect(key.method == .options)
        // A retransmission, byte for byte, has the same key.
        let again = try SIPParser.parse(Self.badBranch.serialized())
        #expect(TransactionKey.server(matching: again) == key)
        // Another CSeq, Call-ID, From tag or Request-URI is another transaction.
        var other = Self.badBranch
        other.headers.set(HeaderName(.cseq), "9 OPTIONS")
        #expect(TransactionKey.server(matching: other) != key)
        other = Self.badBranch
        other.headers.set(HeaderName(.from), "sip:caller@example.org;tag=99")
        #expect(TransactionKey.server(matching: other) != key)
        other = Self.badBranch
        other.requestURI = try URI.parse("sip:other@example.com")
        #expect(TransactionKey.server(matching: other) != key)
    }

    @Test("RFC 4475 3.3.15: through the table a badbranch retransmission is absorbed and a different To tag is a new request")
    func badBranchThroughTable() throws {
        var table = TransactionTable<Int>()
        guard case .newRequest = table.receive(Self.badBranch, now: .zero) else {
            Issue.record("expected a new request")
            return
        }
        let out = try table.startServer(request: Self.badBranch, transport: .unreliable, context: 1, now: .zero)
        #expect(out.actions.passedToTU == [Self.badBranch])
        guard case .handled(let again) = table.receive(Self.badBranch, now: SIPInstant(milliseconds: 500)) else {
            Issue.record("expected the retransmission to match")
            return
        }
        #expect(again.key == out.key)
        #expect(again.actions.isEmpty)  // Trying discards retransmissions
        var tagged = Self.badBranch
        tagged.headers.set(HeaderName(.to), "sip:user@example.com;tag=zzz")
        guard case .newRequest = table.receive(tagged, now: .zero) else {
            Issue.record("a different To tag must not match (17.2.3)")
            return
        }
    }

    @Test("RFC 3261 17.2.3: with RFC 2543 rules an ACK matches its INVITE by the To tag of the response")
    func legacyAckByResponseToTag() throws {
        let invite = Msg.invite(branch: nil, sentBy: "iftgw.example.com")
        var table = TransactionTable<String>()
        let started = try table.startServer(request: invite, transport: .unreliable, context: "udp", now: .zero)
        #expect(started.key.isRFC2543)
        let busy = Msg.response(486, to: invite, toTag: "resp-tag")
        _ = table.handle(.tuResponse(busy), for: started.key, now: .zero)
        // An ACK with another To tag is not for this transaction.
        var wrong = invite.makeACK(for: Msg.response(486, to: invite, toTag: "other-tag"))
        wrong.headers.set(HeaderName(.via), "SIP/2.0/UDP iftgw.example.com")
        guard case .unmatchedACK = table.receive(wrong, now: .zero) else {
            Issue.record("expected no match")
            return
        }
        // The INVITE retransmission (no To tag, like the original) gets the 486 again.
        guard case .handled(let re) = table.receive(invite, now: SIPInstant(milliseconds: 100)) else {
            Issue.record("expected the retransmission to match")
            return
        }
        #expect(re.actions.sentMessages == [busy])
        var ack = invite.makeACK(for: busy)
        ack.headers.set(HeaderName(.via), "SIP/2.0/UDP iftgw.example.com")
        guard case .handled(let out) = table.receive(ack, now: SIPInstant(milliseconds: 200)) else {
            Issue.record("expected the ACK to match")
            return
        }
        #expect(out.key == started.key)
        #expect(out.context == "udp")
        guard case .inviteServer(let t) = table.transaction(for: started.key) else {
            Issue.record("transaction gone")
            return
        }
        #expect(t.state == .confirmed)
    }

    @Test("RFC 3261 9.2: a CANCEL without the magic cookie finds its INVITE when the To tag matches too")
    func legacyCancel() throws {
        let invite = Msg.invite(branch: nil)
        var table = TransactionTable<Int>()
        let started = try table.startServer(request: invite, transport: .unreliable, context: 0, now: .zero)
        let cancel = invite.makeCancel()
        #expect(table.inviteTransaction(cancelledBy: cancel) == started.key)
        var tagged = cancel
        tagged.headers.set(HeaderName(.to), "Bob <sip:bob@biloxi.example.com>;tag=nope")
        #expect(table.inviteTransaction(cancelledBy: tagged) == nil)
    }
}
