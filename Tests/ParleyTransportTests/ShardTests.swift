import Foundation
import NIOCore
import NIOPosix
import ParleySIP
import Testing

@testable import ParleyTransport

/// Several loops on one address: every message of a call reaches the loop its Call-ID hashes to,
/// whichever socket the kernel gave it to; a loop answers what another read (the bytes it came
/// in are credited where the answer is sent); the shared port is nobody else's.
@Suite struct ShardTests {
    final class Inbox: @unchecked Sendable {
        let lock = NSLock()
        var delivered: [(callID: String, shard: Int)] = []
        var responses: [SocketAddress] = []
        func add(_ callID: String, _ shard: Int) { lock.withLock { delivered.append((callID, shard)) } }
        func response(from a: SocketAddress) { lock.withLock { responses.append(a) } }
        var count: Int { lock.withLock { delivered.count } }
        var responseCount: Int { lock.withLock { responses.count } }
    }

    static func options(_ callID: String, port: Int) -> [UInt8] {
        Array(("OPTIONS sip:server@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:\(port);branch=z9hG4bK\(callID.filter { $0.isLetter || $0.isNumber || $0 == "-" })\r\n"
            + "Max-Forwards: 70\r\nFrom: <sip:client@127.0.0.1>;tag=1\r\nTo: <sip:server@127.0.0.1>\r\nCall-ID: \(callID)\r\n"
            + "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").utf8)
    }

    @Test func aCallIDAlwaysHashesToTheSameShardAndSpreadsEvenly() throws {
        var counts = [0, 0, 0]
        for n in 0..<3_000 { counts[CallAffinity.shard(ofCallID: "call-\(n)@10.0.0.1", count: 3)] += 1 }
        for c in counts { #expect(c > 800 && c < 1_200, "\(counts)") }
        // The message's Call-ID header, white space around it and all, hashes as the string.
        let m = try SIPParser.parse(Self.options("abc-123@host", port: 1).map { $0 }, framing: .datagram)
        for count in 2...5 {
            #expect(CallAffinity.shard(of: m, count: count) == CallAffinity.shard(ofCallID: "abc-123@host", count: count))
        }
        let spaced = Array(String(decoding: Self.options("abc-123@host", port: 1), as: UTF8.self)
            .replacingOccurrences(of: "Call-ID: abc-123@host", with: "Call-ID:   abc-123@host  ").utf8)
        let m2 = try SIPParser.parse(spaced, framing: .datagram)
        #expect(CallAffinity.shard(of: m2, count: 4) == CallAffinity.shard(ofCallID: "abc-123@host", count: 4))
        #expect(CallAffinity.shard(ofCallID: "anything", count: 1) == 0)
    }

    @Test func aMadeCallIDLandsOnTheShardAsked() {
        for count in 2...4 {
            for shard in 0..<count {
                let id = CallAffinity.callID("leg-\(shard)-\(count)@127.0.0.1", landingOn: shard, count: count)
                #expect(CallAffinity.shard(ofCallID: id, count: count) == shard)
                #expect(id.hasPrefix("leg-\(shard)-\(count)@127.0.0.1"))
            }
        }
        #expect(CallAffinity.callID("x", landingOn: 0, count: 1) == "x")
    }

    @Test func everyMessageReachesItsCallsLoopAndIsAnsweredFromTheSharedPort() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let loops = Array(group.makeIterator())
        let inbox = Inbox()
        let transports = loops.map { SIPTransport(loop: $0) }
        let shards = SIPShards(transports)
        for (i, t) in transports.enumerated() {
            // The default source guard stays on: an answer from a loop that did not read the
            // request goes out only if the request's bytes were credited there.
            t.onMessage = { [unowned t] m, source in
                #expect(t.loop.inEventLoop)
                inbox.add(m.callID ?? "?", i)
                t.sendResponse(SIPTransport.makeResponse(to: m, code: 200), toRequestFrom: source)
            }
        }
        let listeners = try await shards.listen(.udp, on: try SocketAddress(ipAddress: "127.0.0.1", port: 0)).get()
        #expect(listeners.count == 2)
        #expect(listeners[0].local == listeners[1].local)
        let server = listeners[0].local
        // Eight senders, each its own port: the kernel spreads them over the two sockets.
        let senderLoop = MultiThreadedEventLoopGroup.singleton.next()
        var senders: [(SIPTransport, Int)] = []
        for _ in 0..<8 {
            let s = SIPTransport(loop: senderLoop)
            s.sourceGuard = nil
            s.onMessage = { m, source in if !m.isRequest { inbox.response(from: source.remote) } }
            let l = try await s.listen(.udp, on: try SocketAddress(ipAddress: "127.0.0.1", port: 0)).get()
            senders.append((s, l.local.port ?? 0))
        }
        let to = SIPDestination(transport: .udp, address: server)
        let sent = senders
        try await senderLoop.submit {
            for (k, (s, port)) in sent.enumerated() {
                for n in 0..<25 { s.send(bytes: Self.options("c\(k)-\(n)", port: port), to: to) }
            }
        }.get()
        for _ in 0..<250 where inbox.count < 200 || inbox.responseCount < 200 { try await Task.sleep(nanoseconds: 20_000_000) }
        let delivered = inbox.lock.withLock { inbox.delivered }
        #expect(delivered.count == 200)
        #expect(Set(delivered.map(\.callID)).count == 200)
        for d in delivered { #expect(d.shard == CallAffinity.shard(ofCallID: d.callID, count: 2), "\(d)") }
        // Both loops own calls; what a socket read for the other loop was handed over.
        #expect(Set(delivered.map(\.shard)) == [0, 1])
        let counters = try await transports.asyncMap { t in try await t.loop.submit { t.counters }.get() }
        #expect(counters.map(\.handedOff).reduce(0, +) == counters.map(\.handedIn).reduce(0, +))
        #expect(counters.map(\.handedOff).reduce(0, +) > 0)
        #expect(inbox.responseCount == 200)
        #expect(inbox.lock.withLock { inbox.responses.allSatisfy { $0 == server } })
        _ = try await shards.close().get()
        for (s, _) in senders { _ = try await senderLoop.flatSubmit { s.close() }.get() }
        try await group.shutdownGracefully()
    }

    @Test func aLoopAnswersRequestsOnlyAnotherLoopReadBecauseTheirBytesAreCreditedToIt() async throws {
        // One sender port: one socket reads every request, and the other loop has heard nothing
        // from the address but what was handed to it. Its answers still go out.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let inbox = Inbox()
        let transports = group.makeIterator().map { SIPTransport(loop: $0) }
        let shards = SIPShards(transports)
        for (i, t) in transports.enumerated() {
            t.onMessage = { [unowned t] m, source in
                inbox.add(m.callID ?? "?", i)
                t.sendResponse(SIPTransport.makeResponse(to: m, code: 200), toRequestFrom: source)
            }
        }
        let server = try await shards.listen(.udp, on: try SocketAddress(ipAddress: "127.0.0.1", port: 0)).get()[0].local
        let senderLoop = MultiThreadedEventLoopGroup.singleton.next()
        let sender = SIPTransport(loop: senderLoop)
        sender.sourceGuard = nil
        sender.onMessage = { m, source in if !m.isRequest { inbox.response(from: source.remote) } }
        let port = try await sender.listen(.udp, on: try SocketAddress(ipAddress: "127.0.0.1", port: 0)).get().local.port ?? 0
        try await senderLoop.submit {
            for n in 0..<100 { sender.send(bytes: Self.options("one-\(n)", port: port), to: SIPDestination(transport: .udp, address: server)) }
        }.get()
        for _ in 0..<250 where inbox.responseCount < 100 { try await Task.sleep(nanoseconds: 20_000_000) }
        #expect(inbox.count == 100)
        #expect(inbox.responseCount == 100)
        let counters = try await transports.asyncMap { t in try await t.loop.submit { (t.counters, t.sourceGuard?.counters.withheld ?? -1) }.get() }
        #expect(counters.map(\.1) == [0, 0])
        #expect(counters.map(\.0.handedOff).reduce(0, +) > 0)
        _ = try await shards.close().get()
        _ = try await senderLoop.flatSubmit { sender.close() }.get()
        try await group.shutdownGracefully()
    }

    @Test func overTCPAnswersGoBackOnTheConnectionAndWhatWaitsOnThemRunsOnTheAnsweringLoop() async throws {
        // One connection, accepted by one loop; the calls the other loop owns are answered
        // from there, on that connection, and the send's completion comes back to the answerer.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let inbox = Inbox()
        let transports = group.makeIterator().map { SIPTransport(loop: $0) }
        let shards = SIPShards(transports)
        let wrongLoop = Inbox()
        for (i, t) in transports.enumerated() {
            t.onMessage = { [unowned t] m, source in
                inbox.add(m.callID ?? "?", i)
                t.sendResponse(SIPTransport.makeResponse(to: m, code: 200), toRequestFrom: source).whenComplete { _ in
                    if !t.loop.inEventLoop { wrongLoop.add(m.callID ?? "?", i) }
                }
            }
        }
        let server = try await shards.listen(.tcp, on: try SocketAddress(ipAddress: "127.0.0.1", port: 0)).get()[0].local
        let clientLoop = MultiThreadedEventLoopGroup.singleton.next()
        let client = SIPTransport(loop: clientLoop)
        client.sourceGuard = nil
        client.onMessage = { m, source in if !m.isRequest { inbox.response(from: source.remote) } }
        let to = SIPDestination(transport: .tcp, address: server)
        try await clientLoop.submit {
            for n in 0..<20 {
                let text = String(decoding: Self.options("tcp-\(n)", port: 5060), as: UTF8.self)
                    .replacingOccurrences(of: "SIP/2.0/UDP", with: "SIP/2.0/TCP")
                client.send(bytes: Array(text.utf8), to: to)
            }
        }.get()
        for _ in 0..<250 where inbox.responseCount < 20 { try await Task.sleep(nanoseconds: 20_000_000) }
        #expect(inbox.count == 20)
        #expect(inbox.responseCount == 20)
        let delivered = inbox.lock.withLock { inbox.delivered }
        #expect(Set(delivered.map(\.shard)) == [0, 1])
        for d in delivered { #expect(d.shard == CallAffinity.shard(ofCallID: d.callID, count: 2), "\(d)") }
        #expect(wrongLoop.count == 0)
        _ = try await clientLoop.flatSubmit { client.close() }.get()
        _ = try await shards.close().get()
        try await group.shutdownGracefully()
    }

    @Test func theSharedPortIsRefusedWhenAnotherSocketHoldsIt() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let other = SIPTransport(loop: loop)
        let held = try await other.listen(.udp, on: try SocketAddress(ipAddress: "127.0.0.1", port: 0)).get()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let shards = SIPShards(group.makeIterator().map { SIPTransport(loop: $0) })
        await #expect(throws: TransportError.self) { _ = try await shards.listen(.udp, on: held.local).get() }
        // A held TCP port is refused the same way.
        let heldTCP = try await other.listen(.tcp, on: try SocketAddress(ipAddress: "127.0.0.1", port: 0)).get()
        await #expect(throws: TransportError.self) { _ = try await shards.listen(.tcp, on: heldTCP.local).get() }
        _ = try await other.loop.flatSubmit { other.close() }.get()
        try await group.shutdownGracefully()
    }
}

extension Array {
    func asyncMap<T>(_ body: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for e in self { out.append(try await body(e)) }
        return out
    }
}
