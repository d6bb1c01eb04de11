import GRDB

/// An agent's presence as an operator set it: what survives a restart of `parley serve`.
public enum AgentPresence: String, Sendable, Equatable {
    case available, `break`, offline
}

/// One agent event for the queue log, and what of it survives a restart.
public struct AgentLogEntry: Sendable, Equatable {
    /// The call and queue columns of an agent's line (as Asterisk's queue_log writes them).
    public static let noCall = "NONE"

    public var agent: String
    /// `.login`, `.logoff`, `.pause` or `.unpause`.
    public var event: QueueLogEvent
    public var reason: String?
    /// The presence to keep for the next start (nil: nothing to keep, e.g. a break after
    /// missed calls, which ends by itself).
    public var presence: AgentPresence?
    public var at: Int64

    public init(agent: String, event: QueueLogEvent, reason: String?, presence: AgentPresence?, at: Int64) {
        self.agent = agent
        self.event = event
        self.reason = reason
        self.presence = presence
        self.at = at
    }
}

/// An agent's kept presence.
public struct SavedPresence: Sendable, Equatable {
    public var presence: AgentPresence
    public var reason: String?
    public var sinceMs: Int64
}

extension RecordStore {
    /// The second migration: the reason column of agent lines, and each agent's kept presence.
    static func agentTables(_ db: Database) throws {
        try db.execute(sql: """
            ALTER TABLE queue_log ADD COLUMN data TEXT;
            CREATE TABLE agent_presence (
                agent TEXT PRIMARY KEY NOT NULL,
                presence TEXT NOT NULL,
                reason TEXT,
                since_ms INTEGER NOT NULL
            );
            """)
    }

    static func apply(_ e: AgentLogEntry, _ db: Database) throws {
        try db.run("""
            INSERT INTO queue_log (time_ms, call, queue, agent, event, rules_version, duration_ms, code, data)
            VALUES (?, ?, ?, ?, ?, '', NULL, NULL, ?)
            """, [.int(e.at), .text(AgentLogEntry.noCall), .text(AgentLogEntry.noCall), .text(e.agent), .text(e.event.rawValue),
                  .text(e.reason)])
        if let p = e.presence {
            try db.run("""
                INSERT INTO agent_presence (agent, presence, reason, since_ms) VALUES (?, ?, ?, ?)
                ON CONFLICT(agent) DO UPDATE SET presence = excluded.presence, reason = excluded.reason, since_ms = excluded.since_ms
                """, [.text(e.agent), .text(p.rawValue), .text(e.reason), .int(e.at)])
        }
    }

    /// Every agent's kept presence (what an operator last set), by agent id.
    public func savedPresences() throws -> [String: SavedPresence] {
        flush()
        return try db.read { db in
            var out: [String: SavedPresence] = [:]
            for r in try Row.fetchAll(db, sql: "SELECT agent, presence, reason, since_ms FROM agent_presence") {
                guard let p = AgentPresence(rawValue: r["presence"]) else { continue }
                out[r["agent"]] = SavedPresence(presence: p, reason: r["reason"], sinceMs: r["since_ms"])
            }
            return out
        }
    }
}

/// One queue's figures since a time (the admin API's "today"); two of them add up (what the
/// records hold from before a start, and what was counted since).
public struct QueueToday: Sendable, Equatable {
    public var offered = 0
    /// Answered by an agent (whatever came after: completed, transferred, still talking).
    public var answered = 0
    public var abandoned = 0
    /// Failed, timed out, overflowed.
    public var failed = 0
    /// Answered within the service-level threshold.
    public var answeredInTime = 0
    /// Abandoned after the threshold.
    public var abandonedLate = 0
    /// The answered calls' waits, summed.
    public var waitTotalMs: Int64 = 0
    /// Calls completed, and their talk (answer to end), summed.
    public var completed = 0
    public var handleTotalMs: Int64 = 0

    public init() {}

    public var averageWaitMs: Int64? { answered == 0 ? nil : Int64((Double(waitTotalMs) / Double(answered)).rounded()) }
    public var averageHandleMs: Int64? { completed == 0 ? nil : Int64((Double(handleTotalMs) / Double(completed)).rounded()) }

    /// Answered within the threshold over answered plus abandoned after it (nil: none of either).
    public var serviceLevel: Double? {
        let d = answered + abandonedLate
        return d == 0 ? nil : Double(answeredInTime) / Double(d)
    }

    public static func + (a: QueueToday, b: QueueToday) -> QueueToday {
        var t = a
        t.offered += b.offered
        t.answered += b.answered
        t.abandoned += b.abandoned
        t.failed += b.failed
        t.answeredInTime += b.answeredInTime
        t.abandonedLate += b.abandonedLate
        t.waitTotalMs += b.waitTotalMs
        t.completed += b.completed
        t.handleTotalMs += b.handleTotalMs
        return t
    }
}

extension RecordStore {
    /// A queue's figures for the calls that arrived at or after `sinceMs` (and before `beforeMs`).
    public func queueToday(_ queue: String, sinceMs: Int64, beforeMs: Int64 = .max, thresholdMs: Int64) throws -> QueueToday {
        try db.read { db in
            guard let r = try Row.fetchOne(db, sql: """
                SELECT COUNT(*) AS offered,
                       SUM(answered_ms IS NOT NULL) AS answered,
                       SUM(outcome = 'abandoned') AS abandoned,
                       SUM(outcome IN ('failed', 'timeout')) AS failed,
                       SUM(answered_ms IS NOT NULL AND answered_ms - arrived_ms <= ?1) AS in_time,
                       SUM(outcome = 'abandoned' AND ended_ms - arrived_ms > ?1) AS abandoned_late,
                       SUM(CASE WHEN answered_ms IS NOT NULL THEN answered_ms - arrived_ms END) AS wait_total,
                       SUM(outcome = 'completed') AS completed,
                       SUM(CASE WHEN outcome = 'completed' THEN ended_ms - answered_ms END) AS handle_total
                FROM calls WHERE queue = ?2 AND arrived_ms >= ?3 AND arrived_ms < ?4
                """, arguments: [thresholdMs, queue, sinceMs, beforeMs]) else { return QueueToday() }
            var t = QueueToday()
            t.offered = r["offered"] ?? 0
            t.answered = r["answered"] ?? 0
            t.abandoned = r["abandoned"] ?? 0
            t.failed = r["failed"] ?? 0
            t.answeredInTime = r["in_time"] ?? 0
            t.abandonedLate = r["abandoned_late"] ?? 0
            t.waitTotalMs = r["wait_total"] ?? 0
            t.completed = r["completed"] ?? 0
            t.handleTotalMs = r["handle_total"] ?? 0
            return t
        }
    }
}
