import Foundation
import ParleyProxy
import ParleySIP
import ParleyTransaction
import ParleyRegistration
import ParleyRules
import Testing

@Suite("Registration fan-out state on a virtual clock")
struct FanOutStateTests {
    let sales = "sip:sales@cc.test"
    func parley(_ aor: String) -> UpstreamBinding { UpstreamBinding(aor: aor, contact: "sip:sales@127.0.0.1:5060", q: 1000, owner: .parley) }
    func agent(_ aor: String, _ id: String, _ q: Int) -> UpstreamBinding {
        UpstreamBinding(aor: aor, contact: "sip:\(id)@127.0.0.1:5081", q: q, owner: .agent(id), ruleQ: q * 10 / 9)
    }

    @Test("a new address is registered at once; once confirmed, nothing is sent until three quarters of its time has gone")
    func refreshTiming() {
        var s = FanOutState(expires: 300)
        let want = [parley(sales), agent(sales, "alice", 900)]
        let first = s.plan(desired: want, nowMs: 0, inFlight: [], newCallID: { "c-\($0)" })
        #expect(first.map(\.reason) == [.changed])
        #expect(first[0].set == want && first[0].remove.isEmpty)
        #expect(s.nextCSeq(sales) == 1)
        s.confirmed(sales, set: want, grantedSeconds: 300, nowMs: 0)
        #expect(s.plan(desired: want, nowMs: 1_000, inFlight: [], newCallID: { $0 }).isEmpty)
        #expect(s.plan(desired: want, nowMs: 224_999, inFlight: [], newCallID: { $0 }).isEmpty)
        #expect(s.plan(desired: want, nowMs: 225_000, inFlight: [], newCallID: { $0 }).map(\.reason) == [.refresh])
        #expect(s.nextDeadline() == 225_000)
        // The same Call-ID throughout, CSeq rising (RFC 3261 10.2.4).
        #expect(s.addresses[sales]?.callID == "c-\(sales)")
        #expect(s.nextCSeq(sales) == 2)
    }

    @Test("a new order re-registers only the bindings whose q changed and removes the agent the rule left out; a refresh sends them all")
    func reorder() {
        var s = FanOutState(expires: 300)
        let before = [parley(sales), agent(sales, "alice", 900), agent(sales, "bob", 450)]
        _ = s.plan(desired: before, nowMs: 0, inFlight: [], newCallID: { $0 })
        s.confirmed(sales, set: before, grantedSeconds: 300, nowMs: 0)
        let after = [parley(sales), agent(sales, "bob", 900)]
        let p = s.plan(desired: after, nowMs: 10, inFlight: [], newCallID: { $0 })
        #expect(p.count == 1 && p[0].reason == .changed)
        // Only bob's new q is sent; the whole set is what the address holds afterwards.
        #expect(p[0].set == [agent(sales, "bob", 900)] && p[0].desired == after && !p[0].full)
        #expect(p[0].remove.map(\.contact) == ["sip:alice@127.0.0.1:5081"])
        // While a REGISTER for it is in flight, the address waits.
        #expect(s.plan(desired: after, nowMs: 10, inFlight: [sales], newCallID: { $0 }).isEmpty)
        // A partial REGISTER answered keeps the refresh clock of the full one.
        s.confirmed(sales, set: after, grantedSeconds: 300, nowMs: 10, full: false)
        #expect(s.addresses[sales]?.bindings == after && s.addresses[sales]?.refreshAtMs == 225_000)
        #expect(s.plan(desired: after, nowMs: 225_000, inFlight: [], newCallID: { $0 }).map(\.full) == [true])
    }

    @Test("a failed REGISTER keeps the confirmed bindings and is retried after 2, 4, 8 ... seconds (at most 60)")
    func retryBackoff() {
        var s = FanOutState(expires: 300)
        let want = [parley(sales)]
        _ = s.plan(desired: want, nowMs: 0, inFlight: [], newCallID: { $0 })
        s.confirmed(sales, set: want, grantedSeconds: 300, nowMs: 0)
        let more = want + [agent(sales, "alice", 900)]
        _ = s.plan(desired: more, nowMs: 1_000, inFlight: [], newCallID: { $0 })
        s.failed(sales, error: "500 Server Internal Error", nowMs: 1_000)
        #expect(s.addresses[sales]?.bindings == want)
        #expect(s.plan(desired: more, nowMs: 2_999, inFlight: [], newCallID: { $0 }).isEmpty)
        #expect(s.plan(desired: more, nowMs: 3_000, inFlight: [], newCallID: { $0 }).map(\.reason) == [.retry])
        s.failed(sales, error: "no answer", nowMs: 3_000)
        #expect(s.addresses[sales]?.retryAtMs == 7_000)
        for _ in 0..<10 { s.failed(sales, error: "no answer", nowMs: 3_000) }
        #expect(s.addresses[sales]?.retryAtMs == 63_000)
        s.confirmed(sales, set: more, grantedSeconds: 300, nowMs: 63_000)
        #expect(s.addresses[sales]?.failures == 0)
    }

    @Test("agents expire on the clock; an address no longer wanted has its bindings removed")
    func expiry() {
        var s = FanOutState(expires: 300)
        s.agentRegistered(AgentRegistration(agentID: "alice", aor: "sip:alice@cc.test", contact: "sip:alice@127.0.0.1:5081",
                                            expiresAtMs: 60_000, upstreamCallID: "a", upstreamCSeq: 2))
        #expect(s.expireAgents(nowMs: 59_999).isEmpty)
        #expect(s.expireAgents(nowMs: 60_000).map(\.agentID) == ["alice"])
        let want = [parley(sales), agent(sales, "alice", 900)]
        _ = s.plan(desired: want, nowMs: 0, inFlight: [], newCallID: { $0 })
        s.confirmed(sales, set: want, grantedSeconds: 300, nowMs: 0)
        let p = s.plan(desired: [], nowMs: 1, inFlight: [], newCallID: { $0 })
        #expect(p.count == 1 && p[0].set.isEmpty && p[0].remove.count == 2)
    }

    @Test("after a restart every address is refreshed at once and lapsed agents are dropped")
    func restore() {
        var s = FanOutState(expires: 300)
        let keep = AgentRegistration(agentID: "alice", aor: "sip:alice@cc.test", contact: "sip:alice@127.0.0.1:5081",
                                     expiresAtMs: 500_000, upstreamCallID: "a", upstreamCSeq: 7)
        let lapsed = AgentRegistration(agentID: "bob", aor: "sip:bob@cc.test", contact: "sip:bob@127.0.0.1:5082",
                                       expiresAtMs: 1_000, upstreamCallID: "b", upstreamCSeq: 3)
        let want = [parley(sales), agent(sales, "alice", 900)]
        let record = AddressRecord(aor: sales, callID: "fan", cseq: 9, bindings: want, expiresAtMs: 400_000, refreshAtMs: 300_000)
        s.restore(agents: [keep, lapsed], addresses: [record], nowMs: 100_000)
        #expect(Array(s.agents.keys) == ["alice"])
        let p = s.plan(desired: want, nowMs: 100_000, inFlight: [], newCallID: { _ in "new" })
        #expect(p.map(\.reason) == [.refresh])
        #expect(s.nextCSeq(sales) == 10 && s.addresses[sales]?.callID == "fan")
    }

    @Test("the store keeps agents, addresses and bindings with both q figures across a reopen")
    func store() throws {
        let path = NSTemporaryDirectory() + "parley-reg-\(UUID().uuidString).sqlite"
        defer { for s in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + s) } }
        do {
            let store = try RegistrationStore(path: path)
            store.saveAgent(AgentRegistration(agentID: "alice", aor: "sip:alice@cc.test", contact: "sip:alice@127.0.0.1:5081",
                                              expiresAtMs: 9_000, upstreamCallID: "a1", upstreamCSeq: 4))
            var r = AddressRecord(aor: sales, callID: "fan", cseq: 3,
                                  bindings: [parley(sales), agent(sales, "alice", 450)], expiresAtMs: 8_000)
            r.lastError = nil
            store.saveAddress(r)
            store.saveAgent(AgentRegistration(agentID: "bob", aor: "sip:bob@cc.test", contact: "sip:bob@127.0.0.1:5082",
                                              expiresAtMs: 9_000, upstreamCallID: "b1", upstreamCSeq: 1))
            store.removeAgent("bob")
            store.flush()
        }
        let again = try RegistrationStore(path: path)
        #expect(try again.loadAgents().map(\.agentID) == ["alice"])
        #expect(try again.loadAgents().first?.upstreamCSeq == 4)
        let addresses = try again.loadAddresses()
        #expect(addresses.count == 1 && addresses[0].cseq == 3)
        #expect(addresses[0].bindings.map(\.q) == [1000, 450])
        #expect(addresses[0].bindings.map(\.ruleQ) == [1000, 500])
        #expect(addresses[0].bindings.map(\.owner) == [.parley, .agent("alice")])
        #expect(throws: RegistrationStoreError.self) { _ = try RegistrationStore(path: NSTemporaryDirectory()) }
    }
}

@Suite("parley registrar's bindings in SQLite")
struct RegistrarBindingStoreTests {
    @Test("bindings come back after a reopen with the time they had left, Path and q kept; expired ones and forgotten AORs do not")
    func roundTrip() throws {
        let path = NSTemporaryDirectory() + "parley-registrar-\(UUID().uuidString).sqlite"
        defer { for s in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + s) } }
        let t0 = SIPInstant(milliseconds: 5_000)
        func binding(_ aor: String, _ contact: String, q: Double, left: Int64) throws -> Binding {
            Binding(aor: aor, contact: try NameAddress.parse(contact), q: q, expiresAt: SIPInstant(milliseconds: 5_000 + left),
                    callID: "c-\(contact)", cseq: 3, path: ["<sip:127.0.0.1:5062;lr>"], source: "127.0.0.1:5081", updatedAt: t0)
        }
        do {
            let store = try RegistrarBindingStore(path: path)
            store.replace(aor: "sip:sales@cc.test", bindings: [try binding("sip:sales@cc.test", "<sip:bob@127.0.0.1:5082>", q: 0.9, left: 60_000),
                                                              try binding("sip:sales@cc.test", "<sip:old@127.0.0.1:5089>", q: 0.1, left: 500)],
                          now: t0, wallNowMs: 1_000_000)
            store.replace(aor: "sip:gone@cc.test", bindings: [try binding("sip:gone@cc.test", "<sip:g@127.0.0.1:5083>", q: 1, left: 60_000)],
                          now: t0, wallNowMs: 1_000_000)
            store.replace(aor: "sip:gone@cc.test", bindings: [], now: t0, wallNowMs: 1_000_000)
            store.flush()
        }
        // Reopened 10 s later (wall clock) by a process whose monotonic clock starts at 0.
        let again = try RegistrarBindingStore(path: path)
        let list = try again.load(now: SIPInstant(milliseconds: 0), wallNowMs: 1_010_000)
        #expect(list.map(\.uri.description) == ["sip:bob@127.0.0.1:5082"])
        #expect(list.first?.expiresAt.milliseconds == 50_000)
        #expect(list.first?.q == 0.9 && list.first?.path == ["<sip:127.0.0.1:5062;lr>"] && list.first?.cseq == 3)
    }
}
