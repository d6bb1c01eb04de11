import GRDB
import GRDBSQLite

/// One parameter of a statement the records writer runs for every call event.
enum SQLParameter {
    case int(Int64)
    case text(String)
    case null

    static func int(_ v: Int?) -> SQLParameter { v.map { .int(Int64($0)) } ?? .null }
    static func int(_ v: Int64?) -> SQLParameter { v.map { .int($0) } ?? .null }
    static func text(_ v: String?) -> SQLParameter { v.map { .text($0) } ?? .null }
}

/// `SQLITE_TRANSIENT`: SQLite copies the bytes before the bind call returns.
private let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

extension Database {
    /// Runs a cached INSERT or UPDATE, its parameters bound through SQLite's C API. The records
    /// writer runs two of these per call event; binding through GRDB's `StatementArguments`
    /// (existentials converted to `DatabaseValue`s, each bound inside a closure) cost it more
    /// than SQLite's own work. Errors are GRDB's `DatabaseError`, as `execute` throws them.
    func run(_ sql: String, _ parameters: [SQLParameter]) throws {
        let statement = try cachedStatement(sql: sql)
        let h = statement.sqliteStatement
        sqlite3_reset(h)
        try bind(h, parameters, sql: sql)
        let code = sqlite3_step(h)
        sqlite3_reset(h)
        guard code == SQLITE_DONE else { throw failure(code, sql: sql) }
    }

    /// Reads one row of a cached SELECT through SQLite's C API: `read` gets the statement
    /// positioned on the row; nil when there is none.
    func fetchFirst<T>(_ sql: String, _ parameters: [SQLParameter], _ read: (Columns) -> T) throws -> T? {
        let statement = try cachedStatement(sql: sql)
        let h = statement.sqliteStatement
        sqlite3_reset(h)
        try bind(h, parameters, sql: sql)
        defer { sqlite3_reset(h) }
        switch sqlite3_step(h) {
        case SQLITE_ROW: return read(Columns(h: h))
        case SQLITE_DONE: return nil
        case let code: throw failure(code, sql: sql)
        }
    }

    /// The columns of the row a statement is on.
    struct Columns {
        let h: SQLiteStatement
        func int(_ i: Int32) -> Int64? {
            sqlite3_column_type(h, i) == SQLITE_NULL ? nil : sqlite3_column_int64(h, i)
        }
        func text(_ i: Int32) -> String? {
            guard sqlite3_column_type(h, i) != SQLITE_NULL, let p = sqlite3_column_text(h, i) else { return nil }
            let n = Int(sqlite3_column_bytes(h, i))
            return String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
        }
    }

    private func bind(_ h: SQLiteStatement, _ parameters: [SQLParameter], sql: String) throws {
        for (i, p) in parameters.enumerated() {
            let index = Int32(i + 1)
            let code: Int32
            switch p {
            case .int(let v):
                code = sqlite3_bind_int64(h, index, v)
            case .null:
                code = sqlite3_bind_null(h, index)
            case .text(var s):
                code = s.withUTF8 { b in
                    // An empty buffer may have no address, and a null pointer binds NULL.
                    b.isEmpty ? sqlite3_bind_text(h, index, "", 0, transient)
                        : sqlite3_bind_text(h, index, UnsafeRawPointer(b.baseAddress!).assumingMemoryBound(to: CChar.self),
                                            Int32(b.count), transient)
                }
            }
            guard code == SQLITE_OK else { throw failure(code, sql: sql) }
        }
    }

    private func failure(_ code: Int32, sql: String) -> DatabaseError {
        let message = sqliteConnection.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) }
        return DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: sql)
    }
}
