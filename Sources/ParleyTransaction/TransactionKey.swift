// Matching messages to transactions: RFC 3261 sections 17.1.3 (responses to client
// transactions) and 17.2.3 (requests to server transactions, with the RFC 2543 fallback for a
// branch without the magic cookie), and section 9.2 (the INVITE a CANCEL refers to).

import ParleySIP

/// The name of a transaction, computed from a message.
///
/// - Client transactions (17.1.3): the branch of the top Via and the CSeq method. A response
///   matches the client transaction whose request carried that branch and method.
/// - Server transactions (17.2.3), when the top Via branch starts with `z9hG4bK` and has more
///   after it: the branch, the sent-by of the top Via and the method, ACK counting as INVITE.
///   A CANCEL is a transaction of its own.
/// - Server transactions for any other request (RFC 2543 peers, and RFC 4475's `badbranch`
///   whose branch is exactly `z9hG4bK`): the Request-URI, From tag, Call-ID, CSeq number, method
///   (ACK counting as INVITE) and top Via. The To tag is not part of the key; a
///   `TransactionTable` checks it when it finds a candidate: a request's To tag must equal that
///   of the request that created the transaction, an ACK's that of the response it acknowledges.
///
/// Branches and hosts compare case-insensitively (RFC 3261 section 7.3.1); a Via compared as a
/// whole ignores `received` and `rport`, which the receiving transport adds (18.2.1, RFC 3581).
public struct TransactionKey: Sendable, Hashable, CustomStringConvertible {
    /// Which side of a transaction a key names.
    public enum Side: Sendable, Hashable { case client, server }

    enum Storage: Sendable, Hashable {
        case client(branch: String, method: SIPMethod)
        case server(branch: String, sentBy: String, method: SIPMethod)
        case legacyServer(LegacyServerID)
    }

    /// The RFC 2543 identity of a server transaction (17.2.3, last paragraphs).
    struct LegacyServerID: Sendable, Hashable {
        var requestURI: String
        var fromTag: String?
        var callID: String
        var sequence: UInt32
        var method: SIPMethod
        var topVia: String
    }

    let storage: Storage

    public var side: Side {
        if case .client = storage { return .client }
        return .server
    }

    /// The method of the transaction (INVITE for a key computed from an ACK).
    public var method: SIPMethod {
        switch storage {
        case .client(_, let m), .server(_, _, let m): m
        case .legacyServer(let id): id.method
        }
    }

    /// Whether the key was computed by the RFC 2543 rules (no usable magic-cookie branch).
    public var isRFC2543: Bool {
        if case .legacyServer = storage { return true }
        return false
    }

    /// The branch, in lower case, for keys computed by the RFC 3261 rules.
    public var branch: String? {
        switch storage {
        case .client(let b, _), .server(let b, _, _): Self.branch(fromKey: b)
        case .legacyServer: nil
        }
    }

    /// A branch as a key holds it: compared case-insensitively (7.3.1), so in lower case, and
    /// its magic cookie left out: what follows it is usually short enough for a String to keep
    /// inline, so making a key allocates nothing. A branch without the cookie is kept whole,
    /// behind a NUL (which no branch contains), so it never equals a cookie branch's rest.
    static func branchKey(_ branch: String) -> String {
        var branch = branch
        return branch.withUTF8 { u -> String in
            let cookie = Self.cookieBytes
            var start = 0
            if u.count >= cookie.count, (0..<cookie.count).allSatisfy({ lower(u[$0]) == cookie[$0] }) { start = cookie.count }
            let rest = UnsafeBufferPointer(rebasing: u[start...])
            let body = rest.contains(where: { $0 &- 0x41 < 26 })
                ? String(decoding: rest.map(lower), as: UTF8.self)
                : String(decoding: rest, as: UTF8.self)
            return start == 0 ? "\u{0}" + body : body
        }
    }

    /// The branch a key holds, the cookie put back (in lower case).
    static func branch(fromKey key: String) -> String {
        key.hasPrefix("\u{0}") ? String(key.dropFirst()) : Self.lowerCookie + key
    }

    private static let lowerCookie = Via.magicCookie.lowercased()
    private static let cookieBytes = Array(lowerCookie.utf8)
    private static func lower(_ c: UInt8) -> UInt8 { c &- 0x41 < 26 ? c | 0x20 : c }

    public var description: String {
        switch storage {
        case .client(let b, let m): "client \(m) \(Self.branch(fromKey: b))"
        case .server(let b, let s, let m): "server \(m) \(Self.branch(fromKey: b)) \(s)"
        case .legacyServer(let id): "server(2543) \(id.method) \(id.callID) \(id.sequence)"
        }
    }

    /// Feeds what identifies the transaction's request, whatever its method, into `hasher`: an
    /// INVITE and the CANCEL (or ACK) that matches it hash alike (a UAS's To tag for both,
    /// RFC 3261 9.2).
    public func hashIgnoringMethod(into hasher: inout Hasher) {
        hasher.combine(with(method: .invite))
    }

    /// The same key for another method (how a CANCEL names its INVITE, 9.2).
    func with(method: SIPMethod) -> TransactionKey {
        switch storage {
        case .client(let b, _):
            return TransactionKey(storage: .client(branch: b, method: method))
        case .server(let b, let s, _):
            return TransactionKey(storage: .server(branch: b, sentBy: s, method: method))
        case .legacyServer(var id):
            id.method = method
            return TransactionKey(storage: .legacyServer(id))
        }
    }

    /// Whether a branch is an RFC 3261 transaction identifier: the magic cookie and at least one
    /// character more. A branch that is exactly the cookie identifies nothing (RFC 4475 3.3.15).
    public static func isRFC3261Branch(_ branch: String?) -> Bool {
        guard let branch else { return false }
        return branch.hasPrefix(Via.magicCookie) && branch.utf8.count > Via.magicCookie.utf8.count
    }

    /// The key of the client transaction that sends `request` (its own top Via branch and its
    /// method). Nil when the request has no top Via with a branch, or is an ACK (an ACK is never
    /// a client transaction of its own).
    public static func client(sending request: SIPMessage) -> TransactionKey? {
        guard let method = request.method, method != .ack,
              let via = try? request.topVia(), let branch = via.branch, !branch.isEmpty else { return nil }
        return TransactionKey(storage: .client(branch: branchKey(branch), method: method))
    }

    /// The same for a request whose top Via the caller has just written with `branch`: the
    /// Via is not parsed back.
    public static func client(sending request: SIPMessage, branch: String) -> TransactionKey? {
        guard let method = request.method, method != .ack, !branch.isEmpty else { return nil }
        return TransactionKey(storage: .client(branch: branchKey(branch), method: method))
    }

    /// The key of the client transaction a received `response` belongs to (17.1.3): the branch
    /// of its top Via and the method of its CSeq. Nil when either is missing.
    public static func client(matching response: SIPMessage) -> TransactionKey? {
        guard response.statusCode != nil,
              let via = try? response.topVia(), let branch = via.branch, !branch.isEmpty,
              let cseq = try? response.cseq() else { return nil }
        return TransactionKey(storage: .client(branch: branchKey(branch), method: cseq.method))
    }

    /// The key of the server transaction a received `request` belongs to or creates (17.2.3).
    /// An ACK gets the key of the INVITE it acknowledges. Nil when the request lacks the top Via,
    /// or (for the RFC 2543 rules) the Call-ID or CSeq.
    public static func server(matching request: SIPMessage) -> TransactionKey? {
        guard let requestMethod = request.method, let via = try? request.topVia() else { return nil }
        let method: SIPMethod = requestMethod == .ack ? .invite : requestMethod
        if let branch = via.branch, isRFC3261Branch(branch) {
            var sentBy = via.host.address.lowercased()
            if let port = via.port {
                sentBy.append(":")
                sentBy.append(String(port))
            }
            return TransactionKey(storage: .server(branch: branchKey(branch), sentBy: sentBy, method: method))
        }
        guard let uri = request.requestURI, let callID = request.callID,
              let cseq = try? request.cseq(), let from = try? request.from() else { return nil }
        let id = LegacyServerID(requestURI: uri.description, fromTag: from.tag, callID: callID,
                                sequence: cseq.sequence, method: method, topVia: normalizedVia(via))
        return TransactionKey(storage: .legacyServer(id))
    }

    /// The key of the INVITE server transaction a received CANCEL refers to (9.2): the CANCEL's
    /// own key with the method INVITE. With the RFC 2543 rules the To tag must also match the
    /// INVITE's, which `TransactionTable.inviteTransaction(cancelledBy:)` checks.
    public static func invite(cancelledBy cancel: SIPMessage) -> TransactionKey? {
        guard cancel.method == .cancel, let key = server(matching: cancel) else { return nil }
        return key.with(method: .invite)
    }

    /// A top Via for whole-value comparison: case folded, `received` and `rport` left out.
    static func normalizedVia(_ via: Via) -> String {
        var v = via
        v.parameters.remove("received")
        v.parameters.remove("rport")
        return v.description.lowercased()
    }
}
