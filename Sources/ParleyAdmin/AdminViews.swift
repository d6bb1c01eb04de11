import ParleyCallCenter
import ParleyRecords
import ParleyRules

/// The admin API's objects as JSON (docs/admin.md), built from what the roles hand over.
/// The admin API's objects for other tools (`parley calls --json`), as JSON text.
public enum AdminJSON {
    public static func call(_ c: CallRecord, log: [QueueLogLine]? = nil) -> String { AdminViews.call(c, log: log).text }
}

enum AdminViews {
    /// `GET /v1/rules`.
    static func rules(_ store: RuleStore) -> JSONValue {
        let g = store.current
        let failures = store.metrics.failures
        return .object([
            "version": .optional(g?.version), "generation": g.map { .number($0.number) } ?? .null,
            "loaded_ms": .optional(g?.loadedMs), "directory": .string(store.directory),
            "hook_failures": .object(RuleHook.allCases.map { JSONValue.Field($0.rawValue, .number(failures[$0] ?? 0)) }),
        ])
    }

    /// One call of `GET /v1/calls`; with `log` and `trace` for `GET /v1/calls/{ref}`.
    static func call(_ c: CallRecord, log: [QueueLogLine]? = nil, trace: JSONValue? = nil) -> JSONValue {
        var f: [JSONValue.Field] = [
            .init("ref", .string(c.reference)), .init("rules_version", .string(c.rulesVersion)),
            .init("state", .string(c.outcome.rawValue)), .init("queue", .string(c.queue)), .init("agent", .optional(c.agent)),
            .init("caller", .string(c.caller)), .init("priority", .number(c.priority)), .init("arrived_ms", .int(c.arrivedMs)),
            .init("answered_ms", .optional(c.answeredMs)), .init("ended_ms", .optional(c.endedMs)),
            .init("code", c.finalCode.map { .number($0) } ?? .null), .init("offers", .number(c.offers)),
        ]
        if let log {
            f.append(.init("log", .array(log.map { l in
                .object(["event": .string(l.event.rawValue), "at_ms": .int(l.timeMs), "agent": .optional(l.agent),
                         "code": l.code.map { .number($0) } ?? .null, "duration_ms": .optional(l.durationMs)])
            })))
        }
        if let trace { f.append(.init("trace", trace)) }
        return .object(f)
    }

    /// `GET /v1/queues/{name}`; `today` nil when no records are kept.
    static func queue(_ q: QueueSnapshot, today: QueueToday?) -> JSONValue {
        let longest = q.callers.map { q.nowMs - $0.arrivedMs }.max() ?? 0
        var todayView = JSONValue.null
        if let t = today {
            todayView = .object([
                "offered": .number(t.offered), "answered": .number(t.answered), "abandoned": .number(t.abandoned),
                "failed": .number(t.failed), "service_level": t.serviceLevel.map { .double(($0 * 1000).rounded() / 1000) } ?? .null,
                "service_level_threshold_ms": .int(q.serviceLevelMs), "average_wait_ms": .optional(t.averageWaitMs),
                "average_handle_ms": .optional(t.averageHandleMs),
            ])
        }
        let states = ["available", "ringing", "busy", "wrapup", "break", "offline"]
        return .object([
            "name": .string(q.name),
            "waiting": .number(q.callers.count),
            "longest_wait_ms": .int(longest),
            "agents": .object(states.map { JSONValue.Field($0, .number(q.agents[$0] ?? 0)) }),
            "today": todayView,
            "callers": .array(q.callers.map { c in
                .object(["ref": .string(c.ref), "caller": .string(c.caller), "priority": .number(c.priority),
                         "waited_ms": .int(q.nowMs - c.arrivedMs), "treatment": .optional(c.treatment)])
            }),
        ])
    }

    /// `GET /v1/agents/{id}`.
    static func agent(_ s: AgentSnapshot) -> JSONValue {
        let m = s.machine
        let pending: JSONValue
        switch m.pending {
        case .pause(let reason)?: pending = .object(["state": .string("break"), "reason": .optional(reason)])
        case .logOff(let reason)?: pending = .object(["state": .string("offline"), "reason": .optional(reason)])
        case nil: pending = .null
        }
        var call = JSONValue.null
        if let ref = m.currentCall {
            var since = m.sinceMs
            switch m.state {
            case .ringing(_, let t), .busy(_, let t): since = t
            default: break
            }
            call = .object(["ref": .string(ref), "queue": .optional(s.callQueue), "since_ms": .int(since)])
        }
        return .object([
            "id": .string(m.id),
            "state": .string(m.adminState),
            "reason": .optional(m.reason),
            "since_ms": .int(m.sinceMs),
            "pending": pending,
            "skills": .array(m.skills.map { .string($0) }),
            "contact": .optional(m.contact),
            "registered": .bool(s.registered),
            "idle_ms": .int(m.info.idleMs(at: s.nowMs)),
            "calls_handled": .number(m.callsHandled),
            "talk_ms": .int(m.talkMs),
            "no_answers": .number(m.noAnswers),
            "call": call,
        ])
    }
}
