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
    public private(set) var counters = Counters()

    // The routing table: each call once, and the indexes that find it.
    private var calls: [String: B2BCall] = [:]
    private var dialogs: [DialogKey: (B2BCall, Side)] = [:]
    private var byInviteTransaction: [TransactionKey: B2BCall] = [:]
    private var byLinkBranch: [String: B2BCall] = [:]
    private var clientTransactions: [TransactionKey: ClientPurpose] = [:]
    /// Calls whose caller is connected to a treatment, by the distributor's reference (a move
    /// finds them here).
    private var onTreatment: [String: B2BCall] = [:]
    /// Calls being moved, by the distributor's move INVITE transaction.
    private var byMove: [TransactionKey: B2BCall] = [:]
    private var heartbeat: TimerToken?
    private var probe: TimerToken?
    private var eventCSeq: UInt32 = 0
    private var pendingEvents: [CallEvent] = []
    private var eventFlush: TimerToken?
    private let eventCallID: String
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
    private var configuredContacts: [String: URI]?

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
    private func receivedLinkMessage(_ message: SIPMessage, key: TransactionKey, source: SIPSource) {
        guard authenticated(message, encoding: "message", refuse: { stack.refuseStatelessly(403, "Forbidden", to: key) }) else { return }
        if let ct = (try? message.contentType()) ?? nil, ct.essence == HandoffWire.eventType {
            guard case .hangup(let reference)? = CallEvent(body: message.bodyText) else {
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
    private func authenticated(_ request: SIPMessage, encoding: String, refuse: () -> Void) -> Bool {
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

    /// Enters a call in the routing table and calls the agent.
    private func startCall(_ invite: SIPMessage, agent: String, treatment: Bool, encoding: HandoffEncoding, ingress: CallerIngress) {
        counters.handoffs[encoding.rawValue, default: 0] += 1
        let refuse: (Int, String) -> Void = { [self] code, reason in
            counters.refused += 1
            let tag: String
            switch ingress {
            case .transaction(let key): tag = stack.localTag(of: key.value)
            case .link: tag = stack.newTag()
            }
            let r = SIPTransport.makeResponse(to: invite, code: code, reason: reason, toTag: tag)
            switch ingress {
            case .transaction(let key): stack.respond(r, to: key.value)
            case .link(let path, _): path.send(r)
            }
        }
        guard let contact = treatment ? configuration.treatmentContacts[agent] : configuration.agentContacts[agent],
              let agentHop = Resolver.destination(for: contact) else {
            return refuse(404, treatment ? "Not Found: unknown treatment \(agent)" : "Not Found: unknown agent \(agent)")
        }
        guard let callerFrom = (try? invite.from()) ?? nil, let callerTo = (try? invite.to()) ?? nil, let fromTag = callerFrom.tag,
              let callID = invite.callID, let cseq = (try? invite.cseq()) ?? nil else {
            return refuse(400, "Bad Request")
        }
        let mf = ((try? invite.maxForwards()) ?? nil) ?? 70
        guard mf > 0 else { return refuse(483, "Too Many Hops") }

        // Caller leg: we are the UAS (12.1.1). Its route set is the INVITE's Record-Route, in order.
        var callerLocal = callerTo
        callerLocal.parameters.remove("tag")
        var callerRemote = callerFrom
        callerRemote.parameters.remove("tag")
        let callerContact = invite.contactURI?.sipURI
        let callerTransport: SIPTransportKind = callerContact?.secure == true ? .tls
            : callerContact?.transportParameter.flatMap(SIPTransportKind.init(token:)) ?? .udp
        // Our To tag toward the caller: one for every response to its INVITE (8.2.6.2); for a
        // real transaction, the one the stack gives its own responses (a 100 has none).
        let callerTag: String
        switch ingress {
        case .transaction(let key): callerTag = stack.localTag(of: key.value)
        case .link: callerTag = stack.newTag()
        }
        let callerLeg = DialogLeg(callID: callID, localTag: callerTag, remoteTag: fromTag, local: callerLocal, remote: callerRemote,
                                  localCSeq: 0, remoteCSeq: cseq.sequence, remoteTarget: invite.contactURI,
                                  routeSet: invite.headers.elements(HeaderName(.recordRoute)), transport: callerTransport)

        guard var agentLeg = newAgentLeg(callerFrom: callerFrom, contact: contact, hop: agentHop) else {
            return refuse(500, "Server Internal Error: no listener toward the agent")
        }
        var agentInvite = agentLeg.makeRequest(.invite, contact: contactHeader(toward: agentHop), payload: invite)
        agentInvite.headers.set(HeaderName(.maxForwards), String(min(70, mf - 1)))

        let reference = invite.headers[HandoffWire.callHeader] ?? ("local-" + stack.newTag())
        let call = B2BCall(id: stack.newTag(), reference: reference, agentID: agent, encoding: encoding, callerInvite: invite,
                           ingress: ingress, caller: callerLeg, agent: agentLeg)
        if treatment {
            call.treatment = agent
            counters.treatments += 1
            if let old = onTreatment[reference], old !== call, !old.over { endCall(old, reason: "handed off again") }
            onTreatment[reference] = call
        }
        // Our Contact toward the caller names the transport of the caller's own Contact, or,
        // when that names none, the one its INVITE reached Parley on: a caller that came over
        // TCP sends its ACK and BYE over TCP too (if we listen on that transport). Requests to
        // the caller still go as its Contact says (RFC 3263: UDP when it names no transport).
        let callerHop = callerLeg.nextHop() ?? agentHop
        var contactHop = callerHop
        if invite.contactURI?.sipURI?.transportParameter == nil, let arrivedOn = Self.callerIngressTransport(invite),
           arrivedOn != callerHop.transport, stack.transport.advertisedAddress(for: arrivedOn, toward: callerHop.address) != nil {
            contactHop = SIPDestination(transport: arrivedOn, address: callerHop.address)
        }
        call.callerContact = contactHeader(toward: contactHop)
        call.agentContact = contactHeader(toward: agentHop)
        if let ours = stack.transport.advertisedListener(for: contactHop.transport, toward: contactHop.address) {
            call.caller.sdp = SDPSession(host: ours.ip)
        }
        calls[call.id] = call
        switch ingress {
        case .transaction(let key): byInviteTransaction[key.value] = call
        case .link(_, let branch): byLinkBranch[branch] = call
        }
        dialogs[DialogKey(callID: callerLeg.callID, localTag: callerLeg.localTag)] = (call, .caller)
        dialogs[DialogKey(callID: agentLeg.callID, localTag: agentLeg.localTag)] = (call, .agent)

        guard let key = stack.sendRequest(agentInvite, to: agentHop) else {
            failCall(call, code: 503, reason: "Service Unavailable: cannot reach the agent")
            return
        }
        call.agentInviteKey = key
        clientTransactions[key] = .agentInvite(call)
        logger.debug("call \(call.id) (\(reference)) from \(callID) to agent \(agent) via \(encoding)")
    }

    /// A leg toward an agent (or a treatment system): we are the UAC, with a Call-ID, tag and
    /// From of our own. The agent sees the caller's user part and display name (caller ID) at
    /// our host, never the caller's host.
    private func newAgentLeg(callerFrom: NameAddress, contact: URI, hop: SIPDestination) -> DialogLeg? {
        guard let listener = stack.transport.advertisedListener(for: hop.transport, toward: hop.address) else { return nil }
        let local = listener.local
        var fromURI = SIPURI(host: SIPHost.from(address: local, ip: listener.ip), port: local.port)
        fromURI.user = callerFrom.uri.user.map { Self.safeUser($0) }
        let agentLocal = NameAddress(displayName: callerFrom.displayName, uri: .sip(fromURI))
        var leg = DialogLeg(callID: "b2b-" + stack.newTag() + stack.newTag() + "@" + listener.hostPort, localTag: stack.newTag(),
                            remoteTag: nil, local: agentLocal, remote: NameAddress(uri: contact), localCSeq: 0,
                            remoteCSeq: nil, remoteTarget: contact, routeSet: [], transport: hop.transport)
        leg.sdp = SDPSession(host: listener.ip)
        return leg
    }

    // MARK: Moving a caller off a treatment

    /// The distributor moves a caller who is connected to a treatment to an agent (or another
    /// treatment): the buffer server calls the new party with the caller's original offer, and
    /// when it answers, re-INVITEs the caller with its answer and hangs up the treatment. The
    /// distributor's INVITE gets the new party's provisional and final responses.
    private func startMove(_ request: SIPMessage, key: TransactionKey, target: String, treatment: Bool) {
        let toTag = stack.newTag()
        let refuse: (Int, String) -> Void = { [self] code, reason in
            counters.movesFailed += 1
            stack.respond(SIPTransport.makeResponse(to: request, code: code, reason: reason, toTag: toTag), to: key)
        }
        guard let reference = request.headers[HandoffWire.callHeader], let call = onTreatment[reference], !call.over,
              call.callerAnswered else {
            return refuse(481, "Call Does Not Exist: no caller on a treatment with this reference")
        }
        guard call.move == nil else { return refuse(491, "Request Pending: the caller is being moved already") }
        guard let contact = treatment ? configuration.treatmentContacts[target] : configuration.agentContacts[target],
              let hop = Resolver.destination(for: contact) else {
            return refuse(404, treatment ? "Not Found: unknown treatment \(target)" : "Not Found: unknown agent \(target)")
        }
        guard let callerFrom = (try? call.callerInvite.from()) ?? nil, var leg = newAgentLeg(callerFrom: callerFrom, contact: contact, hop: hop) else {
            return refuse(500, "Server Internal Error: no listener toward the agent")
        }
        let contactHeader = contactHeader(toward: hop)
        let invite = leg.makeRequest(.invite, contact: contactHeader, payload: call.callerInvite)
        let move = Move(serverKey: key, request: request, target: target, treatment: treatment, leg: leg, contact: contactHeader, toTag: toTag)
        guard let client = stack.sendRequest(invite, to: hop) else {
            return refuse(503, "Service Unavailable: cannot reach \(target)")
        }
        move.clientKey = client
        call.move = move
        byMove[key] = call
        clientTransactions[client] = .moveInvite(call)
        counters.moves += 1
        logger.debug("call \(call.id) (\(reference)): moving the caller from \(call.agentID) to \(target)")
    }

    private func moveResponse(_ call: B2BCall, _ response: SIPMessage) {
        guard let move = call.move, let code = response.statusCode else {
            // A 2xx retransmission after the move completed: ACK it again.
            if (200..<300).contains(response.statusCode ?? 0), let ack = call.ackToAgent, let hop = call.agent.nextHop() {
                stack.sendStateless(ack, to: hop)
            }
            return
        }
        let reply: (Int, String?) -> Void = { [self] code, reason in
            var r = SIPTransport.makeResponse(to: move.request, code: code, reason: reason, toTag: move.toTag)
            if code < 300, let source = stack.source(of: move.serverKey) {
                r.headers.append(HeaderName(.contact), contactHeader(toward: SIPDestination(transport: source.transport, address: source.remote)))
            }
            stack.respond(r, to: move.serverKey)
        }
        switch code {
        case 100:
            return
        case 101...199:
            move.provisional = true
            if move.cancelPending { cancelMove(move) }
            if move.leg.remoteTag == nil, let tag = (try? response.to())??.tag { move.leg.remoteTag = tag }
            reply(code, response.reasonPhrase)
        case 200...299:
            move.final = true
            move.leg.remoteTag = (try? response.to())??.tag
            move.leg.remoteTarget = response.contactURI ?? move.leg.remoteTarget
            move.leg.routeSet = response.headers.elements(HeaderName(.recordRoute)).reversed()
            let cseq = (try? response.cseq())??.sequence ?? 1
            var ack: SIPMessage?
            if let hop = move.leg.nextHop() {
                var a = move.leg.makeRequest(.ack, contact: "", payload: nil, cseq: cseq)
                a.headers.prepend(HeaderName(.via), stack.makeVia(for: hop, branch: stack.newBranch()))
                stack.sendStateless(a, to: hop)
                ack = a
            }
            endMove(call)
            if call.over || move.cancelSent || move.cancelPending {
                // The caller hung up (or the distributor gave up) meanwhile: hang up the new party.
                byeLeg(call, move.leg)
                reply(487, "Request Terminated")
                finishIfDone(call)
                return
            }
            // Hang up the treatment, put the new party in its place, re-INVITE the caller.
            let old = call.agent
            if call.agentAnswered, !call.byeSent[.agent] { byeLeg(call, old) }
            dialogs[DialogKey(callID: old.callID, localTag: old.localTag)] = nil
            call.agent = move.leg
            call.forgetFlow(.agent)
            call.agentID = move.target
            call.agentContact = move.contact
            call.agentInviteCSeq = cseq
            call.ackToAgent = ack
            releaseAck(call)
            call.agentAnswered = true
            call.byeSent[.agent] = false
            call.pendingAck = PerSide(caller: nil, agent: nil)
            call.lastRelayedAck = PerSide(caller: nil, agent: nil)
            dialogs[DialogKey(callID: move.leg.callID, localTag: move.leg.localTag)] = (call, .agent)
            if move.treatment {
                call.treatment = move.target
            } else {
                call.treatment = nil
                onTreatment[call.reference] = nil
                if call.callerAcked { call.releaseCallerInvite() }
            }
            reinviteCaller(call, with: response)
            reply(200, "OK")
        default:
            move.final = true
            endMove(call)
            counters.movesFailed += 1
            reply(code, response.reasonPhrase)
            finishIfDone(call)
        }
    }

    private func endMove(_ call: B2BCall) {
        guard let move = call.move else { return }
        call.move = nil
        byMove[move.serverKey] = nil
    }

    private func cancelMove(_ move: Move) {
        guard !move.final, !move.cancelSent, let key = move.clientKey else { return }
        if move.provisional {
            move.cancelSent = true
            move.cancelPending = false
            stack.cancel(key)
        } else {
            move.cancelPending = true
        }
    }

    /// Sends the caller the new party's session description in a re-INVITE.
    private func reinviteCaller(_ call: B2BCall, with answer: SIPMessage) {
        var leg = call.caller
        let reinvite = leg.makeRequest(.invite, contact: call.callerContact, payload: answer)
        call.caller = leg
        guard let hop = call.hop(.caller), let key = stack.sendRequest(reinvite, to: hop) else {
            endCall(call, reason: "cannot re-INVITE the caller")
            return
        }
        clientTransactions[key] = .reinvite(call)
    }

    private func reinviteResponse(_ call: B2BCall, _ response: SIPMessage) {
        guard let code = response.statusCode, code >= 200 else { return }
        if code >= 300 {
            logger.info("call \(call.id): the caller refused the move (\(code)); hanging up")
            endCall(call, reason: "move refused")
            return
        }
        guard let hop = call.hop(.caller) else { return }
        var leg = call.caller
        var ack = leg.makeRequest(.ack, contact: "", payload: nil, cseq: (try? response.cseq())??.sequence ?? leg.localCSeq)
        ack.headers.prepend(HeaderName(.via), stack.makeVia(for: hop, branch: stack.newBranch()))
        stack.sendStateless(ack, to: hop)
    }

    /// A BYE on a leg that is no longer (or not yet) the call's agent leg.
    private func byeLeg(_ call: B2BCall, _ leg: DialogLeg) {
        var l = leg
        let bye = l.makeRequest(.bye, contact: "", payload: nil)
        if let hop = l.nextHop(), let key = stack.sendRequest(bye, to: hop) {
            clientTransactions[key] = .bye(call)
            call.outstanding += 1
        }
    }

    /// The transport the caller's INVITE reached the distributor on: that of the Via below the
    /// distributor's own, which tops every handoff INVITE whatever the encoding (18.2.1: a Via
    /// names the transport its sender used). Nil when there is no such Via.
    static func callerIngressTransport(_ invite: SIPMessage) -> SIPTransportKind? {
        guard let vias = try? invite.vias(), vias.count >= 2 else { return nil }
        return SIPTransportKind(token: vias[1].transport)
    }

    /// A user part with nothing that could smuggle an address.
    static func safeUser(_ user: String) -> String {
        String(user.prefix { $0 != "@" && $0 != ";" && $0 != ":" })
    }

    private func contactHeader(toward destination: SIPDestination) -> String {
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

    private struct ContactKey: Hashable {
        var local: SocketAddress
        var transport: SIPTransportKind
    }
    private var contacts: [ContactKey: String] = [:]

    // MARK: The caller leg's INVITE transaction

    public func stack(_ stack: SIPStack, didReceiveCancel cancel: SIPMessage, forInvite invite: TransactionKey) {
        if let call = byInviteTransaction[invite] { callerCancelled(call) }
        if let call = byMove[invite], let move = call.move { cancelMove(move) }
    }

    /// CANCEL from the caller's side before an answer (9.2): 487 to the caller at once, and the
    /// agent leg cancelled (after its first provisional, 9.1).
    private func callerCancelled(_ call: B2BCall) {
        guard !call.callerFinalSent else { return }
        counters.cancelled += 1
        sendToCaller(call, SIPTransport.makeResponse(to: call.callerInvite, code: 487, toTag: call.caller.localTag), final: true)
        cancelAgent(call)
        finishIfDone(call)
    }

    private func cancelAgent(_ call: B2BCall) {
        guard !call.agentFinal, !call.cancelSent, let key = call.agentInviteKey else { return }
        if call.agentProvisional {
            call.cancelSent = true
            stack.cancel(key)
        } else {
            call.cancelPending = true
        }
    }

    private func sendToCaller(_ call: B2BCall, _ response: SIPMessage, final: Bool) {
        if final {
            call.callerFinalSent = true
            call.callerAnswered = (200..<300).contains(response.statusCode ?? 0)
        }
        switch call.ingress {
        case .transaction(let key): stack.respond(response, to: key.value)
        case .link(let path, _): path.send(response)
        }
    }

    /// A response of the agent's INVITE, re-addressed for the caller leg.
    private func callerResponse(_ call: B2BCall, from agentResponse: SIPMessage) -> SIPMessage {
        let code = agentResponse.statusCode ?? 500
        var r = SIPTransport.makeResponse(to: call.callerInvite, code: code, reason: agentResponse.reasonPhrase, toTag: call.caller.localTag)
        if code < 300 {
            for rr in call.callerInvite.headers.values(HeaderName(.recordRoute)) { r.headers.append(HeaderName(.recordRoute), rr) }
            r.headers.append(HeaderName(.contact), call.callerContact)
        }
        HeaderPolicy.copyPayload(from: agentResponse, into: &r)
        call.caller.ownSDP(&r)
        return r
    }

    private func agentInviteResponse(_ call: B2BCall, _ response: SIPMessage) {
        guard let code = response.statusCode else { return }
        switch code {
        case 100:
            return
        case 101...199:
            call.agentProvisional = true
            if call.cancelPending, let key = call.agentInviteKey {
                call.cancelPending = false
                call.cancelSent = true
                stack.cancel(key)
                return
            }
            if call.agent.remoteTag == nil, let tag = (try? response.to())??.tag { call.agent.remoteTag = tag }
            if !call.callerFinalSent { sendToCaller(call, callerResponse(call, from: response), final: false) }
        case 200...299:
            if call.agentFinal {
                // A retransmission: the agent has not had our ACK (or it was lost).
                if let ack = call.ackToAgent, let hop = call.agent.nextHop() { stack.sendStateless(ack, to: hop) }
                else if !call.callerAcked, !call.over { sendToCaller(call, callerResponse(call, from: response), final: false) }
                return
            }
            call.agentFinal = true
            call.agentAnswered = true
            call.agentProvisional = true
            call.agentInviteKey = nil  // nothing left to CANCEL
            // The agent leg's dialog (12.1.2): remote tag, target, route set reversed.
            call.agent.remoteTag = (try? response.to())??.tag
            call.agent.remoteTarget = response.contactURI ?? call.agent.remoteTarget
            call.agent.routeSet = response.headers.elements(HeaderName(.recordRoute)).reversed()
            call.agentInviteCSeq = (try? response.cseq())??.sequence ?? 1
            if call.callerFinalSent {
                // The caller is gone (cancelled or failed meanwhile): ACK and hang up the agent.
                ackAgent(call, payload: nil)
                hangUp(call, side: .agent)
                return
            }
            counters.answered += 1
            sendToCaller(call, callerResponse(call, from: response), final: true)
            call.ackTimer = stack.schedule(after: configuration.ackTimeout) { [weak self, weak call] in
                guard let self, let call, !call.callerAcked, !call.over else { return }
                self.logger.info("call \(call.id): no ACK from the caller; hanging up both legs")
                self.endCall(call, reason: "no ACK")
            }
        default:
            call.agentFinal = true
            if !call.callerFinalSent {
                counters.failed += 1
                sendToCaller(call, callerResponse(call, from: response), final: true)
            }
            finishIfDone(call)
        }
    }

    private func failCall(_ call: B2BCall, code: Int, reason: String) {
        call.agentFinal = true
        if !call.callerFinalSent {
            counters.failed += 1
            sendToCaller(call, SIPTransport.makeResponse(to: call.callerInvite, code: code, reason: reason, toTag: call.caller.localTag), final: true)
        }
        finishIfDone(call)
    }

    // MARK: ACK

    private func receivedACK(_ ack: SIPMessage, from source: SIPSource) {
        guard let ids = ack.dialogIDs, let toTag = ids.toTag,
              let (call, side) = dialogs[DialogKey(callID: ids.callID, localTag: toTag)] else { return }
        call.noteFlow(side, from: source)
        let number = ((try? ack.cseq()) ?? nil)?.sequence
        if side == .caller, number == call.caller.remoteCSeq, call.callerAnswered, !call.callerAcked {
            // The ACK for the answer: on to the agent (with the SDP answer, if the offer was late).
            call.callerAcked = true
            call.ackTimer?.cancel()
            call.ackTimer = nil
            if call.treatment == nil { call.releaseCallerInvite() }
            // A handoff through a link has no transaction whose end forgets its branch: nothing
            // more of that handoff can come once its answer is ACKed.
            if case .link(_, let branch) = call.ingress, byLinkBranch[branch] === call { byLinkBranch[branch] = nil }
            if !call.over { ackAgent(call, payload: ack) }
            return
        }
        // The ACK for a relayed re-INVITE's 2xx.
        if let pending = call.pendingAck[side], pending.incoming == number {
            call.pendingAck[side] = nil
            var other = call.leg(side.other)
            var a = other.makeRequest(.ack, contact: "", payload: ack, cseq: pending.outgoing)
            call.setLeg(side.other, other)
            guard let hop = call.hop(side.other) else { return }
            a.headers.prepend(HeaderName(.via), stack.makeVia(for: hop, branch: stack.newBranch()))
            call.lastRelayedAck[side.other] = a
            stack.sendStateless(a, to: hop)
        }
    }

    private func ackAgent(_ call: B2BCall, payload: SIPMessage?) {
        guard let hop = call.agent.nextHop() else { return }
        var a = call.agent.makeRequest(.ack, contact: "", payload: payload, cseq: call.agentInviteCSeq)
        a.headers.prepend(HeaderName(.via), stack.makeVia(for: hop, branch: stack.newBranch()))
        call.ackToAgent = a
        releaseAck(call)
        stack.sendStateless(a, to: hop)
    }

    /// The ACK sent to the agent answers its 2xx retransmissions, which stop within 64*T1: then
    /// it goes.
    private func releaseAck(_ call: B2BCall) {
        stack.schedule(after: configuration.ackTimeout) { [weak call] in call?.ackToAgent = nil }
    }

    // MARK: In-dialog requests, either side

    private func inDialog(_ request: SIPMessage, key: TransactionKey, ids: (callID: String, fromTag: String?, toTag: String?),
                          from source: SIPSource) {
        guard let toTag = ids.toTag, let (call, side) = dialogs[DialogKey(callID: ids.callID, localTag: toTag)] else {
            stack.respond(481, to: key)
            return
        }
        call.noteFlow(side, from: source)
        let unsupported = HeaderPolicy.unsupportedRequired(request)
        if !unsupported.isEmpty, request.method != .ack, request.method != .cancel {
            stack.respond(420, "Bad Extension", to: key, extraHeaders: [("Unsupported", unsupported.joined(separator: ", "))])
            return
        }
        var leg = call.leg(side)
        let number = ((try? request.cseq()) ?? nil)?.sequence ?? 0
        if let last = leg.remoteCSeq, number < last, request.method != .ack {
            stack.respond(500, "Server Internal Error: CSeq out of order", to: key)
            return
        }
        leg.remoteCSeq = number
        if request.method == .invite || request.method == .update, let target = request.contactURI {
            leg.remoteTarget = target  // a target refresh (12.2.2)
        }
        call.setLeg(side, leg)
        switch request.method {
        case .bye?:
            stack.respond(200, to: key)
            if !call.callerFinalSent {
                // A BYE in an early dialog: from the caller it is a CANCEL; from the agent, a refusal.
                if side == .caller {
                    callerCancelled(call)
                } else {
                    failCall(call, code: 480, reason: "Temporarily Unavailable")
                }
            }
            hangUp(call, side: side.other)
        case .cancel?:
            stack.respond(481, to: key)
        default:
            guard !call.over, call.callerAnswered, call.agent.remoteTag != nil else {
                stack.respond(call.over ? 481 : 491, to: key)
                return
            }
            relay(request, key: key, call: call, from: side)
        }
    }

    /// Sends the same request on the other leg, re-addressed; its responses come back to `key`.
    private func relay(_ request: SIPMessage, key: TransactionKey, call: B2BCall, from side: Side) {
        guard let method = request.method else { return }
        var other = call.leg(side.other)
        let contact = side.other == .caller ? call.callerContact : call.agentContact
        let out = other.makeRequest(method, contact: contact, payload: request)
        call.setLeg(side.other, other)
        guard let hop = call.hop(side.other), let client = stack.sendRequest(out, to: hop) else {
            stack.respond(503, to: key)
            return
        }
        counters.relayedInDialog += 1
        if method == .invite {
            call.pendingAck[side] = (incoming: ((try? request.cseq()) ?? nil)?.sequence ?? 0, outgoing: other.localCSeq)
        }
        clientTransactions[client] = .relay(call, server: key, request: request, from: side)
    }

    private func relayResponse(_ response: SIPMessage, server: TransactionKey, request: SIPMessage, call: B2BCall, from side: Side) {
        guard let code = response.statusCode, code > 100 else { return }
        var r = SIPTransport.makeResponse(to: request, code: code, reason: response.reasonPhrase)
        if code < 300, request.method == .invite || request.method == .update || request.method == .subscribe {
            r.headers.append(HeaderName(.contact), side == .caller ? call.callerContact : call.agentContact)
        }
        HeaderPolicy.copyPayload(from: response, into: &r)
        var leg = call.leg(side)
        leg.ownSDP(&r)
        call.setLeg(side, leg)
        if code >= 200, request.method == .invite {
            if code >= 300 { call.pendingAck[side] = nil }
            if code < 300, let ack = call.lastRelayedAck[side.other], call.pendingAck[side] == nil,
               let hop = call.hop(side.other), ((try? ack.cseq()) ?? nil)?.sequence == ((try? response.cseq()) ?? nil)?.sequence {
                // A retransmitted 2xx that we have ACKed already.
                stack.sendStateless(ack, to: hop)
                return
            }
        }
        stack.respond(r, to: server)
    }

    // MARK: Ending

    /// Whether `side` has a confirmed dialog to hang up.
    private func established(_ call: B2BCall, _ side: Side) -> Bool {
        side == .caller ? call.callerAnswered : call.agentAnswered
    }

    private func sendBye(_ call: B2BCall, _ side: Side) {
        guard !call.byeSent[side], established(call, side) else { return }
        call.byeSent[side] = true
        var leg = call.leg(side)
        let bye = leg.makeRequest(.bye, contact: "", payload: nil)
        call.setLeg(side, leg)
        if let hop = call.hop(side), let key = stack.sendRequest(bye, to: hop) {
            clientTransactions[key] = .bye(call)
            call.outstanding += 1
        }
    }

    /// The other side hung up (or is gone): BYE on `side`, the call is over, the distributor told.
    private func hangUp(_ call: B2BCall, side: Side) {
        call.over = true
        if let move = call.move { cancelMove(move) }
        call.ackTimer?.cancel()
        sendBye(call, side)
        if call.callerAnswered, !call.endedReported {
            call.endedReported = true
            counters.ended += 1
            queueEvent(.ended(call: call.reference, agent: call.agentID))
        }
        finishIfDone(call)
    }

    /// Ends an answered call from here: BYE on both legs.
    private func endCall(_ call: B2BCall, reason: String) {
        logger.debug("call \(call.id) ended here: \(reason)")
        sendBye(call, .caller)
        hangUp(call, side: .agent)
    }

    /// Removes a call from the routing table once nothing of it is left: the caller has its final
    /// answer and, for an answered call, both legs are hung up and their BYEs done.
    private func finishIfDone(_ call: B2BCall) {
        guard calls[call.id] != nil, call.callerFinalSent, call.agentFinal || call.agentGone, call.outstanding == 0, call.move == nil else { return }
        if call.callerAnswered && !call.over { return }
        calls[call.id] = nil
        dialogs[DialogKey(callID: call.caller.callID, localTag: call.caller.localTag)] = nil
        dialogs[DialogKey(callID: call.agent.callID, localTag: call.agent.localTag)] = nil
        switch call.ingress {
        case .transaction(let key): byInviteTransaction[key.value] = nil
        case .link(_, let branch): byLinkBranch[branch] = nil
        }
        if onTreatment[call.reference] === call { onTreatment[call.reference] = nil }
        call.ackTimer?.cancel()
        logger.debug("call \(call.id) left the routing table")
    }

    // MARK: Responses and transaction ends

    public func stack(_ stack: SIPStack, didReceiveResponse response: SIPMessage, transaction: TransactionKey) {
        guard let purpose = clientTransactions[transaction] else { return }
        switch purpose {
        case .agentInvite(let call):
            if transaction.method == .invite { agentInviteResponse(call, response) }
        case .relay(let call, let server, let request, let side):
            relayResponse(response, server: server, request: request, call: call, from: side)
        case .bye(let call):
            if (response.statusCode ?? 0) >= 200 { byeDone(call, transaction) }
        case .probe(let call, let side):
            if let code = response.statusCode, code == 481 || code == 408 { probeFailed(call, side) }
        case .moveInvite(let call):
            if transaction.method == .invite { moveResponse(call, response) }
        case .reinvite(let call):
            if transaction.method == .invite { reinviteResponse(call, response) }
        case .event:
            break
        }
    }

    public func stack(_ stack: SIPStack, transaction: TransactionKey, didFail failure: TransactionFailure) {
        guard let purpose = clientTransactions[transaction] else { return }
        switch purpose {
        case .agentInvite(let call):
            guard !call.agentFinal else { return }
            call.agentGone = true
            let (code, reason) = failure == .transportError ? (503, "Service Unavailable") : (408, "Request Timeout")
            failCall(call, code: code, reason: reason)
        case .relay(let call, let server, let request, let side):
            let code = failure == .transportError ? 503 : 408
            relayResponse(SIPTransport.makeResponse(to: request, code: code), server: server, request: request, call: call, from: side)
        case .bye(let call):
            byeDone(call, transaction)
        case .probe(let call, let side):
            probeFailed(call, side)
        case .moveInvite(let call):
            if let move = call.move, move.clientKey == transaction, !move.final {
                moveResponse(call, SIPTransport.makeResponse(to: move.request, code: failure == .transportError ? 503 : 408))
            }
        case .reinvite(let call):
            endCall(call, reason: "the caller did not answer the re-INVITE")
        case .event:
            break
        }
    }

    public func stack(_ stack: SIPStack, didTerminate transaction: TransactionKey) {
        // The caller's INVITE transaction is over: nothing can reach the call through it any more
        // (a CANCEL needs it alive), so the index entry goes now rather than with the call.
        if byInviteTransaction.removeValue(forKey: transaction) != nil { return }
        if byMove.removeValue(forKey: transaction) != nil { return }
        guard let purpose = clientTransactions.removeValue(forKey: transaction) else { return }
        switch purpose {
        case .agentInvite(let call):
            if !call.agentFinal {
                call.agentGone = true
                failCall(call, code: 408, reason: "Request Timeout")
            }
            finishIfDone(call)
        case .bye(let call):
            byeDone(call, transaction)
        case .moveInvite(let call):
            if let move = call.move, move.clientKey == transaction, !move.final {
                moveResponse(call, SIPTransport.makeResponse(to: move.request, code: 408))
            }
        default:
            break
        }
    }

    private func byeDone(_ call: B2BCall, _ key: TransactionKey) {
        guard call.finishedByes.insert(key).inserted else { return }
        call.outstanding -= 1
        finishIfDone(call)
    }

    // MARK: Reconciliation: probes and heartbeats

    private func scheduleProbe() {
        guard let interval = configuration.probeInterval else { return }
        probe = stack.schedule(after: interval) { [weak self] in
            guard let self else { return }
            for call in self.calls.values where call.callerAcked && !call.over {
                for side in [Side.caller, .agent] { self.sendProbe(call, side) }
            }
            self.scheduleProbe()
        }
    }

    private func sendProbe(_ call: B2BCall, _ side: Side) {
        var leg = call.leg(side)
        let options = leg.makeRequest(.options, contact: side == .caller ? call.callerContact : call.agentContact, payload: nil)
        call.setLeg(side, leg)
        if let hop = call.hop(side), let key = stack.sendRequest(options, to: hop) {
            clientTransactions[key] = .probe(call, side)
        }
    }

    private func probeFailed(_ call: B2BCall, _ side: Side) {
        guard !call.over else { return }
        counters.probesFailed += 1
        logger.info("call \(call.id): the \(side) leg is gone (probe failed); hanging up the other")
        call.byeSent[side] = true  // nobody there to hang up
        hangUp(call, side: side.other)
    }

    private func scheduleHeartbeat() {
        guard configuration.eventTarget != nil else { return }
        heartbeat = stack.schedule(after: configuration.heartbeatInterval) { [weak self] in
            guard let self else { return }
            self.sendEvent(.live(calls: self.liveCallReferences))
            self.scheduleHeartbeat()
        }
    }

    /// Sends a call event to the distributor in a MESSAGE.
    public func sendEvent(_ event: CallEvent) {
        flushEvents()  // what ended before goes first
        sendEvents([event])
    }

    private func sendEvents(_ events: [CallEvent]) {
        guard let target = configuration.eventTarget else { return }
        eventCSeq += 1
        let uri = configuration.eventURI ?? .sip(SIPURI(user: "distributor", host: SIPHost.from(address: target.address), port: target.address.port))
        let local = stack.transport.advertisedAddress(for: target.transport, toward: target.address)
        var m = HandoffWire.eventMessage(events, requestURI: uri, from: "<sip:buffer@\(local.map(hostPort) ?? "invalid")>;tag=\(eventCallID.prefix(12))",
                                         to: "<\(uri)>", callID: eventCallID, cseq: eventCSeq)
        auth.sign(&m, nowMs: wallClock())
        if let key = stack.sendRequest(m, to: target) {
            clientTransactions[key] = .event
            counters.eventsSent += events.count
        }
    }

    /// Calls that end go to the distributor together: one MESSAGE for what ended within
    /// `eventDelay`, at most `eventBatch` to a MESSAGE (so it stays one datagram), instead of one
    /// MESSAGE (and two transactions) per call.
    func queueEvent(_ event: CallEvent) {
        guard configuration.eventTarget != nil else { return }
        pendingEvents.append(event)
        if pendingEvents.count >= configuration.eventBatch {
            flushEvents()
        } else if eventFlush == nil {
            eventFlush = stack.schedule(after: configuration.eventDelay) { [weak self] in
                self?.eventFlush = nil
                self?.flushEvents()
            }
        }
    }

    /// Sends the queued events now.
    public func flushEvents() {
        eventFlush?.cancel()
        eventFlush = nil
        guard !pendingEvents.isEmpty else { return }
        let events = pendingEvents
        pendingEvents = []
        sendEvents(events)
    }

    /// Sends a MESSAGE for a reply path (the `message` encoding).
    func sendLinkMessage(_ message: SIPMessage, to destination: SIPDestination) {
        var message = message
        auth.sign(&message, nowMs: wallClock())
        if let key = stack.sendRequest(message, to: destination) { clientTransactions[key] = .event }
    }
}

// MARK: - The routing table's entries

enum Side: Sendable, CustomStringConvertible {
    case caller, agent
    var other: Side { self == .caller ? .agent : .caller }
    var description: String { self == .caller ? "caller" : "agent" }
}

struct DialogKey: Hashable {
    var callID: String
    var localTag: String
}

enum CallerIngress {
    /// `uri`: a real INVITE server transaction (its key boxed: inline it would make every
    /// call's entry 80 bytes larger).
    case transaction(Held<TransactionKey>)
    /// `message` or `tunnel`: responses go back through the link; `branch` is the handoff Via's.
    case link(HandoffReplyPath, branch: String)
}

enum ClientPurpose {
    case agentInvite(B2BCall)
    case relay(B2BCall, server: TransactionKey, request: SIPMessage, from: Side)
    case bye(B2BCall)
    case probe(B2BCall, Side)
    case moveInvite(B2BCall)
    case reinvite(B2BCall)
    case event
}

/// A caller being moved off a treatment: the INVITE to the new party, and the distributor's
/// INVITE that asked for it.
final class Move {
    let serverKey: TransactionKey
    let request: SIPMessage
    let target: String
    let treatment: Bool
    var leg: DialogLeg
    let contact: String
    let toTag: String
    var clientKey: TransactionKey?
    var provisional = false
    var final = false
    var cancelPending = false
    var cancelSent = false

    init(serverKey: TransactionKey, request: SIPMessage, target: String, treatment: Bool, leg: DialogLeg, contact: String, toTag: String) {
        self.serverKey = serverKey
        self.request = request
        self.target = target
        self.treatment = treatment
        self.leg = leg
        self.contact = contact
        self.toTag = toTag
    }
}

struct PerSide<T> {
    var caller: T
    var agent: T
    subscript(side: Side) -> T {
        get { side == .caller ? caller : agent }
        set { if side == .caller { caller = newValue } else { agent = newValue } }
    }
}

/// One entry of the routing table: the caller leg and the agent leg of one call.
final class B2BCall {
    let id: String
    /// The distributor's reference (`X-Parley-Call`).
    let reference: String
    /// The agent's id, or the treatment's name while the caller is on one.
    var agentID: String
    /// The treatment the caller is connected to (nil: an agent).
    var treatment: String?
    /// A move in progress.
    var move: Move?
    let encoding: HandoffEncoding
    /// The handed-off INVITE as received (responses to the caller leg are built from it, and a
    /// move's INVITE to the agent). Released once the caller has ACKed an answer that is not a
    /// treatment: it is most of what a call weighs (the datagram, header lines, the offer).
    ///
    /// What a call holds only for a while (messages, the agent INVITE's key) is boxed: a message
    /// stored inline takes its full size in every call even when nil, and most calls spend
    /// nearly all their life holding none.
    private var keptInvite: Held<SIPMessage>?
    var callerInvite: SIPMessage { keptInvite?.value ?? B2BCall.released }
    static let released = SIPMessage.request(.invite, .sip(SIPURI(host: .name("invalid"))))
    func releaseCallerInvite() { keptInvite = nil }
    let ingress: CallerIngress
    var caller: DialogLeg
    var agent: DialogLeg
    var callerContact = ""
    var agentContact = ""
    private var agentInviteBox: Held<TransactionKey>?
    var agentInviteKey: TransactionKey? {
        get { agentInviteBox?.value }
        set { agentInviteBox = newValue.map(Held.init) }
    }
    var agentInviteCSeq: UInt32 = 1
    var agentProvisional = false
    var agentFinal = false
    var agentGone = false
    var agentAnswered = false
    var cancelPending = false
    var cancelSent = false
    private var ackBox: Held<SIPMessage>?
    /// The ACK sent to the agent, kept for 64*T1 to answer its 2xx retransmissions.
    var ackToAgent: SIPMessage? {
        get { ackBox?.value }
        set { ackBox = newValue.map(Held.init) }
    }
    var callerFinalSent = false
    var callerAnswered = false
    var callerAcked = false
    var over = false
    var endedReported = false
    var byeSent = PerSide(caller: false, agent: false)
    var outstanding = 0
    var finishedByes: Set<TransactionKey> = []
    var ackTimer: TimerToken?
    /// Per side that sent a re-INVITE: its CSeq and the CSeq of the one we sent on the other leg.
    var pendingAck = PerSide<(incoming: UInt32, outgoing: UInt32)?>(caller: nil, agent: nil)
    private var relayedAckBoxes = PerSide<Held<SIPMessage>?>(caller: nil, agent: nil)
    /// The last ACK relayed to each side for a re-INVITE's 2xx (answers its retransmissions).
    var lastRelayedAck: PerSide<SIPMessage?> {
        get { PerSide(caller: relayedAckBoxes.caller?.value, agent: relayedAckBoxes.agent?.value) }
        set { relayedAckBoxes = PerSide(caller: newValue.caller.map(Held.init), agent: newValue.agent.map(Held.init)) }
    }

    init(id: String, reference: String, agentID: String, encoding: HandoffEncoding, callerInvite: SIPMessage,
         ingress: CallerIngress, caller: DialogLeg, agent: DialogLeg) {
        self.id = id
        self.reference = reference
        self.agentID = agentID
        self.encoding = encoding
        self.keptInvite = Held(callerInvite)
        self.ingress = ingress
        self.caller = caller
        self.agent = agent
    }

    func leg(_ side: Side) -> DialogLeg { side == .caller ? caller : agent }
    func setLeg(_ side: Side, _ leg: DialogLeg) {
        if side == .caller { caller = leg } else { agent = leg }
    }

    /// The TCP connection each side's in-dialog requests last came in on (none over UDP).
    /// Requests to that side go back on it while it is open: a TCP client that accepts no
    /// connections at its Contact (behind NAT, or one connection per call as SIPp -t tn) can
    /// be reached no other way. Once it closes, a new connection to the leg's next hop is
    /// opened (RFC 3263), as before. Boxed: a UDP call holds none.
    private var flowBoxes = PerSide<Held<(channel: any Channel, kind: SIPTransportKind)>?>(caller: nil, agent: nil)

    /// Remembers the connection a request from `side` came on.
    func noteFlow(_ side: Side, from source: SIPSource) {
        guard source.transport.isStream, let c = source.connection else { return }
        if flowBoxes[side]?.value.channel !== c { flowBoxes[side] = Held((c, source.transport)) }
    }

    /// Forgets a side's connection (its leg now leads somewhere else).
    func forgetFlow(_ side: Side) { flowBoxes[side] = nil }

    /// Where a request on `side`'s leg goes: the leg's next hop, on the side's connection when
    /// the hop is TCP and that connection is still open.
    func hop(_ side: Side) -> SIPDestination? {
        guard var hop = leg(side).nextHop() else { return nil }
        if hop.transport.isStream, let flow = flowBoxes[side]?.value, flow.kind == hop.transport, flow.channel.isActive {
            hop.connection = flow.channel
        }
        return hop
    }
}

/// `message` encoding: what goes back to the distributor goes in MESSAGEs.
final class MessageReplyPath: HandoffReplyPath {
    weak var server: BufferServer?
    let destination: SIPDestination
    let requestURI: URI
    let from: String
    let to: String
    let callID: String
    var cseq: UInt32 = 0

    init(server: BufferServer, destination: SIPDestination, requestURI: URI, from: String, to: String, callID: String) {
        self.server = server
        self.destination = destination
        self.requestURI = requestURI
        self.from = from
        self.to = to
        self.callID = callID
    }

    func send(_ message: SIPMessage) {
        cseq += 1
        let m = HandoffWire.wrap(message, requestURI: requestURI, from: from, to: to, callID: callID, cseq: cseq)
        server?.sendLinkMessage(m, to: destination)
    }
}
