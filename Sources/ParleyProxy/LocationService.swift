import ParleySIP
import ParleyTransaction

/// One contact bound to an address of record (RFC 3261 section 10).
public struct Binding: Sendable, Equatable {
    /// The address of record, canonical (`sip:user@host`, host lower-cased, no parameters).
    public var aor: String
    /// The Contact value as registered (display name, URI, header parameters).
    public var contact: NameAddress
    /// The priority (`q`, 0 to 1); a Contact without one counts as 1.
    public var q: Double
    public var expiresAt: SIPInstant
    public var callID: String
    public var cseq: UInt32
    /// Path header values to put back as Route toward this contact (RFC 3327).
    public var path: [String]
    /// Where the REGISTER came from (`ip:port`), for a contact behind NAT.
    public var source: String?
    /// When the binding was last written (ties in q go to the most recent).
    public var updatedAt: SIPInstant

    public var uri: URI { contact.uri }

    public init(aor: String, contact: NameAddress, q: Double, expiresAt: SIPInstant, callID: String, cseq: UInt32,
                path: [String] = [], source: String? = nil, updatedAt: SIPInstant) {
        self.aor = aor
        self.contact = contact
        self.q = q
        self.expiresAt = expiresAt
        self.callID = callID
        self.cseq = cseq
        self.path = path
        self.source = source
        self.updatedAt = updatedAt
    }

    /// Seconds left at `now`, rounded up.
    public func remaining(at now: SIPInstant) -> Int64 {
        max(0, (expiresAt.milliseconds - now.milliseconds + 999) / 1000)
    }
}

/// Expiry bounds a registrar applies (RFC 3261 sections 10.2.1 and 10.3 step 7).
public struct RegistrarPolicy: Sendable, Equatable {
    public var minExpires: UInt32 = 60
    public var maxExpires: UInt32 = 3600
    public var defaultExpires: UInt32 = 3600
    public init() {}
}

/// What a REGISTER did.
public enum RegisterOutcome: Sendable, Equatable {
    /// 200: the bindings of the AOR now (the response's Contact set), and what changed.
    case ok(aor: String, bindings: [Binding], added: [Binding], removed: [Binding])
    /// The request is refused; nothing was changed.
    case refused(code: Int, reason: String, headers: [SIPHeader])
}

/// The location service of a registrar: REGISTER processing per RFC 3261 section 10.3, expiry,
/// and lookup in q order. A value type on an injected clock; persistence is the owner's.
public struct LocationService: Sendable {
    public private(set) var bindings: [String: [Binding]] = [:]
    public var policy: RegistrarPolicy

    public init(policy: RegistrarPolicy = RegistrarPolicy()) { self.policy = policy }

    /// Every live binding of every AOR.
    public var all: [Binding] { bindings.values.flatMap { $0 } }

    /// The canonical AOR of a To URI: scheme, user (decoded), lower-cased host, port if any.
    public static func canonicalAOR(_ uri: URI) -> String? {
        guard case .sip(let u) = uri else { return nil }
        var s = u.scheme + ":"
        if let user = u.decodedUser { s += user + "@" }
        s += u.host.description.lowercased()
        if let port = u.port { s += ":" + String(port) }
        return s
    }

    /// Contact URIs compared as RFC 3261 19.1.4 mostly does for bindings: scheme, user, host
    /// (case-insensitively), port, transport.
    static func sameContact(_ a: URI, _ b: URI) -> Bool {
        switch (a, b) {
        case (.sip(let x), .sip(let y)):
            return x.secure == y.secure && x.decodedUser == y.decodedUser && x.host.description.lowercased() == y.host.description.lowercased()
                && x.port == y.port && (x.transportParameter ?? "").lowercased() == (y.transportParameter ?? "").lowercased()
        default:
            return a.description == b.description
        }
    }

    /// Processes a REGISTER (10.3 steps 4 to 8; authentication and Require are the caller's).
    /// All or nothing: a refused request changes no binding.
    public mutating func register(_ request: SIPMessage, now: SIPInstant, source: String? = nil) -> RegisterOutcome {
        expire(now: now)
        guard let to = (try? request.to()) ?? nil, let aor = Self.canonicalAOR(to.uri) else {
            return .refused(code: 400, reason: "Bad Request: the To header must carry a SIP or SIPS address of record", headers: [])
        }
        guard let callID = request.callID, let cseq = (try? request.cseq()) ?? nil else {
            return .refused(code: 400, reason: "Bad Request: missing Call-ID or CSeq", headers: [])
        }
        let contacts: [ContactValue]
        do { contacts = try request.contacts() } catch {
            return .refused(code: 400, reason: error.reasonPhrase, headers: [])
        }
        let headerExpires = (try? request.expires()) ?? nil
        var current = bindings[aor] ?? []
        var added: [Binding] = []
        var removed: [Binding] = []
        let path = request.headers.elements(HeaderName(.path))

        if contacts.contains(.wildcard) {
            // 10.3 step 6: "*" only alone and only with Expires: 0.
            guard contacts.count == 1, headerExpires == 0 else {
                return .refused(code: 400, reason: "Bad Request: Contact * needs Expires: 0 and no other Contact", headers: [])
            }
            var kept: [Binding] = []
            for b in current {
                if b.callID == callID && b.cseq >= cseq.sequence { kept.append(b) } else { removed.append(b) }
            }
            current = kept
        } else {
            for contact in contacts {
                guard let address = contact.address else { continue }
                if case .other(let scheme, _) = address.uri {
                    return .refused(code: 400, reason: "Bad Request: unsupported Contact scheme \(scheme)", headers: [])
                }
                let requested = contact.expires ?? headerExpires ?? policy.defaultExpires
                if requested != 0 && requested < policy.minExpires {
                    return .refused(code: 423, reason: "Interval Too Brief",
                                    headers: [SIPHeader(.minExpires, String(policy.minExpires))])
                }
                let expires = min(requested, policy.maxExpires)
                let index = current.firstIndex { Self.sameContact($0.uri, address.uri) }
                if let i = index, current[i].callID == callID, current[i].cseq >= cseq.sequence {
                    // 10.3 step 7: an older or repeated request for the same Call-ID must not win.
                    return .refused(code: 500, reason: "Server Internal Error: CSeq out of order for this Call-ID", headers: [])
                }
                if expires == 0 {
                    if let i = index { removed.append(current.remove(at: i)) }
                    continue
                }
                var stored = address
                stored.parameters.remove("expires")
                let binding = Binding(aor: aor, contact: stored, q: contact.q ?? 1, expiresAt: now + .seconds(Int64(expires)),
                                      callID: callID, cseq: cseq.sequence, path: path, source: source, updatedAt: now)
                if let i = index { current[i] = binding } else { current.append(binding) }
                added.append(binding)
            }
        }
        bindings[aor] = current.isEmpty ? nil : current
        return .ok(aor: aor, bindings: Self.ordered(current), added: added, removed: removed)
    }

    /// Removes bindings whose time is up; returns them.
    @discardableResult
    public mutating func expire(now: SIPInstant) -> [Binding] {
        var gone: [Binding] = []
        for (aor, list) in bindings {
            let live = list.filter { $0.expiresAt > now }
            if live.count != list.count {
                gone += list.filter { $0.expiresAt <= now }
                bindings[aor] = live.isEmpty ? nil : live
            }
        }
        return gone
    }

    /// The live bindings of an AOR, highest q first, the most recently updated first on a tie:
    /// the order a proxy tries them in (serial forking, Kamailio's t_load_contacts order).
    public func lookup(_ aor: String, now: SIPInstant) -> [Binding] {
        Self.ordered((bindings[aor] ?? []).filter { $0.expiresAt > now })
    }

    static func ordered(_ list: [Binding]) -> [Binding] {
        list.sorted { a, b in a.q != b.q ? a.q > b.q : a.updatedAt > b.updatedAt }
    }

    /// Puts back bindings loaded from storage (they expire as usual).
    public mutating func restore(_ list: [Binding]) {
        for b in list { bindings[b.aor, default: []].append(b) }
    }

    /// The Contact header values of a 200 to REGISTER: every binding with its remaining time.
    public static func contactValues(_ list: [Binding], now: SIPInstant) -> [String] {
        list.map { b in
            var c = b.contact
            c.parameters.set("expires", String(b.remaining(at: now)))
            return c.description
        }
    }
}
