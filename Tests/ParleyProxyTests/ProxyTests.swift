import Foundation
import NIOCore
import NIOPosix
import ParleyProxy
import ParleySIP
import ParleyTransaction
import ParleyTransport
import Testing

/// A UDP peer on loopback that records what it receives.
final class UDPPeer: @unchecked Sendable {
    let channel: Channel
    private let lock = NSLock()
    private var received: [SIPMessage] = []

    init(group: EventLoopGroup, host: String = "127.0.0.1") async throws {
        let box = Box()
        channel = try await DatagramBootstrap(group: group)
            .channelInitializer { ch in
                ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(Collector(box: box)) }
            }
            .bind(host: host, port: 0).get()
        box.peer = self
    }

    var address: SocketAddress { channel.localAddress! }
    var port: Int { address.port! }

    func record(_ m: SIPMessage) {
        lock.lock(); received.append(m); lock.unlock()
    }

    var messages: [SIPMessage] {
        lock.lock(); defer { lock.unlock() }
        return received
    }

    func send(_ text: String, to address: SocketAddress) async throws {
        let buffer = channel.allocator.buffer(string: text.replacingOccurrences(of: "\n", with: "\r\n"))
        try await channel.writeAndFlush(AddressedEnvelope(remoteAddress: address, data: buffer)).get()
    }

    func send(_ message: SIPMessage, to address: SocketAddress) async throws {
        let buffer = channel.allocator.buffer(bytes: message.serialized())
        try await channel.writeAndFlush(AddressedEnvelope(remoteAddress: address, data: buffer)).get()
    }

    /// Waits (bounded) until a message satisfying `match` has arrived.
    func wait(for what: String, timeout: Double = 5, _ match: (SIPMessage) -> Bool) async throws -> SIPMessage {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let m = messages.first(where: match) { return m }
            try await Task.sleep(nanoseconds: 10_000_000)
        }
        throw WaitError(what: what, seen: messages.map { $0.text.split(separator: "\r\n").first.map(String.init) ?? "" })
    }

    final class Box: @unchecked Sendable { weak var peer: UDPPeer? }

    final class Collector: ChannelInboundHandler {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let box: Box
        init(box: Box) { self.box = box }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var env = unwrapInboundIn(data)
            let bytes = env.data.readBytes(length: env.data.readableBytes) ?? []
            if let m = try? SIPParser.parse(bytes, validate: false) { box.peer?.record(m) }
        }
    }
}

struct WaitError: Error, CustomStringConvertible {
    var what: String
    var seen: [String]
    var description: String { "timed out waiting for \(what); saw: \(seen)" }
}

/// A proxy on loopback forwarding to `targets` (ports of UDP peers).
final class ProxyHarness: @unchecked Sendable {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    var proxy: SIPProxy!
    var address: SocketAddress!

    init(targets: @escaping @Sendable () -> [SocketAddress], branchTimeout: Duration = .seconds(32), timers: SIPTimers = SIPTimers(),
         host: String = "127.0.0.1", tcp: Bool = false, idleTimeout: TimeAmount? = nil) async throws {
        let loop = group.next()
        var config = ProxyConfiguration()
        config.branchTimeout = branchTimeout
        let c = config
        let p = try await loop.flatSubmit { () -> EventLoopFuture<SIPProxy> in
            let transport = SIPTransport(loop: loop)
            if let idleTimeout { transport.idleTimeout = idleTimeout }
            let stack = SIPStack(transport: transport, timers: timers)
            let proxy = SIPProxy(stack: stack, configuration: c) { _, _ in
                targets().map { ProxyTarget(destination: SIPDestination(transport: .udp, address: $0)) }
            }
            let udp = transport.listen(.udp, on: try! SocketAddress(ipAddress: host, port: 0))
            guard tcp else { return udp.map { _ in proxy } }
            return udp.flatMap { l in transport.listen(.tcp, on: l.local) }.map { _ in proxy }
        }.get()
        proxy = p
        address = try await loop.submit { p.stack.transport.listeners[0].local }.get()
    }

    func onLoop<T: Sendable>(_ body: @escaping @Sendable (SIPProxy) -> T) async throws -> T {
        let p = proxy!
        return try await group.next().submit { body(p) }.get()
    }

    func shutdown() async throws {
        let p = proxy!
        _ = try? await group.next().flatSubmit { p.stack.stop(); return p.stack.transport.close() }.get()
        try await group.shutdownGracefully()
    }
}

func request(_ method: String = "INVITE", uri: String = "sip:agent@example.com", via: String, callID: String,
             extra: String = "", maxForwards: String = "70", cseq: String? = nil) -> String {
    """
    \(method) \(uri) SIP/2.0
    Via: \(via)
    Max-Forwards: \(maxForwards)
    From: <sip:caller@example.com>;tag=c1
    To: <sip:agent@example.com>
    Call-ID: \(callID)
    CSeq: \(cseq ?? "1 \(method)")
    Contact: <sip:caller@127.0.0.1>
    \(extra)Content-Length: 0


    """
}

@Suite("Proxy core on loopback sockets (RFC 3261 sections 16 and 18)", .serialized)
struct ProxyTests {
    @Test("RFC 3261 16.6: forwarded INVITE gets our Via, Record-Route, Max-Forwards - 1; 18.2.1/RFC 3581: received and rport stamped")
    func forwarding() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let caller = try await UDPPeer(group: group)
        let agent = try await UDPPeer(group: group)
        let agentAddress = agent.address
        let h = try await ProxyHarness(targets: { [agentAddress] })
        try await caller.send(request(via: "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKfwd1;rport", callID: "fwd1"), to: h.address)
        let invite = try await agent.wait(for: "forwarded INVITE") { $0.method == .invite }
        let vias = try invite.vias()
        #expect(vias.count == 2)
        #expect(vias[0].port == h.address.port)
        #expect(vias[0].isRFC3261Branch)
        #expect(vias[1].received == "127.0.0.1")
        #expect(vias[1].rport == .some(caller.port))
        #expect(try invite.maxForwards() == 69)
        let rr = try #require(try invite.recordRoutes().first)
        #expect(rr.uri.sipURI?.isLooseRouter == true)
        #expect(rr.uri.sipURI?.port == h.address.port)
        // The caller got 100 Trying (17.2.1) or nothing yet; now the agent answers 486 ...
        var busy = SIPTransport.makeResponse(to: invite, code: 486, toTag: "a1")
        busy.headers.set("Contact", "<sip:agent@127.0.0.1:\(agent.port)>")
        try await agent.send(busy, to: h.address)
        // ... the proxy ACKs it hop by hop (17.1.1.3) ...
        let ack = try await agent.wait(for: "ACK for 486") { $0.method == .ack }
        #expect(try ack.topVia()?.branch == vias[0].branch)
        // ... and the caller gets the 486 with the proxy's Via removed (16.7 step 9), sent to
        // received/rport (RFC 3581), i.e. to the caller's real port despite the Via's 5060.
        let upstream = try await caller.wait(for: "486 upstream") { $0.statusCode == 486 }
        #expect(try upstream.vias().count == 1)
        #expect(try upstream.topVia()?.branch == "z9hG4bKfwd1")
        try await h.shutdown()
        try await group.shutdownGracefully()
    }

    @Test("RFC 3261 16.3 step 3: Max-Forwards 0 is answered 483 and not forwarded")
    func maxForwardsZero() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let caller = try await UDPPeer(group: group)
        let agent = try await UDPPeer(group: group)
        let agentAddress = agent.address
        let h = try await ProxyHarness(targets: { [agentAddress] })
        try await caller.send(request("OPTIONS", via: "SIP/2.0/UDP 127.0.0.1:\(caller.port);branch=z9hG4bKmf0", callID: "mf0", maxForwards: "0"), to: h.address)
        let r = try await caller.wait(for: "483") { $0.statusCode != nil }
        #expect(r.statusCode == 483)
        try await Task.sleep(nanoseconds: 100_000_000)
        #expect(agent.messages.isEmpty)
        try await h.shutdown()
        try await group.shutdownGracefully()
    }

    @Test("RFC 3261 16.3: unknown Request-URI scheme 416, Proxy-Require 420 with Unsupported")
    func validation() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let caller = try await UDPPeer(group: group)
        let h = try await ProxyHarness(targets: { [] })
        try await caller.send(request("OPTIONS", uri: "nobodyKnowsThisScheme:opaque", via: "SIP/2.0/UDP 127.0.0.1:\(caller.port);branch=z9hG4bKs1", callID: "s1"), to: h.address)
        #expect(try await caller.wait(for: "416") { $0.callID == "s1" && $0.statusCode != nil }.statusCode == 416)
        try await caller.send(request("OPTIONS", via: "SIP/2.0/UDP 127.0.0.1:\(caller.port);branch=z9hG4bKs2", callID: "s2",
                                      extra: "Proxy-Require: noProxiesSupportThis\n"), to: h.address)
        let r = try await caller.wait(for: "420") { $0.callID == "s2" && $0.statusCode != nil }
        #expect(r.statusCode == 420)
        #expect(r.headers["Unsupported"] == "noProxiesSupportThis")
        try await h.shutdown()
        try await group.shutdownGracefully()
    }

    @Test("RFC 3261 8.2 / RFC 4475: a malformed request gets 400 saying what is wrong; a malformed response is dropped and counted")
    func malformed() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let caller = try await UDPPeer(group: group)
        let h = try await ProxyHarness(targets: { [] })
        try await caller.send(request("OPTIONS", via: "SIP/2.0/UDP 127.0.0.1:\(caller.port);branch=z9hG4bKbad", callID: "bad1", cseq: "1 INVITE"), to: h.address)
        let r = try await caller.wait(for: "400") { $0.callID == "bad1" }
        #expect(r.statusCode == 400)
        #expect(r.reasonPhrase?.contains("CSeq") == true)
        try await caller.send("SIP/2.0 200 OK\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKx\nCSeq: 99999999999 OPTIONS\n\n", to: h.address)
        try await caller.send("garbage that is not SIP at all\n\n", to: h.address)
        try await Task.sleep(nanoseconds: 200_000_000)
        let counters = try await h.onLoop { $0.stack.transport.counters }
        #expect(counters.malformedResponses == 1)
        #expect(counters.badRequestsAnswered == 1)
        try await h.shutdown()
        try await group.shutdownGracefully()
    }

    @Test("RFC 3261 16.3 step 4: a request that comes back unchanged is a loop (482)")
    func loopDetection() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let caller = try await UDPPeer(group: group)
        let selfBox = AddressBox()
        let h = try await ProxyHarness(targets: { [selfBox.address!] })
        selfBox.address = h.address
        try await caller.send(request("OPTIONS", via: "SIP/2.0/UDP 127.0.0.1:\(caller.port);branch=z9hG4bKloop", callID: "loop1"), to: h.address)
        let r = try await caller.wait(for: "482") { $0.callID == "loop1" && ($0.statusCode ?? 0) >= 200 }
        #expect(r.statusCode == 482)
        try await h.shutdown()
        try await group.shutdownGracefully()
    }

    @Test("serial forking: 486 from the first target, silence from the second, 200 from the third")
    func serialForking() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let caller = try await UDPPeer(group: group)
        let a = try await UDPPeer(group: group), b = try await UDPPeer(group: group), c = try await UDPPeer(group: group)
        let targets = [a.address, b.address, c.address]
        let h = try await ProxyHarness(targets: { targets }, branchTimeout: .milliseconds(600))
        try await caller.send(request(via: "SIP/2.0/UDP 127.0.0.1:\(caller.port);branch=z9hG4bKfork", callID: "fork1"), to: h.address)
        let inviteA = try await a.wait(for: "INVITE at A") { $0.method == .invite }
        try await a.send(SIPTransport.makeResponse(to: inviteA, code: 486, toTag: "ta"), to: h.address)
        let inviteB = try await b.wait(for: "INVITE at B") { $0.method == .invite }
        try await b.send(SIPTransport.makeResponse(to: inviteB, code: 180, toTag: "tb"), to: h.address)
        // B never answers: after the branch timeout the proxy CANCELs B and tries C.
        let cancelB = try await b.wait(for: "CANCEL at B") { $0.method == .cancel }
        #expect(try cancelB.topVia()?.branch == (try inviteB.topVia())?.branch)
        let inviteC = try await c.wait(for: "INVITE at C") { $0.method == .invite }
        var ok = SIPTransport.makeResponse(to: inviteC, code: 200, toTag: "tc")
        ok.headers.set("Contact", "<sip:agent@127.0.0.1:\(c.port)>")
        try await c.send(ok, to: h.address)
        let final = try await caller.wait(for: "200 upstream") { ($0.statusCode ?? 0) >= 200 }
        #expect(final.statusCode == 200)
        #expect(try final.to()?.tag == "tc")
        #expect(caller.messages.contains { $0.statusCode == 180 })
        try await h.shutdown()
        try await group.shutdownGracefully()
    }

    @Test("no answer: the last branch times out, is CANCELled, and the caller gets 408 with its own Via")
    func noAnswer() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let caller = try await UDPPeer(group: group)
        let agent = try await UDPPeer(group: group)
        let agentAddress = agent.address
        let h = try await ProxyHarness(targets: { [agentAddress] }, branchTimeout: .milliseconds(300))
        try await caller.send(request(via: "SIP/2.0/UDP 127.0.0.1:\(caller.port);branch=z9hG4bKna", callID: "na1"), to: h.address)
        let invite = try await agent.wait(for: "INVITE") { $0.method == .invite }
        try await agent.send(SIPTransport.makeResponse(to: invite, code: 180, toTag: "t1"), to: h.address)
        _ = try await agent.wait(for: "CANCEL") { $0.method == .cancel }
        let final = try await caller.wait(for: "408") { ($0.statusCode ?? 0) >= 200 }
        #expect(final.statusCode == 408)
        #expect(try final.topVia()?.branch == "z9hG4bKna")
        #expect(try final.to()?.tag != nil)
        try await h.shutdown()
        try await group.shutdownGracefully()
    }

    @Test("RFC 3261 16.10: CANCEL before answer reaches the branch; the caller gets 487")
    func cancel() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let caller = try await UDPPeer(group: group)
        let agent = try await UDPPeer(group: group)
        let agentAddress = agent.address
        let h = try await ProxyHarness(targets: { [agentAddress] })
        let via = "SIP/2.0/UDP 127.0.0.1:\(caller.port);branch=z9hG4bKcan"
        try await caller.send(request(via: via, callID: "can1"), to: h.address)
        let invite = try await agent.wait(for: "INVITE") { $0.method == .invite }
        try await agent.send(SIPTransport.makeResponse(to: invite, code: 180, toTag: "t1"), to: h.address)
        _ = try await caller.wait(for: "180") { $0.statusCode == 180 }
        try await caller.send(request("CANCEL", via: via, callID: "can1", cseq: "1 CANCEL"), to: h.address)
        let cancelOK = try await caller.wait(for: "200 for CANCEL") { $0.statusCode == 200 }
        #expect(try cancelOK.cseq()?.method == .cancel)
        let downstream = try await agent.wait(for: "CANCEL") { $0.method == .cancel }
        try await agent.send(SIPTransport.makeResponse(to: downstream, code: 200), to: h.address)
        try await agent.send(SIPTransport.makeResponse(to: invite, code: 487, toTag: "t1"), to: h.address)
        let final = try await caller.wait(for: "487") { $0.statusCode == 487 }
        #expect(try final.cseq()?.method == .invite)
        try await h.shutdown()
        try await group.shutdownGracefully()
    }
}

final class AddressBox: @unchecked Sendable { var address: SocketAddress? }

@Suite("Transports: IPv6 and the UDP size limit (RFC 3261 18.1.1)", .serialized)
struct TransportTests {
    @Test("IPv6: a request over [::1] is forwarded with an IPv6 Via and its answer comes back")
    func ipv6() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let caller = try await UDPPeer(group: group, host: "::1")
        let agent = try await UDPPeer(group: group, host: "::1")
        let agentAddress = agent.address
        let h = try await ProxyHarness(targets: { [agentAddress] }, host: "::1")
        try await caller.send(request("OPTIONS", via: "SIP/2.0/UDP [::1]:\(caller.port);branch=z9hG4bKv6", callID: "v6"), to: h.address)
        let options = try await agent.wait(for: "OPTIONS over IPv6") { $0.method == .options }
        let top = try #require(try options.topVia())
        #expect(top.host == .ipv6("::1"))
        #expect(top.port == h.address.port)
        try await agent.send(SIPTransport.makeResponse(to: options, code: 200, toTag: "v6"), to: h.address)
        let ok = try await caller.wait(for: "200 over IPv6") { $0.statusCode == 200 }
        #expect(try ok.vias().count == 1)
        try await h.shutdown()
        try await group.shutdownGracefully()
    }

    @Test("RFC 3261 18.1.1: a request larger than the UDP limit is sent over TCP; the idle connection is closed")
    func largeRequestGoesOverTCP() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let caller = try await UDPPeer(group: group)
        // The agent listens on UDP and TCP at the same port.
        let agentUDP = try await UDPPeer(group: group)
        let tcpBox = TCPBox()
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { ch in
                ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(TCPCollector(box: tcpBox)) }
            }
            .bind(host: "127.0.0.1", port: agentUDP.port).get()
        let agentAddress = agentUDP.address
        let h = try await ProxyHarness(targets: { [agentAddress] }, tcp: true, idleTimeout: .milliseconds(400))
        let big = String(repeating: "x", count: 1500)
        try await caller.send(request("OPTIONS", via: "SIP/2.0/UDP 127.0.0.1:\(caller.port);branch=z9hG4bKbig", callID: "big1",
                                      extra: "X-Padding: \(big)\n"), to: h.address)
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline, !tcpBox.text.contains("\r\n\r\n") { try await Task.sleep(nanoseconds: 10_000_000) }
        let received = try SIPParser.parse(Array(tcpBox.text.utf8), framing: .stream, validate: false)
        #expect(received.method == .options)
        #expect(try received.topVia()?.transport == "TCP")
        #expect(agentUDP.messages.isEmpty)
        // The outgoing connection is closed once idle.
        #expect(!tcpBox.closed)
        let closeDeadline = Date().addingTimeInterval(5)
        while Date() < closeDeadline, !tcpBox.closed { try await Task.sleep(nanoseconds: 20_000_000) }
        #expect(tcpBox.closed)
        try await server.close()
        try await h.shutdown()
        try await group.shutdownGracefully()
    }
}

final class TCPBox: @unchecked Sendable {
    private let lock = NSLock()
    private var bytes: [UInt8] = []
    private var closedFlag = false
    var closed: Bool { lock.lock(); defer { lock.unlock() }; return closedFlag }
    func markClosed() { lock.lock(); closedFlag = true; lock.unlock() }
    func append(_ b: [UInt8]) { lock.lock(); bytes += b; lock.unlock() }
    var text: String { lock.lock(); defer { lock.unlock() }; return String(decoding: bytes, as: UTF8.self) }
}

final class TCPCollector: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let box: TCPBox
    init(box: TCPBox) { self.box = box }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var b = unwrapInboundIn(data)
        box.append(b.readBytes(length: b.readableBytes) ?? [])
    }
    func channelInactive(context: ChannelHandlerContext) {
        box.markClosed()
        context.fireChannelInactive()
    }
}
