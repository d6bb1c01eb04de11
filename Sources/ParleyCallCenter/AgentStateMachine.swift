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
/// | available, wrapUp, break | `pause(reason)` (an operator) | break(reason), until made available |
/// | available, wrapUp, break | `logOff(reason)` | offline(reason) |
/// | ringing, busy | `pause` / `logOff` | unchanged, the change `pending` until the call ends |
/// | break, offline, wrapUp | `makeAvailable` | available (a pending change is cancelled instead) |
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
        /// On break because an operator (or the agent) asked, until made available again.
        case paused
    }

    /// A change an operator asked for while the agent was ringing or busy: made when that call
    /// ends (the call is never cut).
    public enum Pending: Sendable, Equatable {
        case pause(reason: String?)
        case logOff(reason: String?)
    }

    /// What an operator's request did.
    public enum ControlResult: Sendable, Equatable {
        case changed
        /// The agent is ringing or busy: the change waits for the call's end (`pending`).
        case pending
        /// Already so.
        case unchanged
        /// Not a change that can be made now (why).
        case notAllowed(String)
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
    /// When the agent entered its state (a state of another kind: a new call while busy does
    /// not count).
    public private(set) var sinceMs: Int64
    /// Why the agent is on break or offline (nil: no reason given, or another state).
    public private(set) var reason: String?
    /// A change waiting for the current call's end.
    public private(set) var pending: Pending?
    /// Calls the agent let ring out, in all.
    public private(set) var noAnswers = 0

    public init(id: String, skills: [String], contact: String?, attrs: [String: AgentAttribute] = [:],
                timers: AgentTimers = AgentTimers(), available: Bool = true, now: Int64) {
        self.id = id
        self.skills = skills
        self.contact = contact
        self.attrs = attrs
        self.timers = timers
        self.state = available ? .available : .offline(.loggedOut)
        self.idleSinceMs = available ? now : nil
        self.sinceMs = now
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

    /// How long an available agent has been idle at `nowMs` (0 for any other), as `info` says.
    public func idleMs(at nowMs: Int64) -> Int64 {
        guard isAvailable, let idleSinceMs else { return 0 }
        return max(0, nowMs - idleSinceMs)
    }

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
        enter(.ringing(call: call, sinceMs: now), now: now)
        lastConfirmedMs = now
        return true
    }

    /// The agent answered: ringing -> busy.
    @discardableResult
    public mutating func answered(call: String, now: Int64) -> Bool {
        guard case .ringing(let c, _) = state, c == call else { return false }
        enter(.busy(call: call, sinceMs: now), now: now)
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
            enter(.busy(call: call, sinceMs: now), now: now)
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
        noAnswers += 1
        if applyPending(now: now) { return true }
        if timers.maxNoAnswer > 0, consecutiveNoAnswers >= timers.maxNoAnswer {
            enter(.offline(.onBreak(untilMs: now + timers.breakMs)), now: now, reason: "no_answer")
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
        if applyPending(now: now) { return true }
        becomeAvailable(now: now)
        return true
    }

    /// The buffer server reports the call over: busy -> wrap-up (or available with no wrap-up).
    @discardableResult
    public mutating func callEnded(call: String, now: Int64) -> Bool {
        guard case .busy(let c, let since) = state, c == call else { return false }
        callsHandled += 1
        talkMs += max(0, now - since)
        if applyPending(now: now) { return true }
        if timers.wrapUpMs > 0 {
            enter(.wrapUp(untilMs: now + timers.wrapUpMs), now: now)
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

    /// Logged out (configuration). A call in progress is not touched.
    public mutating func setOffline(now: Int64) {
        _ = logOff(reason: nil, now: now, deferred: false)
    }

    /// Logged in.
    public mutating func setAvailable(now: Int64) {
        if case .offline = state { becomeAvailable(now: now) }
    }

    // MARK: An operator's requests

    /// On break with a reason: at once when available, in wrap-up or on break already (the
    /// reason replaced); when the current call ends if ringing or busy. A logged-off agent
    /// logs in first.
    public mutating func pause(reason: String?, now: Int64) -> ControlResult {
        switch state {
        case .ringing, .busy:
            if pending == .pause(reason: reason) { return .unchanged }
            pending = .pause(reason: reason)
            return .pending
        case .offline(.loggedOut):
            return .notAllowed("\(id) is logged off; log it in first")
        case .offline(.paused) where self.reason == reason:
            return .unchanged
        default:
            enter(.offline(.paused), now: now, reason: reason)
            idleSinceMs = nil
            return .changed
        }
    }

    /// Logged off with a reason: at once unless ringing or busy (then when the call ends).
    public mutating func logOff(reason: String?, now: Int64) -> ControlResult {
        logOff(reason: reason, now: now, deferred: true)
    }

    private mutating func logOff(reason: String?, now: Int64, deferred: Bool) -> ControlResult {
        switch state {
        case .ringing, .busy:
            guard deferred else { return .notAllowed("\(id) is on a call") }
            if pending == .logOff(reason: reason) { return .unchanged }
            pending = .logOff(reason: reason)
            return .pending
        case .offline(.loggedOut) where self.reason == reason:
            return .unchanged
        default:
            enter(.offline(.loggedOut), now: now, reason: reason)
            idleSinceMs = nil
            return .changed
        }
    }

    /// Available: ends a break (an operator's or a no-answer one), wrap-up, or logs the agent
    /// in. On a ringing or busy agent it cancels a pending change (nothing else to do).
    public mutating func makeAvailable(now: Int64) -> ControlResult {
        switch state {
        case .ringing, .busy:
            guard pending != nil else { return .unchanged }
            pending = nil
            return .changed
        case .available:
            return .unchanged
        case .offline:
            consecutiveNoAnswers = 0
            becomeAvailable(now: now)
            return .changed
        case .wrapUp:
            becomeAvailable(now: now)
            return .changed
        }
    }

    /// The state as the admin API names it: `break` for a break (an operator's, or after
    /// missed calls), `offline` for logged off.
    public var adminState: String { Self.adminStates[adminStateIndex] }

    /// The admin API's states, in the order it lists them.
    public static let adminStates = ["available", "ringing", "busy", "wrapup", "break", "offline"]

    var adminStateIndex: Int {
        switch state {
        case .available: 0
        case .ringing: 1
        case .busy: 2
        case .wrapUp: 3
        case .offline(.onBreak), .offline(.paused): 4
        case .offline(.loggedOut): 5
        }
    }

    /// The call ended (or its offer did): a pending change is made now.
    private mutating func applyPending(now: Int64) -> Bool {
        guard let p = pending else { return false }
        pending = nil
        switch p {
        case .pause(let reason): enter(.offline(.paused), now: now, reason: reason)
        case .logOff(let reason): enter(.offline(.loggedOut), now: now, reason: reason)
        }
        idleSinceMs = nil
        return true
    }

    private mutating func enter(_ s: State, now: Int64, reason: String? = nil) {
        if !Self.sameKind(s, state) { sinceMs = now }
        state = s
        self.reason = reason
    }

    private static func sameKind(_ a: State, _ b: State) -> Bool {
        switch (a, b) {
        case (.available, .available), (.ringing, .ringing), (.busy, .busy), (.wrapUp, .wrapUp): true
        case (.offline(let x), .offline(let y)): x == y || (x != .loggedOut && y != .loggedOut)
        default: false
        }
    }

    private mutating func becomeAvailable(now: Int64) {
        enter(.available, now: now)
        idleSinceMs = now
    }
}
