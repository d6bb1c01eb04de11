import Testing
@testable import ParleySIP

/// RFC 4475 (SIP Torture Test Messages): every message, with the outcome its section gives.
@Suite("RFC 4475 torture messages")
struct RFC4475Tests {
    // MARK: 3.1.1 Valid messages: parse, with the exact values the RFC spells out.

    @Test("RFC 4475 3.1.1.1 wsinv: a short tortuous INVITE")
    func wsinv() throws {
        let m = try Fixtures.parse("valid", "wsinv")
        #expect(m.method == .invite)
        let uri = try #require(m.requestURI?.sipURI)
        #expect(uri.user == "vivekg")
        #expect(uri.host == .name("chair-dnrc.example.com"))
        #expect(uri.parameters == [SIPParameter("unknownparam")])
        let to = try #require(try m.to())
        #expect(to.displayName == nil)
        #expect(to.uri.description == "sip:vivekg@chair-dnrc.example.com")
        #expect(to.uri.sipURI?.parameters.isEmpty == true)
        #expect(to.tag == "1918181833n")
        let from = try #require(try m.from())
        #expect(from.displayName == "J Rosenberg \\\"")
        #expect(from.uri.description == "sip:jdrosen@example.com")
        #expect(from.tag == "98asjd8")
        #expect(try m.maxForwards() == 68)
        #expect(m.callID == "wsinv.ndaksdj@192.0.2.1")
        #expect(try m.contentLength() == 150)
        #expect(m.body.count == 150)
        #expect(m.body.starts(with: Array("v=0".utf8)))
        #expect(try m.cseq() == CSeq(9, .invite))
        let vias = try m.vias()
        #expect(vias.count == 3)
        #expect(vias.map(\.transport) == ["UDP", "TCP", "UDP"])
        #expect(vias.map(\.host) == [.ipv4("192.0.2.2"), .name("spindle.example.com"), .ipv4("192.168.255.111")])
        #expect(vias.map(\.branch) == ["390skdjuw", "z9hG4bK9ikj8", "z9hG4bK30239"])
        #expect(m.headers[HeaderName("Subject")] == "")
        #expect(m.headers["NewFangledHeader"] == "newfangled value continued newfangled value")
        #expect(m.headers["UnknownHeaderWithUnusualValue"] == ";;,,;;,;")
        #expect(m.headers.elements("UnknownHeaderWithUnusualValue") == [";;,,;;,;"])
        #expect(try m.contentType()?.essence == "application/sdp")
        let route = try #require(try m.routes().first)
        #expect(route.uri.sipURI?.parameters == [SIPParameter("lr"), SIPParameter("unknownwith", "value"), SIPParameter("unknown-no-value")])
        let contacts = try m.contacts()
        #expect(contacts.count == 1)
        let contact = try #require(contacts.first?.address)
        #expect(contact.displayName == "Quoted string \"\"")
        #expect(contact.uri.description == "sip:jdrosen@example.com")
        #expect(contact.parameters == [SIPParameter("newparam", "newvalue"), SIPParameter("secondparam"), SIPParameter("q", "0.33")])
        #expect(contacts.first?.q == 0.33)
    }

    @Test("RFC 4475 3.1.1.2 intmeth: wide range of valid characters")
    func intmeth() throws {
        let m = try Fixtures.parse("valid", "intmeth")
        #expect(m.method?.rawValue == "!interesting-Method0123456789_*+`.%indeed'~")
        #expect(try m.cseq()?.method == m.method)
        #expect(try m.cseq()?.sequence == 139122385)
        let uri = try #require(m.requestURI?.sipURI)
        #expect(uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        #expect(uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        #expect(uri.host == .name("example.com"))
        #expect(uri.parameters.isEmpty)
        let via = try #require(try m.topVia())
        #expect(via.transport == "TCP")
        #expect(via.branch == "z9hG4bK-.!%66*_+`'~")
        let to = try #require(try m.to())
        #expect(to.displayName.map { Array($0.utf8) } == Array("BEL:\u{07} NUL:\u{00} DEL:\u{7F}".utf8))
        #expect(to.uri.sipURI?.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        let from = try #require(try m.from())
        #expect(from.displayName == "token1~` token2'+_ token3*%!.-")
        #expect(from.uri.description == "sip:mundane@example.com")
        #expect(from.tag == "_token~1'+`*%!-.")
        #expect(from.parameters.value("fromParam''~+*_!.-%") == "\"работающий\"")
        #expect(m.callID == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{")
        #expect(try m.maxForwards() == 255)
        #expect(m.headers["extensionHeader-!.%*+_`'~"] == "\u{FEFF}大停電")
        #expect(m.body.isEmpty)
    }

    @Test("RFC 4475 3.1.1.3 esc01: valid use of the % escaping mechanism")
    func esc01() throws {
        let m = try Fixtures.parse("valid", "esc01")
        let uri = try #require(m.requestURI?.sipURI)
        #expect(uri.user == "sips%3Auser%40example.com")
        #expect(uri.decodedUser == "sips:user@example.com")
        #expect(uri.host == .name("example.net"))
        #expect(try m.to()?.uri.sipURI?.decodedUser == "user")
        #expect(try m.to()?.tag == nil)
        #expect(try m.from()?.uri.sipURI?.decodedUser == "I have spaces")
        #expect(try m.from()?.tag == "938")
        #expect(m.callID == "esc01.239409asdfakjkn23onasd0-3234")
        #expect(try m.contentType()?.essence == "application/sdp")
        let contact = try #require(try m.contacts().first?.address?.uri.sipURI)
        #expect(contact.decodedUser == "caller")
        #expect(contact.parameters.map { percentDecoded($0.name) } == ["lr", "name"])
        #expect(contact.parameters.last.flatMap(\.value).map(percentDecoded) == "value%41")
        #expect(m.body.count == 150)
    }

    @Test("RFC 4475 3.1.1.4 escnull: escaped nulls in URIs")
    func escnull() throws {
        let m = try Fixtures.parse("valid", "escnull")
        #expect(m.requestURI?.description == "sip:example.com")
        #expect(try m.to()?.uri.sipURI?.decodedUser.map { Array($0.utf8) } == Array("null-\u{0}-null".utf8))
        let contacts = try m.contacts().compactMap { $0.address?.uri.sipURI }
        #expect(contacts.count == 2)
        #expect(contacts.map { $0.decodedUser.map { Array($0.utf8) } } == [[0], [0, 0]])
        #expect(contacts[0] != contacts[1])
        #expect(try m.contentLength() == 0)
        #expect(try m.cseq() == CSeq(14398234, .register))
    }

    @Test("RFC 4475 3.1.1.5 esc02: % that is not an escape")
    func esc02() throws {
        let m = try Fixtures.parse("valid", "esc02")
        #expect(m.method?.rawValue == "RE%47IST%45R")
        #expect(m.method != .register)
        #expect(try m.to()?.displayName == "%Z%45")
        #expect(try m.from()?.tag == "f232jadfj23")
        let contacts = try m.contacts().compactMap { $0.address?.uri.description }
        #expect(contacts == ["sip:alias1@host1.example.com", "sip:alias3@host3.example.com"])
        #expect(m.headers["C%6Fntact"] == "<sip:alias2@host2.example.com>")
    }

    @Test("RFC 4475 3.1.1.6 lwsdisp: no LWS between display name and <")
    func lwsdisp() throws {
        let m = try Fixtures.parse("valid", "lwsdisp")
        let from = try #require(try m.from())
        #expect(from.displayName == "caller")
        #expect(from.uri.description == "sip:caller@example.com")
        #expect(from.tag == "323")
    }

    @Test("RFC 4475 3.1.1.7 longreq: long values in header fields")
    func longreq() throws {
        let m = try Fixtures.parse("valid", "longreq")
        let to = try #require(try m.to())
        #expect(to.displayName == "I have a user name of " + String(repeating: "extreme", count: 10) + " proportion")
        let toURI = try #require(to.uri.sipURI)
        #expect(toURI.port == 6000)
        #expect(toURI.parameters.value("unknownparam1") == "very" + String(repeating: "long", count: 20) + "value")
        #expect(toURI.parameters.value("longparam" + String(repeating: "name", count: 25)) == "shortvalue")
        #expect(toURI.parameters.value("very" + String(repeating: "long", count: 25) + "ParameterNameWithNoValue") == "")
        let from = try #require(try m.from())
        #expect(from.uri.sipURI?.user == String(repeating: "amazinglylongcallername", count: 5))
        #expect(from.tag == "12" + String(repeating: "982", count: 50) + "424")
        #expect(m.callID == "longreq.one" + String(repeating: "really", count: 20) + "longcallid")
        let vias = try m.vias()
        #expect(vias.count == 34)
        #expect(vias.first?.host == .name("sip33.example.com"))
        #expect(vias[32].host == .name("sip1.example.com"))
        #expect(vias.last?.received == "192.0.2.5")
        #expect(vias.last?.branch == "very" + String(repeating: "long", count: 50) + "branchvalue")
        #expect(m.body.count == 150)
    }

    @Test("RFC 4475 3.1.1.8 dblreq: extra trailing octets in a UDP datagram are ignored")
    func dblreq() throws {
        let m = try Fixtures.parse("valid", "dblreq")
        #expect(m.method == .register)
        #expect(m.callID == "dblreq.0ha0isndaksdj99sdfafnl3lk233412")
        #expect(m.body.isEmpty)
        #expect(try m.contacts().first?.address?.uri.description == "sip:j.user@host.example.com")
    }

    @Test("RFC 4475 3.1.1.9 semiuri: semicolons in the user part")
    func semiuri() throws {
        let m = try Fixtures.parse("valid", "semiuri")
        let uri = try #require(m.requestURI?.sipURI)
        #expect(uri.decodedUser == "user;par=u@example.net")
        #expect(uri.host == .name("example.com"))
        #expect(uri.parameters.isEmpty)
        #expect(m.headers.elements("Accept") == ["application/sdp", "application/pkcs7-mime", "multipart/mixed",
                                                  "multipart/signed", "message/sip", "message/sipfrag"])
    }

    @Test("RFC 4475 3.1.1.10 transports: varied and unknown transports")
    func transports() throws {
        let m = try Fixtures.parse("valid", "transports")
        let vias = try m.vias()
        #expect(vias.map(\.transport) == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"])
        #expect(vias.map(\.branch) == ["z9hG4bKkdjuw", "z9hG4bKklasjdhf", "z9hG4bK2980unddj", "z9hG4bKasd0f3en", "z9hG4bK0a9idfnee"])
        #expect(m.callID == "transports.kijh4akdnaqjkwendsasfdj")
    }

    @Test("RFC 4475 3.1.1.11 mpart01: multipart body framed by Content-Length")
    func mpart01() throws {
        let m = try Fixtures.parse("valid", "mpart01")
        #expect(m.method == .message)
        let via = try #require(try m.topVia())
        #expect(via.port == 5070)
        #expect(via.rport == .some(nil))
        #expect(via.branch == "z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-")
        #expect(try m.contentType()?.essence == "multipart/mixed")
        #expect(try m.contentType()?.parameters.value("boundary") == "7a9cbec02ceef655")
        #expect(m.body.count == 553)
        #expect(m.body.filter { $0 == 0 }.count == 2)
        #expect(m.headers["Date"] == "Sat, 15 Oct 2005 04:44:56 GMT")
    }

    @Test("RFC 4475 3.1.1.12 unreason: unusual reason phrase")
    func unreason() throws {
        let m = try Fixtures.parse("valid", "unreason")
        #expect(m.statusCode == 200)
        #expect(m.reasonPhrase == "= 2**3 * 5**2 но сто девяносто девять - простое")
        #expect(m.reasonPhrase?.utf8.count == 74)
        #expect(m.body.count == 154)
    }

    @Test("RFC 4475 3.1.1.13 noreason: empty reason phrase")
    func noreason() throws {
        let m = try Fixtures.parse("valid", "noreason")
        #expect(m.statusCode == 100)
        #expect(m.reasonPhrase == "")
        #expect(try m.to()?.tag == "902jndnke3")
    }

    // MARK: 3.1.2 Invalid messages: refused with a clear error and the answer the RFC gives.

    /// (file, what the error must mention, the answer)
    static let invalid: [(String, String, SIPParseError.Disposition)] = [
        ("badinv01", "Via", .respond(400)),          // 3.1.2.1 extraneous header field separators
        ("clerr", "Content-Length", .respond(400)),  // 3.1.2.2 Content-Length larger than message
        ("ncl", "Content-Length", .respond(400)),    // 3.1.2.3 negative Content-Length
        ("scalar02", "CSeq", .respond(400)),         // 3.1.2.4 overlarge request scalars: 400 because of CSeq
        ("scalarlg", "CSeq", .drop),                 // 3.1.2.5 overlarge response scalars: discard
        ("quotbal", "quoted string", .respond(400)), // 3.1.2.6 unterminated quoted string
        ("ltgtruri", "Request-URI", .respond(400)),  // 3.1.2.7 <> enclosing Request-URI
        ("lwsruri", "Request-URI", .respond(400)),   // 3.1.2.8 LWS inside the Request-URI
        ("lwsstart", "white space", .respond(400)),  // 3.1.2.9 multiple SP in the request line
        ("trws", "white space", .respond(400)),      // 3.1.2.10 SP at the end of the request line
        ("escruri", "Request-URI", .respond(400)),   // 3.1.2.11 escaped headers in the Request-URI
        ("baddate", "GMT", .respond(400)),           // 3.1.2.12 time zone not GMT
        ("regbadct", "'<>'", .respond(400)),         // 3.1.2.13 name-addr URI not in <>
        ("badaspec", "'<>'", .respond(400)),         // 3.1.2.14 spaces inside the addr-spec
        ("baddn", "display name", .respond(400)),    // 3.1.2.15 non-token characters in the display name
        ("badvers", "SIP/7.0", .respond(505)),       // 3.1.2.16 unknown protocol version
        ("mismatch01", "CSeq", .respond(400)),       // 3.1.2.17 start line and CSeq method mismatch
        // 3.1.2.18: the RFC prefers 501 for an unknown method with a CSeq mismatch and accepts 400;
        // Parley answers 400 because the mismatch is a malformation whatever the method.
        ("mismatch02", "CSeq", .respond(400)),
        ("bigcode", "status code", .drop),           // 3.1.2.19 overlarge response code
        // 3.3.8 multi01 and 3.3.9 mcl01 parse header by header but the RFC wants an error: 400.
        ("multi01", "more than once", .respond(400)),
        ("mcl01", "Content-Length", .respond(400)),
        // 3.3.1 insuf: missing Call-ID, From, To; the element must not break, ideally 400.
        ("insuf", "missing", .respond(400)),
    ]

    @Test("RFC 4475 3.1.2 invalid messages are refused with the right answer", arguments: RFC4475Tests.invalid.map { $0.0 })
    func invalidMessage(_ name: String) throws {
        let (_, mention, disposition) = try #require(RFC4475Tests.invalid.first { $0.0 == name })
        do {
            let m = try Fixtures.parse("invalid", name)
            Issue.record("\(name) parsed but must be refused: \(m.startLine)")
        } catch {
            #expect(error.disposition == disposition, "\(name): \(error)")
            #expect(error.description.contains(mention), "\(name): '\(error)' should mention \(mention)")
        }
    }

    @Test("RFC 4475 3.1.2.16 badvers: the 505 needs the rest of the message to parse")
    func badversParsesWithoutValidation() throws {
        let m = try SIPParser.parse(Fixtures.bytes("invalid", "badvers"), validate: false)
        #expect(m.version == "SIP/7.0")
        #expect(try m.from()?.displayName == "A. Bell")
    }

    @Test("RFC 4475 3.1.2.5 bigcode: 4294967301 must not wrap to 5")
    func bigcodeDoesNotWrap() throws {
        #expect(throws: SIPParseError.self) { try Fixtures.parse("invalid", "bigcode") }
    }

    // MARK: 3.2 to 3.4: parseable; the element then answers as the RFC says (later layers).

    @Test("RFC 4475 3.2.1 badbranch: branch is only the magic cookie; parses for RFC 2543 matching")
    func badbranch() throws {
        let m = try Fixtures.parse("invalid", "badbranch")
        let via = try #require(try m.topVia())
        #expect(via.branch == "z9hG4bK")
        #expect(m.callID == "badbranch.sadonfo23i420jv0as0derf3j3n")
    }

    @Test("RFC 4475 3.3.2 unkscm: unknown Request-URI scheme kept opaque (element answers 416)")
    func unkscm() throws {
        let m = try Fixtures.parse("invalid", "unkscm")
        #expect(m.requestURI == .other(scheme: "nobodyknowsthisscheme", text: "nobodyKnowsThisScheme:totallyopaquecontent"))
    }

    @Test("RFC 4475 3.3.3 novelsc: atypical scheme kept opaque (element answers 416)")
    func novelsc() throws {
        let m = try Fixtures.parse("invalid", "novelsc")
        #expect(m.requestURI?.scheme == "soap.beep")
        #expect(m.requestURI?.description == "soap.beep://192.0.2.103:3002")
    }

    @Test("RFC 4475 3.3.4 unksm2: unknown schemes in To, From and Contact parse")
    func unksm2() throws {
        let m = try Fixtures.parse("invalid", "unksm2")
        #expect(try m.to()?.uri.scheme == "isbn")
        #expect(try m.from()?.uri.scheme == "http")
        #expect(try m.contacts().first?.address?.uri.scheme == "name")
    }

    @Test("RFC 4475 3.3.5 bext01: Require and Proxy-Require option tags (element answers 420)")
    func bext01() throws {
        let m = try Fixtures.parse("invalid", "bext01")
        #expect(m.optionTags(.require) == ["nothingSupportsThis", "nothingSupportsThisEither"])
        #expect(m.optionTags(.proxyRequire) == ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"])
    }

    @Test("RFC 4475 3.3.6 invut: unknown Content-Type with a 40-byte body (endpoint answers 415)")
    func invut() throws {
        let m = try Fixtures.parse("invalid", "invut")
        #expect(try m.contentType()?.essence == "application/unknownformat")
        #expect(m.bodyText == "<audio>\r\n <pcmu port=\"443\"/>\r\n</audio>\r\n")
    }

    @Test("RFC 4475 3.3.7 regaut01: unknown Authorization scheme kept whole")
    func regaut01() throws {
        let m = try Fixtures.parse("invalid", "regaut01")
        #expect(m.headers["Authorization"] == "NoOneKnowsThisScheme opaque-data=here")
    }

    @Test("RFC 4475 3.3.10 bcast: broadcast Via parses (a proxy drops it)")
    func bcast() throws {
        let m = try Fixtures.parse("invalid", "bcast")
        #expect(try m.vias().map(\.host) == [.ipv4("192.0.2.198"), .ipv4("255.255.255.255")])
    }

    @Test("RFC 4475 3.3.11 zeromf: Max-Forwards 0 parses (a proxy answers 483)")
    func zeromf() throws {
        let m = try Fixtures.parse("invalid", "zeromf")
        #expect(try m.maxForwards() == 0)
    }

    @Test("RFC 4475 3.3.12 cparam01: a parameter after an addr-spec is a contact-param")
    func cparam01() throws {
        let m = try Fixtures.parse("invalid", "cparam01")
        let c = try #require(try m.contacts().first?.address)
        #expect(c.uri.sipURI?.user == "+19725552222")
        #expect(c.uri.sipURI?.parameters.isEmpty == true)
        #expect(c.parameters == [SIPParameter("unknownparam")])
    }

    @Test("RFC 4475 3.3.13 cparam02: a parameter inside <> is a URI parameter")
    func cparam02() throws {
        let m = try Fixtures.parse("invalid", "cparam02")
        let c = try #require(try m.contacts().first?.address)
        #expect(c.uri.sipURI?.parameters == [SIPParameter("unknownparam")])
        #expect(c.parameters.isEmpty)
    }

    @Test("RFC 4475 3.3.14 regescrt: escaped header kept in the Contact URI")
    func regescrt() throws {
        let m = try Fixtures.parse("invalid", "regescrt")
        let c = try #require(try m.contacts().first?.address?.uri.sipURI)
        #expect(c.headers == [SIPParameter("Route", "%3Csip:sip.example.com%3E")])
        #expect(percentDecoded(c.headers[0].value!) == "<sip:sip.example.com>")
    }

    @Test("RFC 4475 3.3.15 sdp01: Accept without application/sdp parses (endpoint answers 406)")
    func sdp01() throws {
        let m = try Fixtures.parse("invalid", "sdp01")
        #expect(m.headers.elements("Accept") == ["text/nobodyKnowsThis"])
        #expect(m.body.count == 150)
    }

    @Test("RFC 4475 3.4.1 inv2543: RFC 2543 syntax is accepted")
    func inv2543() throws {
        let m = try Fixtures.parse("invalid", "inv2543")
        #expect(try m.topVia()?.branch == nil)
        #expect(try m.from()?.tag == nil)
        #expect(try m.from()?.uri.sipURI?.parameters.value("user") == "phone")
        #expect(try m.to()?.parameters.value("user") == "phone")
        #expect(try m.to()?.uri.sipURI?.parameters.isEmpty == true)
        #expect(try m.contentLength() == nil)
        #expect(m.body.count == 105)
        #expect(try m.maxForwards() == nil)
    }

    /// Every fixture is covered by one of the tests above: none is silently skipped.
    @Test("every RFC 4475 fixture has an expected outcome")
    func everyFixtureCovered() {
        let parseable: Set<String> = ["wsinv", "intmeth", "esc01", "escnull", "esc02", "lwsdisp", "longreq", "dblreq", "semiuri",
                                      "transports", "mpart01", "unreason", "noreason", "badbranch", "unkscm", "novelsc",
                                      "unksm2", "bext01", "invut", "regaut01", "bcast", "zeromf", "cparam01", "cparam02",
                                      "regescrt", "sdp01", "inv2543"]
        let refused = Set(RFC4475Tests.invalid.map { $0.0 })
        #expect(parseable.isDisjoint(with: refused))
        let all = Set(Fixtures.all.map { $0.1 })
        #expect(all.count == 49)
        #expect(all == parseable.union(refused))
        for name in parseable {
            let folder = Fixtures.all.first { $0.1 == name }!.0
            #expect(throws: Never.self, "\(name) must parse") { try Fixtures.parse(folder, name) }
        }
    }
}
