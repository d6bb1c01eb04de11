import Foundation
import ParleyCallCenter
import ParleyRecords
import ParleyRules
import ParleySIP
import ParleyTransport
import Prometheus

/// What the roles of this process count, taken on their loops at each scrape.
public struct RoleFigures: Sendable {
    public struct Stack: Sendable {
        public var counts: SIPCounts
        public var transactions: Int
        public var parseErrors: Int
        public init(counts: SIPCounts, transactions: Int, parseErrors: Int) {
            self.counts = counts
            self.transactions = transactions
            self.parseErrors = parseErrors
        }
    }

    public var stacks: [Stack] = []
    /// Calls up in the buffer server (or answered calls the distributor knows of).
    public var activeCalls = 0
    /// Agents the registration role holds a registration for.
    public var registrations = 0
    public init() {}
}

/// `/metrics`: Prometheus text through swift-prometheus. Call events are counted as they happen
/// (on the distributor's loop); everything else is read at the scrape. No agent id, caller or
/// call reference is ever a label.
public final class AdminMetrics: @unchecked Sendable {
    public let registry = PrometheusCollectorRegistry()
    private let lock = NSLock()
    /// Totals read at the scrape, as last exported (a counter only goes up by the difference).
    private var exported: [String: Double] = [:]
    /// Calls not yet ended, and each queue's figures today (on the distributor's loop only).
    var tally: QueueTally
    private var rulesInfo: Gauge?
    private var rulesVersion: String?
    private static let waitBuckets: [Duration] = [1, 5, 10, 20, 30, 45, 60, 120, 300].map { .seconds($0) }
    private static let hookBuckets: [Duration] = [.microseconds(1), .microseconds(10), .microseconds(100), .milliseconds(1),
                                                  .milliseconds(10), .milliseconds(100)]
    public static let version = "0.1.0"

    // Series that exist whatever runs here (0 for a role that does not).
    private let callsActive: Gauge
    private let transactionsActive: Gauge
    private let registrationsActive: Gauge
    private let retransmissions: Counter
    private let parseErrors: Counter
    private let resident: Gauge
    private let openFDs: Gauge
    private let startTime: Gauge
    private let cpu: Counter

    /// Every metric's help text (one per name: the library refuses two).
    static let help: [String: String] = [
        "parley_calls_total": "Calls that ended, by queue and outcome (completed, abandoned, failed, timeout, overflow).",
        "parley_queue_wait_seconds": "How long callers waited before an agent answered (answered) or they gave up or were given up (abandoned, timeout, failed).",
        "parley_queue_waiting": "Callers waiting for an agent now.",
        "parley_queue_oldest_wait_seconds": "How long the longest-waiting caller has waited.",
        "parley_agents": "The queue's agents by state.",
        "parley_agent_offers_total": "Offers of calls to agents, by how they ended.",
        "parley_sip_requests_received_total": "SIP requests received, by method and transport.",
        "parley_sip_responses_sent_total": "SIP responses sent, by class.",
        "parley_rule_hook_seconds": "How long each rule hook call took.",
        "parley_rule_hook_failures_total": "Rule hook calls that failed (the default was used).",
        "parley_rules_reloads_total": "Rule reloads, by result (failed: the old rules stayed).",
        "parley_rules_info": "The rules version in force; always 1.",
        "parley_build_info": "Parley's version; always 1.",
    ]

    /// A metric's full name as the library wants it described, with its help text.
    static func named(_ name: String, help: String? = nil) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help ?? Self.help[name] ?? "")
    }

    func gauge(_ name: String, _ labels: [(String, String)]) -> Gauge {
        registry.makeGauge(descriptor: Self.named(name), labels: labels)
    }

    func counter(_ name: String, _ labels: [(String, String)]) -> Counter {
        registry.makeCounter(descriptor: Self.named(name), labels: labels)
    }

    /// `midnight`: local midnight at or before a time; `threshold`: a queue's service-level
    /// threshold (both in ms), for the "today" figures.
    public init(midnight: @escaping (Int64) -> Int64 = { $0 - $0 % 86_400_000 }, threshold: @escaping (String) -> Int64 = { _ in 20_000 }) {
        tally = QueueTally(midnight: midnight, threshold: threshold)
        callsActive = registry.makeGauge(descriptor: Self.named("parley_calls_active", help: "Calls set up or talking now."))
        transactionsActive = registry.makeGauge(descriptor: Self.named("parley_transactions_active", help: "SIP transactions alive now, over every role of this process."))
        registrationsActive = registry.makeGauge(descriptor: Self.named("parley_registrations_active", help: "Agents the registration role holds a registration for."))
        retransmissions = registry.makeCounter(descriptor: Self.named("parley_sip_retransmissions_total", help: "SIP requests and responses sent again by a transaction."))
        parseErrors = registry.makeCounter(descriptor: Self.named("parley_sip_parse_errors_total", help: "SIP messages that did not parse (answered 400 or dropped)."))
        resident = registry.makeGauge(descriptor: Self.named("process_resident_memory_bytes", help: "Resident memory size in bytes."))
        openFDs = registry.makeGauge(descriptor: Self.named("process_open_fds", help: "Number of open file descriptors."))
        startTime = registry.makeGauge(descriptor: Self.named("process_start_time_seconds", help: "Start time of the process since the Unix epoch in seconds."))
        cpu = registry.makeCounter(descriptor: Self.named("process_cpu_seconds_total", help: "Total user and system CPU time spent in seconds."))
        gauge("parley_build_info", [("version", Self.version)]).set(to: 1)
        for r in ["answered", "no_answer", "refused"] { _ = offers(r) }
        for r in ["published", "failed"] { _ = reloads(r) }
        for c in 1...6 { _ = counter("parley_sip_responses_sent_total", [("code_class", "\(c)xx")]) }
    }

    // What call events update, found by key without the registry's lookup and label checks
    // (on the distributor's loop only).
    private var offerCounters: [String: Counter] = [:]
    /// A queue's call counters and wait histograms, by outcome.
    private final class QueueSeries {
        var ended: [String: Counter] = [:]
        var waits: [String: DurationHistogram] = [:]
    }
    private var queueSeries: [String: QueueSeries] = [:]
    private var hookHistograms: [String: DurationHistogram] = [:]

    private func offers(_ result: String) -> Counter {
        if let c = offerCounters[result] { return c }
        let c = counter("parley_agent_offers_total", [("result", result)])
        offerCounters[result] = c
        return c
    }

    private func reloads(_ result: String) -> Counter {
        counter("parley_rules_reloads_total", [("result", result)])
    }

    private func series(_ queue: String) -> QueueSeries {
        if let q = queueSeries[queue] { return q }
        let q = QueueSeries()
        queueSeries[queue] = q
        return q
    }

    private func ended(_ queue: String, _ outcome: String) {
        let q = series(queue)
        if let c = q.ended[outcome] { c.increment(); return }
        let c = counter("parley_calls_total", [("queue", queue), ("outcome", outcome)])
        q.ended[outcome] = c
        c.increment()
    }

    private func waited(_ queue: String, _ outcome: String, _ ms: Int64) {
        let q = series(queue), wait = Duration.milliseconds(max(0, ms))
        if let h = q.waits[outcome] { h.record(wait); return }
        let h = registry.makeDurationHistogram(descriptor: Self.named("parley_queue_wait_seconds"),
                                               labels: [("queue", queue), ("outcome", outcome)], buckets: Self.waitBuckets)
        q.waits[outcome] = h
        h.record(wait)
    }

    /// A queue's figures today (on the distributor's loop).
    public func today(_ queue: String, now: Int64) -> QueueToday { tally.today(queue, now: now) }

    /// What the records held for the day that began at `day` (on the distributor's loop).
    public func setTodayBase(_ figures: [String: QueueToday], day: Int64) { tally.setBase(figures, day: day) }

    /// A call event (on the distributor's loop).
    public func observe(_ e: ParleyRecords.CallEvent) {
        let before = tally.observe(e)
        switch e {
        case .arrived, .offered, .treatment, .transferred, .agent:
            break
        case .connected(_, _, let at):
            offers("answered").increment()
            if let l = before, l.answeredMs == nil { waited(l.queue, "answered", at - l.arrivedMs) }
        case .notAnswered(_, _, let code, _):
            offers(code == nil ? "no_answer" : "refused").increment()
        case .completed:
            if let l = before { ended(l.queue, "completed") }
        case .abandoned(_, let at):
            if let l = before, l.answeredMs == nil {
                waited(l.queue, "abandoned", at - l.arrivedMs)
                ended(l.queue, "abandoned")
            }
        case .failed(_, _, let timedOut, let at):
            if let l = before, l.answeredMs == nil {
                waited(l.queue, timedOut ? "timeout" : "failed", at - l.arrivedMs)
                ended(l.queue, timedOut ? "timeout" : "failed")
            }
        case .overflowed(_, _, _, _, let at):
            if let l = before, l.answeredMs == nil {
                waited(l.queue, "timeout", at - l.arrivedMs)
                ended(l.queue, "overflow")
            }
        case .trace(_, let entries):
            for t in entries {
                let h = hookHistograms[t.hook] ?? registry.makeDurationHistogram(
                    descriptor: Self.named("parley_rule_hook_seconds"), labels: [("hook", t.hook)], buckets: Self.hookBuckets)
                hookHistograms[t.hook] = h
                h.record(.microseconds(t.tookUs))
            }
        }
    }

    /// Adds what a total grew by since the last scrape.
    private func total(_ counter: Counter, key: String, _ value: Double) {
        let before = lock.withLock { () -> Double in
            let b = exported[key] ?? 0
            exported[key] = max(b, value)
            return b
        }
        if value > before { counter.increment(by: value - before) }
    }

    /// The exposition text, after bringing what is read at the scrape up to date.
    public func scrape(figures: RoleFigures, queues: [QueueSnapshot], rules: RuleStore?) -> String {
        callsActive.set(to: Double(figures.activeCalls))
        registrationsActive.set(to: Double(figures.registrations))
        transactionsActive.set(to: Double(figures.stacks.map(\.transactions).reduce(0, +)))
        for q in queues {
            gauge("parley_queue_waiting", [("queue", q.name)]).set(to: Double(q.callers.count))
            let oldest = q.callers.map { q.nowMs - $0.arrivedMs }.max() ?? 0
            gauge("parley_queue_oldest_wait_seconds", [("queue", q.name)]).set(to: Double(oldest) / 1000)
            for (state, n) in q.agents { gauge("parley_agents", [("queue", q.name), ("state", state)]).set(to: Double(n)) }
        }
        var requests: [String: Int] = [:]
        var responses = [Int](repeating: 0, count: 7)
        var retransmissions = 0, parseErrors = 0
        for s in figures.stacks {
            for (m, perTransport) in s.counts.requests {
                for (i, n) in perTransport.enumerated() { requests["\(m.rawValue)\t\(["udp", "tcp", "tls"][i])", default: 0] += n }
            }
            for i in 1...6 { responses[i] += s.counts.responses[i] }
            retransmissions += s.counts.retransmissions
            parseErrors += s.parseErrors
        }
        for (key, n) in requests {
            let parts = key.split(separator: "\t").map(String.init)
            total(counter("parley_sip_requests_received_total", [("method", parts[0]), ("transport", parts[1])]), key: "req " + key, Double(n))
        }
        for i in 1...6 {
            total(counter("parley_sip_responses_sent_total", [("code_class", "\(i)xx")]), key: "resp \(i)", Double(responses[i]))
        }
        total(self.retransmissions, key: "retrans", Double(retransmissions))
        total(self.parseErrors, key: "parse", Double(parseErrors))
        if let rules {
            let m = rules.metrics
            for hook in RuleHook.allCases {
                total(counter("parley_rule_hook_failures_total", [("hook", hook.rawValue)]), key: "hookfail " + hook.rawValue,
                      Double(m.failures[hook] ?? 0))
            }
            total(counter("parley_rules_reloads_total", [("result", "published")]), key: "reload ok", Double(m.reloads))
            total(counter("parley_rules_reloads_total", [("result", "failed")]), key: "reload failed", Double(m.failedReloads))
            let version = rules.version ?? "none"
            lock.withLock {
                if version != rulesVersion {
                    if let old = rulesInfo { registry.unregisterGauge(old) }
                    rulesInfo = gauge("parley_rules_info", [("version", version)])
                    rulesInfo?.set(to: 1)
                    rulesVersion = version
                }
            }
        }
        let p = ProcessFigures.read()
        resident.set(to: p.residentBytes)
        openFDs.set(to: p.openFDs)
        startTime.set(to: p.startTime)
        total(cpu, key: "cpu", p.cpuSeconds)
        return registry.emitToString()
    }
}

/// The process's own figures, from /proc (0 where it cannot be read).
public struct ProcessFigures {
    var residentBytes: Double = 0
    var cpuSeconds: Double = 0
    var openFDs: Double = 0
    var startTime: Double = 0

    static func read() -> ProcessFigures {
        var p = ProcessFigures()
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        p.residentBytes = residentBytes()
        if let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") {
            // Fields after the command name: state is field 3; utime 14, stime 15, starttime 22.
            let f = stat[stat.index(after: close)...].split(separator: " ")
            if f.count > 19, let u = Double(f[11]), let s = Double(f[12]), let start = Double(f[19]) {
                p.cpuSeconds = (u + s) / ticks
                if let up = try? String(contentsOfFile: "/proc/uptime", encoding: .utf8), let uptime = Double(up.split(separator: " ")[0]) {
                    p.startTime = Date().timeIntervalSince1970 - uptime + start / ticks
                }
            }
        }
        p.openFDs = Double((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0)
        return p
    }

    /// Resident memory in bytes (/proc/self/statm; 0 where it cannot be read).
    public static func residentBytes() -> Double {
        guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let f = statm.split(separator: " ")
        guard f.count > 1, let pages = Double(f[1]) else { return 0 }
        return pages * Double(sysconf(Int32(_SC_PAGESIZE)))
    }
}
