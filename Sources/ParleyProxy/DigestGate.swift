import ParleySIP
import ParleyTransaction

/// Digest authentication of REGISTER requests (RFC 3261 section 22, RFC 7616, RFC 8760), shared
/// by the registrar and the registration role; a value confined to its owner's event loop, on
/// the clock its caller passes (milliseconds). What it checks, in this order (docs/security.md):
///
/// 1. the nonce is one of ours (an HMAC over its issue time) and fresh, else a new challenge
///    (`stale=true` for an old one of ours: the client retries without asking its user);
/// 2. the digest `uri` is the Request-URI (RFC 7616 3.4.6), else 400;
/// 3. `qop=auth` (RFC 7616: a server offers it; answers without it get a new challenge);
/// 4. the nonce count is above every count accepted with that nonce, before any password is
///    looked at: each (nonce, nc) is accepted once, and a captured REGISTER replayed is
///    challenged, however many registrations came between (the table forgets a nonce only once
///    the nonce itself is stale);
/// 5. the source is not locked out (`AuthThrottle`), else the answer of a wrong password;
/// 6. the password, with the same work for an unknown user as for a known one.
///
/// Challenges offer each configured algorithm, preferred first (SHA-256 before MD5, RFC 8760
/// section 2.4).
public struct DigestGate {
    public enum Verdict: Equatable {
        /// The credentials are right; `username` is who they belong to.
        case accepted(username: String)
        /// No usable credentials (or a nonce this gate did not make, a stale one, a replayed count):
        /// answer 401 with a fresh challenge.
        case challenge(stale: Bool, replay: Bool)
        /// Unknown user, wrong password, or a locked-out source: answer 403, all alike.
        case forbidden(String, username: String)
        /// Credentials that do not fit the request (a digest `uri` that is not its Request-URI): 400.
        case badRequest(String)
    }

    /// A verdict and how long to wait before answering it (the guessing slow-down).
    public struct Decision: Equatable {
        public var verdict: Verdict
        public var delayMs: Int64
    }

    public let realm: String
    /// Offered in this order.
    public var algorithms: [DigestAlgorithm]
    public var nonceLifetime: Duration
    public var throttle: AuthThrottle
    private let passwords: PasswordLookup
    private let nonces: NonceFactory
    private var nonceSalt: UInt64 = 0
    private var counts: NonceCounts

    public init(realm: String, algorithms: [DigestAlgorithm] = [.sha256], nonceLifetime: Duration = .seconds(300),
                throttle: AuthThrottle.Settings = AuthThrottle.Settings(), maxNonces: Int = 250_000,
                passwords: @escaping PasswordLookup) {
        self.realm = realm
        self.algorithms = algorithms.isEmpty ? [.sha256] : algorithms
        self.nonceLifetime = nonceLifetime
        self.throttle = AuthThrottle(settings: throttle)
        self.passwords = passwords
        self.nonces = NonceFactory(secret: (0..<32).map { _ in UInt8.random(in: 0...255) })
        self.counts = NonceCounts(capacity: maxNonces)
    }

    /// WWW-Authenticate values with a fresh nonce, one per algorithm, preferred first.
    public mutating func challenges(stale: Bool, nowMs: Int64) -> [String] {
        nonceSalt &+= 1
        let nonce = nonces.make(nowMs: nowMs, salt: nonceSalt)
        return algorithms.map { DigestChallenge(realm: realm, nonce: nonce, algorithm: $0, stale: stale).headerValue }
    }

    /// The challenges as extra headers of a 401.
    public mutating func challengeHeaders(stale: Bool, nowMs: Int64) -> [(String, String)] {
        challenges(stale: stale, nowMs: nowMs).map { ("WWW-Authenticate", $0) }
    }

    /// Nonces whose counts are remembered now (tests).
    public var rememberedNonces: Int { counts.count }

    /// Checks the request's Authorization headers for this realm; `source` is the sender's
    /// address bytes (for the lock-out).
    public mutating func check(_ request: SIPMessage, source: [UInt8], nowMs: Int64) -> Decision {
        let lifetime = nonceLifetime.components.seconds * 1000
        let method = request.method?.description ?? "REGISTER"
        counts.forget(now: nowMs)
        for value in request.headers.values(HeaderName(.authorization)) {
            guard let c = try? DigestCredentials.parse(value), c.realm == realm else { continue }
            guard algorithms.contains(c.algorithm) else { return Decision(verdict: .challenge(stale: false, replay: false), delayMs: 0) }
            switch nonces.check(c.nonce, nowMs: nowMs, lifetimeMs: lifetime) {
            case .forged: return Decision(verdict: .challenge(stale: false, replay: false), delayMs: 0)
            case .stale: return Decision(verdict: .challenge(stale: true, replay: false), delayMs: 0)
            case .valid: break
            }
            guard Self.sameURI(c.uri, request.requestURI) else {
                return Decision(verdict: .badRequest("the digest uri \(c.uri) is not the Request-URI"), delayMs: 0)
            }
            guard c.qop?.lowercased() == "auth", let ncText = c.nc, let nc = UInt32(ncText, radix: 16) else {
                return Decision(verdict: .challenge(stale: false, replay: false), delayMs: 0)
            }
            if let last = counts.last(c.nonce), nc <= last {
                return Decision(verdict: .challenge(stale: false, replay: true), delayMs: 0)
            }
            let delay = throttle.delay(source: source, user: userKey(c.username), now: nowMs)
            if throttle.isLocked(source: source, now: nowMs) {
                return Decision(verdict: .forbidden("source locked out after repeated failures", username: c.username), delayMs: delay)
            }
            let known = passwords(c.username, realm)
            // An unknown user costs the same hashing as a wrong password.
            let right = DigestAuth.verify(c, method: method, password: known ?? "\u{0}not-a-password-\(nonceSalt)")
            guard let _ = known, right else {
                throttle.failed(source: source, user: userKey(c.username), now: nowMs)
                let why = known == nil ? "unknown user \(c.username)" : "wrong password for \(c.username)"
                return Decision(verdict: .forbidden(why, username: c.username), delayMs: delay)
            }
            // Accepted now, so issued no later than now: stale (and refused as such) a lifetime on.
            guard counts.note(c.nonce, nc: nc, forgetAt: nowMs + lifetime) else {
                // The table is full of fresh nonces: a new nonce, not an accepted replay risk.
                return Decision(verdict: .challenge(stale: true, replay: false), delayMs: delay)
            }
            throttle.succeeded(source: source, user: userKey(c.username), now: nowMs)
            return Decision(verdict: .accepted(username: c.username), delayMs: delay)
        }
        return Decision(verdict: .challenge(stale: false, replay: false), delayMs: 0)
    }

    /// Known users by name; every unknown one shares a key (the table stays the size of the
    /// configuration).
    private func userKey(_ name: String) -> String {
        passwords(name, realm) == nil ? AuthThrottle.unknownUser : name
    }

    /// Whether the digest `uri` names the Request-URI (as written, or the same URI parsed).
    static func sameURI(_ digestURI: String, _ requestURI: URI?) -> Bool {
        guard let requestURI else { return false }
        let r = requestURI.description
        if digestURI == r { return true }
        guard let d = try? URI.parse(digestURI) else { return false }
        return d.description == r
    }
}

/// The highest nonce count accepted per nonce, forgotten once the nonce is stale anyway. Holds
/// at most `capacity` nonces (only ones a right password used: strangers cannot fill it).
struct NonceCounts {
    let capacity: Int
    private var last: [String: UInt32] = [:]
    /// Nonces in the order they were first accepted, with when they may be forgotten.
    private var order: [(nonce: String, forgetAt: Int64)] = []
    private var head = 0

    init(capacity: Int) { self.capacity = capacity }

    var count: Int { last.count }

    func last(_ nonce: String) -> UInt32? { last[nonce] }

    /// Records an accepted count; false when the table is full of nonces still fresh.
    mutating func note(_ nonce: String, nc: UInt32, forgetAt: Int64) -> Bool {
        if last[nonce] == nil {
            guard last.count < capacity else { return false }
            order.append((nonce, forgetAt))
        }
        last[nonce] = nc
        return true
    }

    /// Forgets every nonce that is stale by `now` (a replay of it is refused as stale).
    mutating func forget(now: Int64) {
        while head < order.count, order[head].forgetAt <= now {
            last[order[head].nonce] = nil
            head += 1
        }
        if head > 1024, head * 2 > order.count {
            order.removeFirst(head)
            head = 0
        }
    }
}
