import ParleyCallCenter

/// The admin API's objects as JSON (docs/admin.md), built from what the roles hand over.
enum AdminViews {
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
