import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import ParleyApp

/// Where the admin API is and the token to use: `--admin URL`, or `--config FILE`'s
/// `admin.listen`; the token from PARLEY_ADMIN_TOKEN, else the configuration's.
struct AdminOptions: ParsableArguments {
    @Option(help: "The admin API, e.g. http://127.0.0.1:8080.")
    var admin: String?

    @Option(help: "A configuration file whose admin section names the API and its token.")
    var config: String?

    func endpoint() throws -> (base: String, token: String?) {
        var token = ProcessInfo.processInfo.environment[AdminSettings.tokenVariable].flatMap { $0.isEmpty ? nil : $0 }
        var base = admin
        if let config {
            let c: ParleyConfiguration
            do { c = try ParleyConfiguration.load(path: config) } catch {
                throw ValidationError("\(config): the configuration has problems:\n\(error)")
            }
            guard let a = c.admin else { throw ValidationError("\(config) has no admin section") }
            if base == nil { base = "http://" + a.listen }
            if token == nil { token = (a.token ?? a.readToken).map { String(decoding: $0, as: UTF8.self) } }
        }
        guard var b = base else { throw ValidationError("name the admin API with --admin http://HOST:PORT or --config FILE") }
        while b.hasSuffix("/") { b.removeLast() }
        guard b.hasPrefix("http://") || b.hasPrefix("https://"), URL(string: b) != nil else {
            throw ValidationError("--admin '\(b)' is not an http:// URL")
        }
        return (b, token)
    }

    /// Sends a request; the answer's JSON text, or exits with the API's error message.
    func request(_ method: String, _ path: String, body: [String: Any?]? = nil) async throws -> String {
        let (base, token) = try endpoint()
        var r = URLRequest(url: URL(string: base + path)!)
        r.httpMethod = method
        r.timeoutInterval = 30
        if let token { r.setValue("Bearer " + token, forHTTPHeaderField: "Authorization") }
        if let body {
            r.setValue("application/json", forHTTPHeaderField: "Content-Type")
            r.httpBody = try JSONSerialization.data(withJSONObject: body.mapValues { $0 ?? NSNull() })
        }
        let data: Data, response: URLResponse
        do {
            (data, response) = try await URLSession.shared.data(for: r)
        } catch {
            FileHandle.standardError.write(Data("parley: cannot reach the admin API at \(base): \(error.localizedDescription)\n".utf8))
            throw ExitCode(1)
        }
        let text = String(decoding: data, as: UTF8.self)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard (200..<300).contains(status) else {
            var message = text
            if let o = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let e = o["error"] as? [String: Any],
               let m = e["message"] as? String {
                message = m
                if let errors = o["errors"] as? [[String: Any]] {
                    message += errors.map { e in "\n  \(e["file"] as? String ?? "?"):\(e["line"] as? Int ?? 0): \(e["message"] as? String ?? "")" }.joined()
                }
            }
            FileHandle.standardError.write(Data("parley: \(status): \(message)\n".utf8))
            throw ExitCode(1)
        }
        return text
    }
}

func jsonObjects(_ text: String) -> [[String: Any]] {
    let any = try? JSONSerialization.jsonObject(with: Data(text.utf8))
    if let a = any as? [[String: Any]] { return a }
    if let o = any as? [String: Any] { return [o] }
    return []
}

func field(_ o: [String: Any], _ k: String) -> String {
    switch o[k] {
    case let s as String: return s
    case let n as NSNumber: return n.stringValue
    case nil, is NSNull: return "-"
    default: return "…"
    }
}

func seconds(_ ms: Any?) -> String {
    guard let n = ms as? NSNumber else { return "-" }
    return String(format: "%.0fs", n.doubleValue / 1000)
}

/// `parley agents`: every agent's state.
struct AgentsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "agents", abstract: "Every agent's state, from the admin API.")
    @OptionGroup var api: AdminOptions
    @Flag(help: "Print the API's JSON.") var json = false

    func run() async throws {
        let text = try await api.request("GET", "/v1/agents")
        if json { print(text, terminator: ""); return }
        print(table(["agent", "state", "reason", "since", "pending", "call", "queue", "handled", "missed"], jsonObjects(text).map { a in
            let since = (a["since_ms"] as? NSNumber).map { formatTime($0.int64Value) }
            let pending = (a["pending"] as? [String: Any]).map { field($0, "state") } ?? "-"
            let call = a["call"] as? [String: Any]
            return [field(a, "id"), field(a, "state"), field(a, "reason"), since ?? "-", pending,
                    call.map { field($0, "ref") } ?? "-", call.map { field($0, "queue") } ?? "-", field(a, "calls_handled"), field(a, "no_answers")]
        }))
    }
}

/// `parley agent pause|resume|logout ID`.
struct AgentCommandGroup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "agent", abstract: "Put an agent on break, back, or log it off.",
                                                    subcommands: [Pause.self, Resume.self, Logout.self])

    static func set(_ api: AdminOptions, _ id: String, _ state: String, _ reason: String?) async throws {
        let text = try await api.request("PUT", "/v1/agents/\(id.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? id)/state",
                                         body: ["state": state, "reason": reason])
        guard let a = jsonObjects(text).first else { print(text); return }
        let pending = (a["pending"] as? [String: Any]).map { " (\(field($0, "state")) when its call ends)" } ?? ""
        print("\(field(a, "id")): \(field(a, "state"))\(a["reason"] is String ? " (\(field(a, "reason")))" : "")\(pending)")
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "On break (at once, or when its current call ends).")
        @OptionGroup var api: AdminOptions
        @Argument(help: "The agent's id.") var id: String
        @Option(help: "Why (shown on the wallboard and in the queue log).") var reason: String?
        func run() async throws { try await AgentCommandGroup.set(api, id, "break", reason) }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Available again (ends a break, logs in, or cancels a pending change).")
        @OptionGroup var api: AdminOptions
        @Argument(help: "The agent's id.") var id: String
        func run() async throws { try await AgentCommandGroup.set(api, id, "available", nil) }
    }

    struct Logout: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Logged off (at once, or when its current call ends).")
        @OptionGroup var api: AdminOptions
        @Argument(help: "The agent's id.") var id: String
        @Option(help: "Why.") var reason: String?
        func run() async throws { try await AgentCommandGroup.set(api, id, "offline", reason) }
    }
}

/// `parley queues`: every queue now and today.
struct QueuesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "queues", abstract: "Every queue now and today, from the admin API.")
    @OptionGroup var api: AdminOptions
    @Flag(help: "Print the API's JSON.") var json = false

    func run() async throws {
        let text = try await api.request("GET", "/v1/queues")
        if json { print(text, terminator: ""); return }
        print(table(["queue", "waiting", "longest", "available", "busy", "break", "offered", "answered", "abandoned", "service_level"],
                    jsonObjects(text).map { q in
            let agents = q["agents"] as? [String: Any] ?? [:]
            let today = q["today"] as? [String: Any] ?? [:]
            let sl = (today["service_level"] as? NSNumber).map { String(format: "%.0f%%", $0.doubleValue * 100) } ?? "-"
            return [field(q, "name"), field(q, "waiting"), seconds(q["longest_wait_ms"]), field(agents, "available"), field(agents, "busy"),
                    field(agents, "break"), field(today, "offered"), field(today, "answered"), field(today, "abandoned"), sl]
        }))
    }
}

/// `parley reload`: the rules reloaded through the admin API.
struct ReloadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "reload", abstract: "Reload the rules (as SIGHUP) and say what is in force.")
    @OptionGroup var api: AdminOptions

    func run() async throws {
        let text = try await api.request("POST", "/v1/rules/reload")
        guard let r = jsonObjects(text).first else { print(text); return }
        let changed = (r["changed"] as? Bool) == true
        print("rules \(field(r, "version").prefix(12)) in force (generation \(field(r, "generation")))\(changed ? "" : ", unchanged")")
    }
}

/// `parley trace REF`: why a call went where it went.
struct TraceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "trace", abstract: "A call's record and decision trace, from the admin API.")
    @OptionGroup var api: AdminOptions
    @Argument(help: "The call's reference (X-Parley-Call, as parley calls lists it).") var ref: String
    @Flag(help: "Print the API's JSON.") var json = false

    func run() async throws {
        let text = try await api.request("GET", "/v1/calls/\(ref.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? ref)")
        if json { print(text, terminator: ""); return }
        guard let c = jsonObjects(text).first else { print(text); return }
        print("call \(field(c, "ref")): \(field(c, "state")) in \(field(c, "queue")), agent \(field(c, "agent")), code \(field(c, "code")), rules \(field(c, "rules_version").prefix(12))")
        for e in c["trace"] as? [[String: Any]] ?? [] {
            var result = field(e, "result")
            if let r = e["result"] as? [String: Any] { result = "\(field(r, "type")) priority \(field(r, "priority"))" }
            var line = "  \(field(e, "hook")) -> \(result) (\(field(e, "took_us")) us)"
            if let n = e["candidates"] as? NSNumber {
                let considered = (e["considered"] as? [String] ?? []).joined(separator: ", ")
                line += ", \(n) candidates: \(considered)"
            }
            print(line)
            for note in e["notes"] as? [String] ?? [] { print("      \(note)") }
            if let f = e["failed"] as? [String: Any] { print("      FAILED at \(field(f, "where")): \(field(f, "message")); the default was used") }
        }
    }
}
