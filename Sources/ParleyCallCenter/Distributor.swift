import Logging
import NIOCore
import ParleyRecords
import ParleyRules
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

/// The automatic contact distributor: takes the caller's INVITE (100 Trying at once), asks the
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
        public var answered = 0
        public var failed = 0
        public var cancelled = 0
        public var noAnswers = 0
        public var queued = 0
        public var queueTimeouts = 0
        public var ruleFailures = 0
        public var eventsReceived = 0
        public var reconciled = 0
    }

    public struct TableSizes: Sendable, Equatable, CustomStringConvertible {
        public var calls = 0
        public var attempts = 0
        public var linkAttempts = 0
        public var waiting = 0
        public var answered = 0
        public var total: Int { calls + attempts + linkAttempts + waiting }
        public var description: String {
            "calls=\(calls) attempts=\(attempts) link_attempts=\(linkAttempts) waiting=\(waiting) answered_calls=\(answered)"
        }
    }

    public let stack: SIPStack
    public let configuration: DistributorConfiguration
    public let engine: RuleEngine
    public let agents: AgentBook
    public var logger: Logger
    public private(set) var counters = Counters()
    /// Links for the `message` and `tunnel` encodings (`uri` needs none). An encoding whose link
    /// is missing falls back to `uri`, logged.
    public var links: [HandoffEncoding: HandoffLink] = [:]
    /// Where call records and queue-log lines go (nil: none kept). Writes are queued, never
    /// waited for on the event loop.
    public var records: RecordStore?
    private let clock: () -> Int64

    private var calls: [TransactionKey: DistributorCall] = [:]
    private var attemptsByKey: [TransactionKey: Attempt] = [:]
    private var attemptsByBranch: [String: Attempt] = [:]
    private var waiting: [DistributorCall] = []
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
        self.logger = logger
        self.agents = AgentBook(agents: agents, directory: store.agents, now: clock)
        stack.user = self
        self.agents.schedule = { [unowned stack] ms, body in stack.schedule(after: .milliseconds(ms), body) }
        self.agents.onAvailable = { [weak self] _ in self?.serveQueue() }
    }

    /// Starts the reconciliation timer.
    public func start() { scheduleReconcile() }
    public func stop() { reconcileTimer?.cancel() }

    public var tableSizes: TableSizes {
        TableSizes(calls: calls.count, attempts: attemptsByKey.count, linkAttempts: attemptsByBranch.count,
                   waiting: waiting.count, answered: answeredCalls.count)
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
        stack.respond(100, "Trying", to: key)
        let mf = ((try? invite.maxForwards()) ?? nil) ?? 70
        guard mf > 1 else {
            stack.respond(483, "Too Many Hops", to: key)
            return
        }
        let rules = engine.pin()
        let view = InviteView(message: invite, source: hostPort(source.remote), transport: source.transport.rawValue)
        let classification = rules.classify(view)
        if classification.failure != nil { counters.ruleFailures += 1 }
        let reference = "c" + stack.newTag()
        let info = CallInfo(id: reference, type: classification.type, priority: classification.priority,
                            arrivedMs: clock(), attempts: [], invite: view)
        let call = DistributorCall(serverKey: key, invite: invite, reference: reference, info: info, rules: rules)
        calls[key] = call
        records?.record(.arrived(call: reference, sipCallID: invite.callID ?? "", caller: view.fields[InviteView.Field.from.rawValue] ?? "",
                                 queue: classification.type, priority: classification.priority, rulesVersion: rules.version, at: info.arrivedMs))
        logger.debug("call \(reference) (\(invite.callID ?? "?")) type \(classification.type) priority \(classification.priority) rules \(rules.version.prefix(12))")
        tryNext(call)
    }

    public func stack(_ stack: SIPStack, didReceiveCancel cancel: SIPMessage, forInvite invite: TransactionKey) {
        guard let call = calls[invite], !call.finalSent else { return }
        counters.cancelled += 1
        call.cancelled = true
        dequeue(call)
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
        guard !call.finalSent, !call.cancelled else { return }
        let serving = agents.serving(type: call.info.type, knownSkills: configuration.skills)
        let untried = serving.filter { !call.info.attempts.contains($0.id) }
        let candidates = untried.filter(\.isAvailable).map(\.id)
        if untried.allSatisfy({ if case .offline = $0.state { return true } else { return false } }) {
            // No agent is left who could ever take it.
            finish(call, code: 480, reason: "Temporarily Unavailable: no agent for \(call.info.type)")
            return
        }
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
        let decision = call.rules.handoffEncoding(for: call.info, agent: agent)
        if decision.failure != nil { counters.ruleFailures += 1 }
        var encoding = decision.encoding
        if encoding != .uri, links[encoding] == nil {
            logger.warning("call \(call.reference): no \(encoding) link to the buffer server; handing off with uri")
            encoding = .uri
        }
        handOff(call, to: agent, encoding: encoding)
    }

    /// The INVITE as the buffer server gets it: Request-URI the buffer server's with the agent id
    /// appended, Max-Forwards one less, our call reference.
    private func handoffInvite(_ call: DistributorCall, agent: String, encoding: HandoffEncoding) -> SIPMessage {
        var invite = call.invite
        invite.requestURI = HandoffWire.target(buffer: configuration.bufferURI, agent: agent)
        let mf = ((try? invite.maxForwards()) ?? nil) ?? 70
        invite.headers.set(HeaderName(.maxForwards), String(mf - 1))
        for line in invite.headers where line.name.lowercased().hasPrefix("x-parley-") {
            invite.headers.removeAll(HeaderName(line.name))
        }
        invite.headers.append(HandoffWire.callHeader, call.reference)
        invite.headers.append(HandoffWire.encodingHeader, encoding.rawValue)
        return invite
    }

    private func handOff(_ call: DistributorCall, to agent: String, encoding: HandoffEncoding) {
        counters.handoffs[encoding.rawValue, default: 0] += 1
        let attempt = Attempt(call: call, agent: agent, encoding: encoding)
        call.current = attempt
        call.attempts.append(attempt)
        call.liveAttempts += 1
        records?.record(.offered(call: call.reference, agent: agent, at: clock()))
        var invite = handoffInvite(call, agent: agent, encoding: encoding)
        logger.debug("call \(call.reference): offering to \(agent) by \(encoding)")
        if encoding == .uri {
            guard let key = stack.sendRequest(invite, to: configuration.bufferDestination) else {
                attemptFailed(attempt, code: 503)
                return
            }
            attempt.key = key
            attemptsByKey[key] = attempt
        } else if let link = links[encoding] {
            let branch = stack.newBranch(prefix: "ho")
            invite.headers.prepend(HeaderName(.via), link.via(branch: branch))
            attempt.branch = branch
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
        } else if let invite = attempt.linkInvite, let link = links[attempt.encoding] {
            link.send(invite.makeCancel()) {}
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
           let link = links[.tunnel] {
            link.send(invite.makeACK(for: message)) {}  // 17.1.1.3, hop by hop
        }
    }

    private func attemptResponse(_ attempt: Attempt, _ response: SIPMessage) {
        guard let code = response.statusCode, let call = attempt.call else { return }
        var upstream = response
        upstream.headers.removeFirstElement(HeaderName(.via))
        upstream.headers.removeAll(HandoffWire.callHeader)
        switch code {
        case 100...199:
            attempt.provisional = true
            if attempt.cancelPending { cancelAttempt(attempt) }
            if code > 100, call.current === attempt, !attempt.abandoned, !call.finalSent, !call.cancelled {
                stack.respond(upstream, to: call.serverKey)
            }
        case 200...299:
            let first = !attempt.final
            attempt.final = true
            attempt.noAnswerTimer?.cancel()
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
            }
            call.finalSent = true
            stack.respond(upstream, to: call.serverKey)  // 2xx retransmissions too (16.7 step 5)
            dequeue(call)
        default:
            guard !attempt.final else { return }
            attempt.final = true
            attempt.noAnswerTimer?.cancel()
            if !attempt.abandoned {
                call.liveAttempts -= 1
                agents.rejected(attempt.agent, call: call.reference)
                records?.record(.notAnswered(call: call.reference, agent: attempt.agent, code: code, at: clock()))
                call.record(code: code, reason: response.reasonPhrase, response: upstream)
            } else {
                // The agent was already released when its no-answer timer fired.
                if case .ringing(let c, _)? = agents.agent(attempt.agent)?.state, c == call.reference {
                    agents.rejected(attempt.agent, call: call.reference)
                }
            }
            if call.cancelled {
                if call.liveAttempts <= 0 { finish(call, code: 487) }
            } else if call.current === attempt {
                tryNext(call)
            }
        }
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
            call.queueTimer?.cancel()
            dequeue(call)
            for a in call.attempts where a.final { forgetLinkAttempt(a) }
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

    /// Answers the caller: the best response any agent gave, or `code`.
    private func finish(_ call: DistributorCall, code: Int, reason: String? = nil, timedOut: Bool = false) {
        guard !call.finalSent else { return }
        if code == 487 {
            // Recorded when the caller gets the 487, not at the CANCEL: an agent's 2xx that
            // crosses the CANCEL connects the call instead.
            records?.record(.abandoned(call: call.reference, at: clock()))
        } else {
            let sent = call.best == nil ? code : call.bestCode
            records?.record(.failed(call: call.reference, code: sent, timedOut: timedOut, at: clock()))
        }
        call.finalSent = true
        call.cancelGuard?.cancel()
        call.queueTimer?.cancel()
        dequeue(call)
        if code == 487 || call.best == nil {
            stack.respond(code, reason, to: call.serverKey)
        } else if let best = call.best {
            stack.respond(best, to: call.serverKey)
        }
        if code != 487 { counters.failed += 1 }
        // Link attempts that are final can go; the rest go when their guard fires.
        for (branch, a) in attemptsByBranch where a.call === call && a.final {
            attemptsByBranch[branch] = nil
            a.linkGuard?.cancel()
        }
    }

    // MARK: The queue

    private func enqueue(_ call: DistributorCall) {
        guard !call.queued else { return }
        call.queued = true
        counters.queued += 1
        let i = waiting.firstIndex { $0.info.priority < call.info.priority } ?? waiting.endIndex
        waiting.insert(call, at: i)
        if !call.sentQueued {
            call.sentQueued = true
            stack.respond(182, "Queued", to: call.serverKey, toTag: nil)
        }
        if call.queueTimer == nil {
            call.queueTimer = stack.schedule(after: configuration.queueTimeout) { [weak self, weak call] in
                guard let self, let call, call.queued else { return }
                self.counters.queueTimeouts += 1
                self.finish(call, code: 480, reason: "Temporarily Unavailable: no agent answered in time", timedOut: true)
            }
        }
    }

    private func dequeue(_ call: DistributorCall) {
        guard call.queued else { return }
        call.queued = false
        waiting.removeAll { $0 === call }
    }

    /// An agent became available: offer it the waiting calls, highest priority first.
    private func serveQueue() {
        for call in waiting where call.queued {
            call.queued = false
            waiting.removeAll { $0 === call }
            tryNext(call)
        }
    }

    // MARK: Events from the buffer server

    private func receivedMessage(_ message: SIPMessage, key: TransactionKey) {
        if let ct = (try? message.contentType()) ?? nil, ct.essence == HandoffWire.eventType {
            stack.respond(200, to: key)
            guard let event = CallEvent(body: message.bodyText) else { return }
            counters.eventsReceived += 1
            handle(event)
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
            if answeredCalls.removeValue(forKey: reference) != nil {
                records?.record(.completed(call: reference, agent: agent, at: clock()))
            }
            agents.callEnded(agent, call: reference)
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
    }

    // MARK: The message link

    /// A link that carries handoffs in SIP MESSAGEs (RFC 3428, `message/sip`) over this stack.
    public func makeMessageLink() -> HandoffLink { MessageLink(distributor: self) }

    fileprivate func sendThroughMessage(_ inner: SIPMessage, failed: @escaping () -> Void) {
        let dest = configuration.bufferDestination
        let agent = HandoffWire.agentID(in: inner.requestURI) ?? ""
        let local = stack.transport.advertisedAddress(for: dest.transport, toward: dest.address)
        let me = local.map { "sip:distributor@\(hostPort($0))" } ?? "sip:distributor@invalid"
        linkCSeq += 1
        let callID = "h-" + (((try? inner.topVia()) ?? nil)?.branch ?? stack.newTag()) + "@parley"
        let m = HandoffWire.wrap(inner, requestURI: HandoffWire.target(buffer: configuration.bufferURI, agent: agent),
                                 from: "<\(me)>;tag=\(stack.newTag())", to: "<\(configuration.bufferURI)>", callID: callID,
                                 cseq: linkCSeq, contact: local.map { Resolver.contact(for: $0, transport: dest.transport) })
        guard let key = stack.sendRequest(m, to: dest) else { return failed() }
        messageFailures[key] = failed
    }

    private var messageFailures: [TransactionKey: () -> Void] = [:]

    fileprivate func messageLinkResult(_ key: TransactionKey, failed: Bool) {
        guard let f = messageFailures.removeValue(forKey: key) else { return }
        if failed { f() }
    }
}

/// `message` encoding, distributor side.
final class MessageLink: HandoffLink {
    weak var distributor: Distributor?
    init(distributor: Distributor) { self.distributor = distributor }

    func via(branch: String) -> String {
        guard let d = distributor else { return "SIP/2.0/UDP invalid;branch=\(branch)" }
        return d.stack.makeVia(for: d.configuration.bufferDestination, branch: branch)
    }

    func send(_ message: SIPMessage, failed: @escaping () -> Void) {
        distributor?.sendThroughMessage(message, failed: failed)
    }
}

/// A call the distributor holds: the caller's INVITE server transaction and its attempts.
final class DistributorCall {
    let serverKey: TransactionKey
    let invite: SIPMessage
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
    var best: SIPMessage?
    var bestCode = 0
    var cancelGuard: TimerToken?
    var queueTimer: TimerToken?

    init(serverKey: TransactionKey, invite: SIPMessage, reference: String, info: CallInfo, rules: PinnedRules) {
        self.serverKey = serverKey
        self.invite = invite
        self.reference = reference
        self.info = info
        self.rules = rules
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

/// One offer of a call to one agent.
final class Attempt {
    weak var call: DistributorCall?
    let agent: String
    let encoding: HandoffEncoding
    var key: TransactionKey?
    var branch: String?
    var linkInvite: SIPMessage?
    var provisional = false
    var final = false
    var abandoned = false
    var cancelPending = false
    var cancelSent = false
    var noAnswerTimer: TimerToken?
    var linkGuard: TimerToken?

    init(call: DistributorCall, agent: String, encoding: HandoffEncoding) {
        self.call = call
        self.agent = agent
        self.encoding = encoding
    }
}

extension Duration {
    var milliseconds: Int64 {
        let c = components
        return c.seconds * 1000 + c.attoseconds / 1_000_000_000_000_000
    }
}
