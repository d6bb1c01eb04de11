import Foundation
import ParleyRules
import Testing

@Suite struct TestRunnerTests {
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    @Test func shippedRulesPass() throws {
        let report = try RuleTestRunner().run(paths: [TestRunnerTests.repoRoot + "/rules"])
        #expect(report.failed == 0, "\(report.results.filter { !$0.passed }.map(\.failureLine))")
        #expect(report.passed > 30)
    }

    @Test func examplesPass() throws {
        let report = try RuleTestRunner().run(paths: [TestRunnerTests.repoRoot + "/examples/rules"])
        #expect(report.failed == 0, "\(report.results.filter { !$0.passed }.map(\.failureLine))")
        #expect(report.passed >= 15)
    }

    @Test func failuresHaveFileLineAndMessage() throws {
        let d = RuleDir([
            "init.lua": "function classify(invite) return 'sales' end\n",
            "init_test.lua": """
                function test_passes() assert_eq(classify(sip.invite{}), "sales") end

                function test_fails()
                  assert_eq(classify(sip.invite{}), "support")
                end
                function test_loops() while true do end end
                function test_errors() local t = nil; return t.x end
                """,
            "broken_test.lua": "function test_x(\n",
        ])
        var limits = RuleLimits.tests
        limits.instructions = 1_000_000
        let report = try RuleTestRunner(limits: limits).run(paths: [d.path])
        #expect(report.summary == "1 passed, 4 failed")
        let lines = report.results.filter { !$0.passed }.map(\.failureLine)
        #expect(lines.contains { $0.hasPrefix(d.path + "/broken_test.lua:2: (load): ") }, "\(lines)")
        #expect(lines.contains(d.path + "/init_test.lua:4: test_fails: expected \"support\", got \"sales\""), "\(lines)")
        #expect(lines.contains { $0.hasPrefix(d.path + "/init_test.lua:6: test_loops: instruction budget") }, "\(lines)")
        #expect(lines.contains { $0.hasPrefix(d.path + "/init_test.lua:7: test_errors: attempt to index") }, "\(lines)")
        let xml = report.junitXML()
        #expect(xml.contains("<testcase classname=\"\(d.path)/init_test.lua\" name=\"test_fails\""))
        #expect(xml.contains("failures=\"4\""))
    }

    @Test func testsCannotLeakStateIntoEachOther() throws {
        let d = RuleDir([
            "init.lua": "counter = 0\nfunction classify() counter = counter + 1; return tostring(counter) end\n",
            "init_test.lua": """
                function test_a() assert_eq(classify(sip.invite{}), "1") end
                function test_b() assert_eq(classify(sip.invite{}), "1") end
                """,
        ])
        let report = try RuleTestRunner().run(paths: [d.path])
        #expect(report.summary == "2 passed, 0 failed")
    }

    @Test func runFilterAndRulesOption() throws {
        let rules = RuleDir(["init.lua": "function classify() return 'x' end\n"])
        let tests = RuleDir([
            "elsewhere_test.lua": """
                function test_one() assert_eq(classify(sip.invite{}), "x") end
                function test_two() assert(false, "not run") end
                """,
        ])
        let report = try RuleTestRunner(rulesDirectory: rules.path, filter: "one$").run(paths: [tests.path])
        #expect(report.summary == "1 passed, 0 failed")
        let noRules = try RuleTestRunner().run(paths: [tests.path])
        #expect(noRules.failed == 1)
        #expect(noRules.results.first?.message?.contains("no init.lua") == true)
    }

    @Test func ruleSetThatDoesNotLoadFailsItsTests() throws {
        let d = RuleDir(["init.lua": "classify = 1\n", "init_test.lua": "function test_a() end\n"])
        let report = try RuleTestRunner().run(paths: [d.path])
        #expect(report.summary == "0 passed, 1 failed")
        #expect(report.results[0].failureLine.contains("init.lua:1: (load): classify must be a function"), "\(report.results[0].failureLine)")
    }

    @Test func helpersBuildValuesWithDefaults() throws {
        let d = RuleDir([
            "init.lua": "",
            "init_test.lua": """
                function test_helpers()
                  local a = agent{id = "x", skills = {"sales"}, attrs = {language = "fr"}}
                  assert_eq(a.state, "available"); assert_eq(a.idle_ms, 0); assert_eq(a.skills.sales, true)
                  local c = call{type = "sales"}
                  assert_eq(c.invite.method, "INVITE"); assert_eq(c.attempts, {})
                  local ad = address{skill = "sales"}
                  assert_eq(ad, {aor = "sip:sales@cc.example.com", skill = "sales", kind = "skill", name = "sales"})
                  assert_eq(address{kind = "treatment", name = "moh"}.skill, nil)
                  local inv = sip.invite{uri = "sip:8000@cc.example.com", from = "+15550001", headers = {Subject = "hi"}, body = "v=0"}
                  assert_eq({inv.uri_user, inv.from_user, inv:header("s"), inv.body, inv.content_type},
                            {"8000", "+15550001", "hi", "v=0", "application/sdp"})
                  assert_eq(parley.now_ms(), 0)
                  parley.set_now_ms(5)
                  assert_eq(parley.now_ms(), 5)
                  local ok = pcall(agent, {idel_ms = 3})
                  assert(not ok, "misspelt fields are errors")
                end
                """,
        ])
        let report = try RuleTestRunner().run(paths: [d.path])
        #expect(report.summary == "1 passed, 0 failed", "\(report.results.map(\.failureLine))")
    }
}
