import ParleySIP

/// The SDP session a back-to-back user agent owns toward one leg (RFC 3264 5 and 8; RFC 4566
/// 5.2). Parley forwards media lines untouched, but toward each leg it is the one party that
/// leg negotiates with: every session description it sends that leg carries Parley's own
/// origin (`o=` username, session id and address fixed for the life of the dialog), and the
/// version goes up by exactly one whenever what is sent differs from what was sent before.
/// The far end's origin never reaches the leg: when the far end changes (the caller is moved
/// from music on hold to an agent, or an agent re-INVITEs), the leg sees the same session
/// with a new version, which is what RFC 3264 8 requires of a modified offer or answer. A
/// phone that ignores a description whose version did not change would otherwise keep the
/// old media (hold music) playing.
///
/// A description sent again unchanged (a retransmitted or repeated answer, a session refresh)
/// keeps its version (8: "If the version in the origin line does not increment, the SDP MUST
/// be identical to the SDP with that version number").
public struct SDPSession: Sendable, Equatable {
    /// `o=` username.
    public static let username = "parley"
    public let sessionID: UInt64
    public private(set) var version: UInt64
    /// `IN IP4 192.0.2.1` or `IN IP6 ...`: network and address of the origin.
    public let address: String
    /// A digest of the last description sent (everything but its `o=` line); 0 before any.
    private var lastSent: UInt64 = 0
    private var sentAny = false

    /// A session toward one leg, its origin naming `host` (Parley's address toward that leg).
    public init(host: String, sessionID: UInt64 = .random(in: 1...(1 << 62))) {
        self.sessionID = sessionID
        self.version = sessionID & 0xFFFF  // any start will do; kept small and readable
        self.address = host.contains(":") ? "IN IP6 " + host : "IN IP4 " + host
    }

    /// The origin line as sent now (without the line ending).
    public var originLine: String { "o=\(Self.username) \(sessionID) \(version) \(address)" }

    /// `body` (an SDP) with Parley's origin in place of the sender's; the version raised first
    /// when the rest differs from what this leg was sent last. A body with no `o=` line, or
    /// that is not SDP at all, comes back unchanged and changes nothing.
    public mutating func own(_ body: [UInt8]) -> [UInt8] {
        guard let line = Self.originRange(in: body) else { return body }
        let digest = Self.digest(body, skipping: line)
        if sentAny {
            if digest != lastSent { version &+= 1 }
        }
        sentAny = true
        lastSent = digest
        var out: [UInt8] = []
        out.reserveCapacity(body.count + 32)
        out.append(contentsOf: body[..<line.lowerBound])
        writeOrigin(into: &out)
        out.append(contentsOf: body[line.upperBound...])
        return out
    }

    /// Appends `originLine`'s bytes to `out` without making the string (once per SDP relayed).
    func writeOrigin(into out: inout [UInt8]) {
        out.append(UInt8(ascii: "o"))
        out.append(UInt8(ascii: "="))
        out.append(contentsOf: Self.username.utf8)
        out.append(UInt8(ascii: " "))
        out.appendDecimal(sessionID)
        out.append(UInt8(ascii: " "))
        out.appendDecimal(version)
        out.append(UInt8(ascii: " "))
        out.append(contentsOf: address.utf8)
    }

    /// The bytes of the `o=` line (up to, not including, its CR or LF), if the body has one at
    /// a line start.
    static func originRange(in body: [UInt8]) -> Range<Int>? {
        var i = 0
        let n = body.count
        while i < n {
            if i + 1 < n, body[i] == UInt8(ascii: "o"), body[i + 1] == UInt8(ascii: "=") {
                var end = i
                while end < n, body[end] != 13, body[end] != 10 { end += 1 }
                return i..<end
            }
            while i < n, body[i] != 10 { i += 1 }
            i += 1
        }
        return nil
    }

    /// FNV-1a over the body without its origin line: what decides whether the description
    /// changed. Not a security measure: a collision only keeps a version one too low.
    static func digest(_ body: [UInt8], skipping line: Range<Int>) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for (i, b) in body.enumerated() where !line.contains(i) {
            h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3
        }
        return h
    }
}

extension SIPMessage {
    /// Whether the body is a session description (Content-Type application/sdp).
    public var carriesSDP: Bool {
        guard !body.isEmpty, let ct = (try? contentType()) ?? nil else { return false }
        return ct.essence == "application/sdp"
    }

    /// Puts `session`'s origin in this message's SDP body (Content-Length kept right).
    public mutating func ownSDP(_ session: inout SDPSession) {
        guard carriesSDP else { return }
        let owned = session.own(body)
        if owned != body {
            body = owned
            updateContentLength()
        }
    }
}
