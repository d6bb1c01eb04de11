import Foundation
import NIOCore
import NIOPosix
import ParleyProxy
@testable import ParleyRegistration
import ParleyRules
import ParleySIP
import ParleyTransaction
import ParleyTransport
import Testing

/// A bare UDP endpoint that records every SIP message it receives (an agent's phone).
final class Phone: @unchecked Sendable {
    let channel: Channel
    private let lock = NSLock()
    private var received: [SIPMessage] = []

    init(group: EventLoopGroup) async throws {
        let box = Box()
        channel = try await DatagramBootstrap(group: group)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 65_536))
            .channelInitializer { ch in
                ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(Collector(box: box)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        box.phone = self
    }

    var port: Int { channel.localAddress!.port! }
    var messages: [SIPMessage] { lock.withLock { received } }
    func clear() { lock.withLock { received.removeAll() } }

    func send(_ text: String, to address: SocketAddress) async throws {
        let buffer = channel.allocator.buffer(string: text.replacingOccurrences(of: "\n", with: "\r\n"))
        try await channel.writeAndFlush(AddressedEnvelope(remoteAddress: address, data: buffer)).get()
    }

    func wait(for what: String, timeout: Double = 8, _ match: (SIPMessage) -> Bool) async throws -> SIPMessage {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let m = messages.first(where: match) { return m }
            try await Task.sleep(nanoseconds: 10_000_000)
        }
        throw PhoneError(what: what, seen: messages.map { $0.text.split(separator: "\r\n").first.map(String.init) ?? "" })
    }

    struct PhoneError: Error, CustomStringConvertible {
        var what: String
        var seen: [String]
        var description: String { "no \(what) (seen: \(seen))" }
    }

    final class Box: @unchecked Sendable { weak var phone: Phone? }
    final class Collector: ChannelInboundHandler {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let box: Box
        init(box: Box) { self.box = box }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var env = unwrapInboundIn(data)
            let bytes = env.data.readBytes(length: env.data.readableBytes) ?? []
            if let m = try? SIPParser.parse(bytes, validate: false) { box.phone?.record(m) }
        }
    }
    func record(_ m: SIPMessage) { lock.withLock { received.append(m) } }
}

/// Parley's registration role in front of Parley's own registrar (the upstream), both on loopback.
final class FanOutHarness: @unchecked Sendable {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    var upstream: SIPRegistrar!
    var upstreamAddress: SocketAddress!
    var role: RegistrationRole!
    var roleAddress: SocketAddress!
    let rules: RuleStore
    let rulesDirectory: String
    let database: String

    static let orderLua = """
    ORDER = { "bob", "alice" }
    function order_registrations(address, agents)
      local out, q = {}, 1.0
      for _, id in ipairs(ORDER) do
        for _, a in ipairs(agents) do
          if a.id == id then out[#out + 1] = { id = id, q = q }; q = q / 2 end
        end
      end
      return out
    end
    """

    init(upstreamAlgorithm: DigestAlgorithm = .sha256, upstreamPort: Int? = nil, database: String? = nil) async throws {
        rulesDirectory = NSTemporaryDirectory() + "parley-reg-rules-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: rulesDirectory, withIntermediateDirectories: true)
        try Self.orderLua.write(toFile: rulesDirectory + "/init.lua", atomically: true, encoding: .utf8)
        rules = RuleStore(directory: rulesDirectory)
        _ = rules.reload()
        self.database = database ?? NSTemporaryDirectory() + "parley-reg-\(UUID().uuidString).sqlite"
        let loop = group.next()
        var uc = SIPRegistrar.Configuration()
        uc.realm = "upstream.test"
        uc.algorithms = [upstreamAlgorithm]
        uc.policy.minExpires = 10
        let upstreamConfig = uc
        if let upstreamPort {
            // Nothing listens there: the upstream is down.
            upstreamAddress = try SocketAddress(ipAddress: "127.0.0.1", port: upstreamPort)
        } else {
            let u = try await loop.flatSubmit { () -> EventLoopFuture<SIPRegistrar> in
                let transport = SIPTransport(loop: loop)
                let stack = SIPStack(transport: transport)
                let r = SIPRegistrar(stack: stack, configuration: upstreamConfig) { user, _ in user == "parley" ? "up-pw" : nil }
                return transport.listen(.udp, on: try! SocketAddress(ipAddress: "127.0.0.1", port: 0)).map { _ in r }
            }.get()
            upstream = u
            upstreamAddress = try await loop.submit { u.stack.transport.listeners[0].local }.get()
        }
        let store = try RegistrationStore(path: self.database)
        let rules = self.rules
        let upstreamAddress = self.upstreamAddress!
        let role = try await loop.flatSubmit { () -> EventLoopFuture<RegistrationRole> in
            let transport = SIPTransport(loop: loop)
            let stack = SIPStack(transport: transport)
            return transport.listen(.udp, on: try! SocketAddress(ipAddress: "127.0.0.1", port: 0)).map { listener in
                var c = RegistrationRoleConfiguration(
                    domain: "cc.test", agentPasswords: ["alice": "a-pw", "bob": "b-pw"],
                    agentSkills: ["alice": ["sales"], "bob": ["sales", "support"]], skills: ["sales", "support"],
                    upstream: SIPDestination(transport: .udp, address: upstreamAddress), upstreamURI: "sip:cc.test",
                    parleyHostPort: "127.0.0.1:5060", pathURI: "sip:127.0.0.1:\(listener.local.port!)")
                c.upstreamUsername = "parley"
                c.upstreamPassword = "up-pw"
                c.algorithms = [.sha256]
                c.treatments = ["moh": "sip:moh@127.0.0.1:5090"]
                c.minExpires = 10
                c.reorderInterval = .milliseconds(100)
                c.upstreamTimeout = .seconds(1)
                let r = RegistrationRole(stack: stack, configuration: c, rules: rules, store: store)
                r.start()
                return r
            }
        }.get()
        self.role = role
        roleAddress = try await loop.submit { role.stack.transport.listeners[0].local }.get()
    }

    func onLoop<T: Sendable>(_ body: @escaping @Sendable () -> T) async throws -> T {
        try await group.next().submit { body() }.get()
    }

    /// The upstream's bindings for an AOR as `contact q` strings, highest q first.
    func upstreamBindings(_ aor: String) async throws -> [String] {
        let u = upstream!
        return try await onLoop {
            u.location.lookup(aor, now: .now()).map { "\($0.uri) q=\(RegistrationQ.format(RegistrationQ.thousandths($0.q)))" }
        }
    }

    /// Waits (bounded) until the upstream holds exactly `expected` for `aor`.
    func waitUpstream(_ aor: String, _ expected: [String], timeout: Double = 8) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        var last: [String] = []
        while Date() < deadline {
            last = try await upstreamBindings(aor)
            if last == expected { return }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        Issue.record("upstream \(aor): \(last), expected \(expected)")
    }

    /// REGISTERs `agent` through the role with digest; returns the final response.
    func register(_ phone: Phone, agent: String, password: String, expires: Int = 600, callID: String, cseq: inout Int,
                  contactScheme: String = "sip") async throws -> SIPMessage {
        let contact = contactScheme == "sip" ? "<sip:\(agent)@127.0.0.1:\(phone.port)>" : "<\(contactScheme):\(agent)@example.com>"
        phone.clear()
        try await phone.send(Self.registerText(agent: agent, contact: contact, port: phone.port, cseq: cseq, callID: callID,
                                               expires: expires), to: roleAddress)
        let first = try await phone.wait(for: "an answer") { ($0.statusCode ?? 0) >= 200 }
        guard first.statusCode == 401 else { return first }
        let challenge = try DigestChallenge.parse(try #require(first.headers["WWW-Authenticate"]))
        let credentials = DigestAuth.credentials(for: challenge, username: agent, password: password, method: "REGISTER",
                                                 uri: "sip:cc.test", cnonce: "cn\(cseq)")
        cseq += 1
        phone.clear()
        try await phone.send(Self.registerText(agent: agent, contact: contact, port: phone.port, cseq: cseq, callID: callID,
                                               expires: expires, authorization: credentials.headerValue), to: roleAddress)
        return try await phone.wait(for: "a final answer", timeout: 10) { ($0.statusCode ?? 0) >= 200 }
    }

    static func registerText(agent: String, contact: String, port: Int, cseq: Int, callID: String, expires: Int,
                             authorization: String? = nil) -> String {
        """
        REGISTER sip:cc.test SIP/2.0
        Via: SIP/2.0/UDP 127.0.0.1:\(port);branch=z9hG4bK\(callID)-\(cseq)
        Max-Forwards: 70
        From: <sip:\(agent)@cc.test>;tag=t\(callID)
        To: <sip:\(agent)@cc.test>
        Call-ID: \(callID)
        CSeq: \(cseq) REGISTER
        Contact: \(contact)
        Expires: \(expires)
        \(authorization.map { "Authorization: \($0)\n" } ?? "")Content-Length: 0


        """
    }

    func shutdown() async throws {
        let r = role!, u = upstream
        _ = try? await group.next().flatSubmit { () -> EventLoopFuture<Void> in
            r.stop(); r.stack.stop()
            u?.stack.stop()
            let closing = r.stack.transport.close()
            return u.map { up in closing.flatMap { up.stack.transport.close() } } ?? closing
        }.get()
        try await group.shutdownGracefully()
        try? FileManager.default.removeItem(atPath: rulesDirectory)
    }

    func removeDatabase() {
        for s in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: database + s) }
    }
}

@Suite("Registration role on loopback, with Parley's registrar upstream", .serialized)
struct RegistrationRoleTests {
    @Test("agents register through Parley: forwarded with Path, the upstream's SHA-256 challenge answered, the upstream's contact set returned; every address bound to Parley at 1.0 and the agents at 0.9 x the rule's q; a reload or an agent going offline re-orders; a call to an agent comes through its Path; an unregister removes")
    func fanOut() async throws {
        let h = try await FanOutHarness()
        defer { h.removeDatabase() }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let alice = try await Phone(group: group), bob = try await Phone(group: group)

        // Before any agent: Parley alone on each address, the treatment system under its own.
        try await h.waitUpstream("sip:sales@cc.test", ["sip:sales@127.0.0.1:5060 q=1.0"])
        try await h.waitUpstream("sip:moh@cc.test", ["sip:moh@127.0.0.1:5060 q=1.0", "sip:moh@127.0.0.1:5090 q=0.9"])

        var cseq = 1
        let ok = try await h.register(alice, agent: "alice", password: "a-pw", callID: "alice-1", cseq: &cseq)
        #expect(ok.statusCode == 200)
        // The contact set is the upstream's, and the Path it stored is echoed (RFC 3327 5.3).
        #expect(try ok.contacts().compactMap { $0.address?.uri.description } == ["sip:alice@127.0.0.1:\(alice.port)"])
        #expect(ok.headers.values(HeaderName(.path)) == ["<sip:127.0.0.1:\(h.roleAddress.port!);lr>"])
        let u = h.upstream!
        let stored = try await h.onLoop { u.location.lookup("sip:alice@cc.test", now: .now()).first?.path ?? [] }
        #expect(stored == ["<sip:127.0.0.1:\(h.roleAddress.port!);lr>"])

        var bseq = 1
        #expect(try await h.register(bob, agent: "bob", password: "b-pw", callID: "bob-1", cseq: &bseq).statusCode == 200)
        // The rule puts bob (q 1.0 -> 0.9) before alice (0.5 -> 0.45); support is bob's alone.
        try await h.waitUpstream("sip:sales@cc.test", ["sip:sales@127.0.0.1:5060 q=1.0", "sip:bob@127.0.0.1:\(bob.port) q=0.9",
                                                       "sip:alice@127.0.0.1:\(alice.port) q=0.45"])
        try await h.waitUpstream("sip:support@cc.test", ["sip:support@127.0.0.1:5060 q=1.0", "sip:bob@127.0.0.1:\(bob.port) q=0.9"])

        // A reload that changes the order changes the q-values upstream.
        try FanOutHarness.orderLua.replacingOccurrences(of: "{ \"bob\", \"alice\" }", with: "{ \"alice\", \"bob\" }")
            .write(toFile: h.rulesDirectory + "/init.lua", atomically: true, encoding: .utf8)
        _ = h.rules.reload()
        try await h.waitUpstream("sip:sales@cc.test", ["sip:sales@127.0.0.1:5060 q=1.0", "sip:alice@127.0.0.1:\(alice.port) q=0.9",
                                                       "sip:bob@127.0.0.1:\(bob.port) q=0.45"])

        // An agent who goes offline (the distributor's agent states) loses its fan-out bindings;
        // back available, it gets them again.
        h.rules.agents.modify("bob") { $0.state = .offline }
        try await h.waitUpstream("sip:support@cc.test", ["sip:support@127.0.0.1:5060 q=1.0"])
        try await h.waitUpstream("sip:sales@cc.test", ["sip:sales@127.0.0.1:5060 q=1.0", "sip:alice@127.0.0.1:\(alice.port) q=0.9"])
        h.rules.agents.modify("bob") { $0.state = .available }
        try await h.waitUpstream("sip:support@cc.test", ["sip:support@127.0.0.1:5060 q=1.0", "sip:bob@127.0.0.1:\(bob.port) q=0.9"])

        // A call to alice's own address goes through Parley (her Path), which forwards it to her.
        let caller = try await Phone(group: group)
        try await caller.send("""
            INVITE sip:alice@cc.test SIP/2.0
            Via: SIP/2.0/UDP 127.0.0.1:\(caller.port);branch=z9hG4bKpathcall1
            Max-Forwards: 70
            From: <sip:caller@example.com>;tag=c1
            To: <sip:alice@cc.test>
            Call-ID: path-call-1
            CSeq: 1 INVITE
            Contact: <sip:caller@127.0.0.1:\(caller.port)>
            Content-Length: 0


            """, to: h.upstreamAddress)
        let invite = try await alice.wait(for: "the INVITE through Parley") { $0.method == .invite }
        let vias = invite.headers.values(HeaderName(.via))
        #expect(vias.contains { $0.contains("127.0.0.1:\(h.roleAddress.port!)") })
        #expect(invite.requestURI?.description == "sip:alice@127.0.0.1:\(alice.port)")

        // alice unregisters: her own binding and her fan-out bindings go.
        cseq += 1
        #expect(try await h.register(alice, agent: "alice", password: "a-pw", expires: 0, callID: "alice-1", cseq: &cseq).statusCode == 200)
        try await h.waitUpstream("sip:sales@cc.test", ["sip:sales@127.0.0.1:5060 q=1.0", "sip:bob@127.0.0.1:\(bob.port) q=0.9"])
        #expect(try await h.upstreamBindings("sip:alice@cc.test").isEmpty)
        let role = h.role!
        let agents = try await h.onLoop { Array(role.state.agents.keys) }
        #expect(agents == ["bob"])
        try await h.shutdown()

        // A restarted role reads its bindings back.
        let store = try RegistrationStore(path: h.database)
        #expect(try store.loadAgents().map(\.agentID) == ["bob"])
        let sales = try store.loadAddresses().first { $0.aor == "sip:sales@cc.test" }
        #expect(sales?.bindings.map(\.q) == [1000, 900])
        #expect(sales?.bindings.map(\.ruleQ) == [1000, 1000])
        try await group.shutdownGracefully()
    }

    @Test("bad input: a wrong password, an unknown agent, someone else's address, an unknown Contact scheme, Expires too brief: refused, nothing forwarded, nothing lost")
    func badInput() async throws {
        let h = try await FanOutHarness()
        defer { h.removeDatabase() }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let alice = try await Phone(group: group)
        var cseq = 1
        #expect(try await h.register(alice, agent: "alice", password: "a-pw", callID: "a1", cseq: &cseq).statusCode == 200)
        let before = try await h.upstreamBindings("sip:alice@cc.test")
        #expect(before.count == 1)
        let role = h.role!
        let forwardedBefore = try await h.onLoop { role.counters.forwarded }

        cseq += 1
        #expect(try await h.register(alice, agent: "alice", password: "wrong", callID: "a1", cseq: &cseq).statusCode == 403)
        cseq += 1
        #expect(try await h.register(alice, agent: "mallory", password: "x", callID: "m1", cseq: &cseq).statusCode == 403)
        cseq += 1
        let scheme = try await h.register(alice, agent: "alice", password: "a-pw", callID: "a1", cseq: &cseq, contactScheme: "mailto")
        #expect(scheme.statusCode == 400)
        cseq += 1
        let brief = try await h.register(alice, agent: "alice", password: "a-pw", expires: 3, callID: "a1", cseq: &cseq)
        #expect(brief.statusCode == 423 && brief.headers["Min-Expires"] == "10")
        let forwardedAfter = try await h.onLoop { role.counters.forwarded }
        #expect(forwardedAfter == forwardedBefore)
        #expect(try await h.upstreamBindings("sip:alice@cc.test") == before)

        // A huge Expires is forwarded cut to the role's maximum (3600), which the upstream grants.
        cseq += 1
        let huge = try await h.register(alice, agent: "alice", password: "a-pw", expires: 4_000_000_000, callID: "a1", cseq: &cseq)
        #expect(huge.statusCode == 200)
        #expect(try huge.contacts().first?.expires == 3600)
        try await h.shutdown()
        try await group.shutdownGracefully()
    }

    @Test("a REGISTER and its 200 larger than 2,048 bytes cross UDP whole (an address with many bindings)")
    func largeDatagrams() async throws {
        let h = try await FanOutHarness()
        defer { h.removeDatabase() }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let phone = try await Phone(group: group)
        let contacts = (0..<60).map { "Contact: <sip:agent\($0)@127.0.0.1:\(40000 + $0)>;q=0.5" }.joined(separator: "\n")
        func text(_ cseq: Int, _ auth: String?) -> String {
            """
            REGISTER sip:cc.test SIP/2.0
            Via: SIP/2.0/UDP 127.0.0.1:\(phone.port);branch=z9hG4bKbig\(cseq)
            Max-Forwards: 70
            From: <sip:big@cc.test>;tag=big
            To: <sip:big@cc.test>
            Call-ID: big-1
            CSeq: \(cseq) REGISTER
            \(contacts)
            Expires: 600
            \(auth.map { "Authorization: \($0)\n" } ?? "")Content-Length: 0


            """
        }
        #expect(text(1, nil).utf8.count > 2048)
        try await phone.send(text(1, nil), to: h.upstreamAddress)
        let challenge = try DigestChallenge.parse(try #require(try await phone.wait(for: "401") { $0.statusCode == 401 }.headers["WWW-Authenticate"]))
        let c = DigestAuth.credentials(for: challenge, username: "parley", password: "up-pw", method: "REGISTER", uri: "sip:cc.test", cnonce: "b")
        try await phone.send(text(2, c.headerValue), to: h.upstreamAddress)
        let ok = try await phone.wait(for: "200") { $0.statusCode == 200 }
        #expect(try ok.contacts().count == 60)
        try await h.shutdown()
        try await group.shutdownGracefully()
    }

    @Test("an upstream that does not answer: the agent gets 504, the role keeps what it had and retries the fan-out later")
    func upstreamDown() async throws {
        // A port nothing listens on.
        let probe = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = probe.localAddress!.port!
        try await probe.close()
        let h = try await FanOutHarness(upstreamPort: port)
        defer { h.removeDatabase() }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let alice = try await Phone(group: group)
        var cseq = 1
        let r = try await h.register(alice, agent: "alice", password: "a-pw", callID: "a1", cseq: &cseq)
        #expect(r.statusCode == 504)
        let role = h.role!
        let (agents, failures) = try await h.onLoop { (role.state.agents.count, role.counters.addressFailures) }
        #expect(agents == 0)
        #expect(failures >= 1)
        let error = try await h.onLoop { role.state.addresses["sip:sales@cc.test"]?.lastError }
        #expect(error == "no answer")
        try await h.shutdown()
        try await group.shutdownGracefully()
    }
}

@Suite("Registration role: REGISTER parts")
struct RegisterPartsTests {
    @Test("an address with many bindings is sent in parts of at most 12 contacts, settings first, removals last")
    func parts() {
        let set = (0..<30).map { UpstreamBinding(aor: "sip:sales@cc.test", contact: "sip:a\($0)@127.0.0.1", q: 900 - $0, owner: .agent("a\($0)")) }
        let remove = (0..<5).map { UpstreamBinding(aor: "sip:sales@cc.test", contact: "sip:r\($0)@127.0.0.1", q: 100, owner: .agent("r\($0)")) }
        let p = PlannedRegister(aor: "sip:sales@cc.test", set: set, desired: set, full: true, remove: remove, reason: .refresh)
        let parts = RegistrationRole.chunks(of: p)
        #expect(parts.map(\.set.count) == [12, 12, 6])
        #expect(parts.map(\.remove.count) == [0, 0, 5])
        #expect(parts.flatMap(\.set) == set && parts.flatMap(\.remove) == remove)
        let empty = PlannedRegister(aor: "sip:sales@cc.test", set: [], desired: [], full: true, remove: [], reason: .refresh)
        #expect(RegistrationRole.chunks(of: empty).count == 1)
    }
}
