import Foundation
import NIOCore
import ParleyTransport
import Yams

/// The `admin:` section: the admin API, event stream, metrics and wallboard (docs/admin.md).
///
/// ```yaml
/// admin:
///   listen: 127.0.0.1:8080     # HTTP/1.1; off when the section is left out
///   token: "at least 16 characters"        # may do everything; or PARLEY_ADMIN_TOKEN
///   read_token: "at least 16 characters"   # GET only (a wallboard on a TV); or PARLEY_ADMIN_READ_TOKEN
///   metrics_open: false        # true: /metrics needs no token (a Prometheus on a trusted network)
///   idle_timeout: 30s          # a connection with no request in progress is closed after this
/// ```
public struct AdminSettings: Sendable, Equatable {
    public var listen: String
    /// The tokens' bytes (never logged, never printed).
    public var token: [UInt8]?
    public var readToken: [UInt8]?
    public var metricsOpen = false
    /// A connection with no request in progress (nothing sent, half a request head, nothing
    /// after its last response) is closed after this; event streams are requests in progress.
    public var idleTimeout: Duration = .seconds(30)

    public init(listen: String) {
        self.listen = listen
    }

    public static let tokenVariable = "PARLEY_ADMIN_TOKEN"
    public static let readTokenVariable = "PARLEY_ADMIN_READ_TOKEN"
    public static let minimumTokenLength = 16
}

extension AdminSettings: CustomStringConvertible {
    /// Without the tokens.
    public var description: String {
        "AdminSettings(listen: \(listen), token: \(token == nil ? "none" : "set"), readToken: \(readToken == nil ? "none" : "set"), metricsOpen: \(metricsOpen), idleTimeout: \(idleTimeout))"
    }
}

extension Reader {
    /// Reads the `admin:` mapping (nil: no admin listener); a token from the environment wins
    /// over the file's.
    mutating func admin(_ node: Node, environment: [String: String]) -> AdminSettings? {
        guard let m = mapping(node, key: "admin") else { return nil }
        let p = "admin."
        allowOnly(m, ["listen", "token", "read_token", "metrics_open", "idle_timeout"], prefix: p)
        guard let listen = address(m["listen"], key: p + "listen", required: true) else { return nil }
        var s = AdminSettings(listen: listen)
        s.token = adminToken(m["token"], key: p + "token", variable: AdminSettings.tokenVariable, environment: environment)
        s.readToken = adminToken(m["read_token"], key: p + "read_token", variable: AdminSettings.readTokenVariable, environment: environment)
        if let n = m["metrics_open"] {
            if let b = n.bool { s.metricsOpen = b } else { fail(n, p + "metrics_open", "expected true or false, got '\(n.string ?? "?")'") }
        }
        if let d = duration(m["idle_timeout"], key: p + "idle_timeout", positive: true) { s.idleTimeout = d }
        if let t = s.token, let r = s.readToken, t == r {
            fail(m["read_token"] ?? node, p + "read_token", "must differ from admin.token (the read token is the one shown on wallboards)")
        }
        if s.token == nil, let a = try? parseSocketAddress(listen), !Self.isLoopback(a) {
            fail(m["listen"] ?? node, p + "token",
                 "missing: the admin listener \(listen) is not on a loopback address, so it needs a token (admin.token or \(AdminSettings.tokenVariable))")
        }
        return s
    }

    private mutating func adminToken(_ node: Node?, key: String, variable: String, environment: [String: String]) -> [UInt8]? {
        if let env = environment[variable], !env.isEmpty {
            guard env.utf8.count >= AdminSettings.minimumTokenLength else {
                errors.append(ConfigurationError(file: file, line: nil, key: variable,
                                                 message: "must be at least \(AdminSettings.minimumTokenLength) bytes (it is \(env.utf8.count))"))
                return nil
            }
            return Array(env.utf8)
        }
        guard let node, let text = string(node, key: key) else { return nil }
        guard text.utf8.count >= AdminSettings.minimumTokenLength else {
            // The message never repeats the value.
            fail(node, key, "must be at least \(AdminSettings.minimumTokenLength) bytes (it is \(text.utf8.count))")
            return nil
        }
        return Array(text.utf8)
    }

    static func isLoopback(_ a: SocketAddress) -> Bool {
        guard let ip = a.ipAddress else { return false }
        return ip.hasPrefix("127.") || ip == "::1"
    }
}
