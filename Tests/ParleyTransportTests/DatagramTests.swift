import Foundation
import NIOCore
import NIOPosix
import ParleySIP
import Testing

@testable import ParleyTransport

/// UDP on loopback sockets: what one loop turn sends goes out (written without a flush each,
/// flushed once after the turn), and datagrams read several per system call keep their size up
/// to the largest a datagram holds.
@Suite struct DatagramTests {
    final class Inbox: @unchecked Sendable {
        let lock = NSLock()
        var callIDs: [String] = []
        var bodies: [Int] = []
        func add(_ m: SIPMessage) { lock.withLock { callIDs.append(m.callID ?? "?"); bodies.append(m.body.count) } }
        var count: Int { lock.withLock { callIDs.count } }
    }

    static func options(_ n: Int, body: Int = 0) -> [UInt8] {
        Array(("OPTIONS sip:server@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKudp\(n)\r\n"
            + "Max-Forwards: 70\r\nFrom: <sip:client@127.0.0.1>;tag=1\r\nTo: <sip:server@127.0.0.1>\r\nCall-ID: udp-\(n)\r\n"
            + "CSeq: 1 OPTIONS\r\nContent-Type: text/plain\r\nContent-Length: \(body)\r\n\r\n" + String(repeating: "x", count: body)).utf8)
    }

    @Test func aTurnsDatagramsAllGoOutAndLargeOnesArriveWhole() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let inbox = Inbox()
        let receiver = SIPTransport(loop: loop)
        receiver.sourceGuard = nil  // 300 requests from one source at once are the point here
        receiver.onMessage = { m, _ in inbox.add(m) }
        let listener = try await receiver.listen(.udp, on: try SocketAddress(ipAddress: "127.0.0.1", port: 0)).get()
        let sender = SIPTransport(loop: loop)
        _ = try await sender.listen(.udp, on: try SocketAddress(ipAddress: "127.0.0.1", port: 0)).get()
        let to = SIPDestination(transport: .udp, address: listener.local)
        // 300 small ones and three of 60,000 bytes, all in one turn of the loop.
        try await loop.submit {
            for n in 0..<300 { sender.send(bytes: Self.options(n), to: to) }
            for n in 300..<303 { sender.send(bytes: Self.options(n, body: 60_000), to: to) }
        }.get()
        for _ in 0..<250 where inbox.count < 303 { try await Task.sleep(nanoseconds: 20_000_000) }
        #expect(inbox.count == 303)
        #expect(Set(inbox.callIDs) == Set((0..<303).map { "udp-\($0)" }))
        #expect(inbox.lock.withLock { inbox.bodies.filter { $0 == 60_000 }.count } == 3)
    }
}
