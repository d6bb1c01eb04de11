/// What the caller of a distributor call has been told and is still owed, as a value: events in,
/// actions out, on an injected clock. The distributor offers the call (one offer at a time, a
/// treatment beside it); this decides when the caller hears 182 Queued (once), when a CANCEL's
/// 487 goes (once the offers are taken back, or after a guard time), and that the caller gets one
/// final answer only. The distributor builds and sends what it says.
struct CallerAnswer: Equatable {
    enum State: Equatable {
        /// No final response yet.
        case unanswered
        /// The caller's CANCEL came while an offer was out: 487 once it is back, or at `deadlineMs`.
        case cancelling(deadlineMs: Int64)
        /// A 2xx went (an agent's, a treatment's; a transfer starts here).
        case answered
        /// A final failure went (`code`; 487 after a CANCEL).
        case refused(code: Int)
    }

    enum Event: Equatable {
        /// An offer to an agent went out, or ended (answered, refused, given up on).
        case offerOut
        case offerEnded(treatmentPending: Bool)
        /// The call waits in the queue.
        case queued
        /// The caller's CANCEL.
        case cancel(nowMs: Int64)
        /// The clock: the CANCEL's guard may have passed.
        case tick(nowMs: Int64)
        /// A 2xx went to the caller.
        case answered
        /// The caller is to get this final failure (no agent, the queue's status), or 487 (a
        /// treatment that failed after the CANCEL).
        case refuse(code: Int)
    }

    enum Action: Equatable {
        /// Send 182 Queued.
        case announceQueued
        /// Take the offers back (CANCEL them), leave the queue.
        case takeBackOffers
        /// Call `tick` at this time.
        case armCancelGuard(atMs: Int64)
        /// Send the caller its final failure (the best an agent gave, or `code`).
        case answerFailure(code: Int)
    }

    /// How long a CANCEL waits for the offer out to come back before the caller gets 487 anyway.
    static let cancelGuardMs: Int64 = 4_000

    private(set) var state: State = .unanswered
    private(set) var announced = false
    /// Offers out now (an agent's INVITE not final and not given up on).
    private(set) var offersOut = 0

    init() {}

    /// A transfer: the caller was answered long ago.
    init(answered: Bool) {
        if answered { state = .answered }
    }

    var isFinal: Bool {
        switch state {
        case .answered, .refused: true
        default: false
        }
    }

    /// Whether the caller's CANCEL came (even if an answer crossed it).
    private(set) var cancelled = false

    mutating func handle(_ event: Event) -> [Action] {
        switch event {
        case .offerOut:
            offersOut += 1
            return []
        case .offerEnded(let treatmentPending):
            offersOut = max(0, offersOut - 1)
            guard case .cancelling = state, offersOut == 0, !treatmentPending else { return [] }
            return refuse(487)
        case .queued:
            guard state == .unanswered, !announced else { return [] }
            announced = true
            return [.announceQueued]
        case .cancel(let now):
            guard state == .unanswered else { return [] }
            cancelled = true
            if offersOut > 0 {
                let deadline = now + Self.cancelGuardMs
                state = .cancelling(deadlineMs: deadline)
                return [.takeBackOffers, .armCancelGuard(atMs: deadline)]
            }
            return [.takeBackOffers] + refuse(487)
        case .tick(let now):
            guard case .cancelling(let deadline) = state, now >= deadline else { return [] }
            return refuse(487)
        case .answered:
            // A 2xx that crosses the CANCEL connects the call all the same.
            guard !isFinal else { return [] }
            state = .answered
            return []
        case .refuse(let code):
            guard !isFinal else { return [] }
            return refuse(code)
        }
    }

    private mutating func refuse(_ code: Int) -> [Action] {
        state = .refused(code: code)
        return [.answerFailure(code: code)]
    }
}
