import ParleyRules

/// How long an agent stays in each timed state, and when it goes on break.
public struct AgentTimers: Sendable, Equatable {
    /// Wrap-up after a call, before the agent is offered another.
    public var wrapUpMs: Int64
    /// Consecutive no-answers after which the agent goes on break (0: never).
    public var maxNoAnswer: Int
    /// How long a break lasts before the agent is available again.
    public var breakMs: Int64
    /// A ringing or busy agent whose call nobody confirms for this long is reconciled (see
    /// `AgentStateMachine.reconcile`).
    public var staleMs: Int64

    public init(wrapUpMs: Int64 = 10_000, maxNoAnswer: Int = 3, breakMs: Int64 = 60_000, staleMs: Int64 = 15_000) {
        self.wrapUpMs = wrapUpMs
        self.maxNoAnswer = maxNoAnswer
        self.breakMs = breakMs
        self.staleMs = staleMs
    }
}

/// One agent's life cycle, as a value with an injected clock (every event takes `now`, wall-clock
/// milliseconds; nothing here reads a clock or schedules work):
///
/// | from | event | to |
/// |---|---|---|
/// | available | `offer(call)` | ringing(call) |
/// | ringing(call) | `answered(call)` | busy(call); no-answer count reset |
/// | ringing(call) | `noAnswer(call)` | available, or offline(break) after `maxNoAnswer` in a row |
/// | ringing(call) | `rejected(call)` (a failure response, CANCEL, a lost leg) | available |
/// | busy(call) | `callEnded(call)` | wrapUp until now + wrapUpMs (available at once if 0) |
/// | wrapUp, offline(break) | `tick` past the deadline | available |
/// | any | `setOffline` / `setAvailable` (configuration, registration expiry) | offline / available |
///
/// Events that do not fit the state (a late `answered` for a call the agent is no longer
/// ringing for) change nothing and return false, so a reordered or duplicated report can never
/// put an agent in the wrong state.
public struct AgentStateMachine: Sendable, Equatable {
    public enum OfflineReason: Sendable, Equatable {
        /// Logged out (configuration, registration expired).
        case loggedOut
        /// On break after too many no-answers, until the deadline.
        case onBreak(untilMs: Int64)
    }

    public enum State: Sendable, Equatable {
        case available
        case ringing(call: String, sinceMs: Int64)
        case busy(call: String, sinceMs: Int64)
        case wrapUp(untilMs: Int64)
        case offline(OfflineReason)
    }

    public let id: String
    public var skills: [String]
    public var contact: String?
    public var attrs: [String: AgentAttribute]
    public var timers: AgentTimers
    public private(set) var state: State
    /// No-answers in a row (reset by an answered call).
    public private(set) var consecutiveNoAnswers = 0
    public private(set) var callsHandled = 0
    public private(set) var talkMs: Int64 = 0
    /// When the agent last became available (for `idle_ms`).
    public private(set) var idleSinceMs: Int64?
    /// When the current call was last confirmed alive (busy) or offered (ringing).
    public private(set) var lastConfirmedMs: Int64 = 0

    public init(id: String, skills: [String], contact: String?, attrs: [String: AgentAttribute] = [:],
                timers: AgentTimers = AgentTimers(), available: Bool = true, now: Int64) {
        self.id = id
        self.skills = skills
        self.contact = contact
        self.attrs = attrs
        self.timers = timers
        self.state = available ? .available : .offline(.loggedOut)
        self.idleSinceMs = available ? now : nil
    }

    /// The state as rules see it.
    public var ruleState: AgentState {
        switch state {
        case .available: .available
        case .ringing: .ringing
        case .busy: .busy
        case .wrapUp: .wrapup
        case .offline: .offline
        }
    }

    /// The call the agent is ringing for or talking on.
    public var currentCall: String? {
        switch state {
        case .ringing(let c, _), .busy(let c, _): c
        default: nil
        }
    }

    public var isAvailable: Bool { state == .available }

    /// The agent as the rule engine keeps it resident.
    public var info: AgentInfo {
        AgentInfo(id: id, skills: skills, state: ruleState, idleSinceMs: isAvailable ? idleSinceMs : nil,
                  callsHandled: callsHandled, talkMs: talkMs, contact: contact, attrs: attrs)
    }

    /// The next time `tick` has something to do, if any.
    public var nextDeadline: Int64? {
        switch state {
        case .wrapUp(let until), .offline(.onBreak(let until)): until
        default: nil
        }
    }

    // MARK: Events

    /// The distributor offers a call: available -> ringing.
    @discardableResult
    public mutating func offer(call: String, now: Int64) -> Bool {
        guard state == .available else { return false }
        state = .ringing(call: call, sinceMs: now)
        lastConfirmedMs = now
        return true
    }

    /// The agent answered: ringing -> busy.
    @discardableResult
    public mutating func answered(call: String, now: Int64) -> Bool {
        guard case .ringing(let c, _) = state, c == call else { return false }
        state = .busy(call: call, sinceMs: now)
        consecutiveNoAnswers = 0
        lastConfirmedMs = now
        return true
    }

    /// The agent answered a call the distributor had already given up on (its 200 crossed the
    /// CANCEL): whatever the agent was doing between calls, it is on this call now. An agent
    /// ringing for or busy on another call is left alone.
    @discardableResult
    public mutating func answeredLate(call: String, now: Int64) -> Bool {
        switch state {
        case .ringing, .busy: return false
        default:
            state = .busy(call: call, sinceMs: now)
            idleSinceMs = nil
            lastConfirmedMs = now
            return true
        }
    }

    /// The agent let the call ring out: ringing -> available, or on break after
    /// `maxNoAnswer` in a row.
    @discardableResult
    public mutating func noAnswer(call: String, now: Int64) -> Bool {
        guard case .ringing(let c, _) = state, c == call else { return false }
        consecutiveNoAnswers += 1
        if timers.maxNoAnswer > 0, consecutiveNoAnswers >= timers.maxNoAnswer {
            state = .offline(.onBreak(untilMs: now + timers.breakMs))
            idleSinceMs = nil
        } else {
            becomeAvailable(now: now)
        }
        return true
    }

    /// The offer ended without an answer for another reason (486, 603, a CANCEL from the
    /// caller, a failed leg): ringing -> available. The no-answer count is unchanged.
    @discardableResult
    public mutating func rejected(call: String, now: Int64) -> Bool {
        guard case .ringing(let c, _) = state, c == call else { return false }
        becomeAvailable(now: now)
        return true
    }

    /// The buffer server reports the call over: busy -> wrap-up (or available with no wrap-up).
    @discardableResult
    public mutating func callEnded(call: String, now: Int64) -> Bool {
        guard case .busy(let c, let since) = state, c == call else { return false }
        callsHandled += 1
        talkMs += max(0, now - since)
        if timers.wrapUpMs > 0 {
            state = .wrapUp(untilMs: now + timers.wrapUpMs)
        } else {
            becomeAvailable(now: now)
        }
        return true
    }

    /// The buffer server reports the call still up (reconciliation heartbeat).
    public mutating func confirm(call: String, now: Int64) {
        if currentCall == call { lastConfirmedMs = now }
    }

    /// Timed transitions: wrap-up and break end. Returns true if the state changed.
    @discardableResult
    public mutating func tick(now: Int64) -> Bool {
        guard let deadline = nextDeadline, now >= deadline else { return false }
        if case .offline(.onBreak) = state { consecutiveNoAnswers = 0 }
        becomeAvailable(now: now)
        return true
    }

    /// Reconciliation when the roles run apart and a report may be lost: a busy agent whose call
    /// is not among `liveCalls` (what the buffer server says is up) and has not been confirmed
    /// for `staleMs` ends its call; a ringing agent whose offer is not among `pendingOffers`
    /// (what the distributor is still waiting on) is released. Returns true if the state changed.
    @discardableResult
    public mutating func reconcile(liveCalls: Set<String>, pendingOffers: Set<String>, now: Int64) -> Bool {
        switch state {
        case .busy(let c, _):
            if liveCalls.contains(c) { lastConfirmedMs = now; return false }
            guard now - lastConfirmedMs >= timers.staleMs else { return false }
            return callEnded(call: c, now: now)
        case .ringing(let c, _):
            guard !pendingOffers.contains(c), now - lastConfirmedMs >= timers.staleMs else { return false }
            return rejected(call: c, now: now)
        default:
            return false
        }
    }

    /// Logged out (or registration expired). A call in progress is not touched.
    public mutating func setOffline(now: Int64) {
        switch state {
        case .ringing, .busy: return
        default:
            state = .offline(.loggedOut)
            idleSinceMs = nil
        }
    }

    /// Logged in (or registered).
    public mutating func setAvailable(now: Int64) {
        if case .offline = state { becomeAvailable(now: now) }
    }

    private mutating func becomeAvailable(now: Int64) {
        state = .available
        idleSinceMs = now
    }
}
