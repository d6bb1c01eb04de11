import ParleyRules
import ParleyTransport

/// The agents of one distributor: their state machines, kept in step with the rule engine's
/// resident agent tables (`AgentDirectory`), with wrap-up and break deadlines scheduled on the
/// distributor's loop. Confined to that loop.
public final class AgentBook: @unchecked Sendable {
    private var machines: [String: AgentStateMachine] = [:]
    /// Configuration order, for stable listings.
    public private(set) var order: [String] = []
    /// Each agent's place in `order`.
    private var position: [String: Int] = [:]
    /// Each agent's slot in the directory (by position), what the rule state knows it by.
    private var slots: [Int32] = []
    /// Who can be offered a call now, longest idle first, and who is logged in, per skill and
    /// overall: kept in step with every state change so that choosing an agent costs what the
    /// available agents of one skill cost, not what every agent costs, and needs no sorting.
    /// Boxed: changing a value kept in a dictionary goes through the dictionary's modify
    /// accessors, whose frames are allocated on every change; a box is changed in place.
    private var availableBySkill: [String: IdleOrderBox] = [:]
    private var availableAll = IdleOrder()
    private var onlineBySkill: [String: Int] = [:]
    private var onlineAll = 0
    /// Agents by admin state, per skill and overall (what the admin API's queues show).
    private var stateCountsBySkill: [String: StateCountsBox] = [:]
    private var stateCountsAll = [Int](repeating: 0, count: AgentStateMachine.adminStates.count)
    private let directory: AgentDirectory
    private let now: () -> Int64
    private var wakeups: [String: TimerToken] = [:]
    /// Schedules `body` after `ms` milliseconds (the distributor's stack timer wheel).
    var schedule: ((Int64, @escaping () -> Void) -> TimerToken)?
    /// Called when an agent becomes available (queued calls may now be served).
    var onAvailable: ((String) -> Void)?
    /// Called when an agent's state, reason or pending change changed (before, after).
    var onChange: ((AgentStateMachine, AgentStateMachine) -> Void)?

    public init(agents: [AgentStateMachine], directory: AgentDirectory, now: @escaping () -> Int64) {
        self.directory = directory
        self.now = now
        for a in agents where machines[a.id] == nil {
            machines[a.id] = a
            position[a.id] = order.count
            order.append(a.id)
            slots.append(directory.update(a.info))
            index(a, position: order.count - 1, add: true)
            count(a, add: true)
        }
    }

    private static func isOnline(_ m: AgentStateMachine) -> Bool {
        if case .offline = m.state { return false }
        return true
    }

    /// Adds an agent to (or removes it from) the availability and login indexes.
    private func index(_ m: AgentStateMachine, position p: Int, add: Bool) {
        if m.isAvailable {
            let key = IdleOrder.Key(since: m.idleSinceMs ?? 0, position: Int32(p))
            if add { availableAll.insert(key) } else { availableAll.remove(key) }
            for s in Self.distinctSkills(m) {
                if let box = availableBySkill[s] {
                    if add { box.order.insert(key) } else { box.order.remove(key) }
                } else if add {
                    let box = IdleOrderBox()
                    box.order.insert(key)
                    availableBySkill[s] = box
                }
            }
        }
        if Self.isOnline(m) {
            onlineAll += add ? 1 : -1
            for s in Self.distinctSkills(m) { onlineBySkill[s, default: 0] += add ? 1 : -1 }
        }
    }

    /// An agent's skills, each once (a skill listed twice counts once), without building a set.
    private static func distinctSkills(_ m: AgentStateMachine) -> some Sequence<String> {
        m.skills.enumerated().lazy.filter { i, s in !m.skills[..<i].contains(s) }.map(\.element)
    }

    /// Whether an agent serves `type`: holds it as a skill, or `type` is no configured skill.
    private func serves(_ m: AgentStateMachine, type: String, knownSkills: Set<String>) -> Bool {
        !knownSkills.contains(type) || m.skills.contains(type)
    }

    /// Available agents that serve `type` and are not in `excluding`, longest idle first (then
    /// configuration order): `select_agent`'s candidates, as directory slots.
    public func candidates(type: String, knownSkills: Set<String>, excluding: [String]) -> AgentCandidates {
        let pool = knownSkills.contains(type) ? (availableBySkill[type]?.order ?? IdleOrder()) : availableAll
        let excluded = excluding.compactMap { position[$0].map(Int32.init) }
        var c = AgentCandidates()
        c.slots.reserveCapacity(pool.keys.count)
        c.idleSinceMs.reserveCapacity(pool.keys.count)
        for k in pool.keys where excluded.isEmpty || !excluded.contains(k.position) {
            c.append(slot: slots[Int(k.position)], idleSinceMs: k.since)
        }
        return c
    }

    /// The same agents by id.
    public func availableServing(type: String, knownSkills: Set<String>, excluding: [String]) -> [String] {
        let pool = knownSkills.contains(type) ? (availableBySkill[type]?.order ?? IdleOrder()) : availableAll
        return pool.keys.map { order[Int($0.position)] }.filter { !excluding.contains($0) }
    }

    /// Whether an agent serving `type` is logged in (not offline), leaving out `excluding`.
    public func anyLoggedIn(type: String, knownSkills: Set<String>, excluding: [String] = []) -> Bool {
        let total = knownSkills.contains(type) ? (onlineBySkill[type] ?? 0) : onlineAll
        var excluded = 0
        for id in Set(excluding) {
            if let m = machines[id], Self.isOnline(m), serves(m, type: type, knownSkills: knownSkills) { excluded += 1 }
        }
        return total - excluded > 0
    }

    /// Whether any agent at all can be offered a call now.
    public var anyAvailable: Bool { !availableAll.isEmpty }

    public func agent(_ id: String) -> AgentStateMachine? { machines[id] }
    public var all: [AgentStateMachine] { order.compactMap { machines[$0] } }

    /// Agents counted by admin state (the indices of `AgentStateMachine.adminStates`): per
    /// skill, and over all agents. Kept as states change, so this costs what the skills do.
    func countsByState() -> (bySkill: [String: [Int]], all: [Int]) {
        (stateCountsBySkill.mapValues(\.counts), stateCountsAll)
    }

    /// Adds an agent to (or takes it from) the counts by admin state.
    private func count(_ m: AgentStateMachine, add: Bool) {
        let i = m.adminStateIndex, d = add ? 1 : -1
        stateCountsAll[i] += d
        for s in Self.distinctSkills(m) {
            if let box = stateCountsBySkill[s] {
                box.counts[i] += d
            } else {
                let box = StateCountsBox()
                box.counts[i] += d
                stateCountsBySkill[s] = box
            }
        }
    }

    /// Applies an event to one agent; publishes the change and schedules its next deadline.
    @discardableResult
    func apply(_ id: String, _ event: (inout AgentStateMachine, Int64) -> Bool) -> Bool {
        guard var m = machines[id] else { return false }
        let t = now()
        let before = m
        let changed = event(&m, t)
        machines[id] = m
        if let p = position[id], before.isAvailable != m.isAvailable || Self.isOnline(before) != Self.isOnline(m)
            || (m.isAvailable && before.idleSinceMs != m.idleSinceMs) {
            index(before, position: p, add: false)
            index(m, position: p, add: true)
        }
        if before.adminStateIndex != m.adminStateIndex || before.skills != m.skills {
            count(before, add: false)
            count(m, add: true)
        }
        if m != before { directory.update(m.info) }
        if let onChange, m.state != before.state || m.reason != before.reason || m.pending != before.pending {
            onChange(before, m)
        }
        if changed {
            reschedule(id)
            if m.isAvailable, !before.isAvailable { onAvailable?(id) }
        }
        return changed
    }

    private func reschedule(_ id: String) {
        wakeups.removeValue(forKey: id)?.cancel()
        guard let deadline = machines[id]?.nextDeadline, let schedule else { return }
        wakeups[id] = schedule(max(0, deadline - now())) { [weak self] in
            self?.wakeups[id] = nil
            self?.apply(id) { m, t in m.tick(now: t) }
        }
    }

    /// Sets the contact the rules see as `agent.contact` (the registered one, or the configured one).
    public func setContact(_ id: String, _ contact: String?) {
        apply(id) { m, _ in m.contact = contact; return false }
    }

    public func offer(_ id: String, call: String) -> Bool { apply(id) { m, t in m.offer(call: call, now: t) } }
    public func answered(_ id: String, call: String) { apply(id) { m, t in m.answered(call: call, now: t) } }
    public func noAnswer(_ id: String, call: String) { apply(id) { m, t in m.noAnswer(call: call, now: t) } }
    public func rejected(_ id: String, call: String) { apply(id) { m, t in m.rejected(call: call, now: t) } }
    public func callEnded(_ id: String, call: String) { apply(id) { m, t in m.callEnded(call: call, now: t) } }
    public func confirm(_ id: String, call: String) { apply(id) { m, t in m.confirm(call: call, now: t); return false } }

    /// Reconciles every agent against what the buffer server says is up and what the distributor
    /// still waits on.
    public func reconcile(liveCalls: Set<String>, pendingOffers: Set<String>) {
        for id in order {
            apply(id) { m, t in m.reconcile(liveCalls: liveCalls, pendingOffers: pendingOffers, now: t) }
        }
    }

    /// Counts by state, for statistics.
    public var stateCounts: [AgentState: Int] {
        var c: [AgentState: Int] = [:]
        for m in machines.values { c[m.ruleState, default: 0] += 1 }
        return c
    }
}

/// An `IdleOrder` kept by reference in `AgentBook.availableBySkill`, so it is changed in place.
final class IdleOrderBox {
    var order = IdleOrder()
}

final class StateCountsBox {
    var counts = [Int](repeating: 0, count: AgentStateMachine.adminStates.count)
}

/// Available agents in the order `select_agent` sees them: the earliest idle-since first (the
/// longest idle), then configuration order. A sorted array: an agent comes or goes by binary
/// search and one move of the elements after it (a few microseconds for thousands of agents),
/// and reading the order sorts nothing.
struct IdleOrder {
    struct Key: Comparable {
        var since: Int64
        var position: Int32
        static func < (a: Key, b: Key) -> Bool { a.since != b.since ? a.since < b.since : a.position < b.position }
    }
    /// Sorted. The first `head` entries are removed ones not yet compacted away: the longest idle
    /// agent (the first) is the one taken far more often than any other, and taking it moves
    /// nothing; the array is compacted when the removed part is over half of it.
    private var storage: [Key] = []
    private var head = 0

    /// The keys, longest idle first.
    var keys: ArraySlice<Key> { storage[head...] }

    private func lowerBound(_ k: Key) -> Int {
        var lo = head, hi = storage.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if storage[mid] < k { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    mutating func insert(_ k: Key) {
        let i = lowerBound(k)
        if i < storage.count, storage[i] == k { return }
        if i == head, head > 0 {
            // Before every live key: into the last removed slot.
            head -= 1
            storage[head] = k
            return
        }
        storage.insert(k, at: i)
    }

    mutating func remove(_ k: Key) {
        let i = lowerBound(k)
        guard i < storage.count, storage[i] == k else { return }
        guard i == head else {
            storage.remove(at: i)
            return
        }
        head += 1
        if head == storage.count {
            storage.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 64, head * 2 > storage.count {
            storage.removeFirst(head)
            head = 0
        }
    }

    var isEmpty: Bool { head == storage.count }
}
