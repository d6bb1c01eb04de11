import Testing
@testable import ParleySIP

/// SIPMessage shares its storage between copies and copies it on the first change to one that
/// shares it: every copy still behaves as a value of its own.
@Suite("SIPMessage as a copy-on-write value")
struct CopyOnWriteTests {
    static let text = """
        INVITE sip:sales@cc.example.com SIP/2.0\r
        Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKcow1\r
        Max-Forwards: 70\r
        From: <sip:alice@example.com>;tag=a1\r
        To: <sip:sales@cc.example.com>\r
        Call-ID: cow-1@192.0.2.1\r
        CSeq: 1 INVITE\r
        Contact: <sip:alice@192.0.2.1:5060>\r
        Content-Type: application/sdp\r
        Content-Length: 4\r
        \r
        v=0\n
        """

    @Test("a change to a copy leaves the original as it was, and the other way round")
    func copiesAreIndependent() throws {
        let original = try SIPParser.parse(Self.text)
        let bytes = original.serialized()
        var copy = original
        copy.headers.set(HeaderName(.maxForwards), "69")
        copy.requestURI = try URI.parse("sip:agent@127.0.0.1:5090")
        copy.body = Array("v=1\n".utf8)
        #expect(original.serialized() == bytes)
        #expect(try original.maxForwards() == 70)
        #expect(try copy.maxForwards() == 69)
        #expect(copy.requestURI?.description == "sip:agent@127.0.0.1:5090")
        #expect(original.requestURI?.description == "sip:sales@cc.example.com")
        #expect(original.body == Array("v=0\n".utf8))

        var again = copy
        again.headers.removeAll(HeaderName(.contact))
        #expect(try copy.contacts().count == 1)
        #expect(try again.contacts().isEmpty)
    }

    @Test("validation's typed headers stay with the copy that did not change its headers")
    func typedHeadersFollowTheirOwnCopy() throws {
        let original = try SIPParser.parse(Self.text)
        var copy = original
        copy.headers.append(HeaderName("Subject"), "changed")
        #expect(original.keepsParsedHeaders)
        #expect(!copy.keepsParsedHeaders)
        #expect(try copy.from()?.tag == "a1")
    }

    @Test("copies handed to other threads read the same message while one of them changes")
    func copiesAcrossThreads() async throws {
        let original = try SIPParser.parse(Self.text)
        let bytes = original.serialized()
        await withTaskGroup(of: Bool.self) { group in
            for i in 0..<8 {
                let mine = original
                group.addTask {
                    var m = mine
                    for n in 0..<200 {
                        if i % 2 == 0 {
                            m.headers.set(HeaderName(.maxForwards), String(n % 70))
                        } else if m.serialized() != bytes {
                            return false
                        }
                    }
                    return true
                }
            }
            for await ok in group { #expect(ok) }
        }
        #expect(original.serialized() == bytes)
    }
}
