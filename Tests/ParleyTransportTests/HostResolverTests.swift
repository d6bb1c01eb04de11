import Foundation
import NIOCore
import Testing

@testable import ParleyTransport

/// A name server for tests: answers from a table, counts the questions, on a clock of its own.
private final class FakeDNS: @unchecked Sendable {
    private let lock = NSLock()
    private var answers: [String: String] = [:]
    private var asked: [String] = []
    private var clock: Int64 = 0

    func answer(_ host: String, _ ip: String?) { lock.lock(); answers[host] = ip; lock.unlock() }
    var questions: [String] { lock.lock(); defer { lock.unlock() }; return asked }
    var nowMs: Int64 { lock.lock(); defer { lock.unlock() }; return clock }
    func advance(_ ms: Int64) { lock.lock(); clock += ms; lock.unlock() }

    func lookup(_ host: String) -> SocketAddress? {
        lock.lock()
        asked.append(host)
        let ip = answers[host]
        lock.unlock()
        return ip.flatMap { try? SocketAddress(ipAddress: $0, port: 0) }
    }

    func resolver() -> HostResolver {
        HostResolver(ttlMs: 60_000, negativeTTLMs: 10_000, now: { [self] in nowMs }, lookup: { [self] in lookup($0) })
    }
}

/// Waits (up to 2 s) until `condition` holds.
private func eventually(_ condition: () -> Bool) -> Bool {
    for _ in 0..<200 {
        if condition() { return true }
        Thread.sleep(forTimeInterval: 0.01)
    }
    return condition()
}

@Suite struct HostResolverTests {
    @Test func anIPAddressIsNeverLookedUp() {
        let dns = FakeDNS()
        let r = dns.resolver()
        let ip = r.address(host: "192.0.2.7", port: 5062)
        #expect(ip?.ipAddress == "192.0.2.7" && ip?.port == 5062)
        #expect(r.address(host: "::1", port: 5060)?.port == 5060)
        #expect(dns.questions.isEmpty)
    }

    @Test func aNameIsLookedUpOnceAndKeptForTheTTLWithTheURIsPort() {
        let dns = FakeDNS()
        dns.answer("agents.example.com", "192.0.2.10")
        let r = dns.resolver()
        #expect(r.address(host: "Agents.Example.COM", port: 5070)?.ipAddress == "192.0.2.10")
        dns.advance(59_000)
        let again = r.address(host: "agents.example.com", port: 5080)
        #expect(again?.ipAddress == "192.0.2.10")
        #expect(again?.port == 5080)
        #expect(dns.questions == ["agents.example.com"])
    }

    /// Past the TTL the old address is answered at once and a new lookup runs in the background;
    /// its answer is used from then on.
    @Test func pastTheTTLTheOldAddressServesWhileANewLookupRuns() {
        let dns = FakeDNS()
        dns.answer("pbx.example.com", "192.0.2.10")
        let r = dns.resolver()
        _ = r.address(host: "pbx.example.com", port: 5060)
        dns.answer("pbx.example.com", "192.0.2.20")
        dns.advance(61_000)
        #expect(r.address(host: "pbx.example.com", port: 5060)?.ipAddress == "192.0.2.10")
        #expect(eventually { dns.questions.count == 2 })
        #expect(eventually { r.address(host: "pbx.example.com", port: 5060)?.ipAddress == "192.0.2.20" })
        #expect(dns.questions.count == 2)
    }

    /// A name that does not resolve is not asked again for the negative TTL; a refresh that
    /// fails keeps the last good address.
    @Test func failuresAreKeptBrieflyAndDoNotTakeAwayAGoodAddress() {
        let dns = FakeDNS()
        let r = dns.resolver()
        #expect(r.address(host: "gone.example.com", port: 5060) == nil)
        #expect(r.address(host: "gone.example.com", port: 5060) == nil)
        #expect(dns.questions == ["gone.example.com"])
        dns.answer("gone.example.com", "192.0.2.30")
        dns.advance(11_000)
        _ = r.address(host: "gone.example.com", port: 5060)  // stale failure: nil now, lookup behind
        #expect(eventually { r.address(host: "gone.example.com", port: 5060)?.ipAddress == "192.0.2.30" })

        dns.answer("gone.example.com", nil)
        dns.advance(61_000)
        #expect(r.address(host: "gone.example.com", port: 5060)?.ipAddress == "192.0.2.30")
        #expect(eventually { dns.questions.count == 3 })
        #expect(r.address(host: "gone.example.com", port: 5060)?.ipAddress == "192.0.2.30")
    }

    @Test func warmLooksUpAtOnceSoTheFirstCallDoesNot() {
        let dns = FakeDNS()
        dns.answer("moh.example.com", "192.0.2.40")
        let r = dns.resolver()
        #expect(r.warm("moh.example.com"))
        #expect(!r.warm("nothing.example.com"))
        #expect(r.warm("192.0.2.1"))
        #expect(r.address(host: "moh.example.com", port: 5090)?.ipAddress == "192.0.2.40")
        #expect(dns.questions == ["moh.example.com", "nothing.example.com"])
    }
}
