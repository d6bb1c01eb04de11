import Dispatch
import Foundation

/// One published rule set: the snapshot every engine builds its Lua state from.
public struct RuleGeneration: Sendable {
    /// Counts publications from 1.
    public var number: Int
    public var snapshot: RuleSetSnapshot
    /// When it was put in force (wall-clock ms).
    public var loadedMs: Int64 = 0
    public var version: String { snapshot.version }
}

/// The outcome of a reload.
public enum ReloadOutcome: Sendable, Equatable {
    /// A new generation is in force.
    case published(generation: Int, version: String)
    /// The files have the version already in force; nothing changed.
    case unchanged(version: String)
    /// The new files did not load; the generation in force (if any) stays. Every problem found.
    case failed([RuleProblem])

    public var problems: [RuleProblem] {
        if case .failed(let p) = self { return p }
        return []
    }
}

/// Counters of hook calls and failures.
public struct RuleMetrics: Sendable, Equatable {
    public var calls: [RuleHook: Int] = [:]
    public var failures: [RuleHook: Int] = [:]
    public var failuresByKind: [RuleFailureKind: Int] = [:]
    public var reloads = 0
    public var failedReloads = 0

    public var totalFailures: Int { failures.values.reduce(0, +) }
}

/// Options shared by the store and its engines.
public struct RuleOptions: Sendable {
    /// Limits per hook call (and for running a rule set's chunk when it loads).
    public var limits: RuleLimits
    public var clock: RuleClock
    public var log: RuleLogSink

    public init(limits: RuleLimits = .hooks, clock: RuleClock = .system, log: RuleLogSink = .logger()) {
        self.limits = limits
        self.clock = clock
        self.log = log
    }
}

/// The rule store: the generation in force, reloads, and what engines share (agents, metrics).
///
/// A reload reads the directory into a snapshot, builds a fresh Lua state from it, compiles every
/// file, runs init.lua under the limits and checks the hooks' types; only then is the snapshot
/// published as a new generation. Engines (one per thread) pick it up at their next call. A failed
/// reload leaves the generation in force and reports every problem with file:line.
public final class RuleStore: @unchecked Sendable {
    public let directory: String
    public let options: RuleOptions
    /// The agents kept resident in every Lua state.
    public let agents: AgentDirectory

    private let lock = NSLock()
    private let reloadLock = NSLock()
    private var currentGeneration: RuleGeneration?
    private var lastProblemsValue: [RuleProblem] = []
    private var metricsValue = RuleMetrics()

    public init(directory: String, options: RuleOptions = RuleOptions(), agents: AgentDirectory = AgentDirectory()) {
        self.directory = directory
        self.options = options
        self.agents = agents
    }

    /// The generation in force, if any rules ever loaded.
    public var current: RuleGeneration? { lock.withLock { currentGeneration } }

    /// The version in force, or nil.
    public var version: String? { current?.version }

    /// The problems of the last reload that failed (empty after a success).
    public var lastProblems: [RuleProblem] { lock.withLock { lastProblemsValue } }

    public var metrics: RuleMetrics { lock.withLock { metricsValue } }

    /// Reads the directory and publishes it if it loads. Safe to call from any thread.
    @discardableResult
    public func reload() -> ReloadOutcome {
        reloadLock.withLock {
            let (snapshot, readProblems) = RuleSetSnapshot.read(directory: directory)
            guard let snapshot else { return finish(.failed(readProblems)) }
            if readProblems.isEmpty, let cur = current, cur.version == snapshot.version {
                return .unchanged(version: snapshot.version)
            }
            var problems = readProblems
            problems += RuleStore.validate(snapshot, options: options)
            if !problems.isEmpty { return finish(.failed(problems)) }
            return finish(publish(snapshot))
        }
    }

    /// Publishes a snapshot that has been validated.
    private func publish(_ snapshot: RuleSetSnapshot) -> ReloadOutcome {
        lock.withLock {
            let n = (currentGeneration?.number ?? 0) + 1
            currentGeneration = RuleGeneration(number: n, snapshot: snapshot, loadedMs: Int64(Date().timeIntervalSince1970 * 1000))
            lastProblemsValue = []
            metricsValue.reloads += 1
            return .published(generation: n, version: snapshot.version)
        }
    }

    private func finish(_ outcome: ReloadOutcome) -> ReloadOutcome {
        switch outcome {
        case .published(let n, let v):
            options.log.write(RuleLogRecord(level: .info, location: "",
                                            message: "rules \(directory) version \(v.prefix(12)) in force (generation \(n))"))
        case .failed(let problems):
            lock.withLock {
                lastProblemsValue = problems
                metricsValue.failedReloads += 1
            }
            let keeping = current.map { "; keeping version \($0.version.prefix(12))" } ?? "; no rules in force, hooks use their defaults"
            for p in problems {
                options.log.write(RuleLogRecord(level: .error, location: "", message: "rules reload failed: \(p)"))
            }
            options.log.write(RuleLogRecord(level: .error, location: "",
                                            message: "rules reload failed with \(problems.count) problem(s)\(keeping)"))
        case .unchanged:
            break
        }
        lock.withLock { reloadObserver }?(outcome)
        return outcome
    }

    private var reloadObserver: (@Sendable (ReloadOutcome) -> Void)?

    /// Told of every reload's outcome (a watcher's, SIGHUP's, the admin API's), on the thread
    /// that reloaded.
    public func observeReloads(_ body: @escaping @Sendable (ReloadOutcome) -> Void) {
        lock.withLock { reloadObserver = body }
    }

    /// Builds a Lua state from a snapshot exactly as a reload would, and reports every problem.
    public static func validate(_ snapshot: RuleSetSnapshot, options: RuleOptions) -> [RuleProblem] {
        do {
            let rt = try LuaRuntime(limits: options.limits, sink: options.log, clock: options.clock, testMode: false)
            return rt.load(snapshot)
        } catch {
            return [RuleProblem(file: nil, line: nil, message: error.message)]
        }
    }

    /// `parley rules check`: every problem of the rule set in `directory`; empty when it would load.
    public static func check(directory: String, options: RuleOptions = RuleOptions(log: .discard))
        -> (version: String?, problems: [RuleProblem])
    {
        let (snapshot, problems) = RuleSetSnapshot.read(directory: directory)
        guard let snapshot else { return (nil, problems) }
        let all = problems + validate(snapshot, options: options)
        return (all.isEmpty ? snapshot.version : nil, all)
    }

    func count(_ hook: RuleHook, failure: RuleFailure?) {
        lock.withLock {
            metricsValue.calls[hook, default: 0] += 1
            if let failure {
                metricsValue.failures[hook, default: 0] += 1
                metricsValue.failuresByKind[failure.kind, default: 0] += 1
            }
        }
    }

    // MARK: Reload triggers

    /// Polls the directory every `interval` seconds and reloads when a file's size, modification
    /// time or identity changes, or a file appears or goes. Returns a handle that stops it.
    public func watch(interval: Double = 1.0) -> RuleWatcher {
        let w = RuleWatcher(store: self, interval: interval)
        w.start()
        return w
    }

    /// Reloads on SIGHUP. The server calls this once; the handle cancels it.
    public func reloadOnSIGHUP(queue: DispatchQueue = DispatchQueue(label: "parley.rules.sighup")) -> DispatchSourceSignal {
        signal(SIGHUP, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: queue)
        source.setEventHandler { [weak self] in _ = self?.reload() }
        source.resume()
        return source
    }
}

/// Watches a rule directory by polling (portable, and immune to editors that replace files
/// rather than write them in place, which confuses inotify watches on the old inode).
public final class RuleWatcher: @unchecked Sendable {
    private let store: RuleStore
    private let interval: Double
    private let queue = DispatchQueue(label: "parley.rules.watch")
    private var timer: DispatchSourceTimer?
    private var fingerprint: String

    init(store: RuleStore, interval: Double) {
        self.store = store
        self.interval = interval
        fingerprint = RuleSetSnapshot.fingerprint(directory: store.directory)
    }

    func start() {
        let t = DispatchSource.makeTimerSource(queue: queue)
        t.schedule(deadline: .now() + interval, repeating: interval)
        t.setEventHandler { [weak self] in self?.check() }
        timer = t
        t.resume()
    }

    /// Checks the directory once (the timer calls this; tests may too).
    public func poll() {
        queue.sync { check() }
    }

    private func check() {
        let now = RuleSetSnapshot.fingerprint(directory: store.directory)
        guard now != fingerprint else { return }
        fingerprint = now
        store.reload()
    }

    public func stop() {
        timer?.cancel()
        timer = nil
    }

    deinit { timer?.cancel() }
}
