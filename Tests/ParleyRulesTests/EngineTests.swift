import Foundation
import ParleyRules
import ParleySIP
import Testing

@Suite struct InviteViewTests {
    @Test func fieldsComeFromTheMessageCore() {
        let h = Harness(["init.lua": """
            function classify(invite)
              local parts = {}
              for _, k in ipairs({"method", "uri", "uri_user", "uri_host", "from", "from_user", "from_display",
                                  "to", "to_user", "call_id", "source", "transport", "content_type", "body"}) do
                parts[#parts + 1] = k .. "=" .. tostring(invite[k])
              end
              log.info(table.concat(parts, "|"))
              return "ok"
            end
            """])
        _ = h.store.reload()
        #expect(h.engine.classify(invite()).type == "ok")
        let line = h.logs.records.first { $0.message.hasPrefix("method=") }?.message ?? ""
        #expect(line == "method=INVITE|uri=sip:+18005550100@cc.example.com;user=phone|uri_user=+18005550100|uri_host=cc.example.com"
            + "|from=sip:alice@example.net|from_user=alice|from_display=Alice Example|to=sip:+18005550100@cc.example.com"
            + "|to_user=+18005550100|call_id=a84b4c76e66710@198.51.100.7|source=198.51.100.7:5060|transport=udp"
            + "|content_type=application/sdp|body=v=0\n", "\(line)")
    }

    @Test func headerLookupUnderstandsCaseAndCompactForms() {
        let h = Harness(["init.lua": """
            function classify(invite)
              assert(invite:header("subject") == "Refund please")
              assert(invite:header("S") == "Refund please")
              assert(invite:header("Call-ID") == invite.call_id)
              assert(invite:header("x-tenant") == "blue")
              assert(invite:header("X-Missing") == nil)
              local langs = invite:headers("Accept-Language")
              assert(#langs == 3 and langs[1] == "fr" and langs[2] == "en;q=0.5" and langs[3] == "de", table.concat(langs, ","))
              assert(#invite:headers("X-None") == 0)
              assert(invite:header("Accept-Language") == "fr")
              return "ok"
            end
            """])
        _ = h.store.reload()
        let c = h.engine.classify(invite())
        #expect(c.type == "ok", "\(String(describing: c.failure))")
    }

    @Test func viewIsReadOnly() {
        let h = Harness(["init.lua": """
            function classify(invite)
              local ok, err = pcall(function() invite.uri_user = "x" end)
              assert(not ok and err:find("read-only", 1, true), err)
              ok = pcall(setmetatable, invite, {})
              assert(not ok)
              return "ok"
            end
            """])
        _ = h.store.reload()
        #expect(h.engine.classify(invite()).failure == nil)
    }
}

@Suite struct EngineTests {
    @Test func missingHooksUseTheirDefaults() {
        let h = Harness(["init.lua": "-- nothing defined\n"])
        _ = h.store.reload()
        h.store.agents.update(AgentInfo(id: "a", idleSinceMs: h.clock.nowMs - 10))
        h.store.agents.update(AgentInfo(id: "b", idleSinceMs: h.clock.nowMs - 30))
        h.store.agents.update(AgentInfo(id: "c", idleSinceMs: h.clock.nowMs - 20))
        let rules = h.engine.pin()
        #expect(rules.classify(invite()).type == "default")
        #expect(rules.selectAgent(for: h.call(), candidates: ["a", "b", "c"]).agentID == "b")
        let order = rules.orderRegistrations(for: AddressInfo(aor: "sip:s@cc", skill: "s", kind: .skill, name: "s"),
                                             agents: ["a", "b", "c"])
        #expect(order.bindings.map(\.agentID) == ["b", "c", "a"])
        #expect(order.bindings.map(\.ruleQ) == [1000, 550, 100])
        #expect(order.bindings.map(\.registeredQ) == [900, 495, 90])
        #expect(rules.handoffEncoding(for: h.call(), agent: "a").encoding == .uri)
        #expect(h.store.metrics.totalFailures == 0)
    }

    @Test func residentAgentsFollowUpdates() {
        let h = Harness(["init.lua": """
            function select_agent(call, agents)
              local best
              for _, a in ipairs(agents) do
                if a.attrs.language == "fr" and a.skills[call.type] and (best == nil or a.talk_ms < best.talk_ms) then best = a end
              end
              return best and best.id
            end
            """])
        _ = h.store.reload()
        h.store.agents.update(AgentInfo(id: "ann", skills: ["sales"], talkMs: 500, attrs: ["language": "fr"]))
        h.store.agents.update(AgentInfo(id: "bob", skills: ["sales"], talkMs: 100, attrs: ["language": "en"]))
        #expect(h.engine.selectAgent(for: h.call(), candidates: ["ann", "bob"]).agentID == "ann")
        h.store.agents.modify("bob") { $0.attrs["language"] = "fr" }
        #expect(h.engine.selectAgent(for: h.call(), candidates: ["ann", "bob"]).agentID == "bob")
        h.store.agents.remove("bob")
        #expect(h.engine.selectAgent(for: h.call(), candidates: ["ann", "bob"]).agentID == "ann")
        h.store.agents.update(AgentInfo(id: "bob", skills: ["sales"], talkMs: 1, attrs: ["language": "fr"]))
        #expect(h.engine.selectAgent(for: h.call(), candidates: ["ann", "bob"]).agentID == "bob")
    }

    @Test func agentValuesAndCallValuesMatchTheApi() {
        let h = Harness(["init.lua": """
            function select_agent(call, agents)
              local a = agents[1]
              assert(call.id == "c1" and call.type == "sales" and call.priority == 0, "call")
              assert(call.waited_ms == 5000, "waited " .. call.waited_ms)
              assert(#call.attempts == 1 and call.attempts[1] == "zed", "attempts")
              assert(call.invite.uri_user == "+18005550100", "invite")
              assert(a.id == "ann" and a.skills.sales == true and a.skills.support == true and a.skills.x == nil)
              assert(a.state == "available" and a.idle_ms == 250 and a.calls_handled == 3 and a.talk_ms == 700)
              assert(a.contact == "sip:ann@192.0.2.9" and a.attrs.level == 2 and a.attrs.vip_ok == true)
              assert(not pcall(function() a.skills.billing = true end))
              return a.id
            end
            """])
        _ = h.store.reload()
        h.store.agents.update(AgentInfo(id: "ann", skills: ["sales", "support"], idleSinceMs: h.clock.nowMs - 250,
                                        callsHandled: 3, talkMs: 700, contact: "sip:ann@192.0.2.9",
                                        attrs: ["level": 2, "vip_ok": true]))
        let s = h.engine.selectAgent(for: h.call(attempts: ["zed"]), candidates: ["ann"])
        #expect(s.agentID == "ann" && s.failure == nil, "\(String(describing: s.failure))")
    }

    @Test func clockAndLogAreInjected() {
        let h = Harness(["init.lua": """
            function classify(invite)
              log.warn("now", parley.now_ms())
              return "t" .. parley.now_ms()
            end
            """])
        _ = h.store.reload()
        h.clock.nowMs = 42
        #expect(h.engine.classify(invite()).type == "t42")
        let r = h.logs.records.first { $0.message == "now 42" }
        #expect(r?.level == .warn)
        #expect(r?.location.hasSuffix("init.lua:2") == true)
    }

    @Test func sandboxHasOnlyTheApiLibraries() {
        let h = Harness(["init.lua": """
            function classify(invite)
              for _, name in ipairs({"io", "os", "debug", "package", "load", "loadfile", "dofile", "collectgarbage", "loadstring"}) do
                assert(_G[name] == nil, name .. " should not exist")
              end
              assert(string.dump == nil, "string.dump")
              assert(string.format and table.sort and math.floor and utf8.char and pcall and setmetatable)
              return "ok"
            end
            """])
        _ = h.store.reload()
        let c = h.engine.classify(invite())
        #expect(c.type == "ok", "\(String(describing: c.failure))")
    }

    @Test func versionIsAContentHashAndUnchangedFilesDoNotRepublish() {
        let h = Harness(["init.lua": "function classify() return 'a' end\n"])
        guard case .published(1, let v1) = h.store.reload() else { Issue.record("not published"); return }
        #expect(v1.count == 64)
        #expect(h.store.reload() == .unchanged(version: v1))
        h.dir.write("init.lua", "function classify() return 'b' end\n")
        guard case .published(2, let v2) = h.store.reload() else { Issue.record("not published"); return }
        #expect(v1 != v2)
        h.dir.write("init.lua", "function classify() return 'a' end\n")
        #expect(h.store.reload() == .published(generation: 3, version: v1))
        #expect(h.engine.classify(invite()).version == v1)
    }

    @Test func aCallPinsTheGenerationItStartedWith() {
        let h = Harness(["init.lua": "function classify() return 'old' end\n"])
        _ = h.store.reload()
        let pinned = h.engine.pin()
        h.dir.write("init.lua", "function classify() return 'new' end\n")
        _ = h.store.reload()
        #expect(pinned.classify(invite()).type == "old")
        #expect(h.engine.classify(invite()).type == "new")
        #expect(pinned.classify(invite()).type == "old")
        #expect(pinned.version != h.engine.version)
    }

    @Test func deletedHooksDisappearAfterReload() {
        let h = Harness(["init.lua": "function classify() return 'x' end\n"])
        _ = h.store.reload()
        #expect(h.engine.classify(invite()).type == "x")
        h.dir.write("init.lua", "-- classify removed\n")
        _ = h.store.reload()
        #expect(h.engine.classify(invite()).type == "default")
    }

    @Test func watcherReloadsOnChange() {
        let h = Harness(["init.lua": "function classify() return 'one' end\n"])
        _ = h.store.reload()
        let w = h.store.watch(interval: 3600)
        defer { w.stop() }
        w.poll()
        #expect(h.engine.classify(invite()).type == "one")
        h.dir.write("init.lua", "function classify() return 'two!' end\n")
        w.poll()
        #expect(h.engine.classify(invite()).type == "two!")
        h.dir.write("lib/new.lua", "return 1\n")
        w.poll()
        #expect(h.store.current?.number == 3)
    }

    @Test func requireLoadsModulesOnceFromTheRuleDirectory() {
        let h = Harness([
            "init.lua": "local a = require 'lib.a'\nlocal b = require 'lib.a'\nassert(a == b)\nfunction classify() return a.name .. a.count() end\n",
            "lib/a.lua": "local n = 0\nreturn { name = 'a', count = function() n = n + 1; return n end }\n",
        ])
        #expect(h.store.reload().problems.isEmpty)
        #expect(h.engine.classify(invite()).type == "a1")
        #expect(h.engine.classify(invite()).type == "a2")
    }

    @Test func circularRequireIsAnError() {
        let h = Harness(["init.lua": "require 'lib.a'\n", "lib/a.lua": "require 'lib.b'\n", "lib/b.lua": "require 'lib.a'\n"])
        #expect(h.store.reload().problems.first?.message.contains("circular require") == true)
    }
}

@Suite struct ReloadConcurrencyTests {
    /// Hooks are called from two threads (one engine each) while the rules are reloaded 100
    /// times: no call fails and every answer comes from one of the two rule versions.
    @Test func hundredReloadsWhileTwoThreadsCallHooks() {
        let h = Harness(["init.lua": "function classify() return 'a' end\nfunction select_agent(c, agents) return agents[1].id end\n"])
        _ = h.store.reload()
        for i in 0..<50 { h.store.agents.update(AgentInfo(id: "agent\(i)", skills: ["sales"], idleSinceMs: Int64(i))) }
        let ids = (0..<50).map { "agent\($0)" }
        final class Shared: @unchecked Sendable {
            let lock = NSLock()
            var stop = false
            var calls = 0
            var bad: [String] = []
            var seen = Set<String>()
        }
        let shared = Shared()
        let store = h.store
        let call = h.call()
        let done = DispatchGroup()
        for _ in 0..<2 {
            done.enter()
            Thread.detachNewThread {
                let engine = RuleEngine(store: store)
                while true {
                    let stop = shared.lock.withLock { shared.stop }
                    let rules = engine.pin()
                    let c = rules.classify(invite())
                    let s = rules.selectAgent(for: call, candidates: ids)
                    shared.lock.withLock {
                        shared.calls += 1
                        shared.seen.insert(c.type)
                        if c.failure != nil || !["a", "b"].contains(c.type) { shared.bad.append("classify \(c)") }
                        if s.failure != nil || s.agentID != "agent0" { shared.bad.append("select \(s)") }
                    }
                    if stop { break }
                }
                done.leave()
            }
        }
        var published = 0
        for i in 0..<100 {
            h.dir.write("init.lua", "function classify() return '\(i % 2 == 0 ? "b" : "a")' end\n"
                + "function select_agent(c, agents) return agents[1].id end\n-- \(i)\n")
            if case .published = h.store.reload() { published += 1 }
            if i % 10 == 0 { usleep(1000) }
        }
        shared.lock.withLock { shared.stop = true }
        done.wait()
        #expect(published == 100)
        #expect(shared.bad.isEmpty, "\(shared.bad.prefix(5))")
        #expect(shared.calls > 0)
        #expect(h.store.metrics.totalFailures == 0)
    }
}
