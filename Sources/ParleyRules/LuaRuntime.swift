import CLuaShim
import Foundation
import ParleySIP

/// What a hook call can fail with, before the engine applies the failure rule.
struct HookError: Error {
    var kind: RuleFailureKind
    var message: String
}

/// The host side of a state: where `log.*` goes and what `parley.now_ms()` reads.
final class RuntimeHost {
    let sink: RuleLogSink
    let clock: RuleClock

    init(sink: RuleLogSink, clock: RuleClock) {
        self.sink = sink
        self.clock = clock
    }
}

/// Strings laid out in one buffer, handed to C as `parley_str` values.
struct StringArena {
    private var bytes: [UInt8] = []
    private var ranges: [(offset: Int, length: Int)] = []

    init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    /// Adds a string (nil stays nil); returns its index.
    @discardableResult
    mutating func add(_ s: String?) -> Int {
        guard var s else {
            ranges.append((0, -1))
            return ranges.count - 1
        }
        let start = bytes.count
        s.withUTF8 { bytes.append(contentsOf: $0) }
        ranges.append((start, bytes.count - start))
        return ranges.count - 1
    }

    @discardableResult
    mutating func add(bytes b: [UInt8]) -> Int {
        let start = bytes.count
        bytes.append(contentsOf: b)
        ranges.append((start, b.count))
        return ranges.count - 1
    }

    func with<R>(_ body: ([parley_str]) -> R) -> R {
        bytes.withUnsafeBufferPointer { buf in
            let base = buf.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }
            let empty = ("" as StaticString).utf8Start.withMemoryRebound(to: CChar.self, capacity: 1) { $0 }
            let strs = ranges.map { r -> parley_str in
                if r.length < 0 { return parley_str(ptr: nil, len: 0) }
                if r.length == 0 || base == nil { return parley_str(ptr: empty, len: 0) }
                return parley_str(ptr: base! + r.offset, len: r.length)
            }
            return body(strs)
        }
    }
}

/// Calls `body` with a `parley_str` for a byte array.
func withParleyStr<R>(_ bytes: [UInt8], _ body: (parley_str) -> R) -> R {
    bytes.withUnsafeBufferPointer { buf in
        buf.baseAddress!.withMemoryRebound(to: CChar.self, capacity: max(buf.count, 1)) { p in
            body(parley_str(ptr: p, len: buf.count))
        }
    }
}

func withParleyStr<R>(_ s: String, _ body: (parley_str) -> R) -> R {
    var s = s
    return s.withUTF8 { buf in
        if buf.count == 0 { return withParleyStr([0]) { body(parley_str(ptr: $0.ptr, len: 0)) } }
        return buf.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buf.count) { p in
            body(parley_str(ptr: p, len: buf.count))
        }
    }
}

/// One Lua state with Parley's sandbox and rule API, and one rule set loaded into it.
/// Confined to one thread; build one per event loop.
final class LuaRuntime {
    let state: OpaquePointer
    private let host: RuntimeHost
    let limits: RuleLimits
    let testMode: Bool
    /// The version of the rule set loaded, once loaded.
    private(set) var version: String = ""

    // Resident agents: the slot of each agent this state holds, by id.
    private var agentSlots: [String: Int32] = [:]
    private var agentRevision: UInt64 = 0
    /// What was last put at each slot (index = slot): an agent whose id, skills, contact and
    /// attributes are the same is updated in place (state, idle time, counters), not rebuilt.
    private var agentsPut: [AgentInfo?] = []

    nonisolated(unsafe) private static let compactForms: [UnsafePointer<CChar>?] = {
        (0..<26).map { i -> UnsafePointer<CChar>? in
            let letter = Character(UnicodeScalar(UInt8(ascii: "a") + UInt8(i)))
            guard let name = InviteView.compactForms[letter] else { return nil }
            return UnsafePointer(strdup(name))
        }
    }()

    init(limits: RuleLimits, sink: RuleLogSink, clock: RuleClock, testMode: Bool) throws(HookError) {
        self.limits = limits
        self.testMode = testMode
        host = RuntimeHost(sink: sink, clock: clock)
        var config = parley_config()
        config.limits = LuaRuntime.cLimits(limits)
        config.test_mode = testMode ? 1 : 0
        config.callbacks.ctx = Unmanaged.passUnretained(host).toOpaque()
        config.callbacks.now_ms = { ctx in
            Unmanaged<RuntimeHost>.fromOpaque(ctx!).takeUnretainedValue().clock.nowMs()
        }
        config.callbacks.log = { ctx, level, wherePtr, whereLen, msgPtr, msgLen in
            let host = Unmanaged<RuntimeHost>.fromOpaque(ctx!).takeUnretainedValue()
            let location = wherePtr.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: whereLen), as: UTF8.self) } ?? ""
            let message = msgPtr.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: msgLen), as: UTF8.self) } ?? ""
            host.sink.write(RuleLogRecord(level: RuleLogRecord.Level(rawValue: Int(level)) ?? .info,
                                          location: location, message: message))
        }
        config.callbacks.parse_sip = { _, text, len, blobOut, blobLen, errorOut in
            let bytes = [UInt8](UnsafeRawBufferPointer(start: text, count: len))
            switch LuaRuntime.parseForTests(bytes) {
            case .success(let view):
                let packed = view.packed
                let p = malloc(max(packed.count, 1))!
                packed.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: packed.count) }
                blobOut!.pointee = p.assumingMemoryBound(to: CChar.self)
                blobLen!.pointee = packed.count
                return 0
            case .failure(let message):
                errorOut!.pointee = strdup(message.message)
                return 1
            }
        }
        withUnsafeMutableBytes(of: &config.compact_forms) { raw in
            let p = raw.bindMemory(to: UnsafePointer<CChar>?.self)
            for i in 0..<26 { p[i] = LuaRuntime.compactForms[i] }
        }
        var error: UnsafeMutablePointer<CChar>?
        guard let s = parley_open(&config, &error) else {
            let message = error.map { String(cString: $0) } ?? "cannot open a Lua state"
            free(error)
            throw HookError(kind: .unavailable, message: message)
        }
        state = s
    }

    deinit { parley_close(state) }

    static func cLimits(_ l: RuleLimits) -> parley_limits {
        parley_limits(instructions: Int64(l.instructions), memory_bytes: Int64(l.memoryBytes),
                      wall_ns: Int64(l.wallClockMs) * 1_000_000, pattern_subject_bytes: Int64(l.patternSubjectBytes),
                      pattern_cost: l.patternCost)
    }

    var lastError: String {
        var len = 0
        let p = parley_last_error(state, &len)!
        return String(decoding: UnsafeRawBufferPointer(start: p, count: len), as: UTF8.self)
    }

    var memoryUsed: Int { Int(parley_memory_used(state)) }

    /// What the last hook call traced with `trace(...)` (none: no allocation).
    func traceNotes() -> [String] {
        let n = Int(parley_trace_count(state))
        guard n > 0 else { return [] }
        return (0..<n).map { i in
            var len = 0
            let p = parley_trace_note(state, Int32(i), &len)
            return p.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: len), as: UTF8.self) } ?? ""
        }
    }
    /// Collects all garbage now; the bytes in use after.
    func collectGarbage() -> Int { Int(parley_collect_garbage(state)) }

    private func failure(_ status: Int32) -> HookError {
        let kind: RuleFailureKind
        switch Int(status) {
        case Int(PARLEY_ERR_BUDGET): kind = .budget
        case Int(PARLEY_ERR_MEMORY): kind = .memory
        case Int(PARLEY_ERR_RESULT): kind = .wrongType
        default: kind = .error
        }
        var message = lastError
        if kind == .memory, message.hasPrefix("?:0: "), let hook = currentHook {
            message = hookPosition(hook) + message.dropFirst(5)
        }
        return HookError(kind: kind, message: message)
    }

    /// The hook being called, for messages that need its position.
    private var currentHook: RuleHook?

    // MARK: Loading

    /// Loads a rule set: registers every file, compiles each (collecting every syntax error),
    /// runs init.lua under the limits, and checks the hooks' types.
    func load(_ snapshot: RuleSetSnapshot) -> [RuleProblem] {
        var problems: [RuleProblem] = []
        for f in snapshot.files {
            let st = withParleyStr(f.module) { m in
                withParleyStr(f.displayPath) { d in withParleyStr(f.text) { t in parley_compile_module(state, m, d, t) } }
            }
            if st != PARLEY_OK { problems.append(RuleProblem(luaMessage: lastError)) }
        }
        guard snapshot.files.contains(where: { $0.module == "init" }) else {
            problems.append(RuleProblem(file: RuleSetSnapshot.join(snapshot.directory, "init.lua"), line: nil,
                                        message: "missing: a rule set starts from init.lua"))
            return problems
        }
        if !problems.isEmpty { return problems }
        let st = withParleyStr("init") { parley_require(state, $0) }
        if st != PARLEY_OK {
            let e = failure(st)
            return [RuleProblem(luaMessage: e.message)]
        }
        for hook in RuleHook.allCases {
            let t = parley_global_type(state, hook.rawValue)
            if t == LuaRuntime.LUA_TNIL_VALUE || t == LuaRuntime.LUA_TFUNCTION_VALUE { continue }
            let (file, line) = LuaRuntime.assignmentPosition(of: hook.rawValue, in: snapshot)
            problems.append(RuleProblem(file: file, line: line,
                                        message: "\(hook.rawValue) must be a function, but it is a \(LuaRuntime.typeName(t))"))
        }
        if problems.isEmpty { version = snapshot.version }
        return problems
    }

    static let LUA_TNIL_VALUE: Int32 = 0
    static let LUA_TFUNCTION_VALUE: Int32 = 6

    static func typeName(_ t: Int32) -> String {
        switch t {
        case 0: "nil"
        case 1: "boolean"
        case 2: "userdata"
        case 3: "number"
        case 4: "string"
        case 5: "table"
        case 6: "function"
        case 7: "userdata"
        case 8: "thread"
        default: "value"
        }
    }

    /// Where a global is assigned (`name = ...`), searching init.lua first.
    static func assignmentPosition(of name: String, in snapshot: RuleSetSnapshot) -> (String?, Int?) {
        let ordered = snapshot.files.sorted { a, _ in a.module == "init" }
        for f in ordered {
            let text = String(decoding: f.text, as: UTF8.self)
            var lineNo = 0
            for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
                lineNo += 1
                let t = line.drop { $0 == " " || $0 == "\t" }
                guard t.hasPrefix(name) else { continue }
                let rest = t.dropFirst(name.count).drop { $0 == " " || $0 == "\t" }
                if rest.hasPrefix("=") && !rest.hasPrefix("==") { return (f.displayPath, lineNo) }
            }
        }
        return (snapshot.files.first { $0.module == "init" }?.displayPath, nil)
    }

    /// Runs a chunk in the global environment (test preludes and test files).
    func runChunk(display: String, source: [UInt8]) -> HookError? {
        currentHook = nil
        let st = withParleyStr(display) { d in withParleyStr(source) { t in parley_run_chunk(state, d, t) } }
        return st == PARLEY_OK ? nil : failure(st)
    }

    func setLimits(_ l: RuleLimits) {
        var c = LuaRuntime.cLimits(l)
        parley_set_limits(state, &c)
    }

    // MARK: Agents

    /// Applies the directory's changes since this state last looked.
    func sync(_ directory: AgentDirectory) {
        guard directory.revision != agentRevision else { return }
        let ch = directory.changes(since: agentRevision)
        for r in ch.removed {
            _ = parley_agent_remove(state, r.slot)
            if agentSlots[r.id] == r.slot { agentSlots[r.id] = nil }
            if Int(r.slot) < agentsPut.count { agentsPut[Int(r.slot)] = nil }
        }
        for u in ch.updated {
            let i = Int(u.slot)
            if i >= agentsPut.count { agentsPut.append(contentsOf: repeatElement(nil, count: i + 1 - agentsPut.count)) }
            if let before = agentsPut[i], before.sameResidentShape(as: u.info), update(slot: u.slot, u.info) {
                // state, idle time and counters changed in place
            } else {
                put(slot: u.slot, u.info)
            }
            agentsPut[i] = u.info
            agentSlots[u.info.id] = u.slot
        }
        agentRevision = ch.revision
    }

    /// The state, idle time and counters of the agent resident at `slot`; false: not there.
    private func update(slot: Int32, _ a: AgentInfo) -> Bool {
        var found: Int32 = 0
        let st = withParleyStr(a.state.rawValue) { stateStr -> Int32 in
            var ag = parley_agent()
            ag.state = stateStr
            ag.idle_since = a.idleSinceMs ?? 0
            ag.has_idle_since = a.idleSinceMs == nil ? 0 : 1
            ag.calls_handled = Int64(a.callsHandled)
            ag.talk_ms = a.talkMs
            return parley_agent_update(state, slot, &ag, &found)
        }
        return st == PARLEY_OK && found != 0
    }

    private func put(slot: Int32, _ a: AgentInfo) {
        var arena = StringArena()
        arena.add(a.id)
        for s in a.skills { arena.add(s) }
        arena.add(a.state.rawValue)
        arena.add(a.contact)
        let attrs = a.attrs.sorted { $0.key < $1.key }
        for (k, v) in attrs {
            arena.add(k)
            if case .string(let s) = v { arena.add(s) } else { arena.add("") }
        }
        _ = arena.with { strs -> Int32 in
            let skillBase = 1
            let stateIdx = skillBase + a.skills.count
            let attrBase = stateIdx + 2
            var cattrs: [parley_attr] = []
            for (i, (_, v)) in attrs.enumerated() {
                var at = parley_attr()
                at.key = strs[attrBase + 2 * i]
                switch v {
                case .string: at.kind = 0; at.string = strs[attrBase + 2 * i + 1]
                case .number(let d): at.kind = 1; at.number = d
                case .bool(let b): at.kind = 2; at.boolean = b ? 1 : 0
                }
                cattrs.append(at)
            }
            let skills = Array(strs[skillBase..<stateIdx])
            return skills.withUnsafeBufferPointer { sk in
                cattrs.withUnsafeBufferPointer { ca in
                    var ag = parley_agent()
                    ag.id = strs[0]
                    ag.skills = sk.baseAddress
                    ag.skill_count = sk.count
                    ag.state = strs[stateIdx]
                    ag.idle_since = a.idleSinceMs ?? 0
                    ag.has_idle_since = a.idleSinceMs == nil ? 0 : 1
                    ag.calls_handled = Int64(a.callsHandled)
                    ag.talk_ms = a.talkMs
                    ag.contact = strs[stateIdx + 1]
                    ag.attrs = ca.baseAddress
                    ag.attr_count = ca.count
                    return parley_agent_put(state, slot, &ag)
                }
            }
        }
    }

    // The last candidate list resolved, reused while the same ids come again and no agent changed
    // (the distributor usually asks with the same list many times).
    private var lastIDs: [String] = []
    private var lastRevision: UInt64 = .max
    private var lastSlots: [Int32] = []
    private var lastIdleSince: [Int64?] = []
    private var lastKnown: [String] = []

    /// The slot this state holds an agent at.
    func slot(of id: String) -> Int32? { agentSlots[id] }

    /// Slots and idle times of the candidates this state knows, in the given order.
    func candidates(_ ids: [String], nowMs: Int64) -> (slots: [Int32], idle: [Int64], ids: [String]) {
        if lastRevision != agentRevision || ids != lastIDs {
            var slots: [Int32] = []
            var since: [Int64?] = []
            var known: [String] = []
            slots.reserveCapacity(ids.count)
            since.reserveCapacity(ids.count)
            known.reserveCapacity(ids.count)
            for id in ids {
                guard let slot = agentSlots[id] else { continue }
                slots.append(slot)
                since.append(agentsPut[Int(slot)]?.idleSinceMs)
                known.append(id)
            }
            lastIDs = ids
            lastRevision = agentRevision
            lastSlots = slots
            lastIdleSince = since
            lastKnown = known
        }
        let idle = lastIdleSince.map { $0.map { max(0, nowMs - $0) } ?? 0 }
        return (lastSlots, idle, lastKnown)
    }

    // MARK: Hooks (raw: nil when the hook is not defined)

    func classify(_ invite: InviteView) -> Result<(type: String, priority: Int?)?, HookError> {
        currentHook = .classify
        var defined: Int32 = 0
        var out = parley_classify_result()
        let st = withParleyStr(invite.packed) { parley_classify(state, $0, &defined, &out) }
        if st != PARLEY_OK { return .failure(failure(st)) }
        guard defined != 0 else { return .success(nil) }
        let type = takeString(&out.type) ?? ""
        return .success((type, out.has_priority != 0 ? Int(out.priority) : nil))
    }

    private func takeString(_ r: inout parley_string_result) -> String? {
        guard r.is_nil == 0, let p = r.ptr else { return nil }
        let s = String(decoding: UnsafeRawBufferPointer(start: p, count: r.len), as: UTF8.self)
        parley_free(p)
        r.ptr = nil
        return s
    }

    private func withCall<R>(_ call: CallInfo, nowMs: Int64, _ body: (UnsafePointer<parley_call>) -> R) -> R {
        var arena = StringArena(capacity: 64 + (call.invite?.packed.count ?? 0))
        arena.add(call.id)
        arena.add(call.type)
        for a in call.attempts { arena.add(a) }
        if let inv = call.invite { arena.add(bytes: inv.packed) } else { arena.add(nil) }
        return arena.with { strs in
            let attempts = Array(strs[2..<(2 + call.attempts.count)])
            return attempts.withUnsafeBufferPointer { at in
                var c = parley_call()
                c.id = strs[0]
                c.type = strs[1]
                c.priority = Int64(call.priority)
                c.waited_ms = max(0, nowMs - call.arrivedMs)
                c.attempts = at.baseAddress
                c.attempt_count = at.count
                c.invite = strs[2 + call.attempts.count]
                return withUnsafePointer(to: &c) { body($0) }
            }
        }
    }

    func selectAgent(_ call: CallInfo, slots: [Int32], nowMs: Int64) -> Result<String??, HookError> {
        currentHook = .selectAgent
        parley_set_hook_now(state, nowMs, 1)
        defer { parley_set_hook_now(state, 0, 0) }
        var defined: Int32 = 0
        var out = parley_string_result()
        let st = withCall(call, nowMs: nowMs) { c in
            slots.withUnsafeBufferPointer { s in
                parley_select_agent(state, c, s.baseAddress, s.count, &defined, &out)
            }
        }
        if st != PARLEY_OK { return .failure(failure(st)) }
        guard defined != 0 else { return .success(.none) }
        return .success(.some(takeString(&out)))
    }

    func handoffEncoding(_ call: CallInfo, slot: Int32, nowMs: Int64) -> Result<String?, HookError> {
        currentHook = .handoffEncoding
        parley_set_hook_now(state, nowMs, 1)
        defer { parley_set_hook_now(state, 0, 0) }
        var defined: Int32 = 0
        var out = parley_string_result()
        let st = withCall(call, nowMs: nowMs) { c in
            parley_handoff_encoding(state, c, slot, &defined, &out)
        }
        if st != PARLEY_OK { return .failure(failure(st)) }
        guard defined != 0 else { return .success(nil) }
        return .success(takeString(&out) ?? "")
    }

    func orderRegistrations(_ address: AddressInfo, slots: [Int32], nowMs: Int64) -> Result<[(String, Double)]?, HookError> {
        currentHook = .orderRegistrations
        parley_set_hook_now(state, nowMs, 1)
        defer { parley_set_hook_now(state, 0, 0) }
        var defined: Int32 = 0
        var out = parley_order_result()
        var arena = StringArena()
        arena.add(address.aor)
        arena.add(address.skill)
        arena.add(address.kind.rawValue)
        arena.add(address.name)
        let st = arena.with { strs in
            var a = parley_address(aor: strs[0], skill: strs[1], kind: strs[2], name: strs[3])
            return slots.withUnsafeBufferPointer { s in
                parley_order_registrations(state, &a, s.baseAddress, s.count, &defined, &out)
            }
        }
        if st != PARLEY_OK { return .failure(failure(st)) }
        guard defined != 0 else { return .success(nil) }
        var entries: [(String, Double)] = []
        for i in 0..<out.count {
            let id = String(decoding: UnsafeRawBufferPointer(start: out.ids[i], count: out.id_lens[i]), as: UTF8.self)
            entries.append((id, out.qs[i]))
        }
        parley_free_order(&out)
        return .success(entries)
    }

    func parleyFunctionPosition(_ name: String, _ buf: inout [CChar], _ line: inout Int32) -> Int32 {
        buf.withUnsafeMutableBufferPointer { b in parley_function_position(state, name, b.baseAddress, b.count, &line) }
    }

    // MARK: Tests

    func listTests(display: String) -> [(name: String, line: Int)] {
        var entries: UnsafeMutablePointer<parley_test_entry>?
        var count = 0
        let st = withParleyStr(display) { parley_list_tests(state, $0, &entries, &count) }
        guard st == PARLEY_OK, let entries else { return [] }
        var out: [(String, Int)] = []
        for i in 0..<count { out.append((String(cString: entries[i].name), Int(entries[i].line))) }
        parley_free_tests(entries, count)
        return out
    }

    func runTest(_ name: String) -> HookError? {
        currentHook = nil
        let st = parley_run_test(state, name)
        return st == PARLEY_OK ? nil : failure(st)
    }

    /// `sip.parse` for tests: LF line ends are accepted; validation is off so tests can feed odd
    /// messages.
    static func parseForTests(_ bytes: [UInt8]) -> Result<InviteView, HookError> {
        var text = bytes
        // Convert the head's bare LF line ends to CRLF.
        var out: [UInt8] = []
        out.reserveCapacity(text.count + 64)
        var i = 0
        var inBody = false
        while i < text.count {
            let c = text[i]
            if !inBody, c == 0x0A {
                if out.last != 0x0D { out.append(0x0D) }
                out.append(0x0A)
                let n = out.count
                if n >= 4, out[n - 4] == 0x0D, out[n - 3] == 0x0A, out[n - 2] == 0x0D { inBody = true }
                i += 1
                continue
            }
            out.append(c)
            i += 1
        }
        if !inBody {
            if out.last != 0x0A { out.append(contentsOf: [0x0D, 0x0A]) }
            out.append(contentsOf: [0x0D, 0x0A])
        }
        text = out
        do {
            let m = try SIPParser.parse(text, framing: .datagram, validate: false)
            guard m.isRequest else { return .failure(HookError(kind: .error, message: "not a request")) }
            return .success(InviteView(message: m, source: "192.0.2.1:5060", transport: "udp"))
        } catch {
            return .failure(HookError(kind: .error, message: error.description))
        }
    }
}
