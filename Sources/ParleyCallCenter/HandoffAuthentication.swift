import ParleySIP

/// Proof that a message between the distributor and the buffer server comes from one of them
/// (docs/security.md): an HMAC-SHA256, keyed with the shared secret (`security.handoff_secret`
/// or `PARLEY_HANDOFF_SECRET`), over the message's identifying fields, a timestamp and a nonce,
/// carried in `X-Parley-Auth: t=SECONDS;n=NONCE;mac=HEX`.
///
/// What is signed, one field a line: a version tag, the timestamp, the nonce, the method, the
/// Request-URI's `agent` and `treatment` parameters, Call-ID, CSeq number, From tag,
/// `X-Parley-Call`, `X-Parley-Move`, then the body as it is. A handoff INVITE, the CANCEL of a
/// tunnel handoff, the MESSAGEs of the `message` encoding (whose body is the whole handed-off
/// message), the buffer server's call events and the distributor's control events are signed.
///
/// A verifier accepts a signature once (a replay is refused while its timestamp is still inside
/// the window, and after that the window refuses it), and only within `windowMs` of its own
/// clock (the hosts' clocks must agree that well: NTP). Only valid signatures are remembered, so
/// what a stranger sends never grows the table. A value type, confined to one event loop; the
/// clock is passed in.
public struct HandoffAuthenticator: Sendable {
    /// Why a message was or was not accepted.
    public enum Verdict: String, Sendable, Equatable {
        case valid
        /// No secret is configured: nothing from outside this process is accepted.
        case noSecret = "no_secret"
        case missing
        case malformed
        /// Its timestamp is outside the window (too old, or from the future).
        case expired
        /// The MAC does not match: another secret, or fields changed on the way.
        case forged
        /// Accepted once already.
        case replayed
    }

    /// The header that carries the proof.
    public static let header = HeaderName("X-Parley-Auth")
    /// The shortest secret accepted (bytes).
    public static let minimumSecretLength = 16

    private let inner: SHA256?
    private let outer: SHA256?
    /// How far a timestamp may be from the verifier's clock.
    public let windowMs: Int64
    /// Signatures accepted, with the time (ms) after which they are forgotten, oldest first.
    private var seen: Set<String> = []
    private var order: [(mac: String, forgetAt: Int64)] = []
    private var orderHead = 0
    /// The signer's nonces: a random prefix and a count.
    private let noncePrefix: String
    private var nonceCount: UInt64 = 0

    /// `secret` nil: signs nothing and accepts nothing (`noSecret`).
    public init(secret: [UInt8]?, windowMs: Int64 = 30_000) {
        self.windowMs = windowMs
        noncePrefix = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        guard let secret, !secret.isEmpty else {
            inner = nil
            outer = nil
            return
        }
        // HMAC (RFC 2104) with the padded key's two blocks hashed once, not per message.
        var k = secret.count > 64 ? SHA256.hash(secret) : secret
        k += [UInt8](repeating: 0, count: 64 - k.count)
        var i = SHA256()
        i.update(k.map { $0 ^ 0x36 })
        var o = SHA256()
        o.update(k.map { $0 ^ 0x5C })
        inner = i
        outer = o
    }

    /// Whether a secret is configured.
    public var hasSecret: Bool { inner != nil }

    /// Signatures remembered now (for the stats line and tests).
    public var remembered: Int { seen.count }

    /// Adds `X-Parley-Auth` to a request (replacing any). Without a secret: unchanged.
    public mutating func sign(_ message: inout SIPMessage, nowMs: Int64) {
        guard hasSecret else { return }
        nonceCount &+= 1
        let t = nowMs / 1000
        let n = noncePrefix + "." + String(nonceCount, radix: 36)
        let mac = self.mac(Self.signedBytes(message, t: t, nonce: n))
        message.headers.removeAll(Self.header)
        message.headers.append(Self.header, "t=\(t);n=\(n);mac=\(mac)")
    }

    /// Checks a request's `X-Parley-Auth`; a valid one is remembered (and refused next time).
    public mutating func verify(_ message: SIPMessage, nowMs: Int64) -> Verdict {
        guard hasSecret else { return .noSecret }
        guard let value = message.headers[Self.header] else { return .missing }
        guard let token = Token(value) else { return .malformed }
        return check(token, bytes: Self.signedBytes(message, t: token.t, nonce: token.n), nowMs: nowMs)
    }

    // MARK: The tunnel's handshake

    /// The value of `X-Parley-Auth` on the tunnel's WebSocket upgrade request.
    public mutating func tunnelToken(nowMs: Int64) -> String? {
        guard hasSecret else { return nil }
        nonceCount &+= 1
        let t = nowMs / 1000
        let n = noncePrefix + "." + String(nonceCount, radix: 36)
        return "t=\(t);n=\(n);mac=\(mac(Self.tunnelBytes(t: t, nonce: n)))"
    }

    /// Checks the tunnel upgrade's `X-Parley-Auth` (nil: the header was missing).
    public mutating func verifyTunnel(_ value: String?, nowMs: Int64) -> Verdict {
        guard hasSecret else { return .noSecret }
        guard let value else { return .missing }
        guard let token = Token(value) else { return .malformed }
        return check(token, bytes: Self.tunnelBytes(t: token.t, nonce: token.n), nowMs: nowMs)
    }

    // MARK: Inside

    private mutating func check(_ token: Token, bytes: [UInt8], nowMs: Int64) -> Verdict {
        let stamped = token.t * 1000
        guard stamped <= nowMs + windowMs, stamped >= nowMs - windowMs else { return .expired }
        let expected = mac(bytes)
        guard Self.constantTimeEquals(Array(expected.utf8), Array(token.mac.utf8)) else { return .forged }
        forget(before: nowMs)
        guard seen.insert(expected).inserted else { return .replayed }
        // Kept until its timestamp is out of the window (one second more for the truncation).
        order.append((expected, stamped + windowMs + 1000))
        return .valid
    }

    /// Drops what the window refuses anyway.
    private mutating func forget(before nowMs: Int64) {
        while orderHead < order.count, order[orderHead].forgetAt < nowMs {
            seen.remove(order[orderHead].mac)
            orderHead += 1
        }
        if orderHead > 1024, orderHead * 2 > order.count {
            order.removeFirst(orderHead)
            orderHead = 0
        }
    }

    /// HMAC-SHA256, the first 128 bits in hex (RFC 2104 section 5 allows half the output).
    private func mac(_ bytes: [UInt8]) -> String {
        guard var i = inner, var o = outer else { return "" }
        i.update(bytes)
        o.update(i.finalize())
        return hexString(Array(o.finalize().prefix(16)))
    }

    private static func signedBytes(_ m: SIPMessage, t: Int64, nonce: String) -> [UInt8] {
        var agent = "", treatment = ""
        if case .sip(let u)? = m.requestURI {
            agent = u.parameters.value(HandoffWire.agentParameter) ?? ""
            treatment = u.parameters.value(HandoffWire.treatmentParameter) ?? ""
        }
        let cseq = ((try? m.cseq()) ?? nil)?.sequence ?? 0
        let fromTag = ((try? m.from()) ?? nil)?.tag ?? ""
        var text = "parley-handoff-1\n\(t)\n\(nonce)\n\(m.method?.rawValue ?? "")\n\(agent)\n\(treatment)\n"
        text += "\(m.callID ?? "")\n\(cseq)\n\(fromTag)\n"
        text += "\(m.headers[HandoffWire.callHeader] ?? "")\n\(m.headers[HandoffWire.moveHeader] ?? "")\n"
        var bytes = Array(text.utf8)
        bytes.append(contentsOf: m.body)
        return bytes
    }

    private static func tunnelBytes(t: Int64, nonce: String) -> [UInt8] {
        Array("parley-tunnel-1\n\(t)\n\(nonce)\n".utf8)
    }

    static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool { ConstantTime.equals(a, b) }

    /// `t=SECONDS;n=NONCE;mac=HEX`, in any order.
    private struct Token {
        var t: Int64
        var n: String
        var mac: String

        init?(_ value: String) {
            var t: Int64?, n: String?, mac: String?
            for part in value.split(separator: ";") {
                let kv = part.split(separator: "=", maxSplits: 1)
                guard kv.count == 2 else { return nil }
                let key = kv[0].trimmingCharacters(in: " \t"), v = kv[1].trimmingCharacters(in: " \t")
                switch key {
                case "t": t = Int64(v)
                case "n": n = v
                case "mac": mac = v
                default: break
                }
            }
            // A timestamp is seconds since 1970: anything else (a value whose milliseconds would
            // overflow) is no token at all.
            guard let t, (0...100_000_000_000).contains(t), let n, let mac, n.utf8.count <= 64, mac.utf8.count == 32 else { return nil }
            self.t = t
            self.n = n
            self.mac = mac
        }
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var s = self
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}
