import Foundation
import GRDB
import ParleyRecords
import ParleyProxy
import ParleySIP
import ParleyTransaction

/// The bindings of `parley registrar` in SQLite (GRDB), so that a restarted registrar still knows
/// every contact until its registration runs out. Expiry is stored as wall-clock time (the
/// location service counts on a monotonic clock, which a restart starts again). Writes are queued
/// in order off the caller's thread; `flush` waits for them.
public final class RegistrarBindingStore: Sendable {
    public let path: String
    private let db: DatabaseQueue
    private let onError: @Sendable (Error) -> Void

    public init(path: String, onError: @escaping @Sendable (Error) -> Void = { _ in }) throws {
        self.path = path
        self.onError = onError
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE registrar_bindings (
                    aor TEXT NOT NULL,
                    contact TEXT NOT NULL,
                    q REAL NOT NULL,
                    expires_at_ms INTEGER NOT NULL,
                    call_id TEXT NOT NULL,
                    cseq INTEGER NOT NULL,
                    path TEXT NOT NULL,
                    source TEXT,
                    position INTEGER NOT NULL,
                    PRIMARY KEY (aor, contact)
                );
                """)
        }
        do {
            db = try SQLiteFile.open(path: path, name: "registrar database", migrator: m)
        } catch {
            throw RegistrationStoreError(path: path, message: error.message)
        }
    }

    /// Replaces what is stored for `aor` with `bindings` (none: the AOR is forgotten).
    /// `now` and `wallNowMs` are the same moment on the location service's clock and the wall clock.
    public func replace(aor: String, bindings: [Binding], now: SIPInstant, wallNowMs: Int64) {
        let rows = bindings.enumerated().map { i, b in
            (b.contact.description, b.q, wallNowMs + (b.expiresAt.milliseconds - now.milliseconds), b.callID, Int64(b.cseq),
             b.path.joined(separator: "\n"), b.source, i)
        }
        let onError = self.onError
        db.asyncWrite({ db in
            try db.execute(sql: "DELETE FROM registrar_bindings WHERE aor = ?", arguments: [aor])
            for r in rows {
                try db.execute(sql: """
                    INSERT OR REPLACE INTO registrar_bindings (aor, contact, q, expires_at_ms, call_id, cseq, path, source, position)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [aor, r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7])
            }
        }, completion: { _, result in
            if case .failure(let e) = result { onError(e) }
        })
    }

    /// The bindings still live at `wallNowMs`, on the location service's clock (`now`).
    public func load(now: SIPInstant, wallNowMs: Int64) throws -> [Binding] {
        try db.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM registrar_bindings WHERE expires_at_ms > ? ORDER BY aor, position",
                             arguments: [wallNowMs]).compactMap { row -> Binding? in
                guard let contact = try? NameAddress.parse(row["contact"] as String) else { return nil }
                let expires: Int64 = row["expires_at_ms"]
                let path = (row["path"] as String).split(separator: "\n").map(String.init)
                return Binding(aor: row["aor"], contact: contact, q: row["q"], expiresAt: SIPInstant(milliseconds: now.milliseconds + expires - wallNowMs),
                               callID: row["call_id"], cseq: UInt32(clamping: row["cseq"] as Int64), path: path, source: row["source"],
                               updatedAt: now)
            }
        }
    }

    public func flush() { _ = try? db.write { _ in } }
}
