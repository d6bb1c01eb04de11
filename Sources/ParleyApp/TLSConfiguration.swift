import Foundation
import ParleyTransport
import Yams

/// The `tls:` section of `parley serve`'s configuration (docs/security.md): SIP over TLS
/// listeners for the roles (RFC 3261 section 26, RFC 5630), the certificate they show, and how
/// the certificates of peers Parley connects to are checked. The files are read when the
/// server starts; one that does not load stops start-up naming its key.
///
/// ```yaml
/// tls:
///   certificate: tls/parley.crt   # PEM, the chain leaf first (relative to this file)
///   key: tls/parley.key           # PEM
///   ca: tls/ca.crt                # peers' certificates are checked against it (default: the system's roots)
///   peers: chain                  # chain (default): checked; none: not at all (a lab only)
///   listeners: {distributor: 127.0.0.1:5061, buffer: 127.0.0.1:5073, registration: 127.0.0.1:5063}
///   tunnel: true                  # the tunnel (listeners.tunnel) as secure WebSocket, WSS
/// ```
public struct TLSSettings: Sendable, Equatable {
    public var certificate: String?
    public var key: String?
    public var ca: String?
    public var peers: SIPTLS.PeerCheck = .chain
    /// TLS listeners by role (`distributor`, `buffer`, `registration`).
    public var listeners: [String: String] = [:]
    /// The tunnel as secure WebSocket (WSS) on `listeners.tunnel`.
    public var tunnel = false

    public init() {}

    /// The contexts, from the files (errors name the key).
    public func load() throws -> SIPTLS {
        do {
            return try SIPTLS.load(certificate: certificate, key: key, ca: ca, peers: peers)
        } catch {
            throw ServeError("tls: cannot load the certificate (\(certificate ?? "none")), key (\(key ?? "none")) or CA (\(ca ?? "the system's")): \(error)")
        }
    }
}

extension Reader {
    mutating func tls(_ node: Node, base: String) -> TLSSettings? {
        guard let m = mapping(node, key: "tls") else { return nil }
        let p = "tls."
        allowOnly(m, ["certificate", "key", "ca", "peers", "listeners", "tunnel"], prefix: p)
        var s = TLSSettings()
        if let n = m["tunnel"] {
            if let b = n.bool { s.tunnel = b } else { fail(n, p + "tunnel", "expected true or false, got '\(n.string ?? "?")'") }
        }
        func path(_ k: String) -> String? {
            guard let n = m[k], let v = string(n, key: p + k) else { return nil }
            return v.hasPrefix("/") || base.isEmpty ? v : (base as NSString).appendingPathComponent(v)
        }
        s.certificate = path("certificate")
        s.key = path("key")
        s.ca = path("ca")
        if (s.certificate == nil) != (s.key == nil) {
            fail(node, p + (s.certificate == nil ? "certificate" : "key"), "a TLS listener needs both certificate and key")
        }
        if let n = m["peers"], let v = string(n, key: p + "peers") {
            if let c = SIPTLS.PeerCheck(rawValue: v) { s.peers = c }
            else { fail(n, p + "peers", "expected chain or none, got '\(v)'") }
        }
        if let n = m["listeners"], let lm = mapping(n, key: p + "listeners") {
            allowOnly(lm, ["distributor", "buffer", "registration"], prefix: p + "listeners.")
            for (kn, _) in lm {
                let role = kn.string ?? "?"
                if let a = address(lm[role], key: p + "listeners." + role, required: false) { s.listeners[role] = a }
            }
            if !s.listeners.isEmpty, s.certificate == nil {
                fail(n, p + "listeners", "TLS listeners need tls.certificate and tls.key")
            }
        }
        return s
    }
}
