import Foundation
import GRDB

/// A SQLite file that could not be opened: why, in words (the path is the caller's to add).
public struct SQLiteOpenError: Error, Sendable {
    public var message: String
}

/// How every Parley store opens its SQLite file: a directory is refused by name; the journal is
/// WAL, so that a reading command (`parley calls`, `parley registrations`) and a writing
/// `parley serve` never wait on each other (GRDB then sets `synchronous = NORMAL`: a commit does
/// not wait for the WAL's fsync, which is safe against the process crashing; only a power loss or
/// an OS crash can roll back the last commits, and the file stays consistent); a busy file is
/// waited on for 5 s; the migrations bring the schema up to date.
public enum SQLiteFile {
    /// Opens (creating it if needed) the file at `path` and migrates it. `name` says what it is
    /// in the error ("record database").
    public static func open(path: String, name: String, migrator: DatabaseMigrator) throws(SQLiteOpenError) -> DatabaseQueue {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw SQLiteOpenError(message: "is a directory, not a database file")
        }
        var config = Configuration()
        config.busyMode = .timeout(5)
        config.journalMode = .wal
        do {
            let db = try DatabaseQueue(path: path, configuration: config)
            try migrator.migrate(db)
            return db
        } catch {
            throw SQLiteOpenError(message: "cannot open the \(name): \(error)")
        }
    }
}
