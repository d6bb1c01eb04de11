import ArgumentParser
import Foundation
import ParleyRecords

/// `parley stats`: per-queue and per-agent figures from the record database.
struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Per-queue and per-agent figures from the record database.",
        discussion: """
        Per queue (call type): offered, answered, abandoned, failed (timed out or no agent), \
        waiting, average wait of answered calls, service level (answered within --service-level \
        over the calls that stopped waiting) and talk time; "-" where there is nothing to \
        average. Per agent: offered, answered, not \
        answered (no answer or a failure response) and talk time. --since limits both to calls \
        and events in the last DURATION (e.g. 15m, 1h, 2d).
        """
    )

    @OptionGroup var records: RecordsOptions

    @Option(name: .customLong("service-level"), help: "The answer-time target of the service level (e.g. 20s).")
    var serviceLevel = "20s"

    @Option(help: "Only the last DURATION (s, m, h or d), e.g. 1h. Default: everything.")
    var since: String?

    @Flag(help: "Print JSON: {\"queues\": [...], \"agents\": [...]}, durations in ms.")
    var json = false

    func validate() throws {
        guard Self.parseDuration(serviceLevel) != nil else {
            throw ValidationError("--service-level '\(serviceLevel)' is not a duration such as 20s, 500ms or 1m")
        }
        if let since, Self.parseDuration(since) == nil {
            throw ValidationError("--since '\(since)' is not a duration such as 15m, 1h or 2d")
        }
    }

    /// Milliseconds of `20`, `20s`, `500ms`, `15m`, `1h`, `2d`.
    static func parseDuration(_ text: String) -> Int64? {
        if let v = Double(text), v >= 0 { return Int64(v * 1000) }
        for (suffix, scale) in [("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0), ("d", 86400.0)] where text.hasSuffix(suffix) {
            guard let v = Double(text.dropLast(suffix.count)), v >= 0, v.isFinite else { return nil }
            return Int64(v * scale * 1000)
        }
        return nil
    }

    func run() throws {
        let store = try records.open(command: "stats")
        let slMs = Self.parseDuration(serviceLevel) ?? 20_000
        let sinceMs = since.flatMap(Self.parseDuration).map { Int64(Date().timeIntervalSince1970 * 1000) - $0 } ?? 0
        let queues = try store.queueStats(sinceMs: sinceMs, serviceLevelMs: slMs)
        let agents = try store.agentStats(sinceMs: sinceMs)
        if json {
            let q = queues.map { s -> JSONValue in
                .object(["queue": .string(s.queue), "offered": .number(s.offered), "answered": .number(s.answered),
                         "abandoned": .number(s.abandoned), "failed": .number(s.failed), "waiting": .number(s.waiting),
                         "average_wait_ms": .optional(s.averageWaitMs), "service_level": s.serviceLevel.map { .double($0) } ?? .null,
                         "service_level_threshold_ms": .int(slMs), "talk_ms": .int(s.talkMs), "average_talk_ms": .optional(s.averageTalkMs)])
            }
            let a = agents.map { s -> JSONValue in
                .object(["agent": .string(s.agent), "offered": .number(s.offered), "answered": .number(s.answered),
                         "not_answered": .number(s.notAnswered), "talk_ms": .int(s.talkMs), "average_talk_ms": .optional(s.averageTalkMs)])
            }
            print(JSONValue.object(["queues": .array(q), "agents": .array(a)]).text)
            return
        }
        if queues.isEmpty, agents.isEmpty {
            print("no calls recorded in \(store.path)")
            return
        }
        print("queues")
        print(table(["queue", "offered", "answered", "abandoned", "failed", "waiting", "avg_wait", "service_level(\(serviceLevel))", "talk", "avg_talk"],
                    queues.map {
                        [$0.queue, String($0.offered), String($0.answered), String($0.abandoned), String($0.failed), String($0.waiting),
                         formatSeconds($0.averageWaitMs), $0.serviceLevel.map { String(format: "%.0f%%", $0 * 100) } ?? "-", formatSeconds($0.talkMs),
                         formatSeconds($0.averageTalkMs)]
                    }))
        print("")
        print("agents")
        print(table(["agent", "offered", "answered", "not_answered", "talk", "avg_talk"], agents.map {
            [$0.agent, String($0.offered), String($0.answered), String($0.notAnswered), formatSeconds($0.talkMs), formatSeconds($0.averageTalkMs)]
        }))
    }
}
