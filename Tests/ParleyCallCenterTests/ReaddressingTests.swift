import NIOCore
import NIOEmbedded
import ParleySIP
import ParleyDialog
import ParleyTransport
import Testing

@testable import ParleyCallCenter

/// What crosses from one leg to the other, and how each leg's requests are written.
@Suite struct ReaddressingTests {
    static let invite = """
        INVITE sip:buffer@10.0.0.2:5070;agent=alice SIP/2.0\r
        Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKdist\r
        Via: SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bKcaller;received=198.51.100.7\r
        Max-Forwards: 69\r
        From: "Ann" <sip:+15550001@198.51.100.7:5062>;tag=ann1\r
        To: <sip:sales@cc.example.com>\r
        Call-ID: secret-call-id@198.51.100.7\r
        CSeq: 7 INVITE\r
        Contact: <sip:ann@198.51.100.7:5062>\r
        Record-Route: <sip:198.51.100.9;lr>\r
        Route: <sip:10.0.0.2:5070;lr>\r
        User-Agent: AnnPhone 1.0\r
        P-Asserted-Identity: <sip:+15550001@198.51.100.7>\r
        Supported: replaces, 100rel, timer\r
        Subject: my invoice\r
        X-Customer: 42\r
        X-Parley-Call: c123\r
        Content-Type: application/sdp\r
        Content-Length: 10\r
        \r
        v=0\r
        s=-\r\n
        """

    func parsed() throws -> SIPMessage { try SIPParser.parse(Self.invite) }

    @Test func onlySessionHeadersAndTheBodyCross() throws {
        let source = try parsed()
        var out = SIPMessage.request(.invite, try URI.parse("sip:alice@192.0.2.5"))
        HeaderPolicy.copyPayload(from: source, into: &out)
        let text = String(decoding: out.serialized(), as: UTF8.self)
        for leak in ["198.51.100", "10.0.0", "secret-call-id", "ann1", "AnnPhone", "X-Parley", "agent="] {
            #expect(!text.contains(leak), "\(leak) crossed: \(text)")
        }
        #expect(out.headers.value(.subject) == "my invoice")
        #expect(out.headers[HeaderName("X-Customer")] == "42")
        // Supported lists only what Parley carries (timer), never replaces or 100rel
        #expect(out.headers.value(.supported) == "timer")
        #expect(out.body == source.body)
        #expect(out.headers.value(.contentLength) == String(source.body.count))
    }

    @Test func inDialogRequestsCarryTheLegsOwnIdentifiersAndNextCSeq() throws {
        var leg = DialogLeg(callID: "b2b-1@192.0.2.2", localTag: "mine", remoteTag: "theirs",
                            local: try NameAddress.parse("<sip:ann@192.0.2.2:5070>"), remote: try NameAddress.parse("<sip:alice@192.0.2.5>"),
                            localCSeq: 1, remoteCSeq: 1, remoteTarget: try URI.parse("sip:alice@192.0.2.5:5090"),
                            routeSet: ["<sip:192.0.2.9;lr>"], transport: .udp)
        let bye = leg.makeRequest(.bye, contact: "<sip:192.0.2.2:5070>", payload: nil)
        #expect(bye.requestURI?.description == "sip:alice@192.0.2.5:5090")
        #expect(bye.callID == "b2b-1@192.0.2.2")
        #expect(((try? bye.from()) ?? nil)?.tag == "mine")
        #expect(((try? bye.to()) ?? nil)?.tag == "theirs")
        #expect(((try? bye.cseq()) ?? nil) == CSeq(2, .bye))
        #expect(bye.headers.value(.route) == "<sip:192.0.2.9;lr>")
        #expect(bye.headers.value(.contact) == nil)
        #expect(leg.nextHop()?.address.port == 5060)  // the first Route, not the target
        let reinvite = leg.makeRequest(.invite, contact: "<sip:192.0.2.2:5070>", payload: try parsed())
        #expect(((try? reinvite.cseq()) ?? nil)?.sequence == 3)
        #expect(reinvite.headers.value(.contact) == "<sip:192.0.2.2:5070>")
        #expect(reinvite.callID == "b2b-1@192.0.2.2")
        let ack = leg.makeRequest(.ack, contact: "", payload: nil, cseq: 3)
        #expect(((try? ack.cseq()) ?? nil) == CSeq(3, .ack))
        #expect(leg.localCSeq == 3)
    }

    /// A side whose in-dialog requests came over TCP is sent its requests on that connection
    /// while it is open; a UDP side, or a closed connection, goes by the leg's next hop alone.
    @Test func requestsGoBackOnTheConnectionTheSidesRequestsCameOn() throws {
        func leg(_ target: String) throws -> DialogLeg {
            DialogLeg(callID: "c", localTag: "l", remoteTag: "r", local: try NameAddress.parse("<sip:a@192.0.2.2>"),
                      remote: try NameAddress.parse("<sip:b@192.0.2.7>"), localCSeq: 1, remoteCSeq: 1,
                      remoteTarget: try URI.parse(target), routeSet: [], transport: .udp)
        }
        let call = B2BCall(id: "1", reference: "r1", agentID: "a1", encoding: .uri, callerInvite: try parsed(),
                           ingress: .link(NoReplyPath(), branch: "z9hG4bKx"),
                           caller: try leg("sip:caller@192.0.2.7:5099;transport=tcp"), agent: try leg("sip:a1@192.0.2.5:5090"),
                           ackTimeoutMs: 32_000)
        let flow = EmbeddedChannel()
        try flow.connect(to: try SocketAddress(ipAddress: "192.0.2.7", port: 40_001)).wait()
        #expect(call.hop(.caller)?.connection == nil)  // no request from the caller yet
        let remote = try SocketAddress(ipAddress: "192.0.2.7", port: 40_001)
        call.noteFlow(.caller, from: SIPSource(transport: .tcp, remote: remote, connection: flow))
        let hop = try #require(call.hop(.caller))
        #expect(hop.transport == .tcp)
        #expect(hop.address.port == 5099)  // a new connection goes to the Contact, should this one close
        #expect(hop.connection === flow)
        // The agent side came over UDP: nothing to reuse.
        call.noteFlow(.agent, from: SIPSource(transport: .udp, remote: try SocketAddress(ipAddress: "192.0.2.5", port: 5090)))
        #expect(call.hop(.agent)?.connection == nil)
        #expect(call.hop(.agent)?.transport == .udp)
        // Closed: back to the next hop alone.
        _ = try flow.finish()
        #expect(call.hop(.caller)?.connection == nil)
        // A flow that was noted is forgotten when the side's leg changes.
        let other = EmbeddedChannel()
        try other.connect(to: remote).wait()
        call.noteFlow(.caller, from: SIPSource(transport: .tcp, remote: remote, connection: other))
        #expect(call.hop(.caller)?.connection === other)
        call.forgetFlow(.caller)
        #expect(call.hop(.caller)?.connection == nil)
    }

    /// Require naming 100rel or precondition (which the call path removes) is refused; other
    /// tags, and the same tags in Supported, are not.
    @Test func requiredTagsTheCallPathCannotHonourAreListedOnce() throws {
        func request(_ lines: String) throws -> SIPMessage {
            try SIPParser.parse("OPTIONS sip:a@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK1\r\n"
                + "From: <sip:b@192.0.2.9>;tag=1\r\nTo: <sip:a@192.0.2.1>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n" + lines
                + "Content-Length: 0\r\n\r\n")
        }
        #expect(HeaderPolicy.unsupportedRequired(try request("Supported: 100rel, timer\r\n")) == [])
        #expect(HeaderPolicy.unsupportedRequired(try request("Require: timer\r\n")) == [])
        #expect(HeaderPolicy.unsupportedRequired(try request("Require: 100rel\r\n")) == ["100rel"])
        #expect(HeaderPolicy.unsupportedRequired(try request("Require: timer, 100REL\r\nRequire: precondition, 100rel\r\n"))
                == ["100REL", "precondition"])
    }

    @Test func dialogMatchingNeedsCallIDAndBothTags() {
        let leg = DialogLeg(callID: "x", localTag: "a", remoteTag: "b", local: NameAddress(uri: .sip(SIPURI(host: .name("h")))),
                            remote: NameAddress(uri: .sip(SIPURI(host: .name("h")))), localCSeq: 0, remoteCSeq: nil,
                            remoteTarget: nil, routeSet: [], transport: .udp)
        #expect(leg.matches(callID: "x", fromTag: "b", toTag: "a"))
        #expect(!leg.matches(callID: "x", fromTag: "c", toTag: "a"))
        #expect(!leg.matches(callID: "y", fromTag: "b", toTag: "a"))
    }
}

/// The handoff encodings on the wire.
@Suite struct HandoffWireTests {
    @Test func theAgentIDIsAppendedToTheBufferServersURI() throws {
        let buffer = try SIPURI.parse("sip:buffer@10.0.0.2:5070")
        let target = HandoffWire.target(buffer: buffer, agent: "alice")
        #expect(target.description == "sip:buffer@10.0.0.2:5070;agent=alice")
        #expect(HandoffWire.agentID(in: target) == "alice")
        #expect(HandoffWire.agentID(in: .sip(buffer)) == nil)
    }

    @Test func aMessageCarriesTheInviteAsMessageSIP() throws {
        let invite = try SIPParser.parse(ReaddressingTests.invite)
        let m = HandoffWire.wrap(invite, requestURI: try URI.parse("sip:buffer@10.0.0.2:5070;agent=alice"), from: "<sip:d@10.0.0.1>;tag=1",
                                 to: "<sip:buffer@10.0.0.2:5070>", callID: "h-1", cseq: 1)
        #expect(m.method == .message)
        #expect(m.headers.value(.contentType) == "message/sip")
        var sent = m
        sent.headers.prepend(HeaderName(.via), "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKm1")  // the stack adds it
        let reparsed = try SIPParser.parse(sent.serialized())
        let inner = try #require(HandoffWire.unwrap(reparsed))
        #expect(inner == invite)
        #expect(HandoffWire.unwrap(invite) == nil)
    }

    @Test func callEventsRoundTrip() {
        for e in [CallEvent.ended(call: "c1", agent: "alice"), .live(calls: ["c1", "c2"]), .live(calls: []),
                  .transfer(call: "c1", agent: "alice", target: "sales", caller: "\"Ann = me\" <sip:+1555@198.51.100.7>"),
                  .transferFailed(call: "c1", code: 486)] {
            #expect(CallEvent(body: e.body) == e)
        }
        #expect(CallEvent(body: "event=nonsense") == nil)
        // a transfer failure needs a failure status; a transfer its call, agent and target
        #expect(CallEvent(body: "event=transfer-failed\ncall=c1\ncode=200\n") == nil)
        #expect(CallEvent(body: "event=transfer-failed\ncall=c1\ncode=x\n") == nil)
        #expect(CallEvent(body: "event=transfer\ncall=c1\nagent=a\n") == nil)
        // several in one MESSAGE, a blank line between them (CRLF or LF), junk sections left out
        let many: [CallEvent] = [.ended(call: "c1", agent: "ann"), .ended(call: "c2", agent: "bob"), .live(calls: ["c3"])]
        #expect(CallEvent.list(body: many.map(\.body).joined(separator: "\n")) == many)
        #expect(CallEvent.list(body: "event=ended\r\ncall=c1\r\nagent=ann\r\n\r\nevent=nonsense\r\n\r\nevent=hangup\r\ncall=c9\r\n")
                == [.ended(call: "c1", agent: "ann"), .hangup(call: "c9")])
        #expect(CallEvent.list(body: "") == [])
        let m = HandoffWire.eventMessage(many, requestURI: .sip(SIPURI(host: .name("d"))), from: "<sip:b@x>;tag=1", to: "<sip:d@x>",
                                         callID: "ev1", cseq: 7)
        #expect(CallEvent.list(body: m.bodyText) == many)
    }

    /// The caller's transport is read from the Via below the distributor's: a caller over TCP
    /// gets a Contact saying so; no such Via, no answer.
    @Test func theCallersIngressTransportIsTheSecondVias() throws {
        let udp = try SIPParser.parse(ReaddressingTests.invite)
        #expect(BufferServer.callerIngressTransport(udp) == .udp)
        let tcp = try SIPParser.parse(ReaddressingTests.invite.replacingOccurrences(of: "SIP/2.0/UDP 198.51.100.7", with: "SIP/2.0/TCP 198.51.100.7"))
        #expect(BufferServer.callerIngressTransport(tcp) == .tcp)
        let direct = try SIPParser.parse(ReaddressingTests.invite.replacingOccurrences(
            of: "Via: SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bKcaller;received=198.51.100.7\r\n", with: ""))
        #expect(try direct.vias().count == 1)
        #expect(BufferServer.callerIngressTransport(direct) == nil)
    }

    @Test func agentIDsThatCannotBeCarriedAreRefused() {
        #expect(HandoffWire.isValidAgentID("alice.b-2_x"))
        #expect(!HandoffWire.isValidAgentID("a b"))
        #expect(!HandoffWire.isValidAgentID("a;b"))
        #expect(!HandoffWire.isValidAgentID(""))
    }
}

/// A reply path that goes nowhere, for a call built by hand.
final class NoReplyPath: HandoffReplyPath {
    func send(_ message: SIPMessage) {}
}
