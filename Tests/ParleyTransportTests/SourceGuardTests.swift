import NIOCore
import Testing

@testable import ParleyTransport

/// The per-source request rate and the amplification bound, on a clock the test sets.
@Suite struct SourceGuardTests {
    static let a = SourceKey(try! SocketAddress(ipAddress: "203.0.113.5", port: 5060))!
    static let b = SourceKey(try! SocketAddress(ipAddress: "203.0.113.6", port: 5060))!

    static func settings(rate: Double = 10, burst: Double = 20) -> SourceGuard.Settings {
        var s = SourceGuard.Settings()
        s.requestsPerSecond = rate
        s.burst = burst
        s.blockMs = 5_000
        return s
    }

    @Test func aBurstIsTakenThenTheSourceIsBlockedThenForgiven() {
        var g = SourceGuard(settings: Self.settings())
        let taken = (0..<30).filter { _ in g.admit(Self.a, isRequest: true, bytes: 300, now: 0) }.count
        #expect(taken == 20)
        #expect(g.isBlocked(Self.a, now: 100))
        #expect(g.counters.blocked == 1 && g.counters.dropped == 10)
        // Another address is not affected, nor are responses from the blocked one.
        do { let r = g.admit(Self.b, isRequest: true, bytes: 300, now: 100); #expect(r) }
        do { let r = g.admit(Self.a, isRequest: false, bytes: 300, now: 100); #expect(r) }
        do { let r = g.admit(Self.a, isRequest: true, bytes: 300, now: 4_000); #expect(!r) }
        do { let r = g.admit(Self.a, isRequest: true, bytes: 300, now: 5_100); #expect(r) }
    }

    @Test func aSteadyRateUnderTheLimitIsNeverBlocked() {
        var g = SourceGuard(settings: Self.settings())
        for i in 0..<1_000 { let r = g.admit(Self.a, isRequest: true, bytes: 300, now: Int64(i) * 110); #expect(r) }
        #expect(g.counters.dropped == 0)
    }

    @Test func responsesStayWithinThreeTimesWhatCameIn() {
        var g = SourceGuard(settings: Self.settings())
        do { let r = g.mayRespond(to: Self.a, bytes: 100, now: 0); #expect(!r) }  // nothing came from there
        _ = g.admit(Self.a, isRequest: true, bytes: 700, now: 0)
        var sent = 0
        for _ in 0..<10 where g.mayRespond(to: Self.a, bytes: 450, now: 0) { sent += 450 }
        #expect(sent == 1_800)  // 4 of 10 retransmissions: at most 2,100 bytes
        #expect(g.counters.withheld == 7)  // and the first, to an address nothing came from
        _ = g.admit(Self.a, isRequest: true, bytes: 400, now: 0)  // the ACK, say
        do { let r = g.mayRespond(to: Self.a, bytes: 450, now: 0); #expect(r) }
    }

    @Test func trustedSourcesAreExempt() {
        var s = Self.settings()
        s.trusted = [IPNetwork("203.0.113.0/24")!]
        var g = SourceGuard(settings: s)
        for _ in 0..<1_000 { let r = g.admit(Self.a, isRequest: true, bytes: 300, now: 0); #expect(r) }
        do { let r = g.mayRespond(to: Self.b, bytes: 10_000, now: 0); #expect(r) }
        #expect(g.tracked == 0)
    }

    @Test func theTableIsBounded() {
        var s = Self.settings()
        s.maxSources = 100
        var g = SourceGuard(settings: s)
        for i in 0..<1_000 { _ = g.admit(SourceKey(hi: 0, lo: UInt64(i)), isRequest: true, bytes: 1, now: 0) }
        #expect(g.tracked == 100)
        _ = g.admit(SourceKey(hi: 0, lo: 5_000), isRequest: true, bytes: 1, now: 120_000)
        #expect(g.tracked == 1)
    }

    @Test func keysMatchNetworksOfBothFamilies() throws {
        let v4 = try #require(SourceKey(try SocketAddress(ipAddress: "10.1.2.3", port: 1)))
        let mapped = try #require(SourceKey(try SocketAddress(ipAddress: "::ffff:10.1.2.3", port: 1)))
        #expect(v4 == mapped)
        #expect(IPNetwork("10.0.0.0/8")!.contains(v4))
        #expect(!IPNetwork("11.0.0.0/8")!.contains(v4))
        let v6 = try #require(SourceKey(try SocketAddress(ipAddress: "2001:db8::7", port: 1)))
        #expect(IPNetwork("2001:db8::/32")!.contains(v6))
        #expect(!IPNetwork("2001:db9::/32")!.contains(v6))
        #expect(IPNetwork("::/0")!.contains(v6))
        #expect(!IPNetwork("10.0.0.0/8")!.contains(v6))
    }
}
