import Foundation
import NIOCore
import NIOPosix
@testable import ParleyProxy
import ParleySIP
import ParleyTransaction
import ParleyTransport
import Testing

/// A registrar on loopback.
final class RegistrarHarness: @unchecked Sendable {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    var registrar: SIPRegistrar!
    var address: SocketAddress!

    init(realm: String?, users: [String: String] = [:]) async throws {
        let loop = group.next()
        var config = SIPRegistrar.Configuration()
        config.realm = realm
        let c = config
        let r = try await loop.flatSubmit { () -> EventLoopFuture<SIPRegistrar> in
            let transport = SIPTransport(loop: loop)
            let stack = SIPStack(transport: transport)
            let registrar = SIPRegistrar(stack: stack, configuration: c) { user, _ in users[user] }
            return transport.listen(.udp, on: try! SocketAddress(ipAddress: "127.0.0.1", port: 0)).map { _ in registrar }
        }.get()
        registrar = r
        address = try await loop.submit { r.stack.transport.listeners[0].local }.get()
    }

    func onLoop<T: Sendable>(_ body: @escaping @Sendable (SIPRegistrar) -> T) async throws -> T {
        let r = registrar!
        return try await group.next().submit { body(r) }.get()
    }

    func shutdown() async throws {
        let r = registrar!
        _ = try? await group.next().flatSubmit { r.stack.stop(); return r.stack.transport.close() }.get()
        try await group.shutdownGracefully()
    }
}

func registerText(aor: String, contact: String, port: Int, cseq: Int, callID: String, authorization: String? = nil,
                  extra: String = "") -> String {
    """
    REGISTER sip:example.com SIP/2.0
    Via: SIP/2.0/UDP 127.0.0.1:\(port);branch=z9hG4bKreg\(callID)\(cseq)
    Max-Forwards: 70
    From: <\(aor)>;tag=r\(callID)
    To: <\(aor)>
    Call-ID: \(callID)
    CSeq: \(cseq) REGISTER
    Contact: \(contact)
    Expires: 600
    \(authorization.map { "Authorization: \($0)\n" } ?? "")\(extra)Content-Length: 0


    """
}

@Suite("Registrar on loopback sockets (RFC 3261 sections 10 and 22, RFC 3327)", .serialized)
struct RegistrarTests {
    @Test("RFC 3261 22.4: REGISTER is challenged, the right credentials get 200 with the Contact set, a wrong password 403, a replayed nonce count a new challenge")
    func digest() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let agent = try await UDPPeer(group: group)
        let h = try await RegistrarHarness(realm: "example.com", users: ["alice": "s3cret"])
        let aor = "sip:alice@example.com"
        let contact = "<sip:alice@127.0.0.1:\(agent.port)>;q=0.7"
        try await agent.send(registerText(aor: aor, contact: contact, port: agent.port, cseq: 1, callID: "d1"), to: h.address)
        let challengeResponse = try await agent.wait(for: "401") { $0.statusCode == 401 }
        let challenge = try DigestChallenge.parse(try #require(challengeResponse.headers["WWW-Authenticate"]))
        #expect(challenge.realm == "example.com")

        let good = DigestAuth.credentials(for: challenge, username: "alice", password: "s3cret", method: "REGISTER",
                                          uri: "sip:example.com", cnonce: "c1")
        try await agent.send(registerText(aor: aor, contact: contact, port: agent.port, cseq: 2, callID: "d1",
                                          authorization: good.headerValue), to: h.address)
        let ok = try await agent.wait(for: "200") { $0.statusCode == 200 }
        let bound = try ok.contacts()
        #expect(bound.count == 1)
        #expect(bound.first?.q == 0.7)
        #expect(bound.first?.expires == 600)

        // The same nonce and nonce count again: a replay, challenged.
        try await agent.send(registerText(aor: aor, contact: contact, port: agent.port, cseq: 3, callID: "d1",
                                          authorization: good.headerValue), to: h.address)
        _ = try await agent.wait(for: "second 401") { $0.statusCode == 401 && (try? $0.cseq())??.sequence == 3 }

        let bad = DigestAuth.credentials(for: challenge, username: "alice", password: "guess", method: "REGISTER",
                                         uri: "sip:example.com", cnonce: "c2", nc: 2)
        try await agent.send(registerText(aor: "sip:alice@example.com", contact: "<sip:mallory@127.0.0.1:9>", port: agent.port,
                                          cseq: 4, callID: "d1", authorization: bad.headerValue), to: h.address)
        _ = try await agent.wait(for: "403") { $0.statusCode == 403 }
        // Nothing of the refused request was bound.
        let bindings = try await h.onLoop { $0.location.lookup("sip:alice@example.com", now: .now()).map { $0.uri.description } }
        #expect(bindings == ["sip:alice@127.0.0.1:\(agent.port)"])
        let counters = try await h.onLoop { $0.counters }
        #expect(counters.replays == 1)
        #expect(counters.refusedCredentials == 1)
        try await h.shutdown()
        try await group.shutdownGracefully()
    }

    @Test("a call to an address of record tries its contacts highest q first, the next on 486")
    func forkByQ() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let high = try await UDPPeer(group: group), low = try await UDPPeer(group: group), caller = try await UDPPeer(group: group)
        let h = try await RegistrarHarness(realm: nil)
        let aor = "sip:sales@example.com"
        try await high.send(registerText(aor: aor, contact: "<sip:a1@127.0.0.1:\(high.port)>;q=0.9", port: high.port, cseq: 1, callID: "q1"), to: h.address)
        try await low.send(registerText(aor: aor, contact: "<sip:a2@127.0.0.1:\(low.port)>;q=0.45", port: low.port, cseq: 1, callID: "q2"), to: h.address)
        _ = try await high.wait(for: "200 to REGISTER") { $0.statusCode == 200 }
        _ = try await low.wait(for: "200 to REGISTER") { $0.statusCode == 200 }

        try await caller.send(request(uri: aor, via: "SIP/2.0/UDP 127.0.0.1:\(caller.port);branch=z9hG4bKq", callID: "fq"), to: h.address)
        let first = try await high.wait(for: "INVITE at the q=0.9 contact") { $0.method == .invite }
        #expect(first.requestURI?.description == "sip:a1@127.0.0.1:\(high.port)")
        try await high.send(SIPTransport.makeResponse(to: first, code: 486, toTag: "h"), to: h.address)
        let second = try await low.wait(for: "INVITE at the q=0.45 contact") { $0.method == .invite }
        var ok = SIPTransport.makeResponse(to: second, code: 200, toTag: "l")
        ok.headers.set("Contact", "<sip:a2@127.0.0.1:\(low.port)>")
        try await low.send(ok, to: h.address)
        let final = try await caller.wait(for: "200") { ($0.statusCode ?? 0) >= 200 }
        #expect(final.statusCode == 200)
        try await h.shutdown()
        try await group.shutdownGracefully()
    }

    @Test("RFC 3327: a contact registered through a Path is reached through it, the Path as Route")
    func path() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let edge = try await UDPPeer(group: group), caller = try await UDPPeer(group: group)
        let h = try await RegistrarHarness(realm: nil)
        let pathValue = "<sip:127.0.0.1:\(edge.port);lr>"
        try await edge.send(registerText(aor: "sip:bob@example.com", contact: "<sip:bob@192.0.2.77:5060>", port: edge.port, cseq: 1,
                                         callID: "p1", extra: "Path: \(pathValue)\nSupported: path\n"), to: h.address)
        let ok = try await edge.wait(for: "200") { $0.statusCode == 200 }
        #expect(ok.headers["Path"] == pathValue)
        try await caller.send(request(uri: "sip:bob@example.com", via: "SIP/2.0/UDP 127.0.0.1:\(caller.port);branch=z9hG4bKp", callID: "pc"), to: h.address)
        let invite = try await edge.wait(for: "INVITE via the Path") { $0.method == .invite }
        #expect(invite.requestURI?.description == "sip:bob@192.0.2.77:5060")
        #expect(invite.headers["Route"] == pathValue)
        try await h.shutdown()
        try await group.shutdownGracefully()
    }
}
