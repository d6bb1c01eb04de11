import Testing
@testable import ParleySIP

@Suite("URIs, addresses and typed headers (RFC 3261 section 25)")
struct GrammarTests {
    @Test("RFC 3261 19.1.1: SIP URI with user, password, host, port, parameters and headers")
    func fullSIPURI() throws {
        let u = try SIPURI.parse("sips:alice:secret@atlanta.example.com:5061;transport=tcp;lr?subject=project%20x&priority=urgent")
        #expect(u.secure)
        #expect(u.user == "alice")
        #expect(u.password == "secret")
        #expect(u.host == .name("atlanta.example.com"))
        #expect(u.port == 5061)
        #expect(u.transportParameter == "tcp")
        #expect(u.isLooseRouter)
        #expect(u.headers == [SIPParameter("subject", "project%20x"), SIPParameter("priority", "urgent")])
        #expect(u.description == "sips:alice:secret@atlanta.example.com:5061;transport=tcp;lr?subject=project%20x&priority=urgent")
    }

    @Test("RFC 3261 19.1.1: IPv4 and IPv6 references as hosts")
    func hosts() throws {
        #expect(try SIPURI.parse("sip:192.0.2.4:5060").host == .ipv4("192.0.2.4"))
        let v6 = try SIPURI.parse("sip:bob@[2001:db8::10]:5070;maddr=[2001:db8::1]")
        #expect(v6.host == .ipv6("2001:db8::10"))
        #expect(v6.port == 5070)
        #expect(v6.maddr == "[2001:db8::1]")
        #expect(v6.description == "sip:bob@[2001:db8::10]:5070;maddr=[2001:db8::1]")
        #expect(try SIPURI.parse("sip:[::1]").host.address == "::1")
    }

    @Test("malformed URIs are refused with a reason", arguments: [
        "sip:", "sip:user@", "sip:host:99999", "sip:host:abc", "sip:a b@host", "sip:[::1", "sip:host;;x", "sip:bad_host",
        "sip:user@host;=v", "sip:us%zzer@host", "sip:@host", "1sip:host", ":nothing",
    ])
    func malformedURIs(_ text: String) {
        #expect(throws: SIPSyntaxError.self) { try URI.parse(text) }
    }

    @Test("RFC 3966 tel URI and opaque schemes")
    func telAndOther() throws {
        guard case .tel(let t) = try URI.parse("tel:+1-201-555-0123;phone-context=example.com") else {
            Issue.record("not a tel URI"); return
        }
        #expect(t.isGlobal)
        #expect(t.digits == "+12015550123")
        #expect(t.parameters.value("phone-context") == "example.com")
        #expect(try URI.parse("mailto:a@example.com") == .other(scheme: "mailto", text: "mailto:a@example.com"))
    }

    @Test("RFC 3261 20.10: name-addr versus addr-spec parameters")
    func nameAddrVersusAddrSpec() throws {
        let spec = try NameAddress.parse("sip:bob@biloxi.example.com;tag=a6c85cf")
        #expect(spec.tag == "a6c85cf")
        #expect(spec.uri.sipURI?.parameters.isEmpty == true)
        let named = try NameAddress.parse("Bob <sip:bob@biloxi.example.com;transport=udp>;tag=a6c85cf")
        #expect(named.displayName == "Bob")
        #expect(named.uri.sipURI?.transportParameter == "udp")
        #expect(named.tag == "a6c85cf")
        #expect(named.description == "Bob <sip:bob@biloxi.example.com;transport=udp>;tag=a6c85cf")
        let quoted = try NameAddress.parse("\"Alice \\\"A\\\" Liddell\" <sip:alice@example.com>")
        #expect(quoted.displayName == "Alice \"A\" Liddell")
        #expect(quoted.description == "\"Alice \\\"A\\\" Liddell\" <sip:alice@example.com>")
    }

    @Test("a URI with parameters is written in angle brackets so they stay URI parameters")
    func angleBracketsOnWrite() throws {
        var a = try NameAddress.parse("sip:bob@example.com;tag=1")
        a.uri = .sip(try SIPURI.parse("sip:bob@example.com;transport=tcp"))
        a.angleBrackets = false
        let again = try NameAddress.parse(a.description)
        #expect(again.uri == a.uri)
        #expect(again.tag == "1")
    }

    @Test("RFC 3261 20.10: Contact '*', q and expires")
    func contacts() throws {
        let m = try SIPParser.parse("REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\nContact: <sip:a@192.0.2.1>;q=0.7;expires=600, <sip:a@192.0.2.2>;q=1\r\nm: <sip:a@192.0.2.3>\r\nContent-Length: 0\r\n\r\n")
        let cs = try m.contacts()
        #expect(cs.count == 3)
        #expect(cs.map(\.q) == [0.7, 1, nil])
        #expect(cs[0].expires == 600)
        let star = try SIPParser.parse("REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\nContact: *\r\nExpires: 0\r\nContent-Length: 0\r\n\r\n")
        #expect(try star.contacts() == [.wildcard])
        #expect(try star.expires() == 0)
    }

    @Test("RFC 3261 20.10: q outside 0..1 or with four decimals is refused")
    func badQ() {
        #expect(parseQValue("1.001") == nil)
        #expect(parseQValue("0.1234") == nil)
        #expect(parseQValue("2") == nil)
        #expect(parseQValue("0.5") == 0.5)
        #expect(formatQValue(0.45) == "0.45")
        #expect(formatQValue(1) == "1")
        #expect(formatQValue(0.0004) == "0")
        #expect(formatQValue(0.9 * 0.5) == "0.45")
    }

    @Test("RFC 3261 20.42 and RFC 3581: Via with received, rport, maddr, ttl, IPv6 sent-by")
    func via() throws {
        let v = try Via.parse("SIP/2.0/UDP [2001:db8::9]:5062;branch=z9hG4bKabc;received=192.0.2.7;rport=40000;maddr=224.2.0.1;ttl=16")
        #expect(v.host == .ipv6("2001:db8::9"))
        #expect(v.port == 5062)
        #expect(v.isRFC3261Branch)
        #expect(v.received == "192.0.2.7")
        #expect(v.rport == .some(40000))
        #expect(v.maddr == "224.2.0.1")
        #expect(v.ttl == "16")
        #expect(try Via.parse(v.description) == v)
        let asking = try Via.parse("SIP/2.0/TCP client.example.com;rport;branch=z9hG4bK1")
        #expect(asking.rport == .some(nil))
        #expect(try Via.parse("SIP/2.0/TCP client.example.com;branch=z9hG4bK1").rport == nil)
    }

    @Test("malformed Via values are refused", arguments: ["SIP/2.0 host", "SIP/2.0/UDP", "SIP/2.0/UDP host;branch=", "SIP/2.0/UDP host:70000", "SIP/2.0/UDPhost"])
    func badVia(_ text: String) {
        #expect(throws: SIPSyntaxError.self) { try Via.parse(text) }
    }

    @Test("RFC 3261 7.3.3: compact forms and case-insensitive names find the same header")
    func compactForms() throws {
        let m = try SIPParser.parse("OPTIONS sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nf: <sip:a@b>;tag=1\r\nt: <sip:a@b>\r\ni: c1\r\ncseq: 1 OPTIONS\r\ns: hello\r\nk: timer, 100rel\r\nl: 0\r\n\r\n")
        #expect(m.headers["Subject"] == "hello")
        #expect(m.headers["SUBJECT"] == "hello")
        #expect(m.headers["s"] == "hello")
        #expect(m.callID == "c1")
        #expect(m.optionTags(.supported) == ["timer", "100rel"])
        #expect(m.canonicalized().headers.map(\.name) == ["Via", "From", "To", "Call-ID", "CSeq", "Subject", "Supported", "Content-Length"])
    }

    @Test("RFC 3261 7.3.1: comma lists split only outside quotes and angle brackets")
    func listSplitting() {
        #expect(splitList("<sip:a@b;x=1,2>, \"Last, First\" <sip:c@d>, sip:e@f") == ["<sip:a@b;x=1,2>", "\"Last, First\" <sip:c@d>", "sip:e@f"])
        let date = SIPHeader(name: "Date", value: "Sat, 13 Nov 2010 23:29:00 GMT")
        #expect(date.elements == ["Sat, 13 Nov 2010 23:29:00 GMT"])
        let auth = SIPHeader(name: "Authorization", value: "Digest username=\"bob\", realm=\"x\", nonce=\"n\"")
        #expect(auth.elements.count == 1)
    }

    @Test("header editing: prepend Via, remove the top element, set replaces every line")
    func headerEditing() throws {
        var h = SIPHeaders()
        h.append("Via", "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2")
        h.append("To", "<sip:x@y>")
        h.prepend("v", "SIP/2.0/UDP proxy;branch=z9hG4bK0")
        #expect(h.elements("Via").count == 3)
        #expect(h.removeFirstElement("Via") == "SIP/2.0/UDP proxy;branch=z9hG4bK0")
        #expect(h.removeFirstElement("Via") == "SIP/2.0/UDP a;branch=z9hG4bK1")
        #expect(h.elements("Via") == ["SIP/2.0/UDP b;branch=z9hG4bK2"])
        h.append("Max-Forwards", "70")
        h.append("Max-Forwards", "69")
        h.set("max-forwards", "68")
        #expect(h.values("Max-Forwards") == ["68"])
    }

    @Test("removing the first element: commas inside quotes and angle brackets, empty elements, a parsed line")
    func removeFirstElementEdges() throws {
        var h = SIPHeaders()
        h.append("Route", " , <sip:a@x;lr>,\t<sip:b@y;lr> ,, <sip:c@z;lr>, ")
        #expect(h.removeFirstElement("Route") == "<sip:a@x;lr>")
        #expect(h.values("Route") == ["<sip:b@y;lr> ,, <sip:c@z;lr>"])
        #expect(h.elements("Route") == ["<sip:b@y;lr>", "<sip:c@z;lr>"])
        #expect(h.removeFirstElement("Route") == "<sip:b@y;lr>")
        #expect(h.removeFirstElement("Route") == "<sip:c@z;lr>")
        #expect(!h.contains("Route"))
        #expect(h.removeFirstElement("Route") == nil)

        h.append("Contact", "\"Smith, J\" <sip:j@x>, <sip:k@y;p=\"a,b\">")
        #expect(h.removeFirstElement("Contact") == "\"Smith, J\" <sip:j@x>")
        #expect(h.values("Contact") == ["<sip:k@y;p=\"a,b\">"])
        h.append("Route", " , ,")
        #expect(h.removeFirstElement("Route") == nil)
        #expect(!h.contains("Route"))
        h.append("Subject", "a, b")  // not a list: the whole value
        #expect(h.removeFirstElement("Subject") == "a, b")
        #expect(!h.contains("Subject"))

        // a received message: the rest is a range of the message's own bytes
        var m = try SIPParser.parse("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP p;branch=z9hG4bK0 , SIP/2.0/UDP a;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP b;branch=z9hG4bK2\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
        #expect(m.headers.removeFirstElement("Via") == "SIP/2.0/UDP p;branch=z9hG4bK0")
        #expect(try m.topVia()?.branch == "z9hG4bK1")
        #expect(String(decoding: m.serialized(), as: UTF8.self).contains("\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP b;branch=z9hG4bK2\r\n"))
    }

    @Test("RFC 3261 8.2.2: requests missing mandatory headers get 400 naming the header")
    func missingHeaders() {
        do {
            _ = try SIPParser.parse("OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCSeq: 1 OPTIONS\r\n\r\n")
            Issue.record("parsed without Call-ID")
        } catch {
            #expect(error.header == "Call-ID")
            #expect(error.disposition == .respond(400))
            #expect(error.reasonPhrase.contains("Call-ID"))
        }
    }

    @Test("header lines: a line without a colon is refused with its line number")
    func lineNumbers() {
        do {
            _ = try SIPParser.parse("OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nThis is not a header\r\n\r\n")
            Issue.record("parsed")
        } catch {
            #expect(error.line == 3)
        }
    }

    @Test("bare LF line ends are accepted")
    func bareLF() throws {
        let m = try SIPParser.parse("OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:a@b>;tag=1\nTo: <sip:a@b>\nCall-ID: c\nCSeq: 1 OPTIONS\n\n")
        #expect(m.callID == "c")
    }

    @Test("limits: too many header lines are refused")
    func tooManyHeaders() {
        var text = "OPTIONS sip:a@b SIP/2.0\r\n"
        for i in 0..<300 { text += "X-\(i): v\r\n" }
        text += "\r\n"
        #expect(throws: SIPParseError.self) { try SIPParser.parse(text) }
    }

    /// Never a crash: mutated fixtures (bounded, seeded) either parse or give an error.
    @Test("robustness: 20,000 mutated torture messages parse or fail cleanly")
    func mutations() {
        var rng = SplitMix(seed: 4475)
        let inputs = Fixtures.all.map { Fixtures.bytes($0.0, $0.1) }
        var parsed = 0, refused = 0
        for i in 0..<20_000 {
            var b = inputs[i % inputs.count]
            let edits = 1 + Int(rng.next() % 4)
            for _ in 0..<edits where !b.isEmpty {
                let pos = Int(rng.next() % UInt64(b.count))
                switch rng.next() % 4 {
                case 0: b[pos] = UInt8(truncatingIfNeeded: rng.next())
                case 1: b.remove(at: pos)
                case 2: b.insert([ASCII.cr, ASCII.lf, ASCII.sp, ASCII.colon, ASCII.semicolon, ASCII.lt, ASCII.quote, 0][Int(rng.next() % 8)], at: pos)
                default: b = Array(b[0..<pos])
                }
            }
            do {
                let m = try SIPParser.parse(b)
                _ = m.serialized()
                parsed += 1
            } catch {
                refused += 1
            }
            var framer = SIPStreamFramer()
            framer.append(b)
            for _ in 0..<4 { if (try? framer.next()) == nil { break } }
        }
        #expect(parsed + refused == 20_000)
        #expect(parsed > 0 && refused > 0)
    }
}

/// A small deterministic generator for the robustness test.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("Character classes")
struct CharacterClassTests {
    @Test("RFC 3261 25.1: the token character set is exactly alphanum and -.!%*_+`'~")
    func tokenSet() {
        let expected = Set(Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~".utf8))
        for c in UInt8(0)...255 {
            #expect(ASCII.isToken(c) == expected.contains(c), "byte \(c)")
            if c < 64 { #expect(ASCII.isToken(c) == ((ASCII.tokenLow >> UInt64(c)) & 1 == 1)) }
            else if c < 128 { #expect(ASCII.isToken(c) == ((ASCII.tokenHigh >> UInt64(c - 64)) & 1 == 1)) }
        }
    }
}
