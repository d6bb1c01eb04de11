import ParleySIP
import Testing

@testable import ParleyProxy

/// Digest as RFC 7616 and 8760 intend, and the guessing slow-down, on a clock the test sets.
@Suite struct DigestGateTests {
    static let alice: [UInt8] = [192, 0, 2, 10]
    static let attacker: [UInt8] = [203, 0, 113, 66]

    static func gate(_ algorithms: [DigestAlgorithm] = [.sha256], maxNonces: Int = 250_000) -> DigestGate {
        DigestGate(realm: "cc.test", algorithms: algorithms, maxNonces: maxNonces) { user, _ in user == "alice" ? "a-pw" : nil }
    }

    static func register(_ authorization: String?, uri: String = "sip:cc.test", cseq: Int = 2) throws -> SIPMessage {
        try SIPParser.parse("""
            REGISTER \(uri) SIP/2.0\r
            Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bK\(cseq)\r
            Max-Forwards: 70\r
            From: <sip:alice@cc.test>;tag=t1\r
            To: <sip:alice@cc.test>\r
            Call-ID: reg-1\r
            CSeq: \(cseq) REGISTER\r
            Contact: <sip:alice@192.0.2.10:5070>\r
            \(authorization.map { "Authorization: \($0)\r\n" } ?? "")Content-Length: 0\r
            \r

            """)
    }

    /// Credentials for the gate's first challenge.
    static func credentials(_ gate: inout DigestGate, user: String = "alice", password: String = "a-pw", nc: UInt32 = 1,
                            uri: String = "sip:cc.test", now: Int64, pick: Int = 0) throws -> String {
        let challenge = try DigestChallenge.parse(gate.challenges(stale: false, nowMs: now)[pick])
        return DigestAuth.credentials(for: challenge, username: user, password: password, method: "REGISTER", uri: uri,
                                      cnonce: "cn", nc: nc).headerValue
    }

    @Test func theRightPasswordIsAcceptedAndAReplayIsChallengedAfterAnyNumberOfOthers() throws {
        var g = Self.gate()
        let auth = try Self.credentials(&g, now: 1_000)
        let captured = try Self.register(auth)
        #expect(g.check(captured, source: Self.alice, nowMs: 1_000).verdict == .accepted(username: "alice"))
        // 10,000 other registrations (the old table was emptied after 10,000)
        for i in 0..<10_000 {
            let other = try Self.credentials(&g, now: 2_000 + Int64(i))
            #expect(g.check(try Self.register(other), source: Self.alice, nowMs: 2_000 + Int64(i)).verdict == .accepted(username: "alice"))
        }
        #expect(g.check(captured, source: Self.attacker, nowMs: 20_000).verdict == .challenge(stale: false, replay: true))
        // Once the nonce is stale, the replay is refused as stale, and the table forgot it.
        #expect(g.check(captured, source: Self.attacker, nowMs: 400_000).verdict == .challenge(stale: true, replay: false))
        #expect(g.rememberedNonces == 0)
    }

    @Test func eachNonceCountIsAcceptedOnceAndAHigherOneAgain() throws {
        var g = Self.gate()
        let challenge = try DigestChallenge.parse(g.challenges(stale: false, nowMs: 0)[0])
        func with(_ nc: UInt32) throws -> SIPMessage {
            try Self.register(DigestAuth.credentials(for: challenge, username: "alice", password: "a-pw", method: "REGISTER",
                                                     uri: "sip:cc.test", cnonce: "c\(nc)", nc: nc).headerValue)
        }
        #expect(g.check(try with(1), source: Self.alice, nowMs: 10).verdict == .accepted(username: "alice"))
        #expect(g.check(try with(2), source: Self.alice, nowMs: 20).verdict == .accepted(username: "alice"))
        #expect(g.check(try with(2), source: Self.alice, nowMs: 30).verdict == .challenge(stale: false, replay: true))
        #expect(g.check(try with(1), source: Self.alice, nowMs: 40).verdict == .challenge(stale: false, replay: true))
    }

    @Test func aDigestURIThatIsNotTheRequestURIIsABadRequest() throws {
        var g = Self.gate()
        let auth = try Self.credentials(&g, uri: "sip:other.test", now: 0)
        guard case .badRequest = g.check(try Self.register(auth), source: Self.alice, nowMs: 0).verdict else {
            Issue.record("want 400")
            return
        }
    }

    @Test func withoutQopOrWithAForeignNonceOrAlgorithmItIsChallengedAgain() throws {
        var g = Self.gate()
        let nonce = try DigestChallenge.parse(g.challenges(stale: false, nowMs: 0)[0]).nonce
        let noQop = DigestChallenge(realm: "cc.test", nonce: nonce, algorithm: .sha256, qop: [])
        let c = DigestAuth.credentials(for: noQop, username: "alice", password: "a-pw", method: "REGISTER", uri: "sip:cc.test", cnonce: "x")
        #expect(g.check(try Self.register(c.headerValue), source: Self.alice, nowMs: 0).verdict == .challenge(stale: false, replay: false))
        let foreign = DigestChallenge(realm: "cc.test", nonce: "made-up", algorithm: .sha256)
        let f = DigestAuth.credentials(for: foreign, username: "alice", password: "a-pw", method: "REGISTER", uri: "sip:cc.test", cnonce: "x")
        #expect(g.check(try Self.register(f.headerValue), source: Self.alice, nowMs: 0).verdict == .challenge(stale: false, replay: false))
        let md5 = DigestChallenge(realm: "cc.test", nonce: nonce, algorithm: .md5)
        let m = DigestAuth.credentials(for: md5, username: "alice", password: "a-pw", method: "REGISTER", uri: "sip:cc.test", cnonce: "x")
        #expect(g.check(try Self.register(m.headerValue), source: Self.alice, nowMs: 0).verdict == .challenge(stale: false, replay: false))
    }

    @Test func sha256IsOfferedFirstAndMD5OnlyWhenConfigured() throws {
        var only = Self.gate()
        #expect(try only.challenges(stale: false, nowMs: 0).map { try DigestChallenge.parse($0).algorithm } == [.sha256])
        var both = Self.gate([.sha256, .md5])
        let offered = try both.challenges(stale: true, nowMs: 0).map { try DigestChallenge.parse($0) }
        #expect(offered.map(\.algorithm) == [.sha256, .md5])
        #expect(offered.allSatisfy { $0.stale && $0.qop == ["auth"] })
        let auth = try Self.credentials(&both, now: 0, pick: 1)
        #expect(both.check(try Self.register(auth), source: Self.alice, nowMs: 0).verdict == .accepted(username: "alice"))
    }

    @Test func guessesSlowDownThenLockTheSourceOutWhileTheAgentStillRegisters() throws {
        var g = Self.gate()
        var now: Int64 = 0
        var delays: [Int64] = []
        for i in 0..<12 {
            let guess = try Self.credentials(&g, password: "guess\(i)", now: now)
            let d = g.check(try Self.register(guess), source: Self.attacker, nowMs: now)
            guard case .forbidden = d.verdict else { Issue.record("guess \(i): \(d.verdict)"); return }
            delays.append(d.delayMs)
            now += 1_000
        }
        #expect(delays == [0, 0, 0, 250, 500, 1_000, 2_000, 2_000, 2_000, 2_000, 2_000, 2_000])
        // Locked: even the right password from there is answered as a wrong one.
        let right = try Self.credentials(&g, now: now)
        guard case .forbidden = g.check(try Self.register(right), source: Self.attacker, nowMs: now).verdict else {
            Issue.record("a locked source got in")
            return
        }
        // The real agent, from its own address, registers at once.
        let agent = try Self.credentials(&g, now: now)
        #expect(g.check(try Self.register(agent), source: Self.alice, nowMs: now) == .init(verdict: .accepted(username: "alice"), delayMs: 0))
        // After 15 minutes the lock is gone.
        now += 900_001
        let later = try Self.credentials(&g, now: now)
        #expect(g.check(try Self.register(later), source: Self.attacker, nowMs: now).verdict == .accepted(username: "alice"))
    }

    @Test func manySourcesGuessingOneUserSlowItDownButNeverLockTheAgentOut() throws {
        var g = Self.gate()
        var now: Int64 = 0
        for i in 0..<40 {  // 40 addresses, 1 guess each: none is locked
            let guess = try Self.credentials(&g, password: "guess\(i)", now: now)
            _ = g.check(try Self.register(guess), source: [198, 51, 100, UInt8(i)], nowMs: now)
            now += 100
        }
        let agent = try Self.credentials(&g, now: now)
        let d = g.check(try Self.register(agent), source: Self.alice, nowMs: now)
        #expect(d.verdict == .accepted(username: "alice"))
        #expect(d.delayMs == 1_000)  // slowed, like every check of alice now, not refused
    }

    @Test func anUnknownUserIsAnsweredAsAWrongPasswordAndSharesOneEntry() throws {
        var g = Self.gate()
        for i in 0..<100 {
            let c = try Self.credentials(&g, user: "user\(i)", now: 0)
            guard case .forbidden = g.check(try Self.register(c), source: [198, 51, 100, UInt8(i)], nowMs: 0).verdict else {
                Issue.record("unknown user \(i) not forbidden")
                return
            }
        }
        #expect(g.throttle.trackedUsers == 1)
    }

    @Test func theSourceTableIsBounded() {
        var settings = AuthThrottle.Settings()
        settings.maxSources = 100
        var t = AuthThrottle(settings: settings)
        for i in 0..<1_000 { t.failed(source: [10, 0, UInt8(i / 256), UInt8(i % 256)], user: "alice", now: 0) }
        #expect(t.trackedSources == 100)
        // Out of the window, the table makes room again.
        t.failed(source: [10, 9, 9, 9], user: "alice", now: 400_000)
        #expect(t.trackedSources == 1)
    }
}
