/// Where a distributor call is on its way to an agent, as a value: events in, actions out, on an
/// injected clock (`nowMs` in the events). One offer to an agent at a time; beside it, the queue's
/// treatment (music on hold) the caller may be connected to while it waits; the queue with its
/// max wait and max length; the overflow treatment at the end. The distributor owns the agent
/// table, the rules and the sockets: it feeds what happened (an offer answered, refused, the max
/// wait passed) and performs what comes out (choose an agent, join the queue, take an offer back).
///
/// What the caller is told (182, 487, the final answer) is `CallerAnswer`'s; this is what the
/// distributor still does for the call. Attempts are named by their index in the call's list.
struct CallRouting: Equatable {
    enum Phase: Equatable {
        /// Between offers: the distributor routes it next (chooses an agent or queues it).
        case routing
        /// An offer to an agent is out.
        case offering(attempt: Int)
        /// In the queue, waiting for an agent.
        case waiting
        /// Over max wait or max length, sent to the queue's overflow treatment (`attempt` once
        /// its handoff went); no more offers.
        case overflowing(String, attempt: Int?)
        /// No more offers: connected, refused, abandoned, given up.
        case done
    }

    enum Treatment: Equatable {
        case none
        /// Handed off to a treatment, no answer yet: no agent is offered the call meanwhile (one
        /// INVITE at a time toward the caller).
        case connecting(attempt: Int, name: String)
        /// The caller is answered and hears this treatment (or, during a transfer, this agent).
        case on(String)
        /// The queue's treatment could not be connected: the caller waits without it.
        case failed
    }

    enum Event: Equatable {
        /// Route the call: an offer ended, an agent came free, the call arrived.
        case next
        /// No agent now: the call waits (`waitingOfType`: how many of its type wait already;
        /// `callerOpen`: the caller has no final answer yet, so a treatment may answer it).
        case wait(nowMs: Int64, waitingOfType: Int, callerOpen: Bool)
        /// The max-wait timer fired.
        case maxWait
        /// An offer to an agent went out.
        case offered(attempt: Int)
        /// An offer to an agent ended unanswered (refused, failed, given up on).
        case offerEnded(attempt: Int)
        /// A treatment handoff went out (the queue's, or the overflow's).
        case treatmentOffered(attempt: Int, name: String)
        case treatmentAnswered(attempt: Int)
        case treatmentFailed(attempt: Int)
        /// The queue's overflow treatment takes the call.
        case overflow(to: String)
        /// An agent answered (a late answer to an offer given up on counts).
        case connected(attempt: Int)
        /// The call is over here: the caller got its final answer, cancelled, hung up, or was
        /// given up.
        case end
    }

    enum Action: Equatable {
        /// Choose an agent (the rules, a transfer's target): offer it, queue the call or give up.
        case choose
        /// Queue the call (feed `wait`).
        case enqueue
        /// Route again (feed `next`).
        case routeAgain
        /// Into the waiting list (and 182 Queued, once: `CallerAnswer`), out of it.
        case joinQueue
        case leaveQueue
        case armMaxWait(atMs: Int64)
        case stopMaxWait
        /// Over max wait or max length: the overflow treatment (feed `overflow`) or the status.
        case overflow(full: Bool)
        /// Connect the caller to the queue's treatment while it waits.
        case connectTreatment(String)
        /// The queue's treatment is not configured: the caller waits without it.
        case treatmentMissing(String)
        /// Take this attempt back (CANCEL it, or once it has a provisional: `OutgoingInvite`).
        case takeBack(attempt: Int)
        /// Hand the caller to the overflow treatment; `move`: it is answered already, on another.
        case connectOverflow(String, move: Bool)
        /// The caller is answered, on a treatment, and still waits for an agent (or is no more).
        case keepOnTreatment
        case forget
        /// The overflow treatment failed: the caller gets the queue's status (or is hung up).
        case giveUp
    }

    let deadlineMs: Int64
    let maxLength: Int?
    /// The queue's treatment while it waits, and whether it is configured.
    let queueTreatment: String?
    let treatmentConfigured: Bool

    private(set) var phase: Phase = .routing
    private(set) var treatment: Treatment = .none
    /// Counted against the queue's max length (once, when it first waited).
    private(set) var counted = false
    private(set) var maxWaitArmed = false

    /// `answeredOn`: a transfer, whose caller is answered already and hears that agent
    /// meanwhile (a queue's max length does not turn it away).
    init(deadlineMs: Int64, maxLength: Int?, queueTreatment: String?, treatmentConfigured: Bool, answeredOn: String? = nil) {
        self.deadlineMs = deadlineMs
        self.maxLength = maxLength
        self.queueTreatment = queueTreatment
        self.treatmentConfigured = treatmentConfigured
        if let answeredOn {
            treatment = .on(answeredOn)
            counted = true
        }
    }

    /// Offers may still go.
    var isOpen: Bool {
        switch phase {
        case .routing, .offering, .waiting: true
        case .overflowing, .done: false
        }
    }

    var isOver: Bool { phase == .done }
    var isWaiting: Bool { phase == .waiting }
    var offerOut: Int? {
        if case .offering(let a) = phase { return a }
        return nil
    }
    var treatmentPending: Bool {
        if case .connecting = treatment { return true }
        return false
    }
    /// The treatment the caller hears (it is answered).
    var onTreatment: String? {
        if case .on(let name) = treatment { return name }
        return nil
    }

    mutating func handle(_ event: Event) -> [Action] {
        switch event {
        case .next:
            switch phase {
            case .routing:
                return treatmentPending ? [.enqueue] : [.choose]
            case .waiting:
                if treatmentPending { return [] }  // it waits where it is until the treatment answers
                phase = .routing
                return [.leaveQueue, .choose]
            default:
                return []
            }
        case .wait(let now, let waitingOfType, let callerOpen):
            guard phase == .routing else { return [] }
            if now >= deadlineMs { return [.overflow(full: false)] }
            if !counted {
                counted = true
                if let maxLength, waitingOfType >= maxLength { return [.overflow(full: true)] }
            }
            phase = .waiting
            var out: [Action] = [.joinQueue]
            if !maxWaitArmed {
                maxWaitArmed = true
                out.append(.armMaxWait(atMs: deadlineMs))
            }
            if let name = queueTreatment, treatment == .none, callerOpen {
                if treatmentConfigured {
                    out.append(.connectTreatment(name))
                } else {
                    treatment = .failed
                    out.append(.treatmentMissing(name))
                }
            }
            return out
        case .maxWait:
            return phase == .waiting ? [.overflow(full: false)] : []
        case .offered(let a):
            guard isOpen else { return [] }
            let out: [Action] = phase == .waiting ? [.leaveQueue] : []
            phase = .offering(attempt: a)
            return out
        case .offerEnded(let a):
            guard phase == .offering(attempt: a) else { return [] }  // an offer given up on already
            phase = .routing
            return [.routeAgain]
        case .treatmentOffered(let a, let name):
            if case .overflowing(name, nil) = phase {
                phase = .overflowing(name, attempt: a)
            } else if isOpen {
                treatment = .connecting(attempt: a, name: name)
            }
            return []
        case .treatmentAnswered(let a):
            if case .overflowing(let name, a) = phase {
                treatment = .on(name)
                return []
            }
            guard case .connecting(a, let name) = treatment else { return [] }
            treatment = .on(name)
            switch phase {
            case .routing:
                return [.keepOnTreatment, .routeAgain]
            case .waiting:
                phase = .routing
                return [.keepOnTreatment, .leaveQueue, .routeAgain]
            case .offering:
                return [.keepOnTreatment]
            case .overflowing, .done:
                return [.forget]
            }
        case .treatmentFailed(let a):
            if case .overflowing(_, a) = phase { return [.giveUp] }
            guard case .connecting(a, _) = treatment else { return [] }
            treatment = .failed
            switch phase {
            case .routing:
                return [.routeAgain]
            case .waiting:
                phase = .routing
                return [.leaveQueue, .routeAgain]
            default:
                return []
            }
        case .overflow(let name):
            guard isOpen else { return [] }
            var out = closing()
            if treatment == .on(name) {  // already there
                phase = .done
                return out
            }
            phase = .overflowing(name, attempt: nil)
            out.append(.connectOverflow(name, move: onTreatment != nil))
            return out
        case .connected(let a):
            var out: [Action] = []
            if phase == .waiting { out.append(.leaveQueue) }
            if case .offering(let other) = phase, other != a { out.append(.takeBack(attempt: other)) }
            if case .connecting(let t, _) = treatment { out.append(.takeBack(attempt: t)) }
            if maxWaitArmed, isOpen { out.append(.stopMaxWait) }
            if onTreatment != nil { treatment = .none }
            phase = .done
            out.append(.forget)
            return out
        case .end:
            guard phase != .done else { return [] }
            let out = closing()
            phase = .done
            return out
        }
    }

    /// Leaving for good: out of the queue, the offer and a connecting treatment taken back (the
    /// treatment stays `connecting` until its answer comes: what the caller is owed waits on it).
    private func closing() -> [Action] {
        var out: [Action] = []
        if phase == .waiting { out.append(.leaveQueue) }
        if case .offering(let a) = phase { out.append(.takeBack(attempt: a)) }
        if case .connecting(let t, _) = treatment { out.append(.takeBack(attempt: t)) }
        if maxWaitArmed, isOpen { out.append(.stopMaxWait) }
        out.append(.forget)
        return out
    }
}
