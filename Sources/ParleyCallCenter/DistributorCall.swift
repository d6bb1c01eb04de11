import Logging
import NIOCore
import ParleyRecords
import ParleyRules
import ParleyDialog
import ParleySIP
import ParleyTransaction
import ParleyTransport

/// Call references (`X-Parley-Call`, the records' key) in arrival order: "c", 13 base-36 digits
/// of the arrival millisecond times 4096 plus a count (one more than the last when calls come
/// faster than that), then four random digits fixed per distributor. Records index calls and
/// queue-log lines by reference: keys that grow keep each batch's inserts on the last pages of
/// those indexes instead of a page anywhere in them.
struct CallReferences {
    var last: UInt64 = 0
    let suffix: String

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
    /// The caller's INVITE server transaction (nil for a transfer: the caller was answered long
    /// ago, and what it waits for is a move).
    let serverKey: TransactionKey?
    /// A transfer (REFER): the agent who asked for it, still connected to the caller until the
    /// target answers, and the agent asked for (nil: a queue, whose rules choose).
    var transferFrom: String?
    var transferTo: String?
    private(set) var invite: SIPMessage
    let reference: String
    /// The caller's address (From's URI), as the records keep it.
    let caller: String
    var info: CallInfo
    let rules: PinnedRules
    /// Every attempt, an attempt's id its index here.
    var attempts: [Attempt] = []
    /// What the caller has been told and is owed (182 once, one final answer, a CANCEL's 487).
    var answer = CallerAnswer()
    var finalSent: Bool { answer.isFinal }
    var cancelled: Bool { answer.cancelled }
    /// The rules' decisions so far, and how many of them the records have.
    var trace: [TraceEntry] = []
    var traceWritten = 0
    var traceOmitted = 0
    /// Where the call is on its way to an agent: offer, queue, treatments (`CallRouting`).
    var routing: CallRouting
    /// This queue's behaviour.
    let policy: QueuePolicy
    var best: SIPMessage?
    var bestCode = 0
    var cancelGuard: TimerToken?
    var queueTimer: TimerToken?

    /// `answeredOn`: a transfer (the caller is answered, and hears that agent meanwhile).
    init(serverKey: TransactionKey?, invite: SIPMessage, reference: String, info: CallInfo, rules: PinnedRules, policy: QueuePolicy,
         treatmentConfigured: Bool, answeredOn: String? = nil) {
        self.policy = policy
        routing = CallRouting(deadlineMs: info.arrivedMs + policy.maxWait.milliseconds, maxLength: policy.maxLength,
                              queueTreatment: policy.treatment, treatmentConfigured: treatmentConfigured, answeredOn: answeredOn)
        if answeredOn != nil { answer = CallerAnswer(answered: true) }
        self.serverKey = serverKey
        self.invite = invite
        self.reference = reference
        self.caller = info.invite?[.from] ?? ""
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
    /// Its index in the call's attempts.
    let id: Int
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
    /// The handoff INVITE: when its CANCEL may go (9.1), whether it has its final answer.
    var invite = OutgoingInvite()
    var final: Bool { invite.isFinal }
    var abandoned = false
    var noAnswerTimer: TimerToken?
    var linkGuard: TimerToken?

    init(call: DistributorCall, agent: String, encoding: HandoffEncoding, kind: AttemptKind = .agent) {
        self.call = call
        id = call.attempts.count
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
