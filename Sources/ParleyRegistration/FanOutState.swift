// What the registration role knows and decides, without sockets: the agents registered through
// Parley, what each contact-center address holds at the upstream registrar, and which address
// needs a REGISTER now (its bindings changed, its refresh is due, or a failed attempt may be
// retried). Time is an injected number of milliseconds, so every rule here is unit-tested on a
// virtual clock.

import ParleyRules
import ParleySIP

/// An agent registered through Parley (its own address of record, e.g. `sip:alice@cc.example.com`).
public struct AgentRegistration: Sendable, Equatable {
    public var agentID: String
    public var aor: String
    /// The contact URI the agent registered (parameters other than the URI's own removed).
    public var contact: String
    public var expiresAtMs: Int64
    /// The Call-ID and last CSeq Parley uses for this agent's REGISTERs upstream (RFC 3261 10.2.4:
    /// one Call-ID per registrar, CSeq increasing).
    public var upstreamCallID: String
    public var upstreamCSeq: UInt32

    public init(agentID: String, aor: String, contact: String, expiresAtMs: Int64, upstreamCallID: String, upstreamCSeq: UInt32) {
        self.agentID = agentID
        self.aor = aor
        self.contact = contact
        self.expiresAtMs = expiresAtMs
        self.upstreamCallID = upstreamCallID
        self.upstreamCSeq = upstreamCSeq
    }
}

/// What one contact-center address holds upstream, as far as Parley knows.
public struct AddressRecord: Sendable, Equatable {
    public var aor: String
    public var callID: String
    public var cseq: UInt32
    /// The bindings the upstream confirmed (with a 200), Parley's own included.
    public var bindings: [UpstreamBinding]
    /// When the confirmed bindings expire upstream (0: nothing confirmed).
    public var expiresAtMs: Int64
    /// When the next refresh is due.
    public var refreshAtMs: Int64
    /// After a failure: not before this time.
    public var retryAtMs: Int64 = 0
    public var failures = 0
    public var lastError: String?

    public init(aor: String, callID: String, cseq: UInt32 = 0, bindings: [UpstreamBinding] = [], expiresAtMs: Int64 = 0, refreshAtMs: Int64 = 0) {
        self.aor = aor
        self.callID = callID
        self.cseq = cseq
        self.bindings = bindings
        self.expiresAtMs = expiresAtMs
        self.refreshAtMs = refreshAtMs
    }
}

/// A REGISTER the role should send for one address.
public struct PlannedRegister: Sendable, Equatable {
    public var aor: String
    /// The bindings sent with q and expires: every binding of the address on a refresh or a
    /// retry (`full`), only the new or re-ordered ones on a change.
    public var set: [UpstreamBinding]
    /// Every binding the address should have once this REGISTER succeeds.
    public var desired: [UpstreamBinding]
    /// Whether `set` is the whole set (its answer restarts the address's refresh clock).
    public var full: Bool
    /// Bindings to take away (sent with expires=0).
    public var remove: [UpstreamBinding]
    public var reason: Reason
    public enum Reason: String, Sendable { case changed, refresh, retry }
}

/// The registration role's state. A value type; the role owns one and persists what changes.
public struct FanOutState: Sendable {
    /// The expiry Parley asks for its fan-out bindings, seconds.
    public var expires: UInt32
    public private(set) var agents: [String: AgentRegistration] = [:]
    public private(set) var addresses: [String: AddressRecord] = [:]

    public init(expires: UInt32) { self.expires = expires }

    // MARK: Agents

    /// An agent's registration was accepted upstream.
    public mutating func agentRegistered(_ a: AgentRegistration) { agents[a.agentID] = a }

    /// An agent unregistered (or was removed); returns what was known of it.
    @discardableResult
    public mutating func agentRemoved(_ id: String) -> AgentRegistration? { agents.removeValue(forKey: id) }

    /// Removes agents whose registration has run out; returns them.
    public mutating func expireAgents(nowMs: Int64) -> [AgentRegistration] {
        let gone = agents.values.filter { $0.expiresAtMs <= nowMs }
        for a in gone { agents[a.agentID] = nil }
        return gone.sorted { $0.agentID < $1.agentID }
    }

    /// The contact of every registered agent.
    public var agentContacts: [String: String] { agents.mapValues(\.contact) }

    /// Puts back what was persisted (agents past their expiry are dropped).
    public mutating func restore(agents list: [AgentRegistration], addresses records: [AddressRecord], nowMs: Int64) {
        for a in list where a.expiresAtMs > nowMs { agents[a.agentID] = a }
        for r in records {
            var r = r
            // After a restart every address is refreshed at once: Parley does not know what
            // happened upstream while it was away.
            r.refreshAtMs = nowMs
            r.bindings = r.expiresAtMs > nowMs ? r.bindings : []
            addresses[r.aor] = r
        }
    }

    // MARK: Addresses

    /// The REGISTERs due now, given the bindings every address should have. `inFlight` addresses
    /// (a REGISTER of theirs is on its way) are skipped. Addresses that should hold nothing any
    /// more (no longer configured) get their confirmed bindings removed.
    public mutating func plan(desired: [UpstreamBinding], nowMs: Int64, inFlight: Set<String>,
                              newCallID: (String) -> String) -> [PlannedRegister] {
        var byAOR: [String: [UpstreamBinding]] = [:]
        var order: [String] = []
        for b in desired {
            if byAOR[b.aor] == nil { order.append(b.aor) }
            byAOR[b.aor, default: []].append(b)
        }
        for aor in addresses.keys.sorted() where byAOR[aor] == nil && !(addresses[aor]?.bindings.isEmpty ?? true) {
            order.append(aor)
            byAOR[aor] = []
        }
        var out: [PlannedRegister] = []
        for aor in order where !inFlight.contains(aor) {
            let want = byAOR[aor] ?? []
            if addresses[aor] == nil { addresses[aor] = AddressRecord(aor: aor, callID: newCallID(aor)) }
            let record = addresses[aor]!
            let (register, remove) = FanOutPlan.changes(from: record.bindings, to: want)
            let changed = !register.isEmpty || !remove.isEmpty
            let reason: PlannedRegister.Reason
            if record.retryAtMs > nowMs {
                continue
            } else if record.failures > 0 {
                reason = .retry
            } else if changed {
                reason = .changed
            } else if !want.isEmpty && nowMs >= record.refreshAtMs {
                reason = .refresh
            } else {
                continue
            }
            if want.isEmpty && remove.isEmpty { continue }
            // A change sends only what changed (an address of many agents stays a small REGISTER);
            // a refresh or a retry sends everything.
            let full = reason != .changed || record.bindings.isEmpty
            out.append(PlannedRegister(aor: aor, set: full ? want : register, desired: want, full: full, remove: remove, reason: reason))
        }
        return out
    }

    /// The next CSeq for an address's REGISTER (a challenge answered takes another).
    public mutating func nextCSeq(_ aor: String) -> UInt32 {
        addresses[aor, default: AddressRecord(aor: aor, callID: aor)].cseq += 1
        return addresses[aor]!.cseq
    }

    /// The upstream answered 200: the address now holds `set` for `grantedSeconds`. A partial
    /// REGISTER (`full` false) leaves the refresh clock of the rest as it was.
    public mutating func confirmed(_ aor: String, set: [UpstreamBinding], grantedSeconds: UInt32, nowMs: Int64, full: Bool = true) {
        guard var r = addresses[aor] else { return }
        r.bindings = set
        r.failures = 0
        r.retryAtMs = 0
        r.lastError = nil
        if !full && r.expiresAtMs > nowMs && !set.isEmpty {
            addresses[aor] = r
            return
        }
        let granted = Int64(grantedSeconds) * 1000
        r.expiresAtMs = set.isEmpty ? 0 : nowMs + granted
        // Refresh when three quarters of the time has gone (at least 5 s before expiry when it can).
        r.refreshAtMs = nowMs + max(min(granted * 3 / 4, granted - 5000), granted / 2)
        r.failures = 0
        r.retryAtMs = 0
        r.lastError = nil
        addresses[aor] = r
    }

    /// A REGISTER for the address failed: nothing changes upstream as far as Parley knows; the
    /// next attempt waits 2, 4, 8 ... up to 60 seconds.
    public mutating func failed(_ aor: String, error: String, nowMs: Int64) {
        guard var r = addresses[aor] else { return }
        r.failures += 1
        r.lastError = error
        r.retryAtMs = nowMs + Int64(min(60, 1 << min(r.failures, 6))) * 1000
        addresses[aor] = r
    }

    /// The earliest time something is due (refresh, retry, agent expiry), for the role's timer.
    public func nextDeadline() -> Int64? {
        var t: Int64?
        func consider(_ v: Int64) { if v > 0 { t = min(t ?? v, v) } }
        for r in addresses.values where !r.bindings.isEmpty || r.failures > 0 {
            consider(r.failures > 0 ? r.retryAtMs : r.refreshAtMs)
        }
        for a in agents.values { consider(a.expiresAtMs) }
        return t
    }
}
