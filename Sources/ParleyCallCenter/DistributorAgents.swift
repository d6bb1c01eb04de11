import ParleyRecords

/// What an operator asks of an agent (the admin API's `PUT /v1/agents/{id}/state`).
public enum AgentCommand: Sendable, Equatable {
    case available
    case pause(reason: String?)
    case logOff(reason: String?)
}

extension Distributor {
    /// A call event to the records and to whoever watches (the admin API's event stream).
    func record(_ event: ParleyRecords.CallEvent) {
        records?.record(event)
        callObserver?(event)
    }
}

/// Agent control: an operator's requests, the queue-log lines for every log-in, log-off, break
/// and return (whoever caused them), and the presence an operator set kept for the next start.
extension Distributor {
    /// Applies an operator's request; nil when the configuration names no such agent. A newly
    /// available agent is offered waiting calls at once.
    public func control(agent id: String, _ command: AgentCommand) -> AgentStateMachine.ControlResult? {
        guard agents.agent(id) != nil else { return nil }
        var result = AgentStateMachine.ControlResult.unchanged
        agents.apply(id) { m, t in
            switch command {
            case .available: result = m.makeAvailable(now: t)
            case .pause(let reason): result = m.pause(reason: reason, now: t)
            case .logOff(let reason): result = m.logOff(reason: reason, now: t)
            }
            return result == .changed
        }
        return result
    }

    /// Puts agents back where an operator last set them (at start, before any call; nothing is
    /// logged). Agents the configuration no longer names are left out.
    public func restore(_ saved: [String: SavedPresence]) {
        let observer = agents.onChange
        agents.onChange = nil
        defer { agents.onChange = observer }
        for (id, s) in saved where agents.agent(id) != nil {
            agents.apply(id) { m, t in
                switch s.presence {
                case .available: return m.makeAvailable(now: t) == .changed
                // Since when it was set (not this start).
                case .break: return m.pause(reason: s.reason, now: min(t, s.sinceMs)) == .changed
                case .offline: return m.logOff(reason: s.reason, now: min(t, s.sinceMs)) == .changed
                }
            }
        }
    }

    /// An agent's state changed: its queue-log line (LOGIN, LOGOFF, PAUSE, UNPAUSE) and, for
    /// what an operator sets, the presence kept for the next start.
    func agentChanged(_ before: AgentStateMachine, _ after: AgentStateMachine) {
        agentObserver?(after)
        guard let entry = Self.logEntry(before, after, at: clock()) else { return }
        logger.info("agent \(after.id): \(entry.event.rawValue)\(entry.reason.map { " (\($0))" } ?? "")")
        record(.agent(entry))
    }

    /// The queue-log line for a change of an agent's state, if it is one: into a break (PAUSE,
    /// or a new reason), out of one (UNPAUSE), logged off (LOGOFF), logged in (LOGIN). A break
    /// after missed calls is logged but not kept (it ends by itself).
    static func logEntry(_ before: AgentStateMachine, _ after: AgentStateMachine, at: Int64) -> AgentLogEntry? {
        let b = before.adminState, a = after.adminState
        let timedBreak: Bool = {
            if case .offline(.onBreak) = after.state { return true }
            return false
        }()
        func entry(_ e: QueueLogEvent, _ p: AgentPresence?) -> AgentLogEntry {
            AgentLogEntry(agent: after.id, event: e, reason: after.reason, presence: p, at: at)
        }
        switch (b, a) {
        case ("break", "break"):
            return before.reason == after.reason ? nil : entry(.pause, timedBreak ? nil : .break)
        case (_, "break"):
            return entry(.pause, timedBreak ? nil : .break)
        case ("offline", "offline"):
            return before.reason == after.reason ? nil : entry(.logoff, .offline)
        case (_, "offline"):
            return entry(.logoff, .offline)
        case ("break", _):
            return entry(.unpause, .available)
        case ("offline", _):
            return entry(.login, .available)
        default:
            return nil
        }
    }
}

/// One agent as the admin API shows it, taken on the distributor's loop.
public struct AgentSnapshot: Sendable, Equatable {
    public var machine: AgentStateMachine
    /// The queue of the call it rings for or talks on.
    public var callQueue: String?
    /// Its contact is one it registered (not the configured one).
    public var registered: Bool
    public var nowMs: Int64
}

extension Distributor {
    /// Every agent, in configuration order.
    public func agentSnapshots() -> [AgentSnapshot] {
        let now = clock()
        return agents.all.map { snapshot($0, now: now) }
    }

    public func agentSnapshot(_ id: String) -> AgentSnapshot? {
        agents.agent(id).map { snapshot($0, now: clock()) }
    }

    /// A queue's service-level threshold in ms (`queues.NAME.service_level`).
    public func serviceLevelMs(_ queue: String) -> Int64 { configuration.policy(for: queue).serviceLevel.milliseconds }

    /// One agent as it is now (on the distributor's loop).
    public func snapshot(of m: AgentStateMachine) -> AgentSnapshot { snapshot(m, now: clock()) }

    func snapshot(_ m: AgentStateMachine, now: Int64) -> AgentSnapshot {
        AgentSnapshot(machine: m, callQueue: m.currentCall == nil ? nil : agentCallQueue[m.id],
                      registered: registeredAgents.contains(m.id), nowMs: now)
    }
}

/// One queue (call type) now, as the admin API shows it, taken on the distributor's loop.
public struct QueueSnapshot: Sendable, Equatable {
    public struct Caller: Sendable, Equatable {
        public var ref: String
        public var caller: String
        public var priority: Int
        public var arrivedMs: Int64
        /// The treatment it hears (nil: ringback).
        public var treatment: String?
    }

    public var name: String
    /// Still waiting for an agent (queued, being offered, on a treatment), longest first.
    public var callers: [Caller]
    /// The queue's agents (those with the skill; every agent for a type that is no skill) by
    /// admin state.
    public var agents: [String: Int]
    public var serviceLevelMs: Int64
    public var nowMs: Int64
}

extension Distributor {
    /// Every queue: the configured skills and queues, and any type a caller waits in now.
    public func queueSnapshots(only: String? = nil) -> [QueueSnapshot] {
        let now = clock()
        var live: [String: DistributorCall] = [:]
        for call in openCalls.values where call.routing.isOpen && call.transferFrom == nil { live[call.reference] = call }
        for call in onTreatment.values where call.routing.isOpen && call.transferFrom == nil { live[call.reference] = call }
        var names = Set(configuration.skills).union(configuration.queues.keys)
        for call in live.values { names.insert(call.info.type) }
        if let only { names = names.contains(only) ? [only] : [] }
        let (bySkill, everyone) = agents.countsByState()
        let none = [Int](repeating: 0, count: everyone.count)
        return names.sorted().map { name in
            let callers = live.values.filter { $0.info.type == name }
                .sorted { $0.info.arrivedMs != $1.info.arrivedMs ? $0.info.arrivedMs < $1.info.arrivedMs : $0.reference < $1.reference }
                .map { QueueSnapshot.Caller(ref: $0.reference, caller: $0.caller, priority: $0.info.priority,
                                            arrivedMs: $0.info.arrivedMs, treatment: $0.routing.onTreatment) }
            // A skill's agents are those with it; a type that is no skill is served by every agent.
            let counts = configuration.skills.contains(name) ? bySkill[name] ?? none : everyone
            var byState: [String: Int] = [:]
            for (i, s) in AgentStateMachine.adminStates.enumerated() { byState[s] = counts[i] }
            return QueueSnapshot(name: name, callers: callers, agents: byState,
                                 serviceLevelMs: configuration.policy(for: name).serviceLevel.milliseconds, nowMs: now)
        }
    }
}
