import Foundation
import ParleyRules
import Testing

/// Bad rule sets at reload: each gives a clear message with file:line, nothing crashes or hangs,
/// and the engine keeps answering with the last good rules.
@Suite struct BadReloadTests {
    static let good = """
        function classify(invite)
          return "sales", {priority = 1}
        end
        """

    /// Loads the good rules, replaces init.lua (and extra files) with bad ones, reloads, and checks.
    func expectRejected(_ bad: [String: String], contains expected: String, line: Int? = nil, file: String = "init.lua",
                        sourceLocation: SourceLocation = #_sourceLocation) {
        let h = Harness(["init.lua": BadReloadTests.good])
        guard case .published = h.store.reload() else {
            Issue.record("good rules did not load", sourceLocation: sourceLocation)
            return
        }
        let before = h.engine.classify(invite())
        #expect(before.type == "sales", sourceLocation: sourceLocation)
        for (name, text) in bad { h.dir.write(name, text) }
        let outcome = h.store.reload()
        let problems = outcome.problems
        #expect(!problems.isEmpty, "reload should fail", sourceLocation: sourceLocation)
        let text = problems.map(\.description).joined(separator: "\n")
        #expect(text.contains(expected), "\(text)", sourceLocation: sourceLocation)
        if let line {
            #expect(problems.contains { $0.file == h.dir.path + "/" + file && $0.line == line }, "\(text)",
                    sourceLocation: sourceLocation)
        }
        #expect(h.store.lastProblems == problems, sourceLocation: sourceLocation)
        // The last good rules still answer.
        let after = h.engine.classify(invite())
        #expect(after.type == "sales" && after.priority == 1 && after.failure == nil, sourceLocation: sourceLocation)
        #expect(after.version == before.version, sourceLocation: sourceLocation)
        #expect(h.store.metrics.failedReloads == 1, sourceLocation: sourceLocation)
    }

    @Test func syntaxError() {
        expectRejected(["init.lua": "function classify(invite)\n  return 'x'\n\nlocal = 3\n"], contains: "'end' expected (to close 'function' at line 1)", line: 4)
    }

    @Test func syntaxErrorsInEveryFileAreReported() {
        let h = Harness(["init.lua": "x = = 1\n", "lib/a.lua": "\n\nreturn {\n", "lib/b.lua": "return 1 +\n"])
        let problems = h.store.reload().problems
        #expect(problems.count == 3)
        #expect(problems.map(\.line) == [1, 3, 1].map { Optional($0) } || Set(problems.compactMap(\.file)).count == 3)
    }

    @Test func runtimeErrorAtLoad() {
        expectRejected(["init.lua": "local x = 1\nerror('site config missing')\n"], contains: "site config missing", line: 2)
    }

    @Test func runtimeErrorInARequiredModule() {
        expectRejected(["init.lua": "require 'lib.cfg'\n", "lib/cfg.lua": "\nlocal t = nil\nreturn t.x\n"],
                       contains: "attempt to index", line: 3, file: "lib/cfg.lua")
    }

    @Test func hookOfTheWrongType() {
        expectRejected(["init.lua": "-- oops\n\nclassify = 'sales'\n"], contains: "classify must be a function, but it is a string", line: 3)
    }

    @Test func requireWithParentPath() {
        expectRejected(["init.lua": "\nrequire '../secret'\n"], contains: "only modules of their own rule directory", line: 2)
    }

    @Test func requireWithAbsolutePath() {
        expectRejected(["init.lua": "require '/etc/passwd'\n"], contains: "only modules of their own rule directory", line: 1)
    }

    @Test func requireOfAMissingModule() {
        expectRejected(["init.lua": "require 'lib.nothere'\n"], contains: "no file lib/nothere.lua", line: 1)
    }

    @Test func requireCannotReachAFileLinkedFromOutside() throws {
        let outside = RuleDir(["secret.lua": "return 'secret'"])
        let h = Harness(["init.lua": BadReloadTests.good])
        #expect(h.store.reload() != .failed([]))
        try FileManager.default.createSymbolicLink(atPath: h.dir.path + "/leak.lua", withDestinationPath: outside.path + "/secret.lua")
        h.dir.write("init.lua", "require 'leak'\n" + BadReloadTests.good)
        let problems = h.store.reload().problems
        #expect(problems.contains { $0.message.contains("links outside the rule directory") })
        #expect(h.engine.classify(invite()).type == "sales")
    }

    @Test func bytecodeChunk() {
        let h = Harness(["init.lua": BadReloadTests.good])
        _ = h.store.reload()
        h.dir.write("init.lua", [0x1B] + Array("LuaT\0\u{19}\u{93}\r\n\u{1a}\n".utf8) + [UInt8](repeating: 0, count: 40))
        let problems = h.store.reload().problems
        #expect(problems.first?.description.contains("init.lua:1: precompiled (bytecode) chunks are not allowed") == true,
                "\(problems)")
        #expect(h.engine.classify(invite()).type == "sales")
    }

    @Test func bytecodeModuleThroughRequire() {
        let h = Harness(["init.lua": BadReloadTests.good])
        _ = h.store.reload()
        h.dir.write("lib/bin.lua", [0x1B, 0x4C, 0x75, 0x61, 0x54, 0x00])
        h.dir.write("init.lua", "require 'lib.bin'\n" + BadReloadTests.good)
        let text = h.store.reload().problems.map(\.description).joined()
        #expect(text.contains("lib/bin.lua:1: precompiled"), "\(text)")
        #expect(h.engine.classify(invite()).type == "sales")
    }

    @Test func infiniteLoopAtLoad() {
        expectRejected(["init.lua": "local n = 0\nwhile true do\n  n = n + 1\nend\n"], contains: "instruction budget")
    }

    @Test func memoryBombAtLoad() {
        expectRejected(["init.lua": "local t = {}\nfor i = 1, 1e9 do\n  t[i] = string.rep('x', 1000) .. i\nend\n"],
                       contains: "memory limit")
    }

    @Test func hugeStringAtLoad() {
        expectRejected(["init.lua": "local s = string.rep('x', 1 << 30)\n"], contains: "memory limit")
    }

    @Test func pathologicalPatternAtLoad() {
        expectRejected(["init.lua": "local s = string.rep('a', 3000)\nlocal x = s:find(string.rep('a*', 12) .. 'b')\n"],
                       contains: "too costly", line: 2)
    }

    @Test func missingInitLua() {
        let h = Harness(["lib/x.lua": "return 1"])
        let problems = h.store.reload().problems
        #expect(problems.first?.description.hasSuffix("init.lua: missing: a rule set starts from init.lua") == true)
        // No rules ever loaded: defaults.
        let c = h.engine.classify(invite())
        #expect(c.type == "default" && c.version == "none" && c.failure == nil)
    }

    @Test func testFilesAreNeverLoadedAsRules() {
        let h = Harness(["init.lua": BadReloadTests.good, "init_test.lua": "this is not lua at all ((("])
        #expect(h.store.reload().problems.isEmpty)
    }
}

/// Hooks that fail at call time: logged with file:line, counted, default used; never thrown.
@Suite struct FailedHookTests {
    func loaded(_ initLua: String) -> Harness {
        let h = Harness(["init.lua": initLua])
        let outcome = h.store.reload()
        #expect(outcome.problems.isEmpty, "\(outcome)")
        h.store.agents.update(AgentInfo(id: "ann", skills: ["sales"], idleSinceMs: h.clock.nowMs - 100))
        h.store.agents.update(AgentInfo(id: "bob", skills: ["sales"], idleSinceMs: h.clock.nowMs - 900))
        return h
    }

    @Test func errorInClassifyFallsBackToDefault() {
        let h = loaded("function classify(invite)\n  local t = nil\n  return t.type\nend\n")
        let c = h.engine.classify(invite())
        #expect(c.type == "default" && c.priority == 0)
        #expect(c.failure?.kind == .error)
        #expect(c.failure?.message.contains("/init.lua:3: attempt to index") == true, "\(String(describing: c.failure))")
        #expect(h.store.metrics.failures[.classify] == 1)
        #expect(h.logs.records.contains { $0.level == .error && $0.location.hasSuffix("init.lua:3") })
    }

    @Test func errorWithATableValueIsDescribed() {
        let h = loaded("function classify(invite)\n  error({code = 1})\nend\n")
        let c = h.engine.classify(invite())
        #expect(c.failure?.message.contains("init.lua:2: (error object is a table value)") == true, "\(String(describing: c.failure))")
    }

    @Test func infiniteLoopInAHookIsStoppedAndTheStateStillWorks() {
        let h = loaded("""
            function classify(invite)
              if invite:header("X-Loop") then
                while true do end
              end
              return "sales"
            end
            """)
        let looping = invite(sampleInvite.replacingOccurrences(of: "X-Tenant: blue", with: "X-Loop: 1"))
        let c = h.engine.classify(looping)
        #expect(c.type == "default" && c.failure?.kind == .budget)
        #expect(c.failure?.message.contains("init.lua:3: instruction budget") == true, "\(String(describing: c.failure))")
        #expect(h.engine.classify(invite()).type == "sales")
    }

    @Test func pcallCannotSwallowTheBudget() {
        let h = loaded("""
            function classify(invite)
              while true do
                pcall(function() while true do end end)
              end
            end
            """)
        let c = h.engine.classify(invite())
        #expect(c.failure?.kind == .budget)
    }

    @Test func memoryBombInAHookIsStopped() {
        let h = loaded("""
            function select_agent(call, agents)
              local t = {}
              for i = 1, 1e9 do t[i] = string.rep('x', 10000) .. i end
            end
            """)
        let s = h.engine.selectAgent(for: h.call(), candidates: ["ann", "bob"])
        #expect(s.failure?.kind == .memory)
        #expect(s.failure?.message.contains("memory limit") == true)
        #expect(s.agentID == "bob") // the default: longest idle
        let again = h.engine.selectAgent(for: h.call(), candidates: ["ann", "bob"])
        #expect(again.failure?.kind == .memory) // and the state survived to fail the same way again
    }

    @Test func pathologicalPatternInAHookIsRefused() {
        let h = loaded("""
            function classify(invite)
              local s = string.rep(invite.uri_user, 400)
              if s:match(string.rep("(.-)", 10) .. "x") then return "odd" end
              return "sales"
            end
            """)
        let c = h.engine.classify(invite())
        #expect(c.failure?.kind == .error)
        #expect(c.failure?.message.contains("init.lua:3: string.match: pattern") == true, "\(String(describing: c.failure))")
    }

    @Test func overlongPatternSubjectIsRefused() {
        let h = loaded("function classify(invite)\n  return (string.rep('a', 100000):match('a'))\nend\n")
        let c = h.engine.classify(invite())
        #expect(c.failure?.message.contains("subject of 100000 bytes is longer than the pattern limit") == true)
    }

    @Test func wrongReturnTypes() {
        let h = loaded("""
            function classify(invite) return 42 end
            function select_agent(call, agents) return agents[1] end
            function order_registrations(address, agents) return "everyone" end
            function handoff_encoding(call, agent) return nil end
            """)
        let c = h.engine.classify(invite())
        #expect(c.failure?.kind == .wrongType && c.type == "default")
        #expect(c.failure?.message.contains("init.lua:1: classify returned a number, expected a call type") == true)
        let s = h.engine.selectAgent(for: h.call(), candidates: ["ann", "bob"])
        #expect(s.failure?.kind == .wrongType && s.agentID == "bob")
        #expect(s.failure?.message.contains("return the agent's id") == true)
        let o = h.engine.orderRegistrations(for: AddressInfo(aor: "sip:sales@cc", skill: "sales", kind: .skill, name: "sales"),
                                            agents: ["ann", "bob"])
        #expect(o.failure?.kind == .wrongType)
        #expect(o.bindings.map(\.agentID) == ["bob", "ann"])
        let e = h.engine.handoffEncoding(for: h.call(), agent: "ann")
        #expect(e.failure?.kind == .wrongType && e.encoding == .uri)
        #expect(h.store.metrics.totalFailures == 4)
    }

    @Test func badPriorityIsAWrongType() {
        let h = loaded("function classify(invite) return 'sales', {priority = 'high'} end")
        #expect(h.engine.classify(invite()).failure?.kind == .wrongType)
    }

    @Test func unknownAgentIdFallsBackToDefault() {
        let h = loaded("function select_agent(call, agents) return 'mallory' end")
        let s = h.engine.selectAgent(for: h.call(), candidates: ["ann", "bob"])
        #expect(s.failure?.kind == .unknownAgent && s.agentID == "bob")
        #expect(s.failure?.message.contains("init.lua:1: select_agent returned \"mallory\"") == true)
    }

    @Test func agentAlreadyAttemptedIsNotACandidate() {
        let h = loaded("function select_agent(call, agents) return 'bob' end")
        let s = h.engine.selectAgent(for: h.call(attempts: ["bob"]), candidates: ["ann"])
        #expect(s.failure?.kind == .unknownAgent && s.agentID == "ann")
    }

    @Test func unknownAndDuplicateRegistrations() {
        let address = AddressInfo(aor: "sip:sales@cc", skill: "sales", kind: .skill, name: "sales")
        let h = loaded("function order_registrations(a, agents) return {{id = 'ann', q = 1}, {id = 'zed', q = 0.5}} end")
        #expect(h.engine.orderRegistrations(for: address, agents: ["ann", "bob"]).failure?.kind == .unknownAgent)
        let d = loaded("function order_registrations(a, agents) return {{id = 'ann', q = 1}, {id = 'ann', q = 0.5}} end")
        #expect(d.engine.orderRegistrations(for: address, agents: ["ann", "bob"]).failure?.kind == .wrongType)
        let q = loaded("function order_registrations(a, agents) return {{id = 'ann', q = 1.5}} end")
        #expect(q.engine.orderRegistrations(for: address, agents: ["ann"]).failure?.message.contains("outside 0 to 1") == true)
    }

    @Test func unknownEncodingFallsBackToUri() {
        let h = loaded("function handoff_encoding(call, agent) return 'fax' end")
        let e = h.engine.handoffEncoding(for: h.call(), agent: "ann")
        #expect(e.failure?.kind == .unknownEncoding && e.encoding == .uri)
    }

    @Test func hookReplacedByANonFunctionAtRunTime() {
        let h = loaded("""
            function classify(invite)
              select_agent = 7
              return "sales"
            end
            function select_agent(call, agents) return nil end
            """)
        #expect(h.engine.classify(invite()).type == "sales")
        let s = h.engine.selectAgent(for: h.call(), candidates: ["ann"])
        #expect(s.failure?.kind == .wrongType && s.agentID == "ann")
    }
}
