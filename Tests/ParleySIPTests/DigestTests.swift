import Testing
@testable import ParleySIP

@Suite("Hashes and SIP digest authentication")
struct DigestTests {
    @Test("RFC 1321 A.5 test suite: MD5")
    func md5() {
        #expect(MD5.hex([]) == "d41d8cd98f00b204e9800998ecf8427e")
        #expect(MD5.hex(Array("abc".utf8)) == "900150983cd24fb0d6963f7d28e17f72")
        #expect(MD5.hex(Array("message digest".utf8)) == "f96b697d7cb7938d525a2f31aaf161d0")
        #expect(MD5.hex(Array("12345678901234567890123456789012345678901234567890123456789012345678901234567890".utf8))
                == "57edf4a22be3c955ac49da2e2107b67a")
    }

    @Test("FIPS 180-4 examples: SHA-256; RFC 4231 case 2: HMAC-SHA256")
    func sha256() {
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(hexString(SHA256.hmac(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8)))
                == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test("RFC 2617 3.5: the Mufasa example (MD5, qop=auth)")
    func rfc2617Example() throws {
        let ha1 = DigestAuth.ha1(.md5, username: "Mufasa", realm: "testrealm@host.com", password: "Circle Of Life")
        let r = DigestAuth.response(.md5, ha1: ha1, method: "GET", uri: "/dir/index.html", nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
                                    nc: "00000001", cnonce: "0a4f113b", qop: "auth")
        #expect(r == "6629fae49393a05397450978507c4ef1")
        let header = """
        Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", \
        uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", \
        opaque="5ccc069c403ebaf9f0171e9517f40e41"
        """
        let c = try DigestCredentials.parse(header)
        #expect(c.algorithm == .md5)
        #expect(c.opaque == "5ccc069c403ebaf9f0171e9517f40e41")
        #expect(DigestAuth.verify(c, method: "GET", password: "Circle Of Life"))
        #expect(!DigestAuth.verify(c, method: "GET", password: "circle of life"))
        #expect(!DigestAuth.verify(c, method: "POST", password: "Circle Of Life"))
    }

    @Test("RFC 7616 3.9.1: the same request with SHA-256 and with MD5")
    func rfc7616Example() {
        for (algorithm, expected) in [(DigestAlgorithm.sha256, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
                                      (.md5, "8ca523f5e9506fed4657c9700eebdbec")] {
            let ha1 = DigestAuth.ha1(algorithm, username: "Mufasa", realm: "http-auth@example.org", password: "Circle of Life")
            let r = DigestAuth.response(algorithm, ha1: ha1, method: "GET", uri: "/dir/index.html",
                                        nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc: "00000001",
                                        cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop: "auth")
            #expect(r == expected, "\(algorithm)")
        }
    }

    @Test("a challenge written and parsed again; credentials computed for it verify")
    func challengeRoundTrip() throws {
        let challenge = DigestChallenge(realm: "cc.example.com", nonce: "n-1", algorithm: .sha256, opaque: "op", qop: ["auth"])
        let parsed = try DigestChallenge.parse(challenge.headerValue)
        #expect(parsed == challenge)
        let creds = DigestAuth.credentials(for: parsed, username: "alice", password: "s3cret", method: "REGISTER",
                                           uri: "sip:cc.example.com", cnonce: "abc")
        #expect(creds.nc == "00000001")
        let again = try DigestCredentials.parse(creds.headerValue)
        #expect(again == creds)
        #expect(DigestAuth.verify(again, method: "REGISTER", password: "s3cret"))
    }

    @Test("malformed and unsupported credentials are refused with a reason", arguments: [
        "Basic dXNlcjpwYXNz", "Digest username=\"a\"", "Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"x\", algorithm=SHA-512-256",
        "Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"x\", qop=auth", "Digest realm", "Digest realm=\"unterminated",
    ])
    func badCredentials(_ text: String) {
        #expect(throws: SIPSyntaxError.self) { try DigestCredentials.parse(text) }
    }

    @Test("nonces: fresh ones are valid, old ones stale, altered or foreign ones forged")
    func nonces() {
        let factory = NonceFactory(secret: Array("server secret".utf8))
        let nonce = factory.make(nowMs: 1_000_000, salt: 7)
        #expect(factory.check(nonce, nowMs: 1_010_000, lifetimeMs: 30_000) == .valid)
        #expect(factory.check(nonce, nowMs: 1_040_001, lifetimeMs: 30_000) == .stale)
        #expect(factory.check(nonce + "0", nowMs: 1_010_000, lifetimeMs: 30_000) == .forged)
        #expect(factory.check("abc.def", nowMs: 1_010_000, lifetimeMs: 30_000) == .forged)
        let other = NonceFactory(secret: Array("another secret".utf8))
        #expect(other.check(nonce, nowMs: 1_010_000, lifetimeMs: 30_000) == .forged)
        #expect(factory.make(nowMs: 1, salt: 1) != factory.make(nowMs: 1, salt: 2))
    }
}
