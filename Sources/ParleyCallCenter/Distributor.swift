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
        /// Transfers asked for (REFER), connected to their target, and failed (back to the agent).
        public var transfersAsked = 0
        public var transfers = 0
        public var transfersFailed = 0
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
        /// Calls still looking for an agent.
        public var open = 0
        public var total: Int { calls + attempts + linkAttempts + waiting + onTreatment + open }
        public var description: String {
            "calls=\(calls) attempts=\(attempts) link_attempts=\(linkAttempts) waiting=\(waiting) on_treatment=\(onTreatment) answered_calls=\(answered) open=\(open)"
        }
    }

    public let stack: SIPStack
    public let configuration: DistributorConfiguration
    /// Signs what goes to the buffer server; checks what comes back in MESSAGEs.
    var auth: HandoffAuthenticator
    public let engine: RuleEngine
    public let agents: AgentBook
    public var logger: Logger
    public internal(set) var counters = Counters()
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
    /// Told of every change of an agent's state, reason or pending change (the admin API's
    /// event stream). On the distributor's loop.
    public var agentObserver: ((AgentStateMachine) -> Void)?
    /// Told of every call event the records get (the admin API's event stream). On the loop.
    public var callObserver: ((ParleyRecords.CallEvent) -> Void)?
    /// The queue of the call each agent was last offered (what its current call is shown with).
    public internal(set) var agentCallQueue: [String: String] = [:]
    /// Agents whose contact is a registered one (the registration role in this process).
    public internal(set) var registeredAgents: Set<String> = []
    public let clock: () -> Int64

    var calls: [TransactionKey: DistributorCall] = [:]
    /// Calls still looking for an agent (their routing open), by reference: what the admin API
    /// lists as waiting, without walking every call whose INVITE transaction is still kept.
    var openCalls: [String: DistributorCall] = [:]
    var attemptsByKey: [TransactionKey: Attempt] = [:]
    var attemptsByBranch: [String: Attempt] = [:]
    var waiting: [DistributorCall] = []
    /// How many of `waiting` are of each call type (max length is checked on every arrival).
    var waitingPerType: [String: Int] = [:]
    /// Calls whose caller is connected to a treatment (answered, so no longer held by their
    /// INVITE transaction) and still waiting for an agent, by reference.
    var onTreatment: [String: DistributorCall] = [:]
    /// Answered calls by reference: the agent stays busy until the buffer server says it ended.
    var answeredCalls: [String: String] = [:]
    var lastHeartbeat: (at: Int64, calls: Set<String>)?
    var reconcileTimer: TimerToken?
    var linkCSeq: UInt32 = 0

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
        self.agents.onChange = { [weak self] before, after in self?.agentChanged(before, after) }
    }

    /// Registered contacts (agent id -> contact URI) replace the configured ones the rules see as
    /// `agent.contact`; an agent no longer registered shows its configured contact again.
    public func useRegisteredContacts(_ registered: [String: String], configured: [String: String]) {
        registeredAgents = Set(registered.keys)
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
                   waiting: waiting.count, onTreatment: onTreatment.count, answered: answeredCalls.count, open: openCalls.count)
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

    func newCall(_ invite: SIPMessage, key: TransactionKey, source: SIPSource) {
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
        let policy = configuration.policy(for: classification.type)
        let call = DistributorCall(serverKey: key, invite: invite, reference: reference, info: info, rules: rules, policy: policy,
                                   treatmentConfigured: policy.treatment.map(configuration.treatments.contains) ?? false)
        calls[key] = call
        openCalls[reference] = call
        traced(call, classification)
        record(.arrived(call: reference, sipCallID: invite.callID ?? "", caller: view[.from] ?? "",
                                 queue: classification.type, priority: classification.priority, rulesVersion: rules.version, at: info.arrivedMs))
        logger.debug("call \(reference) (\(invite.callID ?? "?")) type \(classification.type) priority \(classification.priority) rules \(rules.version.prefix(12))")
        tryNext(call)
    }

    public func stack(_ stack: SIPStack, didReceiveCancel cancel: SIPMessage, forInvite invite: TransactionKey) {
        guard let call = calls[invite], !call.finalSent else { return }
        counters.cancelled += 1
        answer(call, .cancel(nowMs: clock()))
    }

    /// Feeds an event to what the caller is owed (`CallerAnswer`) and does what it says.
    func answer(_ call: DistributorCall, _ event: CallerAnswer.Event, reason: String? = nil, exit: Exit = .failed) {
        for action in call.answer.handle(event) {
            switch action {
            case .announceQueued:
                if let key = call.serverKey { stack.respond(182, "Queued", to: key, toTag: nil) }
            case .takeBackOffers:
                route(call, .end)
            case .armCancelGuard(let at):
                // The buffer server answers the CANCEL with 487, which comes back here; should
                // it not, the caller gets one anyway.
                call.cancelGuard = stack.schedule(after: .milliseconds(max(0, at - clock()))) { [weak self, weak call] in
                    guard let self, let call else { return }
                    self.answer(call, .tick(nowMs: at))
                }
            case .answerFailure(let code):
                finish(call, code: code, reason: reason, exit: exit)
            }
        }
    }

    // MARK: Choosing the agent

    /// Offers the call to the next agent the rules choose, queues it, or gives up.
    func tryNext(_ call: DistributorCall) {
        route(call, .next)
    }

    /// What `CallRouting.choose` asks: a transfer's target, the agent the rules choose, the
    /// queue, or no one.
    func choose(_ call: DistributorCall) {
        if let target = call.transferTo {
            offerTransfer(call, to: target)
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
            traced(call, selection, candidates: candidates)
            chosen = selection.agentID
        }
        guard let agent = chosen, agents.offer(agent, call: call.reference) else {
            enqueue(call)
            return
        }
        agentCallQueue[agent] = call.info.type
        call.info.attempts.append(agent)
        if call.routing.onTreatment != nil {
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
        traced(call, decision, used: encoding)
        handOff(call, to: agent, encoding: encoding, kind: .agent)
    }

    /// The INVITE as the buffer server gets it: Request-URI the buffer server's with the agent id
    /// appended, Max-Forwards one less, our call reference; signed unless `signed` is false (the
    /// in-process link: nothing crosses a network, and the buffer server checks no signature on it).
    func handoffInvite(_ call: DistributorCall, agent: String, encoding: HandoffEncoding, kind: AttemptKind,
                       signed: Bool = true) -> SIPMessage {
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
        if signed { auth.sign(&invite, nowMs: clock()) }
        return invite
    }

    func handOff(_ call: DistributorCall, to agent: String, encoding: HandoffEncoding, kind: AttemptKind) {
        counters.handoffs[encoding.rawValue, default: 0] += 1
        let attempt = Attempt(call: call, agent: agent, encoding: encoding, kind: kind)
        call.attempts.append(attempt)
        if kind.isTreatment {
            route(call, .treatmentOffered(attempt: attempt.id, name: agent))
        } else {
            route(call, .offered(attempt: attempt.id))
            _ = call.answer.handle(.offerOut)
            record(.offered(call: call.reference, agent: agent, at: clock()))
        }
        let link = encoding == .uri ? (kind == .agent ? inProcessBuffer : nil) : links[encoding]
        var invite = handoffInvite(call, agent: agent, encoding: encoding, kind: kind, signed: link == nil || link !== inProcessBuffer)
        logger.debug("call \(call.reference): offering to \(agent) by \(encoding)")
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

    func noAnswer(_ attempt: Attempt) {
        guard !attempt.final, !attempt.abandoned, let call = attempt.call else { return }
        counters.noAnswers += 1
        attempt.abandoned = true
        agents.noAnswer(attempt.agent, call: call.reference)
        record(.notAnswered(call: call.reference, agent: attempt.agent, code: nil, at: clock()))
        logger.debug("call \(call.reference): \(attempt.agent) did not answer in \(configuration.noAnswerTimeout)")
        cancelAttempt(attempt)
        answer(call, .offerEnded(treatmentPending: call.routing.treatmentPending))
        call.record(code: 480, reason: "Temporarily Unavailable", response: nil)
        route(call, .offerEnded(attempt: attempt.id))
    }

    /// Takes an offer back: its CANCEL goes now, or with its first provisional (`OutgoingInvite`).
    func cancelAttempt(_ attempt: Attempt) {
        for action in attempt.invite.cancel() where action == .sendCancel { sendCancel(attempt) }
    }

    func sendCancel(_ attempt: Attempt) {
        if let key = attempt.key {
            stack.cancel(key)
        } else if let invite = attempt.linkInvite, let link = attempt.link {
            var cancel = invite.makeCancel()
            if link !== inProcessBuffer { auth.sign(&cancel, nowMs: clock()) }
            link.send(cancel) {}
        }
    }

    /// What the Lua state held after its last full collection here.
    var luaAfterCollect = 0
    /// Where new calls' references come from.
    var references = CallReferences()
    var messageFailures: [TransactionKey: () -> Void] = [:]
}

