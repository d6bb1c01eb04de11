import Foundation
import Testing
@testable import ParleyRecords

/// Agents' queue-log lines (PAUSE, UNPAUSE, LOGIN, LOGOFF) and the presence kept for the next
/// start, in a real database file.
@Suite("Agent log")
struct AgentLogTests {
    func withDatabase(_ body: (String) throws -> Void) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("parley-agentlog-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try body(dir.appendingPathComponent("records.sqlite").path)
    }

    @Test func linesAndTheKeptPresenceSurviveReopening() throws {
        try withDatabase { path in
            do {
                let store = try RecordStore(path: path)
                store.record(.agent(AgentLogEntry(agent: "bob", event: .pause, reason: "lunch", presence: .break, at: 1_000)))
                store.record(.agent(AgentLogEntry(agent: "alice", event: .logoff, reason: nil, presence: .offline, at: 1_100)))
                // A break after missed calls: logged, not kept.
                store.record(.agent(AgentLogEntry(agent: "chloe", event: .pause, reason: "no_answer", presence: nil, at: 1_200)))
                store.record(.agent(AgentLogEntry(agent: "alice", event: .login, reason: nil, presence: .available, at: 1_300)))
                store.flush()
            }
            let store = try RecordStore(path: path)
            let log = try store.queueLog()
            #expect(log.map(\.event) == [.pause, .logoff, .pause, .login])
            #expect(log[0].call == "NONE" && log[0].queue == "NONE" && log[0].agent == "bob" && log[0].data == "lunch")
            let kept = try store.savedPresences()
            #expect(kept == ["bob": SavedPresence(presence: .break, reason: "lunch", sinceMs: 1_000),
                             "alice": SavedPresence(presence: .available, reason: nil, sinceMs: 1_300)])
            // Agents' lines are pruned with age like calls'; the kept presence stays.
            #expect(try store.prune(arrivedBefore: 1_250) == 0)
            #expect(try store.queueLog().map(\.event) == [.login])
            #expect(try store.savedPresences().count == 2)
        }
    }
}
