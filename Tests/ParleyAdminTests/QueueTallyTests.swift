import Foundation
import ParleyRecords
import Testing

@testable import ParleyAdmin

/// Today's queue figures counted from call events, against what the records' query says for the
/// same calls, and across midnight.
@Suite struct QueueTallyTests {
    static let day: Int64 = 86_400_000
    /// Days start at multiples of 24 h (UTC); sales' threshold is 20 s, support's 10 s.
    func tally() -> QueueTally {
        QueueTally(midnight: { $0 - $0 % Self.day }, threshold: { $0 == "support" ? 10_000 : 20_000 })
    }

    /// A day of calls of every ending, with what the tally must say.
    static func calls(at t0: Int64) -> [ParleyRecords.CallEvent] {
        [
            // Answered in 5 s, completed after 60 s.
            .arrived(call: "c1", sipCallID: "s1", caller: "sip:a@x", queue: "sales", priority: 0, rulesVersion: "v", at: t0),
            .offered(call: "c1", agent: "bob", at: t0 + 10),
            .connected(call: "c1", agent: "bob", at: t0 + 5_000),
            .completed(call: "c1", agent: "bob", at: t0 + 65_000),
            // Answered in 30 s (late), transferred: the target's answer is no second answer; still talking.
            .arrived(call: "c2", sipCallID: "s2", caller: "sip:b@x", queue: "sales", priority: 0, rulesVersion: "v", at: t0 + 1_000),
            .connected(call: "c2", agent: "bob", at: t0 + 31_000),
            .transferred(call: "c2", agent: "bob", target: "alice", at: t0 + 40_000),
            .connected(call: "c2", agent: "alice", at: t0 + 45_000),
            // Abandoned after 25 s (late), and after 3 s (not late).
            .arrived(call: "c3", sipCallID: "s3", caller: "sip:c@x", queue: "sales", priority: 0, rulesVersion: "v", at: t0 + 2_000),
            .abandoned(call: "c3", at: t0 + 27_000),
            .arrived(call: "c4", sipCallID: "s4", caller: "sip:d@x", queue: "sales", priority: 0, rulesVersion: "v", at: t0 + 3_000),
            .abandoned(call: "c4", at: t0 + 6_000),
            // Failed, timed out, overflowed (full): all three are "failed".
            .arrived(call: "c5", sipCallID: "s5", caller: "sip:e@x", queue: "support", priority: 0, rulesVersion: "v", at: t0 + 4_000),
            .failed(call: "c5", code: 480, timedOut: false, at: t0 + 4_500),
            .arrived(call: "c6", sipCallID: "s6", caller: "sip:f@x", queue: "support", priority: 0, rulesVersion: "v", at: t0 + 5_000),
            .failed(call: "c6", code: 408, timedOut: true, at: t0 + 65_000),
            .arrived(call: "c7", sipCallID: "s7", caller: "sip:g@x", queue: "support", priority: 0, rulesVersion: "v", at: t0 + 6_000),
            .overflowed(call: "c7", full: true, treatment: nil, code: 486, at: t0 + 6_001),
            // Answered in 10 s on support (in time: at the threshold), still talking.
            .arrived(call: "c8", sipCallID: "s8", caller: "sip:h@x", queue: "support", priority: 0, rulesVersion: "v", at: t0 + 7_000),
            .connected(call: "c8", agent: "carol", at: t0 + 17_000),
        ]
    }

    @Test func countsWhatTheRecordsSay() throws {
        let t0 = 20_000 * Self.day + 3_600_000
        var t = tally()
        for e in Self.calls(at: t0) { t.observe(e) }
        let sales = t.today("sales", now: t0 + 70_000)
        #expect(sales.offered == 4 && sales.answered == 2 && sales.abandoned == 2 && sales.failed == 0)
        #expect(sales.answeredInTime == 1 && sales.abandonedLate == 1)
        #expect(sales.averageWaitMs == 17_500 && sales.averageHandleMs == 60_000 && sales.serviceLevel == 1.0 / 3)
        let support = t.today("support", now: t0 + 70_000)
        #expect(support.offered == 4 && support.answered == 1 && support.failed == 3 && support.answeredInTime == 1)
        #expect(support.averageHandleMs == nil && support.serviceLevel == 1)
        #expect(t.live.keys.sorted() == ["c2", "c8"])

        // The records' query over the same events says the same.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("parley-tally-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try RecordStore(path: dir.appendingPathComponent("records.sqlite").path)
        for e in Self.calls(at: t0) { store.record(e) }
        store.flush()
        let day = t0 - t0 % Self.day
        #expect(try store.queueToday("sales", sinceMs: day, thresholdMs: 20_000) == sales)
        #expect(try store.queueToday("support", sinceMs: day, thresholdMs: 10_000) == support)
        // What the records held from before a start is added once, for that day only.
        t.setBase(["sales": try store.queueToday("sales", sinceMs: day, thresholdMs: 20_000)], day: day)
        #expect(t.today("sales", now: t0 + 80_000).offered == 8)
        #expect(t.today("sales", now: day + Self.day).offered == 0)
    }

    /// At midnight the figures start again; a call that arrived yesterday and ends today counts
    /// in neither day.
    @Test func midnightStartsANewDay() {
        let midnight = 30 * Self.day
        var t = tally()
        t.observe(.arrived(call: "late", sipCallID: "s", caller: "sip:a@x", queue: "sales", priority: 0, rulesVersion: "v", at: midnight - 1_000))
        #expect(t.today("sales", now: midnight - 1).offered == 1)
        t.observe(.arrived(call: "new", sipCallID: "t", caller: "sip:b@x", queue: "sales", priority: 0, rulesVersion: "v", at: midnight + 1_000))
        t.observe(.connected(call: "late", agent: "bob", at: midnight + 2_000))
        t.observe(.abandoned(call: "new", at: midnight + 3_000))
        let today = t.today("sales", now: midnight + 4_000)
        #expect(today.offered == 1 && today.answered == 0 && today.abandoned == 1)
        #expect(t.today("sales", now: midnight + Self.day).offered == 0)
    }
}
