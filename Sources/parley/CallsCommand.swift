import ArgumentParser
import Foundation
import ParleyAdmin
import ParleyApp
import ParleyRecords

/// Which record database a reading command opens: `--database`, or the one a configuration names.
struct RecordsOptions: ParsableArguments {
    @Option(help: "The configuration file (YAML) whose records.database to read.")
    var config: String?

    @Option(help: "The record database (SQLite) to read; overrides --config.")
    var database: String?

    func validate() throws {
        if config == nil, database == nil {
            throw ValidationError("name the record database with --database PATH or --config FILE")
        }
    }

    /// Opens the database, refusing one that does not exist yet.
    func open(command: String) throws -> RecordStore {
        var path = database
        if path == nil, let config {
            do {
                let c = try ParleyConfiguration.load(path: config)
                guard let p = c.recordsDatabase else {
                    fail(command, "\(config) keeps no records (records.database: off)")
                }
                path = p
            } catch {
                fail(command, "the configuration has problems:\n\(error)")
            }
        }
        guard let path else { fail(command, "no record database named") }
        guard FileManager.default.fileExists(atPath: path) else {
            fail(command, "no record database at \(path) (has `parley serve` run with this configuration?)")
        }
        do {
            return try RecordStore(path: path)
        } catch {
            fail(command, "\(error)")
        }
    }

    private func fail(_ command: String, _ message: String) -> Never {
        FileHandle.standardError.write(Data("parley \(command): \(message)\n".utf8))
        Foundation.exit(2)
    }
}

/// A time of day in UTC for a wall-clock ms value.
func formatTime(_ ms: Int64) -> String {
    let f = DateFormatter()
    f.locale = Locale(identifier: "en_US_POSIX")
    f.timeZone = TimeZone(identifier: "UTC")
    f.dateFormat = "yyyy-MM-dd HH:mm:ss"
    return f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
}

/// Seconds with one decimal, or "-".
func formatSeconds(_ ms: Int64?) -> String {
    guard let ms else { return "-" }
    return String(format: "%.1fs", Double(ms) / 1000)
}

/// Left-aligned columns.
func table(_ header: [String], _ rows: [[String]]) -> String {
    let all = [header] + rows
    let widths = header.indices.map { i in all.map { $0[i].count }.max() ?? 0 }
    return all.map { row in
        row.enumerated().map { i, cell in i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
            .joined(separator: "  ")
    }.joined(separator: "\n")
}

/// `parley calls`: the most recent call records, or one call's queue log.
struct CallsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "calls",
        abstract: "List recent calls from the record database.",
        discussion: """
        Reads the call records `parley serve` writes (records.database in the configuration): \
        newest first, with queue, agent, outcome, wait and talk time and the rules version each \
        call ran under. With --call, prints that call's queue log (ENTERQUEUE, OFFER, \
        RINGNOANSWER, CONNECT, ABANDON, COMPLETE, EXITWITHTIMEOUT, FAILED). Times are UTC.
        """
    )

    @OptionGroup var records: RecordsOptions

    @Option(help: "How many calls to list.")
    var limit = 20

    @Option(help: "Print this call's queue log (its reference, as listed).")
    var call: String?

    @Flag(help: "Print JSON, as the admin API shows calls (one array; with --call, the call with its log).")
    var json = false

    func validate() throws {
        if limit < 1 { throw ValidationError("--limit must be at least 1") }
    }

    func run() throws {
        let store = try records.open(command: "calls")
        if let call {
            let lines = try store.queueLog(call: call)
            if lines.isEmpty {
                FileHandle.standardError.write(Data("parley calls: no call \(call) in \(store.path)\n".utf8))
                throw ExitCode(1)
            }
            if json {
                if let record = try store.call(call) { print(AdminJSON.call(record, log: lines)) } else { print("null") }
                return
            }
            print(table(["time (UTC)", "event", "queue", "agent", "duration", "code", "rules"], lines.map {
                [formatTime($0.timeMs), $0.event.rawValue, $0.queue, $0.agent ?? "-", formatSeconds($0.durationMs),
                 $0.code.map(String.init) ?? "-", String($0.rulesVersion.prefix(12))]
            }))
            return
        }
        let calls = try store.recentCalls(limit: limit)
        if json {
            print("[" + calls.map { AdminJSON.call($0) }.joined(separator: ",") + "]")
            return
        }
        if calls.isEmpty {
            print("no calls recorded in \(store.path)")
            return
        }
        print(table(["call", "arrived (UTC)", "caller", "queue", "agent", "outcome", "code", "offers", "wait", "talk", "rules"], calls.map {
            [$0.reference, formatTime($0.arrivedMs), $0.caller, $0.queue, $0.agent ?? "-", $0.outcome.rawValue,
             $0.finalCode.map(String.init) ?? "-", String($0.offers), formatSeconds($0.waitMs), formatSeconds($0.talkMs),
             String($0.rulesVersion.prefix(12))]
        }))
    }
}
