import CHeapStats
import Dispatch
import Foundation
import Logging
import NIOCore
import NIOPosix
import ParleyAdmin
import ParleyCallCenter
import ParleyRecords
import ParleyRegistration
import ParleyRules
import ParleyDialog
import ParleySIP
import ParleyTransaction
import ParleyTransport

/// The roles of one `parley serve` process, wired together: each role on its own event loop,
/// with its own transport and stack; the distributor with the rule store; the buffer server
/// sending its call events to the distributor's address (the same way whether the distributor
/// is in this process or another).
public final class ParleyServer: @unchecked Sendable {
    public let configuration: ParleyConfiguration
    public let roles: [Role]
    public let group: MultiThreadedEventLoopGroup
    public private(set) var distributor: Distributor?
    public private(set) var buffer: BufferServer?
    public private(set) var store: RuleStore?
    /// Call records and the queue log (the distributor's), when the configuration keeps them.
    public private(set) var records: RecordStore?
    /// The registration role (agents register through Parley; the fan-out upstream).
    public private(set) var registration: RegistrationRole?
    public private(set) var registrationStore: RegistrationStore?
    private var tunnelServer: TunnelServer?
    private var tunnelClient: TunnelClient?
    private var watcher: RuleWatcher?
    private var sighup: DispatchSourceSignal?
    private var heapTimer: DispatchSourceTimer?
    private var retentionTimer: DispatchSourceTimer?
    /// How often records past `records.retention` are deleted (the first time at start).
    public var retentionInterval: DispatchTimeInterval = .seconds(3_600)
    /// How often the heap is looked at, and how much free memory malloc may keep (at least
    /// `heapSlackBytes`, or a quarter of what is in use) before it is given back to the system.
    public var heapCheckInterval: DispatchTimeInterval = .seconds(5)
    public var heapSlackBytes = 16 << 20
    /// How many times free memory was given back, and how much (for the stats line).
    private let heapReleases = HeapReleases()
    private let logger = Logger(label: "parley.serve")

    /// The clock the rules read (`parley.now_ms()`): the wall clock, except in `parley demo`,
    /// which runs the rules in business hours whatever the time of day. Set before `start`.
    public var ruleClock: RuleClock = .system

    public init(configuration: ParleyConfiguration, roles: [Role]? = nil) {
        self.configuration = configuration
        self.roles = roles ?? configuration.roles
        group = MultiThreadedEventLoopGroup(numberOfThreads: min(2, max(1, self.roles.count)))
    }

    /// The secret the distributor and the buffer server sign with: the configured one; with both
    /// roles in this process and none configured, one made now that no other process knows (so
    /// the buffer server takes handoffs from this distributor alone). A role that needs the
    /// other process's signatures and has no secret does not start.
    static func handoffSecret(_ configuration: ParleyConfiguration, roles: [Role]) throws -> [UInt8]? {
        if let s = configuration.security.handoffSecret { return s }
        let distributor = roles.contains(.distributor), buffer = roles.contains(.buffer)
        if distributor && buffer { return (0..<32).map { _ in UInt8.random(in: 0...255) } }
        if distributor || buffer {
            throw ServeError("security.handoff_secret: missing; the \(distributor ? "distributor" : "buffer server") runs without the \(distributor ? "buffer server" : "distributor") in this process, so the two must share a secret of at least \(HandoffAuthenticator.minimumSecretLength) bytes (security.handoff_secret in \(configuration.path), or the environment variable \(SecuritySettings.secretVariable))")
        }
        return nil
    }

    /// Who may open the tunnel: the configured peers, else the distributor listener's address
    /// (the loopback when it listens on every address).
    static func tunnelPeers(_ configuration: ParleyConfiguration) -> [IPNetwork] {
        if let peers = configuration.security.tunnelPeers { return peers }
        if let a = try? parseSocketAddress(configuration.distributorListen), let ip = a.ipAddress,
           ip != "0.0.0.0", ip != "::", let n = IPNetwork(address: a) {
            return [n]
        }
        return [IPNetwork("127.0.0.0/8"), IPNetwork("::1")].compactMap { $0 }
    }

    /// Every listener's connection limits (cut to the file limit, raised first) and the one
    /// partial-message budget of the process.
    private lazy var connectionLimits: ConnectionLimits = {
        let listeners = roles.count + (configuration.tunnelListen == nil ? 0 : 1)
        var l = FileLimit.fit(configuration.security.connections, descriptors: FileLimit.raise(), listeners: listeners)
        l.trusted = trusted
        return l
    }()

    /// Exempt from the per-source limits: the configured peers and this deployment's own roles
    /// (the distributor's, buffer server's and registration role's addresses: the other role).
    private lazy var trusted: [IPNetwork] = {
        let c = configuration
        let own = [c.distributorListen, c.bufferListen, c.registration?.listen].compactMap { $0 }
            .compactMap { try? parseSocketAddress($0) }
            .filter { $0.ipAddress != "0.0.0.0" && $0.ipAddress != "::" }
            .compactMap { IPNetwork(address: $0) }
        return c.security.trusted + own
    }()

    /// The TLS contexts every transport shares (nil: no `tls:` section).
    private var tls: SIPTLS?

    /// A TLS listener when the role has one configured.
    static func listenTLS(_ transport: SIPTransport, _ address: SocketAddress?) -> EventLoopFuture<Void> {
        guard let address else { return transport.loop.makeSucceededFuture(()) }
        return transport.listen(.tls, on: address).map { _ in }
    }

    /// The source guard every SIP transport of this process starts with.
    private var sourceSettings: SourceGuard.Settings {
        var s = configuration.security.sources
        s.trusted = trusted
        return s
    }
    private lazy var partialBudget = ByteBudget(limit: configuration.security.connections.partialBudget)

    /// Binds every listener of the roles this process runs and starts them.
    public func start() throws {
        let c = configuration
        let timers = SIPTimers(t1: c.t1)
        let secret = try Self.handoffSecret(c, roles: roles)
        let limits = connectionLimits
        let budget = partialBudget
        let sources = sourceSettings
        let tls = try c.tls.map { try $0.load() }
        self.tls = tls
        let tlsListen = try (c.tls?.listeners ?? [:]).mapValues { try parseSocketAddress($0, defaultPort: 5061) }
        logger.info("connections: \(limits); sources: \(sources)")
        warmHostNames()
        if roles.contains(.buffer) {
            let loop = group.next()
            let bufferAddress = try parseSocketAddress(c.bufferListen)
            let distributorAddress = try parseSocketAddress(c.distributorListen)
            var bc = BufferServerConfiguration()
            bc.agentContacts = Dictionary(uniqueKeysWithValues: c.agents.map { ($0.id, $0.contact) })
            bc.treatmentContacts = Dictionary(c.treatments.map { ($0.name, $0.contact) }, uniquingKeysWith: { a, _ in a })
            bc.eventTarget = SIPDestination(transport: .udp, address: distributorAddress)
            bc.eventURI = .sip(c.distributorURI)
            bc.heartbeatInterval = c.heartbeat
            bc.probeInterval = c.probe
            bc.ackTimeout = timers.timerH
            bc.handoffSecret = secret
            bc.handoffWindow = c.security.handoffWindow
            bc.unsignedHandoffsFrom = c.security.unsignedHandoffsFrom
            if !c.security.unsignedHandoffsFrom.isEmpty {
                logger.warning("security.unsigned_handoffs_from: the buffer server takes unsigned handoffs from \(c.security.unsignedHandoffsFrom.map(\.description).joined(separator: ", ")) (anyone who can send from there can ring any agent)")
            }
            let config = bc
            let tunnelListen = try c.tunnelListen.map { try parseSocketAddress($0) }
            buffer = try loop.flatSubmit { () -> EventLoopFuture<BufferServer> in
                let transport = SIPTransport(loop: loop, logger: Logger(label: "parley.buffer.transport"))
                transport.connectionLimits = limits
                transport.partialBudget = budget
                transport.sourceGuard = SourceGuard(settings: sources)
                transport.tls = tls
                let stack = SIPStack(transport: transport, timers: timers, logger: Logger(label: "parley.buffer.stack"))
                let server = BufferServer(stack: stack, configuration: config)
                return transport.listen(.udp, on: bufferAddress)
                    .flatMap { _ in transport.listen(.tcp, on: bufferAddress) }
                    .flatMap { _ in Self.listenTLS(transport, tlsListen["buffer"]) }
                    .map { _ in server.start(); return server }
            }.wait()
            if let tunnelListen, let buffer {
                let wss = c.tls?.tunnel == true ? tls?.server : nil
                if c.tls?.tunnel == true, wss == nil { throw ServeError("tls.tunnel: secure WebSocket needs tls.certificate and tls.key") }
                let ts = TunnelServer(buffer: buffer, peers: Self.tunnelPeers(c), limits: limits, tls: wss)
                try ts.listen(on: tunnelListen).wait()
                tunnelServer = ts
            }
        }
        if roles.contains(.distributor) {
            let store = RuleStore(directory: c.rulesDirectory, options: RuleOptions(clock: ruleClock))
            switch store.reload() {
            case .failed(let problems):
                throw ServeError("the rules in \(c.rulesDirectory) do not load:\n" + problems.map(\.description).joined(separator: "\n"))
            default: break
            }
            self.store = store
            watcher = store.watch(interval: 1.0)
            sighup = store.reloadOnSIGHUP()
            let loop = group.next()
            let address = try parseSocketAddress(c.distributorListen)
            let bufferAddress = try parseSocketAddress(c.bufferListen)
            var dc = DistributorConfiguration(bufferURI: c.bufferURI, bufferDestination: SIPDestination(transport: .udp, address: bufferAddress))
            dc.skills = Set(c.skills)
            dc.noAnswerTimeout = c.noAnswerTimeout
            dc.queues = c.queues
            dc.defaultQueue = c.defaultQueue
            dc.treatments = Set(c.treatments.map(\.name))
            dc.reconcileInterval = c.heartbeat
            dc.heartbeatTimeout = c.heartbeat * 4
            dc.handoffSecret = secret
            dc.handoffWindow = c.security.handoffWindow
            let config = dc
            let clock = RuleClock.system
            let agents = c.agentMachines(now: clock.nowMs())
            let tunnelAddress = try c.tunnelListen.map { try parseSocketAddress($0) }
            if let path = c.recordsDatabase {
                let log = Logger(label: "parley.records")
                do {
                    records = try RecordStore(path: path) { error in log.error("call record not written: \(error)") }
                } catch {
                    throw ServeError("records.database: \(error)")
                }
            }
            let records = self.records
            if let records, let keep = c.recordsRetention { startRetention(records, keep: keep, clock: clock) }
            distributor = try loop.flatSubmit { () -> EventLoopFuture<Distributor> in
                let transport = SIPTransport(loop: loop, logger: Logger(label: "parley.distributor.transport"))
                transport.connectionLimits = limits
                transport.partialBudget = budget
                transport.sourceGuard = SourceGuard(settings: sources)
                transport.tls = tls
                let stack = SIPStack(transport: transport, timers: timers, logger: Logger(label: "parley.distributor.stack"))
                let d = Distributor(stack: stack, configuration: config, store: store, agents: agents, clock: clock.nowMs)
                d.links[.message] = d.makeMessageLink()
                d.records = records
                return transport.listen(.udp, on: address)
                    .flatMap { _ in transport.listen(.tcp, on: address) }
                    .flatMap { _ in Self.listenTLS(transport, tlsListen["distributor"]) }
                    .map { _ in d.start(); return d }
            }.wait()
            if let records, let distributor {
                // Agents back where an operator last set them (break, logged off, in).
                do {
                    let saved = try records.savedPresences()
                    try loop.submit { distributor.restore(saved) }.wait()
                } catch {
                    logger.warning("agent states from \(records.path) not restored: \(error)")
                }
            }
            if let tunnelAddress, let distributor {
                let client = TunnelClient(distributor: distributor, server: tunnelAddress, uri: c.bufferURI,
                                          tls: c.tls?.tunnel == true ? tls?.client : nil)
                tunnelClient = client
                try loop.submit { distributor.links[.tunnel] = client }.wait()
                client.connect()
            }
        }
        if let buffer, let distributor, c.handoffInProcess {
            let link = InProcessHandoff(distributor: distributor, buffer: buffer)
            try distributor.stack.loop.submit { distributor.inProcessBuffer = link }.wait()
        }
        if roles.contains(.registration) {
            try startRegistration(timers: timers)
        }
        startHeapRelease()
        logger.info("parley serve: \(roles.map(\.rawValue).joined(separator: " and ")) running")
    }

    private func startRegistration(timers: SIPTimers) throws {
        let c = configuration
        guard let settings = c.registration, let rc = try c.registrationRoleConfiguration() else {
            throw ServeError("the registration role needs a registration section in \(c.path)")
        }
        let rules: RuleStore
        if let store { rules = store } else {
            rules = RuleStore(directory: c.rulesDirectory, options: RuleOptions(clock: ruleClock))
            if case .failed(let problems) = rules.reload() {
                throw ServeError("the rules in \(c.rulesDirectory) do not load:\n" + problems.map(\.description).joined(separator: "\n"))
            }
            watcher = rules.watch(interval: 1.0)
            sighup = rules.reloadOnSIGHUP()
            store = rules
        }
        if let path = settings.database {
            let log = Logger(label: "parley.registration")
            do {
                registrationStore = try RegistrationStore(path: path) { error in log.error("registration not written: \(error)") }
            } catch {
                throw ServeError("registration.database: \(error)")
            }
        }
        let address = try parseSocketAddress(settings.listen)
        let persisted = registrationStore
        let limits = connectionLimits
        let budget = partialBudget
        let sources = sourceSettings
        let tls = self.tls
        let tlsListen = try configuration.tls?.listeners["registration"].map { try parseSocketAddress($0, defaultPort: 5061) }
        let loop = group.next()
        registration = try loop.flatSubmit { () -> EventLoopFuture<RegistrationRole> in
            let transport = SIPTransport(loop: loop, logger: Logger(label: "parley.registration.transport"))
            transport.connectionLimits = limits
            transport.partialBudget = budget
            transport.sourceGuard = SourceGuard(settings: sources)
            transport.tls = tls
            let stack = SIPStack(transport: transport, timers: timers, logger: Logger(label: "parley.registration.stack"))
            let role = RegistrationRole(stack: stack, configuration: rc, rules: rules, store: persisted)
            role.onContactsChanged = { [weak self] contacts in self?.registeredContactsChanged(contacts) }
            return transport.listen(.udp, on: address)
                .flatMap { _ in transport.listen(.tcp, on: address) }
                .flatMap { _ in Self.listenTLS(transport, tlsListen) }
                .map { _ in role.start(); return role }
        }.wait()
    }

    /// Agents' registered contacts, from the registration role: the buffer server dials them and
    /// the rules see them as `agent.contact` (in this process; a distributor or buffer server in
    /// another process keeps the configured contacts).
    private func registeredContactsChanged(_ contacts: [String: String]) {
        let configured = Dictionary(configuration.agents.map { ($0.id, $0.contact.description) }, uniquingKeysWith: { a, _ in a })
        if let b = buffer { b.stack.loop.execute { b.useRegisteredContacts(contacts) } }
        if let d = distributor { d.stack.loop.execute { d.useRegisteredContacts(contacts, configured: configured) } }
    }

    /// glibc's malloc keeps what calls and transactions free for reuse: after a burst of call
    /// set-ups (thousands of transactions and messages, freed within 32 s) that is several times
    /// what the calls still up hold, and it stays resident. Every few seconds, when the free part
    /// is over the slack, it goes back to the system (malloc_trim, on a thread of its own: each
    /// arena is locked only while it is trimmed; the debug log says how long it took).
    private func startHeapRelease() {
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue.global(qos: .utility))
        let slack = heapSlackBytes, releases = heapReleases, log = logger
        timer.schedule(deadline: .now() + heapCheckInterval, repeating: heapCheckInterval)
        timer.setEventHandler {
            let before = parley_heap_stats_now()
            guard before.free > max(slack, before.in_use / 4) else { return }
            let rss0 = Self.residentKiB(), t0 = DispatchTime.now().uptimeNanoseconds
            _ = parley_heap_release()
            let rss = Self.residentKiB(), took = (DispatchTime.now().uptimeNanoseconds - t0) / 1_000
            releases.note(releasedKiB: max(0, rss0 - rss))
            log.debug("heap: \(before.free / 1024) KiB free of \((before.free + before.in_use) / 1024) KiB given back in \(took) us; RSS \(rss0) -> \(rss) KiB")
        }
        timer.resume()
        heapTimer = timer
    }

    /// Looks up the host names of configured agents and treatments before any call, so that no
    /// call waits on an event loop for DNS (`HostResolver`); one that does not resolve is logged
    /// (its calls fail until it does: it is looked up again in the background).
    private func warmHostNames() {
        var names: [(what: String, host: String)] = []
        for a in configuration.agents { if let u = a.contact.sipURI { names.append(("agent \(a.id)", u.targetHost)) } }
        for t in configuration.treatments { if let u = t.contact.sipURI { names.append(("treatment \(t.name)", u.targetHost)) } }
        for (what, host) in names where !HostResolver.shared.warm(host) {
            logger.warning("\(what): the host \(host) of its contact does not resolve")
        }
    }

    /// Deletes the records of calls that arrived more than `keep` ago: once at start, then every
    /// `retentionInterval`, on a thread of its own (the store's writer does the deleting, in
    /// batches between its event batches).
    private func startRetention(_ records: RecordStore, keep: Duration, clock: RuleClock) {
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue.global(qos: .utility))
        let log = Logger(label: "parley.records")
        let keepMs = keep.ms
        timer.schedule(deadline: .now(), repeating: retentionInterval)
        timer.setEventHandler {
            let cutoff = clock.nowMs() - keepMs
            do {
                let n = try records.prune(arrivedBefore: cutoff)
                if n > 0 { log.info("deleted the records of \(n) calls older than records.retention (\(keep))") }
            } catch {
                log.error("records past records.retention not deleted: \(error)")
            }
        }
        timer.resume()
        retentionTimer = timer
    }

    /// Counters and table sizes of every role, one `key=value` per line.
    public func statistics() -> String {
        var lines: [String] = []
        if let d = distributor {
            if let s = try? d.stack.loop.submit({ () -> String in
                let c = d.counters
                let states = d.agents.stateCounts
                return "distributor calls=\(c.calls) answered=\(c.answered) failed=\(c.failed) cancelled=\(c.cancelled) no_answers=\(c.noAnswers) queued=\(c.queued) queue_timeouts=\(c.queueTimeouts) overflows=\(c.overflows) rejected=\(c.rejected) bad_extensions=\(c.badExtensions) treatments=\(c.treatments) moves=\(c.moves) transfers_asked=\(c.transfersAsked) transfers=\(c.transfers) transfers_failed=\(c.transfersFailed) rule_failures=\(c.ruleFailures) events=\(c.eventsReceived) reconciled=\(c.reconciled) unauthenticated=\(c.unauthenticated) handoffs_uri=\(c.handoffs["uri"] ?? 0) handoffs_message=\(c.handoffs["message"] ?? 0) handoffs_tunnel=\(c.handoffs["tunnel"] ?? 0) handoffs_in_process=\(c.handoffsInProcess)\n"
                    + "distributor_table \(d.tableSizes) transactions=\(d.stack.transactionCount) lua_kib=\((d.engine.luaMemory ?? 0) / 1024)\n"
                    + "agents " + AgentState.allCases.map { "\($0.rawValue)=\(states[$0] ?? 0)" }.joined(separator: " ") + "\n"
                    + d.agents.all.map { "agent \($0.id) state=\($0.ruleState.rawValue) calls_handled=\($0.callsHandled) no_answers=\($0.consecutiveNoAnswers)" }.joined(separator: "\n")
            }).wait() { lines.append(s) }
            if let store {
                let m = store.metrics
                lines.append("rules version=\(store.version?.prefix(12) ?? "none") failures=\(m.totalFailures) reloads=\(m.reloads) failed_reloads=\(m.failedReloads)")
            }
        }
        if let b = buffer {
            if let s = try? b.stack.loop.submit({ () -> String in
                let c = b.counters
                return "buffer handoffs_uri=\(c.handoffs["uri"] ?? 0) handoffs_message=\(c.handoffs["message"] ?? 0) handoffs_tunnel=\(c.handoffs["tunnel"] ?? 0) answered=\(c.answered) failed=\(c.failed) cancelled=\(c.cancelled) ended=\(c.ended) relayed_in_dialog=\(c.relayedInDialog) refused=\(c.refused) probes_failed=\(c.probesFailed) events_sent=\(c.eventsSent) treatments=\(c.treatments) moves=\(c.moves) moves_failed=\(c.movesFailed) transfers_asked=\(c.transfersAsked) transfers_failed=\(c.transfersFailed) unauthenticated=\(c.unauthenticatedTotal)\n"
                    + "buffer_table \(b.tableSizes) transactions=\(b.stack.transactionCount)"
            }).wait() { lines.append(s) }
        }
        if let g = registration {
            if let s = try? g.stack.loop.submit({ () -> String in
                let c = g.counters
                return "registration registers=\(c.agentRegisters) challenged=\(c.challenged) refused=\(c.refused) invalid=\(c.invalid) forwarded=\(c.forwarded) accepted=\(c.accepted) upstream_failures=\(c.upstreamFailures) address_registers=\(c.addressRegisters) address_failures=\(c.addressFailures) agents=\(g.state.agents.count)"
            }).wait() { lines.append(s) }
        }
        for (name, transport) in [("distributor", distributor?.stack.transport), ("buffer", buffer?.stack.transport),
                                  ("registration", registration?.stack.transport)] {
            guard let transport, let c = try? transport.loop.submit({ transport.connectionCounters }).wait() else { continue }
            let g = (try? transport.loop.submit({ transport.sourceGuard?.counters }).wait()) ?? nil
            lines.append("connections \(name) refused_total=\(c.refusedTotal) refused_per_source=\(c.refusedPerSource) message_timeouts=\(c.messageTimeouts) over_budget=\(c.overBudget) requests_dropped=\(g?.dropped ?? 0) sources_blocked=\(g?.blocked ?? 0) responses_withheld=\(g?.withheld ?? 0)")
        }
        lines.append("partial_bytes \(partialBudget.inUse)")
        lines.append(memoryLine())
        return lines.joined(separator: "\n") + "\n"
    }

    /// The process's resident memory and what the C heap holds of it (glibc's mallinfo2 over
    /// every arena): heap_in_use is what is allocated now, heap_free what malloc keeps for
    /// reuse without returning it to the system. RSS well above the two together is Lua's and
    /// SQLite's own pages and the threads' stacks.
    func memoryLine() -> String {
        let h = parley_heap_stats_now()
        let r = heapReleases.snapshot
        return "memory rss_kib=\(Self.residentKiB()) heap_in_use_kib=\(h.in_use / 1024) heap_free_kib=\(h.free / 1024) heap_releases=\(r.count) heap_released_kib=\(r.kib)"
    }

    static func residentKiB() -> Int { Int(ProcessFigures.residentBytes() / 1024) }

    /// Stops every role and closes every listener.
    public func stop() {
        watcher?.stop()
        sighup?.cancel()
        heapTimer?.cancel()
        retentionTimer?.cancel()
        tunnelClient?.close()
        try? tunnelServer?.close().wait()
        if let d = distributor {
            _ = try? d.stack.loop.flatSubmit { d.stop(); d.stack.stop(); return d.stack.transport.close() }.wait()
        }
        if let b = buffer {
            _ = try? b.stack.loop.flatSubmit { b.stop(); b.stack.stop(); return b.stack.transport.close() }.wait()
        }
        if let g = registration {
            _ = try? g.stack.loop.flatSubmit { g.stop(); g.stack.stop(); return g.stack.transport.close() }.wait()
        }
        try? group.syncShutdownGracefully()
        records?.flush()
    }
}

public struct ServeError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// How often free heap memory was given back to the system, and how much resident memory that
/// released in all.
final class HeapReleases: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    private var kib = 0
    func note(releasedKiB: Int) { lock.withLock { count += 1; kib += releasedKiB } }
    var snapshot: (count: Int, kib: Int) { lock.withLock { (count, kib) } }
}
