import Foundation
import GRDB
import ParleyRecords

/// A problem with the registration database.
public struct RegistrationStoreError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var message: String
    public var description: String { "\(path): \(message)" }
}

/// The registration role's state in SQLite (GRDB): the agents registered through Parley and what
/// each contact-center address holds upstream, so that a restarted Parley knows its bindings
/// (and its Call-IDs and CSeqs) and refreshes them instead of starting over. Writes are queued in
/// order off the caller's thread; `flush` waits for them. `parley registrations` reads the file
/// while `parley serve` writes it (WAL).
public final class RegistrationStore: Sendable {
    public let path: String
    private let db: DatabaseQueue
    private let onError: @Sendable (Error) -> Void

    public init(path: String, onError: @escaping @Sendable (Error) -> Void = { _ in }) throws {
        self.path = path
        self.onError = onError
        do {
            db = try SQLiteFile.open(path: path, name: "registration database", migrator: Self.migrator)
        } catch {
            throw RegistrationStoreError(path: path, message: error.message)
        }
    }

    private static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE agents (
                    agent TEXT PRIMARY KEY NOT NULL,
                    aor TEXT NOT NULL,
                    contact TEXT NOT NULL,
                    expires_at_ms INTEGER NOT NULL,
                    upstream_call_id TEXT NOT NULL,
                    upstream_cseq INTEGER NOT NULL
                );
                CREATE TABLE addresses (
                    aor TEXT PRIMARY KEY NOT NULL,
                    call_id TEXT NOT NULL,
                    cseq INTEGER NOT NULL,
                    expires_at_ms INTEGER NOT NULL,
                    last_error TEXT
                );
                CREATE TABLE bindings (
                    aor TEXT NOT NULL,
                    contact TEXT NOT NULL,
                    owner TEXT NOT NULL,
                    rule_q INTEGER NOT NULL,
                    q INTEGER NOT NULL,
                    position INTEGER NOT NULL,
                    PRIMARY KEY (aor, contact)
                );
                """)
        }
        return m
    }

    // MARK: Writing (queued)

    private func write(_ body: @escaping @Sendable (Database) throws -> Void) {
        let onError = self.onError
        db.asyncWrite({ db in try body(db) }, completion: { _, result in
            if case .failure(let e) = result { onError(e) }
        })
    }

    public func saveAgent(_ a: AgentRegistration) {
        write { db in
            try db.execute(sql: """
                INSERT OR REPLACE INTO agents (agent, aor, contact, expires_at_ms, upstream_call_id, upstream_cseq)
                VALUES (?, ?, ?, ?, ?, ?)
                """, arguments: [a.agentID, a.aor, a.contact, a.expiresAtMs, a.upstreamCallID, Int64(a.upstreamCSeq)])
        }
    }

    public func removeAgent(_ id: String) {
        write { db in try db.execute(sql: "DELETE FROM agents WHERE agent = ?", arguments: [id]) }
    }

    /// Writes an address's record and replaces its bindings.
    public func saveAddress(_ r: AddressRecord) {
        write { db in
            try db.execute(sql: """
                INSERT OR REPLACE INTO addresses (aor, call_id, cseq, expires_at_ms, last_error) VALUES (?, ?, ?, ?, ?)
                """, arguments: [r.aor, r.callID, Int64(r.cseq), r.expiresAtMs, r.lastError])
            try db.execute(sql: "DELETE FROM bindings WHERE aor = ?", arguments: [r.aor])
            for (i, b) in r.bindings.enumerated() {
                try db.execute(sql: "INSERT OR REPLACE INTO bindings (aor, contact, owner, rule_q, q, position) VALUES (?, ?, ?, ?, ?, ?)",
                               arguments: [b.aor, b.contact, b.owner.description, b.ruleQ, b.q, i])
            }
        }
    }

    /// Waits for every queued write.
    public func flush() {
        _ = try? db.write { _ in }
    }

    // MARK: Reading

    public func loadAgents() throws -> [AgentRegistration] {
        try db.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM agents ORDER BY agent").map { row in
                AgentRegistration(agentID: row["agent"], aor: row["aor"], contact: row["contact"], expiresAtMs: row["expires_at_ms"],
                                  upstreamCallID: row["upstream_call_id"], upstreamCSeq: UInt32(clamping: row["upstream_cseq"] as Int64))
            }
        }
    }

    public func loadAddresses() throws -> [AddressRecord] {
        try db.read { db in
            var bindings: [String: [UpstreamBinding]] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT * FROM bindings ORDER BY aor, position") {
                let aor: String = row["aor"]
                let owner = UpstreamBinding.Owner(row["owner"] as String) ?? .parley
                bindings[aor, default: []].append(UpstreamBinding(aor: aor, contact: row["contact"], q: row["q"], owner: owner,
                                                                   ruleQ: row["rule_q"]))
            }
            return try Row.fetchAll(db, sql: "SELECT * FROM addresses ORDER BY aor").map { row in
                let aor: String = row["aor"]
                var r = AddressRecord(aor: aor, callID: row["call_id"], cseq: UInt32(clamping: row["cseq"] as Int64),
                                      bindings: bindings[aor] ?? [], expiresAtMs: row["expires_at_ms"])
                r.lastError = row["last_error"]
                return r
            }
        }
    }
}
