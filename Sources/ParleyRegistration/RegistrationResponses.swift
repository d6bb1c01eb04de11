import Foundation
import Logging
import NIOCore
import ParleyProxy
import ParleyRules
import ParleySIP
import ParleyTransaction
import ParleyTransport

/// What the registration role reads in the upstream's answers to agents' REGISTERs.
extension RegistrationRole {
    /// What an agent is told when the upstream refused or failed (RFC 3261 16.7 as a guide).
    static func mapFailure(_ response: SIPMessage) -> (Int, String, [(String, String)]) {
        let code = response.statusCode ?? 500
        let reason = response.reasonPhrase ?? ""
        switch code {
        case 423:
            return (423, "Interval Too Brief", response.headers.values(HeaderName(.minExpires)).map { ("Min-Expires", $0) })
        case 401, 407:
            return (500, "Server Internal Error: the upstream registrar refused Parley's credentials", [])
        case 400..<500:
            return (code, reason.isEmpty ? "Upstream refused" : reason, [])
        case 500..<600:
            return (500, "Server Internal Error: the upstream registrar answered \(code) \(reason)", [("Retry-After", "30")])
        default:
            return (code, reason, [])
        }
    }


    /// Whether two contact URIs name the same place (compared as `plainURI`).
    static func sameContact(_ a: String, _ b: String) -> Bool {
        guard let x = try? URI.parse(a), let y = try? URI.parse(b) else { return a == b }
        return plainURI(x) == plainURI(y)
    }

    /// A contact the upstream's 200 still binds (expires above 0) other than `removed`, as the
    /// fan-out writes contacts (no URI headers); nil when the agent is bound nowhere else.
    static func remainingContact(_ response: SIPMessage, without removed: String) -> String? {
        guard let list = try? response.contacts() else { return nil }
        for c in list {
            guard let a = c.address, (c.expires ?? 1) > 0, case .sip(var u) = a.uri else { continue }
            u.headers = []
            let text = u.description
            if !sameContact(text, removed) { return text }
        }
        return nil
    }

    /// The expiry the upstream granted `contact`, from its 200's Contact set.
    static func grantedSeconds(_ response: SIPMessage, contact: String) -> UInt32? {
        guard let list = try? response.contacts() else { return nil }
        let want = (try? URI.parse(contact)).map(Self.plainURI)
        var best: UInt32?
        for c in list {
            guard let a = c.address, let e = c.expires else { continue }
            if Self.plainURI(a.uri) == want { return e }
            best = best ?? e
        }
        return best
    }

    static func plainURI(_ uri: URI) -> String {
        guard case .sip(var u) = uri else { return uri.description.lowercased() }
        u.parameters = u.parameters.filter { $0.name.lowercased() == "transport" }
        u.headers = []
        return u.description.lowercased()
    }
}
