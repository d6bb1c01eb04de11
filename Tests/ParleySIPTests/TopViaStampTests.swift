import Testing
@testable import ParleySIP

/// A transport stamps `received`/`rport` on every request's top Via (RFC 3261 18.2.1, RFC 3581):
/// the typed headers validation parsed must survive it, or each later read (From, To, CSeq,
/// Contact, the Vias) parses its header again.
@Suite struct TopViaStampTests {
    static let invite = """
        INVITE sip:sales@cc.example.com SIP/2.0\r
        Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKstamp1;rport\r
        Via: SIP/2.0/UDP 192.0.2.2:5070;branch=z9hG4bKlower\r
        Max-Forwards: 69\r
        From: "Alice" <sip:alice@example.com>;tag=a1\r
        To: <sip:sales@cc.example.com>\r
        Call-ID: stamp-1@192.0.2.1\r
        CSeq: 7 INVITE\r
        Contact: <sip:alice@192.0.2.1:5060>\r
        Content-Length: 0\r
        \r

        """

    @Test func stampingTheTopViaKeepsTheParsedHeaders() throws {
        var m = try SIPParser.parse(Self.invite)
        try m.validateAndCache()
        #expect(m.keepsParsedHeaders)
        var via = try #require(try m.topVia())
        via.parameters.set("received", "198.51.100.9")
        via.parameters.set("rport", "40000")
        m.replaceTopVia(via)
        #expect(m.keepsParsedHeaders)  // before the fix: dropped by the edit
        // the cache and the text agree
        #expect(try m.topVia()?.received == "198.51.100.9")
        #expect(try m.vias().count == 2)
        #expect(try m.vias()[1].branch == "z9hG4bKlower")
        let text = String(decoding: m.serialized(), as: UTF8.self)
        #expect(text.contains("Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKstamp1;rport=40000;received=198.51.100.9\r\n")
                || text.contains("received=198.51.100.9"))
        #expect(try SIPParser.parse(text).topVia()?.received == "198.51.100.9")
        #expect(try m.from()?.tag == "a1")
        #expect(try m.cseq()?.sequence == 7)
        // any other edit still drops them (they could be stale)
        m.headers.set(HeaderName(.maxForwards), "68")
        #expect(!m.keepsParsedHeaders)
        #expect(try m.maxForwards() == 68)
    }
}
