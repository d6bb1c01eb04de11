import GRDB

/// One rule hook's decision for a call, as the decision trace keeps it: what it was asked, what
/// it answered, what it said about why (`trace(...)`), and when it failed, where and the default
/// used instead.
public struct TraceEntry: Sendable, Equatable {
    public enum Result: Sendable, Equatable {
        case classify(type: String, priority: Int)
        /// `select_agent`'s agent (nil: leave the call queued).
        case agent(String?)
        case encoding(String)
    }

    /// `classify`, `select_agent` or `handoff_encoding`.
    public var hook: String
    public var atMs: Int64
    public var tookUs: Int64
    /// `select_agent`: how many candidates, and the first ten in the order handed to the rule.
    public var candidates: Int?
    public var considered: [String]
    public var result: Result
    public var notes: [String]
    /// Where the hook failed (`file:line`) and why; the result is then the default.
    public var failedWhere: String?
    public var failedMessage: String?

    public init(hook: String, atMs: Int64, tookUs: Int64, candidates: Int? = nil, considered: [String] = [], result: Result,
                notes: [String] = [], failedWhere: String? = nil, failedMessage: String? = nil) {
        self.hook = hook
        self.atMs = atMs
        self.tookUs = tookUs
        self.candidates = candidates
        self.considered = considered
        self.result = result
        self.notes = notes
        self.failedWhere = failedWhere
        self.failedMessage = failedMessage
    }

    /// As the admin API shows it.
    public var json: JSONValue {
        var w = JSONWriter(capacity: 256)
        write(to: &w)
        return .raw(w.text)
    }

    /// Writes the entry as the admin API shows it, straight into `w` (a call's trace is written
    /// for every call; building a JSONValue tree first cost about 40 allocations a call).
    public func write(to w: inout JSONWriter) {
        w.beginObject()
        w.field("hook", hook)
        w.field("at_ms", atMs)
        w.field("took_us", tookUs)
        if let candidates {
            w.field("candidates", candidates)
            w.key("considered")
            w.beginArray()
            for c in considered { w.string(c) }
            w.endArray()
        }
        w.key("result")
        switch result {
        case .classify(let type, let priority):
            w.beginObject()
            w.field("type", type)
            w.field("priority", priority)
            w.endObject()
        case .agent(let id): w.string(id)
        case .encoding(let e): w.string(e)
        }
        w.key("notes")
        w.beginArray()
        for n in notes { w.string(n) }
        w.endArray()
        if failedMessage != nil {
            w.key("failed")
            w.beginObject()
            w.field("where", failedWhere)
            w.field("message", failedMessage)
            w.endObject()
            w.field("default_used", true)
        }
        w.endObject()
    }
}

extension RecordStore {
    static func traceTable(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE call_trace (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                call TEXT NOT NULL,
                entries TEXT NOT NULL
            );
            CREATE INDEX call_trace_call ON call_trace(call);
            """)
    }

    static func applyTrace(_ call: String, _ entries: [TraceEntry], _ db: Database) throws {
        guard !entries.isEmpty else { return }
        var w = JSONWriter(capacity: 256 * entries.count)
        w.beginArray()
        for e in entries { e.write(to: &w) }
        w.endArray()
        try db.run("INSERT INTO call_trace (call, entries) VALUES (?, ?)", [.text(call), .text(w.text)])
    }

    /// A call's decision trace: every entry written for it, oldest first (a JSON array).
    public func trace(_ call: String) throws -> JSONValue {
        flush()
        let texts = try db.read { db in
            try String.fetchAll(db, sql: "SELECT entries FROM call_trace WHERE call = ? ORDER BY id", arguments: [call])
        }
        // Each row is an array: their elements, in order, make one.
        let inner = texts.map { $0.dropFirst().dropLast() }.filter { !$0.isEmpty }
        return .raw("[" + inner.joined(separator: ",") + "]")
    }
}

/// Which calls `RecordStore.calls(matching:)` lists.
public struct CallFilter: Sendable, Equatable {
    /// true: waiting or answered; false: ended; nil: both.
    public var active: Bool?
    public var queue: String?
    public var agent: String?
    public var sinceMs: Int64?
    public var limit = 100

    public init() {}
}

extension RecordStore {
    /// Calls matching the filter, newest first.
    public func calls(matching f: CallFilter) throws -> [CallRecord] {
        flush()
        var clauses: [String] = []
        var args: [any DatabaseValueConvertible] = []
        if let active = f.active { clauses.append(active ? "outcome IN ('waiting', 'answered')" : "outcome NOT IN ('waiting', 'answered')") }
        if let q = f.queue { clauses.append("queue = ?"); args.append(q) }
        if let a = f.agent { clauses.append("agent = ?"); args.append(a) }
        if let s = f.sinceMs { clauses.append("arrived_ms >= ?"); args.append(s) }
        args.append(max(1, min(f.limit, 1000)))
        let whereClause = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
        return try db.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM calls \(whereClause) ORDER BY arrived_ms DESC, rowid DESC LIMIT ?",
                             arguments: StatementArguments(args)).map(Self.callRecord)
        }
    }
}
