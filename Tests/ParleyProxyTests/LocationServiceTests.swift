import ParleyProxy
import ParleySIP
import ParleyTransaction
import Testing

@Suite("Location service: REGISTER processing on a virtual clock (RFC 3261 section 10.3)")
struct LocationServiceTests {
    func register(_ contacts: [String], expires: String? = nil, callID: String = "reg-1", cseq: Int = 1,
                  to: String = "<sip:alice@Example.COM>", path: String? = nil) throws -> SIPMessage {
        var text = "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK\(callID)\(cseq)\r\n"
        text += "From: <sip:alice@example.com>;tag=f\r\nTo: \(to)\r\nCall-ID: \(callID)\r\nCSeq: \(cseq) REGISTER\r\n"
        for c in contacts { text += "Contact: \(c)\r\n" }
        if let expires { text += "Expires: \(expires)\r\n" }
        if let path { text += "Path: \(path)\r\n" }
        text += "Content-Length: 0\r\n\r\n"
        return try SIPParser.parse(text)
    }

    let t0 = SIPInstant(milliseconds: 1_000_000)

    @Test("10.3 step 7: bindings added with their expiry; lookup in q order; the 200's Contact set")
    func addAndLookup() throws {
        var ls = LocationService()
        let r = ls.register(try register(["<sip:alice@192.0.2.10:5060>;q=0.5", "<sip:alice@192.0.2.11:5060>;q=0.9;expires=600"],
                                         expires: "1200", path: "<sip:cc.example.com;lr>"), now: t0)
        guard case .ok(let aor, let list, let added, _) = r else { Issue.record("\(r)"); return }
        #expect(aor == "sip:alice@example.com")
        #expect(added.count == 2)
        #expect(list.map(\.q) == [0.9, 0.5])
        #expect(list.map { $0.remaining(at: t0) } == [600, 1200])
        #expect(list[0].path == ["<sip:cc.example.com;lr>"])
        #expect(ls.lookup("sip:alice@example.com", now: t0).count == 2)
        let contacts = LocationService.contactValues(list, now: t0 + .seconds(100))
        #expect(contacts[0] == "<sip:alice@192.0.2.11:5060>;q=0.9;expires=500")
        // Expiry (10.2.1): the 600 s binding goes first.
        #expect(ls.lookup("sip:alice@example.com", now: t0 + .seconds(601)).count == 1)
        #expect(ls.expire(now: t0 + .seconds(1201)).count == 2)
        #expect(ls.bindings.isEmpty)
    }

    @Test("10.3 step 7: an Expires under the minimum gets 423 with Min-Expires; a huge one is capped")
    func expiresBounds() throws {
        var ls = LocationService()
        let short = ls.register(try register(["<sip:alice@192.0.2.10>"], expires: "10"), now: t0)
        #expect(short == .refused(code: 423, reason: "Interval Too Brief", headers: [SIPHeader(.minExpires, "60")]))
        #expect(ls.bindings.isEmpty)
        guard case .ok(_, let list, _, _) = ls.register(try register(["<sip:alice@192.0.2.10>"], expires: "4000000000"), now: t0) else {
            Issue.record("refused"); return
        }
        #expect(list[0].remaining(at: t0) == 3600)
    }

    @Test("10.3 step 6: Contact * with Expires 0 removes every binding; without Expires 0 it is refused")
    func wildcard() throws {
        var ls = LocationService()
        _ = ls.register(try register(["<sip:alice@192.0.2.10>", "<sip:alice@192.0.2.11>"]), now: t0)
        let bad = ls.register(try register(["*"], expires: "60", cseq: 2), now: t0)
        guard case .refused(400, _, _) = bad else { Issue.record("\(bad)"); return }
        #expect(ls.lookup("sip:alice@example.com", now: t0).count == 2)
        guard case .ok(_, let list, _, let removed) = ls.register(try register(["*"], expires: "0", cseq: 2), now: t0) else {
            Issue.record("refused"); return
        }
        #expect(list.isEmpty)
        #expect(removed.count == 2)
    }

    @Test("10.3 step 7: same Call-ID with a CSeq not higher is refused and changes nothing; a new Call-ID wins")
    func cseqOrdering() throws {
        var ls = LocationService()
        _ = ls.register(try register(["<sip:alice@192.0.2.10>;q=0.3"], cseq: 5), now: t0)
        let replay = ls.register(try register(["<sip:alice@192.0.2.10>;q=0.8"], cseq: 5), now: t0)
        guard case .refused(500, _, _) = replay else { Issue.record("\(replay)"); return }
        #expect(ls.lookup("sip:alice@example.com", now: t0).first?.q == 0.3)
        _ = ls.register(try register(["<sip:alice@192.0.2.10>;q=0.8"], callID: "reg-2", cseq: 1), now: t0)
        #expect(ls.lookup("sip:alice@example.com", now: t0).map(\.q) == [0.8])
    }

    @Test("Expires 0 on one contact removes only that binding")
    func unregisterOne() throws {
        var ls = LocationService()
        _ = ls.register(try register(["<sip:alice@192.0.2.10>", "<sip:alice@192.0.2.11>"]), now: t0)
        _ = ls.register(try register(["<sip:alice@192.0.2.10>;expires=0"], cseq: 2), now: t0)
        #expect(ls.lookup("sip:alice@example.com", now: t0).map { $0.uri.description } == ["sip:alice@192.0.2.11"])
    }

    @Test("RFC 4475 3.3.4 unksm2: a To that is not a SIP URI is refused with 400; unknown Contact schemes too")
    func badSchemes() throws {
        var ls = LocationService()
        guard case .refused(400, _, _) = ls.register(try register(["<sip:a@192.0.2.1>"], to: "isbn:2983792873"), now: t0) else {
            Issue.record("accepted"); return
        }
        guard case .refused(400, _, _) = ls.register(try register(["<name:John_Smith>"]), now: t0) else {
            Issue.record("accepted"); return
        }
        #expect(ls.bindings.isEmpty)
    }

    @Test("ties in q go to the most recently registered contact")
    func tieOrder() throws {
        var ls = LocationService()
        _ = ls.register(try register(["<sip:alice@192.0.2.10>;q=0.5"], callID: "a"), now: t0)
        _ = ls.register(try register(["<sip:alice@192.0.2.11>;q=0.5"], callID: "b"), now: t0 + .seconds(1))
        #expect(ls.lookup("sip:alice@example.com", now: t0 + .seconds(2)).map { $0.uri.description }
                == ["sip:alice@192.0.2.11", "sip:alice@192.0.2.10"])
    }
}
