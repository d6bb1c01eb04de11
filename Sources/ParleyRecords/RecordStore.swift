import Foundation
import GRDB

/// What happened to a call, as the distributor saw it. Each event updates the call's record and
/// appends one line to the queue log, stamped with the rules version the call was pinned to.
public enum CallEvent: Sendable, Equatable {
    /// A new call entered the queue for its type (`ENTERQUEUE`).
    case arrived(call: String, sipCallID: String, caller: String, queue: String, priority: Int, rulesVersion: String, at: Int64)
    /// The call was offered to an agent (`OFFER`).
    case offered(call: String, agent: String, at: Int64)
    /// The agent did not take it: no answer in time (`code` nil) or a failure response (`RINGNOANSWER`).
    case notAnswered(call: String, agent: String, code: Int?, at: Int64)
    /// The agent answered (`CONNECT`).
    case connected(call: String, agent: String, at: Int64)
    /// The caller hung up (CANCEL) before an agent answered (`ABANDON`).
    case abandoned(call: String, at: Int64)
    /// The answered call ended (`COMPLETE`).
    case completed(call: String, agent: String, at: Int64)
    /// The agent of an answered call transferred it (`TRANSFER`, the target, an agent or a
    /// queue, in the queue column; the agent's talk time so far as its duration). The target's
    /// answer is a second `CONNECT`, and the call's agent becomes the target.
    case transferred(call: String, agent: String, target: String, at: Int64)
    /// The caller was given a final failure: no agent in time (`timedOut`, `EXITWITHTIMEOUT`) or
    /// no agent who could take it (`FAILED`).
    case failed(call: String, code: Int, timedOut: Bool, at: Int64)
    /// The caller was connected to a treatment while it waits (`TREATMENT`, the treatment's name
    /// in the agent column).
    case treatment(call: String, treatment: String, at: Int64)
    /// The caller left the queue over its max length (`full`, `EXITWITHFULL`) or max wait
    /// (`EXITWITHTIMEOUT`): to an overflow treatment, answered `code`, or hung up on its
    /// treatment (both nil).
    case overflowed(call: String, full: Bool, treatment: String?, code: Int?, at: Int64)
    /// An agent logged in or off, went on break or came back (`LOGIN`, `LOGOFF`, `PAUSE`,
    /// `UNPAUSE`; call and queue `NONE`, the reason in the data column).
    case agent(AgentLogEntry)
    /// The rules' decisions for a call so far (its decision trace), written when the call is
    /// answered or given up (a transfer adds more).
    case trace(call: String, entries: [TraceEntry])

    public var call: String {
        switch self {
        case .agent:
            return AgentLogEntry.noCall
        case .trace(let c, _):
            return c
        case .arrived(let c, _, _, _, _, _, _), .offered(let c, _, _), .notAnswered(let c, _, _, _), .connected(let c, _, _),
             .abandoned(let c, _), .completed(let c, _, _), .failed(let c, _, _, _), .treatment(let c, _, _),
             .transferred(let c, _, _, _),
             .overflowed(let c, _, _, _, _):
            return c
        }
    }
}

/// A queue-log event name (after Asterisk's queue_log).
public enum QueueLogEvent: String, Sendable, CaseIterable {
    case enterQueue = "ENTERQUEUE", offer = "OFFER", ringNoAnswer = "RINGNOANSWER", connect = "CONNECT",
         abandon = "ABANDON", complete = "COMPLETE", exitWithTimeout = "EXITWITHTIMEOUT", failed = "FAILED",
         treatment = "TREATMENT", exitWithFull = "EXITWITHFULL", transfer = "TRANSFER",
         pause = "PAUSE", unpause = "UNPAUSE", login = "LOGIN", logoff = "LOGOFF"
}

/// Where a call stands, or how it ended.
public enum CallOutcome: String, Sendable, CaseIterable {
    case waiting, answered, completed, abandoned, timeout, failed
}

/// One call's record.
public struct CallRecord: Sendable, Equatable {
    public var reference: String
    public var sipCallID: String
    public var caller: String
    public var queue: String
    public var priority: Int
    public var rulesVersion: String
    public var arrivedMs: Int64
    public var answeredMs: Int64?
    public var endedMs: Int64?
    public var agent: String?
    public var outcome: CallOutcome
    public var finalCode: Int?
    public var offers: Int

    /// Time from arrival to answer, abandon or failure (nil while waiting).
    public var waitMs: Int64? {
        if let answeredMs { return answeredMs - arrivedMs }
        return endedMs.map { $0 - arrivedMs }
    }

    /// Time from answer to end (nil unless completed).
    public var talkMs: Int64? {
        guard let answeredMs, let endedMs else { return nil }
        return endedMs - answeredMs
    }
}

/// One queue-log line.
public struct QueueLogLine: Sendable, Equatable {
    public var timeMs: Int64
    public var call: String
    public var queue: String
    public var agent: String?
    public var event: QueueLogEvent
    public var rulesVersion: String
    /// Wait (CONNECT, ABANDON, EXITWITHTIMEOUT, FAILED) or talk time (COMPLETE), in ms.
    public var durationMs: Int64?
    /// The failure code (RINGNOANSWER from a failure response, FAILED, EXITWITHTIMEOUT).
    public var code: Int?
    /// An agent event's reason (PAUSE, LOGOFF).
    public var data: String? = nil
}

/// Figures for one queue (call type).
public struct QueueStats: Sendable, Equatable {
    public var queue: String
    public var offered = 0
    public var answered = 0
    public var abandoned = 0
    public var failed = 0
    public var waiting = 0
    /// Average wait of answered calls, ms (nil: none was answered).
    public var averageWaitMs: Int64?
    /// Answered within the service-level threshold, over the calls that stopped waiting
    /// (answered, abandoned, timed out or failed); nil when none did.
    public var serviceLevel: Double?
    /// Talk time of completed calls, ms.
    public var talkMs: Int64 = 0
    /// Average talk time of completed calls, ms (nil: none completed).
    public var averageTalkMs: Int64?
}

/// Figures for one agent.
public struct AgentStats: Sendable, Equatable {
    public var agent: String
    public var offered = 0
    public var answered = 0
    public var notAnswered = 0
    public var talkMs: Int64 = 0
    /// Average talk time of completed calls, ms (nil: none completed).
    public var averageTalkMs: Int64?
}

/// A problem with the record database.
public struct RecordStoreError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var message: String
    public var description: String { "\(path): \(message)" }
}

/// Call records and the queue log in one SQLite database (GRDB).
///
/// `record` only appends the event to an in-memory batch (under a lock) and returns: it never
/// waits for the database. One writer, a serial dispatch queue of the store's own, applies the
/// batch in recording order in one transaction, each event in its own savepoint (an event that
/// fails, e.g. one for an unknown call, is rolled back alone and reported to `onError`; the rest
/// of the batch is written). The batch is written when it reaches `batchLimit` events or
/// `batchDelay` after its first event, whichever comes first; `flush` and `recordNow` write it at
/// once. What a crash can lose: the events not yet committed (at most about `batchDelay` worth);
/// nothing committed is lost (WAL, synchronous NORMAL).
public final class RecordStore: Sendable {
    public let path: String
    let db: DatabaseQueue
    /// Called (on the store's writer queue) when an event cannot be written. It must not call
    /// `flush` or `recordNow` (they wait for that queue).
    private let onError: @Sendable (Error) -> Void
    /// A batch is written once it holds this many events...
    public let batchLimit: Int
    /// ...or this long after its first event.
    public let batchDelay: DispatchTimeInterval
    /// The single writer: every batch is applied on it, in order.
    private let writer = DispatchQueue(label: "parley.records.writer")
    private let pending = PendingEvents()

    /// Opens (creating it and its tables if needed) the database at `path`.
    public init(path: String, batchLimit: Int = 256, batchDelay: DispatchTimeInterval = .milliseconds(20),
                onError: @escaping @Sendable (Error) -> Void = { _ in }) throws {
        self.path = path
        self.onError = onError
        self.batchLimit = max(1, batchLimit)
        self.batchDelay = batchDelay
        do {
            db = try SQLiteFile.open(path: path, name: "record database", migrator: Self.migrator)
        } catch {
            throw RecordStoreError(path: path, message: error.message)
        }
    }

    private static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE calls (
                    reference TEXT PRIMARY KEY NOT NULL,
                    sip_call_id TEXT NOT NULL,
                    caller TEXT NOT NULL,
                    queue TEXT NOT NULL,
                    priority INTEGER NOT NULL,
                    rules_version TEXT NOT NULL,
                    arrived_ms INTEGER NOT NULL,
                    answered_ms INTEGER,
                    ended_ms INTEGER,
                    agent TEXT,
                    outcome TEXT NOT NULL,
                    final_code INTEGER,
                    offers INTEGER NOT NULL DEFAULT 0
                );
                CREATE INDEX calls_arrived ON calls(arrived_ms);
                CREATE TABLE queue_log (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    time_ms INTEGER NOT NULL,
                    call TEXT NOT NULL,
                    queue TEXT NOT NULL,
                    agent TEXT,
                    event TEXT NOT NULL,
                    rules_version TEXT NOT NULL,
                    duration_ms INTEGER,
                    code INTEGER
                );
                CREATE INDEX queue_log_call ON queue_log(call);
                CREATE INDEX queue_log_time ON queue_log(time_ms);
                """)
        }
        m.registerMigration("v2 agents") { db in try agentTables(db) }
        m.registerMigration("v3 traces") { db in try traceTable(db) }
        return m
    }

    // MARK: Writing

    /// Adds the event to the pending batch; returns at once (never waits for the database).
    /// Failures go to `onError`.
    public func record(_ event: CallEvent) {
        switch pending.append(event, limit: batchLimit) {
        case .none:
            break
        case .armTimer:
            // The store stays alive until its pending events are written.
            writer.asyncAfter(deadline: .now() + batchDelay) { [self] in
                pending.timerFired()
                writePending()
            }
        case .writeNow:
            writer.async { [self] in writePending() }
        }
    }

    /// Writes the pending events, then this one, and waits; throws this event's failure (the
    /// pending ones' go to `onError`). Not to be called on an event loop or from `onError`.
    public func recordNow(_ event: CallEvent) throws {
        try writer.sync {
            writePending()
            try db.write { db in
                var rows = CallRows()
                try Self.apply(event, db, &rows)
            }
        }
    }

    /// Writes every pending event and waits until it is committed. Not to be called from `onError`.
    public func flush() {
        writer.sync { writePending() }
    }

    /// Applies the pending batch in one transaction. On the writer. The batch is first applied
    /// as a whole; if any event fails, that transaction is rolled back and the batch applied again
    /// with each event in its own savepoint, so only the failing events are left out (and
    /// reported).
    private func writePending() {
        let batch = pending.take()
        guard !batch.isEmpty else { return }
        do {
            try db.write { db in
                var rows = CallRows()
                for event in batch { try Self.apply(event, db, &rows) }
            }
            return
        } catch {}
        var failures: [Error] = []
        do {
            try db.write { db in
                for event in batch {
                    do {
                        try db.inSavepoint {
                            var rows = CallRows()
                            try Self.apply(event, db, &rows)
                            return .commit
                        }
                    } catch {
                        failures.append(error)
                    }
                }
            }
        } catch {
            // The transaction itself failed (disk full, database locked past the busy timeout...):
            // none of the batch was written.
            failures = [RecordStoreError(path: path, message: "\(batch.count) events not written: \(error)")]
        }
        for failure in failures { onError(failure) }
    }

    /// What later events of a call need of its row, kept while a batch is applied (a call's
    /// arrival, offer and answer usually share a batch: one read of the row instead of one per
    /// event).
    struct CallRow {
        var queue: String
        var version: String
        var arrived: Int64
        var answered: Int64?
        var outcome: CallOutcome
    }
    typealias CallRows = [String: CallRow]

    private static func row(_ call: String, _ db: Database, _ rows: inout CallRows) throws -> CallRow {
        if let r = rows[call] { return r }
        guard let r = try db.fetchFirst("SELECT queue, rules_version, arrived_ms, answered_ms, outcome FROM calls WHERE reference = ?",
                                         [.text(call)], { c in
            CallRow(queue: c.text(0) ?? "", version: c.text(1) ?? "", arrived: c.int(2) ?? 0, answered: c.int(3),
                    outcome: c.text(4).flatMap(CallOutcome.init(rawValue:)) ?? .waiting)
        }) else {
            throw RecordStoreError(path: db.configuration.label ?? "", message: "event for unknown call \(call)")
        }
        rows[call] = r
        return r
    }

    /// Applies one event. Statements are cached on the connection: compiling the SQL anew for
    /// each event cost more than the writes. `rows` follows what it writes to the calls table.
    private static func apply(_ event: CallEvent, _ db: Database, _ rows: inout CallRows) throws {
        if case .agent(let entry) = event {
            try apply(entry, db)
            return
        }
        if case .trace(let call, let entries) = event {
            try applyTrace(call, entries, db)
            return
        }
        if case .arrived(let call, let sipCallID, let caller, let queue, let priority, let version, let at) = event {
            try db.run("""
                INSERT OR IGNORE INTO calls (reference, sip_call_id, caller, queue, priority, rules_version, arrived_ms, outcome)
                VALUES (?, ?, ?, ?, ?, ?, ?, 'waiting')
                """, [.text(call), .text(sipCallID), .text(caller), .text(queue), .int(Int64(priority)), .text(version), .int(at)])
            guard db.changesCount > 0 else { return }
            rows[call] = CallRow(queue: queue, version: version, arrived: at, answered: nil, outcome: .waiting)
            try log(db, at, call, queue, nil, .enterQueue, version, nil, nil)
            return
        }
        var row = try row(event.call, db, &rows)
        let queue = row.queue, version = row.version, arrived = row.arrived
        defer { rows[event.call] = row }
        switch event {
        case .arrived, .agent, .trace:
            break
        case .offered(let call, let agent, let at):
            try db.run("UPDATE calls SET offers = offers + 1 WHERE reference = ?", [.text(call)])
            try log(db, at, call, queue, agent, .offer, version, nil, nil)
        case .notAnswered(let call, let agent, let code, let at):
            try log(db, at, call, queue, agent, .ringNoAnswer, version, nil, code)
        case .connected(let call, let agent, let at) where row.outcome == .answered:
            // A transfer's target answered: the call's agent is now the target.
            try db.run("UPDATE calls SET agent = ? WHERE reference = ?", [.text(agent), .text(call)])
            try log(db, at, call, queue, agent, .connect, version, nil, nil)
        case .connected(let call, let agent, let at):
            guard row.outcome == .waiting else { return }
            try db.run("UPDATE calls SET answered_ms = ?, agent = ?, outcome = 'answered', final_code = 200 WHERE reference = ?", [.int(at), .text(agent), .text(call)])
            row.answered = at
            row.outcome = .answered
            try log(db, at, call, queue, agent, .connect, version, at - arrived, nil)
        case .abandoned(let call, let at):
            guard row.outcome == .waiting else { return }
            try db.run("UPDATE calls SET ended_ms = ?, outcome = 'abandoned', final_code = 487 WHERE reference = ?", [.int(at), .text(call)])
            row.outcome = .abandoned
            try log(db, at, call, queue, nil, .abandon, version, at - arrived, 487)
        case .completed(let call, let agent, let at):
            guard row.outcome == .answered, let answered = row.answered else { return }
            try db.run("UPDATE calls SET ended_ms = ?, outcome = 'completed' WHERE reference = ?", [.int(at), .text(call)])
            row.outcome = .completed
            try log(db, at, call, queue, agent, .complete, version, at - answered, nil)
        case .failed(let call, let code, let timedOut, let at):
            guard row.outcome == .waiting else { return }
            let o: CallOutcome = timedOut ? .timeout : .failed
            try db.run("UPDATE calls SET ended_ms = ?, outcome = ?, final_code = ? WHERE reference = ?", [.int(at), .text(o.rawValue), .int(code), .text(call)])
            row.outcome = o
            try log(db, at, call, queue, nil, timedOut ? .exitWithTimeout : .failed, version, at - arrived, code)
        case .treatment(let call, let treatment, let at):
            try log(db, at, call, queue, treatment, .treatment, version, nil, nil)
        case .transferred(let call, let agent, let target, let at):
            guard row.outcome == .answered else { return }
            try log(db, at, call, target, agent, .transfer, version, row.answered.map { at - $0 }, nil)
        case .overflowed(let call, let full, let treatment, let code, let at):
            guard row.outcome == .waiting else { return }
            let o: CallOutcome = full ? .failed : .timeout
            try db.run("UPDATE calls SET ended_ms = ?, outcome = ?, final_code = ? WHERE reference = ?", [.int(at), .text(o.rawValue), .int(code), .text(call)])
            row.outcome = o
            try log(db, at, call, queue, treatment, full ? .exitWithFull : .exitWithTimeout, version, at - arrived, code)
        }
    }

    static func log(_ db: Database, _ at: Int64, _ call: String, _ queue: String, _ agent: String?, _ event: QueueLogEvent,
                            _ version: String, _ duration: Int64?, _ code: Int?) throws {
        try db.run("""
            INSERT INTO queue_log (time_ms, call, queue, agent, event, rules_version, duration_ms, code)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """, [.int(at), .text(call), .text(queue), .text(agent), .text(event.rawValue), .text(version), .int(duration), .int(code)])
    }

    // MARK: Retention

    /// Deletes the calls that arrived before `cutoffMs` (wall-clock ms), with their queue-log
    /// lines: the oldest first, at most `batch` calls a transaction, so that the writer's event
    /// batches go on between them instead of waiting for the whole clean-up. Returns how many
    /// calls were deleted. Waits for the writer: not to be called on an event loop or from
    /// `onError`. A call's later events, should any still come, are then refused as for an
    /// unknown call (reported to `onError`).
    @discardableResult
    public func prune(arrivedBefore cutoffMs: Int64, batch: Int = 2_000) throws -> Int {
        let limit = max(1, batch)
        var total = 0
        while true {
            let deleted = try writer.sync {
                try db.write { db -> Int in
                    // The same calls for both statements: the calls table does not change between them.
                    let oldest = "SELECT reference FROM calls WHERE arrived_ms < ? ORDER BY arrived_ms, reference LIMIT ?"
                    try db.execute(sql: "DELETE FROM queue_log WHERE call IN (\(oldest))", arguments: [cutoffMs, limit])
                    try db.execute(sql: "DELETE FROM call_trace WHERE call IN (\(oldest))", arguments: [cutoffMs, limit])
                    try db.execute(sql: "DELETE FROM calls WHERE reference IN (\(oldest))", arguments: [cutoffMs, limit])
                    let calls = db.changesCount
                    try db.execute(sql: "DELETE FROM queue_log WHERE call = ? AND time_ms < ?", arguments: [AgentLogEntry.noCall, cutoffMs])
                    return calls
                }
            }
            total += deleted
            if deleted < limit { return total }
        }
    }

    // MARK: Reading

    /// The connection's journal mode and `synchronous` level (0 OFF, 1 NORMAL, 2 FULL), for tests.
    func sqliteSettings() throws -> (journalMode: String, synchronous: Int) {
        try db.read { db in
            (try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "", try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1)
        }
    }

    /// The most recent calls, newest first.
    public func recentCalls(limit: Int = 20) throws -> [CallRecord] {
        try db.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM calls ORDER BY arrived_ms DESC, rowid DESC LIMIT ?", arguments: [limit]).map(Self.callRecord)
        }
    }

    /// One call's record.
    public func call(_ reference: String) throws -> CallRecord? {
        try db.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM calls WHERE reference = ?", arguments: [reference]).map(Self.callRecord)
        }
    }

    /// The queue log, oldest first: one call's lines, or all of them.
    public func queueLog(call: String? = nil) throws -> [QueueLogLine] {
        try db.read { db in
            let rows = call == nil
                ? try Row.fetchAll(db, sql: "SELECT * FROM queue_log ORDER BY id")
                : try Row.fetchAll(db, sql: "SELECT * FROM queue_log WHERE call = ? ORDER BY id", arguments: [call])
            return rows.map { r in
                QueueLogLine(timeMs: r["time_ms"], call: r["call"], queue: r["queue"], agent: r["agent"],
                             event: QueueLogEvent(rawValue: r["event"]) ?? .failed, rulesVersion: r["rules_version"],
                             durationMs: r["duration_ms"], code: r["code"], data: r["data"])
            }
        }
    }

    static func callRecord(_ r: Row) -> CallRecord {
        CallRecord(reference: r["reference"], sipCallID: r["sip_call_id"], caller: r["caller"], queue: r["queue"],
                   priority: r["priority"], rulesVersion: r["rules_version"], arrivedMs: r["arrived_ms"],
                   answeredMs: r["answered_ms"], endedMs: r["ended_ms"], agent: r["agent"],
                   outcome: CallOutcome(rawValue: r["outcome"]) ?? .waiting, finalCode: r["final_code"], offers: r["offers"])
    }

    /// Per-queue figures for calls that arrived at or after `sinceMs`; service level counts
    /// calls answered within `serviceLevelMs`.
    public func queueStats(sinceMs: Int64 = 0, serviceLevelMs: Int64 = 20_000) throws -> [QueueStats] {
        try db.read { db in
            try Row.fetchAll(db, sql: """
                SELECT queue,
                       COUNT(*) AS offered,
                       SUM(answered_ms IS NOT NULL) AS answered,
                       SUM(outcome = 'abandoned') AS abandoned,
                       SUM(outcome IN ('failed', 'timeout')) AS failed,
                       SUM(outcome = 'waiting') AS waiting,
                       AVG(CASE WHEN answered_ms IS NOT NULL THEN answered_ms - arrived_ms END) AS avg_wait,
                       SUM(answered_ms IS NOT NULL AND answered_ms - arrived_ms <= ?) AS within,
                       SUM(CASE WHEN outcome = 'completed' THEN ended_ms - answered_ms ELSE 0 END) AS talk,
                       SUM(outcome = 'completed') AS completed
                FROM calls WHERE arrived_ms >= ? GROUP BY queue ORDER BY queue
                """, arguments: [serviceLevelMs, sinceMs]).map { r in
                var s = QueueStats(queue: r["queue"])
                s.offered = r["offered"]
                s.answered = r["answered"]
                s.abandoned = r["abandoned"]
                s.failed = r["failed"]
                s.waiting = r["waiting"]
                s.averageWaitMs = (r["avg_wait"] as Double?).map { Int64($0.rounded()) }
                let within: Int = r["within"]
                let stopped = s.offered - s.waiting
                s.serviceLevel = stopped == 0 ? nil : Double(within) / Double(stopped)
                s.talkMs = r["talk"]
                let completed: Int = r["completed"]
                s.averageTalkMs = completed == 0 ? nil : s.talkMs / Int64(completed)
                return s
            }
        }
    }

    /// Per-agent figures from the queue log lines at or after `sinceMs`.
    public func agentStats(sinceMs: Int64 = 0) throws -> [AgentStats] {
        try db.read { db in
            try Row.fetchAll(db, sql: """
                SELECT agent,
                       SUM(event = 'OFFER') AS offered,
                       SUM(event = 'CONNECT') AS answered,
                       SUM(event = 'RINGNOANSWER') AS not_answered,
                       SUM(CASE WHEN event = 'COMPLETE' THEN duration_ms ELSE 0 END) AS talk,
                       SUM(event = 'COMPLETE') AS completed
                FROM queue_log
                WHERE agent IS NOT NULL AND event IN ('OFFER', 'CONNECT', 'RINGNOANSWER', 'COMPLETE') AND time_ms >= ?
                GROUP BY agent ORDER BY agent
                """, arguments: [sinceMs]).map { r in
                var s = AgentStats(agent: r["agent"])
                s.offered = r["offered"]
                s.answered = r["answered"]
                s.notAnswered = r["not_answered"]
                s.talkMs = r["talk"]
                let completed: Int = r["completed"]
                s.averageTalkMs = completed == 0 ? nil : s.talkMs / Int64(completed)
                return s
            }
        }
    }
}

/// The events recorded but not yet written, and whether a write of them is already on its way.
private final class PendingEvents: @unchecked Sendable {
    enum Next { case none, armTimer, writeNow }
    private let lock = NSLock()
    private var events: [CallEvent] = []
    /// A delayed write is scheduled (one at a time).
    private var timerArmed = false
    /// An immediate write (the batch reached its limit) is queued on the writer.
    private var writeQueued = false

    /// Appends; says whether the caller must schedule a write.
    func append(_ event: CallEvent, limit: Int) -> Next {
        lock.lock()
        defer { lock.unlock() }
        events.append(event)
        if events.count >= limit {
            if writeQueued { return .none }
            writeQueued = true
            return .writeNow
        }
        if timerArmed || writeQueued { return .none }
        timerArmed = true
        return .armTimer
    }

    func timerFired() {
        lock.lock()
        timerArmed = false
        lock.unlock()
    }

    /// Takes every pending event, in recording order.
    func take() -> [CallEvent] {
        lock.lock()
        defer { lock.unlock() }
        writeQueued = false
        let taken = events
        events = []
        events.reserveCapacity(64)
        return taken
    }
}
