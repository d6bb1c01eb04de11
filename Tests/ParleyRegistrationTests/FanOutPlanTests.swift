import ParleyRegistration
import ParleyRules
import ParleySIP
import Testing

@Suite("Registration fan-out plan")
struct FanOutPlanTests {
    let sales = ContactCenterAddress(aor: "sip:sales@cc.example.com", kind: .skill, name: "sales", skill: "sales")
    let moh = ContactCenterAddress(aor: "sip:moh@cc.example.com", kind: .treatment, name: "moh")
    let contacts = ["alice": "sip:alice@192.0.2.11", "bob": "sip:bob@192.0.2.12", "chloe": "sip:chloe@192.0.2.13"]

    @Test("every address gets Parley at q 1.0 and the rule's agents at 0.9 x q, in the rule's order")
    func desired() {
        let plan = FanOutPlan.desired(addresses: [sales, moh], parleyContact: "sip:parley@192.0.2.1", agentContacts: contacts) { address in
            address.kind == .skill ? [("bob", 1.0), ("alice", 0.5), ("zoe", 0.4)] : [("chloe", 1.0)]
        }
        #expect(plan.map(\.description) == [
            "sip:sales@cc.example.com -> sip:parley@192.0.2.1 q=1.0",
            "sip:sales@cc.example.com -> sip:bob@192.0.2.12 q=0.9",
            "sip:sales@cc.example.com -> sip:alice@192.0.2.11 q=0.45",
            "sip:moh@cc.example.com -> sip:parley@192.0.2.1 q=1.0",
            "sip:moh@cc.example.com -> sip:chloe@192.0.2.13 q=0.9",
        ])
    }

    @Test("a changed order re-registers only the bindings whose q changed; a dropped agent is removed")
    func changes() {
        let before = FanOutPlan.desired(addresses: [sales], parleyContact: "sip:parley@192.0.2.1", agentContacts: contacts) { _ in
            [("bob", 1.0), ("alice", 0.5), ("chloe", 0.2)]
        }
        let after = FanOutPlan.desired(addresses: [sales], parleyContact: "sip:parley@192.0.2.1", agentContacts: contacts) { _ in
            [("alice", 1.0), ("bob", 0.5)]
        }
        let (register, remove) = FanOutPlan.changes(from: before, to: after)
        #expect(register.map(\.description) == ["sip:sales@cc.example.com -> sip:alice@192.0.2.11 q=0.9",
                                                  "sip:sales@cc.example.com -> sip:bob@192.0.2.12 q=0.45"])
        #expect(remove.map(\.contact) == ["sip:chloe@192.0.2.13"])
        let (none, nothing) = FanOutPlan.changes(from: after, to: after)
        #expect(none.isEmpty && nothing.isEmpty)
    }

    @Test("the upstream REGISTER carries each contact's q and expires, and expires=0 for removals; it parses and validates")
    func registerRequest() throws {
        let set = [UpstreamBinding(aor: sales.aor, contact: "sip:alice@192.0.2.11", q: 900, owner: .agent("alice"))]
        let remove = [UpstreamBinding(aor: sales.aor, contact: "sip:chloe@192.0.2.13", q: 450, owner: .agent("chloe"))]
        var r = try FanOutPlan.register(aor: sales.aor, registrar: "sip:registrar.example.com", set: set, remove: remove,
                                        expires: 600, callID: "fan-sales", cseq: 7, fromTag: "p1")
        r.headers.prepend("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKfan")
        let parsed = try SIPParser.parse(r.serialized())
        let cs = try parsed.contacts()
        #expect(cs.map(\.q) == [0.9, nil])
        #expect(cs.map(\.expires) == [600, 0])
        #expect(try parsed.cseq() == CSeq(7, .register))
        #expect(try parsed.to()?.uri.description == "sip:sales@cc.example.com")
    }

    @Test("RFC 3327: an agent's REGISTER forwarded upstream gets Parley's Path on top and Supported: path")
    func path() throws {
        let agent = try SIPParser.parse("REGISTER sip:cc.example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.11;branch=z9hG4bKa\r\nFrom: <sip:alice@cc.example.com>;tag=a\r\nTo: <sip:alice@cc.example.com>\r\nCall-ID: a1\r\nCSeq: 1 REGISTER\r\nContact: <sip:alice@192.0.2.11>\r\nContent-Length: 0\r\n\r\n")
        let forwarded = FanOutPlan.addingPath(agent, parleyURI: "sip:192.0.2.1:5060")
        #expect(forwarded.headers.values("Path") == ["<sip:192.0.2.1:5060;lr>"])
        #expect(forwarded.optionTags(.supported) == ["path"])
        #expect(try SIPParser.parse(forwarded.serialized()).paths().first?.uri.description == "sip:192.0.2.1:5060;lr")
    }
}
