import Testing
@testable import ParleySIP

/// The fixtures that parse as datagrams.
private let parseable: [(String, String, SIPMessage)] = Fixtures.all.compactMap { folder, name in
    (try? Fixtures.parse(folder, name)).map { (folder, name, $0) }
}

@Suite("Round trip and stream framing")
struct FramingTests {
    @Test("round trip: parse, serialize, parse again gives the same message", arguments: parseable.map { $0.1 })
    func roundTrip(_ name: String) throws {
        let original = try #require(parseable.first { $0.1 == name }?.2)
        let again = try SIPParser.parse(original.serialized())
        #expect(again == original)
        // serializedCount (the UDP size check) counts what serialized() writes, received or rebuilt
        #expect(original.serializedCount == original.serialized().count)
        var rebuilt = original
        rebuilt.startLine = original.startLine
        #expect(rebuilt.serializedCount == rebuilt.serialized().count)
        // And the canonical form (full header names) parses to the same typed values.
        let canonical = try SIPParser.parse(original.canonicalized().serialized())
        #expect(try canonical.vias() == original.vias())
        #expect(try canonical.from() == original.from())
        #expect(canonical.body == original.body)
    }

    /// Serialized with a Content-Length that frames the body, as a stream sender must.
    private static func streamBytes(_ m: SIPMessage) -> [UInt8] {
        var m = m
        m.updateContentLength()
        return m.serialized()
    }

    @Test("stream framing: every fixture fed one byte at a time", arguments: parseable.map { $0.1 })
    func oneByteAtATime(_ name: String) throws {
        let original = try #require(parseable.first { $0.1 == name }?.2)
        let bytes = FramingTests.streamBytes(original)
        var framer = SIPStreamFramer()
        var out: [SIPMessage] = []
        for b in bytes {
            framer.append(CollectionOfOne(b))
            while case .message(let m) = try framer.next() { out.append(m) }
        }
        #expect(out.count == 1)
        var expected = original
        expected.updateContentLength()
        #expect(out.first == expected)
        #expect(framer.bufferedByteCount == 0)
    }

    @Test("stream framing: the raw fixture bytes split at every position give the datagram parse")
    func rawSplits() throws {
        for name in ["wsinv", "esc01", "mpart01", "longreq"] {
            let folder = name == "inv2543" ? "invalid" : "valid"
            let bytes = Fixtures.bytes(folder, name)
            let expected = try Fixtures.parse(folder, name)
            for split in stride(from: 1, to: bytes.count, by: 7) {
                var framer = SIPStreamFramer()
                framer.append(bytes[0..<split])
                var got: SIPMessage?
                if case .message(let m) = try framer.next() { got = m }
                framer.append(bytes[split...])
                if got == nil, case .message(let m) = try framer.next() { got = m }
                #expect(got == expected, "\(name) split at \(split)")
            }
        }
    }

    @Test("stream framing: many messages in one buffer come out one by one, in order")
    func manyInOneBuffer() throws {
        var all: [UInt8] = []
        var expected: [SIPMessage] = []
        for (_, _, m) in parseable {
            var m = m
            m.updateContentLength()
            expected.append(m)
            all += m.serialized()
            all += [ASCII.cr, ASCII.lf]  // a keep-alive between messages is skipped (RFC 5626)
        }
        var framer = SIPStreamFramer()
        framer.append(all)
        var out: [SIPMessage] = []
        while case .message(let m) = try framer.next() { out.append(m) }
        #expect(out == expected)
        #expect(try framer.next() == .needMoreData)
    }

    @Test("stream framing: the RFC 4475 dblreq trailing INVITE is a second message on a stream")
    func dblreqOnAStream() throws {
        var framer = SIPStreamFramer(validate: false)
        framer.append(Fixtures.bytes("valid", "dblreq"))
        guard case .message(let first) = try framer.next() else { Issue.record("no first message"); return }
        #expect(first.method == .register)
        guard case .message(let second) = try framer.next() else { Issue.record("no second message"); return }
        #expect(second.method == .invite)
    }

    @Test("stream framing: an invalid message is reported and the stream goes on")
    func invalidThenValid() throws {
        let bad = Array("OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nContent-Length: 0\r\n\r\n".utf8)
        let good = Array("OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK2\r\nCall-ID: y\r\nCSeq: 1 OPTIONS\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nContent-Length: 0\r\n\r\n".utf8)
        var framer = SIPStreamFramer()
        framer.append(bad + good)
        guard case .invalid(let e, let bytes) = try framer.next() else { Issue.record("expected invalid"); return }
        #expect(e.header == "CSeq")
        #expect(bytes == bad)
        guard case .message(let m) = try framer.next() else { Issue.record("expected the good message"); return }
        #expect(m.callID == "y")
    }

    @Test("stream framing: headers that never end are reported, not buffered without bound")
    func unboundedHeaders() throws {
        var framer = SIPStreamFramer(limits: SIPParserLimits(maxHeaderBytes: 1024))
        framer.append(Array("INVITE sip:a@b SIP/2.0\r\n".utf8))
        var threw = false
        for _ in 0..<200 {
            framer.append(Array("X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".utf8))
            do { _ = try framer.next() } catch { threw = true; break }
        }
        #expect(threw)
    }

    @Test("stream framing: a Content-Length over the body limit is reported at once")
    func bodyTooLarge() {
        var framer = SIPStreamFramer(limits: SIPParserLimits(maxBodyBytes: 1000))
        framer.append(Array("MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 5000000\r\n\r\nabc".utf8))
        #expect(throws: SIPStreamFramer.StreamError.self) { try framer.next() }
    }

    @Test("stream framing: a partial body waits for more bytes")
    func partialBody() throws {
        let text = "MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nCall-ID: x\r\nCSeq: 1 MESSAGE\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhel"
        var framer = SIPStreamFramer()
        framer.append(Array(text.utf8))
        #expect(try framer.next() == .needMoreData)
        framer.append(Array("lo".utf8))
        guard case .message(let m) = try framer.next() else { Issue.record("expected a message"); return }
        #expect(m.bodyText == "hello")
    }
}

extension SIPStreamFramer.Next: Equatable {
    public static func == (a: SIPStreamFramer.Next, b: SIPStreamFramer.Next) -> Bool {
        switch (a, b) {
        case (.message(let x), .message(let y)): x == y
        case (.invalid(let x, let a), .invalid(let y, let b)): x == y && a == b
        case (.needMoreData, .needMoreData): true
        default: false
        }
    }
}
