import Foundation
import ParleyRules
import Testing

@testable import ParleyRules

/// select_agent over `AgentCandidates` (directory slots, longest idle first): what the
/// distributor hands the engine, with nothing looked up by id.
@Suite struct CandidateTests {
    /// Candidates as the agent book would hand them: the given ids, in that order.
    func candidates(_ h: Harness, _ ids: [String]) -> AgentCandidates {
        var c = AgentCandidates()
        for id in ids {
            c.append(slot: h.store.agents.slot(of: id)!, idleSinceMs: h.store.agents.agent(id)!.idleSinceMs ?? 0)
        }
        return c
    }

    func seed(_ h: Harness) {
        h.store.agents.update(AgentInfo(id: "ann", skills: ["sales"], idleSinceMs: h.clock.nowMs - 300, attrs: ["language": "en"]))
        h.store.agents.update(AgentInfo(id: "bob", skills: ["sales"], idleSinceMs: h.clock.nowMs - 200, attrs: ["language": "fr"]))
        h.store.agents.update(AgentInfo(id: "cat", skills: ["sales"], idleSinceMs: h.clock.nowMs - 100, attrs: ["language": "fr"]))
    }

    @Test func theRuleSeesTheCandidatesInOrderWithTheirIdleTimes() {
        let h = Harness(["init.lua": """
            function select_agent(call, agents)
              local seen = {}
              for i, a in ipairs(agents) do seen[i] = a.id .. "=" .. a.idle_ms end
              log.info(table.concat(seen, ","))
              for _, a in ipairs(agents) do if a.attrs.language == "fr" then return a.id end end
            end
            """])
        _ = h.store.reload()
        seed(h)
        let s = h.engine.selectAgent(for: h.call(), candidates: candidates(h, ["ann", "bob", "cat"]))
        #expect(s.agentID == "bob" && s.failure == nil)
        #expect(h.logs.records.contains { $0.message.contains("ann=300,bob=200,cat=100") }, "\(h.logs.records)")
        // leaving bob out (he was offered the call): cat
        #expect(h.engine.selectAgent(for: h.call(), candidates: candidates(h, ["ann", "cat"])).agentID == "cat")
    }

    /// idle_ms is computed when read (nothing is written into the resident agents per call):
    /// it follows the clock from one call to the next, is 0 for an agent that is not idle, and
    /// pairs() still lists it with the other fields.
    @Test func idleTimeIsReadAtTheHooksNowAndListedByPairs() {
        let h = Harness(["init.lua": """
            function select_agent(call, agents)
              local a = agents[1]
              local keys = {}
              for k, v in pairs(a) do if type(v) ~= "table" then keys[#keys + 1] = k .. "=" .. tostring(v) end end
              table.sort(keys)
              log.info(table.concat(keys, " "))
              assert(a.no_such_field == nil)
              return a.id
            end
            function handoff_encoding(call, agent)
              log.info("handoff idle " .. agent.idle_ms)
              return "uri"
            end
            """])
        _ = h.store.reload()
        seed(h)
        h.store.agents.update(AgentInfo(id: "dan", skills: ["sales"], state: .busy, idleSinceMs: nil))
        #expect(h.engine.selectAgent(for: h.call(), candidates: candidates(h, ["ann"])).agentID == "ann")
        #expect(h.logs.records.contains { $0.message == "calls_handled=0 id=ann idle_ms=300 state=available talk_ms=0" },
                "\(h.logs.records.map(\.message))")
        h.clock.advance(by: 1_000)
        _ = h.engine.selectAgent(for: h.call(), candidates: candidates(h, ["ann"]))
        #expect(h.logs.records.contains { $0.message.contains("idle_ms=1300") }, "\(h.logs.records.map(\.message))")
        _ = h.engine.handoffEncoding(for: h.call(), agent: "dan")
        #expect(h.logs.records.contains { $0.message == "handoff idle 0" }, "\(h.logs.records.map(\.message))")
    }

    /// What an agent's calls change (state, idle time, calls handled, talk time) is written into
    /// the table the state already holds, so a table a rule kept from an earlier call follows
    /// it; a change of skills, attributes or contact builds the agent anew. Either way the hook
    /// sees the agent as the directory has it.
    @Test func anAgentsCallsUpdateItsResidentTableInPlace() {
        let h = Harness(["init.lua": """
            local kept
            function select_agent(call, agents)
              local a = agents[1]
              kept = kept or a
              log.info(string.format("%s %s %d %d %d %s | kept %s %s %d", a.id, a.state, a.idle_ms, a.calls_handled, a.talk_ms,
                a.attrs.language, kept.id, kept.state, kept.calls_handled))
              return a.id
            end
            """])
        _ = h.store.reload()
        seed(h)
        let ann = { candidates(h, ["ann"]) }
        #expect(h.engine.selectAgent(for: h.call(), candidates: ann()).agentID == "ann")
        #expect(h.logs.records.last?.message == "ann available 300 0 0 en | kept ann available 0")
        h.store.agents.modify("ann") { $0.state = .busy; $0.idleSinceMs = nil }
        h.store.agents.modify("ann") { $0.state = .available; $0.idleSinceMs = h.clock.nowMs - 50; $0.callsHandled = 1; $0.talkMs = 900 }
        _ = h.engine.selectAgent(for: h.call(), candidates: ann())
        #expect(h.logs.records.last?.message == "ann available 50 1 900 en | kept ann available 1")
        h.store.agents.modify("ann") { $0.state = .wrapup }
        _ = h.engine.selectAgent(for: h.call(), candidates: ann())
        #expect(h.logs.records.last?.message == "ann wrapup 50 1 900 en | kept ann wrapup 1")
        // a new attribute: the agent is built anew (the kept table is the old one, as it was)
        h.store.agents.modify("ann") { $0.attrs["language"] = "de"; $0.callsHandled = 2 }
        _ = h.engine.selectAgent(for: h.call(), candidates: ann())
        #expect(h.logs.records.last?.message == "ann wrapup 50 2 900 de | kept ann wrapup 1")
        h.store.agents.modify("ann") { $0.callsHandled = 3 }
        _ = h.engine.selectAgent(for: h.call(), candidates: ann())
        #expect(h.logs.records.last?.message == "ann wrapup 50 3 900 de | kept ann wrapup 1", "\(h.logs.records.map(\.message))")
    }

    @Test func withoutTheHookTheFirstCandidateTakesTheCall() {
        let h = Harness(["init.lua": "-- nothing\n"])
        _ = h.store.reload()
        seed(h)
        #expect(h.engine.selectAgent(for: h.call(), candidates: candidates(h, ["bob", "ann"])).agentID == "bob")
        #expect(h.engine.selectAgent(for: h.call(), candidates: AgentCandidates()).agentID == nil)
    }

    @Test func anAgentThatIsNoCandidateIsAFailureAndTheFirstCandidateTakesTheCall() {
        let h = Harness(["init.lua": "function select_agent(call, agents) return \"cat\" end\n"])
        _ = h.store.reload()
        seed(h)
        let s = h.engine.selectAgent(for: h.call(), candidates: candidates(h, ["ann", "bob"]))
        #expect(s.agentID == "ann")
        #expect(s.failure?.kind == .unknownAgent)
        #expect(s.failure?.message.contains("not one of the 2 candidate agents") == true)
        let none = h.engine.selectAgent(for: h.call(), candidates: candidates(h, ["cat"]))
        #expect(none.agentID == "cat" && none.failure == nil)
    }

    @Test func nilLeavesTheCallQueued() {
        let h = Harness(["init.lua": "function select_agent(call, agents) return nil end\n"])
        _ = h.store.reload()
        seed(h)
        let s = h.engine.selectAgent(for: h.call(), candidates: candidates(h, ["ann"]))
        #expect(s.agentID == nil && s.failure == nil)
    }

    /// The directory hands a reader only what changed since it last looked (its change log), and
    /// everything when the reader is older than the log.
    @Test func theDirectoryHandsOnlyWhatChanged() {
        let d = AgentDirectory()
        for i in 0..<5_000 { d.update(AgentInfo(id: "a\(i)")) }
        let r = d.revision
        #expect(d.changes(since: 0).updated.count == 5_000)
        d.modify("a7") { $0.talkMs = 5 }
        d.update(AgentInfo(id: "a9", talkMs: 1))
        d.modify("a7") { $0.talkMs = 6 }
        d.remove("a11")
        let ch = d.changes(since: r)
        #expect(ch.updated.map(\.info.id).sorted() == ["a7", "a9"])
        #expect(ch.updated.first { $0.info.id == "a7" }?.info.talkMs == 6)
        #expect(ch.removed.map(\.id) == ["a11"])
        #expect(d.changes(since: ch.revision).updated.isEmpty)
        // enough changes to trim the log: an old reader still gets every agent changed since
        for round in 0..<10 { for i in 0..<5_000 where i % 2 == round % 2 { d.modify("a\(i)") { $0.callsHandled += 1 } } }
        #expect(d.changes(since: r).updated.count == 4_999)
        #expect(d.agentID(slot: d.slot(of: "a42")!) == "a42")
        #expect(d.slot(of: "a11") == nil)
    }
}
