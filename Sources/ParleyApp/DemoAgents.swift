import Logging
import NIOCore
import ParleyCallCenter
import ParleySIP
import ParleyDialog
import ParleyTransaction
import ParleyTransport

/// How the demo's simulated people behave. Ranges are seconds, drawn uniformly.
public struct DemoBehaviour: Sendable {
    /// How long an agent's phone rings before the agent picks up.
    public var ring: ClosedRange<Double> = 0.5...3
    /// How long an agent talks before hanging up (BYE).
    public var talk: ClosedRange<Double> = 4...15
    /// Chance that an agent declines an offered call (486 Busy Here).
    public var busyChance = 0.08
    /// Chance that an agent lets the phone ring (the distributor's no_answer_timeout moves the call on).
    public var noAnswerChance = 0.05
    /// How long a caller waits unanswered (queued or ringing) before hanging up (CANCEL).
    public var patience: ClosedRange<Double> = 10...45
    /// The call types callers dial (`sip:TYPE@distributor`); the shipped rules treat each as a skill.
    public var callTypes = ["sales", "support", "billing"]

    public init() {}
}

/// The agents' phones: one SIP user agent server per agent, all on one SwiftNIO UDP socket
/// (each agent's contact is `sip:ID@HOST:PORT`, told apart by the Request-URI user and, in a
/// dialog, by Call-ID and tag). A phone rings, then answers, declines with 486, or rings on; an
/// answered call is hung up with a BYE after a talk time. Confined to the stack's loop.
public final class DemoAgentPhones: SIPTransactionUser, @unchecked Sendable {
    public enum PhoneState: String, Sendable { case idle, ringing, talking }

    /// What one agent's phone did.
    public struct Figures: Sendable, Equatable {
        /// INVITEs that reached this phone.
        public var offered = 0
        /// Calls answered (200 sent).
        public var answered = 0
        /// Calls declined with 486.
        public var declined = 0
        /// Calls let ring (until the distributor CANCELled them).
        public var letRing = 0
        /// Answered calls the agent hung up (BYE sent).
        public var hungUp = 0
        /// Answered calls the other side hung up (BYE received).
        public var hungUpOn = 0
        /// Answers the caller never got: the caller's CANCEL crossed the 200 (the buffer server
        /// then CANCELs, ACKs and hangs up this leg). Counted in `answered` too.
        public var answeredTooLate = 0
        /// Answered calls that reached a caller.
        public var connected: Int { answered - answeredTooLate }
    }

    public struct AgentView: Sendable {
        public var id: String
        public var state: PhoneState
        public var figures: Figures
    }

    final class Agent {
        let id: String
        var figures = Figures()
        var call: PhoneCall?
        init(id: String) { self.id = id }
        var state: PhoneState { call.map { $0.answered ? .talking : .ringing } ?? .idle }
    }

    final class PhoneCall {
        let agent: Agent
        let invite: TransactionKey
        let request: SIPMessage
        var leg: DialogLeg
        var answered = false
        var acknowledged = false
        var cancelledAfterAnswer = false
        var ok: SIPMessage?
        var timers: [TimerToken] = []
        init(agent: Agent, invite: TransactionKey, request: SIPMessage, leg: DialogLeg) {
            self.agent = agent
            self.invite = invite
            self.request = request
            self.leg = leg
        }
        func cancelTimers() {
            for t in timers { t.cancel() }
            timers.removeAll()
        }
    }

    public let stack: SIPStack
    public let host: String
    public let port: Int
    private var behaviour: DemoBehaviour
    private var random: DemoRandom
    private var agents: [String: Agent] = [:]
    private let order: [String]
    private var dialogs: [String: PhoneCall] = [:]
    private var byInvite: [TransactionKey: PhoneCall] = [:]
    /// BYEs sent and not yet answered or failed.
    public private(set) var pendingByes = 0
    /// Whether new calls are still answered (false while the demo drains: they get 486).
    public var accepting = true
    private let t1: Duration

    public init(stack: SIPStack, host: String, port: Int, agentIDs: [String], behaviour: DemoBehaviour, seed: UInt64,
                t1: Duration = .milliseconds(500)) {
        self.stack = stack
        self.host = host
        self.port = port
        self.behaviour = behaviour
        self.random = DemoRandom(seed: seed)
        self.order = agentIDs
        self.t1 = t1
        for id in agentIDs { agents[id] = Agent(id: id) }
        stack.user = self
    }

    /// The contact the configuration gives agent `id`.
    public static func contact(id: String, host: String, port: Int) -> String { "sip:\(id)@\(host):\(port)" }

    public var views: [AgentView] {
        order.compactMap { agents[$0] }.map { AgentView(id: $0.id, state: $0.state, figures: $0.figures) }
    }

    /// Calls ringing or up on any phone.
    public var activeCalls: Int { agents.values.filter { $0.call != nil }.count }

    /// Every agent hangs up the call it is in (BYE), and stops answering new ones.
    public func hangUpAll() {
        accepting = false
        for agent in agents.values {
            guard let call = agent.call, call.answered else { continue }
            hangUp(call)
        }
    }

    // MARK: SIPTransactionUser

    public func stack(_ stack: SIPStack, didReceiveRequest request: SIPMessage, transaction: TransactionKey?, from source: SIPSource) {
        guard let ids = request.dialogIDs else { return }
        if let toTag = ids.toTag {
            let call = dialogs[ids.callID + ";" + toTag]
            inDialog(request, call: call, transaction: transaction)
            return
        }
        guard let key = transaction else { return }
        guard request.method == .invite else {
            stack.respond(request.method == .options ? 200 : 405, to: key)
            return
        }
        guard let id = request.requestURI?.user, let agent = agents[id] else {
            stack.respond(404, to: key)
            return
        }
        agent.figures.offered += 1
        // One line per phone: a second call while one rings or is up is declined.
        guard agent.call == nil, accepting else {
            agent.figures.declined += 1
            stack.respond(486, to: key)
            return
        }
        guard let leg = Self.uasLeg(for: request, localTag: stack.newTag(), firstCSeq: UInt32.random(in: 1...9000, using: &random)) else {
            stack.respond(400, to: key)
            return
        }
        let call = PhoneCall(agent: agent, invite: key, request: request, leg: leg)
        agent.call = call
        dialogs[leg.callID + ";" + leg.localTag] = call
        byInvite[key] = call
        stack.respond(180, to: key, toTag: leg.localTag)
        if random.chance(behaviour.busyChance) {
            call.timers.append(stack.schedule(after: random.seconds(0.2...1.0)) { [weak self, weak call] in
                guard let self, let call, !call.answered else { return }
                call.agent.figures.declined += 1
                self.stack.respond(486, to: call.invite, toTag: call.leg.localTag)
                self.finish(call)
            })
        } else if random.chance(behaviour.noAnswerChance) {
            agent.figures.letRing += 1  // rings until the distributor CANCELs it
        } else {
            call.timers.append(stack.schedule(after: random.seconds(behaviour.ring)) { [weak self, weak call] in
                guard let self, let call else { return }
                self.answer(call)
            })
        }
    }

    public func stack(_ stack: SIPStack, didReceiveResponse response: SIPMessage, transaction: TransactionKey) {
        // Only BYEs are sent in client transactions.
        if let code = response.statusCode, code >= 200 { pendingByes = max(0, pendingByes - 1) }
    }

    public func stack(_ stack: SIPStack, didReceiveCancel cancel: SIPMessage, forInvite invite: TransactionKey) {
        guard let call = byInvite[invite] else { return }
        if call.answered {
            // Our 200 crossed the caller's CANCEL: the buffer server had already answered the
            // caller 487, so this answer never reached a caller.
            if !call.cancelledAfterAnswer {
                call.cancelledAfterAnswer = true
                call.agent.figures.answeredTooLate += 1
            }
            return
        }
        stack.respond(487, to: invite, toTag: call.leg.localTag)
        finish(call)
    }

    public func stack(_ stack: SIPStack, transaction: TransactionKey, didFail failure: TransactionFailure) {
        if let call = byInvite[transaction] {
            // No ACK for our 2xx (Timer H, or the 2xx retransmissions ran out): hang up (13.3.1.4).
            if call.answered, !call.acknowledged { hangUp(call) } else if !call.answered { finish(call) }
            return
        }
        pendingByes = max(0, pendingByes - 1)
    }

    public func stack(_ stack: SIPStack, didTerminate transaction: TransactionKey) {
        byInvite.removeValue(forKey: transaction)
    }

    // MARK: The phone's behaviour

    private func answer(_ call: PhoneCall) {
        guard !call.answered, call.agent.call === call else { return }
        call.answered = true
        call.agent.figures.answered += 1
        var ok = SIPTransport.makeResponse(to: call.request, code: 200, toTag: call.leg.localTag)
        ok.headers.append(HeaderName(.contact), "<\(Self.contact(id: call.agent.id, host: host, port: port))>")
        ok.headers.append(HeaderName(.contentType), "application/sdp")
        ok.body = Array(Self.sdp(host: host, session: call.leg.localCSeq).utf8)
        ok.updateContentLength()
        call.ok = ok
        stack.respond(ok, to: call.invite)
        // 13.3.1.4: the UAS core retransmits its 2xx, T1 doubling to T2, until the ACK; 64*T1
        // without one and the call is hung up.
        retransmit(call, after: t1, deadline: ContinuousClock.now + t1 * 64)
    }

    private func retransmit(_ call: PhoneCall, after: Duration, deadline: ContinuousClock.Instant) {
        call.timers.append(stack.schedule(after: after) { [weak self, weak call] in
            guard let self, let call, !call.acknowledged, call.agent.call === call, let ok = call.ok else { return }
            if ContinuousClock.now >= deadline {
                self.hangUp(call)
                return
            }
            self.stack.respond(ok, to: call.invite)
            self.retransmit(call, after: min(after * 2, .seconds(4)), deadline: deadline)
        })
    }

    private func inDialog(_ request: SIPMessage, call: PhoneCall?, transaction: TransactionKey?) {
        guard let call else {
            if let transaction, request.method != .ack { stack.respond(481, to: transaction) }
            return
        }
        switch request.method {
        case .ack?:
            guard call.answered, !call.acknowledged else { return }
            call.acknowledged = true
            call.cancelTimers()
            call.timers.append(stack.schedule(after: random.seconds(behaviour.talk)) { [weak self, weak call] in
                guard let self, let call else { return }
                self.hangUp(call)
            })
        case .bye?:
            if let transaction { stack.respond(200, to: transaction) }
            if call.agent.call === call {
                call.agent.figures.hungUpOn += 1
                finish(call)
            }
        default:
            // A probe (OPTIONS), a re-INVITE, INFO...: the phone says yes.
            if let transaction { stack.respond(200, to: transaction) }
        }
    }

    private func hangUp(_ call: PhoneCall) {
        guard call.agent.call === call else { return }
        call.agent.figures.hungUp += 1
        let contact = "<\(Self.contact(id: call.agent.id, host: host, port: port))>"
        let bye = call.leg.makeRequest(.bye, contact: contact, payload: nil)
        if let hop = call.leg.nextHop(), stack.sendRequest(bye, to: hop) != nil { pendingByes += 1 }
        finish(call)
    }

    private func finish(_ call: PhoneCall) {
        call.cancelTimers()
        if call.agent.call === call { call.agent.call = nil }
        dialogs.removeValue(forKey: call.leg.callID + ";" + call.leg.localTag)
    }

    /// The dialog a UAS gets from an INVITE (12.1.1): route set the Record-Route in order,
    /// remote target the Contact.
    static func uasLeg(for invite: SIPMessage, localTag: String, firstCSeq: UInt32) -> DialogLeg? {
        guard let callID = invite.callID, var from = (try? invite.from()) ?? nil, var to = (try? invite.to()) ?? nil,
              let cseq = (try? invite.cseq()) ?? nil else { return nil }
        let remoteTag = from.tag
        from.parameters.remove("tag")
        to.parameters.remove("tag")
        let target = ((try? invite.contacts()) ?? []).first?.address?.uri
        let routes = ((try? invite.recordRoutes()) ?? []).map(\.description)
        return DialogLeg(callID: callID, localTag: localTag, remoteTag: remoteTag, local: to, remote: from,
                         localCSeq: firstCSeq, remoteCSeq: cseq.sequence, remoteTarget: target, routeSet: routes,
                         transport: .udp)
    }

    static func sdp(host: String, session: UInt32) -> String {
        "v=0\r\no=- \(session) 1 IN IP4 \(host)\r\ns=-\r\nc=IN IP4 \(host)\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    }
}

extension SIPMessage {
    /// Call-ID, From tag and To tag.
    var dialogIDs: (callID: String, fromTag: String?, toTag: String?)? {
        guard let callID else { return nil }
        return (callID, ((try? from()) ?? nil)?.tag, ((try? to()) ?? nil)?.tag)
    }
}
