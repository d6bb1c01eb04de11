import Logging
import NIOCore
import ParleyRules
import ParleyDialog
import ParleySIP
import ParleyTransaction
import ParleyTransport

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
    /// The INVITE to the new party.
    var invite = OutgoingInvite()
    var final: Bool { invite.isFinal }

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
    func releaseCallerInvite() {
        if keptInvite?.value.carriesSDP == true, callerSDP == nil { noteCallerSDP(callerInvite) }
        keptInvite = nil
    }
    /// The caller's last session description (its offer, a re-INVITE's, its answer to one of
    /// ours): what a new agent is offered when the call is transferred. Boxed: most calls never
    /// need it.
    private var callerSDP: Held<[UInt8]>?
    func noteCallerSDP(_ message: SIPMessage) {
        if message.carriesSDP { callerSDP = Held(message.body) }
    }
    /// An offer of the caller's session for a new party: its INVITE while kept, else its last
    /// description.
    var callerOffer: SIPMessage {
        if callerSDP == nil, let kept = keptInvite?.value { return kept }
        var m = SIPMessage.request(.invite, .sip(SIPURI(host: .name("invalid"))))
        if let sdp = callerSDP?.value {
            m.headers.append(HeaderName(.contentType), "application/sdp")
            m.body = sdp
        }
        m.updateContentLength()
        return m
    }
    /// The caller's From (display name, user part) as the buffer server keeps it on the leg.
    var callerFrom: NameAddress? { try? NameAddress.parse(caller.remote) }
    /// A transfer the agent asked for (REFER), waiting for its target.
    var transfer: Transfer?
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
    /// The INVITE to the agent (or treatment): when a CANCEL may go, what a late answer means.
    var agentInvite = OutgoingInvite()
    /// The agent leg has its final answer (or its INVITE failed).
    var agentFinal: Bool { agentInvite.isFinal }
    /// The call's life: answered, hung up, out of the table (`CallLife`: the decisions; the
    /// buffer server performs its actions). What follows reads it.
    var life: CallLife
    var agentAnswered: Bool { life.agentConfirmed }
    var callerFinalSent: Bool { life.callerFinal }
    var callerAnswered: Bool { life.callerAnswered }
    var callerAcked: Bool { life.callerAcked }
    /// Hung up (BYEs on their way or done).
    var over: Bool { life.hungUp }
    var byeSent: PerSide<Bool> { life.byeSent }
    private var ackBox: Held<SIPMessage>?
    /// The ACK sent to the agent, kept for 64*T1 to answer its 2xx retransmissions.
    var ackToAgent: SIPMessage? {
        get { ackBox?.value }
        set { ackBox = newValue.map(Held.init) }
    }
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
         ingress: CallerIngress, caller: DialogLeg, agent: DialogLeg, ackTimeoutMs: Int64) {
        self.life = CallLife(ackTimeoutMs: ackTimeoutMs)
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
extension PerSide: Equatable where T: Equatable {}
