/// One agent's binding for a contact-center address: the q the rule chose and the q Parley
/// registers upstream (in thousandths, as RFC 3261 allows three decimals).
public struct RegistrationBinding: Sendable, Equatable, CustomStringConvertible {
    public var agentID: String
    /// The q `order_registrations` returned, in thousandths (0...1000).
    public var ruleQ: Int
    /// The q registered upstream, in thousandths: 0.9 times `ruleQ`, kept strictly below the
    /// binding listed before it.
    public var registeredQ: Int

    public init(agentID: String, ruleQ: Int, registeredQ: Int) {
        self.agentID = agentID
        self.ruleQ = ruleQ
        self.registeredQ = registeredQ
    }

    public var description: String { "\(agentID) q=\(RegistrationQ.format(ruleQ)) -> \(RegistrationQ.format(registeredQ))" }
}

/// The q arithmetic of registration ordering (rule API v1, "order_registrations").
public enum RegistrationQ {
    /// Parley's own binding for every address, in thousandths: it outranks every agent.
    public static let parleyQ = 1000

    /// A q in 0...1 as thousandths, rounded half up.
    public static func thousandths(_ q: Double) -> Int {
        Int((min(1, max(0, q)) * 1000).rounded(.toNearestOrAwayFromZero))
    }

    /// Writes thousandths as a q-value (`1`, `0.9`, `0.45`, `0`).
    public static func format(_ thousandths: Int) -> String {
        let t = min(1000, max(0, thousandths))
        if t == 1000 { return "1.0" }
        if t == 0 { return "0.0" }
        var digits = String(t)
        while digits.count < 3 { digits = "0" + digits }
        while digits.hasSuffix("0") { digits.removeLast() }
        return "0." + digits
    }

    /// The q values Parley registers for the order a rule chose: each agent at 0.9 times its q,
    /// rounded to three decimals; the order is kept, so where rounding (or the rule's own values)
    /// would tie or invert two agents, the one listed later is put one thousandth below the one
    /// before it (never below 0).
    public static func bindings(for order: [(agentID: String, q: Double)]) -> [RegistrationBinding] {
        var out: [RegistrationBinding] = []
        out.reserveCapacity(order.count)
        var previous = parleyQ
        for entry in order {
            let ruleQ = thousandths(entry.q)
            var registered = (ruleQ * 9 + 5) / 10
            registered = max(0, min(registered, previous - 1))
            out.append(RegistrationBinding(agentID: entry.agentID, ruleQ: ruleQ, registeredQ: registered))
            previous = registered
        }
        return out
    }

    /// The default order: every agent by `idle_ms`, longest idle first (ties keep the given
    /// order), q from 1.0 down in even steps to 0.1.
    public static func defaultOrder(_ agents: [(agentID: String, idleMs: Int64)]) -> [(agentID: String, q: Double)] {
        let sorted = agents.enumerated().sorted { a, b in
            a.element.idleMs != b.element.idleMs ? a.element.idleMs > b.element.idleMs : a.offset < b.offset
        }
        let n = sorted.count
        return sorted.enumerated().map { i, e in
            let q = n == 1 ? 1.0 : 1.0 - 0.9 * Double(i) / Double(n - 1)
            return (e.element.agentID, Double(thousandths(q)) / 1000)
        }
    }
}
