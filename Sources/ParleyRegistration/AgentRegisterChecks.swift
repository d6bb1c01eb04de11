import NIOCore
import ParleySIP
import ParleyTransport

// What the registration role checks of an agent's REGISTER before anything is forwarded
// (RFC 3261 10.3, and where the agent may register: ContactPolicy), and who may send other
// requests through its listener.
extension RegistrationRole {
    /// Whether a request other than REGISTER may go on to an agent: from a configured peer, or
    /// inside a dialog from a registered agent's phone.
    func mayForward(_ request: SIPMessage, from source: SocketAddress) -> Bool {
        guard let ip = IPNetwork.bytes(of: source) else { return false }
        if configuration.forwardFrom.contains(where: { $0.contains(bytes: ip) }) { return true }
        if IPNetwork.bytes(of: configuration.upstream.address) == ip { return true }  // calls through the Path
        guard ((try? request.to()) ?? nil)?.tag != nil else { return false }
        return state.agents.values.contains { a in
            guard case .sip(let u)? = try? URI.parse(a.contact), let host = IPNetwork.addressBytes(u.host.address) else { return false }
            return host == ip
        }
    }

    struct Refusal: Error {
        var code: Int
        var reason: String
        var headers: [(String, String)] = []
    }

    struct AgentForward {
        var aor: String
        /// Contact values as forwarded (expires clamped), or ["*"].
        var contacts: [String]
        /// The first contact's URI (nil when removing).
        var contact: String?
        var expires: UInt32
        var removesAll: Bool
    }

    /// RFC 3261 10.3 checks Parley makes before anything is forwarded.
    func validate(_ request: SIPMessage, agentID: String, source: SocketAddress) -> Result<AgentForward, Refusal> {
        guard let to = (try? request.to()) ?? nil, case .sip(let toURI) = to.uri else {
            return .failure(Refusal(code: 400, reason: "Bad Request: the To header must carry a SIP address of record"))
        }
        guard toURI.decodedUser == agentID else {
            return .failure(Refusal(code: 403, reason: "Forbidden: \(agentID) may register only sip:\(agentID)@\(configuration.domain)"))
        }
        guard request.callID != nil, ((try? request.cseq()) ?? nil) != nil else {
            return .failure(Refusal(code: 400, reason: "Bad Request: missing Call-ID or CSeq"))
        }
        let contacts: [ContactValue]
        do { contacts = try request.contacts() } catch {
            return .failure(Refusal(code: 400, reason: error.reasonPhrase))
        }
        let headerExpires: UInt32?
        do { headerExpires = try request.expires() } catch {
            return .failure(Refusal(code: 400, reason: "Bad Request: Expires is not a number of seconds"))
        }
        let aor = "sip:\(agentID)@\(configuration.domain)"
        if contacts.isEmpty {
            // A query (10.2.3): forwarded as is, nothing changes.
            return .success(AgentForward(aor: aor, contacts: [], contact: nil, expires: headerExpires ?? 0, removesAll: false))
        }
        if contacts.contains(.wildcard) {
            guard contacts.count == 1, headerExpires == 0 else {
                return .failure(Refusal(code: 400, reason: "Bad Request: Contact * needs Expires: 0 and no other Contact"))
            }
            return .success(AgentForward(aor: aor, contacts: ["*"], contact: nil, expires: 0, removesAll: true))
        }
        var out: [String] = []
        var first: String?
        var firstExpires: UInt32 = 0
        for c in contacts {
            guard var address = c.address else { continue }
            guard case .sip(let u) = address.uri else {
                return .failure(Refusal(code: 400, reason: "Bad Request: unsupported Contact scheme \(address.uri.scheme)"))
            }
            let requested = c.expires ?? headerExpires ?? configuration.maxExpires
            // Removing a contact sends no call anywhere; adding one must be to an allowed place.
            if requested != 0, !configuration.contacts.allows(u.host, agent: agentID, source: source) {
                return .failure(Refusal(code: 403, reason: "Forbidden: contact \(u.host) is not an address \(agentID) may register"))
            }
            if requested != 0 && requested < configuration.minExpires {
                return .failure(Refusal(code: 423, reason: "Interval Too Brief", headers: [("Min-Expires", String(configuration.minExpires))]))
            }
            let granted = min(requested, configuration.maxExpires)
            address.parameters.set("expires", String(granted))
            out.append(address.description)
            if first == nil {
                var plain = u
                plain.headers = []
                first = plain.description
                firstExpires = granted
            }
        }
        return .success(AgentForward(aor: aor, contacts: out, contact: first, expires: firstExpires, removesAll: false))
    }
}
