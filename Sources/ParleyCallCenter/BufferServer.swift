import Logging
import NIOCore
import ParleyRules
import ParleyDialog
import ParleySIP
import ParleyTransaction
import ParleyTransport

/// Where a handed-off INVITE's responses go back to when it did not arrive as a plain INVITE
/// transaction (the `message` and `tunnel` encodings).
public protocol HandoffReplyPath: AnyObject {
    /// Sends a response (or any message of the handed-off INVITE transaction) back to the distributor.
    func send(_ message: SIPMessage)
}

/// What the buffer server needs to know.
public struct BufferServerConfiguration: Sendable {
    /// The agents' contacts by id (from configuration; registrations later).
    public var agentContacts: [String: URI]
    /// The treatment systems' contacts by name (music on hold, announcements).
    public var treatmentContacts: [String: URI] = [:]
    /// Where call events (ended, live) go: the distributor. nil: nowhere.
    public var eventTarget: SIPDestination?
    /// The distributor's URI, for the Request-URI of event MESSAGEs.
    public var eventURI: URI?
    /// How often the list of live calls is sent to the distributor (reconciliation).
    public var heartbeatInterval: Duration
    /// How often each answered leg is probed with an in-dialog OPTIONS (a leg that answers 481
    /// or not at all ends the call: a lost BYE or a crashed phone). nil: no probing.
    public var probeInterval: Duration?
    /// How long to wait for the caller's ACK to a 2xx before giving the call up (64*T1).
    public var ackTimeout: Duration
    /// How long an `ended` event waits for others to share its MESSAGE (an agent is free again
    /// at the distributor this much later at most), and how many one MESSAGE carries.
    public var eventDelay: Duration = .milliseconds(10)
    public var eventBatch = 16
    /// The secret shared with the distributor (`security.handoff_secret`): handoffs from outside
    /// this process must be signed with it (`HandoffAuthenticator`), and our events are. nil:
    /// only the in-process handoff is taken.
    public var handoffSecret: [UInt8]?
    /// How far a handoff's timestamp may be from our clock.
    public var handoffWindow: Duration = .seconds(30)
    /// Networks whose unsigned `uri` handoffs are taken anyway (a lab's SIPp; empty by default).
    public var unsignedHandoffsFrom: [IPNetwork] = []

    public init(agentContacts: [String: URI] = [:], eventTarget: SIPDestination? = nil, eventURI: URI? = nil,
                heartbeatInterval: Duration = .seconds(5), probeInterval: Duration? = .seconds(30),
                ackTimeout: Duration = .seconds(32)) {
        self.agentContacts = agentContacts
        self.eventTarget = eventTarget
        self.eventURI = eventURI
        self.heartbeatInterval = heartbeatInterval
        self.probeInterval = probeInterval
        self.ackTimeout = ackTimeout
    }
}

/// The buffer server: a back-to-back user agent. It takes calls the distributor hands it (in any
/// of the three encodings), enters each in its routing table as a pair of legs, calls the agent,
/// and re-addresses every message between caller leg and agent leg in both directions: each leg
/// has its own Call-ID, tags, CSeq, Via, Contact and route set; SDP passes through.
///
/// Confined to its stack's event loop.
public final class BufferServer: SIPTransactionUser, @unchecked Sendable {
    public struct Counters: Sendable, Equatable {
        public var handoffs: [String: Int] = [:]
        public var answered = 0
        public var failed = 0
        public var cancelled = 0
        public var ended = 0
        public var relayedInDialog = 0
        public var refused = 0
        public var probesFailed = 0
        public var eventsSent = 0
        public var treatments = 0
        public var moves = 0
        public var movesFailed = 0
        /// Transfers agents asked for (REFER taken), and those that found no one.
        public var transfersAsked = 0
        public var transfersFailed = 0
        /// Handoffs and events refused 403 for want of a valid signature, by verdict.
        public var unauthenticated: [String: Int] = [:]
        public var unauthenticatedTotal: Int { unauthenticated.values.reduce(0, +) }
    }

    /// Sizes of every table the buffer server keeps: all zero when no call is up (no leak).
    public struct TableSizes: Sendable, Equatable, CustomStringConvertible {
        public var calls = 0
        public var dialogs = 0
        public var inviteTransactions = 0
        public var linkBranches = 0
        public var clientTransactions = 0
        public var onTreatment = 0
        public var moves = 0
        public var total: Int { calls + dialogs + inviteTransactions + linkBranches + clientTransactions + onTreatment + moves }
        public var description: String {
            "calls=\(calls) dialogs=\(dialogs) invite_transactions=\(inviteTransactions) link_branches=\(linkBranches) client_transactions=\(clientTransactions) on_treatment=\(onTreatment) moves=\(moves)"
        }
    }

    public let stack: SIPStack
    public var configuration: BufferServerConfiguration
    public var logger: Logger
    public internal(set) var counters = Counters()

    // The routing table: each call once, and the indexes that find it.
    var calls: [String: B2BCall] = [:]
    var dialogs: [DialogKey: (B2BCall, Side)] = [:]
    var byInviteTransaction: [TransactionKey: B2BCall] = [:]
    var byLinkBranch: [String: B2BCall] = [:]
    var clientTransactions: [TransactionKey: ClientPurpose] = [:]
    /// Calls whose caller is connected to a treatment, by the distributor's reference (a move
    /// finds them here).
    var onTreatment: [String: B2BCall] = [:]
    /// Calls being moved, by the distributor's move INVITE transaction.
    var byMove: [TransactionKey: B2BCall] = [:]
    var heartbeat: TimerToken?
    var probe: TimerToken?
    var eventCSeq: UInt32 = 0
    var pendingEvents: [CallEvent] = []
    var eventFlush: TimerToken?
    let eventCallID: String
    /// Signs our events and checks handoffs from outside the process.
    var auth: HandoffAuthenticator
    /// Wall-clock milliseconds (handoff timestamps come from another host's clock).
    let wallClock: @Sendable () -> Int64

    public init(stack: SIPStack, configuration: BufferServerConfiguration, logger: Logger = Logger(label: "parley.buffer"),
                wallClock: @escaping @Sendable () -> Int64 = RuleClock.system.nowMs) {
        self.stack = stack
        self.configuration = configuration
        self.logger = logger
        self.wallClock = wallClock
        self.auth = HandoffAuthenticator(secret: configuration.handoffSecret, windowMs: configuration.handoffWindow.milliseconds)
        self.eventCallID = "events-" + stack.newTag() + "@parley-buffer"
        stack.user = self
    }

    /// Starts the heartbeat and probing timers.
    public func start() {
        scheduleHeartbeat()
        scheduleProbe()
    }

    public func stop() {
        heartbeat?.cancel()
        probe?.cancel()
        flushEvents()
    }

    /// Registered contacts (agent id -> contact URI, from the registration role) take the place
    /// of the configured ones; an agent that is no longer registered goes back to its configured
    /// contact (or none). Calls already up keep the leg they have.
    public func useRegisteredContacts(_ registered: [String: String]) {
        if configuredContacts == nil { configuredContacts = configuration.agentContacts }
        var contacts = configuredContacts ?? [:]
        for (id, text) in registered {
            if let uri = try? URI.parse(text), Resolver.destination(for: uri) != nil {
                contacts[id] = uri
            } else {
                logger.warning("agent \(id)'s registered contact \(text) is not a SIP URI the buffer server can reach; keeping its configured contact")
            }
        }
        configuration.agentContacts = contacts
    }
    var configuredContacts: [String: URI]?

    /// Calls in the routing table.
    public var activeCalls: Int { calls.count }

    public var tableSizes: TableSizes {
        TableSizes(calls: calls.count, dialogs: dialogs.count, inviteTransactions: byInviteTransaction.count,
                   linkBranches: byLinkBranch.count, clientTransactions: clientTransactions.count, onTreatment: onTreatment.count,
                   moves: byMove.count)
    }

    /// The distributor references of the calls up now.
    public var liveCallReferences: [String] { calls.values.filter { !$0.over }.map(\.reference) }

    // MARK: Handoffs arriving

    public func stack(_ stack: SIPStack, didReceiveRequest request: SIPMessage, transaction: TransactionKey?, from source: SIPSource) {
        guard let key = transaction else {
            receivedACK(request, from: source)
            return
        }
        let ids = request.dialogIDs
        if let ids, ids.toTag != nil {
            inDialog(request, key: key, ids: ids, from: source)
            return
        }
        switch request.method {
        case .invite?:
            guard configuration.unsignedHandoffsFrom.contains(address: source.remote)
                    || authenticated(request, encoding: "uri", refuse: { stack.refuseStatelessly(403, "Forbidden", to: key) }) else { return }
            let treatment = HandoffWire.treatmentName(in: request.requestURI)
            guard let target = HandoffWire.agentID(in: request.requestURI) ?? treatment else {
                counters.refused += 1
                stack.respond(404, "Not Found: no agent in the Request-URI", to: key)
                return
            }
            if request.headers[HandoffWire.moveHeader] != nil {
                startMove(request, key: key, target: target, treatment: treatment != nil)
                return
            }
            startCall(request, agent: target, treatment: treatment != nil, encoding: .uri, ingress: .transaction(Held(key)))
        case .message?:
            receivedLinkMessage(request, key: key, source: source)
        case .options?:
            stack.respond(200, to: key, extraHeaders: [("Allow", Self.allow)])
        default:
            stack.respond(405, to: key, extraHeaders: [("Allow", Self.allow)])
        }
    }

    static let allow = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, MESSAGE"

    /// A `message` handoff: the MESSAGE is answered at once; what it carries is handled as if it
    /// had come as itself, and what goes back is carried in MESSAGEs the other way.
    func receivedLinkMessage(_ message: SIPMessage, key: TransactionKey, source: SIPSource) {
        guard authenticated(message, encoding: "message", refuse: { stack.refuseStatelessly(403, "Forbidden", to: key) }) else { return }
        if let ct = (try? message.contentType()) ?? nil, ct.essence == HandoffWire.eventType {
            let event = CallEvent(body: message.bodyText)
            if case .transferFailed(let reference, let code)? = event {
                stack.respond(transferFailed(reference, code: code) ? 200 : 481, to: key)
                return
            }
            guard case .hangup(let reference)? = event else {
                stack.respond(400, "Bad Request: not a control event", to: key)
                return
            }
            guard let call = onTreatment[reference], !call.over else {
                stack.respond(481, "Call Does Not Exist", to: key)
                return
            }
            stack.respond(200, to: key)
            endCall(call, reason: "the distributor gave the call up")
            return
        }
        guard let inner = HandoffWire.unwrap(message) else {
            stack.respond(415, "Unsupported Media Type", to: key, extraHeaders: [("Accept", HandoffWire.messageSIP)])
            return
        }
        stack.respond(200, to: key)
        let reply = Resolver.destination(for: message.contactURI ?? .sip(SIPURI(host: .name("invalid"))))
            ?? SIPDestination(transport: source.transport, address: source.remote)
        let fromURI = ((try? message.from()) ?? nil)?.uri
        let from = ((try? message.to()) ?? nil)?.uri.description ?? "sip:buffer"
        let to = fromURI?.description ?? "sip:distributor"
        let path = MessageReplyPath(server: self, destination: reply, requestURI: fromURI ?? .sip(SIPURI(host: .name("invalid"))),
                                    from: "<\(from)>;tag=\(stack.newTag())", to: "<\(to)>", callID: "h-" + stack.newTag() + "@parley-buffer")
        handoffReceived(inner, path: path, encoding: .message)
    }

    /// A handed-off message that came through a link (`message` or `tunnel`): an INVITE starts
    /// a call; a CANCEL cancels it; an ACK (for a non-2xx) is absorbed.
    public func handoffReceived(_ inner: SIPMessage, path: HandoffReplyPath, encoding: HandoffEncoding) {
        guard inner.isRequest, let branch = (try? inner.topVia())??.branch else {
            logger.info("handoff over \(encoding) without a request or a Via branch dropped")
            return
        }
        if encoding == .tunnel, inner.method == .invite || inner.method == .cancel {
            // The tunnel's peer proved itself at the handshake; each handoff is signed too.
            if inner.method == .invite, byLinkBranch[branch] != nil { return }  // a retransmission
            let refusal = SIPTransport.makeResponse(to: inner, code: 403, reason: "Forbidden", toTag: stack.newTag())
            guard authenticated(inner, encoding: "tunnel", refuse: { path.send(refusal) }) else { return }
        }
        switch inner.method {
        case .invite?:
            if byLinkBranch[branch] != nil { return }  // a retransmission
            guard let agent = HandoffWire.agentID(in: inner.requestURI) else {
                counters.refused += 1
                path.send(SIPTransport.makeResponse(to: inner, code: 404, reason: "Not Found: no agent in the Request-URI", toTag: stack.newTag()))
                return
            }
            // 100 Trying at once through the link (for `uri` the INVITE server transaction sends
            // one within 200 ms): the distributor may CANCEL only after a provisional (9.1).
            path.send(inner.makeTrying())
            startCall(inner, agent: agent, treatment: false, encoding: encoding, ingress: .link(path, branch: branch))
        case .cancel?:
            path.send(SIPTransport.makeResponse(to: inner, code: byLinkBranch[branch] == nil ? 481 : 200))
            if let call = byLinkBranch[branch] { callerCancelled(call) }
        case .ack?:
            break
        default:
            path.send(SIPTransport.makeResponse(to: inner, code: 405, toTag: stack.newTag()))
        }
    }

    /// Whether a request from outside the process carries a valid signature; if not, `refuse`
    /// answers it (403) and it is counted, before anything else is looked at.
    func authenticated(_ request: SIPMessage, encoding: String, refuse: () -> Void) -> Bool {
        let verdict = auth.verify(request, nowMs: wallClock())
        if verdict == .valid { return true }
        counters.unauthenticated[verdict.rawValue, default: 0] += 1
        logger.debug("\(encoding) handoff or event refused: signature \(verdict.rawValue)")
        refuse()
        return false
    }

    /// Checks the tunnel's handshake (`X-Parley-Auth` on the upgrade request).
    func tunnelHandshake(_ token: String?) -> Bool {
        let verdict = auth.verifyTunnel(token, nowMs: wallClock())
        if verdict == .valid { return true }
        tunnelRefused("handshake signature \(verdict.rawValue)", verdict: verdict.rawValue)
        return false
    }

    /// A tunnel connection refused (answered 403 before any WebSocket exists).
    func tunnelRefused(_ why: String, verdict: String = "peer") {
        counters.unauthenticated[verdict, default: 0] += 1
        logger.info("tunnel connection refused: \(why)")
    }

    /// The transport the caller's INVITE reached the distributor on: that of the Via below the
    /// distributor's own, which tops every handoff INVITE whatever the encoding (18.2.1: a Via
    /// names the transport its sender used). Nil when there is no such Via.
    static func callerIngressTransport(_ invite: SIPMessage) -> SIPTransportKind? {
        guard let via = (try? invite.via(at: 1)) ?? nil else { return nil }
        return SIPTransportKind(token: via.transport)
    }

    /// A user part with nothing that could smuggle an address.
    static func safeUser(_ user: String) -> String {
        String(user.prefix { $0 != "@" && $0 != ";" && $0 != ":" })
    }

    func contactHeader(toward destination: SIPDestination) -> String {
        guard let local = stack.transport.advertisedAddress(for: destination.transport, toward: destination.address) else {
            return "<sip:invalid>"
        }
        // One string per listener, shared by every call that keeps it (a call holds two).
        let key = ContactKey(local: local, transport: destination.transport)
        if let known = contacts[key] { return known }
        let contact = Resolver.contact(for: local, transport: destination.transport)
        if contacts.count < 64 { contacts[key] = contact }
        return contact
    }

    struct ContactKey: Hashable {
        var local: SocketAddress
        var transport: SIPTransportKind
    }
    var contacts: [ContactKey: String] = [:]
    /// Legs hung up here whose own BYE may still cross ours: kept 32 s (64*T1) to answer it 200.
    var retiredLegs: Set<DialogKey> = []

    /// A leg leaves the routing table (its BYE is on its way): its dialog is remembered a while.
    func retire(_ key: DialogKey) {
        dialogs[key] = nil
        retiredLegs.insert(key)
        stack.schedule(after: configuration.ackTimeout) { [weak self] in self?.retiredLegs.remove(key) }
    }
}
