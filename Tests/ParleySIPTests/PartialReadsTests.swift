import Testing
import ParleySIP

/// Reads that parse only as much of a header as they return: the top Via, the Via at a
/// position, the elements of a list header as bytes. They must agree with the full parse.
@Suite("Partial reads of headers")
struct PartialReadsTests {
    static let text = """
        SIP/2.0 180 Ringing\r
        Via: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKtop;rport=5070 , SIP/2.0/TCP 10.0.0.2;branch=z9hG4bKsecond\r
        v: SIP/2.0/TLS h3.example.com:5061;branch=z9hG4bKthird;received=192.0.2.3\r
        To: <sip:b@example.com>;tag=t\r
        From: <sip:a@example.com>;tag=f\r
        Call-ID: partial-1\r
        CSeq: 1 INVITE\r
        Allow: INVITE, ACK,BYE ,  CANCEL\r
        Content-Length: 0\r
        \r

        """

    /// The message as built, not parsed: reads go to the header lines.
    static func built() throws -> SIPMessage {
        let parsed = try SIPParser.parse(text)
        return SIPMessage(startLine: parsed.startLine, headers: parsed.headers)
    }

    @Test("the Via at each position is the one the full parse finds, from lines and from validation's cache")
    func viaAt() throws {
        let full = try SIPParser.parse(Self.text).vias()
        #expect(full.count == 3)
        for m in [try SIPParser.parse(Self.text), try Self.built()] {
            for (i, via) in full.enumerated() { #expect(try m.via(at: i) == via) }
            #expect(try m.via(at: 3) == nil)
            #expect(try m.topVia() == full[0])
        }
        #expect(try Self.built().via(at: 2)?.transport == "TLS")
    }

    @Test("a malformed Via is reported when the read reaches it, not before")
    func malformedVia() throws {
        let m = SIPMessage.response(200, headers: SIPHeaders([
            SIPHeader(.via, "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKa, SIP/2.0/UDP ;branch=bad"),
        ]))
        #expect(try m.topVia()?.branch == "z9hG4bKa")
        #expect(throws: SIPParseError.self) { try m.via(at: 1) }
        let glued = SIPMessage.response(200, headers: SIPHeaders([SIPHeader(.via, "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKa junk")]))
        #expect(throws: SIPParseError.self) { try glued.topVia() }
    }

    @Test("a list header's elements as bytes are its elements as strings")
    func elementsAsBytes() throws {
        let m = try Self.built()
        for line in m.headers {
            var seen: [String] = []
            line.forEachElement { seen.append(String(decoding: $0, as: UTF8.self)) }
            #expect(seen == line.elements, "\(line.name)")
        }
        let allow = try #require(m.headers.first(HeaderName(.allow)))
        var count = 0
        allow.forEachElement { _ in count += 1 }
        #expect(count == 4)
    }
}
