import Foundation
import ParleySIP
import Testing

@testable import ParleyCallCenter

/// The handoff signature: what it covers, the window, replays, and that a verifier without the
/// secret (or with another) accepts nothing. The clock is passed in.
@Suite struct HandoffAuthenticationTests {
    static let secret = Array("a-shared-secret-of-some-length".utf8)
    static let now: Int64 = 1_765_000_000_000

    static func invite(agent: String = "alice", body: String = "v=0\r\n") throws -> SIPMessage {
        try SIPParser.parse("""
            INVITE sip:buffer@10.0.0.2:5070;agent=\(agent) SIP/2.0\r
            Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKdist\r
            Max-Forwards: 69\r
            From: <sip:+15550001@198.51.100.7>;tag=ann1\r
            To: <sip:sales@cc.example.com>\r
            Call-ID: call-1@198.51.100.7\r
            CSeq: 7 INVITE\r
            X-Parley-Call: c123\r
            Content-Type: application/sdp\r
            Content-Length: \(body.utf8.count)\r
            \r
            \(body)
            """)
    }

    /// The message as the other side parses it off the wire.
    static func onTheWire(_ m: SIPMessage) throws -> SIPMessage { try SIPParser.parse(m.serialized(), framing: .datagram) }

    @Test func aSignedHandoffIsAcceptedOnceOnTheOtherSide() throws {
        var signer = HandoffAuthenticator(secret: Self.secret)
        var verifier = HandoffAuthenticator(secret: Self.secret)
        var m = try Self.invite()
        signer.sign(&m, nowMs: Self.now)
        let received = try Self.onTheWire(m)
        #expect(verifier.verify(received, nowMs: Self.now + 2_000) == .valid)
        #expect(verifier.verify(received, nowMs: Self.now + 3_000) == .replayed)
        #expect(verifier.remembered == 1)
    }

    @Test func twoSignaturesOfTheSameHandoffDiffer() throws {
        // The same call offered to the same agent twice in one second: both are accepted.
        var signer = HandoffAuthenticator(secret: Self.secret)
        var verifier = HandoffAuthenticator(secret: Self.secret)
        var a = try Self.invite(), b = try Self.invite()
        signer.sign(&a, nowMs: Self.now)
        signer.sign(&b, nowMs: Self.now)
        #expect(a.headers[HandoffAuthenticator.header] != b.headers[HandoffAuthenticator.header])
        #expect(verifier.verify(try Self.onTheWire(a), nowMs: Self.now) == .valid)
        #expect(verifier.verify(try Self.onTheWire(b), nowMs: Self.now) == .valid)
    }

    @Test(arguments: ["agent", "callID", "cseq", "fromTag", "callRef", "move", "body"])
    func changingAnySignedFieldBreaksTheSignature(_ field: String) throws {
        var signer = HandoffAuthenticator(secret: Self.secret)
        var verifier = HandoffAuthenticator(secret: Self.secret)
        var m = try Self.invite()
        signer.sign(&m, nowMs: Self.now)
        var text = String(decoding: m.serialized(), as: UTF8.self)
        switch field {
        case "agent": text = text.replacingFirst("agent=alice", "agent=mallory")
        case "callID": text = text.replacingFirst("call-1@", "call-2@")
        case "cseq": text = text.replacingFirst("CSeq: 7", "CSeq: 8")
        case "fromTag": text = text.replacingFirst("tag=ann1", "tag=ann2")
        case "callRef": text = text.replacingFirst("X-Parley-Call: c123", "X-Parley-Call: c124")
        case "move": text = text.replacingFirst("X-Parley-Call: c123\r\n", "X-Parley-Call: c123\r\nX-Parley-Move: 1\r\n")
        default: text = text.replacingFirst("v=0", "v=1")
        }
        let tampered = try SIPParser.parse(text)
        #expect(verifier.verify(tampered, nowMs: Self.now) == .forged)
    }

    @Test func theWindowRefusesOldAndFutureTimestamps() throws {
        var signer = HandoffAuthenticator(secret: Self.secret, windowMs: 30_000)
        var verifier = HandoffAuthenticator(secret: Self.secret, windowMs: 30_000)
        var m = try Self.invite()
        signer.sign(&m, nowMs: Self.now)
        let received = try Self.onTheWire(m)
        #expect(verifier.verify(received, nowMs: Self.now + 31_000) == .expired)
        #expect(verifier.verify(received, nowMs: Self.now - 31_000) == .expired)
        #expect(verifier.verify(received, nowMs: Self.now + 29_000) == .valid)
    }

    @Test func whatTheWindowRefusesIsForgottenAndTheTableStaysSmall() throws {
        var signer = HandoffAuthenticator(secret: Self.secret, windowMs: 1_000)
        var verifier = HandoffAuthenticator(secret: Self.secret, windowMs: 1_000)
        for i in 0..<5_000 {
            var m = try Self.invite()
            let t = Self.now + Int64(i) * 10  // 100 handoffs a second for 50 s
            signer.sign(&m, nowMs: t)
            #expect(verifier.verify(m, nowMs: t) == .valid)
        }
        // About 3 s of handoffs are remembered (the window either side, and a second).
        #expect(verifier.remembered < 400)
    }

    @Test func anotherSecretOrNoneOrNoHeaderIsRefused() throws {
        var signer = HandoffAuthenticator(secret: Array("another-secret-entirely-123".utf8))
        var verifier = HandoffAuthenticator(secret: Self.secret)
        var unkeyed = HandoffAuthenticator(secret: nil)
        var m = try Self.invite()
        #expect(verifier.verify(m, nowMs: Self.now) == .missing)
        unkeyed.sign(&m, nowMs: Self.now)
        #expect(m.headers[HandoffAuthenticator.header] == nil)
        signer.sign(&m, nowMs: Self.now)
        #expect(verifier.verify(m, nowMs: Self.now) == .forged)
        #expect(unkeyed.verify(m, nowMs: Self.now) == .noSecret)
    }

    @Test(arguments: ["t=1;n=x", "garbage", "t=abc;n=x;mac=00000000000000000000000000000000", "t=1;n=x;mac=00",
                      "t=9223372036854775807;n=x;mac=00000000000000000000000000000000",
                      "t=-9223372036854775808;n=x;mac=00000000000000000000000000000000"])
    func aMalformedTokenIsRefused(_ value: String) throws {
        var verifier = HandoffAuthenticator(secret: Self.secret)
        var m = try Self.invite()
        m.headers.append(HandoffAuthenticator.header, value)
        #expect(verifier.verify(m, nowMs: Self.now) == .malformed)
    }

    @Test func theTunnelHandshakeTokenIsCheckedAndUsedOnce() {
        var signer = HandoffAuthenticator(secret: Self.secret)
        var verifier = HandoffAuthenticator(secret: Self.secret)
        let token = signer.tunnelToken(nowMs: Self.now)
        #expect(token != nil)
        #expect(verifier.verifyTunnel(token, nowMs: Self.now + 1_000) == .valid)
        #expect(verifier.verifyTunnel(token, nowMs: Self.now + 1_000) == .replayed)
        #expect(verifier.verifyTunnel(nil, nowMs: Self.now) == .missing)
        #expect(HandoffAuthenticator(secret: nil).hasSecret == false)
        var other = HandoffAuthenticator(secret: Array("another-secret-entirely-123".utf8))
        #expect(verifier.verifyTunnel(other.tunnelToken(nowMs: Self.now), nowMs: Self.now) == .forged)
    }
}

extension String {
    fileprivate func replacingFirst(_ a: String, _ b: String) -> String {
        guard let r = range(of: a) else { return self }
        return replacingCharacters(in: r, with: b)
    }
}
