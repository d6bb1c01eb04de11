import ParleyDialog

/// The life of one back-to-back call in the buffer server's routing table, as a value: events
/// in, actions out, on an injected clock (the caller's ACK is due by a deadline). It decides when
/// the caller is answered, when each leg is hung up, when the distributor is told the call ended
/// and when the entry may leave the table; the buffer server builds and sends the messages the
/// actions name. The agent leg's INVITE (`OutgoingInvite`) and a move in progress are part of it.
struct CallLife: Equatable {
    enum State: Equatable {
        /// The agent leg's INVITE is out; the caller has had no final answer.
        case settingUp
        /// The caller has the agent's 2xx; its ACK is due by `ackDeadlineMs`.
        case answered(ackDeadlineMs: Int64)
        /// Confirmed on both legs: in-dialog requests are relayed.
        case talking
        /// The caller had a final failure (or 487); the agent INVITE's end is awaited.
        case failed
        /// Hung up: BYEs out, the agent INVITE's end or a move's awaited.
        case ending
        /// Nothing left: out of the table.
        case over
    }

    enum Event: Equatable {
        /// The agent leg's INVITE got its first 2xx; `unwanted`: it had been cancelled.
        case agentAnswered(nowMs: Int64, unwanted: Bool)
        /// The agent leg's INVITE failed: a final failure (`code` nil: relay it) or its
        /// transaction's end (`code`: Parley's own, 408 or 503).
        case agentFailed(code: Int?)
        /// The caller's CANCEL (or a BYE before any answer).
        case callerCancelled
        /// The caller's ACK for its 2xx.
        case callerAcked
        /// The clock: the ACK deadline may have passed.
        case tick(nowMs: Int64)
        /// A BYE from one side (answered 200 by the server).
        case bye(from: Side)
        /// One side is gone (its probe failed): nobody there to hang up.
        case legGone(Side)
        /// Parley ends the call itself (the distributor gave it up, a refused move, a failed
        /// transfer after the agent left).
        case endHere
        /// A BYE Parley sent on a leg no longer the call's (a move's old or unwanted party),
        /// counted until its transaction ends (BYEs the actions ask for are counted already).
        case byeOut
        /// One of those BYE transactions ended.
        case byeFinished
        /// A move started or ended (the entry stays while one is out).
        case moveStarted
        case moveEnded
        /// A move connected a new party in the agent leg's place.
        case agentReplaced
        /// The agent hung up after asking for a transfer: the caller waits for the target.
        case agentLeftForTransfer
    }

    enum Action: Equatable {
        /// Send the caller the agent's 2xx (re-addressed) and arm the ACK timer for `atMs`.
        case answerCaller(ackDeadlineMs: Int64)
        /// Send the caller a final failure: the agent's (`code` nil) or Parley's own.
        case failCaller(code: Int?)
        /// CANCEL the agent leg's INVITE (now, or with its first provisional).
        case cancelAgent
        /// ACK the agent's 2xx (with the caller's ACK body, when there is one).
        case ackAgent
        /// BYE on that side's leg.
        case bye(Side)
        /// Take back a move in progress.
        case cancelMove
        /// Tell the distributor the call ended (the agent is free).
        case reportEnded
        /// The entry leaves the routing table.
        case remove
    }

    private(set) var state: State = .settingUp
    let ackTimeoutMs: Int64
    /// Whether the caller was answered 2xx (its dialog exists: it gets a BYE at the end).
    private(set) var callerAnswered = false
    /// Whether the agent leg is a confirmed dialog (answered, or a move's new party).
    private(set) var agentConfirmed = false
    /// Whether the agent leg's INVITE is over (final answer, or its transaction ended).
    private(set) var agentSettled = false
    private(set) var byeSent = PerSide(caller: false, agent: false)
    private(set) var byesOut = 0
    private(set) var moving = false
    private(set) var endedReported = false

    init(ackTimeoutMs: Int64) { self.ackTimeoutMs = ackTimeoutMs }

    /// The caller has its final answer.
    var callerFinal: Bool { state != .settingUp }
    /// The caller's ACK came (the call is talking, or was before it ended).
    private(set) var callerAcked = false
    /// Hung up: nothing more is relayed, the leg still up is being hung up.
    var hungUp: Bool { state == .ending || (state == .over && callerAnswered) }

    mutating func handle(_ event: Event) -> [Action] {
        var out: [Action] = []
        switch event {
        case .agentAnswered(let now, let unwanted):
            agentConfirmed = true
            agentSettled = true
            if state == .settingUp, !unwanted {
                callerAnswered = true
                let deadline = now + ackTimeoutMs
                state = .answered(ackDeadlineMs: deadline)
                out.append(.answerCaller(ackDeadlineMs: deadline))
            } else {
                // The caller is gone (cancelled, failed) or the INVITE was taken back: the 2xx
                // is a dialog all the same: ACK it and hang it up.
                out.append(.ackAgent)
                hangUp(.agent, &out)
            }
        case .agentFailed(let code):
            agentSettled = true
            if state == .settingUp {
                state = .failed
                out.append(.failCaller(code: code))
            }
        case .callerCancelled:
            guard state == .settingUp else { return [] }
            state = .failed
            out.append(.failCaller(code: 487))
            out.append(.cancelAgent)
        case .callerAcked:
            guard case .answered = state else { return [] }
            state = .talking
            callerAcked = true
            out.append(.ackAgent)
        case .tick(let now):
            guard case .answered(let deadline) = state, now >= deadline else { return [] }
            endHere(&out)
        case .bye(let side):
            if state == .settingUp {
                // A BYE in an early dialog: from the caller it is a CANCEL; from the agent, a refusal.
                if side == .caller {
                    state = .failed
                    out += [.failCaller(code: 487), .cancelAgent]
                } else {
                    agentSettled = true
                    state = .failed
                    out.append(.failCaller(code: 480))
                }
            }
            hangUp(side.other, &out)
        case .legGone(let side):
            guard !hungUp else { return [] }
            byeSent[side] = true  // nobody there to hang up
            hangUp(side.other, &out)
        case .endHere:
            endHere(&out)
        case .byeOut:
            byesOut += 1
        case .byeFinished:
            byesOut = max(0, byesOut - 1)
        case .moveStarted:
            moving = true
        case .moveEnded:
            moving = false
        case .agentReplaced:
            agentConfirmed = true
            agentSettled = true
            byeSent[.agent] = false
        case .agentLeftForTransfer:
            byeSent[.agent] = true
        }
        finishIfDone(&out)
        return out
    }

    /// Whether `side` has a confirmed dialog Parley has not hung up yet.
    func owesBye(_ side: Side) -> Bool {
        !byeSent[side] && (side == .caller ? callerAnswered : agentConfirmed)
    }

    private mutating func endHere(_ out: inout [Action]) {
        bye(.caller, &out)
        hangUp(.agent, &out)
    }

    /// A BYE on `side` (counted out until the server reports its transaction's end with
    /// `byeFinished`, or at once if it could not be sent).
    private mutating func bye(_ side: Side, _ out: inout [Action]) {
        guard owesBye(side) else { return }
        byeSent[side] = true
        byesOut += 1
        out.append(.bye(side))
    }

    /// The other side hung up (or is gone): BYE on `side`, the call is over, the distributor told.
    private mutating func hangUp(_ side: Side, _ out: inout [Action]) {
        if state != .over { state = .ending }
        if moving { out.append(.cancelMove) }
        bye(side, &out)
        if callerAnswered, !endedReported {
            endedReported = true
            out.append(.reportEnded)
        }
    }

    /// Out of the table once nothing is left: the caller has its final answer, the agent INVITE
    /// is settled, no BYE and no move is out, and an answered call is hung up.
    private mutating func finishIfDone(_ out: inout [Action]) {
        guard state == .failed || state == .ending, agentSettled, byesOut == 0, !moving else { return }
        state = .over
        out.append(.remove)
    }
}
