import Foundation
import Testing

@testable import ParleyRules

/// A candidate list longer than the shim's LAZY_MIN is handed without building a table of every
/// agent (shim.c, push_agents). These tests hold that a rule cannot tell: every way Lua has to
/// read, walk, change or inspect an array gives what it gives on an ordinary array of the same
/// agents, and the calls that follow are unaffected.
@Suite struct LongCandidateListTests {
    static let count = 40
    static let ids = (1...count).map { String(format: "a%02d", $0) }

    /// `count` agents, a01 idle longest; the candidates in that order.
    func seeded(_ rule: String) -> (Harness, AgentCandidates) {
        let h = Harness(["init.lua": rule])
        _ = h.store.reload()
        var c = AgentCandidates()
        for (i, id) in Self.ids.enumerated() {
            h.store.agents.update(AgentInfo(id: id, skills: ["sales"], idleSinceMs: h.clock.nowMs - Int64(1_000 - i)))
        }
        for id in Self.ids {
            c.append(slot: h.store.agents.slot(of: id)!, idleSinceMs: h.store.agents.agent(id)!.idleSinceMs!)
        }
        return (h, c)
    }

    /// Each mode checks with assert and returns an id; a failed assert would be a hook failure.
    static let rule = """
        local function ids(t) local out = {} for i = 1, #t do out[i] = t[i].id end return table.concat(out, ",") end
        function select_agent(call, agents)
          local mode = call.type
          if mode == "read" then
            assert(#agents == 40, "length " .. #agents)
            assert(agents[1].id == "a01" and agents[40].id == "a40" and agents[2.0].id == "a02")
            assert(agents[0] == nil and agents[41] == nil and agents[-1] == nil and agents[1.5] == nil)
            assert(agents["1"] == nil and agents.n == nil and agents.id == nil)
            local n = 0
            for i, a in ipairs(agents) do n = n + 1; assert(a.id == string.format("a%02d", i)) end
            assert(n == 40, "ipairs " .. n)
            assert(select("#", table.unpack(agents)) == 40)
            assert(agents[3].idle_ms == 998, "idle " .. agents[3].idle_ms)
            assert(type(agents) == "table")
            return agents[#agents].id
          elseif mode == "pairs" then
            local n, sum = 0, 0
            for k, a in pairs(agents) do n = n + 1; sum = sum + k; assert(a.id == string.format("a%02d", k)) end
            assert(n == 40 and sum == 820, "pairs " .. n .. " " .. sum)
            return agents[3].id
          elseif mode == "raw" then
            local k, a = next(agents)
            assert(k == 1 and a.id == "a01")
            assert(rawlen(agents) == 40 and rawget(agents, 5).id == "a05")
            assert(getmetatable(agents) == nil)
            return agents[7].id
          elseif mode == "rawset" then
            rawset(agents, 41, agents[2])
            assert(#agents == 41 and agents[41].id == "a02" and agents[40].id == "a40")
            return agents[41].id
          elseif mode == "sort" then
            table.sort(agents, function(x, y) return x.id > y.id end)
            assert(#agents == 40 and agents[40].id == "a01")
            return agents[1].id
          elseif mode == "remove" then
            local first = table.remove(agents, 1)
            assert(first.id == "a01" and #agents == 39 and agents[1].id == "a02" and agents[40] == nil)
            table.insert(agents, first)
            assert(#agents == 40 and agents[40].id == "a01")
            return agents[1].id
          elseif mode == "hole" then
            agents[1] = nil
            assert(agents[1] == nil and agents[2].id == "a02")
            return agents[2].id
          elseif mode == "field" then
            agents.note = "kept"
            assert(agents.note == "kept" and #agents == 40 and agents[9].id == "a09")
            return agents[9].id
          elseif mode == "meta" then
            setmetatable(agents, {__index = function() return "other" end})
            assert(agents[1].id == "a01" and agents[40].id == "a40" and agents[41] == "other")
            return agents[40].id
          elseif mode == "keep" then
            kept = agents
            return agents[4].id
          elseif mode == "kept" then
            return ids(kept) == ids(agents) and kept[5].id or "changed"
          end
        end
        """

    @Test(arguments: [
        ("read", "a40"), ("pairs", "a03"), ("raw", "a07"), ("rawset", "a02"), ("sort", "a40"), ("remove", "a02"),
        ("hole", "a02"), ("field", "a09"), ("meta", "a40"), ("keep", "a04"),
    ])
    func behavesAsAnArray(_ mode: String, _ chosen: String) {
        let (h, c) = seeded(Self.rule)
        let s = h.engine.selectAgent(for: h.call(mode), candidates: c)
        #expect(s.failure == nil, "\(s.failure?.message ?? "")")
        #expect(s.agentID == chosen)
        // the next call gets the whole list again, whatever the rule did to the last one
        let again = h.engine.selectAgent(for: h.call("read"), candidates: c)
        #expect(again.failure == nil && again.agentID == "a40", "\(again.failure?.message ?? "")")
    }

    /// A list a rule keeps in a global still reads its agents on a later call.
    @Test func aListKeptPastItsCallStillReads() {
        let (h, c) = seeded(Self.rule)
        #expect(h.engine.selectAgent(for: h.call("keep"), candidates: c).agentID == "a04")
        let s = h.engine.selectAgent(for: h.call("kept"), candidates: c)
        #expect(s.failure == nil && s.agentID == "a05", "\(s.failure?.message ?? "")")
    }

    /// order_registrations gets the same kind of list and may return one built from it.
    @Test func orderRegistrationsReadsALongList() {
        let (h, _) = seeded("""
            function order_registrations(address, agents)
              local out = {}
              for i = #agents, 1, -1 do out[#out + 1] = {id = agents[i].id, q = 0.5} end
              return out
            end
            """)
        let order = h.engine.orderRegistrations(for: AddressInfo(aor: "sip:sales@cc.example.com", skill: "sales", kind: .skill, name: "sales"),
                                                agents: Self.ids)
        #expect(order.failure == nil, "\(order.failure?.message ?? "")")
        #expect(order.bindings.count == 40)
        #expect(order.bindings.first?.agentID == "a40" && order.bindings.last?.agentID == "a01")
    }
}
