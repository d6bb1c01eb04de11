import Foundation

/// The agents every Lua state keeps resident, shared by all engines.
///
/// The distributor calls `update` and `remove` when an agent's state changes; each engine's Lua
/// state catches up at its next hook call by applying only the changes since it last looked, so
/// hooks never pay for building agent tables.
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
    private var nextSlot: Int32 = 1
    private var revisionValue: UInt64 = 0

    public init() {}

    /// Adds an agent or replaces what is known about it.
    public func update(_ agent: AgentInfo) {
        lock.withLock {
            revisionValue += 1
            if var e = entries[agent.id] {
                e.info = agent
                e.revision = revisionValue
                entries[agent.id] = e
            } else {
                entries[agent.id] = Entry(slot: nextSlot, info: agent, revision: revisionValue)
                nextSlot += 1
            }
        }
    }

    /// Changes one agent in place (e.g. its state and idle time), if it is known.
    public func modify(_ id: String, _ change: (inout AgentInfo) -> Void) {
        lock.withLock {
            guard var e = entries[id] else { return }
            change(&e.info)
            revisionValue += 1
            e.revision = revisionValue
            entries[id] = e
        }
    }

    /// Forgets an agent.
    public func remove(_ id: String) {
        lock.withLock {
            guard let e = entries.removeValue(forKey: id) else { return }
            revisionValue += 1
            removed.append((e.slot, id, revisionValue))
        }
    }

    /// Every agent, in no particular order.
    public var agents: [AgentInfo] { lock.withLock { entries.values.map(\.info) } }

    public func agent(_ id: String) -> AgentInfo? { lock.withLock { entries[id]?.info } }

    var revision: UInt64 { lock.withLock { revisionValue } }

    /// What changed after `revision`.
    func changes(since revision: UInt64) -> Changes {
        lock.withLock {
            var up: [(Int32, AgentInfo)] = []
            for e in entries.values where e.revision > revision { up.append((e.slot, e.info)) }
            var rm: [(Int32, String)] = []
            for r in removed where r.revision > revision { rm.append((r.slot, r.id)) }
            return Changes(revision: revisionValue, updated: up, removed: rm)
        }
    }
}
