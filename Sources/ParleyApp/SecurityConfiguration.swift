import Foundation
import ParleyCallCenter
import ParleySIP
import ParleyTransport
import Yams

/// The `security:` section of `parley serve`'s configuration (docs/security.md). Every key is
/// optional: the protections are on without it.
///
/// ```yaml
/// security:
///   handoff_secret: "32 random characters"   # or PARLEY_HANDOFF_SECRET; needed when the roles run in separate processes
///   handoff_window: 30s                      # how far a signed handoff's timestamp may be from this host's clock
///   tunnel_peers: [127.0.0.1, 10.0.0.0/24]   # who may open the tunnel (default: the distributor listener's address)
///   unsigned_handoffs_from: []               # networks whose unsigned `uri` handoffs are taken (a lab's SIPp; off by default)
///   trusted: [198.51.100.7]                  # exempt from the per-source limits (a carrier's SBC); the roles' own addresses always are
///   rate_limit: {requests_per_second: 100, burst: 400, block: 30s}   # per source address; over it: dropped for `block`
///   connections:
///     max: 4096                 # TCP and WebSocket connections each role accepts (at most the file limit less 256)
///     per_source: 128           # from one IP address
///     message_timeout: 20s      # a whole message (a new connection's first included) must arrive within this
///     idle_timeout: 180s        # a connection with nothing in flight is closed after this
///     partial_budget: 64MiB     # bytes of partly received messages, for the whole process
/// ```
public struct SecuritySettings: Sendable, Equatable {
    /// The handoff secret's bytes (never logged, never printed).
    public var handoffSecret: [UInt8]?
    /// Where the secret came from, for start-up messages: the key or the variable's name.
    public var handoffSecretSource: String?
    public var handoffWindow: Duration = .seconds(30)
    /// nil: the distributor listener's address.
    public var tunnelPeers: [IPNetwork]?
    public var connections = ConnectionLimits()
    /// Networks whose unsigned `uri` handoffs the buffer server takes (a lab, a benchmark that
    /// hands off from SIPp): off by default, and never safe where addresses can be spoofed.
    public var unsignedHandoffsFrom: [IPNetwork] = []
    /// Peers exempt from the per-source limits (request rate, amplification bound, connections
    /// per address): a carrier's SBC. The roles' own listener addresses always are.
    public var trusted: [IPNetwork] = []
    /// The per-source request rate and the amplification bound.
    public var sources = SourceGuard.Settings()

    public init() {}

    /// The environment variable the secret may come from.
    public static let secretVariable = "PARLEY_HANDOFF_SECRET"
}

extension SecuritySettings: CustomStringConvertible {
    /// Without the secret.
    public var description: String {
        "SecuritySettings(handoffSecret: \(handoffSecret == nil ? "none" : "set"), window: \(handoffWindow), tunnelPeers: \(tunnelPeers.map { "\($0)" } ?? "default"), connections: \(connections))"
    }
}

extension Reader {
    /// Reads the `security:` mapping (nil node: defaults), the secret from the environment when
    /// the file has none.
    mutating func security(_ node: Node?, environment: [String: String]) -> SecuritySettings {
        var s = SecuritySettings()
        if let env = environment[SecuritySettings.secretVariable], !env.isEmpty {
            if env.utf8.count < HandoffAuthenticator.minimumSecretLength {
                errors.append(ConfigurationError(file: file, line: nil, key: SecuritySettings.secretVariable,
                                                 message: "the handoff secret must be at least \(HandoffAuthenticator.minimumSecretLength) bytes"))
            } else {
                s.handoffSecret = Array(env.utf8)
                s.handoffSecretSource = SecuritySettings.secretVariable
            }
        }
        guard let node, let m = mapping(node, key: "security") else { return s }
        let p = "security."
        allowOnly(m, ["handoff_secret", "handoff_window", "tunnel_peers", "connections", "unsigned_handoffs_from", "trusted", "rate_limit"],
                  prefix: p)
        if let v = m["trusted"], let items = sequence(v, key: p + "trusted") {
            s.trusted = networks(items, key: p + "trusted")
        }
        if let v = m["rate_limit"], let rm = mapping(v, key: p + "rate_limit") {
            let q = p + "rate_limit."
            allowOnly(rm, ["requests_per_second", "burst", "block"], prefix: q)
            if let n = rm["requests_per_second"] {
                if let d = n.float, d >= 1, d.isFinite { s.sources.requestsPerSecond = d }
                else { fail(n, q + "requests_per_second", "expected a number >= 1, got '\(n.string ?? "?")'") }
            }
            if let n = rm["burst"] {
                if let d = n.float, d >= 1, d.isFinite { s.sources.burst = d }
                else { fail(n, q + "burst", "expected a number >= 1, got '\(n.string ?? "?")'") }
            }
            if let d = duration(rm["block"], key: q + "block", positive: true) { s.sources.blockMs = d.ms }
        }
        if let v = m["unsigned_handoffs_from"], let items = sequence(v, key: p + "unsigned_handoffs_from") {
            s.unsignedHandoffsFrom = networks(items, key: p + "unsigned_handoffs_from")
        }
        if let v = m["handoff_secret"], let text = string(v, key: p + "handoff_secret") {
            if text.utf8.count < HandoffAuthenticator.minimumSecretLength {
                // The message never repeats the value.
                fail(v, p + "handoff_secret", "must be at least \(HandoffAuthenticator.minimumSecretLength) bytes (it is \(text.utf8.count))")
            } else {
                s.handoffSecret = Array(text.utf8)
                s.handoffSecretSource = p + "handoff_secret"
            }
        }
        if let d = duration(m["handoff_window"], key: p + "handoff_window", positive: true) {
            if d > .seconds(300) { fail(m["handoff_window"], p + "handoff_window", "at most 5m (a longer window keeps replays possible for longer)") }
            else { s.handoffWindow = d }
        }
        if let v = m["tunnel_peers"], let items = sequence(v, key: p + "tunnel_peers") {
            s.tunnelPeers = networks(items, key: p + "tunnel_peers")
        }
        if let v = m["connections"], let cm = mapping(v, key: p + "connections") {
            let q = p + "connections."
            allowOnly(cm, ["max", "per_source", "message_timeout", "idle_timeout", "partial_budget"], prefix: q)
            if let n = cm["max"] {
                if let i = n.int, i >= 1 { s.connections.maxConnections = i }
                else { fail(n, q + "max", "expected a whole number >= 1, got '\(n.string ?? "?")'") }
            }
            if let n = cm["per_source"] {
                if let i = n.int, i >= 1 { s.connections.maxPerSource = i }
                else { fail(n, q + "per_source", "expected a whole number >= 1, got '\(n.string ?? "?")'") }
            }
            if let d = duration(cm["message_timeout"], key: q + "message_timeout", positive: true) { s.connections.messageTimeout = .milliseconds(d.ms) }
            if let d = duration(cm["idle_timeout"], key: q + "idle_timeout", positive: true) { s.connections.idleTimeout = .milliseconds(d.ms) }
            if let n = cm["partial_budget"] {
                if let b = Self.byteSize(n.string ?? ""), b >= 64 * 1024 { s.connections.partialBudget = b }
                else { fail(n, q + "partial_budget", "expected a size of at least 64KiB such as 64MiB, 512KiB or 1GiB, got '\(n.string ?? "?")'") }
            }
        }
        return s
    }

    /// A list of addresses or networks (`10.0.0.0/8`).
    mutating func networks(_ items: [Node], key: String) -> [IPNetwork] {
        var out: [IPNetwork] = []
        for (i, item) in items.enumerated() {
            guard let text = string(item, key: "\(key)[\(i)]") else { continue }
            if let n = IPNetwork(text) { out.append(n) }
            else { fail(item, "\(key)[\(i)]", "'\(text)' is not an IP address or network (10.0.0.0/8, 2001:db8::/32)") }
        }
        return out
    }

    /// `65536`, `512KiB`, `64MiB`, `1GiB` (KB, MB, GB are taken as the same).
    static func byteSize(_ text: String) -> Int? {
        let t = text.trimmingCharacters(in: .whitespaces)
        for (suffix, scale) in [("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("KB", 1 << 10), ("MB", 1 << 20), ("GB", 1 << 30)]
        where t.hasSuffix(suffix) {
            guard let n = Int(t.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)), n >= 0, n <= (1 << 40) / scale else { return nil }
            return n * scale
        }
        return Int(t).flatMap { $0 >= 0 ? $0 : nil }
    }
}
