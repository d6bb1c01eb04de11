import ParleyRecords
import ParleyRules

/// The decision trace of each call: every rule hook's answer, with what the rule traced
/// (`trace(...)`) and each failure with its file:line and the default used; written with the
/// call's record when the call is answered or given up, and shown by the admin API.
extension Distributor {
    /// How many of `select_agent`'s candidates a trace names.
    static let consideredInTrace = 10
    /// The most hook calls one call's trace keeps: a caller who waits long is routed again each
    /// time an agent frees up, and its trace must not grow with the wait.
    static let traceLimit = 32

    /// Adds an entry while the trace has room; counts the rest, and says so in the last note.
    static func keep(_ trace: inout [TraceEntry], omitted: inout Int, _ entry: @autoclosure () -> TraceEntry) {
        guard trace.count < traceLimit else {
            omitted += 1
            let note = "\(omitted) later hook call\(omitted == 1 ? "" : "s") not traced (at most \(traceLimit) per call)"
            if omitted == 1 { trace[trace.count - 1].notes.append(note) } else { trace[trace.count - 1].notes[trace[trace.count - 1].notes.count - 1] = note }
            return
        }
        trace.append(entry())
    }

    func traced(_ call: DistributorCall, _ c: Classification) {
        Self.keep(&call.trace, omitted: &call.traceOmitted, TraceEntry(hook: "classify", atMs: clock(), tookUs: c.tookNs / 1000,
                                     result: .classify(type: c.type, priority: c.priority), notes: c.notes,
                                     failedWhere: Self.position(c.failure), failedMessage: Self.message(c.failure)))
    }

    func traced(_ call: DistributorCall, _ s: AgentSelection, candidates: AgentCandidates) {
        let directory = engine.store.agents
        let ids = { candidates.slots.prefix(Self.consideredInTrace).compactMap { directory.agentID(slot: $0) } }
        Self.keep(&call.trace, omitted: &call.traceOmitted, TraceEntry(hook: "select_agent", atMs: clock(), tookUs: s.tookNs / 1000, candidates: candidates.count,
                                     considered: ids(), result: .agent(s.agentID), notes: s.notes,
                                     failedWhere: Self.position(s.failure), failedMessage: Self.message(s.failure)))
    }

    func traced(_ call: DistributorCall, _ d: HandoffDecision, used: HandoffEncoding) {
        var notes = d.notes
        if used != d.encoding { notes.append("no \(d.encoding.rawValue) link to the buffer server: handed off with \(used.rawValue)") }
        Self.keep(&call.trace, omitted: &call.traceOmitted, TraceEntry(hook: "handoff_encoding", atMs: clock(), tookUs: d.tookNs / 1000, result: .encoding(used.rawValue),
                                     notes: notes, failedWhere: Self.position(d.failure), failedMessage: Self.message(d.failure)))
    }

    /// Writes what the trace holds that is not written yet (at answer, at the end).
    func writeTrace(_ call: DistributorCall) {
        guard call.traceWritten < call.trace.count else { return }
        record(.trace(call: call.reference, entries: Array(call.trace[call.traceWritten...])))
        call.traceWritten = call.trace.count
    }

    static func position(_ f: RuleFailure?) -> String? {
        guard let f else { return nil }
        let p = RuleProblem(luaMessage: f.message)
        switch (p.file, p.line) {
        case let (file?, line?): return "\(file):\(line)"
        case let (file?, nil): return file
        default: return nil
        }
    }

    static func message(_ f: RuleFailure?) -> String? {
        f.map { RuleProblem(luaMessage: $0.message).message }
    }

    /// A call's trace from memory while it is still set up here (nil: not here).
    public func liveTrace(_ reference: String) -> [TraceEntry]? {
        for call in calls.values where call.reference == reference { return call.trace }
        return onTreatment[reference]?.trace
    }
}
