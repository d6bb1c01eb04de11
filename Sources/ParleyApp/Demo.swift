import Foundation
import Logging
import NIOCore
import NIOPosix
import ParleyCallCenter
import ParleyRules
import ParleySIP
import ParleyTransaction
import ParleyTransport

/// What `parley demo` runs: how many agents, how fast callers call, for how long, where.
public struct DemoOptions: Sendable {
    public var agents = 5
    /// New calls per second (Poisson arrivals).
    public var rate = 1.0
    /// How long callers keep calling.
    public var duration: Duration = .seconds(60)
    /// The rule set the distributor runs.
    public var rulesDirectory: String
    public var seed: UInt64 = 1
    /// The first of five consecutive UDP ports on 127.0.0.1: distributor, buffer server, tunnel
    /// (TCP), agents' phones, callers.
    public var basePort = 25_060
    public var behaviour = DemoBehaviour()
    /// Where call records go; nil: a file in the demo's temporary directory, removed at the end.
    public var recordsPath: String?
    public var noAnswerTimeout: Duration = .seconds(6)
    public var wrapUp: Duration = .seconds(1)
    public var queueTimeout: Duration = .seconds(60)
    public var logLevel = "warning"
    /// Where the rules' clock starts (ms since 1970, UTC); it then runs at the real pace. By
    /// default a Tuesday at 15:00 UTC (10:00 in the shipped rules' UTC-5): the demo shows skills
    /// routing whatever the time of day, not every call `after_hours`. nil: the real clock.
    public var rulesClockStartMs: Int64? = DemoOptions.businessHoursMs
    /// 2026-12-08 (a Tuesday) 15:00 UTC.
    public static let businessHoursMs: Int64 = 1_796_742_000_000

    public init(rulesDirectory: String) { self.rulesDirectory = rulesDirectory }

    /// The rules' clock for this demo: from `rulesClockStartMs` on at the pace of `now`.
    public func rulesClock(now: @escaping @Sendable () -> Int64 = RuleClock.system.nowMs) -> RuleClock {
        guard let start = rulesClockStartMs else { return RuleClock(now) }
        let offset = start - now()
        return RuleClock { now() + offset }
    }

    /// The agent ids: agent01, agent02, ...
    public var agentIDs: [String] {
        let width = max(2, String(agents).count)
        return (1...max(1, agents)).map { "agent" + String(repeating: "0", count: width - String($0).count) + String($0) }
    }
}

/// One second of the demo: what callers, phones and the distributor say.
public struct DemoSnapshot: Sendable {
    public struct Agent: Sendable {
        public var id: String
        /// The distributor's view (available, ringing, busy, wrap_up, offline).
        public var state: String
        /// Calls the distributor counts as handled (ended).
        public var callsHandled: Int
        /// The phone's view.
        public var phone: DemoAgentPhones.AgentView?
    }

    public var elapsed: Duration
    public var callers: DemoCallers.Figures
    /// Calls the distributor holds in its queue now (no agent free for them).
    public var queued: Int
    public var distributor: Distributor.Counters?
    public var distributorTables: Distributor.TableSizes?
    public var bufferTables: BufferServer.TableSizes?
    public var bufferEnded: Int
    public var agents: [Agent]

    /// Calls the agents' phones answered that reached a caller (an answer that crossed the
    /// caller's CANCEL did not).
    public var answeredByPhones: Int { agents.reduce(0) { $0 + ($1.phone?.figures.connected ?? 0) } }

    /// Whether nothing is in flight anywhere: no caller waiting or talking, no phone ringing or
    /// talking, no call queued at the distributor, none in the buffer server's table, no agent
    /// ringing or busy. (The distributor keeps a call's entry until its transactions end, up to
    /// 64*T1 after the answer: that is not in flight.)
    public var settled: Bool {
        callers.waiting == 0 && callers.talking == 0
            && agents.allSatisfy { $0.phone?.state == .idle && $0.state != "ringing" && $0.state != "busy" }
            && queued == 0 && (bufferTables?.calls ?? 0) == 0
    }

    /// What is still in flight, when not settled.
    public var inFlight: String {
        var p: [String] = []
        if callers.waiting + callers.talking > 0 { p.append("callers waiting \(callers.waiting), talking \(callers.talking)") }
        let phones = agents.filter { ($0.phone?.state ?? .idle) != .idle }.map(\.id)
        if !phones.isEmpty { p.append("phones not idle: " + phones.joined(separator: ", ")) }
        let stuck = agents.filter { $0.state == "ringing" || $0.state == "busy" }.map { "\($0.id) \($0.state)" }
        if !stuck.isEmpty { p.append("agents " + stuck.joined(separator: ", ")) }
        if queued > 0 { p.append("\(queued) calls queued at the distributor") }
        if let t = bufferTables, t.calls > 0 { p.append("buffer server \(t)") }
        return p.joined(separator: "; ")
    }

    /// The problems with the counts, if any: each caller's call ends one way only, and callers,
    /// phones and distributor agree on how many calls were answered.
    public func inconsistencies(final: Bool) -> [String] {
        var p: [String] = []
        let c = callers
        let accounted = c.answered + c.abandoned + c.failed + c.cutOff + c.waiting
        if c.offered != accounted {
            p.append("offered \(c.offered) != answered \(c.answered) + abandoned \(c.abandoned) + failed \(c.failed) + cut off \(c.cutOff) + waiting \(c.waiting)")
        }
        if final {
            if c.answered != answeredByPhones { p.append("callers saw \(c.answered) answered, the agents' phones \(answeredByPhones)") }
            if let d = distributor {
                if d.calls != c.offered { p.append("the distributor saw \(d.calls) calls, callers placed \(c.offered)") }
                if d.answered != c.answered { p.append("the distributor counts \(d.answered) answered, callers \(c.answered)") }
            }
            for a in agents where a.phone.map({ $0.figures.connected != a.callsHandled }) ?? false {
                p.append("agent \(a.id): the distributor counts \(a.callsHandled) calls handled, the phone connected \(a.phone?.figures.connected ?? 0)")
            }
            let handled = agents.reduce(0) { $0 + $1.callsHandled }
            if handled != c.answered { p.append("agents handled \(handled) calls, callers saw \(c.answered) answered") }
            if c.waiting != 0 || c.talking != 0 { p.append("\(c.waiting) calls still waiting and \(c.talking) up after the end") }
        }
        return p
    }

    /// The summary as printed: one line of totals, then one line per agent.
    public func render(title: String) -> String {
        let c = callers
        let secs = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        // Abandoned as the call records count it: every caller who hung up before an answer,
        // those the demo's end cut off included (said apart).
        var s = String(format: "%@ %6.1fs  offered %d  answered %d  abandoned %d  failed %d  waiting %d (queued %d)  talking %d  completed %d",
                       title, secs, c.offered, c.answered, c.abandoned + c.cutOff, c.failed, c.waiting, queued, c.talking, c.completed)
        if c.cutOff > 0 { s += "  (abandoned: \(c.cutOff) cut off at the end)" }
        if !c.failureCodes.isEmpty {
            s += "  (" + c.failureCodes.sorted { $0.key < $1.key }.map { "\($0.value) x \($0.key)" }.joined(separator: ", ") + ")"
        }
        s += "\n"
        for a in agents {
            let phone = a.phone.map {
                "phone \($0.state.rawValue.padding(toLength: 7, withPad: " ", startingAt: 0))  answered \($0.figures.answered)  declined \($0.figures.declined)  let ring \($0.figures.letRing)"
                    + ($0.figures.answeredTooLate > 0 ? "  too late \($0.figures.answeredTooLate)" : "")
            } ?? ""
            s += "    \(a.id.padding(toLength: 10, withPad: " ", startingAt: 0)) \(a.state.padding(toLength: 9, withPad: " ", startingAt: 0)) handled \(String(a.callsHandled).padding(toLength: 4, withPad: " ", startingAt: 0)) \(phone)\n"
        }
        return s
    }
}

/// `parley demo`: the whole topology on loopback. A generated configuration in a temporary
/// directory; the distributor and the buffer server in a `ParleyServer`; the agents' phones and
/// the callers as SIP user agents on their own event loop. Callers call at a rate until the
/// duration passes; then the demo drains (callers still waiting hang up, agents hang up) and stops.
public final class ParleyDemo: @unchecked Sendable {
    public let options: DemoOptions
    public let directory: String
    public let configurationPath: String
    public private(set) var server: ParleyServer?
    public private(set) var phones: DemoAgentPhones?
    public private(set) var callers: DemoCallers?
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private var started: ContinuousClock.Instant?
    private let host = "127.0.0.1"

    public init(options: DemoOptions) throws {
        self.options = options
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("parley-demo-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        directory = dir
        configurationPath = (dir as NSString).appendingPathComponent("parley.yaml")
    }

    /// The configuration `parley serve` would read for this demo.
    public func configurationText() -> String {
        let o = options
        let b = o.basePort
        let skills = o.behaviour.callTypes
        var lines = [
            "# Generated by parley demo (\(o.agents) agents, \(o.rate) calls/s, seed \(o.seed)).",
            "rules: \(o.rulesDirectory)",
            "roles: [distributor, buffer]",
            "listeners: {distributor: \"\(host):\(b)\", buffer: \"\(host):\(b + 1)\", tunnel: \"\(host):\(b + 2)\"}",
            "timers: {no_answer_timeout: \(o.noAnswerTimeout.milliseconds)ms, wrap_up: \(o.wrapUp.milliseconds)ms, max_no_answer: 3, break: 15s, queue_timeout: \(o.queueTimeout.milliseconds)ms, heartbeat: 2s, probe: 10s, stale_after: 6s, t1: 500ms}",
            "log_level: \(o.logLevel)",
            "records: {database: \(o.recordsPath ?? (directory as NSString).appendingPathComponent("records.sqlite"))}",
            "skills: [\(skills.joined(separator: ", "))]",
            "agents:",
        ]
        var random = DemoRandom(seed: o.seed ^ 0x5EED)
        let languages = ["en", "en", "en", "fr", "es"]
        for (i, id) in o.agentIDs.enumerated() {
            // Every agent has one skill in turn; some a second; with fewer agents than skills, all.
            var own = o.agents < skills.count ? skills : [skills[i % skills.count]]
            if own.count < skills.count, random.chance(0.5) {
                own.append(skills[(i + 1 + Int.random(in: 0..<(skills.count - 1), using: &random)) % skills.count])
            }
            let language = languages.randomElement(using: &random) ?? "en"
            lines.append("  - {id: \(id), skills: [\(own.joined(separator: ", "))], contact: \"\(DemoAgentPhones.contact(id: id, host: host, port: b + 3))\", attributes: {language: \(language)}}")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Writes the configuration, starts the distributor and buffer server, the phones and the callers.
    public func start() throws {
        let text = configurationText()
        try text.write(toFile: configurationPath, atomically: true, encoding: .utf8)
        let configuration: ParleyConfiguration
        do {
            configuration = try ParleyConfiguration.parse(text, path: configurationPath)
        } catch {
            throw ServeError("the generated configuration (\(configurationPath)) has problems:\n\(error)")
        }
        let server = ParleyServer(configuration: configuration)
        server.ruleClock = options.rulesClock()
        self.server = server
        try server.start()

        let loop = group.next()
        let b = options.basePort
        let o = options
        let host = self.host
        let distributor = SIPDestination(transport: .udp, address: try SocketAddress(ipAddress: host, port: b))
        let phonesAddress = try SocketAddress(ipAddress: host, port: b + 3)
        let callersAddress = try SocketAddress(ipAddress: host, port: b + 4)
        let (phones, callers) = try loop.flatSubmit { () -> EventLoopFuture<(DemoAgentPhones, DemoCallers)> in
            let pt = SIPTransport(loop: loop, logger: Logger(label: "parley.demo.phones"))
            let phones = DemoAgentPhones(stack: SIPStack(transport: pt, logger: Logger(label: "parley.demo.phones")), host: host,
                                         port: b + 3, agentIDs: o.agentIDs, behaviour: o.behaviour, seed: o.seed)
            let ct = SIPTransport(loop: loop, logger: Logger(label: "parley.demo.callers"))
            let callers = DemoCallers(stack: SIPStack(transport: ct, logger: Logger(label: "parley.demo.callers")), host: host,
                                      port: b + 4, distributor: distributor, behaviour: o.behaviour, seed: o.seed &+ 1)
            return pt.listen(.udp, on: phonesAddress)
                .flatMap { _ in ct.listen(.udp, on: callersAddress) }
                .map { _ in (phones, callers) }
        }.wait()
        self.phones = phones
        self.callers = callers
        started = .now
        let limit = Int((o.rate * Double(o.duration.components.seconds + 1) * 4).rounded(.up)) + 10
        try loop.submit { callers.startCalling(rate: o.rate, limit: limit) }.wait()
    }

    /// Time since the callers started.
    public var elapsed: Duration { started.map { .now - $0 } ?? .zero }

    /// What everyone says now.
    public func snapshot() -> DemoSnapshot {
        var s = DemoSnapshot(elapsed: elapsed, callers: DemoCallers.Figures(), queued: 0, distributor: nil,
                             distributorTables: nil, bufferTables: nil, bufferEnded: 0, agents: [])
        if let callers, let phones {
            if let r = try? callers.stack.loop.submit({ (callers.figures, phones.views) }).wait() {
                let (f, views) = r
                s.callers = f
                let byID = Dictionary(uniqueKeysWithValues: views.map { ($0.id, $0) })
                s.agents = views.map { DemoSnapshot.Agent(id: $0.id, state: "?", callsHandled: 0, phone: byID[$0.id]) }
            }
        }
        if let d = server?.distributor {
            if let r = try? d.stack.loop.submit({
                (d.counters, d.tableSizes, d.agents.all.map { ($0.id, $0.ruleState.rawValue, $0.callsHandled) })
            }).wait() {
                let (counters, tables, agents) = r
                s.distributor = counters
                s.distributorTables = tables
                s.queued = tables.waiting
                var rows = s.agents
                for (id, state, handled) in agents {
                    if let i = rows.firstIndex(where: { $0.id == id }) {
                        rows[i].state = state
                        rows[i].callsHandled = handled
                    } else {
                        rows.append(DemoSnapshot.Agent(id: id, state: state, callsHandled: handled, phone: nil))
                    }
                }
                s.agents = rows
            }
        }
        if let b = server?.buffer {
            if let r = try? b.stack.loop.submit({ (b.tableSizes, b.counters.ended) }).wait() {
                let (tables, ended) = r
                s.bufferTables = tables
                s.bufferEnded = ended
            }
        }
        return s
    }

    /// Stops placing new calls.
    public func stopCalling() {
        guard let callers else { return }
        try? callers.stack.loop.submit { callers.stopCalling() }.wait()
    }

    /// Ends the run: no new calls; callers still waiting hang up (cut off), agents hang up the
    /// calls they are in; then waits (at most `timeout`) until nothing is in flight. Returns the
    /// last snapshot.
    @discardableResult
    public func drain(timeout: Duration = .seconds(8)) -> DemoSnapshot {
        guard let callers, let phones else { return snapshot() }
        try? callers.stack.loop.submit {
            callers.hangUpAll()
            phones.hangUpAll()
        }.wait()
        let deadline = ContinuousClock.now + timeout
        var last = snapshot()
        while !last.settled, ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.1)
            last = snapshot()
        }
        return last
    }

    /// Stops everything and removes the temporary directory (records kept only at `recordsPath`).
    public func stop() {
        if let callers, let phones {
            _ = try? callers.stack.loop.flatSubmit { () -> EventLoopFuture<Void> in
                callers.stopCalling()
                callers.stack.stop()
                phones.stack.stop()
                return callers.stack.transport.close().and(phones.stack.transport.close()).map { _ in () }
            }.wait()
        }
        server?.stop()
        try? group.syncShutdownGracefully()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

extension Duration {
    var milliseconds: Int64 {
        let c = components
        return c.seconds * 1000 + c.attoseconds / 1_000_000_000_000_000
    }
}
