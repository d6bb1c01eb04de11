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
        /// Offered in this order (RFC 8760: SHA-256 first); MD5 only where configured.
        public var algorithms: [DigestAlgorithm] = [.sha256]
        /// The guessing slow-down and lock-out.
        public var throttle = AuthThrottle.Settings()
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
        public var lockouts = 0
    }
    public private(set) var counters = Counters()

    public init(stack: SIPStack, configuration: Configuration = Configuration(), proxyConfiguration: ProxyConfiguration = ProxyConfiguration(),
                passwords: @escaping PasswordLookup, logger: Logger = Logger(label: "parley.registrar")) {
        self.configuration = configuration
        self.location = LocationService(policy: configuration.policy)
        self.logger = logger
        self.gate = DigestGate(realm: configuration.realm ?? "", algorithms: configuration.algorithms,
                               nonceLifetime: configuration.nonceLifetime, throttle: configuration.throttle, passwords: passwords)
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
        guard configuration.realm != nil else { return register(request, key: key, source: source) }
        let nowMs = SIPInstant.now().milliseconds
        let decision = gate.check(request, source: IPNetwork.bytes(of: source.remote) ?? [], nowMs: nowMs)
        let answer: () -> Void
        switch decision.verdict {
        case .accepted:
            answer = { [weak self] in self?.register(request, key: key, source: source) }
        case .challenge(let stale, let replay):
            counters.challenged += 1
            if replay { counters.replays += 1 }
            let headers = gate.challengeHeaders(stale: stale, nowMs: nowMs)
            answer = { [stack] in stack.respond(401, "Unauthorized", to: key, extraHeaders: headers) }
        case .forbidden(let why, _):
            counters.refusedCredentials += 1
            logger.info("REGISTER from \(source.remote.ipAddress ?? "?") refused: \(why)")
            answer = { [stack] in stack.respond(403, "Forbidden", to: key) }
        case .badRequest(let why):
            answer = { [stack] in stack.respond(400, "Bad Request: \(why)", to: key) }
        }
        if decision.delayMs > 0 {
            _ = stack.schedule(after: .milliseconds(decision.delayMs), answer)
        } else {
            answer()
        }
    }

    /// An authenticated (or unauthenticated, without a realm) REGISTER, applied to the bindings.
    private func register(_ request: SIPMessage, key: TransactionKey, source: SIPSource) {
        let now = SIPInstant.now()
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

}
