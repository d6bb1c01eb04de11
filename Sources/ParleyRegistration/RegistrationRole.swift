// The registration role (issue 7; the second seed, claims 10 to 16): agents REGISTER to Parley,
// which authenticates them, forwards each registration to the network's registrar with its own
// location added as a Path (RFC 3327), and creates the additional registrations: every
// contact-center address (one per skill, one per treatment) bound upstream to Parley at q 1.0 and
// to the agents able to serve it, in the order `order_registrations` chose. While Parley is up
// the upstream prefers it; when Parley is down the upstream still reaches the agents directly.

import Foundation
import Logging
import NIOCore
import ParleyProxy
import ParleyRules
import ParleySIP
import ParleyTransaction
import ParleyTransport

/// What the registration role needs to know.
public struct RegistrationRoleConfiguration: Sendable {
    /// The domain of the addresses of record (`sip:sales@DOMAIN`, `sip:alice@DOMAIN`).
    public var domain: String
    /// The digest realm agents authenticate in (default: the domain).
    public var realm: String
    /// Offered to agents in this order (SHA-256 first, RFC 8760); MD5 only where configured.
    public var algorithms: [DigestAlgorithm] = [.sha256]
    /// The guessing slow-down and lock-out.
    public var throttle = AuthThrottle.Settings()
    /// Where agents may register their phones (by default: where their REGISTER came from).
    public var contacts = ContactPolicy()
    /// Who may send requests other than REGISTER through this listener to agents (calls that
    /// come through the Path: the upstream's proxy, the buffer server), beside the upstream
    /// registrar's own address, which always may. In-dialog requests may
    /// also come from a registered agent's phone. Anything else is refused 403: the listener is
    /// no relay for strangers.
    public var forwardFrom: [IPNetwork] = []
    /// Agent credentials: agent id (the digest user name, and the user part of its AOR) -> password.
    public var agentPasswords: [String: String]
    /// The skills each agent has (who is able to serve which skill address).
    public var agentSkills: [String: [String]]
    /// One address per skill: `sip:SKILL@DOMAIN`.
    public var skills: [String]
    /// One address per treatment: name -> the treatment system's URI (bound like an agent).
    public var treatments: [String: String] = [:]
    /// Where the upstream registrar listens, and the Request-URI of REGISTERs sent to it.
    public var upstream: SIPDestination
    public var upstreamURI: String
    /// Parley's credentials at the upstream registrar (answer its 401 / 407).
    public var upstreamUsername: String?
    public var upstreamPassword: String?
    /// Where calls to a contact-center address reach Parley (`host:port` of the distributor):
    /// Parley's own binding for `sip:sales@DOMAIN` is `sip:sales@HOSTPORT`.
    public var parleyHostPort: String
    /// This role's own URI, put in Path (`;lr` is added).
    public var pathURI: String
    /// Expiry asked for the fan-out bindings, seconds.
    public var expires: UInt32 = 300
    /// Shortest agent registration accepted (423 below it) and longest forwarded, seconds.
    public var minExpires: UInt32 = 60
    public var maxExpires: UInt32 = 3600
    /// How long the upstream may take to answer a REGISTER.
    public var upstreamTimeout: Duration = .seconds(5)
    /// How often agent states and the rules are looked at again for a new order.
    public var reorderInterval: Duration = .seconds(1)

    public init(domain: String, agentPasswords: [String: String], agentSkills: [String: [String]], skills: [String],
                upstream: SIPDestination, upstreamURI: String, parleyHostPort: String, pathURI: String) {
        self.domain = domain
        self.realm = domain
        self.agentPasswords = agentPasswords
        self.agentSkills = agentSkills
        self.skills = skills
        self.upstream = upstream
        self.upstreamURI = upstreamURI
        self.parleyHostPort = parleyHostPort
        self.pathURI = pathURI
    }

    /// Every contact-center address, skills first, then treatments by name.
    public var addresses: [ContactCenterAddress] {
        skills.map { ContactCenterAddress(aor: "sip:\($0)@\(domain)", kind: .skill, name: $0, skill: $0) }
            + treatments.keys.sorted().map { ContactCenterAddress(aor: "sip:\($0)@\(domain)", kind: .treatment, name: $0) }
    }
}

/// The registration role on one SIP stack. Confined to the stack's event loop.
public final class RegistrationRole: SIPTransactionUser, @unchecked Sendable {
    public let stack: SIPStack
    public let configuration: RegistrationRoleConfiguration
    public var logger: Logger
    public private(set) var state: FanOutState
    /// Forwards requests that reach Parley through an agent's Path to the agent.
    public let proxy: SIPProxy
    private let rules: RuleEngine?
    private let directory: AgentDirectory?
    private let store: RegistrationStore?
    private let clock: @Sendable () -> Int64
    private var gate: DigestGate

    public struct Counters: Sendable, Equatable {
        public var agentRegisters = 0
        public var challenged = 0
        public var refused = 0
        public var invalid = 0
        /// Requests refused because their sender may not reach agents through this listener.
        public var notForwarded = 0
        public var forwarded = 0
        public var accepted = 0
        public var upstreamFailures = 0
        public var addressRegisters = 0
        public var addressFailures = 0
        public var replans = 0
    }
    public private(set) var counters = Counters()

    private enum Pending {
        case agent(server: TransactionKey, agentID: String, request: SIPMessage, cseq: UInt32, authTried: Bool, removesAll: Bool)
        case address(PlannedRegister, chunk: Int, authTried: Bool)
    }
    private var pending: [TransactionKey: Pending] = [:]
    private var addressesInFlight: Set<String> = []
    private var agentsInFlight: Set<String> = []
    /// Call-ID and CSeq per agent for its REGISTERs upstream (kept with its registration).
    private var agentUpstream: [String: (callID: String, cseq: UInt32)] = [:]
    private var replanScheduled = false
    /// Called on the loop with every registered agent's contact (agent id -> contact URI) after
    /// the set changed: a registration, an unregistration, an expiry, a restore. The call path
    /// dials these rather than the configured contacts.
    public var onContactsChanged: (([String: String]) -> Void)?
    private var ticker: TimerToken?
    private var stopped = false

    /// - Parameters:
    ///   - rules: the rule store whose `order_registrations` orders the agents (nil: the default order).
    ///   - store: where registrations persist (nil: memory only).
    ///   - clock: wall-clock milliseconds (injected in tests).
    public init(stack: SIPStack, configuration: RegistrationRoleConfiguration, rules: RuleStore?, store: RegistrationStore?,
                clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) },
                logger: Logger = Logger(label: "parley.registration")) {
        self.stack = stack
        self.configuration = configuration
        self.logger = logger
        self.rules = rules.map { RuleEngine(store: $0) }
        self.directory = rules?.agents
        self.store = store
        self.clock = clock
        self.state = FanOutState(expires: configuration.expires)
        let passwords = configuration.agentPasswords
        self.gate = DigestGate(realm: configuration.realm, algorithms: configuration.algorithms, throttle: configuration.throttle) { user, _ in
            passwords[user]
        }
        let box = WeakRole()
        proxy = SIPProxy(stack: stack) { request, _ in box.role?.pathTargets(for: request) ?? [] }
        box.role = self
        stack.user = self
    }

    /// Loads what was persisted and starts the refresh / re-order timer. On the loop.
    public func start() {
        if let store {
            do {
                state.restore(agents: try store.loadAgents(), addresses: try store.loadAddresses(), nowMs: clock())
                for a in state.agents.values { agentUpstream[a.agentID] = (a.upstreamCallID, a.upstreamCSeq) }
                onContactsChanged?(state.agentContacts)
                logger.info("registration: restored \(state.agents.count) agent(s) and \(state.addresses.count) address(es) from \(store.path)")
            } catch {
                logger.error("registration: cannot read \(store.path): \(error)")
            }
        }
        replan()
        tick()
    }

    /// Stops the timer. On the loop.
    public func stop() {
        stopped = true
        ticker?.cancel()
        store?.flush()
    }

    private func tick() {
        guard !stopped else { return }
        ticker = stack.schedule(after: configuration.reorderInterval) { [weak self] in
            self?.replan()
            self?.tick()
        }
    }

    // MARK: Requests

    public func stack(_ stack: SIPStack, didReceiveRequest request: SIPMessage, transaction: TransactionKey?, from source: SIPSource) {
        guard request.method == .register, let key = transaction else {
            guard mayForward(request, from: source.remote) else {
                counters.notForwarded += 1
                logger.debug("registration: \(request.method?.rawValue ?? "?") from \(source.remote.ipAddress ?? "?") refused: not a peer that may reach agents")
                if let transaction { stack.refuseStatelessly(403, "Forbidden", to: transaction) }
                return
            }
            proxy.stack(stack, didReceiveRequest: request, transaction: transaction, from: source)
            return
        }
        counters.agentRegisters += 1
        let origin = "\(source.remote.ipAddress ?? "?"):\(source.remote.port ?? 0)"
        let nowMs = SIPInstant.now().milliseconds
        let decision = gate.check(request, source: IPNetwork.bytes(of: source.remote) ?? [], nowMs: nowMs)
        // A guessing source's answers wait (AuthThrottle); the rest is answered at once.
        let later: (@escaping () -> Void) -> Void = { [stack] answer in
            if decision.delayMs > 0 { _ = stack.schedule(after: .milliseconds(decision.delayMs), answer) } else { answer() }
        }
        switch decision.verdict {
        case .challenge(let stale, let replay):
            counters.challenged += 1
            if replay { logger.notice("registration: REGISTER from \(origin) reused a nonce count (replay); challenged again") }
            let headers = gate.challengeHeaders(stale: stale, nowMs: nowMs)
            later { [stack] in stack.respond(401, "Unauthorized", to: key, extraHeaders: headers) }
        case .forbidden(let why, _):
            counters.refused += 1
            logger.notice("registration: REGISTER from \(origin) refused: \(why); nothing forwarded")
            later { [stack] in stack.respond(403, "Forbidden", to: key) }
        case .badRequest(let why):
            counters.invalid += 1
            logger.notice("registration: REGISTER from \(origin) refused with 400: \(why); nothing forwarded")
            later { [stack] in stack.respond(400, "Bad Request: \(why)", to: key) }
        case .accepted(let user):
            later { [weak self] in self?.accepted(request, agentID: user, key: key, source: source.remote, origin: origin) }
        }
    }

    /// An agent's REGISTER whose credentials are right: checked (RFC 3261 10.3), then forwarded.
    private func accepted(_ request: SIPMessage, agentID: String, key: TransactionKey, source: SocketAddress, origin: String) {
        switch validate(request, agentID: agentID, source: source) {
        case .failure(let refusal):
            counters.invalid += 1
            logger.notice("registration: REGISTER of \(agentID) from \(origin) refused with \(refusal.code): \(refusal.reason); nothing forwarded")
            stack.respond(refusal.code, refusal.reason, to: key, extraHeaders: refusal.headers)
        case .success(let forward):
            guard !agentsInFlight.contains(agentID) else {
                stack.respond(500, "Server Internal Error: a REGISTER of this agent is being forwarded", to: key,
                              extraHeaders: [("Retry-After", "1")])
                return
            }
            forwardAgent(forward, agentID: agentID, server: key)
        }
    }

    private func forwardAgent(_ f: AgentForward, agentID: String, server: TransactionKey) {
        var up = agentUpstream[agentID] ?? ("agent-\(agentID)-\(stack.newTag())@parley", 0)
        up.cseq += 1
        agentUpstream[agentID] = up
        guard let request = agentRequest(f, agentID: agentID, callID: up.callID, cseq: up.cseq, authorization: nil) else {
            stack.respond(500, "Server Internal Error: the upstream registrar URI is not valid", to: server)
            return
        }
        guard let key = stack.sendRequest(request, to: configuration.upstream) else {
            stack.respond(500, "Server Internal Error: cannot send to the upstream registrar", to: server)
            return
        }
        counters.forwarded += 1
        agentsInFlight.insert(agentID)
        pending[key] = .agent(server: server, agentID: agentID, request: request, cseq: up.cseq, authTried: false, removesAll: f.removesAll)
        pendingForwards[key] = f
        watch(key)
    }
    private var pendingForwards: [TransactionKey: AgentForward] = [:]
    /// The shortest expiry granted so far to the parts of an address's REGISTER.
    private var grantedSoFar: [String: UInt32] = [:]

    private func agentRequest(_ f: AgentForward, agentID: String, callID: String, cseq: UInt32, authorization: (String, String)?) -> SIPMessage? {
        guard let uri = try? URI.parse(configuration.upstreamURI) else { return nil }
        var h = SIPHeaders()
        h.append(HeaderName(.maxForwards), "70")
        h.append(HeaderName(.from), "<\(f.aor)>;tag=\(String(callID.hashValue & 0xFFFFFF, radix: 16))a")
        h.append(HeaderName(.to), "<\(f.aor)>")
        h.append(HeaderName(.callID), callID)
        h.append(HeaderName(.cseq), "\(cseq) REGISTER")
        for c in f.contacts { h.append(HeaderName(.contact), c) }
        if f.removesAll || f.contacts.isEmpty { h.append(HeaderName(.expires), String(f.expires)) }
        if !f.removesAll && !f.contacts.isEmpty {
            // RFC 3327: while Parley is up, requests to the agent come through it.
            h.append(HeaderName(.path), "<\(configuration.pathURI);lr>")
            h.append(HeaderName(.supported), "path")
        }
        if let authorization { h.append(HeaderName(authorization.0), authorization.1) }
        h.append(HeaderName(.contentLength), "0")
        return .request(.register, uri, headers: h)
    }

    /// An answer to the upstream's challenge, or nil when there is nothing (more) to try.
    private func credentials(for response: SIPMessage, uri: String) -> (String, String)? {
        guard let user = configuration.upstreamUsername, let password = configuration.upstreamPassword else { return nil }
        let (challengeHeader, answerHeader) = response.statusCode == 407
            ? (HeaderName(.proxyAuthenticate), "Proxy-Authorization") : (HeaderName(.wwwAuthenticate), "Authorization")
        for value in response.headers.values(challengeHeader) {
            guard let challenge = try? DigestChallenge.parse(value) else { continue }
            let c = DigestAuth.credentials(for: challenge, username: user, password: password, method: "REGISTER", uri: uri,
                                           cnonce: stack.newTag())
            return (answerHeader, c.headerValue)
        }
        return nil
    }

    /// Answers a request that came through an agent's Path: forwarded to its Request-URI when that
    /// is a registered agent's contact, 404 otherwise (Parley is no open relay).
    func pathTargets(for request: SIPMessage) -> [ProxyTarget] {
        guard let uri = request.requestURI, case .sip(var u) = uri else { return [] }
        u.parameters = []
        u.headers = []
        let known = state.agents.values.contains { a in
            guard case .sip(var c)? = try? URI.parse(a.contact) else { return false }
            c.parameters = []
            c.headers = []
            return c.description.lowercased() == u.description.lowercased()
        }
        guard known, let destination = proxy.resolve(uri) else { return [] }
        return [ProxyTarget(uri: uri, destination: destination)]
    }

    // MARK: Responses

    public func stack(_ stack: SIPStack, didReceiveResponse response: SIPMessage, transaction: TransactionKey) {
        guard let p = pending[transaction] else {
            proxy.stack(stack, didReceiveResponse: response, transaction: transaction)
            return
        }
        guard let code = response.statusCode, code >= 200 else { return }
        pending[transaction] = nil
        let forward = pendingForwards.removeValue(forKey: transaction)
        switch p {
        case .agent(let server, let agentID, let request, _, let authTried, let removesAll):
            if (code == 401 || code == 407), !authTried, let forward, let auth = credentials(for: response, uri: configuration.upstreamURI) {
                var up = agentUpstream[agentID]!
                up.cseq += 1
                agentUpstream[agentID] = up
                if let retry = agentRequest(forward, agentID: agentID, callID: up.callID, cseq: up.cseq, authorization: auth),
                   let key = stack.sendRequest(retry, to: configuration.upstream) {
                    pending[key] = .agent(server: server, agentID: agentID, request: retry, cseq: up.cseq, authTried: true, removesAll: removesAll)
                    pendingForwards[key] = forward
                    watch(key)
                    return
                }
            }
            agentsInFlight.remove(agentID)
            agentAnswered(response, code: code, server: server, agentID: agentID, request: request, forward: forward)
        case .address(let planned, let chunk, let authTried):
            if (code == 401 || code == 407), !authTried, let auth = credentials(for: response, uri: configuration.upstreamURI) {
                if sendAddress(planned, chunk: chunk, authorization: auth) { return }
            }
            if (200..<300).contains(code) {
                // The granted time of this part; the address counts from the shortest.
                for b in Self.chunks(of: planned)[chunk].set {
                    if let g = Self.grantedSeconds(response, contact: b.contact) { grantedSoFar[planned.aor] = min(grantedSoFar[planned.aor] ?? g, g) }
                }
                if chunk + 1 < Self.chunks(of: planned).count, sendAddress(planned, chunk: chunk + 1, authorization: nil) { return }
            }
            addressesInFlight.remove(planned.aor)
            addressAnswered(response, code: code, planned: planned)
        }
    }

    private func agentAnswered(_ response: SIPMessage, code: Int, server: TransactionKey, agentID: String, request: SIPMessage,
                               forward: AgentForward?) {
        let now = clock()
        guard (200..<300).contains(code), let forward else {
            counters.upstreamFailures += 1
            let (c, reason, headers) = Self.mapFailure(response)
            logger.warning("registration: upstream answered \(code) to \(agentID)'s REGISTER; the agent gets \(c); its bindings are unchanged")
            stack.respond(c, reason, to: server, extraHeaders: headers)
            return
        }
        counters.accepted += 1
        var extra: [(String, String)] = response.headers.values(HeaderName(.contact)).map { ("Contact", $0) }
        for p in response.headers.values(HeaderName(.path)) { extra.append(("Path", p)) }
        stack.respond(200, "OK", to: server, extraHeaders: extra)
        let up = agentUpstream[agentID] ?? ("", 0)
        if !forward.removesAll, let removed = forward.contact, forward.expires == 0 {
            // One contact removed (RFC 3261 10.2.2). Only the contact the fan-out is built on
            // takes the agent out of it, and not while the upstream still binds the agent
            // elsewhere: a stray or forged removal of another contact changes nothing.
            guard let tracked = state.agents[agentID], Self.sameContact(tracked.contact, removed) else {
                logger.info("registration: \(agentID) removed contact \(removed), not the one its fan-out uses; the fan-out stays")
                return
            }
            if let other = Self.remainingContact(response, without: removed) {
                let granted = Self.grantedSeconds(response, contact: other) ?? configuration.expires
                let a = AgentRegistration(agentID: agentID, aor: forward.aor, contact: other, expiresAtMs: now + Int64(granted) * 1000,
                                          upstreamCallID: up.callID, upstreamCSeq: up.cseq)
                state.agentRegistered(a)
                store?.saveAgent(a)
                logger.info("registration: \(agentID) removed \(removed); its fan-out goes on with \(other)")
                onContactsChanged?(state.agentContacts)
                scheduleReplan()
            } else {
                removeAgent(agentID)
            }
        } else if forward.removesAll {
            removeAgent(agentID)
        } else if let contact = forward.contact {
            let granted = Self.grantedSeconds(response, contact: contact) ?? forward.expires
            let a = AgentRegistration(agentID: agentID, aor: forward.aor, contact: contact, expiresAtMs: now + Int64(granted) * 1000,
                                      upstreamCallID: up.callID, upstreamCSeq: up.cseq)
            let changed = state.agents[agentID]?.contact != contact
            state.agentRegistered(a)
            store?.saveAgent(a)
            if let directory, directory.agent(agentID) == nil {
                directory.update(AgentInfo(id: agentID, skills: configuration.agentSkills[agentID] ?? [], state: .available, contact: contact))
            }
            if changed {
                onContactsChanged?(state.agentContacts)
                scheduleReplan()
            }
        }
    }

    /// The agent is registered nowhere any more: its fan-out bindings go.
    private func removeAgent(_ agentID: String) {
        guard state.agentRemoved(agentID) != nil else { return }
        store?.removeAgent(agentID)
        logger.info("registration: \(agentID) unregistered; its fan-out bindings go")
        agentUpstream[agentID] = nil
        onContactsChanged?(state.agentContacts)
        scheduleReplan()
    }

    private func addressAnswered(_ response: SIPMessage, code: Int, planned: PlannedRegister) {
        let now = clock()
        if (200..<300).contains(code) {
            let granted = grantedSoFar.removeValue(forKey: planned.aor) ?? configuration.expires
            state.confirmed(planned.aor, set: planned.desired, grantedSeconds: granted, nowMs: now, full: planned.full)
            if planned.reason != .refresh {
                let list = planned.desired.map { "\($0.contact) q=\(RegistrationQ.format($0.q))" }.joined(separator: ", ")
                logger.info("registration: \(planned.aor) now holds \(list)")
            }
        } else {
            grantedSoFar[planned.aor] = nil
            counters.addressFailures += 1
            let why = code == 0 ? "no answer" : "\(code) \(response.reasonPhrase ?? "")"
            state.failed(planned.aor, error: why, nowMs: now)
            logger.warning("registration: REGISTER for \(planned.aor) failed (\(why)); the bindings Parley knows of are kept, retried later")
        }
        if let r = state.addresses[planned.aor] { store?.saveAddress(r) }
        scheduleReplan()
    }

    public func stack(_ stack: SIPStack, didReceiveCancel cancel: SIPMessage, forInvite invite: TransactionKey) {
        proxy.stack(stack, didReceiveCancel: cancel, forInvite: invite)
    }

    public func stack(_ stack: SIPStack, transaction: TransactionKey, didFail failure: TransactionFailure) {
        guard pending[transaction] != nil else {
            proxy.stack(stack, transaction: transaction, didFail: failure)
            return
        }
        timedOut(transaction)
    }

    public func stack(_ stack: SIPStack, didTerminate transaction: TransactionKey) {
        proxy.stack(stack, didTerminate: transaction)
    }

    /// The upstream gets `upstreamTimeout` to answer.
    private func watch(_ key: TransactionKey) {
        stack.schedule(after: configuration.upstreamTimeout) { [weak self] in
            guard let self, self.pending[key] != nil else { return }
            self.timedOut(key)
        }
    }

    private func timedOut(_ key: TransactionKey) {
        guard let p = pending.removeValue(forKey: key) else { return }
        _ = pendingForwards.removeValue(forKey: key)
        switch p {
        case .agent(let server, let agentID, _, _, _, _):
            agentsInFlight.remove(agentID)
            counters.upstreamFailures += 1
            logger.warning("registration: the upstream registrar did not answer \(agentID)'s REGISTER; the agent gets 504; its bindings are unchanged")
            stack.respond(504, "Server Time-out: the upstream registrar did not answer", to: server)
        case .address(let planned, _, _):
            addressesInFlight.remove(planned.aor)
            addressAnswered(.response(0, "no answer"), code: 0, planned: planned)
        }
    }

    // MARK: The fan-out

    /// The bindings every contact-center address should have now.
    public func desiredBindings() -> [UpstreamBinding] {
        let contacts = state.agentContacts
        return FanOutPlan.desired(addresses: configuration.addresses, parleyContact: "", agentContacts: contacts,
                                  treatmentContacts: configuration.treatments,
                                  parleyContactFor: { "sip:\($0.name)@\(self.configuration.parleyHostPort)" }) { address in
            let able = contacts.keys.sorted().filter { id in
                guard let skill = address.skill, (self.configuration.agentSkills[id] ?? []).contains(skill) else { return false }
                return self.directory?.agent(id)?.state != .offline
            }
            guard !able.isEmpty else { return [] }
            guard let rules = self.rules else {
                return RegistrationQ.defaultOrder(able.map { ($0, 0) })
            }
            let kind: AddressInfo.Kind = address.kind == .skill ? .skill : .treatment
            let order = rules.orderRegistrations(for: AddressInfo(aor: address.aor, skill: address.skill, kind: kind, name: address.name),
                                                 agents: able)
            return order.bindings.map { ($0.agentID, Double($0.ruleQ) / 1000) }
        }
    }

    private func scheduleReplan() {
        guard !replanScheduled, !stopped else { return }
        replanScheduled = true
        stack.schedule(after: .milliseconds(20)) { [weak self] in
            self?.replanScheduled = false
            self?.replan()
        }
    }

    /// Expires agents, works out the bindings every address should have, and sends the
    /// REGISTERs that are due.
    public func replan() {
        guard !stopped else { return }
        counters.replans += 1
        let now = clock()
        let expired = state.expireAgents(nowMs: now)
        for gone in expired {
            logger.info("registration: \(gone.agentID)'s registration expired; its fan-out bindings go")
            store?.removeAgent(gone.agentID)
            agentUpstream[gone.agentID] = nil
        }
        if !expired.isEmpty { onContactsChanged?(state.agentContacts) }
        let planned = state.plan(desired: desiredBindings(), nowMs: now, inFlight: addressesInFlight) { aor in
            "fanout-\(aor.hashValue & 0xFFFFFFF)-\(self.stack.newTag())@parley"
        }
        for p in planned { _ = sendAddress(p, chunk: 0, authorization: nil) }
    }

    /// Contacts per REGISTER: an address with many agents is sent in parts, one after the other
    /// (same Call-ID, rising CSeq), each small enough for UDP.
    public static let contactsPerRegister = 12

    /// The parts of a planned REGISTER: bindings to set first, then those to remove.
    static func chunks(of p: PlannedRegister) -> [(set: [UpstreamBinding], remove: [UpstreamBinding])] {
        let entries = p.set.map { ($0, true) } + p.remove.map { ($0, false) }
        guard !entries.isEmpty else { return [([], [])] }
        return stride(from: 0, to: entries.count, by: contactsPerRegister).map { start in
            let part = entries[start..<min(start + contactsPerRegister, entries.count)]
            return (part.filter(\.1).map(\.0), part.filter { !$0.1 }.map(\.0))
        }
    }

    @discardableResult
    private func sendAddress(_ p: PlannedRegister, chunk: Int, authorization: (String, String)?) -> Bool {
        guard let record = state.addresses[p.aor] else { return false }
        let part = Self.chunks(of: p)[chunk]
        let cseq = state.nextCSeq(p.aor)
        let extra = authorization.map { [$0] } ?? []
        guard let request = try? FanOutPlan.register(aor: p.aor, registrar: configuration.upstreamURI, set: part.set, remove: part.remove,
                                                     expires: configuration.expires, callID: record.callID, cseq: cseq,
                                                     fromTag: "fan\(record.callID.hashValue & 0xFFFFF)", headers: extra),
              let key = stack.sendRequest(request, to: configuration.upstream) else {
            state.failed(p.aor, error: "cannot send", nowMs: clock())
            return false
        }
        counters.addressRegisters += 1
        addressesInFlight.insert(p.aor)
        pending[key] = .address(p, chunk: chunk, authTried: authorization != nil)
        watch(key)
        return true
    }
}

final class WeakRole: @unchecked Sendable { weak var role: RegistrationRole? }
