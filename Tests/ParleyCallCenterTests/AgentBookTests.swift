import ParleyRules
import Testing

@testable import ParleyCallCenter

/// The agent book's indexes (available agents per skill, logged-in counts) against a plain scan
/// of every agent, through a long seeded run of offers, answers, no-answers, refusals, call
/// ends, wrap-up and break deadlines.
@Suite struct AgentBookTests {
    static let skills: Set<String> = ["sales", "support", "billing"]

    /// A small deterministic generator (xorshift), so a failure repeats.
    struct Rng {
        var s: UInt64
        mutating func next(_ n: Int) -> Int {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17
            return Int(s % UInt64(n))
        }
    }

    /// Every agent serving `type` (holding it, or any agent for a type no skill names), by a scan.
    func serving(_ book: AgentBook, type: String) -> [AgentStateMachine] {
        book.all.filter { !Self.skills.contains(type) || $0.skills.contains(type) }
    }

    /// Longest idle first, then configuration order: the order select_agent gets.
    func scanAvailable(_ book: AgentBook, type: String, excluding: [String]) -> [String] {
        let all = book.all
        let at = Dictionary(uniqueKeysWithValues: all.enumerated().map { ($1.id, $0) })
        return serving(book, type: type).filter { $0.isAvailable && !excluding.contains($0.id) }
            .sorted { a, b in
                let (x, y) = (a.idleSinceMs ?? 0, b.idleSinceMs ?? 0)
                return x != y ? x < y : at[a.id]! < at[b.id]!
            }.map(\.id)
    }

    func scanLoggedIn(_ book: AgentBook, type: String, excluding: [String]) -> Bool {
        serving(book, type: type).contains {
            if case .offline = $0.state { return false }
            return !excluding.contains($0.id)
        }
    }

    /// The idle order against a sorted array, with enough keys that taking the longest idle one
    /// again and again compacts the array (and inserting before every live key reuses a slot).
    @Test func idleOrderAgreesWithASortedArray() {
        var rng = Rng(s: 0x2545_F491_4F6C_DD1D)
        var order = IdleOrder()
        var want: [IdleOrder.Key] = []
        for step in 0..<20_000 {
            let k = IdleOrder.Key(since: Int64(rng.next(400)), position: Int32(rng.next(300)))
            switch rng.next(10) {
            case 0...3:
                order.insert(k)
                if !want.contains(k) { want.append(k); want.sort() }
            case 4...7:
                // The longest idle, as an offer takes it.
                if let first = want.first { order.remove(first); want.removeFirst() }
            case 8:
                order.remove(k)
                want.removeAll { $0 == k }
            default:
                // Before every live key (an agent whose idle time starts earlier than all).
                let early = IdleOrder.Key(since: (want.first?.since ?? 0) - 1, position: Int32(rng.next(300)))
                order.insert(early)
                if !want.contains(early) { want.append(early); want.sort() }
            }
            #expect(Array(order.keys) == want, "step \(step)")
            #expect(order.isEmpty == want.isEmpty)
            if Array(order.keys) != want { return }
        }
    }

    @Test func indexesAgreeWithAScanOfEveryAgent() {
        var rng = Rng(s: 0x9E37_79B9_7F4A_7C15)
        let names = ["sales", "support", "billing"]
        var now: Int64 = 0
        let timers = AgentTimers(wrapUpMs: 300, maxNoAnswer: 2, breakMs: 1_000, staleMs: 500)
        let machines = (0..<40).map { i in
            AgentStateMachine(id: "a\(i)", skills: [names[i % 3]] + (i % 4 == 0 ? [names[(i + 1) % 3]] : []), contact: nil,
                              timers: timers, available: i % 5 != 0, now: 0)
        }
        let directory = AgentDirectory()
        let book = AgentBook(agents: machines, directory: directory, now: { now })
        var calls: [String: String] = [:]  // call -> agent
        for step in 0..<5_000 {
            now += Int64(rng.next(120))
            let id = "a\(rng.next(40))"
            let call = "c\(step)"
            switch rng.next(9) {
            case 0, 1: if book.offer(id, call: call) { calls[call] = id }
            case 2:
                if let (c, a) = calls.randomElement(using: &rng) { book.answered(a, call: c) }
            case 3:
                if let (c, a) = calls.randomElement(using: &rng) { book.noAnswer(a, call: c); calls[c] = nil }
            case 4:
                if let (c, a) = calls.randomElement(using: &rng) { book.rejected(a, call: c); calls[c] = nil }
            case 5:
                if let (c, a) = calls.randomElement(using: &rng) { book.callEnded(a, call: c); calls[c] = nil }
            case 6:
                book.apply(id) { m, t in m.tick(now: t) }
            case 7 where rng.next(2) == 0:
                // An operator's break or log-off (pending on a ringing or busy agent), or back.
                let pick = rng.next(3)
                book.apply(id) { m, t in
                    switch pick {
                    case 0: _ = m.pause(reason: "lunch", now: t)
                    case 1: _ = m.logOff(reason: nil, now: t)
                    default: _ = m.makeAvailable(now: t)
                    }
                    return true
                }
            default:
                book.apply(id) { m, t in
                    if case .offline = m.state { m.setAvailable(now: t) } else if m.isAvailable { m.setOffline(now: t) }
                    return true
                }
            }
            let excluding = (0..<rng.next(3)).map { _ in "a\(rng.next(40))" }
            for type in names + ["default"] {
                let want = scanAvailable(book, type: type, excluding: excluding)
                #expect(book.availableServing(type: type, knownSkills: Self.skills, excluding: excluding)
                        == want, "step \(step) type \(type)")
                let c = book.candidates(type: type, knownSkills: Self.skills, excluding: excluding)
                #expect(c.slots.map { directory.agentID(slot: $0) ?? "?" } == want, "step \(step) type \(type)")
                #expect(c.idleSinceMs == want.map { book.agent($0)?.idleSinceMs ?? 0 }, "step \(step) type \(type)")
                #expect(book.anyLoggedIn(type: type, knownSkills: Self.skills, excluding: excluding)
                        == scanLoggedIn(book, type: type, excluding: excluding), "step \(step) type \(type)")
            }
            #expect(book.anyAvailable == book.all.contains(where: \.isAvailable))
            #expect(book.all.allSatisfy { $0.idleMs(at: now) == $0.info.idleMs(at: now) })
            // Agents by admin state, per skill and overall, against a count of every agent.
            let (bySkill, everyone) = book.countsByState()
            for type in names + [nil] {
                let scan = book.all.filter { type == nil || $0.skills.contains(type!) }
                let want = AgentStateMachine.adminStates.map { s in scan.filter { $0.adminState == s }.count }
                #expect((type.map { bySkill[$0] ?? [] } ?? everyone) == want, "step \(step) type \(type ?? "all")")
            }
        }
    }
}

extension Dictionary {
    func randomElement(using rng: inout AgentBookTests.Rng) -> (Key, Value)? {
        guard !isEmpty else { return nil }
        let i = index(startIndex, offsetBy: rng.next(count))
        return (self[i].key, self[i].value)
    }
}
