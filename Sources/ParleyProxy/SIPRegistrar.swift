import Logging
import NIOCore
import ParleySIP
import ParleyTransaction
import ParleyTransport

final class WeakRegistrar: @unchecked Sendable { weak var registrar: SIPRegistrar? }

/// Credentials a registrar checks: the password of a user in a realm, or nil for an unknown user.
public typealias PasswordLookup = @Sendable (_ username: String, _ realm: String) -> String?

/// A registrar (RFC 3261 section 10) with digest authentication (section 22, RFC 8760), in front
/// of the proxy core: REGISTER is answered from the location service; any other request for an
/// address of record is forwarded to its bound contacts one after the other, highest q first,
/// each contact's Path as Route (RFC 3327). Confined to the stack's event loop.
public final class SIPRegistrar: SIPTransactionUser, @unchecked Sendable {
    public struct Configuration: Sendable {
        /// The realm of challenges; nil: no authentication.
        public var realm: String?
        public var algorithm: DigestAlgorithm = .md5
        /// How long a nonce stays valid.
        public var nonceLifetime: Duration = .seconds(300)
        public var policy = RegistrarPolicy()
        public init() {}
    }

    public let proxy: SIPProxy
    public var stack: SIPStack { proxy.stack }
    public var configuration: Configuration
    public var location: LocationService
    public var logger: Logger
    /// Called after every change to the bindings (to persist them).
    public var onChange: ((_ aor: String, _ bindings: [Binding]) -> Void)?
    private var gate: DigestGate

    public struct Counters: Sendable, Equatable {
        public var registers = 0
        public var challenged = 0
        public var refusedCredentials = 0
        public var replays = 0
    }
    public private(set) var counters = Counters()

    public init(stack: SIPStack, configuration: Configuration = Configuration(), proxyConfiguration: ProxyConfiguration = ProxyConfiguration(),
                passwords: @escaping PasswordLookup, logger: Logger = Logger(label: "parley.registrar")) {
        self.configuration = configuration
        self.location = LocationService(policy: configuration.policy)
        self.logger = logger
        self.gate = DigestGate(realm: configuration.realm ?? "", algorithm: configuration.algorithm,
                               nonceLifetime: configuration.nonceLifetime, passwords: passwords)
        let box = WeakRegistrar()
        proxy = SIPProxy(stack: stack, configuration: proxyConfiguration) { request, _ in
            box.registrar?.targets(for: request) ?? []
        }
        box.registrar = self
        stack.user = self
    }

    /// The proxy targets for a request to an address of record: its contacts in q order.
    func targets(for request: SIPMessage) -> [ProxyTarget] {
        guard let uri = request.requestURI, let aor = LocationService.canonicalAOR(uri) else { return [] }
        let now = SIPInstant.now()
        return location.lookup(aor, now: now).compactMap { binding in
            guard var destination = proxy.resolve(binding.uri) else { return nil }
            if let first = binding.path.first, let route = try? NameAddress.parse(first), let hop = proxy.resolve(route.uri) {
                destination = hop
            }
            return ProxyTarget(uri: binding.uri, destination: destination, route: binding.path)
        }
    }

    // MARK: SIPTransactionUser

    public func stack(_ stack: SIPStack, didReceiveRequest request: SIPMessage, transaction: TransactionKey?, from source: SIPSource) {
        guard request.method == .register, let key = transaction else {
            proxy.stack(stack, didReceiveRequest: request, transaction: transaction, from: source)
            return
        }
        counters.registers += 1
        let now = SIPInstant.now()
        if let realm = configuration.realm {
            switch authenticate(request, realm: realm, now: now) {
            case .ok: break
            case .challenge(let stale):
                counters.challenged += 1
                stack.respond(401, "Unauthorized", to: key, extraHeaders: [("WWW-Authenticate", gate.challenge(stale: stale, now: now))])
                return
            case .forbidden(let why):
                counters.refusedCredentials += 1
                logger.info("REGISTER refused: \(why)")
                stack.respond(403, "Forbidden", to: key)
                return
            }
        }
        let sourceText = "\(source.remote.ipAddress ?? "?"):\(source.remote.port ?? 0)"
        switch location.register(request, now: now, source: sourceText) {
        case .refused(let code, let reason, let headers):
            stack.respond(code, reason, to: key, extraHeaders: headers.map { ($0.name, $0.value) })
        case .ok(let aor, let bindings, let added, let removed):
            var extra = LocationService.contactValues(bindings, now: now).map { ("Contact", $0) }
            // RFC 3327 section 5.3: the registrar echoes the Path it stored.
            for p in request.headers.values(HeaderName(.path)) { extra.append(("Path", p)) }
            stack.respond(200, "OK", to: key, extraHeaders: extra)
            if !added.isEmpty || !removed.isEmpty { onChange?(aor, bindings) }
        }
    }

    public func stack(_ stack: SIPStack, didReceiveResponse response: SIPMessage, transaction: TransactionKey) {
        proxy.stack(stack, didReceiveResponse: response, transaction: transaction)
    }

    public func stack(_ stack: SIPStack, didReceiveCancel cancel: SIPMessage, forInvite invite: TransactionKey) {
        proxy.stack(stack, didReceiveCancel: cancel, forInvite: invite)
    }

    public func stack(_ stack: SIPStack, transaction: TransactionKey, didFail failure: TransactionFailure) {
        proxy.stack(stack, transaction: transaction, didFail: failure)
    }

    public func stack(_ stack: SIPStack, didTerminate transaction: TransactionKey) {
        proxy.stack(stack, didTerminate: transaction)
    }

    // MARK: Authentication

    enum AuthResult { case ok, challenge(stale: Bool), forbidden(String) }

    private func authenticate(_ request: SIPMessage, realm: String, now: SIPInstant) -> AuthResult {
        switch gate.check(request, now: now) {
        case .accepted: return .ok
        case .challenge(let stale, let replay):
            if replay { counters.replays += 1 }
            return .challenge(stale: stale)
        case .forbidden(let why, _): return .forbidden(why)
        }
    }
}

/// Digest authentication of REGISTER requests (RFC 3261 section 22, RFC 2617/7616, RFC 8760):
/// self-checking nonces, password check, nonce-count replay detection. Shared by the registrar
/// and the registration role. A value confined to its owner's event loop.
public struct DigestGate {
    public enum Verdict: Equatable {
        /// The credentials are right; `username` is who they belong to.
        case accepted(username: String)
        /// No usable credentials (or a nonce this gate did not make, a stale one, a replayed count):
        /// answer 401 with a fresh challenge.
        case challenge(stale: Bool, replay: Bool)
        /// Unknown user or wrong password: answer 403.
        case forbidden(String, username: String)
    }

    public let realm: String
    public var algorithm: DigestAlgorithm
    public var nonceLifetime: Duration
    private let passwords: PasswordLookup
    private let nonces: NonceFactory
    private var nonceSalt: UInt64 = 0
    /// Nonce counts seen per nonce (RFC 2617 3.2.2: a repeated nc is a replay).
    private var lastNonceCount: [String: UInt32] = [:]

    public init(realm: String, algorithm: DigestAlgorithm = .md5, nonceLifetime: Duration = .seconds(300), passwords: @escaping PasswordLookup) {
        self.realm = realm
        self.algorithm = algorithm
        self.nonceLifetime = nonceLifetime
        self.passwords = passwords
        var secret = [UInt8](repeating: 0, count: 32)
        for i in 0..<32 { secret[i] = UInt8.random(in: 0...255) }
        self.nonces = NonceFactory(secret: secret)
    }

    /// A WWW-Authenticate value with a fresh nonce.
    public mutating func challenge(stale: Bool, now: SIPInstant) -> String {
        nonceSalt &+= 1
        return DigestChallenge(realm: realm, nonce: nonces.make(nowMs: now.milliseconds, salt: nonceSalt), algorithm: algorithm,
                               stale: stale).headerValue
    }

    /// Checks the request's Authorization headers for this realm.
    public mutating func check(_ request: SIPMessage, now: SIPInstant) -> Verdict {
        let lifetime = nonceLifetime.components.seconds * 1000
        let method = request.method?.description ?? "REGISTER"
        for value in request.headers.values(HeaderName(.authorization)) {
            guard let credentials = try? DigestCredentials.parse(value), credentials.realm == realm else { continue }
            switch nonces.check(credentials.nonce, nowMs: now.milliseconds, lifetimeMs: lifetime) {
            case .forged: return .challenge(stale: false, replay: false)
            case .stale: return .challenge(stale: true, replay: false)
            case .valid: break
            }
            guard let password = passwords(credentials.username, realm) else {
                return .forbidden("unknown user \(credentials.username)", username: credentials.username)
            }
            guard DigestAuth.verify(credentials, method: method, password: password) else {
                return .forbidden("wrong password for \(credentials.username)", username: credentials.username)
            }
            // A nonce count not above the last one seen is a replay (RFC 2617 3.2.2); without
            // qop the nonce itself may be used once.
            let nc = credentials.nc.flatMap { UInt32($0, radix: 16) } ?? 0
            if let last = lastNonceCount[credentials.nonce], nc <= last {
                return .challenge(stale: false, replay: true)
            }
            lastNonceCount[credentials.nonce] = nc
            if lastNonceCount.count > 10_000 { lastNonceCount.removeAll() }
            return .accepted(username: credentials.username)
        }
        return .challenge(stale: false, replay: false)
    }
}
