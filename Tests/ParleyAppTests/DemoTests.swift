import Foundation
import ParleyRecords
import Testing

@testable import ParleyApp

/// `parley demo`'s topology on loopback: simulated callers -> distributor -> buffer server ->
/// simulated agents' phones, with the shipped rules. Checks that calls really reach the phones
/// and are answered end to end, and that callers, phones, distributor and call records agree.
@Suite(.serialized) struct DemoTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func options(agents: Int, rate: Double, seconds: Int) -> DemoOptions {
        var o = DemoOptions(rulesDirectory: Self.root.appendingPathComponent("rules").path)
        o.agents = agents
        o.rate = rate
        o.duration = .seconds(seconds)
        // Below the kernel's ephemeral range (32768-60999): other tests running at the same time bind
        // ephemeral ports, and one of those must never be a simulated phone's.
        o.basePort = 20_000 + Int.random(in: 0..<900) * 10
        o.seed = 42
        o.wrapUp = .zero
        o.logLevel = "error"
        return o
    }

    /// Runs the demo for its duration, drains it, stops it; returns the final snapshot.
    func run(_ options: DemoOptions) throws -> DemoSnapshot {
        let demo = try ParleyDemo(options: options)
        defer { demo.stop() }
        try demo.start()
        Thread.sleep(forTimeInterval: Double(options.duration.components.seconds))
        demo.stopCalling()
        return demo.drain(timeout: .seconds(10))
    }

    @Test func callsAreAnsweredByTheAgentsPhonesEndToEnd() throws {
        let recordsDir = FileManager.default.temporaryDirectory.appendingPathComponent("parley-demo-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: recordsDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: recordsDir) }
        var o = options(agents: 3, rate: 4, seconds: 3)
        o.behaviour.ring = 0.1...0.3
        o.behaviour.talk = 0.3...0.8
        o.behaviour.busyChance = 0.2
        o.behaviour.noAnswerChance = 0
        o.behaviour.patience = 30...30
        o.recordsPath = recordsDir.appendingPathComponent("calls.sqlite").path

        let final = try run(o)
        let c = final.callers
        #expect(final.settled, "still in flight: \(final.inFlight)")
        #expect(final.inconsistencies(final: true) == [])
        #expect(c.offered >= 5)
        #expect(c.answered >= 3)
        #expect(c.abandoned == 0)
        #expect(c.failed == 0, "failures: \(c.failureCodes)")
        // Every answer a caller got came from a phone, and every answered call ended with a BYE.
        // (At the end, a phone's 200 may cross the CANCEL of a caller being cut off: the buffer
        // server hangs that leg up, and the phone counts the answer as too late.)
        let tooLate = final.agents.reduce(0) { $0 + ($1.phone?.figures.answeredTooLate ?? 0) }
        #expect(final.answeredByPhones == c.answered)
        #expect(c.completed == c.answered)
        let byes = final.agents.reduce(0) { $0 + ($1.phone?.figures.hungUp ?? 0) + ($1.phone?.figures.hungUpOn ?? 0) }
        #expect(byes == c.answered + tooLate)
        // More than one agent took calls (the rules spread them), and each one's count is the distributor's.
        #expect(final.agents.filter { ($0.phone?.figures.answered ?? 0) > 0 }.count >= 2)
        for a in final.agents { #expect(a.callsHandled == a.phone?.figures.connected, "agent \(a.id)") }
        #expect(final.bufferEnded == c.answered)
        // A declined call (486) moved on to another agent (no caller failed): the phones saw each INVITE.
        let offeredToPhones = final.agents.reduce(0) { $0 + ($1.phone?.figures.offered ?? 0) }
        let declined = final.agents.reduce(0) { $0 + ($1.phone?.figures.declined ?? 0) }
        #expect(offeredToPhones >= c.answered + tooLate + declined)

        // The distributor wrote one record per call; the answered ones completed.
        let store = try RecordStore(path: try #require(o.recordsPath))
        let records = try store.recentCalls(limit: 1000)
        #expect(records.count == c.offered)
        #expect(records.filter { $0.outcome == .completed }.count == c.answered)
        // The shipped rules ran in business hours whatever the time of day: skills routing, not
        // every call after_hours.
        #expect(Set(records.map(\.queue)).isSubset(of: ["sales", "support", "billing"]), "queues: \(Set(records.map(\.queue)))")
    }

    /// The rules' clock starts at the demo's business hour and then keeps the real pace.
    @Test func theRulesClockStartsInBusinessHours() {
        var o = options(agents: 1, rate: 1, seconds: 1)
        let real = ManualClockForDemo()
        real.ms = 5_000_000
        let clock = o.rulesClock(now: { real.ms })
        #expect(clock.nowMs() == DemoOptions.businessHoursMs)
        real.ms += 90_000
        #expect(clock.nowMs() == DemoOptions.businessHoursMs + 90_000)
        // a Tuesday (1970-01-01 was a Thursday), 15:00 UTC
        let days = DemoOptions.businessHoursMs / 86_400_000
        #expect((days + 3) % 7 + 1 == 2)
        #expect(DemoOptions.businessHoursMs % 86_400_000 == 15 * 3_600_000)
        o.rulesClockStartMs = nil
        #expect(o.rulesClock(now: { real.ms }).nowMs() == real.ms)
    }

    @Test func callersKeptWaitingHangUpAndAreCountedAsAbandoned() throws {
        var o = options(agents: 1, rate: 6, seconds: 2)
        o.behaviour.ring = 0.1...0.1
        o.behaviour.talk = 3...3
        o.behaviour.busyChance = 0
        o.behaviour.noAnswerChance = 0
        o.behaviour.patience = 0.6...0.9
        let recordsDir = FileManager.default.temporaryDirectory.appendingPathComponent("parley-demo-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: recordsDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: recordsDir) }
        o.recordsPath = recordsDir.appendingPathComponent("calls.sqlite").path

        let final = try run(o)
        let c = final.callers
        #expect(final.settled, "still in flight: \(final.inFlight)")
        #expect(final.inconsistencies(final: true) == [])
        // One agent talking 3 s: the first caller is answered, the next ones queue (182) and give up.
        #expect(c.answered >= 1)
        #expect(c.queued >= 1)
        #expect(c.abandoned >= 1)
        #expect(c.offered == c.answered + c.abandoned + c.failed + c.cutOff)
        #expect((final.distributor?.cancelled ?? 0) >= c.abandoned)
        // The summary's abandoned figure is the records' (callers cut off at the end included).
        let store = try RecordStore(path: try #require(o.recordsPath))
        let abandonedInRecords = try store.recentCalls(limit: 1000).filter { $0.outcome == .abandoned }.count
        #expect(abandonedInRecords == c.abandoned + c.cutOff)
        #expect(final.render(title: "final").contains("abandoned \(abandonedInRecords) "))
    }
}

/// A settable wall clock for the demo's rules clock.
final class ManualClockForDemo: @unchecked Sendable {
    var ms: Int64 = 0
}
