// SIP digest authentication (RFC 3261 section 22.4 with RFC 2617's qop=auth; RFC 8760 for
// SHA-256): parsing and writing challenges and credentials, computing and checking responses,
// and nonces that carry their own issue time and cannot be forged.

/// The digest algorithms a SIP element meets: MD5 (RFC 3261's default) and SHA-256 (RFC 8760).
public enum DigestAlgorithm: String, Sendable, CaseIterable {
    case md5 = "MD5"
    case sha256 = "SHA-256"

    /// Lower-case hex of the hash of `text`'s UTF-8 bytes.
    public func hash(_ text: String) -> String {
        switch self {
        case .md5: MD5.hex(Array(text.utf8))
        case .sha256: SHA256.hex(Array(text.utf8))
        }
    }

    /// Parses an `algorithm` parameter (case-insensitive); absent means MD5 (RFC 2617 3.2.1).
    public init?(parameter: String?) {
        guard let parameter else { self = .md5; return }
        guard let a = DigestAlgorithm.allCases.first(where: { asciiCaseInsensitiveEquals($0.rawValue, parameter) }) else { return nil }
        self = a
    }
}

/// A credentials or challenge header value: an auth scheme and its `name=value` parameters
/// (values unquoted), as in `Digest realm="atlanta.com", nonce="84a4cc6f", algorithm=MD5`.
public struct AuthParameters: Sendable, Equatable {
    public var scheme: String
    public var parameters: [SIPParameter]

    public subscript(name: String) -> String? { parameters.value(name) }

    public static func parse(_ text: String) throws(SIPSyntaxError) -> AuthParameters {
        try withBytes(text) { buf throws(SIPSyntaxError) -> AuthParameters in
            var cur = ByteCursor(buf)
            cur.skipWS()
            guard let scheme = cur.token() else { throw SIPSyntaxError("missing auth scheme") }
            var params: [SIPParameter] = []
            cur.skipWS()
            while !cur.atEnd {
                guard let name = cur.token() else { throw SIPSyntaxError("auth parameter without a name") }
                guard cur.separator(ASCII.equals) else { throw SIPSyntaxError("auth parameter '\(cur.string(name))' has no value") }
                let value: String
                if cur.peek == ASCII.quote {
                    value = unquote(cur.string(try cur.quotedString()))
                } else if let t = cur.token() {
                    value = cur.string(t)
                } else {
                    throw SIPSyntaxError("auth parameter '\(cur.string(name))' has an empty value")
                }
                params.append(SIPParameter(cur.string(name), value))
                cur.skipWS()
                if cur.atEnd { break }
                guard cur.consume(ASCII.comma) else { throw SIPSyntaxError("expected ',' between auth parameters") }
                cur.skipWS()
            }
            return AuthParameters(scheme: cur.string(scheme), parameters: params)
        }
    }
}

/// A WWW-Authenticate / Proxy-Authenticate digest challenge.
public struct DigestChallenge: Sendable, Equatable {
    public var realm: String
    public var nonce: String
    public var algorithm: DigestAlgorithm
    public var opaque: String?
    /// Offered qop values; empty means the RFC 2069 form without qop.
    public var qop: [String]
    /// The nonce was valid once but is too old: the client may retry with the same password.
    public var stale: Bool

    public init(realm: String, nonce: String, algorithm: DigestAlgorithm = .md5, opaque: String? = nil,
                qop: [String] = ["auth"], stale: Bool = false) {
        self.realm = realm
        self.nonce = nonce
        self.algorithm = algorithm
        self.opaque = opaque
        self.qop = qop
        self.stale = stale
    }

    /// The header value.
    public var headerValue: String {
        var s = "Digest realm=\"\(quoteEscaped(realm))\", nonce=\"\(quoteEscaped(nonce))\", algorithm=\(algorithm.rawValue)"
        if !qop.isEmpty { s += ", qop=\"\(qop.joined(separator: ","))\"" }
        if let opaque { s += ", opaque=\"\(quoteEscaped(opaque))\"" }
        if stale { s += ", stale=true" }
        return s
    }

    public static func parse(_ text: String) throws(SIPSyntaxError) -> DigestChallenge {
        let p = try AuthParameters.parse(text)
        guard asciiCaseInsensitiveEquals(p.scheme, "Digest") else { throw SIPSyntaxError("not a Digest challenge") }
        guard let realm = p["realm"], let nonce = p["nonce"] else { throw SIPSyntaxError("challenge without realm or nonce") }
        guard let algorithm = DigestAlgorithm(parameter: p["algorithm"]) else {
            throw SIPSyntaxError("unsupported digest algorithm \(p["algorithm"] ?? "")")
        }
        let qop = (p["qop"] ?? "").split(separator: ",").map { String($0).trimmingWhiteSpace() }.filter { !$0.isEmpty }
        return DigestChallenge(realm: realm, nonce: nonce, algorithm: algorithm, opaque: p["opaque"], qop: qop,
                               stale: p["stale"].map { asciiCaseInsensitiveEquals($0, "true") } ?? false)
    }
}

/// Authorization / Proxy-Authorization digest credentials.
public struct DigestCredentials: Sendable, Equatable {
    public var username: String
    public var realm: String
    public var nonce: String
    public var uri: String
    public var response: String
    public var algorithm: DigestAlgorithm
    public var cnonce: String?
    /// The nonce count, 8 hex digits (with qop).
    public var nc: String?
    public var qop: String?
    public var opaque: String?

    public init(username: String, realm: String, nonce: String, uri: String, response: String,
                algorithm: DigestAlgorithm = .md5, cnonce: String? = nil, nc: String? = nil, qop: String? = nil,
                opaque: String? = nil) {
        self.username = username
        self.realm = realm
        self.nonce = nonce
        self.uri = uri
        self.response = response
        self.algorithm = algorithm
        self.cnonce = cnonce
        self.nc = nc
        self.qop = qop
        self.opaque = opaque
    }

    public var headerValue: String {
        var s = "Digest username=\"\(quoteEscaped(username))\", realm=\"\(quoteEscaped(realm))\", nonce=\"\(quoteEscaped(nonce))\""
        s += ", uri=\"\(quoteEscaped(uri))\", response=\"\(response)\", algorithm=\(algorithm.rawValue)"
        if let qop, let nc, let cnonce { s += ", qop=\(qop), nc=\(nc), cnonce=\"\(quoteEscaped(cnonce))\"" }
        if let opaque { s += ", opaque=\"\(quoteEscaped(opaque))\"" }
        return s
    }

    public static func parse(_ text: String) throws(SIPSyntaxError) -> DigestCredentials {
        let p = try AuthParameters.parse(text)
        guard asciiCaseInsensitiveEquals(p.scheme, "Digest") else { throw SIPSyntaxError("not Digest credentials") }
        guard let username = p["username"], let realm = p["realm"], let nonce = p["nonce"], let uri = p["uri"],
              let response = p["response"] else {
            throw SIPSyntaxError("credentials without username, realm, nonce, uri or response")
        }
        guard let algorithm = DigestAlgorithm(parameter: p["algorithm"]) else {
            throw SIPSyntaxError("unsupported digest algorithm \(p["algorithm"] ?? "")")
        }
        let qop = p["qop"]
        if qop != nil, p["nc"] == nil || p["cnonce"] == nil { throw SIPSyntaxError("qop without nc or cnonce") }
        return DigestCredentials(username: username, realm: realm, nonce: nonce, uri: uri, response: response,
                                 algorithm: algorithm, cnonce: p["cnonce"], nc: p["nc"], qop: qop, opaque: p["opaque"])
    }
}

/// Digest computations (RFC 2617 section 3.2.2, RFC 7616 section 3.4.1).
public enum DigestAuth {
    /// HA1 = H(username:realm:password).
    public static func ha1(_ algorithm: DigestAlgorithm, username: String, realm: String, password: String) -> String {
        algorithm.hash("\(username):\(realm):\(password)")
    }

    /// The request-digest for qop=auth (or the RFC 2069 form without qop).
    public static func response(_ algorithm: DigestAlgorithm, ha1: String, method: String, uri: String, nonce: String,
                                nc: String? = nil, cnonce: String? = nil, qop: String? = nil) -> String {
        let ha2 = algorithm.hash("\(method):\(uri)")
        if let qop, let nc, let cnonce {
            return algorithm.hash("\(ha1):\(nonce):\(nc):\(cnonce):\(qop):\(ha2)")
        }
        return algorithm.hash("\(ha1):\(nonce):\(ha2)")
    }

    /// Whether `credentials` prove knowledge of the password for this request method.
    /// (The caller also checks the nonce is its own and fresh, and the nonce count.)
    public static func verify(_ credentials: DigestCredentials, method: String, password: String) -> Bool {
        let h = ha1(credentials.algorithm, username: credentials.username, realm: credentials.realm, password: password)
        let expected = response(credentials.algorithm, ha1: h, method: method, uri: credentials.uri, nonce: credentials.nonce,
                                nc: credentials.nc, cnonce: credentials.cnonce, qop: credentials.qop)
        return constantTimeEquals(Array(expected.utf8), Array(credentials.response.lowercased().utf8))
    }

    /// Credentials answering `challenge` (a client: Parley registering upstream).
    public static func credentials(for challenge: DigestChallenge, username: String, password: String, method: String,
                                   uri: String, cnonce: String, nc: UInt32 = 1) -> DigestCredentials {
        let h = ha1(challenge.algorithm, username: username, realm: challenge.realm, password: password)
        let useQop = challenge.qop.contains("auth") ? "auth" : nil
        let ncText = useQop == nil ? nil : hex8(nc)
        let r = response(challenge.algorithm, ha1: h, method: method, uri: uri, nonce: challenge.nonce,
                         nc: ncText, cnonce: useQop == nil ? nil : cnonce, qop: useQop)
        return DigestCredentials(username: username, realm: challenge.realm, nonce: challenge.nonce, uri: uri, response: r,
                                 algorithm: challenge.algorithm, cnonce: useQop == nil ? nil : cnonce, nc: ncText, qop: useQop,
                                 opaque: challenge.opaque)
    }

    static func hex8(_ n: UInt32) -> String {
        let h = String(n, radix: 16)
        return String(repeating: "0", count: max(0, 8 - h.count)) + h
    }

    static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool { ConstantTime.equals(a, b) }
}

/// Comparing secrets (a digest response, a MAC, an API token) without leaking through timing
/// where they first differ: every byte is looked at. The lengths may differ (then false).
public enum ConstantTime {
    public static func equals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<a.count { diff |= a[i] ^ b[i] }
        return diff == 0
    }
}

/// Nonces that carry their issue time and an HMAC over it, so a server can tell its own fresh
/// nonces from stale or forged ones without storing them.
public struct NonceFactory: Sendable {
    public enum Check: Sendable, Equatable { case valid, stale, forged }

    private let secret: [UInt8]

    public init(secret: [UInt8]) { self.secret = secret }

    /// A nonce issued at `nowMs` (milliseconds on any clock the checks share).
    public func make(nowMs: Int64, salt: UInt64 = 0) -> String {
        let stamp = String(nowMs, radix: 36) + "-" + String(salt, radix: 36)
        let mac = SHA256.hmac(key: secret, message: Array(stamp.utf8))
        return stamp + "." + hexString(Array(mac.prefix(16)))
    }

    /// Whether `nonce` is one of ours and younger than `lifetimeMs`.
    public func check(_ nonce: String, nowMs: Int64, lifetimeMs: Int64) -> Check {
        guard let dot = nonce.lastIndex(of: ".") else { return .forged }
        let stamp = String(nonce[..<dot])
        let mac = hexString(Array(SHA256.hmac(key: secret, message: Array(stamp.utf8)).prefix(16)))
        guard DigestAuth.constantTimeEquals(Array(mac.utf8), Array(nonce[nonce.index(after: dot)...].utf8)),
              let dash = stamp.firstIndex(of: "-"), let issued = Int64(stamp[..<dash], radix: 36) else { return .forged }
        if issued > nowMs { return .forged }
        return nowMs - issued <= lifetimeMs ? .valid : .stale
    }
}

extension String {
    func trimmingWhiteSpace() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
