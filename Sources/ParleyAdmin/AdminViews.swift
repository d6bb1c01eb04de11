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

    /// `GET /v1/agents/{id}`, and the data of `agent.state`.
    static func agent(_ s: AgentSnapshot) -> JSONValue {
        var w = JSONWriter()
        agent(s, into: &w)
        return .raw(w.text)
    }

    static func agent(_ s: AgentSnapshot, into w: inout JSONWriter) {
        let m = s.machine
        w.beginObject()
        w.field("id", m.id)
        w.field("state", m.adminState)
        w.field("reason", m.reason)
        w.field("since_ms", m.sinceMs)
        w.key("pending")
        switch m.pending {
        case .pause(let reason)?:
            w.beginObject(); w.field("state", "break"); w.field("reason", reason); w.endObject()
        case .logOff(let reason)?:
            w.beginObject(); w.field("state", "offline"); w.field("reason", reason); w.endObject()
        case nil:
            w.null()
        }
        w.key("skills")
        w.beginArray()
        for skill in m.skills { w.string(skill) }
        w.endArray()
        w.field("contact", m.contact)
        w.field("registered", s.registered)
        w.field("idle_ms", m.idleMs(at: s.nowMs))
        w.field("calls_handled", m.callsHandled)
        w.field("talk_ms", m.talkMs)
        w.field("no_answers", m.noAnswers)
        w.key("call")
        if let ref = m.currentCall {
            var since = m.sinceMs
            switch m.state {
            case .ringing(_, let t), .busy(_, let t): since = t
            default: break
            }
            w.beginObject(); w.field("ref", ref); w.field("queue", s.callQueue); w.field("since_ms", since); w.endObject()
        } else {
            w.null()
        }
        w.endObject()
    }
}
