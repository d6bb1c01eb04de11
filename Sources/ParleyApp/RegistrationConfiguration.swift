import Foundation
import ParleyRegistration
import ParleySIP
import ParleyTransport
import Yams

/// The `registration:` section of `parley serve`'s configuration: the registration role (agents
/// register through Parley; Parley fans the contact-center addresses out to the upstream
/// registrar). See docs/registration.md.
///
/// ```yaml
/// registration:
///   listen: 127.0.0.1:5062           # agents REGISTER here (UDP and TCP); also the Path Parley adds
///   domain: cc.example.com           # addresses of record: sip:alice@DOMAIN, sip:sales@DOMAIN
///   realm: cc.example.com            # digest realm for agents (default: the domain)
///   algorithm: SHA-256               # SHA-256 (default), MD5, or a list offered in order: [SHA-256, MD5]
///   upstream: 127.0.0.1:5080         # the network's registrar
///   upstream_transport: udp          # or tcp (a 200 listing hundreds of bindings outgrows UDP)
///   upstream_uri: sip:cc.example.com # Request-URI of the REGISTERs sent there (default sip:DOMAIN)
///   upstream_user: parley            # Parley's credentials there (answers its 401/407)
///   upstream_password: secret
///   expires: 300                     # the fan-out bindings' expiry, seconds
///   min_expires: 60                  # shorter agent registrations get 423
///   max_expires: 3600                # longer ones are cut to this
///   upstream_timeout: 5s             # an upstream silent this long: the agent gets 504
///   reorder_interval: 1s             # how often agent states and rules are looked at again
///   database: parley-registrations.sqlite   # relative to the file; off: memory only
///   credentials: {alice: alice-secret, bob: bob-secret}
///   contacts: [10.1.0.0/16, phones.example.com]   # where any agent may register a phone, beside the REGISTER's source address
///   agent_contacts: {alice: [192.0.2.10]}          # and where one agent may
///   forward_from: [198.51.100.0/24]    # who else may send calls to agents through this listener (beside the upstream, buffer and distributor)
/// ```
public struct RegistrationSettings: Sendable, Equatable {
    public var listen: String
    public var domain: String
    public var realm: String
    /// Offered to agents in this order (RFC 8760: SHA-256 first); MD5 only where configured.
    public var algorithms: [DigestAlgorithm] = [.sha256]
    public var upstream: String
    public var upstreamTransport: SIPTransportKind = .udp
    public var upstreamURI: String
    public var upstreamUser: String?
    public var upstreamPassword: String?
    public var expires: UInt32 = 300
    public var minExpires: UInt32 = 60
    public var maxExpires: UInt32 = 3600
    public var upstreamTimeout: Duration = .seconds(5)
    public var reorderInterval: Duration = .seconds(1)
    /// nil: `off` (memory only).
    public var database: String?
    public var credentials: [String: String] = [:]
    /// Where agents may register their phones beside the address their REGISTER came from.
    public var contacts = ContactPolicy()
    /// Who else may send calls to agents through the registration listener (beside the
    /// upstream registrar's, the buffer server's and the distributor's addresses).
    public var forwardFrom: [IPNetwork] = []

    /// The database file's name when none is given.
    public static let defaultDatabaseFile = "parley-registrations.sqlite"
}

extension Reader {
    /// Reads the `registration:` mapping; problems are collected like every other key's.
    mutating func registration(_ node: Node, base: String) -> RegistrationSettings? {
        guard let m = mapping(node, key: "registration") else { return nil }
        let p = "registration."
        allowOnly(m, ["listen", "domain", "realm", "algorithm", "upstream", "upstream_transport", "upstream_uri", "upstream_user", "upstream_password",
                      "expires", "min_expires", "max_expires", "upstream_timeout", "reorder_interval", "database", "credentials",
                      "contacts", "agent_contacts", "forward_from"],
                  prefix: p)
        let listen = address(m["listen"], key: p + "listen", required: true)
        let upstream = address(m["upstream"], key: p + "upstream", required: true)
        var domain: String?
        if let n = m["domain"], let s = string(n, key: p + "domain") {
            if (try? SIPHost.parse(s)) != nil { domain = s } else { fail(n, p + "domain", "'\(s)' is not a host name or IP address") }
        } else if m["domain"] == nil {
            missing(p + "domain", "the domain of the addresses of record (sip:sales@DOMAIN)")
        }
        // Every other key is checked even when one of these three is wrong.
        let complete = listen != nil && upstream != nil && domain != nil
        var s = RegistrationSettings(listen: listen ?? "", domain: domain ?? "", realm: domain ?? "", upstream: upstream ?? "",
                                     upstreamURI: "sip:\(domain ?? "invalid")")
        if let n = m["realm"], let v = string(n, key: p + "realm") { s.realm = v }
        if let n = m["algorithm"] {
            let items: [Node]
            if case .sequence(let seq) = n { items = Array(seq) } else { items = [n] }
            var list: [DigestAlgorithm] = []
            for item in items {
                if let v = item.string, let a = DigestAlgorithm(parameter: v) { if !list.contains(a) { list.append(a) } }
                else { fail(item, p + "algorithm", "expected MD5 or SHA-256, got '\(item.string ?? "?")'") }
            }
            if !list.isEmpty { s.algorithms = list }
        }
        if let n = m["upstream_transport"] {
            switch n.string?.lowercased() {
            case "udp": s.upstreamTransport = .udp
            case "tcp": s.upstreamTransport = .tcp
            case "tls": s.upstreamTransport = .tls
            default: fail(n, p + "upstream_transport", "expected udp, tcp or tls, got '\(n.string ?? "?")'")
            }
        }
        if let n = m["upstream_uri"], let v = string(n, key: p + "upstream_uri") {
            if case .sip? = try? URI.parse(v) { s.upstreamURI = v } else { fail(n, p + "upstream_uri", "'\(v)' is not a SIP URI") }
        }
        if let n = m["upstream_user"], let v = string(n, key: p + "upstream_user") { s.upstreamUser = v }
        if let n = m["upstream_password"], let v = string(n, key: p + "upstream_password") { s.upstreamPassword = v }
        if (s.upstreamUser == nil) != (s.upstreamPassword == nil) {
            fail(m["upstream_user"] ?? m["upstream_password"], s.upstreamUser == nil ? p + "upstream_user" : p + "upstream_password",
                 "upstream_user and upstream_password go together")
        }
        func seconds(_ key: String, _ range: ClosedRange<UInt32>) -> UInt32? {
            guard let n = m[key] else { return nil }
            if let i = n.int, i >= Int(range.lowerBound), i <= Int(range.upperBound) { return UInt32(i) }
            fail(n, p + key, "expected whole seconds from \(range.lowerBound) to \(range.upperBound), got '\(n.string ?? "?")'")
            return nil
        }
        if let v = seconds("expires", 10...86_400) { s.expires = v }
        if let v = seconds("min_expires", 1...86_400) { s.minExpires = v }
        if let v = seconds("max_expires", 1...86_400) { s.maxExpires = v }
        if s.minExpires > s.maxExpires {
            fail(m["min_expires"] ?? m["max_expires"], p + "min_expires", "is more than max_expires (\(s.minExpires) > \(s.maxExpires))")
        }
        if let d = duration(m["upstream_timeout"], key: p + "upstream_timeout", positive: true) { s.upstreamTimeout = d }
        if let d = duration(m["reorder_interval"], key: p + "reorder_interval", positive: true) { s.reorderInterval = d }
        s.database = base.isEmpty ? RegistrationSettings.defaultDatabaseFile
            : (base as NSString).appendingPathComponent(RegistrationSettings.defaultDatabaseFile)
        if let dn = m["database"] {
            if dn.string == "off" || dn.bool == false {
                s.database = nil
            } else if let v = string(dn, key: p + "database") {
                let full = v.hasPrefix("/") || base.isEmpty ? v : (base as NSString).appendingPathComponent(v)
                var isDir: ObjCBool = false
                let parent = (full as NSString).deletingLastPathComponent
                if v.hasSuffix("/") || (FileManager.default.fileExists(atPath: full, isDirectory: &isDir) && isDir.boolValue) {
                    fail(dn, p + "database", "'\(v)' is a directory; name the database file in it (or off)")
                } else if !parent.isEmpty, !(FileManager.default.fileExists(atPath: parent, isDirectory: &isDir) && isDir.boolValue) {
                    fail(dn, p + "database", "the directory of '\(v)' (\(parent)) does not exist")
                } else {
                    s.database = full
                }
            }
        }
        if let n = m["credentials"], let cm = mapping(n, key: p + "credentials") {
            for (kn, vn) in cm {
                let name = kn.string ?? "?"
                guard let password = string(vn, key: p + "credentials." + name) else { continue }
                s.credentials[name] = password
            }
        } else if m["credentials"] == nil {
            missing(p + "credentials", "the agents' passwords (agent id: password)")
        }
        if let n = m["contacts"], let items = sequence(n, key: p + "contacts") {
            s.contacts.all = allowedContacts(items, key: p + "contacts")
        }
        if let n = m["forward_from"], let items = sequence(n, key: p + "forward_from") {
            s.forwardFrom = networks(items, key: p + "forward_from")
        }
        if let n = m["agent_contacts"], let am = mapping(n, key: p + "agent_contacts") {
            for (kn, vn) in am {
                let name = kn.string ?? "?"
                guard let items = sequence(vn, key: p + "agent_contacts." + name) else { continue }
                s.contacts.agents[name] = allowedContacts(items, key: p + "agent_contacts." + name)
            }
        }
        return complete ? s : nil
    }

    /// Networks (`10.0.0.0/8`, an address) and domains (`phones.example.com`: it and its subdomains).
    mutating func allowedContacts(_ items: [Node], key: String) -> ContactPolicy.Allowed {
        var allowed = ContactPolicy.Allowed()
        for (i, item) in items.enumerated() {
            guard let text = string(item, key: "\(key)[\(i)]") else { continue }
            if let n = IPNetwork(text) {
                allowed.networks.append(n)
            } else if case .name(let name)? = try? SIPHost.parse(text), name.contains(".") || name == "localhost" {
                allowed.domains.append(name.lowercased())
            } else {
                fail(item, "\(key)[\(i)]", "'\(text)' is neither a network (10.0.0.0/8, an address) nor a domain")
            }
        }
        return allowed
    }
}

extension ParleyConfiguration {
    /// The registration role's configuration (agents' skills and treatments from the rest of the file).
    public func registrationRoleConfiguration() throws -> RegistrationRoleConfiguration? {
        guard let s = registration else { return nil }
        let upstream = try parseSocketAddress(s.upstream)
        let (host, port) = Self.split(s.listen)
        let (dHost, dPort) = Self.split(distributorListen)
        var c = RegistrationRoleConfiguration(
            domain: s.domain, agentPasswords: s.credentials,
            agentSkills: Dictionary(uniqueKeysWithValues: agents.map { ($0.id, $0.skills) }), skills: skills,
            upstream: SIPDestination(transport: s.upstreamTransport, address: upstream), upstreamURI: s.upstreamURI,
            parleyHostPort: "\(dHost):\(dPort)", pathURI: "sip:\(host):\(port)")
        c.realm = s.realm
        c.algorithms = s.algorithms
        c.contacts = s.contacts
        // Calls reach agents through the Path from the upstream's side (the role lets its
        // upstream's address through itself), and from the buffer server.
        c.forwardFrom = s.forwardFrom + [try? parseSocketAddress(bufferListen), try? parseSocketAddress(distributorListen)]
            .compactMap { $0.flatMap { IPNetwork(address: $0) } }
        c.upstreamUsername = s.upstreamUser
        c.upstreamPassword = s.upstreamPassword
        c.expires = s.expires
        c.minExpires = s.minExpires
        c.maxExpires = s.maxExpires
        c.upstreamTimeout = s.upstreamTimeout
        c.reorderInterval = s.reorderInterval
        c.treatments = Dictionary(uniqueKeysWithValues: treatments.map { ($0.name, $0.contact.description) })
        return c
    }
}
