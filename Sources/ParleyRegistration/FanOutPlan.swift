// The registration fan-out of the contact center (the second seed, claims 10 to 16): every
// contact-center address (one per skill, one per treatment system) is bound at the upstream
// registrar to Parley itself at q 1.0 and to the agents able to serve it, in the order and with
// the q-values the `order_registrations` rule chose (0.9 times the rule's q, so Parley outranks
// them while it is up). This file is the pure part: what should be bound, what must change, and
// the REGISTER requests that change it. The role that sends them and keeps them fresh is built
// on it.

import ParleyRules
import ParleySIP

/// A contact-center address of record.
public struct ContactCenterAddress: Sendable, Hashable {
    public enum Kind: String, Sendable { case skill, treatment }
    /// e.g. `sip:sales@cc.example.com`.
    public var aor: String
    public var kind: Kind
    /// e.g. `sales`, `ivr`, `moh`, `announcement`.
    public var name: String
    /// The skill it serves (nil for a treatment).
    public var skill: String?

    public init(aor: String, kind: Kind, name: String, skill: String? = nil) {
        self.aor = aor
        self.kind = kind
        self.name = name
        self.skill = skill
    }
}

/// One binding at the upstream registrar.
public struct UpstreamBinding: Sendable, Hashable, CustomStringConvertible {
    public enum Owner: Sendable, Hashable, CustomStringConvertible {
        case parley, agent(String), treatment(String)

        /// `parley`, `agent:ID`, `treatment:NAME` (as stored and listed).
        public var description: String {
            switch self {
            case .parley: "parley"
            case .agent(let id): "agent:\(id)"
            case .treatment(let name): "treatment:\(name)"
            }
        }

        public init?(_ text: String) {
            if text == "parley" { self = .parley }
            else if text.hasPrefix("agent:") { self = .agent(String(text.dropFirst(6))) }
            else if text.hasPrefix("treatment:") { self = .treatment(String(text.dropFirst(10))) }
            else { return nil }
        }
    }
    public var aor: String
    /// The contact URI.
    public var contact: String
    /// q in thousandths (RFC 3261 allows three decimals).
    public var q: Int
    public var owner: Owner
    /// The q the rule chose (thousandths) before Parley's 0.9 scaling; Parley's own binding: 1000.
    public var ruleQ: Int

    public init(aor: String, contact: String, q: Int, owner: Owner, ruleQ: Int? = nil) {
        self.aor = aor
        self.contact = contact
        self.q = q
        self.owner = owner
        self.ruleQ = ruleQ ?? q
    }

    public var description: String { "\(aor) -> \(contact) q=\(RegistrationQ.format(q))" }
}

public enum FanOutPlan {
    /// The bindings the upstream registrar should hold. For each address: Parley's own contact at
    /// q 1.0, then the agents in the order `order` returns (the `order_registrations` hook) at 0.9
    /// times their q. An agent without a registered contact gets no binding; an agent the rule
    /// leaves out gets none for that address.
    /// A treatment address (kind `treatment`) with an entry in `treatmentContacts` (name -> the
    /// treatment system's URI) gets that system bound like an agent the rule put first (q 0.9).
    /// `parleyContact` may be given per address (`parleyContactFor`), e.g. `sip:sales@` the
    /// distributor, so that a call reaching Parley keeps the address it was made to.
    public static func desired(addresses: [ContactCenterAddress], parleyContact: String, agentContacts: [String: String],
                               treatmentContacts: [String: String] = [:],
                               parleyContactFor: ((ContactCenterAddress) -> String)? = nil,
                               order: (ContactCenterAddress) -> [(agentID: String, q: Double)]) -> [UpstreamBinding] {
        var out: [UpstreamBinding] = []
        for address in addresses {
            let own = parleyContactFor?(address) ?? parleyContact
            out.append(UpstreamBinding(aor: address.aor, contact: own, q: RegistrationQ.parleyQ, owner: .parley))
            if address.kind == .treatment, let system = treatmentContacts[address.name] {
                let b = RegistrationQ.bindings(for: [(address.name, 1.0)])[0]
                out.append(UpstreamBinding(aor: address.aor, contact: system, q: b.registeredQ, owner: .treatment(address.name), ruleQ: b.ruleQ))
                continue
            }
            let ordered = order(address).filter { agentContacts[$0.agentID] != nil }
            for b in RegistrationQ.bindings(for: ordered) {
                out.append(UpstreamBinding(aor: address.aor, contact: agentContacts[b.agentID]!, q: b.registeredQ, owner: .agent(b.agentID),
                                           ruleQ: b.ruleQ))
            }
        }
        return out
    }

    /// What moves the registrar from `current` to `desired`: bindings to register (new, or with a
    /// new q) and bindings to remove (sent with expires=0). A binding is its address and contact.
    public static func changes(from current: [UpstreamBinding], to desired: [UpstreamBinding])
        -> (register: [UpstreamBinding], remove: [UpstreamBinding]) {
        struct Key: Hashable { var aor: String; var contact: String }
        var now: [Key: UpstreamBinding] = [:]
        for b in current { now[Key(aor: b.aor, contact: b.contact)] = b }
        var wanted = Set<Key>()
        var register: [UpstreamBinding] = []
        for b in desired {
            let k = Key(aor: b.aor, contact: b.contact)
            wanted.insert(k)
            if now[k]?.q != b.q { register.append(b) }
        }
        let remove = current.filter { !wanted.contains(Key(aor: $0.aor, contact: $0.contact)) }
        return (register, remove)
    }

    /// A REGISTER for one address of record carrying `set` (q and expires per contact) and
    /// `remove` (expires=0). The caller keeps Call-ID and CSeq per address (RFC 3261 10.2.4: a
    /// refresh reuses the Call-ID with a higher CSeq).
    public static func register(aor: String, registrar: String, set: [UpstreamBinding], remove: [UpstreamBinding],
                                expires: UInt32, callID: String, cseq: UInt32, fromTag: String,
                                headers extra: [(String, String)] = []) throws(SIPSyntaxError) -> SIPMessage {
        let uri = try URI.parse(registrar)
        var h = SIPHeaders()
        h.append(HeaderName(.maxForwards), "70")
        h.append(HeaderName(.from), "<\(aor)>;tag=\(fromTag)")
        h.append(HeaderName(.to), "<\(aor)>")
        h.append(HeaderName(.callID), callID)
        h.append(HeaderName(.cseq), "\(cseq) REGISTER")
        for b in set { h.append(HeaderName(.contact), "<\(b.contact)>;q=\(RegistrationQ.format(b.q));expires=\(expires)") }
        for b in remove { h.append(HeaderName(.contact), "<\(b.contact)>;expires=0") }
        for (n, v) in extra { h.append(HeaderName(n), v) }
        h.append(HeaderName(.contentLength), "0")
        return .request(.register, uri, headers: h)
    }

    /// An agent's REGISTER as forwarded upstream: Parley's location added as a Path (RFC 3327),
    /// so that while Parley is up calls to the agent come through it.
    public static func addingPath(_ register: SIPMessage, parleyURI: String) -> SIPMessage {
        var r = register
        r.headers.prepend(HeaderName(.path), "<\(parleyURI);lr>")
        let supported = r.optionTags(.supported)
        if !supported.contains(where: { $0.lowercased() == "path" }) {
            r.headers.append(HeaderName(.supported), "path")
        }
        return r
    }
}
