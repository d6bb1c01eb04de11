import Foundation
import Testing
@testable import ParleyRecords

/// A fresh database file in a temporary directory, removed at the end.
private func withTemporaryDatabase(_ body: (String) throws -> Void) throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("parley-records-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    try body(dir.appendingPathComponent("records.sqlite").path)
}

private func arrived(_ call: String, queue: String = "sales", at: Int64, version: String = "v1") -> CallEvent {
    .arrived(call: call, sipCallID: "\(call)@caller", caller: "sip:caller@example.com", queue: queue, priority: 0,
             rulesVersion: version, at: at)
}

/// Errors reported through `onError`, from any thread.
private final class Reported: @unchecked Sendable {
    private let lock = NSLock()
    private var errors: [Error] = []
    func add(_ e: Error) { lock.lock(); errors.append(e); lock.unlock() }
    var all: [Error] { lock.lock(); defer { lock.unlock() }; return errors }
}

@Suite("Record store")
struct RecordStoreTests {
    @Test func answered_call_leaves_a_completed_record_and_one_log_line_per_event() throws {
        try withTemporaryDatabase { path in
            let store = try RecordStore(path: path)
            store.record(arrived("c1", at: 1_000, version: "abc123"))
            store.record(.offered(call: "c1", agent: "alice", at: 1_100))
            store.record(.notAnswered(call: "c1", agent: "alice", code: nil, at: 3_100))
            store.record(.offered(call: "c1", agent: "bob", at: 3_100))
            store.record(.connected(call: "c1", agent: "bob", at: 4_000))
            store.record(.completed(call: "c1", agent: "bob", at: 64_000))
            store.flush()

            let call = try #require(try store.call("c1"))
            #expect(call.outcome == .completed)
            #expect(call.agent == "bob")
            #expect(call.offers == 2)
            #expect(call.waitMs == 3_000)
            #expect(call.talkMs == 60_000)
            #expect(call.rulesVersion == "abc123")

            let log = try store.queueLog(call: "c1")
            #expect(log.map(\.event) == [.enterQueue, .offer, .ringNoAnswer, .offer, .connect, .complete])
            #expect(log.allSatisfy { $0.rulesVersion == "abc123" && $0.queue == "sales" })
            #expect(log[4].durationMs == 3_000)
            #expect(log[5].durationMs == 60_000)
        }
    }

    /// Text is bound through SQLite's C API: an empty string must stay an empty string (a null
    /// pointer would bind NULL and the NOT NULL columns would refuse the row), other bytes must
    /// arrive as they were, and a missing value must be NULL.
    @Test func empty_and_non_ascii_text_and_missing_values_are_stored_as_given() throws {
        try withTemporaryDatabase { path in
            let reported = Reported()
            let store = try RecordStore(path: path, onError: { reported.add($0) })
            store.record(.arrived(call: "e1", sipCallID: "", caller: "sip:zoë@例え.jp", queue: "", priority: -3,
                                  rulesVersion: "", at: 5))
            store.record(.offered(call: "e1", agent: "", at: 6))
            store.record(.notAnswered(call: "e1", agent: "", code: nil, at: 7))
            store.record(.failed(call: "e1", code: 480, timedOut: false, at: 8))
            store.flush()
            #expect(reported.all.isEmpty)

            let call = try #require(try store.call("e1"))
            #expect(call.sipCallID == "")
            #expect(call.caller == "sip:zoë@例え.jp")
            #expect(call.queue == "")
            #expect(call.priority == -3)
            #expect(call.rulesVersion == "")
            #expect(call.agent == nil)
            #expect(call.outcome == .failed)
            #expect(call.finalCode == 480)
            #expect(call.offers == 1)
            let log = try store.queueLog(call: "e1")
            #expect(log.map(\.event) == [.enterQueue, .offer, .ringNoAnswer, .failed])
            #expect(log[1].agent == "")
            #expect(log[0].agent == nil)
            #expect(log[2].code == nil)
            #expect(log[3].code == 480)
            #expect(log[3].durationMs == 3)
        }
    }

    @Test func caller_who_hangs_up_while_waiting_is_abandoned_once() throws {
        try withTemporaryDatabase { path in
            let store = try RecordStore(path: path)
            store.record(arrived("c2", at: 0))
            store.record(.abandoned(call: "c2", at: 7_000))
            store.record(.abandoned(call: "c2", at: 8_000))
            store.record(.connected(call: "c2", agent: "alice", at: 9_000))  // too late: ignored
            store.flush()
            let call = try #require(try store.call("c2"))
            #expect(call.outcome == .abandoned)
            #expect(call.endedMs == 7_000)
            #expect(try store.queueLog(call: "c2").map(\.event) == [.enterQueue, .abandon])
            #expect(try store.queueLog(call: "c2").last?.code == 487)  // the ABANDON line says what the caller got
        }
    }

    @Test func queue_timeout_and_failure_are_recorded_with_their_code() throws {
        try withTemporaryDatabase { path in
            let store = try RecordStore(path: path)
            store.record(arrived("t", at: 0))
            store.record(.failed(call: "t", code: 480, timedOut: true, at: 60_000))
            store.record(arrived("f", at: 0))
            store.record(.failed(call: "f", code: 486, timedOut: false, at: 10))
            store.flush()
            #expect(try store.call("t")?.outcome == .timeout)
            #expect(try store.call("f")?.outcome == .failed)
            #expect(try store.call("f")?.finalCode == 486)
            #expect(try store.queueLog(call: "t").last?.event == .exitWithTimeout)
            #expect(try store.queueLog(call: "f").last?.code == 486)
        }
    }

    @Test func treatment_and_overflow_are_logged_and_an_overflow_ends_the_wait_once() throws {
        try withTemporaryDatabase { path in
            let store = try RecordStore(path: path)
            store.record(arrived("t1", at: 0))
            store.record(.treatment(call: "t1", treatment: "moh", at: 500))
            store.record(.overflowed(call: "t1", full: false, treatment: "announcement", code: nil, at: 60_000))
            store.record(.overflowed(call: "t1", full: true, treatment: nil, code: 486, at: 61_000))  // over already: ignored
            store.record(.treatment(call: "t1", treatment: "announcement", at: 60_100))
            store.record(arrived("t2", at: 0))
            store.record(.overflowed(call: "t2", full: true, treatment: nil, code: 486, at: 10))
            store.flush()

            let t1 = try #require(try store.call("t1"))
            #expect(t1.outcome == .timeout)
            #expect(t1.finalCode == nil)
            #expect(t1.waitMs == 60_000)
            let log = try store.queueLog(call: "t1")
            #expect(log.map(\.event) == [.enterQueue, .treatment, .exitWithTimeout, .treatment])
            #expect(log.map(\.agent) == [nil, "moh", "announcement", "announcement"])
            let t2 = try #require(try store.call("t2"))
            #expect(t2.outcome == .failed)
            #expect(t2.finalCode == 486)
            #expect(try store.queueLog(call: "t2").map(\.event) == [.enterQueue, .exitWithFull])
            #expect(try store.queueLog(call: "t2").last?.code == 486)
        }
    }

    @Test func reopening_the_file_loses_nothing_written() throws {
        try withTemporaryDatabase { path in
            do {
                let store = try RecordStore(path: path)
                store.record(arrived("r1", at: 10))
                store.record(.offered(call: "r1", agent: "alice", at: 20))
                store.record(.connected(call: "r1", agent: "alice", at: 30))
                store.flush()
            }
            let reopened = try RecordStore(path: path)
            #expect(try reopened.call("r1")?.outcome == .answered)
            #expect(try reopened.queueLog().count == 3)
            // The reopened store goes on where the first left off.
            try reopened.recordNow(.completed(call: "r1", agent: "alice", at: 1_030))
            #expect(try RecordStore(path: path).call("r1")?.talkMs == 1_000)
        }
    }

    /// records.retention: the calls that arrived before the cutoff go, their queue-log lines with
    /// them, in batches; the others stay whole.
    @Test(arguments: [1, 2, 2_000])
    func pruning_deletes_old_calls_and_their_log_lines_and_keeps_the_rest(batch: Int) throws {
        try withTemporaryDatabase { path in
            let store = try RecordStore(path: path)
            for (call, at) in [("old1", Int64(1_000)), ("old2", 2_000), ("old3", 2_000), ("new1", 5_000), ("new2", 9_000)] {
                store.record(arrived(call, at: at))
                store.record(.offered(call: call, agent: "alice", at: at + 100))
                store.record(.connected(call: call, agent: "alice", at: at + 200))
                store.record(.completed(call: call, agent: "alice", at: at + 300))
            }
            store.flush()
            #expect(try store.prune(arrivedBefore: 5_000, batch: batch) == 3)
            #expect(try store.recentCalls(limit: 10).map(\.reference) == ["new2", "new1"])
            #expect(Set(try store.queueLog().map(\.call)) == ["new1", "new2"])
            #expect(try store.queueLog(call: "new1").map(\.event) == [.enterQueue, .offer, .connect, .complete])
            #expect(try store.prune(arrivedBefore: 5_000, batch: batch) == 0)
            // An event of a pruned call is refused like one of an unknown call; the store goes on.
            let reported = Reported()
            let reopened = try RecordStore(path: path, onError: { reported.add($0) })
            reopened.record(.completed(call: "old1", agent: "alice", at: 20_000))
            reopened.record(arrived("new3", at: 20_000))
            reopened.flush()
            #expect(reported.all.count == 1)
            #expect(try reopened.call("old1") == nil)
            #expect(try reopened.call("new3") != nil)
        }
    }

    @Test func recent_calls_are_newest_first_and_limited() throws {
        try withTemporaryDatabase { path in
            let store = try RecordStore(path: path)
            for i in 0..<5 { store.record(arrived("c\(i)", at: Int64(i) * 100)) }
            store.flush()
            #expect(try store.recentCalls(limit: 3).map(\.reference) == ["c4", "c3", "c2"])
        }
    }

    @Test func stats_per_queue_and_per_agent() throws {
        try withTemporaryDatabase { path in
            let store = try RecordStore(path: path)
            // sales: one answered in 5 s (talk 30 s), one answered in 40 s (talk 10 s), one abandoned.
            store.record(arrived("a", at: 0))
            store.record(.offered(call: "a", agent: "alice", at: 1_000))
            store.record(.connected(call: "a", agent: "alice", at: 5_000))
            store.record(.completed(call: "a", agent: "alice", at: 35_000))
            store.record(arrived("b", at: 0))
            store.record(.offered(call: "b", agent: "bob", at: 1_000))
            store.record(.notAnswered(call: "b", agent: "bob", code: 486, at: 2_000))
            store.record(.offered(call: "b", agent: "alice", at: 39_000))
            store.record(.connected(call: "b", agent: "alice", at: 40_000))
            store.record(.completed(call: "b", agent: "alice", at: 50_000))
            store.record(arrived("c", at: 0))
            store.record(.treatment(call: "c", treatment: "moh", at: 1_000))
            store.record(.abandoned(call: "c", at: 3_000))
            // support: one still waiting.
            store.record(arrived("d", queue: "support", at: 0))
            store.flush()

            let queues = try store.queueStats(serviceLevelMs: 20_000)
            #expect(queues.map(\.queue) == ["sales", "support"])
            let sales = queues[0]
            #expect(sales.offered == 3)
            #expect(sales.answered == 2)
            #expect(sales.abandoned == 1)
            #expect(sales.averageWaitMs == 22_500)
            #expect(abs((sales.serviceLevel ?? -1) - 1.0 / 3.0) < 1e-9)
            #expect(sales.talkMs == 40_000)
            #expect(sales.averageTalkMs == 20_000)
            #expect(queues[1].waiting == 1)
            // nothing to average over: no figure, rather than 0 s or 100 %
            #expect(queues[1].serviceLevel == nil)
            #expect(queues[1].averageWaitMs == nil && queues[1].averageTalkMs == nil)

            // agents only: the treatment that held a caller is no agent
            let agents = try store.agentStats()
            #expect(agents.map(\.agent) == ["alice", "bob"])
            #expect(agents[1].averageTalkMs == nil)
            #expect(agents[0].offered == 2 && agents[0].answered == 2 && agents[0].talkMs == 40_000)
            #expect(agents[1].offered == 1 && agents[1].answered == 0 && agents[1].notAnswered == 1)
        }
    }

    /// A transfer: TRANSFER (the first agent's talk so far, the target in the queue column), the
    /// target's CONNECT makes it the call's agent; the wait and the answer time stay the first's.
    @Test func a_transfer_moves_the_call_to_its_target() throws {
        try withTemporaryDatabase { path in
            let store = try RecordStore(path: path)
            store.record(arrived("t", at: 0))
            store.record(.offered(call: "t", agent: "alice", at: 1_000))
            store.record(.connected(call: "t", agent: "alice", at: 2_000))
            store.record(.transferred(call: "t", agent: "alice", target: "sales", at: 32_000))
            store.record(.offered(call: "t", agent: "bob", at: 32_100))
            store.record(.connected(call: "t", agent: "bob", at: 33_000))
            store.record(.completed(call: "t", agent: "bob", at: 60_000))
            store.flush()
            let call = try #require(try store.call("t"))
            #expect(call.agent == "bob" && call.outcome == .completed && call.answeredMs == 2_000 && call.offers == 2)
            let log = try store.queueLog(call: "t")
            #expect(log.map(\.event) == [.enterQueue, .offer, .connect, .transfer, .offer, .connect, .complete])
            let transfer = try #require(log.first { $0.event == .transfer })
            #expect(transfer.agent == "alice" && transfer.queue == "sales" && transfer.durationMs == 30_000)
            #expect(log.filter { $0.event == .connect }.map(\.agent) == ["alice", "bob"])
            // a transfer of a call that is not answered is no transfer
            store.record(arrived("u", at: 0))
            store.record(.transferred(call: "u", agent: "alice", target: "bob", at: 1_000))
            store.flush()
            #expect(try store.queueLog(call: "u").map(\.event) == [.enterQueue])
        }
    }

    @Test func a_directory_is_refused_with_a_clear_error() throws {
        let dir = FileManager.default.temporaryDirectory.path
        #expect(throws: RecordStoreError.self) { try RecordStore(path: dir) }
        #expect(throws: RecordStoreError.self) { try RecordStore(path: "/nonexistent-parley-dir/x/records.sqlite") }
    }

    // MARK: Batched writes

    @Test(arguments: [1, 16, 256])
    func events_recorded_from_several_threads_all_land_in_per_call_order(batchLimit: Int) throws {
        try withTemporaryDatabase { path in
            let reported = Reported()
            let store = try RecordStore(path: path, batchLimit: batchLimit, onError: reported.add)
            let threads = 8, callsPerThread = 50
            DispatchQueue.concurrentPerform(iterations: threads) { t in
                let calls = (0..<callsPerThread).map { "t\(t)-c\($0)" }
                // Each thread interleaves its calls: every call's first event, then every call's second...
                for c in calls { store.record(arrived(c, at: 0)) }
                for c in calls { store.record(.offered(call: c, agent: "a\(t)", at: 10)) }
                for c in calls { store.record(.connected(call: c, agent: "a\(t)", at: 20)) }
                for c in calls { store.record(.completed(call: c, agent: "a\(t)", at: 30)) }
            }
            store.flush()
            #expect(reported.all.isEmpty)
            let log = try store.queueLog()
            #expect(log.count == threads * callsPerThread * 4)
            var perCall: [String: [QueueLogEvent]] = [:]
            for line in log { perCall[line.call, default: []].append(line.event) }
            #expect(perCall.count == threads * callsPerThread)
            #expect(perCall.values.allSatisfy { $0 == [.enterQueue, .offer, .connect, .complete] })
            let calls = try store.recentCalls(limit: 1_000)
            #expect(calls.count == threads * callsPerThread)
            #expect(calls.allSatisfy { $0.outcome == .completed && $0.offers == 1 && $0.talkMs == 10 })
        }
    }

    @Test func a_bad_event_is_reported_and_the_rest_of_its_batch_is_written() throws {
        try withTemporaryDatabase { path in
            let reported = Reported()
            // One batch: nothing is written before flush.
            let store = try RecordStore(path: path, batchDelay: .seconds(60), onError: reported.add)
            store.record(arrived("ok", at: 0))
            store.record(.offered(call: "ghost", agent: "alice", at: 5))  // no such call
            store.record(.offered(call: "ok", agent: "alice", at: 10))
            store.record(.connected(call: "ok", agent: "alice", at: 20))
            store.flush()
            let call = try #require(try store.call("ok"))
            #expect(call.outcome == .answered)
            #expect(call.offers == 1)
            #expect(try store.queueLog().map(\.event) == [.enterQueue, .offer, .connect])
            #expect(try store.queueLog(call: "ghost").isEmpty)
            let errors = reported.all
            #expect(errors.count == 1)
            #expect(errors.first.map { "\($0)".contains("unknown call ghost") } == true)
        }
    }

    @Test func flush_writes_everything_pending_without_waiting_for_the_delay() throws {
        try withTemporaryDatabase { path in
            let store = try RecordStore(path: path, batchDelay: .seconds(3_600))
            for i in 0..<5_000 {
                store.record(arrived("f\(i)", at: Int64(i)))
                store.record(.abandoned(call: "f\(i)", at: Int64(i) + 1))
            }
            store.flush()
            #expect(try store.queueLog().count == 10_000)
            #expect(try store.queueStats().first?.abandoned == 5_000)
            // And it survives reopening.
            #expect(try RecordStore(path: path).queueLog().count == 10_000)
        }
    }

    @Test func record_now_writes_the_pending_events_first() throws {
        try withTemporaryDatabase { path in
            let store = try RecordStore(path: path, batchDelay: .seconds(3_600))
            store.record(arrived("n1", at: 0))
            // Would throw "unknown call" if the pending arrival were not written first.
            try store.recordNow(.offered(call: "n1", agent: "alice", at: 10))
            #expect(try store.queueLog(call: "n1").map(\.event) == [.enterQueue, .offer])
            #expect(throws: RecordStoreError.self) { try store.recordNow(.offered(call: "nobody", agent: "alice", at: 10)) }
        }
    }

    @Test func events_are_written_without_flush_after_the_delay() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("parley-records-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try RecordStore(path: dir.appendingPathComponent("records.sqlite").path, batchDelay: .milliseconds(5))
        store.record(arrived("d1", at: 0))
        // No flush: the delayed write lands by itself (polled, generous bound; not a speed check).
        var seen = false
        for _ in 0..<1_000 where !seen {
            try await Task.sleep(for: .milliseconds(10))
            seen = try store.call("d1") != nil
        }
        #expect(seen)
    }

    @Test func the_database_is_in_wal_mode_with_synchronous_normal() throws {
        try withTemporaryDatabase { path in
            let settings = try RecordStore(path: path).sqliteSettings()
            #expect(settings.journalMode == "wal")
            #expect(settings.synchronous == 1)
        }
    }
}
