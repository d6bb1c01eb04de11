import Foundation
import ParleyCallCenter
import ParleyRules
import ParleyDialog
import ParleySIP
import ParleyTransport
import Yams

/// A role `parley serve` can run.
public enum Role: String, Sendable, CaseIterable {
    case distributor, buffer, registration
}

/// One agent from the configuration.
public struct AgentConfiguration: Sendable, Equatable {
    public var id: String
    public var skills: [String]
    public var contact: URI
    public var attributes: [String: AgentAttribute]
    /// false: starts logged out.
    public var available: Bool
}

/// A treatment system (music on hold, an announcement, an IVR): a SIP endpoint the buffer server
/// connects callers to.
public struct TreatmentConfiguration: Sendable, Equatable {
    /// Its name (`moh`, `announcement`, `ivr`, ...): queues refer to it by this name.
    public var name: String
    public var contact: URI
}

/// `parley serve`'s configuration file (YAML), checked as a whole: every problem is reported
/// with its line and the key it concerns, and a file with any problem does not start.
///
/// ```yaml
/// rules: rules                    # the rule directory, relative to this file
/// roles: [distributor, buffer]    # the roles this process runs
/// listeners:
///   distributor: 127.0.0.1:5060   # UDP and TCP
///   buffer: 127.0.0.1:5070        # UDP and TCP
///   tunnel: 127.0.0.1:5071        # WebSocket, for the tunnel encoding (buffer side)
///   in_process: true              # both roles here: `uri` handoffs pass in memory
/// timers: {no_answer_timeout: 15s, wrap_up: 10s, max_no_answer: 3, break: 60s}
/// skills: [sales, support]
/// records: {database: parley-records.sqlite, retention: 90d}   # database relative to this file; off: no records
///                                                               # retention: off (the default) keeps every record
/// treatments: {moh: "sip:moh@127.0.0.1:5090"}
/// queues:
///   default: {max_wait: 60s, max_length: 20, no_agent: reject, status: 480, treatment: moh, overflow: status}
/// agents:
///   - {id: alice, skills: [sales], contact: "sip:alice@127.0.0.1:5081", attributes: {language: en}}
/// ```
public struct ParleyConfiguration: Sendable {
    public var path: String
    public var rulesDirectory: String
    public var roles: [Role]
    public var distributorListen: String
    public var bufferListen: String
    public var tunnelListen: String?
    /// `listeners.in_process`: with both roles in this process, `uri` handoffs to agents pass
    /// from distributor to buffer server in memory rather than through the buffer listener.
    public var handoffInProcess = true
    public var skills: [String]
    public var agents: [AgentConfiguration]
    public var noAnswerTimeout: Duration = .seconds(15)
    public var wrapUp: Duration = .seconds(10)
    public var maxNoAnswer = 3
    public var breakTime: Duration = .seconds(60)
    public var queueTimeout: Duration = .seconds(60)
    public var heartbeat: Duration = .seconds(5)
    public var probe: Duration? = .seconds(30)
    public var staleAfter: Duration = .seconds(15)
    public var t1: Duration = .milliseconds(500)
    public var logLevel = "info"
    /// The SQLite file for call records and the queue log (`records.database`); nil: `off`.
    /// Default: `parley-records.sqlite` beside the configuration file.
    public var recordsDatabase: String?
    /// How long call records and their queue-log lines are kept (`records.retention`); nil
    /// (`off`, the default): for ever.
    public var recordsRetention: Duration?
    /// The shortest retention accepted: a call still in progress must not lose its record.
    public static let minimumRetention: Duration = .seconds(3_600)
    /// The registration role (`registration:`), nil when the file has no such section.
    public var registration: RegistrationSettings?
    /// Treatment systems, in the order the file lists them.
    public var treatments: [TreatmentConfiguration] = []
    /// Queue behaviour per call type; `defaultQueue` for every other type.
    public var queues: [String: QueuePolicy] = [:]
    public var defaultQueue = QueuePolicy()
    /// The `security:` section (handoff secret, tunnel peers, connection limits): defaults
    /// when the file has none (docs/security.md).
    public var security = SecuritySettings()
    /// The `admin:` section: the admin API's listener and tokens (nil: no admin listener).
    public var admin: AdminSettings?
    /// Where "today" starts for the admin API's figures (an IANA time zone name).
    public var timezone = "UTC"
    /// The `tls:` section: SIP over TLS listeners and certificates (nil: no TLS).
    public var tls: TLSSettings?

    /// The buffer server's URI (handoffs go to it, the agent id appended).
    public var bufferURI: SIPURI {
        let (host, port) = Self.split(bufferListen)
        return SIPURI(user: "buffer", host: (try? SIPHost.parse(host)) ?? .name(host), port: port)
    }

    public var distributorURI: SIPURI {
        let (host, port) = Self.split(distributorListen)
        return SIPURI(user: "distributor", host: (try? SIPHost.parse(host)) ?? .name(host), port: port)
    }

    /// The record database's file name when the configuration names none.
    public static let defaultRecordsFile = "parley-records.sqlite"

    static func split(_ listen: String) -> (String, Int) {
        if let a = try? parseSocketAddress(listen) {
            let ip = a.ipAddress ?? "127.0.0.1"
            return (a.protocol == .inet6 ? "[\(ip)]" : ip, a.port ?? 5060)
        }
        return (listen, 5060)
    }
}

/// A problem with a configuration file: where, which key, what.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable, Equatable {
    public var file: String
    public var line: Int?
    public var key: String
    public var message: String

    public var description: String {
        let place = line.map { "\(file):\($0)" } ?? file
        return key.isEmpty ? "\(place): \(message)" : "\(place): \(key): \(message)"
    }
}

/// Every problem found in one file.
public struct ConfigurationErrors: Error, CustomStringConvertible, Sendable {
    public var errors: [ConfigurationError]
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}

extension ParleyConfiguration {
    /// Reads and checks a configuration file.
    public static func load(path: String) throws(ConfigurationErrors) -> ParleyConfiguration {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigurationErrors(errors: [ConfigurationError(file: path, line: nil, key: "", message: "cannot read the file: \(error.localizedDescription)")])
        }
        return try parse(text, path: path)
    }

    /// Parses configuration text (`path` names it in messages and anchors relative paths).
    public static func parse(_ text: String, path: String,
                             environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigurationErrors) -> ParleyConfiguration {
        var r = Reader(file: path)
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let e as YamlError {
            throw ConfigurationErrors(errors: [Reader.yamlError(e, file: path)])
        } catch {
            throw ConfigurationErrors(errors: [ConfigurationError(file: path, line: nil, key: "", message: "\(error)")])
        }
        guard let root, let top = r.mapping(root, key: "") else {
            throw ConfigurationErrors(errors: r.errors.isEmpty
                ? [ConfigurationError(file: path, line: nil, key: "", message: "the file is empty; it needs at least listeners and agents")]
                : r.errors)
        }
        let base = (path as NSString).deletingLastPathComponent
        var c = ParleyConfiguration(path: path, rulesDirectory: "rules", roles: Role.allCases, distributorListen: "",
                                    bufferListen: "", tunnelListen: nil, skills: [], agents: [])
        r.allowOnly(top, ["rules", "roles", "listeners", "timers", "skills", "agents", "log_level", "records",
                          "treatments", "queues", "registration", "security", "tls", "admin", "timezone"], prefix: "")
        if let n = top["tls"] { c.tls = r.tls(n, base: base) }
        if let n = top["admin"] { c.admin = r.admin(n, environment: environment) }
        c.security = r.security(top["security"], environment: environment)
        c.recordsDatabase = base.isEmpty ? Self.defaultRecordsFile : (base as NSString).appendingPathComponent(Self.defaultRecordsFile)
        if let n = top["records"], let m = r.mapping(n, key: "records") {
            r.allowOnly(m, ["database", "retention"], prefix: "records.")
            if let rn = m["retention"], !(rn.string == "off" || rn.bool == false),
               let d = r.duration(rn, key: "records.retention", positive: true) {
                if d < Self.minimumRetention {
                    r.fail(rn, "records.retention", "must be at least 1h (a call still in progress would lose its record), got '\(rn.string ?? "")'")
                } else {
                    c.recordsRetention = d
                }
            }
            if let dn = m["database"] {
                if dn.string == "off" || dn.bool == false {
                    c.recordsDatabase = nil
                } else if let s = r.string(dn, key: "records.database") {
                    let full = s.hasPrefix("/") || base.isEmpty ? s : (base as NSString).appendingPathComponent(s)
                    var isDir: ObjCBool = false
                    let parent = (full as NSString).deletingLastPathComponent
                    if s.hasSuffix("/") || (FileManager.default.fileExists(atPath: full, isDirectory: &isDir) && isDir.boolValue) {
                        r.fail(dn, "records.database", "'\(s)' is a directory; name the database file in it (or off)")
                    } else if !parent.isEmpty, !(FileManager.default.fileExists(atPath: parent, isDirectory: &isDir) && isDir.boolValue) {
                        r.fail(dn, "records.database", "the directory of '\(s)' (\(parent)) does not exist")
                    } else {
                        c.recordsDatabase = full
                    }
                }
            }
        }

        if let n = top["rules"], let s = r.string(n, key: "rules") {
            c.rulesDirectory = s.hasPrefix("/") || base.isEmpty ? s : (base as NSString).appendingPathComponent(s)
        }
        if let n = top["timezone"], let s = r.string(n, key: "timezone") {
            if TimeZone(identifier: s) != nil { c.timezone = s }
            else { r.fail(n, "timezone", "'\(s)' is not a time zone name such as UTC, Europe/Paris or America/New_York") }
        }
        if let n = top["log_level"], let s = r.string(n, key: "log_level") {
            if ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(s) { c.logLevel = s }
            else { r.fail(n, "log_level", "'\(s)' is not a log level (trace, debug, info, notice, warning, error, critical)") }
        }
        if let n = top["roles"], let items = r.sequence(n, key: "roles") {
            var roles: [Role] = []
            for (i, item) in items.enumerated() {
                guard let s = r.string(item, key: "roles[\(i)]") else { continue }
                if let role = Role(rawValue: s) { roles.append(role) }
                else { r.fail(item, "roles[\(i)]", "unknown role '\(s)' (distributor, buffer or registration)") }
            }
            if roles.isEmpty, r.errors.isEmpty { r.fail(n, "roles", "names no role") }
            c.roles = roles
        }

        if let n = top["listeners"], let m = r.mapping(n, key: "listeners") {
            r.allowOnly(m, ["distributor", "buffer", "tunnel", "in_process"], prefix: "listeners.")
            if let v = m["in_process"] {
                if let b = v.bool { c.handoffInProcess = b }
                else { r.fail(v, "listeners.in_process", "expected true or false, got '\(v.string ?? "?")'") }
            }
            c.distributorListen = r.address(m["distributor"], key: "listeners.distributor", required: true) ?? ""
            c.bufferListen = r.address(m["buffer"], key: "listeners.buffer", required: true) ?? ""
            c.tunnelListen = r.address(m["tunnel"], key: "listeners.tunnel", required: false)
        } else if r.errors.isEmpty {
            r.missing("listeners", "the addresses of the distributor and the buffer server")
        }

        if let n = top["timers"], let m = r.mapping(n, key: "timers") {
            r.allowOnly(m, ["no_answer_timeout", "wrap_up", "max_no_answer", "break", "queue_timeout", "heartbeat", "probe",
                            "stale_after", "t1"], prefix: "timers.")
            if let d = r.duration(m["no_answer_timeout"], key: "timers.no_answer_timeout", positive: true) { c.noAnswerTimeout = d }
            if let d = r.duration(m["wrap_up"], key: "timers.wrap_up", positive: false) { c.wrapUp = d }
            if let v = m["max_no_answer"] {
                if let i = v.int, i >= 0 { c.maxNoAnswer = i } else { r.fail(v, "timers.max_no_answer", "expected a whole number >= 0 (0: never), got '\(v.string ?? "?")'") }
            }
            if let d = r.duration(m["break"], key: "timers.break", positive: false) { c.breakTime = d }
            if let d = r.duration(m["queue_timeout"], key: "timers.queue_timeout", positive: true) { c.queueTimeout = d }
            if let d = r.duration(m["heartbeat"], key: "timers.heartbeat", positive: true) { c.heartbeat = d }
            if let v = m["probe"] {
                if v.string == "off" || v.bool == false { c.probe = nil }
                else if let d = r.duration(v, key: "timers.probe", positive: true) { c.probe = d }
            }
            if let d = r.duration(m["stale_after"], key: "timers.stale_after", positive: true) { c.staleAfter = d }
            if let d = r.duration(m["t1"], key: "timers.t1", positive: true) { c.t1 = d }
        }

        if let n = top["skills"], let items = r.sequence(n, key: "skills") {
            for (i, item) in items.enumerated() {
                guard let s = r.string(item, key: "skills[\(i)]") else { continue }
                if c.skills.contains(s) { r.fail(item, "skills[\(i)]", "skill '\(s)' is listed twice") }
                c.skills.append(s)
            }
        }

        if let n = top["agents"], let items = r.sequence(n, key: "agents") {
            var seen: Set<String> = []
            for (i, item) in items.enumerated() {
                let k = "agents[\(i)]"
                guard let m = r.mapping(item, key: k) else { continue }
                r.allowOnly(m, ["id", "skills", "contact", "attributes", "available"], prefix: k + ".")
                guard let idNode = m["id"] else { r.fail(item, k + ".id", "missing: every agent needs an id"); continue }
                guard let id = r.string(idNode, key: k + ".id") else { continue }
                if !HandoffWire.isValidAgentID(id) {
                    r.fail(idNode, k + ".id", "'\(id)' may hold only letters, digits, '-', '_' and '.'")
                } else if !seen.insert(id).inserted {
                    r.fail(idNode, k + ".id", "agent '\(id)' is configured twice")
                }
                var skills: [String] = []
                if let s = m["skills"], let list = r.sequence(s, key: k + ".skills") {
                    for (j, sk) in list.enumerated() {
                        guard let name = r.string(sk, key: "\(k).skills[\(j)]") else { continue }
                        if !c.skills.isEmpty, !c.skills.contains(name) {
                            r.fail(sk, "\(k).skills[\(j)]", "'\(name)' is not one of the skills (\(c.skills.joined(separator: ", ")))")
                        }
                        skills.append(name)
                    }
                }
                var contact: URI?
                if let cn = m["contact"], let s = r.string(cn, key: k + ".contact") {
                    if case .sip(let u)? = try? URI.parse(s), Resolver.destination(for: .sip(u)) != nil {
                        contact = .sip(u)
                    } else {
                        r.fail(cn, k + ".contact", "'\(s)' is not a SIP URI with a reachable host (sip:user@host:port)")
                    }
                } else if m["contact"] == nil {
                    r.fail(item, k + ".contact", "missing: where the agent's phone is (sip:user@host:port)")
                }
                var attrs: [String: AgentAttribute] = [:]
                if let an = m["attributes"], let am = r.mapping(an, key: k + ".attributes") {
                    for (kn, vn) in am {
                        let name = kn.string ?? "?"
                        switch vn {
                        case .scalar(let sc):
                            if sc.style == .plain, let b = vn.bool { attrs[name] = .bool(b) }
                            else if sc.style == .plain, let d = vn.float, vn.int != nil || sc.string.contains(".") { attrs[name] = .number(d) }
                            else { attrs[name] = .string(sc.string) }
                        default:
                            r.fail(vn, "\(k).attributes.\(name)", "expected a string, number or boolean")
                        }
                    }
                }
                var available = true
                if let av = m["available"] {
                    if let b = av.bool { available = b } else { r.fail(av, k + ".available", "expected true or false") }
                }
                if let contact {
                    c.agents.append(AgentConfiguration(id: id, skills: skills, contact: contact, attributes: attrs, available: available))
                }
            }
        } else if r.errors.isEmpty {
            r.missing("agents", "at least one agent (id, skills, contact)")
        }

        c.defaultQueue.maxWait = c.queueTimeout
        if let n = top["treatments"], let m = r.mapping(n, key: "treatments") {
            for (kn, vn) in m {
                let name = kn.string ?? "?"
                let k = "treatments." + name
                if !HandoffWire.isValidAgentID(name) {
                    r.fail(kn, k, "a treatment's name may hold only letters, digits, '-', '_' and '.'")
                    continue
                }
                guard let s = r.string(vn, key: k) else { continue }
                if case .sip(let u)? = try? URI.parse(s), Resolver.destination(for: .sip(u)) != nil {
                    c.treatments.append(TreatmentConfiguration(name: name, contact: .sip(u)))
                } else {
                    r.fail(vn, k, "'\(s)' is not a SIP URI with a reachable host (sip:user@host:port)")
                }
            }
        }
        if let n = top["queues"], let m = r.mapping(n, key: "queues") {
            var policies: [(String, Node, QueuePolicy)] = []
            for (kn, vn) in m {
                let name = kn.string ?? "?"
                if name != "default", !c.skills.isEmpty, !c.skills.contains(name) {
                    r.fail(kn, "queues." + name, "'\(name)' is not one of the skills (\(c.skills.joined(separator: ", "))) nor 'default'")
                }
                policies.append((name, vn, QueuePolicy(maxWait: c.queueTimeout)))
            }
            // `default` first: the other queues start from it.
            policies = policies.filter { $0.0 == "default" } + policies.filter { $0.0 != "default" }
            for (name, node, start) in policies {
                var p = name == "default" ? start : c.defaultQueue
                r.queuePolicy(node, key: "queues." + name, into: &p, treatments: Set(c.treatments.map(\.name)))
                if name == "default" { c.defaultQueue = p } else { c.queues[name] = p }
            }
        }

        if let n = top["registration"] {
            c.registration = r.registration(n, base: base)
            // Agents register as themselves: a password for someone who is not an agent is a mistake.
            let ids = Set(c.agents.map(\.id))
            if let am = n["agent_contacts"], case .mapping(let m) = am {
                for (kn, _) in m where !ids.contains(kn.string ?? "") {
                    r.fail(kn, "registration.agent_contacts.\(kn.string ?? "?")", "'\(kn.string ?? "?")' is not one of the agents")
                }
            }
            if let cm = n["credentials"], case .mapping(let m) = cm {
                for (kn, _) in m where !ids.contains(kn.string ?? "") {
                    r.fail(kn, "registration.credentials.\(kn.string ?? "?")", "'\(kn.string ?? "?")' is not one of the agents")
                }
            }
        }
        if top["roles"] == nil {
            c.roles = [.distributor, .buffer] + (top["registration"] != nil ? [.registration] : [])
        } else if c.roles.contains(.registration), top["registration"] == nil {
            r.fail(top["roles"], "roles", "names the registration role but the file has no registration section")
        }

        if !r.errors.isEmpty { throw ConfigurationErrors(errors: r.errors) }
        return c
    }

    /// The agents as state machines (for the distributor).
    public func agentMachines(now: Int64) -> [AgentStateMachine] {
        let timers = AgentTimers(wrapUpMs: wrapUp.ms, maxNoAnswer: maxNoAnswer, breakMs: breakTime.ms, staleMs: staleAfter.ms)
        return agents.map {
            AgentStateMachine(id: $0.id, skills: $0.skills, contact: $0.contact.description, attrs: $0.attributes,
                              timers: timers, available: $0.available, now: now)
        }
    }
}

extension Duration {
    var ms: Int64 {
        let c = components
        return c.seconds * 1000 + c.attoseconds / 1_000_000_000_000_000
    }
}

extension Reader {
    /// One queue's settings over `policy` (keys left out keep their value).
    mutating func queuePolicy(_ node: Node, key k: String, into policy: inout QueuePolicy, treatments: Set<String>) {
        guard let m = mapping(node, key: k) else { return }
        allowOnly(m, ["max_wait", "max_length", "no_agent", "status", "treatment", "overflow", "service_level"], prefix: k + ".")
        if let d = duration(m["max_wait"], key: k + ".max_wait", positive: true) { policy.maxWait = d }
        if let d = duration(m["service_level"], key: k + ".service_level", positive: true) { policy.serviceLevel = d }
        if let v = m["max_length"] {
            if v.string == "unlimited" || v.string == "off" { policy.maxLength = nil }
            else if let i = v.int, i >= 1 { policy.maxLength = i }
            else { fail(v, k + ".max_length", "expected a whole number >= 1 (or unlimited), got '\(v.string ?? "?")'") }
        }
        if let v = m["no_agent"], let s = string(v, key: k + ".no_agent") {
            if let na = QueuePolicy.NoAgent(rawValue: s) { policy.noAgent = na }
            else { fail(v, k + ".no_agent", "'\(s)' is neither reject (answer with status) nor queue (wait for an agent to log in)") }
        }
        if let v = m["status"] {
            if let i = v.int, (300...699).contains(i) { policy.status = i }
            else { fail(v, k + ".status", "expected a final SIP status from 300 to 699, got '\(v.string ?? "?")'") }
        }
        if let v = m["treatment"], let s = string(v, key: k + ".treatment") {
            if s == "none" || s == "off" { policy.treatment = nil }
            else if treatments.contains(s) { policy.treatment = s }
            else { fail(v, k + ".treatment", "'\(s)' is not one of the treatments (\(treatments.sorted().joined(separator: ", ")))") }
        }
        if let v = m["overflow"], let s = string(v, key: k + ".overflow") {
            if s == "status" { policy.overflow = .status }
            else if treatments.contains(s) { policy.overflow = .treatment(s) }
            else { fail(v, k + ".overflow", "'\(s)' is neither status nor one of the treatments (\(treatments.sorted().joined(separator: ", ")))") }
        }
    }
}

/// Walks the YAML tree collecting problems (it does not stop at the first).
struct Reader {
    let file: String
    var errors: [ConfigurationError] = []

    init(file: String) { self.file = file }

    mutating func fail(_ node: Node?, _ key: String, _ message: String) {
        errors.append(ConfigurationError(file: file, line: node?.mark?.line, key: key, message: message))
    }

    mutating func missing(_ key: String, _ what: String) {
        errors.append(ConfigurationError(file: file, line: nil, key: key, message: "missing: \(what)"))
    }

    static func yamlError(_ e: YamlError, file: String) -> ConfigurationError {
        switch e {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return ConfigurationError(file: file, line: mark.line, key: "", message: "not valid YAML: \(problem)")
        default:
            return ConfigurationError(file: file, line: nil, key: "", message: "not valid YAML: \(e)")
        }
    }

    mutating func mapping(_ node: Node, key: String) -> Node.Mapping? {
        if case .mapping(let m) = node { return m }
        fail(node, key, "expected a mapping (key: value lines)")
        return nil
    }

    mutating func sequence(_ node: Node, key: String) -> [Node]? {
        if case .sequence(let s) = node { return Array(s) }
        fail(node, key, "expected a list")
        return nil
    }

    mutating func string(_ node: Node, key: String) -> String? {
        if case .scalar(let s) = node, !s.string.isEmpty { return s.string }
        fail(node, key, "expected a non-empty string")
        return nil
    }

    mutating func allowOnly(_ m: Node.Mapping, _ names: Set<String>, prefix: String) {
        for (k, _) in m {
            let name = k.string ?? "?"
            if !names.contains(name) {
                fail(k, prefix + name, "unknown key (expected one of: \(names.sorted().joined(separator: ", ")))")
            }
        }
    }

    mutating func address(_ node: Node?, key: String, required: Bool) -> String? {
        guard let node else {
            if required { missing(key, "an address, IP:PORT or [IPv6]:PORT") }
            return nil
        }
        guard let s = string(node, key: key) else { return nil }
        do {
            _ = try parseSocketAddress(s)
            return s
        } catch {
            fail(node, key, "'\(s)' is not an address IP:PORT or [IPv6]:PORT (\(error))")
            return nil
        }
    }

    /// A duration: a number of seconds, or a string with a unit (`500ms`, `15s`, `2m`, `12h`, `90d`).
    mutating func duration(_ node: Node?, key: String, positive: Bool) -> Duration? {
        guard let node else { return nil }
        let text = node.string ?? ""
        var value: Double?
        if let d = Double(text) {
            value = d
        } else {
            for (suffix, scale) in [("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3_600.0), ("d", 86_400.0)] where text.hasSuffix(suffix) {
                if let d = Double(text.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)) { value = d * scale }
                break
            }
        }
        // Over 10^12 s (30,000 years) is a mistake, and would overflow milliseconds.
        guard let v = value, v >= 0, v.isFinite, v <= 1e12, !(positive && v == 0) else {
            fail(node, key, "expected a duration such as 15, 15s, 500ms or 2m\(positive ? " (more than 0)" : ""), got '\(text)'")
            return nil
        }
        return .milliseconds(Int64((v * 1000).rounded()))
    }
}
