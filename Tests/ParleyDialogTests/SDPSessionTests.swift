import ParleyDialog
import ParleySIP
import Testing

/// Parley's SDP session toward a leg: its own origin on everything sent, the version up by one
/// exactly when the description changed (RFC 3264 8).
@Suite struct SDPSessionTests {
    static func sdp(origin: String, port: Int, direction: String = "sendrecv") -> [UInt8] {
        Array("v=0\r\n\(origin)\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\nm=audio \(port) RTP/AVP 0\r\na=\(direction)\r\n".utf8)
    }

    static func origin(_ body: [UInt8]) -> [String] {
        let text = String(decoding: body, as: UTF8.self)
        let line = text.split(separator: "\r\n").first { $0.hasPrefix("o=") } ?? ""
        return line.dropFirst(2).split(separator: " ").map(String.init)
    }

    /// The origin written into a body is `originLine`, whatever the numbers' sizes.
    @Test(arguments: [UInt64(1), 9, 10, 4242, 1 << 62, UInt64.max])
    func theWrittenOriginIsTheOriginLine(sessionID: UInt64) {
        for host in ["192.0.2.1", "2001:db8::7"] {
            var s = SDPSession(host: host, sessionID: sessionID)
            let out = String(decoding: s.own(Self.sdp(origin: "o=x 1 1 IN IP4 198.51.100.3", port: 6000)), as: UTF8.self)
            let line = out.split(separator: "\r\n").first { $0.hasPrefix("o=") }.map(String.init)
            #expect(line == s.originLine)
            #expect(s.originLine == "o=parley \(sessionID) \(s.version) \(host.contains(":") ? "IN IP6" : "IN IP4") \(host)")
        }
    }

    @Test func theFarEndsOriginNeverReachesTheLeg() {
        var s = SDPSession(host: "192.0.2.1", sessionID: 4242)
        let out = s.own(Self.sdp(origin: "o=moh 99 7 IN IP4 198.51.100.3", port: 6000))
        #expect(Self.origin(out) == ["parley", "4242", String(s.version), "IN", "IP4", "192.0.2.1"])
        #expect(!String(decoding: out, as: UTF8.self).contains("198.51.100.3"))
        // media lines pass through
        #expect(String(decoding: out, as: UTF8.self).contains("m=audio 6000 RTP/AVP 0\r\n"))
    }

    /// Music on hold, then the agent: the agent's description comes with the same origin and
    /// the version one higher, though both senders used the same `o=` line and version.
    @Test func aNewFarEndIsTheSameSessionWithTheNextVersion() {
        var s = SDPSession(host: "192.0.2.1", sessionID: 7)
        let first = Self.origin(s.own(Self.sdp(origin: "o=user1 53655765 2353687637 IN IP4 127.0.0.1", port: 6000)))
        let second = Self.origin(s.own(Self.sdp(origin: "o=user1 53655765 2353687637 IN IP4 127.0.0.1", port: 6002)))
        #expect(first[0] == second[0] && first[1] == second[1] && first[3...] == second[3...])
        #expect(UInt64(second[2]) == UInt64(first[2])! + 1)
        // an agent's hold (a=sendonly) is a change too, and so is the resume
        let hold = Self.origin(s.own(Self.sdp(origin: "o=agent 1 1 IN IP4 10.0.0.1", port: 6002, direction: "sendonly")))
        let resume = Self.origin(s.own(Self.sdp(origin: "o=agent 1 2 IN IP4 10.0.0.1", port: 6002)))
        #expect(UInt64(hold[2]) == UInt64(second[2])! + 1)
        #expect(UInt64(resume[2]) == UInt64(hold[2])! + 1)
    }

    /// The same description again (a 200 after a 183 with the same answer, a refresh): the
    /// same version, since the SDP is identical to the one with that version.
    @Test func anUnchangedDescriptionKeepsItsVersion() {
        var s = SDPSession(host: "192.0.2.1", sessionID: 7)
        let a = s.own(Self.sdp(origin: "o=agent 1 1 IN IP4 10.0.0.1", port: 6000))
        let b = s.own(Self.sdp(origin: "o=agent 1 5 IN IP4 10.0.0.1", port: 6000))
        #expect(a == b)
    }

    @Test func ipv6OriginAndBodiesWithoutOrigin() {
        var s = SDPSession(host: "2001:db8::1", sessionID: 1)
        #expect(Self.origin(s.own(Self.sdp(origin: "o=x 1 1 IN IP6 ::1", port: 1))).suffix(2) == ["IP6", "2001:db8::1"])
        let notSDP = Array("hello\r\nworld".utf8)
        #expect(s.own(notSDP) == notSDP)
        #expect(s.own([]) == [])
    }

    /// Through a leg: requests built on it and responses sent on it carry the leg's origin;
    /// Content-Length follows the new body.
    @Test func aLegOwnsWhatIsSentOnIt() throws {
        var leg = DialogLeg(callID: "b2b-1@192.0.2.2", localTag: "mine", remoteTag: "theirs",
                            local: try NameAddress.parse("<sip:ann@192.0.2.2:5070>"), remote: try NameAddress.parse("<sip:alice@192.0.2.5>"),
                            localCSeq: 1, remoteCSeq: 1, remoteTarget: try URI.parse("sip:alice@192.0.2.5:5090"),
                            routeSet: [], transport: .udp)
        leg.sdp = SDPSession(host: "192.0.2.2", sessionID: 55)
        var payload = SIPMessage.request(.invite, try URI.parse("sip:x@192.0.2.9"))
        payload.headers.append(HeaderName(.contentType), "application/sdp")
        payload.body = Self.sdp(origin: "o=caller 1 1 IN IP4 198.51.100.7", port: 4000)
        payload.updateContentLength()
        let invite = leg.makeRequest(.invite, contact: "<sip:192.0.2.2:5070>", payload: payload)
        #expect(Self.origin(invite.body)[0...1] == ["parley", "55"])
        #expect(invite.headers.value(.contentLength) == String(invite.body.count))
        var response = SIPMessage.request(.invite, try URI.parse("sip:x@192.0.2.9"))
        response.headers.append(HeaderName(.contentType), "application/sdp")
        response.body = Self.sdp(origin: "o=caller 1 2 IN IP4 198.51.100.7", port: 4002)
        leg.ownSDP(&response)
        #expect(UInt64(Self.origin(response.body)[2]) == UInt64(Self.origin(invite.body)[2])! + 1)
        // a body that is not SDP is left alone
        var text = SIPMessage.request(.message, try URI.parse("sip:x@192.0.2.9"))
        text.headers.append(HeaderName(.contentType), "text/plain")
        text.body = Array("o=not an origin".utf8)
        leg.ownSDP(&text)
        #expect(text.bodyText == "o=not an origin")
    }
}
