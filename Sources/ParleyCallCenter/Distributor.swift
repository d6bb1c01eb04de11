import Logging
import NIOCore
import ParleyRecords
import ParleyRules
import ParleyDialog
import ParleySIP
import ParleyTransaction
import ParleyTransport

/// A link to the buffer server that carries a handed-off INVITE transaction other than as plain
/// SIP (the `message` and `tunnel` encodings).
public protocol HandoffLink: AnyObject {
    /// The Via the distributor puts on what it sends through this link.
    func via(branch: String) -> String
    /// Sends an INVITE, CANCEL or ACK of a handoff; calls `failed` if it cannot be delivered.
    func send(_ message: SIPMessage, failed: @escaping () -> Void)
}

/// What the distributor needs to know.
public struct DistributorConfiguration: Sendable {
    /// The buffer server's URI (the agent id is appended to it).
    public var bufferURI: SIPURI
    /// Where handoffs go (`uri` and `message`).
    public var bufferDestination: SIPDestination
    /// The skills configuration names (a call type that is none of them is offered to every agent).
    public var skills: Set<String>
    /// How long an agent may ring before the call moves to the next agent.
    public var noAnswerTimeout: Duration
    /// How long a call may wait for an agent (the default queue's `maxWait`).
    public var queueTimeout: Duration {
        get { defaultQueue.maxWait }
        set { defaultQueue.maxWait = newValue }
    }
    /// Queue behaviour per call type.
    public var queues: [String: QueuePolicy] = [:]
    /// Queue behaviour for a call type `queues` does not name.
    public var defaultQueue = QueuePolicy()
    /// The treatment systems the buffer server can connect callers to, by name.
    public var treatments: Set<String> = []
    /// How often agent state is reconciled against the buffer server's heartbeats.
    public var reconcileInterval: Duration
    /// A heartbeat older than this means the buffer server is gone: its calls count as ended.
    public var heartbeatTimeout: Duration
    /// The secret shared with the buffer server (`security.handoff_secret`): handoffs that leave
    /// this process and control events are signed with it, and the buffer server's events must
    /// be. nil: nothing is signed and no event from outside is taken.
    public var handoffSecret: [UInt8]?
    /// How far an event's timestamp may be from our clock.
    public var handoffWindow: Duration = .seconds(30)

    public init(bufferURI: SIPURI, bufferDestination: SIPDestination, skills: Set<String> = [],
                noAnswerTimeout: Duration = .seconds(15), queueTimeout: Duration = .seconds(60),
                reconcileInterval: Duration = .seconds(5), heartbeatTimeout: Duration = .seconds(20)) {
        self.bufferURI = bufferURI
        self.bufferDestination = bufferDestination
        self.skills = skills
        self.noAnswerTimeout = noAnswerTimeout
        self.defaultQueue.maxWait = queueTimeout
        self.reconcileInterval = reconcileInterval
        self.heartbeatTimeout = heartbeatTimeout
    }

    /// The queue behaviour for a call type.
    public func policy(for type: String) -> QueuePolicy { queues[type] ?? defaultQueue }
}

/// The automatic contact distributor: takes the caller's INVITE (100 Trying within 200 ms), asks the
/// rules for the call type, the agent and the handoff encoding, and hands the call to the buffer
/// server with the agent's id. Responses come back through it to the caller; it does not
/// Record-Route, so once the call is answered the caller's dialog is with the buffer server alone.
/// A no-answer or a failure response moves the call to the next agent. Agent state follows every
/// offer, answer and call event.
///
/// Its own transaction user rather than `SIPProxy`: each attempt's target is chosen only when
/// the previous one failed (by a rule, from agents' state at that moment), two of the three
/// encodings are not SIP forwarding at all, and each response moves an agent's state.
/// Confined to its stack's event loop.
public final class Distributor: SIPTransactionUser, @unchecked Sendable {
    public struct Counters: Sendable, Equatable {
        public var calls = 0
        public var handoffs: [String: Int] = [:]
        /// `uri` handoffs that went to the buffer server in memory (`inProcessBuffer`).
        public var handoffsInProcess = 0
        public var answered = 0
        public var failed = 0
        public var cancelled = 0
        public var noAnswers = 0
        public var queued = 0
        public var queueTimeouts = 0
        public var overflows = 0
        public var rejected = 0
        /// INVITEs refused with 420: they require an extension the call path does not relay.
        public var badExtensions = 0
        public var treatments = 0
        public var moves = 0
        public var ruleFailures = 0
        public var eventsReceived = 0
        public var reconciled = 0
        /// MESSAGEs (events, `message` responses) refused 403 for want of a valid signature.
        public var unauthenticated = 0
    }

    public struct TableSizes: Sendable, Equatable, CustomStringConvertible {
        public var calls = 0
        public var attempts = 0
        public var linkAttempts = 0
        public var waiting = 0
        public var onTreatment = 0
        public var answered = 0
        public var total: Int { calls + attempts + linkAttempts + waiting + onTreatment }
        public var description: String {
            "calls=\(calls) attempts=\(attempts) link_attempts=\(linkAttempts) waiting=\(waiting) on_treatment=\(onTreatment) answered_calls=\(answered)"
        }
    }

    public let stack: SIPStack
    public let configuration: DistributorConfiguration
    /// Signs what goes to the buffer server; checks what comes back in MESSAGEs.
    var auth: HandoffAuthenticator
    public let engine: RuleEngine
    public let agents: AgentBook
    public var logger: Logger
    public private(set) var counters = Counters()
    /// Links for the `message` and `tunnel` encodings (`uri` needs none). An encoding whose link
    /// is missing falls back to `uri`, logged.
    public var links: [HandoffEncoding: HandoffLink] = [:]
    /// When the buffer server runs in this process: the link `uri` handoffs to agents take instead
    /// of the socket (the same INVITE, the agent id in its Request-URI, passed in memory; its
    /// responses come back the same way). Treatments and moves keep the socket. nil: the socket.
    public var inProcessBuffer: HandoffLink?
    /// Where call records and queue-log lines go (nil: none kept). Writes are queued, never
    /// waited for on the event loop.
    public var records: RecordStore?
    private let clock: () -> Int64

    private var calls: [TransactionKey: DistributorCall] = [:]
    private var attemptsByKey: [TransactionKey: Attempt] = [:]
    private var attemptsByBranch: [String: Attempt] = [:]
    private var waiting: [DistributorCall] = []
    /// How many of `waiting` are of each call type (max length is checked on every arrival).
    private var waitingPerType: [String: Int] = [:]
    /// Calls whose caller is connected to a treatment (answered, so no longer held by their
    /// INVITE transaction) and still waiting for an agent, by reference.
    private var onTreatment: [String: DistributorCall] = [:]
    /// Answered calls by reference: the agent stays busy until the buffer server says it ended.
    private var answeredCalls: [String: String] = [:]
    private var lastHeartbeat: (at: Int64, calls: Set<String>)?
    private var reconcileTimer: TimerToken?
    private var linkCSeq: UInt32 = 0

    public init(stack: SIPStack, configuration: DistributorConfiguration, store: RuleStore, agents: [AgentStateMachine],
                clock: @escaping () -> Int64, logger: Logger = Logger(label: "parley.distributor")) {
        self.stack = stack
        self.configuration = configuration
        self.engine = RuleEngine(store: store)
        self.clock = clock
        self.auth = HandoffAuthenticator(secret: configuration.handoffSecret, windowMs: configuration.handoffWindow.milliseconds)
        self.logger = logger
        self.agents = AgentBook(agents: agents, directory: store.agents, now: clock)
        stack.user = self
        self.agents.schedule = { [unowned stack] ms, body in stack.schedule(after: .milliseconds(ms), body) }
        self.agents.onAvailable = { [weak self] _ in self?.serveQueue() }
    }

    /// Registered contacts (agent id -> contact URI) replace the configured ones the rules see as
    /// `agent.contact`; an agent no longer registered shows its configured contact again.
    public func useRegisteredContacts(_ registered: [String: String], configured: [String: String]) {
        for a in agents.all {
            let contact = registered[a.id] ?? configured[a.id]
            if a.contact != contact { agents.setContact(a.id, contact) }
        }
    }

    /// Starts the reconciliation timer.
    public func start() { scheduleReconcile() }
    public func stop() { reconcileTimer?.cancel() }

    public var tableSizes: TableSizes {
        TableSizes(calls: calls.count, attempts: attemptsByKey.count, linkAttempts: attemptsByBranch.count,
                   waiting: waiting.count, onTreatment: onTreatment.count, answered: answeredCalls.count)
    }

    // MARK: Requests

    public func stack(_ stack: SIPStack, didReceiveRequest request: SIPMessage, transaction: TransactionKey?, from source: SIPSource) {
        guard let key = transaction else { return }  // an ACK for a 2xx is the buffer server's business
        let inDialog = ((try? request.to())??.tag) != nil
        switch request.method {
        case .invite? where !inDialog:
            newCall(request, key: key, source: source)
        case .message?:
            receivedMessage(request, key: key)
        case .options? where !inDialog:
            stack.respond(200, to: key, extraHeaders: [("Allow", "INVITE, ACK, CANCEL, OPTIONS, MESSAGE")])
        default:
            // The distributor is in no dialog: once answered, the caller talks to the buffer server.
            stack.respond(inDialog ? 481 : 405, to: key, extraHeaders: inDialog ? [] : [("Allow", "INVITE, ACK, CANCEL, OPTIONS, MESSAGE")])
        }
    }

    private func newCall(_ invite: SIPMessage, key: TransactionKey, source: SIPSource) {
        counters.calls += 1
        // No 100 Trying here: the INVITE server transaction sends one if nothing else (an
        // agent's 180, 182 Queued, a final answer) reached the caller within 200 ms (17.2.1).
        // Nearly every call gets the agent's ringing first, and a 100 costs a response built,
        // serialized and sent.
        let mf = ((try? invite.maxForwards()) ?? nil) ?? 70
        guard mf > 1 else {
            stack.respond(483, "Too Many Hops", to: key)
            return
        }
        let unsupported = HeaderPolicy.unsupportedRequired(invite)
        guard unsupported.isEmpty else {
            counters.badExtensions += 1
            let tags = unsupported.joined(separator: ", ")
            logger.info("INVITE \(invite.callID ?? "?") refused: it requires \(tags)")
            stack.respond(420, "Bad Extension", to: key, extraHeaders: [("Unsupported", tags)])
            return
        }
        let rules = engine.pin()
        let view = InviteView(message: invite, source: hostPort(source.remote), transport: source.transport.rawValue)
        let classification = rules.classify(view)
        if classification.failure != nil { counters.ruleFailures += 1 }
        let reference = references.next(nowMs: clock())
        let info = CallInfo(id: reference, type: classification.type, priority: classification.priority,
                            arrivedMs: clock(), attempts: [], invite: view)
        let call = DistributorCall(serverKey: key, invite: invite, reference: reference, info: info, rules: rules,
                                   policy: configuration.policy(for: classification.type))
        calls[key] = call
        records?.record(.arrived(call: reference, sipCallID: invite.callID ?? "", caller: view[.from] ?? "",
                                 queue: classification.type, priority: classification.priority, rulesVersion: rules.version, at: info.arrivedMs))
        logger.debug("call \(reference) (\(invite.callID ?? "?")) type \(classification.type) priority \(classification.priority) rules \(rules.version.prefix(12))")
        tryNext(call)
    }

    public func stack(_ stack: SIPStack, didReceiveCancel cancel: SIPMessage, forInvite invite: TransactionKey) {
        guard let call = calls[invite], !call.finalSent else { return }
        counters.cancelled += 1
        call.cancelled = true
        dequeue(call)
        if let t = call.treatmentAttempt { cancelAttempt(t) }
        if let a = call.current, !a.final {
            cancelAttempt(a)
            // The buffer server answers the CANCEL with 487, which comes back here; should it
            // not, the caller gets one anyway.
            call.cancelGuard = stack.schedule(after: .seconds(4)) { [weak self, weak call] in
                guard let self, let call else { return }
                self.finish(call, code: 487)
            }
        } else {
            finish(call, code: 487)
        }
    }

    // MARK: Choosing the agent

    /// Offers the call to the next agent the rules choose, queues it, or gives up.
    private func tryNext(_ call: DistributorCall) {
        guard !call.done, !call.cancelled else { return }
        if let a = call.current, !a.final, !a.abandoned { return }  // an offer is out
        if call.treatmentAttempt != nil {
            // The caller is being connected to the queue's treatment: agents are offered the
            // call once it answers (one INVITE at a time toward the caller).
            enqueue(call)
            return
        }
        let type = call.info.type, skills = configuration.skills
        if !agents.anyLoggedIn(type: type, knownSkills: skills) {
            if call.policy.noAgent == .queue {
                enqueue(call)
            } else {
                counters.rejected += 1
                giveUp(call, code: call.policy.status, reason: "no agent for \(type) is logged in", exit: .failed)
            }
            return
        }
        if !agents.anyLoggedIn(type: type, knownSkills: skills, excluding: call.info.attempts) {
            // Every agent who could take it was offered it (the rules never offer a call twice).
            giveUp(call, code: call.policy.status, reason: "no agent for \(type) took the call", exit: .failed)
            return
        }
        let candidates = agents.candidates(type: type, knownSkills: skills, excluding: call.info.attempts)
        var chosen: String?
        if !candidates.isEmpty {
            let selection = call.rules.selectAgent(for: call.info, candidates: candidates)
            if selection.failure != nil { counters.ruleFailures += 1 }
            chosen = selection.agentID
        }
        guard let agent = chosen, agents.offer(agent, call: call.reference) else {
            enqueue(call)
            return
        }
        dequeue(call)
        call.info.attempts.append(agent)
        if call.onTreatment != nil {
            // The caller is answered (on a treatment): the buffer server calls the agent and
            // moves the caller to it with a re-INVITE. Moves always use the `uri` encoding.
            counters.moves += 1
            handOff(call, to: agent, encoding: .uri, kind: .move)
            return
        }
        let decision = call.rules.handoffEncoding(for: call.info, agent: agent)
        if decision.failure != nil { counters.ruleFailures += 1 }
        var encoding = decision.encoding
        if encoding != .uri, links[encoding] == nil {
            logger.warning("call \(call.reference): no \(encoding) link to the buffer server; handing off with uri")
            encoding = .uri
        }
        handOff(call, to: agent, encoding: encoding, kind: .agent)
    }

    /// The INVITE as the buffer server gets it: Request-URI the buffer server's with the agent id
    /// appended, Max-Forwards one less, our call reference.
    private func handoffInvite(_ call: DistributorCall, agent: String, encoding: HandoffEncoding, kind: AttemptKind) -> SIPMessage {
        var invite = call.invite
        invite.requestURI = kind.isTreatment ? HandoffWire.target(buffer: configuration.bufferURI, treatment: agent)
            : HandoffWire.target(buffer: configuration.bufferURI, agent: agent)
        let mf = ((try? invite.maxForwards()) ?? nil) ?? 70
        invite.headers.set(HeaderName(.maxForwards), String(mf - 1))
        for line in invite.headers where line.name.lowercased().hasPrefix("x-parley-") {
            invite.headers.removeAll(HeaderName(line.name))
        }
        invite.headers.append(HandoffWire.callHeader, call.reference)
        invite.headers.append(HandoffWire.encodingHeader, encoding.rawValue)
        if kind.isMove { invite.headers.append(HandoffWire.moveHeader, "1") }
        auth.sign(&invite, nowMs: clock())
        return invite
    }

    private func handOff(_ call: DistributorCall, to agent: String, encoding: HandoffEncoding, kind: AttemptKind) {
        counters.handoffs[encoding.rawValue, default: 0] += 1
        let attempt = Attempt(call: call, agent: agent, encoding: encoding, kind: kind)
        call.attempts.append(attempt)
        if kind.isTreatment {
            call.treatmentAttempt = attempt
        } else {
            call.current = attempt
            call.liveAttempts += 1
            records?.record(.offered(call: call.reference, agent: agent, at: clock()))
        }
        var invite = handoffInvite(call, agent: agent, encoding: encoding, kind: kind)
        logger.debug("call \(call.reference): offering to \(agent) by \(encoding)")
        let link = encoding == .uri ? (kind == .agent ? inProcessBuffer : nil) : links[encoding]
        if link == nil {
            guard let key = stack.sendRequest(invite, to: configuration.bufferDestination) else {
                attemptFailed(attempt, code: 503)
                return
            }
            attempt.key = key
            if kind.isMove { attempt.sentInvite = invite }
            attemptsByKey[key] = attempt
        } else if let link {
            let branch = stack.newBranch(prefix: "ho")
            invite.headers.prepend(HeaderName(.via), link.via(branch: branch))
            attempt.branch = branch
            attempt.link = link
            if link === inProcessBuffer { counters.handoffsInProcess += 1 }
            attempt.linkInvite = invite
            attemptsByBranch[branch] = attempt
            link.send(invite) { [weak self, weak attempt] in
                guard let self, let attempt else { return }
                self.attemptFailed(attempt, code: 503)
            }
            // A link has no INVITE client transaction to time the attempt out: forget it after 64*T1.
            attempt.linkGuard = stack.schedule(after: .seconds(40)) { [weak self, weak attempt] in
                guard let self, let attempt else { return }
                if !attempt.final { self.attemptFailed(attempt, code: 408) }
                self.forgetLinkAttempt(attempt)
            }
        }
        if kind.isTreatment {
            // A treatment answers at once or not at all; while it has not, no agent can be
            // offered the call (one INVITE at a time toward the caller).
            attempt.noAnswerTimer = stack.schedule(after: min(configuration.noAnswerTimeout, .seconds(4))) { [weak self, weak attempt] in
                guard let self, let attempt else { return }
                self.treatmentNoAnswer(attempt)
            }
            return
        }
        attempt.noAnswerTimer = stack.schedule(after: configuration.noAnswerTimeout) { [weak self, weak attempt] in
            guard let self, let attempt else { return }
            self.noAnswer(attempt)
        }
    }

    private func noAnswer(_ attempt: Attempt) {
        guard !attempt.final, !attempt.abandoned, let call = attempt.call else { return }
        counters.noAnswers += 1
        attempt.abandoned = true
        agents.noAnswer(attempt.agent, call: call.reference)
        records?.record(.notAnswered(call: call.reference, agent: attempt.agent, code: nil, at: clock()))
        logger.debug("call \(call.reference): \(attempt.agent) did not answer in \(configuration.noAnswerTimeout)")
        cancelAttempt(attempt)
        call.liveAttempts -= 1
        call.record(code: 480, reason: "Temporarily Unavailable", response: nil)
        if call.current === attempt { tryNext(call) }
    }

    private func cancelAttempt(_ attempt: Attempt) {
        guard !attempt.final, !attempt.cancelSent else { return }
        guard attempt.provisional else {
            attempt.cancelPending = true
            return
        }
        attempt.cancelSent = true
        attempt.cancelPending = false
        if let key = attempt.key {
            stack.cancel(key)
        } else if let invite = attempt.linkInvite, let link = attempt.link {
            var cancel = invite.makeCancel()
            if link !== inProcessBuffer { auth.sign(&cancel, nowMs: clock()) }
            link.send(cancel) {}
        }
    }

    // MARK: Responses from the buffer server

    public func stack(_ stack: SIPStack, didReceiveResponse response: SIPMessage, transaction: TransactionKey) {
        if transaction.method == .message, let code = response.statusCode, code >= 200 {
            messageLinkResult(transaction, failed: code >= 300)
            return
        }
        guard transaction.method == .invite, let attempt = attemptsByKey[transaction] else { return }
        attemptResponse(attempt, response)
    }

    /// A response (or a request) that came back through a link.
    public func linkReceived(_ message: SIPMessage) {
        guard !message.isRequest, let branch = (try? message.topVia())??.branch, let attempt = attemptsByBranch[branch] else { return }
        guard ((try? message.cseq()) ?? nil)?.method == .invite else { return }  // the 200 for a CANCEL
        attemptResponse(attempt, message)
        if let code = message.statusCode, code >= 300, attempt.encoding == .tunnel, let invite = attempt.linkInvite,
           let link = attempt.link {
            link.send(invite.makeACK(for: message)) {}  // 17.1.1.3, hop by hop
        }
    }

    /// A handoff's response as the caller gets it: our Via and the handoff's call header removed.
    private static func upstream(_ response: SIPMessage) -> SIPMessage {
        var r = response
        r.headers.removeFirstElement(HeaderName(.via))
        r.headers.removeAll(HandoffWire.callHeader)
        return r
    }

    private func attemptResponse(_ attempt: Attempt, _ response: SIPMessage) {
        guard let code = response.statusCode, let call = attempt.call else { return }
        if attempt.kind.isTreatment {
            treatmentResponse(attempt, call: call, code: code, response: response)
            return
        }
        // Built only for a response that goes on to the caller: a 100 stops here.
        var upstream: SIPMessage { Self.upstream(response) }
        switch code {
        case 100...199:
            attempt.provisional = true
            if attempt.cancelPending { cancelAttempt(attempt) }
            if code > 100, attempt.kind == .agent, call.current === attempt, !attempt.abandoned, !call.finalSent, !call.cancelled {
                stack.respond(upstream, to: call.serverKey)
            }
        case 200...299:
            let first = !attempt.final
            attempt.final = true
            attempt.noAnswerTimer?.cancel()
            if attempt.kind == .move {
                // The buffer server connected the agent and re-INVITEd the caller to it: this
                // hop is ours alone, so the ACK goes back statelessly (and again for each
                // retransmission).
                ackMove(attempt, response)
            }
            if first {
                if !attempt.abandoned { call.liveAttempts -= 1 }
                counters.answered += 1
                // A late answer from an agent we had given up on still wins: the caller gets it.
                agents.apply(attempt.agent) { m, t in
                    m.answered(call: call.reference, now: t) || m.answeredLate(call: call.reference, now: t)
                }
                answeredCalls[call.reference] = attempt.agent
                records?.record(.connected(call: call.reference, agent: attempt.agent, at: clock()))
                if let other = call.current, other !== attempt { cancelAttempt(other) }
                call.cancelGuard?.cancel()
                call.done = true
                call.queueTimer?.cancel()
                if let t = call.treatmentAttempt { cancelAttempt(t) }
                onTreatment[call.reference] = nil
                call.onTreatment = nil
            }
            if attempt.kind == .agent {
                call.finalSent = true
                stack.respond(upstream, to: call.serverKey)  // 2xx retransmissions too (16.7 step 5)
            }
            if first { call.answered(attempt, transactionInvite: stack.request(of: call.serverKey)) }
            dequeue(call)
        default:
            guard !attempt.final else { return }
            attempt.final = true
            attempt.noAnswerTimer?.cancel()
            if !attempt.abandoned {
                call.liveAttempts -= 1
                agents.rejected(attempt.agent, call: call.reference)
                records?.record(.notAnswered(call: call.reference, agent: attempt.agent, code: code, at: clock()))
                if attempt.kind == .agent { call.record(code: code, reason: response.reasonPhrase, response: upstream) }
            } else {
                // The agent was already released when its no-answer timer fired.
                if case .ringing(let c, _)? = agents.agent(attempt.agent)?.state, c == call.reference {
                    agents.rejected(attempt.agent, call: call.reference)
                }
            }
            if call.cancelled {
                if call.liveAttempts <= 0, call.treatmentAttempt == nil { finish(call, code: 487) }
            } else if call.current === attempt {
                tryNext(call)
            }
        }
    }

    /// A response to a treatment handoff (the caller is not answered yet) or a move to a
    /// treatment (overflow of a caller already on one).
    private func treatmentResponse(_ attempt: Attempt, call: DistributorCall, code: Int, response: SIPMessage) {
        switch code {
        case 100...199:
            attempt.provisional = true
            if attempt.cancelPending { cancelAttempt(attempt) }
        case 200...299:
            if attempt.kind == .treatmentMove { ackMove(attempt, response) }
            let first = !attempt.final
            attempt.final = true
            attempt.noAnswerTimer?.cancel()
            // Given up on: the caller is not connected to it (the buffer server, missing the
            // caller's ACK, hangs the treatment up).
            if attempt.abandoned { return }
            if attempt.kind == .treatment {
                call.finalSent = true
                stack.respond(Self.upstream(response), to: call.serverKey)  // retransmissions too
            }
            guard first else { return }
            if call.treatmentAttempt === attempt { call.treatmentAttempt = nil }
            counters.treatments += 1
            call.onTreatment = attempt.agent
            records?.record(.treatment(call: call.reference, treatment: attempt.agent, at: clock()))
            logger.debug("call \(call.reference): caller connected to \(attempt.agent)")
            if call.cancelled || call.done {
                onTreatment[call.reference] = nil
            } else {
                onTreatment[call.reference] = call
                if let a = call.current, !a.final, !a.abandoned { return }
                if call.queued { dequeue(call) }
                tryNext(call)
            }
        default:
            guard !attempt.final else { return }
            attempt.final = true
            attempt.noAnswerTimer?.cancel()
            if attempt.abandoned { return }
            treatmentFailed(attempt, call: call, why: "answered \(code)")
        }
    }

    private func treatmentNoAnswer(_ attempt: Attempt) {
        guard !attempt.final, !attempt.abandoned, let call = attempt.call else { return }
        attempt.abandoned = true
        cancelAttempt(attempt)
        treatmentFailed(attempt, call: call, why: "did not answer")
    }

    /// A treatment that failed or did not answer: a waiting caller goes on waiting without it;
    /// a caller sent to an overflow treatment gets the queue's status instead.
    private func treatmentFailed(_ attempt: Attempt, call: DistributorCall, why: String) {
        if call.treatmentAttempt === attempt { call.treatmentAttempt = nil }
        logger.warning("call \(call.reference): treatment \(attempt.agent) \(why); the caller waits without it")
        if call.cancelled {
            if call.liveAttempts <= 0 { finish(call, code: 487) }
        } else if attempt.kind == .treatmentMove || call.done {
            call.done = false
            giveUp(call, code: call.policy.status, reason: "overflow treatment \(attempt.agent) \(why)", exit: .failed)
        } else {
            call.treatmentFailed = true
            if call.queued { dequeue(call) }
            tryNext(call)
        }
    }

    /// The ACK for a 2xx to a move (buffer server hop only).
    private func ackMove(_ attempt: Attempt, _ response: SIPMessage) {
        guard let key = attempt.key, let invite = stack.request(of: key) ?? attempt.sentInvite else { return }
        var ack = invite.makeACK(for: response)
        if let contact = response.contactURI { ack.requestURI = contact }
        ack.headers.removeAll(HeaderName(.via))
        ack.headers.prepend(HeaderName(.via), stack.makeVia(for: configuration.bufferDestination, branch: stack.newBranch()))
        stack.sendStateless(ack, to: configuration.bufferDestination)
    }

    private func attemptFailed(_ attempt: Attempt, code: Int) {
        guard !attempt.final else { return }
        var response = SIPTransport.makeResponse(to: attempt.call?.invite ?? SIPMessage.request(.invite, .sip(SIPURI(host: .name("invalid")))), code: code)
        response.headers.prepend(HeaderName(.via), "SIP/2.0/UDP invalid;branch=z9hG4bKlocal")
        attemptResponse(attempt, response)
    }

    public func stack(_ stack: SIPStack, transaction: TransactionKey, didFail failure: TransactionFailure) {
        if transaction.method == .message {
            messageLinkResult(transaction, failed: true)
            return
        }
        guard let attempt = attemptsByKey[transaction], transaction.method == .invite else { return }
        attemptFailed(attempt, code: failure == .transportError ? 503 : 408)
    }

    public func stack(_ stack: SIPStack, didTerminate transaction: TransactionKey) {
        if let call = calls.removeValue(forKey: transaction) {
            call.cancelGuard?.cancel()
            for a in call.attempts where a.final { forgetLinkAttempt(a) }
            // A caller on a treatment is answered but still waits: it stays queued.
            if onTreatment[call.reference] === call, !call.done { return }
            call.queueTimer?.cancel()
            dequeue(call)
            return
        }
        if transaction.method == .message {
            messageLinkResult(transaction, failed: false)
            return
        }
        if let attempt = attemptsByKey.removeValue(forKey: transaction) {
            attempt.noAnswerTimer?.cancel()
            if !attempt.final { attemptFailed(attempt, code: 408) }
        }
    }

    private func forgetLinkAttempt(_ attempt: Attempt) {
        guard let branch = attempt.branch else { return }
        attemptsByBranch[branch] = nil
        attempt.linkGuard?.cancel()
    }

    /// How a call left the queue without an agent, for the records.
    enum Exit { case failed, timeout, full }

    /// Answers the caller: the best response any agent gave, or `code`.
    private func finish(_ call: DistributorCall, code: Int, reason: String? = nil, exit: Exit = .failed) {
        guard !call.finalSent else { return }
        if code == 487 {
            // Recorded when the caller gets the 487, not at the CANCEL: an agent's 2xx that
            // crosses the CANCEL connects the call instead.
            records?.record(.abandoned(call: call.reference, at: clock()))
        } else {
            let sent = call.best == nil ? code : call.bestCode
            recordExit(call, code: sent, exit: exit)
        }
        call.finalSent = true
        call.done = true
        call.cancelGuard?.cancel()
        call.queueTimer?.cancel()
        dequeue(call)
        if let t = call.treatmentAttempt { cancelAttempt(t) }
        if code == 487 || call.best == nil {
            stack.respond(code, reason, to: call.serverKey)
        } else if let best = call.best {
            stack.respond(best, to: call.serverKey)
        }
        if code != 487 { counters.failed += 1 }
        // Link attempts that are final can go; the rest go when their guard fires.
        for a in call.attempts where a.final { forgetLinkAttempt(a) }
    }

    private func recordExit(_ call: DistributorCall, code: Int?, exit: Exit, treatment: String? = nil) {
        if let code, treatment == nil, exit != .full {
            records?.record(.failed(call: call.reference, code: code, timedOut: exit == .timeout, at: clock()))
        } else {
            records?.record(.overflowed(call: call.reference, full: exit == .full, treatment: treatment, code: code, at: clock()))
        }
    }

    /// The call gets no agent: the caller is answered `code`, or, if a treatment answered it
    /// already, hung up by the buffer server.
    private func giveUp(_ call: DistributorCall, code: Int, reason: String, exit: Exit) {
        guard !call.done else { return }
        if !call.finalSent {
            logger.debug("call \(call.reference): \(code) (\(reason))")
            finish(call, code: code, reason: QueuePolicy.reason(for: code) + ": " + reason, exit: exit)
            return
        }
        logger.debug("call \(call.reference): hanging up the caller on its treatment (\(reason))")
        call.done = true
        call.queueTimer?.cancel()
        dequeue(call)
        onTreatment[call.reference] = nil
        counters.failed += 1
        recordExit(call, code: nil, exit: exit)
        sendControl(.hangup(call: call.reference))
    }

    /// Over max wait or max length: the queue's overflow treatment, or its status.
    private func overflow(_ call: DistributorCall, full: Bool) {
        guard !call.done else { return }
        if full { counters.overflows += 1 } else { counters.queueTimeouts += 1 }
        dequeue(call)
        let exit: Exit = full ? .full : .timeout
        guard case .treatment(let name) = call.policy.overflow, configuration.treatments.contains(name) else {
            giveUp(call, code: call.policy.status, reason: full ? "the queue is full" : "no agent answered in time", exit: exit)
            return
        }
        call.done = true
        call.queueTimer?.cancel()
        onTreatment[call.reference] = nil
        recordExit(call, code: nil, exit: exit, treatment: name)
        if call.onTreatment == name { return }  // already there
        if let t = call.treatmentAttempt { cancelAttempt(t) }
        if let a = call.current, !a.final { cancelAttempt(a) }
        logger.debug("call \(call.reference): overflows to \(name)")
        handOff(call, to: name, encoding: .uri, kind: call.onTreatment != nil ? .treatmentMove : .treatment)
    }

    // MARK: The queue

    /// Waiting order: higher priority first, then earlier arrival.
    private static func before(_ a: DistributorCall, _ b: DistributorCall) -> Bool {
        a.info.priority != b.info.priority ? a.info.priority > b.info.priority : a.info.arrivedMs < b.info.arrivedMs
    }

    private func enqueue(_ call: DistributorCall) {
        guard !call.queued, !call.done else { return }
        let now = clock()
        let deadline = call.info.arrivedMs + call.policy.maxWait.milliseconds
        if now >= deadline {
            overflow(call, full: false)
            return
        }
        if !call.counted {
            call.counted = true
            if let max = call.policy.maxLength, waitingPerType[call.info.type, default: 0] >= max {
                overflow(call, full: true)
                return
            }
        }
        call.queued = true
        counters.queued += 1
        let i = waiting.firstIndex { Self.before(call, $0) } ?? waiting.endIndex
        waiting.insert(call, at: i)
        waitingPerType[call.info.type, default: 0] += 1
        if !call.sentQueued, !call.finalSent {
            call.sentQueued = true
            stack.respond(182, "Queued", to: call.serverKey, toTag: nil)
        }
        if call.queueTimer == nil {
            call.queueTimer = stack.schedule(after: .milliseconds(deadline - now)) { [weak self, weak call] in
                guard let self, let call, call.queued, !call.done else { return }
                self.overflow(call, full: false)
            }
        }
        if let name = call.policy.treatment, call.onTreatment == nil, call.treatmentAttempt == nil, !call.treatmentFailed,
           !call.finalSent, !call.cancelled {
            if configuration.treatments.contains(name) {
                logger.debug("call \(call.reference): connecting the caller to \(name) while it waits")
                handOff(call, to: name, encoding: .uri, kind: .treatment)
            } else {
                call.treatmentFailed = true
                logger.warning("call \(call.reference): treatment \(name) is not configured")
            }
        }
    }

    private func dequeue(_ call: DistributorCall) {
        guard call.queued else { return }
        call.queued = false
        waiting.removeAll { $0 === call }
        waitingPerType[call.info.type, default: 1] -= 1
    }

    /// An agent became available: offer it the waiting calls, highest priority first.
    private func serveQueue() {
        for call in waiting where call.queued && call.treatmentAttempt == nil {
            guard agents.anyAvailable else { return }  // nobody left to offer to
            dequeue(call)
            tryNext(call)
        }
    }

    /// Sends a control event to the buffer server (in a MESSAGE, like its events to us).
    private func sendControl(_ event: CallEvent) {
        let dest = configuration.bufferDestination
        let local = stack.transport.advertisedAddress(for: dest.transport, toward: dest.address)
        linkCSeq += 1
        var m = HandoffWire.eventMessage(event, requestURI: .sip(configuration.bufferURI),
                                         from: "<sip:distributor@\(local.map(hostPort) ?? "invalid")>;tag=\(stack.newTag())",
                                         to: "<\(configuration.bufferURI)>", callID: "ctl-" + stack.newTag() + "@parley", cseq: linkCSeq)
        auth.sign(&m, nowMs: clock())
        stack.sendRequest(m, to: dest)
    }

    // MARK: Events from the buffer server

    private func receivedMessage(_ message: SIPMessage, key: TransactionKey) {
        // Only the buffer server may send us events or handoff responses: signed with the secret.
        let verdict = auth.verify(message, nowMs: clock())
        guard verdict == .valid else {
            counters.unauthenticated += 1
            logger.debug("MESSAGE refused: signature \(verdict.rawValue)")
            stack.refuseStatelessly(403, "Forbidden", to: key)
            return
        }
        if let ct = (try? message.contentType()) ?? nil, ct.essence == HandoffWire.eventType {
            stack.respond(200, to: key)
            for event in CallEvent.list(body: message.bodyText) {
                counters.eventsReceived += 1
                handle(event)
            }
            return
        }
        if let inner = HandoffWire.unwrap(message) {
            stack.respond(200, to: key)
            linkReceived(inner)
            return
        }
        stack.respond(415, to: key, extraHeaders: [("Accept", "\(HandoffWire.messageSIP), \(HandoffWire.eventType)")])
    }

    public func handle(_ event: CallEvent) {
        switch event {
        case .ended(let reference, let agent):
            if let call = onTreatment.removeValue(forKey: reference), !call.done {
                // The caller hung up while it waited on a treatment.
                counters.cancelled += 1
                call.done = true
                call.queueTimer?.cancel()
                dequeue(call)
                if let a = call.current, !a.final { cancelAttempt(a) }
                records?.record(.abandoned(call: reference, at: clock()))
                logger.debug("call \(reference): the caller hung up on \(agent) while waiting")
                return
            }
            if answeredCalls.removeValue(forKey: reference) != nil {
                records?.record(.completed(call: reference, agent: agent, at: clock()))
            }
            agents.callEnded(agent, call: reference)
        case .hangup:
            break  // ours to send, not to receive
        case .live(let refs):
            let live = Set(refs)
            lastHeartbeat = (clock(), live)
            for (ref, agent) in answeredCalls where live.contains(ref) { agents.confirm(agent, call: ref) }
        }
    }

    private func scheduleReconcile() {
        reconcileTimer = stack.schedule(after: configuration.reconcileInterval) { [weak self] in
            self?.reconcile()
            self?.scheduleReconcile()
        }
    }

    /// Agent state against what the buffer server last said is up: a busy agent whose call it no
    /// longer lists (a lost "ended" event), or whose buffer server went silent (crashed), ends its
    /// call after `staleMs`; a ringing agent the distributor is not waiting on is released.
    public func reconcile() {
        let now = clock()
        var live: Set<String> = []
        if let hb = lastHeartbeat, now - hb.at <= configuration.heartbeatTimeout.milliseconds {
            live = hb.calls
        }
        // Calls still being set up are live whatever the buffer server says.
        var pending: Set<String> = []
        for call in calls.values where !call.finalSent { pending.insert(call.reference) }
        for call in waiting { pending.insert(call.reference) }
        for call in onTreatment.values where !call.done { pending.insert(call.reference) }
        let before = agents.all.map(\.state)
        agents.reconcile(liveCalls: live.union(pending), pendingOffers: pending)
        let after = agents.all.map(\.state)
        let changed = zip(before, after).filter { $0 != $1 }.count
        if changed > 0 {
            counters.reconciled += changed
            logger.info("reconciled \(changed) agent(s) against the buffer server's calls")
        }
        for (ref, agent) in answeredCalls where agents.agent(agent)?.currentCall != ref {
            answeredCalls[ref] = nil
            records?.record(.completed(call: ref, agent: agent, at: now))  // ended by reconciliation
        }
        collectRuleGarbage()
    }

    /// What the Lua state held after its last full collection here.
    private var luaAfterCollect = 0
    /// Where new calls' references come from.
    private var references = CallReferences()

    /// A full Lua collection when the state has grown by a quarter (and a megabyte) since the
    /// last: Lua collects only as it allocates, so what a burst of calls left would otherwise
    /// stay resident once calls stop coming.
    private func collectRuleGarbage() {
        guard let used = engine.luaMemory, used > luaAfterCollect + luaAfterCollect / 4 + (1 << 20) else { return }
        let t0 = ContinuousClock.now
        luaAfterCollect = engine.collectGarbage() ?? used
        logger.debug("rules: Lua garbage collected, \(used / 1024) -> \(luaAfterCollect / 1024) KiB in \(ContinuousClock.now - t0)")
    }

    // MARK: The message link

    /// A link that carries handoffs in SIP MESSAGEs (RFC 3428, `message/sip`) over this stack.
    public func makeMessageLink() -> HandoffLink { MessageLink(distributor: self) }

    /// The Via a link's handoff carries: ours toward the buffer server (a distributor gone: one
    /// that names no host).
    static func handoffVia(_ d: Distributor?, branch: String) -> String {
        guard let d else { return "SIP/2.0/UDP invalid;branch=\(branch)" }
        return d.stack.makeVia(for: d.configuration.bufferDestination, branch: branch)
    }

    fileprivate func sendThroughMessage(_ inner: SIPMessage, failed: @escaping () -> Void) {
        let dest = configuration.bufferDestination
        let agent = HandoffWire.agentID(in: inner.requestURI) ?? ""
        let local = stack.transport.advertisedAddress(for: dest.transport, toward: dest.address)
        let me = local.map { "sip:distributor@\(hostPort($0))" } ?? "sip:distributor@invalid"
        linkCSeq += 1
        let callID = "h-" + (((try? inner.topVia()) ?? nil)?.branch ?? stack.newTag()) + "@parley"
        var m = HandoffWire.wrap(inner, requestURI: HandoffWire.target(buffer: configuration.bufferURI, agent: agent),
                                 from: "<\(me)>;tag=\(stack.newTag())", to: "<\(configuration.bufferURI)>", callID: callID,
                                 cseq: linkCSeq, contact: local.map { Resolver.contact(for: $0, transport: dest.transport) })
        auth.sign(&m, nowMs: clock())
        guard let key = stack.sendRequest(m, to: dest) else { return failed() }
        messageFailures[key] = failed
    }

    private var messageFailures: [TransactionKey: () -> Void] = [:]

    /// `X-Parley-Auth` for the tunnel's upgrade request (nil without a secret).
    func tunnelToken() -> String? {
        stack.loop.preconditionInEventLoop()
        return auth.tunnelToken(nowMs: clock())
    }

    fileprivate func messageLinkResult(_ key: TransactionKey, failed: Bool) {
        guard let f = messageFailures.removeValue(forKey: key) else { return }
        if failed { f() }
    }
}

/// `message` encoding, distributor side.
final class MessageLink: HandoffLink {
    weak var distributor: Distributor?
    init(distributor: Distributor) { self.distributor = distributor }

    func via(branch: String) -> String { Distributor.handoffVia(distributor, branch: branch) }

    func send(_ message: SIPMessage, failed: @escaping () -> Void) {
        distributor?.sendThroughMessage(message, failed: failed)
    }
}

/// Call references (`X-Parley-Call`, the records' key) in arrival order: "c", 13 base-36 digits
/// of the arrival millisecond times 4096 plus a count (one more than the last when calls come
/// faster than that), then four random digits fixed per distributor. Records index calls and
/// queue-log lines by reference: keys that grow keep each batch's inserts on the last pages of
/// those indexes instead of a page anywhere in them.
struct CallReferences {
    private var last: UInt64 = 0
    private let suffix: String

    init(random: UInt64 = .random(in: 0...UInt64.max)) {
        suffix = Self.digits(random % 1_679_616, width: 4)  // 36^4
    }

    mutating func next(nowMs: Int64) -> String {
        last = max(last &+ 1, UInt64(max(0, nowMs)) << 12)
        return "c" + Self.digits(last, width: 13) + suffix
    }

    static func digits(_ v: UInt64, width: Int) -> String {
        let s = String(v, radix: 36)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }
}

/// A call the distributor holds: the caller's INVITE server transaction and its attempts.
final class DistributorCall {
    let serverKey: TransactionKey
    private(set) var invite: SIPMessage
    let reference: String
    var info: CallInfo
    let rules: PinnedRules
    var current: Attempt?
    var attempts: [Attempt] = []
    var liveAttempts = 0
    var finalSent = false
    var cancelled = false
    var queued = false
    var sentQueued = false
    /// This queue's behaviour.
    let policy: QueuePolicy
    /// The treatment the caller is connected to (it is answered and still waits for an agent).
    var onTreatment: String?
    /// A treatment handoff not answered yet.
    var treatmentAttempt: Attempt?
    /// The queue's treatment could not be connected: the caller waits without it.
    var treatmentFailed = false
    /// Counted against the queue's max length (once, when it first waited).
    var counted = false
    /// No more offers: connected, abandoned, failed or overflowed.
    var done = false
    var best: SIPMessage?
    var bestCode = 0
    var cancelGuard: TimerToken?
    var queueTimer: TimerToken?

    init(serverKey: TransactionKey, invite: SIPMessage, reference: String, info: CallInfo, rules: PinnedRules, policy: QueuePolicy) {
        self.policy = policy
        self.serverKey = serverKey
        self.invite = invite
        self.reference = reference
        self.info = info
        self.rules = rules
    }

    /// Answered: what only the set-up needed goes now rather than when the INVITE transaction
    /// ends 32 s later (Timer L): the rules' view of the INVITE, the best failure, and the
    /// received datagram the INVITE and the handoff's copy hold. What is left (the INVITE's
    /// matching headers, shared with the transaction's `compacted()` copy) still answers a late
    /// failure or ACKs a move's 2xx again.
    func answered(_ attempt: Attempt, transactionInvite: SIPMessage?) {
        info.invite = nil
        best = nil
        invite = transactionInvite ?? invite.compacted()
        attempt.linkInvite = attempt.linkInvite?.compacted()
        attempt.sentInvite = attempt.sentInvite?.compacted()
    }

    /// Keeps the best failure so far (16.7 step 6: a 6xx wins, else the lowest class).
    func record(code: Int, reason: String?, response: SIPMessage?) {
        guard code >= 300 else { return }
        let better = bestCode == 0 || (bestCode < 600 && (code >= 600 || code / 100 < bestCode / 100))
        guard better else { return }
        bestCode = code
        best = response
    }
}

/// What an attempt hands the buffer server.
enum AttemptKind: Equatable {
    /// The caller's INVITE, to an agent.
    case agent
    /// The caller's INVITE, to a treatment system (music on hold, announcement).
    case treatment
    /// A caller already on a treatment, to an agent (the buffer server re-INVITEs the caller).
    case move
    /// A caller already on a treatment, to another treatment (overflow).
    case treatmentMove

    var isTreatment: Bool { self == .treatment || self == .treatmentMove }
    var isMove: Bool { self == .move || self == .treatmentMove }
}

/// One offer of a call to one agent (or to a treatment).
final class Attempt {
    weak var call: DistributorCall?
    /// The agent's id, or the treatment's name.
    let agent: String
    let encoding: HandoffEncoding
    let kind: AttemptKind
    /// A move's INVITE (its 2xx is ACKed here).
    var sentInvite: SIPMessage?
    var key: TransactionKey?
    var branch: String?
    var linkInvite: SIPMessage?
    /// The link the handoff went through (nil: the socket, as a transaction).
    var link: HandoffLink?
    var provisional = false
    var final = false
    var abandoned = false
    var cancelPending = false
    var cancelSent = false
    var noAnswerTimer: TimerToken?
    var linkGuard: TimerToken?

    init(call: DistributorCall, agent: String, encoding: HandoffEncoding, kind: AttemptKind = .agent) {
        self.call = call
        self.agent = agent
        self.encoding = encoding
        self.kind = kind
    }
}

extension Duration {
    var milliseconds: Int64 {
        let c = components
        return c.seconds * 1000 + c.attoseconds / 1_000_000_000_000_000
    }
}
