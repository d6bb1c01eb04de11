import ParleyRules
import Testing

@Suite struct RegistrationQTests {
    @Test func agentsAreRegisteredAtNineTenthsOfTheirQ() {
        let b = RegistrationQ.bindings(for: [("a", 1.0), ("b", 0.5), ("c", 0.1)])
        #expect(b.map(\.registeredQ) == [900, 450, 90])
        #expect(b.map(\.ruleQ) == [1000, 500, 100])
        #expect(RegistrationQ.parleyQ == 1000)
    }

    @Test func roundingTiesKeepTheRuleOrder() {
        // 0.9 * 0.556 = 0.5004 and 0.9 * 0.555 = 0.4995 both round to 0.500.
        let b = RegistrationQ.bindings(for: [("a", 0.556), ("b", 0.555), ("c", 0.555)])
        #expect(b.map(\.registeredQ) == [500, 499, 498])
    }

    @Test func equalQsBecomeStrictlyDecreasingAndNeverNegative() {
        let b = RegistrationQ.bindings(for: [("a", 0.001), ("b", 0.001), ("c", 0.0)])
        #expect(b.map(\.registeredQ) == [1, 0, 0])
    }

    @Test func defaultOrderIsLongestIdleFirstFromOneDownToATenth() {
        let order = RegistrationQ.defaultOrder([("a", 10), ("b", 30), ("c", 20), ("d", 30)])
        #expect(order.map(\.agentID) == ["b", "d", "c", "a"])
        #expect(order.map(\.q) == [1.0, 0.7, 0.4, 0.1])
        #expect(RegistrationQ.defaultOrder([("x", 5)]).map(\.q) == [1.0])
    }

    @Test func formatsQValues() {
        #expect(RegistrationQ.format(1000) == "1.0")
        #expect(RegistrationQ.format(450) == "0.45")
        #expect(RegistrationQ.format(90) == "0.09")
        #expect(RegistrationQ.format(0) == "0.0")
    }
}
