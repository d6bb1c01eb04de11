/// The rules of one thread (or event loop): a Lua state for the newest generation, built when a
/// call first needs it. Not thread-safe by design: make one per thread, confined to it; there are
/// no locks or hops on the hook path beyond two uncontended reads of the store.
///
/// Every hook method applies the failure rule: a hook that raises, goes over a limit, returns the
/// wrong type, an unknown agent or an unknown encoding is logged with file:line, counted, and
/// replaced by that hook's default. Nothing here throws.
public final class RuleEngine {
    public let store: RuleStore
    private var runtime: LuaRuntime?
    private var runtimeGeneration = 0
    private var failedGeneration = 0

    public init(store: RuleStore) {
        self.store = store
    }

    /// The rules for a new call: the newest generation, pinned. Keep the result with the call so
    /// that it finishes on the rules it started with, even if a reload happens meanwhile.
    public func pin() -> PinnedRules {
        refresh()
        return PinnedRules(store: store, runtime: runtime, generation: runtimeGeneration)
    }

    /// The version this engine's newest state runs ("none" before any rules loaded).
    public var version: String {
        refresh()
        return runtime?.version ?? "none"
    }

    public func classify(_ invite: InviteView) -> Classification { pin().classify(invite) }

    /// Collects the Lua state's garbage now (a full cycle), returning the bytes it holds after.
    /// Lua collects as it allocates: once calls stop arriving, what they left (call tables,
    /// INVITE views, agents' old values) would stay until the next burst. The distributor calls
    /// this when it reconciles, every few seconds.
    @discardableResult
    public func collectGarbage() -> Int? { runtime?.collectGarbage() }

    /// The bytes the Lua state holds (live data and garbage not yet collected).
    public var luaMemory: Int? { runtime?.memoryUsed }

    public func selectAgent(for call: CallInfo, candidates: [String]) -> AgentSelection {
        pin().selectAgent(for: call, candidates: candidates)
    }

    public func selectAgent(for call: CallInfo, candidates: AgentCandidates) -> AgentSelection {
        pin().selectAgent(for: call, candidates: candidates)
    }

    public func orderRegistrations(for address: AddressInfo, agents: [String]) -> RegistrationOrder {
        pin().orderRegistrations(for: address, agents: agents)
    }

    public func handoffEncoding(for call: CallInfo, agent: String) -> HandoffDecision {
        pin().handoffEncoding(for: call, agent: agent)
    }

    private func refresh() {
        guard let g = store.current, g.number != runtimeGeneration, g.number != failedGeneration else { return }
        let options = store.options
        do {
            let rt = try LuaRuntime(limits: options.limits, sink: options.log, clock: options.clock, testMode: false)
            let problems = rt.load(g.snapshot)
            if problems.isEmpty {
                runtime = rt
                runtimeGeneration = g.number
                return
            }
            failedGeneration = g.number
            options.log.write(RuleLogRecord(level: .error, location: "",
                                            message: "rules generation \(g.number) did not load on this thread: "
                                                + problems.map(\.description).joined(separator: "; ")))
        } catch {
            failedGeneration = g.number
            options.log.write(RuleLogRecord(level: .error, location: "", message: "cannot build a rule state: \(error.message)"))
        }
    }
}

/// The rules a call runs on: one generation, pinned. Use it on the thread of the engine that made it.
public final class PinnedRules {
    let store: RuleStore
    let runtime: LuaRuntime?
    /// The generation number (0 when no rules were in force: every hook uses its default).
    public let generation: Int
    /// The version of the rules; recorded with every call ("none" when defaults only).
    public let version: String

    init(store: RuleStore, runtime: LuaRuntime?, generation: Int) {
        self.store = store
        self.runtime = runtime
        self.generation = generation
        version = runtime?.version ?? "none"
    }

    static func ns(since t0: ContinuousClock.Instant) -> Int64 {
        let d = ContinuousClock.now - t0
        return d.components.seconds * 1_000_000_000 + d.components.attoseconds / 1_000_000_000
    }

    private func fail(_ hook: RuleHook, _ kind: RuleFailureKind, _ message: String) -> RuleFailure {
        let f = RuleFailure(hook: hook, kind: kind, message: message, version: version)
        store.options.log.write(RuleLogRecord(level: .error, location: RuleProblem(luaMessage: message).positionText,
                                              message: f.description))
        return f
    }

    // MARK: classify

    /// `classify(invite)`: the call type and priority. Default: "default", priority 0.
    public func classify(_ invite: InviteView) -> Classification {
        var result = Classification(type: "default", priority: 0, version: version, failure: nil)
        if let runtime {
            let t0 = ContinuousClock.now
            let outcome = runtime.classify(invite)
            result.tookNs = Self.ns(since: t0)
            result.notes = runtime.traceNotes()
            switch outcome {
            case .success(let r?):
                result.type = r.type
                result.priority = r.priority ?? 0
            case .success(nil):
                break
            case .failure(let e):
                result.failure = fail(.classify, e.kind, e.message)
            }
        }
        store.count(.classify, failure: result.failure)
        return result
    }

    // MARK: select_agent

    /// `select_agent(call, agents)`: one of the candidates' ids, or nil to keep the call queued.
    /// `candidates` are agent ids, already filtered (available, holding the skill, not tried);
    /// the hook gets them longest idle first (ties in the order given), as from the
    /// distributor. Default: the candidate idle longest (the first one on a tie).
    public func selectAgent(for call: CallInfo, candidates: [String]) -> AgentSelection {
        let now = store.options.clock.nowMs()
        var known: [(slot: Int32, since: Int64, at: Int)] = []
        for (i, id) in candidates.enumerated() {
            guard let slot = store.agents.slot(of: id), let a = store.agents.agent(id) else { continue }
            known.append((slot, min(now, a.idleSinceMs ?? now), i))  // not idle: idle_ms 0
        }
        known.sort { $0.since != $1.since ? $0.since < $1.since : $0.at < $1.at }
        return selectAgent(for: call, candidates: AgentCandidates(slots: known.map(\.slot), idleSinceMs: known.map(\.since)))
    }

    /// `select_agent` over candidates in the order the distributor keeps them (longest idle
    /// first, see `AgentCandidates`); the default is the first of them. The agents are in the
    /// rule state already: nothing is looked up by id, so the cost is the hook's own.
    public func selectAgent(for call: CallInfo, candidates: AgentCandidates) -> AgentSelection {
        let now = store.options.clock.nowMs()
        var result = AgentSelection(agentID: nil, version: version, failure: nil)
        defer { store.count(.selectAgent, failure: result.failure) }
        let first = { () -> String? in
            guard let s = candidates.slots.first else { return nil }
            return self.store.agents.agentID(slot: s)
        }
        guard let runtime else {
            result.agentID = first()
            return result
        }
        runtime.sync(store.agents)
        // each agent's idle_ms is computed from its idle-since when the rule reads it
        let t0 = ContinuousClock.now
        let outcome = runtime.selectAgent(call, slots: candidates.slots, nowMs: now)
        result.tookNs = Self.ns(since: t0)
        result.notes = runtime.traceNotes()
        switch outcome {
        case .success(.none):
            result.agentID = first()
        case .success(.some(nil)):
            result.agentID = nil
        case .success(.some(let id?)):
            if let s = runtime.slot(of: id), candidates.slots.contains(s) {
                result.agentID = id
            } else {
                result.failure = fail(.selectAgent, .unknownAgent,
                                      "\(runtime.hookPosition(.selectAgent))select_agent returned \"\(id)\", which is not one of the \(candidates.count) candidate agents")
                result.agentID = first()
            }
        case .failure(let e):
            result.failure = fail(.selectAgent, e.kind, e.message)
            result.agentID = first()
        }
        return result
    }

    // MARK: order_registrations

    /// `order_registrations(address, agents)`: the agents to bind for an address, highest first,
    /// with the q values Parley registers (see `RegistrationQ`). Default: every agent by idle_ms.
    public func orderRegistrations(for address: AddressInfo, agents: [String]) -> RegistrationOrder {
        let now = store.options.clock.nowMs()
        var result = RegistrationOrder(bindings: [], version: version, failure: nil)
        defer { store.count(.orderRegistrations, failure: result.failure) }
        guard let runtime else {
            let known = agents.compactMap { store.agents.agent($0) }
            result.bindings = RegistrationQ.bindings(for: RegistrationQ.defaultOrder(known.map { ($0.id, $0.idleMs(at: now)) }))
            return result
        }
        runtime.sync(store.agents)
        let c = runtime.candidates(agents, nowMs: now)
        let fallback = { RegistrationQ.bindings(for: RegistrationQ.defaultOrder(Array(zip(c.ids, c.idle)))) }
        switch runtime.orderRegistrations(address, slots: c.slots, nowMs: now) {
        case .success(nil):
            result.bindings = fallback()
        case .success(let entries?):
            let known = Set(c.ids)
            var seen = Set<String>()
            for (id, _) in entries {
                if !known.contains(id) {
                    result.failure = fail(.orderRegistrations, .unknownAgent,
                                          "\(runtime.hookPosition(.orderRegistrations))order_registrations returned \"\(id)\", which is not one of the agents able to serve \(address.aor)")
                    break
                }
                if !seen.insert(id).inserted {
                    result.failure = fail(.orderRegistrations, .wrongType,
                                          "\(runtime.hookPosition(.orderRegistrations))order_registrations listed \"\(id)\" twice")
                    break
                }
            }
            result.bindings = result.failure == nil ? RegistrationQ.bindings(for: entries.map { ($0.0, $0.1) }) : fallback()
        case .failure(let e):
            result.failure = fail(.orderRegistrations, e.kind, e.message)
            result.bindings = fallback()
        }
        return result
    }

    // MARK: handoff_encoding

    /// `handoff_encoding(call, agent)`: how the chosen agent receives the call. Default: uri.
    public func handoffEncoding(for call: CallInfo, agent: String) -> HandoffDecision {
        let now = store.options.clock.nowMs()
        var result = HandoffDecision(encoding: .uri, version: version, failure: nil)
        defer { store.count(.handoffEncoding, failure: result.failure) }
        guard let runtime else { return result }
        runtime.sync(store.agents)
        guard let slot = runtime.slot(of: agent) else { return result }
        let t0 = ContinuousClock.now
        let outcome = runtime.handoffEncoding(call, slot: slot, nowMs: now)
        result.tookNs = Self.ns(since: t0)
        result.notes = runtime.traceNotes()
        switch outcome {
        case .success(nil):
            break
        case .success(let s?):
            if let e = HandoffEncoding(rawValue: s) {
                result.encoding = e
            } else {
                result.failure = fail(.handoffEncoding, .unknownEncoding,
                                      "\(runtime.hookPosition(.handoffEncoding))handoff_encoding returned \"\(s)\"; expected \"uri\", \"message\" or \"tunnel\"")
            }
        case .failure(let e):
            result.failure = fail(.handoffEncoding, e.kind, e.message)
        }
        return result
    }
}

extension RuleProblem {
    /// `file:line` when known, else "".
    var positionText: String {
        switch (file, line) {
        case let (f?, l?): "\(f):\(l)"
        case let (f?, nil): f
        default: ""
        }
    }
}

extension LuaRuntime {
    /// `file:line: ` of a hook's definition, for messages the engine writes itself.
    func hookPosition(_ hook: RuleHook) -> String {
        var buf = [CChar](repeating: 0, count: 256)
        var line: Int32 = 0
        _ = parleyFunctionPosition(hook.rawValue, &buf, &line)
        let file = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return file.isEmpty ? "" : "\(file):\(line): "
    }
}
