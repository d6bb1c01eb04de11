import ParleySIP

/// The four hooks a rule set may define (rule API v1).
public enum RuleHook: String, Sendable, CaseIterable, CustomStringConvertible {
    case classify
    case selectAgent = "select_agent"
    case orderRegistrations = "order_registrations"
    case handoffEncoding = "handoff_encoding"

    public var description: String { rawValue }
}

/// An agent's state as rules see it (`agent.state`).
public enum AgentState: String, Sendable, CaseIterable {
    case available, ringing, busy, wrapup, offline
}

/// A free attribute from configuration (`agent.attrs.language`).
public enum AgentAttribute: Sendable, Hashable {
    case string(String)
    case number(Double)
    case bool(Bool)
}

extension AgentAttribute: ExpressibleByStringLiteral, ExpressibleByFloatLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByBooleanLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

/// An agent as the distributor knows it. Kept resident in every Lua state (see `AgentDirectory`).
public struct AgentInfo: Sendable, Equatable {
    public var id: String
    public var skills: [String]
    public var state: AgentState
    /// When the agent last became idle (wall-clock ms); `agent.idle_ms` is the time since then,
    /// 0 when nil.
    public var idleSinceMs: Int64?
    public var callsHandled: Int
    public var talkMs: Int64
    /// The registered contact URI.
    public var contact: String?
    public var attrs: [String: AgentAttribute]

    public init(id: String, skills: [String] = [], state: AgentState = .available, idleSinceMs: Int64? = nil,
                callsHandled: Int = 0, talkMs: Int64 = 0, contact: String? = nil, attrs: [String: AgentAttribute] = [:]) {
        self.id = id
        self.skills = skills
        self.state = state
        self.idleSinceMs = idleSinceMs
        self.callsHandled = callsHandled
        self.talkMs = talkMs
        self.contact = contact
        self.attrs = attrs
    }

    /// The same agent apart from what its calls change (state, idle time, calls handled, talk
    /// time): a Lua state can update its resident table in place.
    func sameResidentShape(as other: AgentInfo) -> Bool {
        id == other.id && skills == other.skills && contact == other.contact && attrs == other.attrs
    }

    /// `agent.idle_ms` at wall-clock time `nowMs`.
    public func idleMs(at nowMs: Int64) -> Int64 {
        guard let idleSinceMs else { return 0 }
        return max(0, nowMs - idleSinceMs)
    }
}

/// A call as hooks see it (`call.id`, `call.type`, ...).
public struct CallInfo: Sendable {
    public var id: String
    public var type: String
    public var priority: Int
    /// When the INVITE arrived (wall-clock ms); `call.waited_ms` is the time since then.
    public var arrivedMs: Int64
    /// Agent ids already offered this call.
    public var attempts: [String]
    public var invite: InviteView?

    public init(id: String, type: String, priority: Int = 0, arrivedMs: Int64, attempts: [String] = [],
                invite: InviteView? = nil) {
        self.id = id
        self.type = type
        self.priority = priority
        self.arrivedMs = arrivedMs
        self.attempts = attempts
        self.invite = invite
    }
}

/// A contact-center address (`address.aor`, `address.skill`, `address.kind`, `address.name`).
public struct AddressInfo: Sendable, Equatable {
    public enum Kind: String, Sendable { case skill, treatment }
    public var aor: String
    public var skill: String?
    public var kind: Kind
    public var name: String

    public init(aor: String, skill: String?, kind: Kind, name: String) {
        self.aor = aor
        self.skill = skill
        self.kind = kind
        self.name = name
    }
}

/// How the chosen agent receives the call (`handoff_encoding`).
public enum HandoffEncoding: String, Sendable, CaseIterable {
    case uri, message, tunnel
}

/// Why a hook failed.
public enum RuleFailureKind: String, Sendable {
    /// The hook raised an error.
    case error
    /// The instruction budget (or wall-clock bound) ran out.
    case budget
    /// The memory cap was reached.
    case memory
    /// The hook returned a value of the wrong type.
    case wrongType = "wrong_type"
    /// `select_agent` or `order_registrations` named an agent that was not a candidate.
    case unknownAgent = "unknown_agent"
    /// `handoff_encoding` returned something other than uri, message or tunnel.
    case unknownEncoding = "unknown_encoding"
    /// The rule state for the current generation could not be built.
    case unavailable
}

/// A failed hook: the default was used instead. `message` starts with `file:line:` when known.
public struct RuleFailure: Sendable, Equatable, CustomStringConvertible, Error {
    public var hook: RuleHook
    public var kind: RuleFailureKind
    public var message: String
    public var version: String

    public var description: String { "\(hook) failed (\(kind.rawValue)): \(message); using the default" }
}

/// What `classify` decided.
public struct Classification: Sendable, Equatable {
    public var type: String
    public var priority: Int
    /// The version of the rules that decided.
    public var version: String
    /// Set when the hook failed and the default was used.
    public var failure: RuleFailure?
    /// What the hook traced (`trace(...)`), and how long it ran.
    public var notes: [String] = []
    public var tookNs: Int64 = 0
}

/// `select_agent`'s candidates as the distributor keeps them: the agents' `AgentDirectory`
/// slots, longest idle first, with the time each became idle. Handing these over costs no lookup
/// by id, whatever the number of agents.
public struct AgentCandidates: Sendable, Equatable {
    public var slots: [Int32]
    public var idleSinceMs: [Int64]
    public init(slots: [Int32] = [], idleSinceMs: [Int64] = []) {
        self.slots = slots
        self.idleSinceMs = idleSinceMs
    }
    public var isEmpty: Bool { slots.isEmpty }
    public var count: Int { slots.count }
    public mutating func append(slot: Int32, idleSinceMs: Int64) {
        slots.append(slot)
        self.idleSinceMs.append(idleSinceMs)
    }
}

/// What `select_agent` decided: an agent id, or nil to leave the call queued.
public struct AgentSelection: Sendable, Equatable {
    public var agentID: String?
    public var version: String
    public var failure: RuleFailure?
    public var notes: [String] = []
    public var tookNs: Int64 = 0
}

/// What `handoff_encoding` decided.
public struct HandoffDecision: Sendable, Equatable {
    public var encoding: HandoffEncoding
    public var version: String
    public var failure: RuleFailure?
    public var notes: [String] = []
    public var tookNs: Int64 = 0
}

/// What `order_registrations` decided, with the q values Parley registers.
public struct RegistrationOrder: Sendable, Equatable {
    public var bindings: [RegistrationBinding]
    public var version: String
    public var failure: RuleFailure?
}
