import Foundation
import Hummingbird
import Logging
import NIOCore
import ParleyCallCenter
import ParleyRecords
import ParleyRules
import ParleySIP

/// Who may do what on the admin listener: the full token may do everything, the read token GET
/// only; neither configured (a loopback listener): anyone who can reach it.
public struct AdminAccess: Sendable {
    public var token: [UInt8]?
    public var readToken: [UInt8]?
    /// `/metrics` without a token.
    public var metricsOpen: Bool

    public init(token: [UInt8]?, readToken: [UInt8]?, metricsOpen: Bool) {
        self.token = token
        self.readToken = readToken
        self.metricsOpen = metricsOpen
    }

    public enum Grant: Equatable { case all, read, none }

    /// What a presented token grants (compared in constant time, both tokens always).
    func grant(_ presented: String?) -> Grant {
        if token == nil, readToken == nil { return .all }
        guard let presented else { return .none }
        let p = Array(presented.utf8)
        let full = token.map { ConstantTime.equals($0, p) } ?? false
        let read = readToken.map { ConstantTime.equals($0, p) } ?? false
        return full ? .all : read ? .read : .none
    }
}

/// An error the admin API answers with: `{"error": {"code": ..., "message": ...}}`.
public struct AdminError: HTTPResponseError {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    static func badRequest(_ m: String) -> AdminError { AdminError(.badRequest, "bad_request", m) }
    static func notFound(_ m: String) -> AdminError { AdminError(.notFound, "not_found", m) }
    static func unavailable(_ role: String) -> AdminError {
        AdminError(.serviceUnavailable, "unavailable", "\(role) does not run in this process")
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        AdminAPI.json(.object(["error": .object(["code": .string(code), "message": .string(message)])]), status: status)
    }
}

/// The admin API (docs/admin.md): routes over what the roles of this process know, on
/// Hummingbird. Every read and change of call-center state runs on the role's own event loop.
public final class AdminAPI: Sendable {
    public let distributor: Distributor?
    /// Call records and the queue log (nil: not kept; "today" figures are then null).
    public let records: RecordStore?
    /// The rules the distributor runs (nil: no distributor here).
    public let rules: RuleStore?
    public let access: AdminAccess
    /// The event stream.
    public let events = EventHub()
    let keepAlive = RepeatingTimer()
    /// `/metrics`.
    public let metrics: AdminMetrics
    /// What the roles of this process count, read at each scrape (set by the wiring).
    public let figures: (@Sendable () async -> RoleFigures)?
    /// Largest request body taken.
    public static let maxBody = 64 * 1024

    public init(distributor: Distributor?, records: RecordStore?, rules: RuleStore?, access: AdminAccess,
                figures: (@Sendable () async -> RoleFigures)? = nil, timeZone: TimeZone = TimeZone(identifier: "UTC")!) {
        self.figures = figures
        self.timeZone = timeZone
        metrics = AdminMetrics(midnight: { Self.midnight(before: $0, in: timeZone) },
                               threshold: { distributor?.serviceLevelMs($0) ?? 20_000 })
        self.distributor = distributor
        self.records = records
        self.rules = rules
        self.access = access
    }

    /// Runs `body` on the distributor's loop.
    func onDistributor<T: Sendable>(_ body: @escaping @Sendable (Distributor) throws -> T) async throws -> T {
        guard let d = distributor else { throw AdminError.unavailable("the distributor") }
        return try await d.stack.loop.submit { try body(d) }.get()
    }

    /// Runs a blocking read (the records database) off the cooperative threads.
    static func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { c in
            DispatchQueue.global().async { c.resume(with: Result { try body() }) }
        }
    }

    /// Where "today" starts (the configuration's `timezone`).
    public let timeZone: TimeZone

    /// Local midnight before `ms`, in ms.
    func midnight(before ms: Int64) -> Int64 { Self.midnight(before: ms, in: timeZone) }

    static func midnight(before ms: Int64, in timeZone: TimeZone) -> Int64 {
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = timeZone
        return Int64(cal.startOfDay(for: Date(timeIntervalSince1970: Double(ms) / 1000)).timeIntervalSince1970 * 1000)
    }

    /// Queues with their figures since local midnight.
    func queues(only: String? = nil) async throws -> [JSONValue] {
        let metrics = self.metrics
        let snaps = try await onDistributor { d in d.queueSnapshots(only: only).map { ($0, metrics.today($0.name, now: $0.nowMs)) } }
        return snaps.map { AdminViews.queue($0.0, today: $0.1) }
    }

    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        var text = value.text
        text += "\n"
        return Response(status: status, headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
                        body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    public func router() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.middlewares.add(AdminErrors())
        router.middlewares.add(AdminAuthentication(access: access))
        router.get("/v1/agents") { _, _ in
            let all = try await self.onDistributor { $0.agentSnapshots() }
            return Self.json(.array(all.map(AdminViews.agent)))
        }
        router.get("/v1/agents/:id") { _, context in
            let id = try context.parameters.require("id")
            guard let s = try await self.onDistributor({ $0.agentSnapshot(id) }) else { throw Self.noAgent(id) }
            return Self.json(AdminViews.agent(s))
        }
        router.put("/v1/agents/:id/state") { request, context in
            let id = try context.parameters.require("id")
            let command = try Self.agentCommand(try await Self.body(request, context: context))
            let (result, snapshot) = try await self.onDistributor { d in (d.control(agent: id, command), d.agentSnapshot(id)) }
            guard let result, let snapshot else { throw Self.noAgent(id) }
            if case .notAllowed(let why) = result { throw AdminError(.conflict, "conflict", why) }
            return Self.json(AdminViews.agent(snapshot))
        }
        router.get("/v1/calls") { request, _ in
            let filter = try Self.callFilter(request.uri.queryParameters)
            guard let records = self.records else { throw AdminError.unavailable("the call records (records.database)") }
            let list = try await Self.blocking { try records.calls(matching: filter) }
            return Self.json(.array(list.map { AdminViews.call($0) }))
        }
        router.get("/v1/calls/:ref") { _, context in
            let ref = try context.parameters.require("ref")
            guard let records = self.records else { throw AdminError.unavailable("the call records (records.database)") }
            let live = try? await self.onDistributor { $0.liveTrace(ref) }
            let found = try await Self.blocking { () -> (CallRecord, [QueueLogLine], JSONValue)? in
                guard let c = try records.call(ref) else { return nil }
                return (c, try records.queueLog(call: ref), try records.trace(ref))
            }
            guard let (record, log, stored) = found else { throw AdminError.notFound("call '\(AdminText.clip(ref))' is not in the records") }
            var trace = stored
            if case .raw("[]") = stored, let live = live ?? nil { trace = .array(live.map(\.json)) }
            return Self.json(AdminViews.call(record, log: log, trace: trace))
        }
        router.get("/v1/events") { request, _ in try self.eventStream(request) }
        router.get("/") { _, _ in
            // A fresh nonce per page: only its own inline script runs, nothing from elsewhere loads.
            let nonce = (0..<16).map { _ in String(UInt8.random(in: 0...255), radix: 16) }.joined()
            return Response(status: .ok, headers: [
                .contentType: "text/html; charset=utf-8", .cacheControl: "no-store",
                .contentSecurityPolicy: "default-src 'none'; script-src 'nonce-\(nonce)'; style-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'",
                .init("Referrer-Policy")!: "no-referrer",
            ], body: ResponseBody(byteBuffer: ByteBuffer(string: WallboardPage.html(nonce: nonce))))
        }
        router.get("/metrics") { _, _ in
            let figures = await self.figures?() ?? RoleFigures()
            let queues = (try? await self.onDistributor { $0.queueSnapshots() }) ?? []
            let text = self.metrics.scrape(figures: figures, queues: queues, rules: self.rules)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8", .cacheControl: "no-store"],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
        }
        router.get("/v1/rules") { _, _ in
            guard let rules = self.rules else { throw AdminError.unavailable("the distributor") }
            return Self.json(AdminViews.rules(rules))
        }
        router.post("/v1/rules/reload") { _, _ in
            guard let rules = self.rules else { throw AdminError.unavailable("the distributor") }
            // As a SIGHUP: validated in a fresh Lua state, switched only if it loads.
            let outcome = try await Self.blocking { rules.reload() }
            if case .failed(let problems) = outcome {
                let errors = problems.map { p in
                    JSONValue.object(["file": .optional(p.file.map { Self.ruleFile($0, directory: rules.directory) }), "line": p.line.map { .number($0) } ?? .null, "message": .string(p.message)])
                }
                return Self.json(.object([
                    "error": .object(["code": .string("rules_invalid"),
                                      "message": .string("the rules do not load; version \(rules.version?.prefix(12) ?? "none") stays in force")]),
                    "errors": .array(errors),
                ]), status: .unprocessableContent)
            }
            var view = AdminViews.rules(rules)
            if case .object(var f) = view {
                var changed = false
                if case .published = outcome { changed = true }
                f.append(.init("changed", .bool(changed)))
                view = .object(f)
            }
            return Self.json(view)
        }
        router.get("/v1/queues") { _, _ in Self.json(.array(try await self.queues())) }
        router.get("/v1/queues/:name") { _, context in
            let name = try context.parameters.require("name")
            guard let q = try await self.queues(only: name).first else {
                throw AdminError.notFound("queue '\(AdminText.clip(name))' is not configured and has no callers")
            }
            return Self.json(q)
        }
        return router
    }

    static func noAgent(_ id: String) -> AdminError {
        .notFound("agent '\(AdminText.clip(id))' is not configured")
    }

    /// The request's JSON object (413 over `maxBody`, 400 if it is not one).
    static func body(_ request: Request, context: some RequestContext) async throws -> [String: Any] {
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: maxBody)
        } catch {
            throw AdminError(.contentTooLarge, "too_large", "the body is over \(maxBody / 1024) KiB")
        }
        guard let object = JSONValue.parseObject(Array(buffer.readableBytesView)) else {
            throw AdminError.badRequest("the body is not a JSON object")
        }
        return object
    }

    /// A rule file's name relative to the rule directory (`lib/select.lua`), also when Lua cut
    /// the front of a long path (`...rules/lib/select.lua`).
    static func ruleFile(_ file: String, directory: String) -> String {
        let dir = directory.hasSuffix("/") ? directory : directory + "/"
        if file.hasPrefix(dir) { return String(file.dropFirst(dir.count)) }
        guard file.hasPrefix("..."), let files = FileManager.default.subpaths(atPath: directory) else { return file }
        let tail = file.dropFirst(3)
        let matches = files.filter { (dir + $0).hasSuffix(tail) }
        return matches.max { $0.count < $1.count } ?? file
    }

    /// `?state=active|ended&queue=Q&agent=A&since_ms=T&limit=N`.
    static func callFilter(_ q: some Collection<(key: Substring, value: Substring)>) throws -> CallFilter {
        var f = CallFilter()
        for (k, v) in q {
            let value = String(v)
            switch k {
            case "state":
                switch value {
                case "active": f.active = true
                case "ended": f.active = false
                default: throw AdminError.badRequest("parameter 'state' must be active or ended")
                }
            case "queue": f.queue = value
            case "agent": f.agent = value
            case "since_ms":
                guard let t = Int64(value), t >= 0 else { throw AdminError.badRequest("parameter 'since_ms' must be milliseconds since the epoch") }
                f.sinceMs = t
            case "limit":
                guard let n = Int(value), (1...1000).contains(n) else { throw AdminError.badRequest("parameter 'limit' must be 1 to 1000") }
                f.limit = n
            case "token": break
            default: throw AdminError.badRequest("unknown parameter '\(AdminText.clip(String(k)))' (expected state, queue, agent, since_ms, limit)")
            }
        }
        return f
    }

    /// `{"state": "available" | "break" | "offline", "reason": "lunch"}`.
    static func agentCommand(_ body: [String: Any]) throws -> AgentCommand {
        for key in body.keys.sorted() where key != "state" && key != "reason" {
            throw AdminError.badRequest("unknown field '\(AdminText.clip(key))' (expected state, reason)")
        }
        guard let state = body["state"] as? String else {
            throw AdminError.badRequest("field 'state' is required: available, break or offline")
        }
        var reason: String?
        switch body["reason"] {
        case nil, is NSNull: reason = nil
        case let r as String:
            guard AdminText.isReason(r) else {
                throw AdminError.badRequest("field 'reason' must be 1 to 64 printable characters")
            }
            reason = r
        default:
            throw AdminError.badRequest("field 'reason' must be a string")
        }
        switch state {
        case "available":
            if reason != nil { throw AdminError.badRequest("field 'reason' is for break and offline only") }
            return .available
        case "break": return .pause(reason: reason)
        case "offline": return .logOff(reason: reason)
        default: throw AdminError.badRequest("field 'state' must be available, break or offline, not '\(AdminText.clip(state))'")
        }
    }
}

/// Text from a request, made safe to repeat in a message.
enum AdminText {
    /// At most 64 characters, control characters replaced.
    static func clip(_ s: String) -> String {
        String(String.UnicodeScalarView(s.unicodeScalars.prefix(64).map { $0.value < 0x20 || $0.value == 0x7F ? "?" : $0 }))
    }

    static func isReason(_ s: String) -> Bool {
        !s.isEmpty && s.unicodeScalars.count <= 64 && !s.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }
    }
}

/// Tokens: `Authorization: Bearer TOKEN`, or `?token=` on the page and the event stream (a
/// browser's EventSource cannot set headers). No token or a wrong one: 401; the read token on a
/// write: 403.
struct AdminAuthentication<Context: RequestContext>: RouterMiddleware {
    let access: AdminAccess

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        if path == "/metrics", access.metricsOpen { return try await next(request, context) }
        var presented: String?
        if let h = request.headers[.authorization], h.hasPrefix("Bearer ") {
            presented = String(h.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        } else if path == "/" || path == "/v1/events" {
            presented = request.uri.queryParameters.get("token")
        }
        switch access.grant(presented) {
        case .all:
            return try await next(request, context)
        case .read:
            guard request.method == .get || request.method == .head else {
                throw AdminError(.forbidden, "forbidden", "the read token may only read (GET)")
            }
            return try await next(request, context)
        case .none:
            throw AdminError(.unauthorized, "unauthorized", presented == nil ? "a token is needed (Authorization: Bearer TOKEN)" : "the token is not valid")
        }
    }
}

/// Every error as the admin API's JSON error, every response `Cache-Control: no-store`.
struct AdminErrors<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            var response = try await next(request, context)
            response.headers[.cacheControl] = "no-store"
            return response
        } catch let e as AdminError {
            return try e.response(from: request, context: context)
        } catch let e as HTTPResponseError {
            let code: String
            let message: String
            switch e.status {
            case .notFound: (code, message) = ("not_found", "no such resource: \(AdminText.clip(request.uri.path))")
            case .methodNotAllowed: (code, message) = ("method_not_allowed", "\(request.method) is not allowed here")
            case .contentTooLarge: (code, message) = ("too_large", "the body is over \(AdminAPI.maxBody / 1024) KiB")
            default: (code, message) = ("error", e.status.reasonPhrase)
            }
            return try AdminError(e.status, code, message).response(from: request, context: context)
        }
    }
}
