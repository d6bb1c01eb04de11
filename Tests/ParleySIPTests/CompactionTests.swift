import Testing
@testable import ParleySIP

/// What a transaction keeps once its call is set up (RFC 3261 17, RFC 6026 Timers L and M): a
/// copy of the message that no longer holds the received datagram.
@Suite("Compacted and detached copies of a message")
struct CompactionTests {
    static let invite = """
        INVITE sip:sales@cc.example.com SIP/2.0\r
        Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKcompact1\r
        Via: SIP/2.0/UDP 192.0.2.2:5070;branch=z9hG4bKlower\r
        Max-Forwards: 69\r
        Route: <sip:edge.example.com;lr>\r
        Record-Route: <sip:rr.example.com;lr>\r
        From: "Alice" <sip:alice@example.com>;tag=a1\r
        t: <sip:sales@cc.example.com>\r
        Call-ID: compact-1@192.0.2.1\r
        CSeq: 7 INVITE\r
        Contact: <sip:alice@192.0.2.1:5060>\r
        Subject: a question about my bill\r
        User-Agent: test phone 1.0\r
        Content-Type: application/sdp\r
        Content-Length: 23\r
        \r
        v=0\r
        o=- 1 1 IN IP4 x\r

        """

    @Test("compacted: start line and the matching, routing and dialog headers as written, in order; nothing else")
    func compactedKeepsWhatMatchingNeeds() throws {
        let m = try SIPParser.parse(Self.invite)
        let c = m.compacted()
        #expect(c.startLine == m.startLine)
        #expect(c.headers.lines.map(\.name) == ["Via", "Via", "Route", "Record-Route", "From", "t", "Call-ID", "CSeq", "Contact"])
        for line in c.headers.lines {
            #expect(line.value == m.headers.lines.first { $0.name == line.name && $0.value == line.value }?.value)
        }
        #expect(c.body.isEmpty)
        #expect(c.headers[HeaderName(.subject)] == nil && c.headers[HeaderName(.contentType)] == nil)
        // What the transaction and the TU still do with it works the same.
        #expect(try c.to()?.uri == m.to()?.uri)
        #expect(try c.cseq()?.sequence == 7)
        #expect(try c.topVia()?.branch == "z9hG4bKcompact1")
        #expect(try c.from()?.tag == "a1")
    }

    @Test("compacted and detached copies hold none of the received datagram: one buffer of their own, just their values")
    func copiesDoNotShareTheDatagram() throws {
        let m = try SIPParser.parse(Self.invite)
        let received = try #require(m.headers.lines[0].bytes.storageCount)
        #expect(received >= Self.invite.utf8.count - 23)  // a received header is a view into the datagram
        for copy in [m.compacted(), m.detached()] {
            let own = copy.headers.lines.reduce(0) { $0 + $1.bytes.count }
            #expect(own < received)
            for line in copy.headers.lines {
                #expect(line.bytes.storageCount == own)  // every value in the one buffer, exactly filled
            }
            #expect(copy.parsed == nil && copy.rawStartLine == nil)
        }
    }

    @Test("detached: every header and the body, serialized byte for byte as the original")
    func detachedIsTheSameMessage() throws {
        let m = try SIPParser.parse(Self.invite)
        let d = m.detached()
        #expect(d == m)
        #expect(d.serialized() == m.serialized())
    }
}
