import Foundation

/// The agents every Lua state keeps resident, shared by all engines.
///
/// The distributor calls `update` and `remove` when an agent's state changes; each engine's Lua
/// state catches up at its next hook call by applying only the changes since it last looked, so
/// hooks never pay for building agent tables, nor for looking at agents that did not change.
public final class AgentDirectory: @unchecked Sendable {
    struct Entry {
        var slot: Int32
        var info: AgentInfo
        var revision: UInt64
    }

    struct Changes {
        var revision: UInt64
        var updated: [(slot: Int32, info: AgentInfo)]
        var removed: [(slot: Int32, id: String)]
    }

    private let lock = NSLock()
    private var entries: [String: Entry] = [:]
    private var removed: [(slot: Int32, id: String, revision: UInt64)] = []
    /// Which agent changed at each revision, oldest first: a reader that looked at revision r
    /// reads the log from r on instead of every agent. Trimmed to the newest half when it grows
    /// past a few times the number of agents; a reader older than what is left reads everything.
    private var log: [(revision: UInt64, id: String)] = []
    /// The id at each slot (index = slot; slot 0 is never used).
    private var idsBySlot: [String?] = [nil]
    private var nextSlot: Int32 = 1
    private var revisionValue: UInt64 = 0

    public init() {}

    /// Adds an agent or replaces what is known about it; returns its slot (stable while the
    /// agent is known: what `AgentCandidates` carries).
    @discardableResult
    public func update(_ agent: AgentInfo) -> Int32 {
        lock.withLock {
            revisionValue += 1
            note(agent.id)
            if var e = entries[agent.id] {
                e.info = agent
                e.revision = revisionValue
                entries[agent.id] = e
                return e.slot
            }
            entries[agent.id] = Entry(slot: nextSlot, info: agent, revision: revisionValue)
            idsBySlot.append(agent.id)
            nextSlot += 1
            return nextSlot - 1
        }
    }

    /// Changes one agent in place (e.g. its state and idle time), if it is known.
    public func modify(_ id: String, _ change: (inout AgentInfo) -> Void) {
        lock.withLock {
            guard var e = entries[id] else { return }
            change(&e.info)
            revisionValue += 1
            note(id)
            e.revision = revisionValue
            entries[id] = e
        }
    }

    /// Forgets an agent.
    public func remove(_ id: String) {
        lock.withLock {
            guard let e = entries.removeValue(forKey: id) else { return }
            idsBySlot[Int(e.slot)] = nil
            revisionValue += 1
            removed.append((e.slot, id, revisionValue))
        }
    }

    /// Every agent, in no particular order.
    public var agents: [AgentInfo] { lock.withLock { entries.values.map(\.info) } }

    public func agent(_ id: String) -> AgentInfo? { lock.withLock { entries[id]?.info } }

    /// An agent's slot, if it is known.
    public func slot(of id: String) -> Int32? { lock.withLock { entries[id]?.slot } }

    /// The id of the agent at a slot.
    public func agentID(slot: Int32) -> String? {
        lock.withLock { slot > 0 && Int(slot) < idsBySlot.count ? idsBySlot[Int(slot)] : nil }
    }

    var revision: UInt64 { lock.withLock { revisionValue } }

    private func note(_ id: String) {
        log.append((revisionValue, id))
        if log.count > 4 * entries.count + 1024 { log.removeFirst(log.count / 2) }
    }

    /// What changed after `revision`.
    func changes(since revision: UInt64) -> Changes {
        lock.withLock {
            var up: [(Int32, AgentInfo)] = []
            if let first = log.first, first.revision <= revision + 1 {
                // the log covers everything after `revision`: only the agents named there
                var lo = 0, hi = log.count
                while lo < hi {
                    let mid = (lo + hi) / 2
                    if log[mid].revision > revision { hi = mid } else { lo = mid + 1 }
                }
                var seen = Set<String>()
                for i in lo..<log.count where seen.insert(log[i].id).inserted {
                    if let e = entries[log[i].id], e.revision > revision { up.append((e.slot, e.info)) }
                }
            } else {
                for e in entries.values where e.revision > revision { up.append((e.slot, e.info)) }
            }
            var rm: [(Int32, String)] = []
            for r in removed.reversed() {
                if r.revision <= revision { break }
                rm.append((r.slot, r.id))
            }
            return Changes(revision: revisionValue, updated: up, removed: rm.reversed())
        }
    }
}
