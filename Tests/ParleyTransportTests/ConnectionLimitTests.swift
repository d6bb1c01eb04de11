import NIOCore
import NIOEmbedded
import ParleySIP
import Testing

@testable import ParleyTransport

/// What a stranger's TCP connections may hold: a deadline for a whole message (not an idle timer
/// that every byte resets), one budget for partly received messages, and caps at accept. Driven
/// on an embedded event loop whose clock the tests advance.
@Suite struct ConnectionLimitTests {
    static let options = "OPTIONS sip:buffer@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK1\r\nMax-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"

    /// A connection as the TCP listener sets it up, on an embedded loop, and what it delivered.
    final class Connection {
        let channel: EmbeddedChannel
        let transport: SIPTransport
        var delivered = 0

        init(limits: ConnectionLimits = ConnectionLimits(), budget: ByteBudget? = nil, port: Int = 40000) throws {
            channel = EmbeddedChannel()
            transport = SIPTransport(loop: channel.embeddedEventLoop)
            transport.connectionLimits = limits
            if let budget { transport.partialBudget = budget }
            channel.remoteAddress = try SocketAddress(ipAddress: "192.0.2.7", port: port)
            channel.localAddress = try SocketAddress(ipAddress: "127.0.0.1", port: 5060)
            transport.onMessage = { [unowned self] _, _ in delivered += 1 }
            try transport.addStreamHandlers(channel)
            try channel.connect(to: channel.remoteAddress!).wait()
        }

        func send(_ text: String) throws {
            try channel.writeInbound(channel.allocator.buffer(string: text))
        }

        func advance(seconds: Int64) { channel.embeddedEventLoop.advanceTime(by: .seconds(seconds)) }
        var isOpen: Bool { channel.isActive }
    }

    @Test func aTrickledMessageIsCutOffAtTheMessageDeadline() throws {
        let c = try Connection()
        let bytes = Array(Self.options)
        // One byte a second: an idle timer would never fire; the message deadline (20 s) does.
        for i in 0..<19 {
            try c.send(String(bytes[i]))
            c.advance(seconds: 1)
        }
        #expect(c.isOpen)
        try c.send(String(bytes[19]))
        c.advance(seconds: 2)
        #expect(!c.isOpen)
        #expect(c.transport.connectionCounters.messageTimeouts == 1)
        #expect(c.delivered == 0)
    }

    @Test func aSilentNewConnectionIsClosedButOneThatSpokeMayIdle() throws {
        let silent = try Connection()
        silent.advance(seconds: 21)
        #expect(!silent.isOpen)

        let spoke = try Connection()
        try spoke.send(Self.options)
        #expect(spoke.delivered == 1)
        spoke.advance(seconds: 60)
        #expect(spoke.isOpen)  // idle, not mid-message: only the idle timeout (180 s, NIO's IdleStateHandler) applies
    }

    @Test func messagesThatComeWholeKeepAConnectionOpenPastTheDeadline() throws {
        let c = try Connection()
        for _ in 0..<5 {
            try c.send(Self.options)
            c.advance(seconds: 15)
        }
        #expect(c.isOpen)
        #expect(c.delivered == 5)
        #expect(c.transport.connectionCounters.messageTimeouts == 0)
    }

    @Test func partlyReceivedMessagesShareOneBudget() throws {
        let budget = ByteBudget(limit: 100_000)
        let head = "INVITE sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK2\r\nMax-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: c2\r\nCSeq: 1 INVITE\r\nContent-Length: 1000000\r\n\r\n"
        let chunk = String(repeating: "x", count: 30_000)
        let a = try Connection(budget: budget, port: 40001)
        let b = try Connection(budget: budget, port: 40002)
        try a.send(head + chunk + chunk)  // about 60 KB held
        #expect(a.isOpen)
        #expect(budget.inUse > 60_000)
        try b.send(head + chunk)           // 30 KB more fits
        #expect(b.isOpen)
        try b.send(chunk)                  // this one would overspend: b goes, a stays
        #expect(!b.isOpen)
        #expect(a.isOpen)
        #expect(b.transport.connectionCounters.overBudget == 1)
        #expect(budget.inUse < 70_000)      // b's bytes were given back
        try a.channel.close().wait()
        #expect(budget.inUse == 0)
    }

    @Test func aWholeMessageGivesItsBytesBack() throws {
        let budget = ByteBudget(limit: 1 << 20)
        let c = try Connection(budget: budget)
        let bytes = Array(Self.options.utf8)
        try c.send(String(decoding: bytes.prefix(50), as: UTF8.self))
        #expect(budget.inUse == 50)
        try c.send(String(decoding: bytes.dropFirst(50), as: UTF8.self))
        #expect(c.delivered == 1)
        #expect(budget.inUse == 0)
    }

    /// The gate in a listener's pipeline, fed accepted connections.
    @Test func theGateCapsConnectionsInTotalAndPerSourceAndReleasesThemOnClose() throws {
        var limits = ConnectionLimits()
        limits.maxConnections = 5
        limits.maxPerSource = 2
        limits.trusted = [IPNetwork("10.9.0.0/16")!]
        var refusals: [ConnectionGate.Refusal] = []
        let server = EmbeddedChannel()
        let gate = ConnectionGate(limits: { limits }, allowed: { !(IPNetwork("203.0.113.0/24")!.contains($0)) }) { refusals.append($0) }
        try server.pipeline.syncOperations.addHandler(gate)
        func accept(_ ip: String) throws -> EmbeddedChannel {
            let child = EmbeddedChannel(loop: server.embeddedEventLoop)
            child.remoteAddress = try SocketAddress(ipAddress: ip, port: 1)
            try child.connect(to: child.remoteAddress!).wait()
            try server.writeInbound(child as Channel)
            return child
        }
        let a1 = try accept("192.0.2.1"), a2 = try accept("192.0.2.1"), a3 = try accept("192.0.2.1")
        #expect(a1.isActive && a2.isActive && !a3.isActive)
        #expect(refusals == [.perSource])
        let t1 = try accept("10.9.1.1"), t2 = try accept("10.9.1.1"), t3 = try accept("10.9.1.1")  // trusted: no per-source cap
        #expect(t1.isActive && t2.isActive && t3.isActive)
        let over = try accept("198.51.100.1")  // the sixth: over the total
        #expect(!over.isActive)
        let stranger = try accept("203.0.113.5")
        #expect(!stranger.isActive)
        #expect(refusals == [.perSource, .total, .peer])
        #expect(gate.openConnections == 5)
        try a1.close().wait()
        server.embeddedEventLoop.run()
        #expect(gate.openConnections == 4)
        let again = try accept("192.0.2.1")
        #expect(again.isActive)
        _ = try? server.readInbound(as: Channel.self)
    }

    @Test(arguments: [("10.0.0.0/8", "10.200.3.4", true), ("10.0.0.0/8", "11.0.0.1", false), ("192.0.2.7", "192.0.2.7", true),
                      ("192.0.2.7", "192.0.2.8", false), ("2001:db8::/32", "2001:db8:1::5", true), ("2001:db8::/32", "2001:db9::1", false),
                      ("127.0.0.0/8", "::ffff:127.0.0.1", true), ("0.0.0.0/0", "203.0.113.1", true), ("::1", "::1", true)])
    func networksHoldTheirAddresses(_ network: String, _ ip: String, _ inside: Bool) throws {
        let n = try #require(IPNetwork(network))
        #expect(n.contains(try SocketAddress(ipAddress: ip, port: 0)) == inside)
    }

    @Test(arguments: ["10.0.0.0/33", "300.1.1.1", "host.example.com", "", "10.0.0.0/", "::1/129", "10.0.0.0/-1"])
    func notANetwork(_ text: String) {
        #expect(IPNetwork(text) == nil)
    }

    @Test func aNetworkPrintsAsItIsWritten() {
        #expect(IPNetwork("10.1.2.3/8")?.description == "10.0.0.0/8")
        #expect(IPNetwork("2001:db8::1")?.description == "2001:db8::1")
    }
}
