/// How the bytes of a message are framed.
public enum SIPFraming: Sendable {
    /// One message per datagram (UDP): without Content-Length the body is the rest of the
    /// datagram; bytes beyond Content-Length are discarded (RFC 3261 section 18.3).
    case datagram
    /// A byte stream (TCP, TLS): Content-Length frames the body, absent meaning none.
    case stream
}

/// Bounds that keep a hostile peer from making the parser buffer without limit.
public struct SIPParserLimits: Sendable, Equatable {
    /// The longest start line plus headers, in bytes.
    public var maxHeaderBytes: Int
    /// The largest body, in bytes.
    public var maxBodyBytes: Int
    /// The most header lines.
    public var maxHeaderLines: Int

    public init(maxHeaderBytes: Int = 32 * 1024, maxBodyBytes: Int = 1024 * 1024, maxHeaderLines: Int = 256) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxBodyBytes = maxBodyBytes
        self.maxHeaderLines = maxHeaderLines
    }

    public static let `default` = SIPParserLimits()
}

/// The RFC 3261 section 25 parser: start line, headers (folding, compact forms, case-insensitive
/// names), and a body framed by Content-Length; then the checks of `SIPMessage.validate()`.
public enum SIPParser {
    /// Parses one complete message.
    /// - Parameters:
    ///   - validate: also check the typed headers (`SIPMessage.validate()`); on by default.
    ///
    /// Header values are kept as ranges of `bytes` (nothing is copied until a value is changed).
    public static func parse(_ bytes: [UInt8], framing: SIPFraming = .datagram, limits: SIPParserLimits = .default,
                             validate: Bool = true) throws(SIPParseError) -> SIPMessage {
        try bytes.withUnsafeBufferPointer { buf throws(SIPParseError) in
            try parse(storage: bytes, buf, framing: framing, limits: limits, validate: validate)
        }
    }

    public static func parse(_ text: String, framing: SIPFraming = .datagram, limits: SIPParserLimits = .default,
                             validate: Bool = true) throws(SIPParseError) -> SIPMessage {
        try parse(Array(text.utf8), framing: framing, limits: limits, validate: validate)
    }

    /// Parses a message from a buffer the caller owns (its bytes are copied once).
    public static func parse(_ buf: UnsafeBufferPointer<UInt8>, framing: SIPFraming = .datagram,
                             limits: SIPParserLimits = .default, validate: Bool = true) throws(SIPParseError) -> SIPMessage {
        try parse(Array(buf), framing: framing, limits: limits, validate: validate)
    }

    /// `buf` is a view of `storage`'s bytes.
    static func parse(storage: [UInt8], _ buf: UnsafeBufferPointer<UInt8>, framing: SIPFraming,
                      limits: SIPParserLimits, validate: Bool) throws(SIPParseError) -> SIPMessage {
        var start = 0
        // RFC 3261 section 7.5: CRLFs before the start line are ignored.
        while start < buf.count, buf[start] == ASCII.cr || buf[start] == ASCII.lf { start += 1 }
        guard start < buf.count else { throw SIPParseError("empty message", disposition: .drop) }
        var found = findHeaderEnd(buf, from: start, limit: limits.maxHeaderBytes)
        if found == nil, framing == .datagram, buf.count - start <= limits.maxHeaderBytes, buf[buf.count - 1] == ASCII.lf {
            // A datagram is a whole message: its end closes the headers even without the empty line.
            found = HeadEnd(headersEnd: buf.count, bodyStart: buf.count)
        }
        guard let headEnd = found else {
            if buf.count - start > limits.maxHeaderBytes {
                throw SIPParseError("headers larger than \(limits.maxHeaderBytes) bytes")
            }
            throw SIPParseError("message ends before the empty line that closes the headers")
        }
        var message = try parseHead(storage: storage, buf, start..<headEnd.headersEnd, limits: limits)
        let available = buf.count - headEnd.bodyStart
        let declared: Int?
        do { declared = try message.contentLength() } catch {
            throw SIPParseError(error.message, header: "Content-Length", line: nil, disposition: message.isRequest ? .respond(400) : .drop)
        }
        let bodyLength: Int
        switch (framing, declared) {
        case (_, let n?):
            guard n <= limits.maxBodyBytes else {
                throw SIPParseError("body of \(n) bytes is over the limit of \(limits.maxBodyBytes)", header: "Content-Length",
                                    disposition: message.isRequest ? .respond(413) : .drop)
            }
            guard n <= available else {
                throw SIPParseError("Content-Length \(n) is larger than the \(available) bytes of body", header: "Content-Length",
                                    disposition: message.isRequest ? .respond(400) : .drop)
            }
            bodyLength = n
        case (.datagram, nil):
            bodyLength = available
        case (.stream, nil):
            bodyLength = 0
        }
        if bodyLength > 0 {
            message.body = Array(UnsafeBufferPointer(rebasing: buf[headEnd.bodyStart..<(headEnd.bodyStart + bodyLength)]))
        }
        if validate { try message.validateAndCache() }
        return message
    }

    struct HeadEnd {
        var headersEnd: Int  // index of the first byte of the empty line
        var bodyStart: Int
    }

    /// Finds the empty line closing the headers (CRLF CRLF, or bare LF line ends).
    static func findHeaderEnd(_ buf: UnsafeBufferPointer<UInt8>, from: Int, limit: Int) -> HeadEnd? {
        let stop = min(buf.count, from + limit + 4)
        var i = indexOf(ASCII.lf, buf, from: from, to: stop)
        while i < stop {
            // Is the next line empty?
            var j = i + 1
            if j < buf.count, buf[j] == ASCII.cr { j += 1 }
            if j < buf.count, buf[j] == ASCII.lf {
                return HeadEnd(headersEnd: i + 1, bodyStart: j + 1)
            }
            i = indexOf(ASCII.lf, buf, from: i + 1, to: stop)
        }
        return nil
    }

    /// Parses the start line and header lines in `r` (which ends just after the last header's LF).
    static func parseHead(storage: [UInt8], _ buf: UnsafeBufferPointer<UInt8>, _ r: Range<Int>, limits: SIPParserLimits) throws(SIPParseError) -> SIPMessage {
        // Start line.
        let lineEnd = indexOf(ASCII.lf, buf, from: r.lowerBound, to: r.upperBound)
        var sl = r.lowerBound..<lineEnd
        if !sl.isEmpty, buf[sl.upperBound - 1] == ASCII.cr { sl = sl.lowerBound..<(sl.upperBound - 1) }
        let startLine = try parseStartLine(buf, sl)
        // Written back byte for byte until the start line is changed.
        let raw = ValueBytes(storage: storage, range: sl)
        let isRequest: Bool = if case .request = startLine { true } else { false }

        var headers = SIPHeaders()
        headers.reserveCapacity(16)
        var i = lineEnd + 1
        var lineNumber = 1
        // Folded continuation lines are gathered into `pending` before the header is stored.
        var pendingName: Range<Int>? = nil
        var pendingKnown: KnownHeader? = nil
        var pendingCanonical = false
        var pendingValue: Range<Int> = 0..<0
        var folded: [UInt8]? = nil

        func flush() throws(SIPParseError) {
            guard let name = pendingName else { return }
            let value: ValueBytes
            if var f = folded {
                while let l = f.last, ASCII.isWS(l) { f.removeLast() }
                value = ValueBytes(storage: f, range: 0..<f.count)
            } else {
                value = ValueBytes(storage: storage, range: pendingValue)
            }
            // A name written in its canonical spelling reuses the static string.
            let nameString: String
            if let k = pendingKnown, pendingCanonical { nameString = k.canonicalName } else { nameString = makeString(buf, name) }
            headers.append(SIPHeader(name: nameString, bytes: value, known: pendingKnown))
            guard headers.count <= limits.maxHeaderLines else {
                throw SIPParseError("more than \(limits.maxHeaderLines) header lines", line: lineNumber,
                                    disposition: isRequest ? .respond(400) : .drop)
            }
            pendingName = nil
            folded = nil
        }

        while i < r.upperBound {
            lineNumber += 1
            let e = indexOf(ASCII.lf, buf, from: i, to: r.upperBound)
            var le = e
            if le > i, buf[le - 1] == ASCII.cr { le -= 1 }
            defer { i = e + 1 }
            if le == i { continue }  // cannot happen before the end: the empty line closes the headers
            if ASCII.isWS(buf[i]) {
                // Continuation (RFC 3261 section 7.3.1): the fold counts as one SP.
                guard pendingName != nil else {
                    throw SIPParseError("continuation line before any header", line: lineNumber, disposition: isRequest ? .respond(400) : .drop)
                }
                var a = i
                while a < le, ASCII.isWS(buf[a]) { a += 1 }
                var b = le
                while b > a, ASCII.isWS(buf[b - 1]) { b -= 1 }
                if folded == nil { folded = Array(UnsafeBufferPointer(rebasing: buf[pendingValue])) }
                if a < b {
                    if let last = folded!.last, !ASCII.isWS(last), !folded!.isEmpty { folded!.append(ASCII.sp) }
                    folded!.append(contentsOf: UnsafeBufferPointer(rebasing: buf[a..<b]))
                }
                continue
            }
            try flush()
            var n = i
            while n < le, ASCII.isToken(buf[n]) { n += 1 }
            guard n > i else {
                throw SIPParseError("header line does not start with a name", line: lineNumber, disposition: isRequest ? .respond(400) : .drop)
            }
            var c = n
            while c < le, ASCII.isWS(buf[c]) { c += 1 }
            guard c < le, buf[c] == ASCII.colon else {
                throw SIPParseError("header '\(makeString(buf, i..<n))' has no ':'", line: lineNumber, disposition: isRequest ? .respond(400) : .drop)
            }
            var a = c + 1
            while a < le, ASCII.isWS(buf[a]) { a += 1 }
            var b = le
            while b > a, ASCII.isWS(buf[b - 1]) { b -= 1 }
            pendingName = i..<n
            (pendingKnown, pendingCanonical) = KnownHeader.lookupName(buf, i..<n)
            pendingValue = a..<b
        }
        try flush()
        var message = SIPMessage(startLine: startLine, headers: headers)
        message.rawStartLine = raw
        return message
    }

    /// Finds the Content-Length in a head without parsing the rest (for stream framing).
    /// Folded Content-Length values are not expected; a fold makes the value unreadable.
    static func contentLength(inHead buf: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) throws(SIPSyntaxError) -> Int? {
        var i = indexOf(ASCII.lf, buf, from: r.lowerBound, to: r.upperBound) + 1
        var found: Int?
        while i < r.upperBound {
            let e = indexOf(ASCII.lf, buf, from: i, to: r.upperBound)
            var n = i
            while n < e, ASCII.isToken(buf[n]) { n += 1 }
            if n > i, KnownHeader.lookup(buf, i..<n) == .contentLength {
                var c = n
                while c < e, ASCII.isWS(buf[c]) { c += 1 }
                guard c < e, buf[c] == ASCII.colon else { throw SIPSyntaxError("no ':' after Content-Length") }
                var b = e
                if b > c, buf[b - 1] == ASCII.cr { b -= 1 }
                let v = Int(try parseDecimal(bytes: UnsafeBufferPointer(rebasing: buf[(c + 1)..<b]), max: UInt64(Int32.max), what: "Content-Length"))
                if let f = found, f != v { throw SIPSyntaxError("several different Content-Length values") }
                found = v
            }
            i = e + 1
        }
        return found
    }

    static func parseStartLine(_ buf: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) throws(SIPParseError) -> SIPStartLine {
        guard !r.isEmpty else { throw SIPParseError("empty start line", line: 1, disposition: .drop) }
        // Split at single spaces; RFC 3261 section 25.1 allows exactly one SP between elements.
        if r.count >= 4, ASCII.lower(buf[r.lowerBound]) == UInt8(ascii: "s"), ASCII.lower(buf[r.lowerBound + 1]) == UInt8(ascii: "i"),
           ASCII.lower(buf[r.lowerBound + 2]) == UInt8(ascii: "p"), buf[r.lowerBound + 3] == ASCII.slash {
            // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
            guard let sp1 = r.first(where: { buf[$0] == ASCII.sp }) else {
                throw SIPParseError("status line has no status code", line: 1, disposition: .drop)
            }
            let version = try parseVersion(buf, r.lowerBound..<sp1, disposition: .drop)
            var codeEnd = sp1 + 1
            while codeEnd < r.upperBound, buf[codeEnd] != ASCII.sp { codeEnd += 1 }
            let codeRange = (sp1 + 1)..<codeEnd
            guard codeRange.count == 3, codeRange.allSatisfy({ ASCII.isDigit(buf[$0]) }) else {
                throw SIPParseError("status code '\(makeString(buf, codeRange))' is not three digits", line: 1, disposition: .drop)
            }
            let code = codeRange.reduce(0) { $0 * 10 + Int(buf[$1] - ASCII.zero) }
            guard code >= 100 && code <= 699 else {
                throw SIPParseError("status code \(code) out of range", line: 1, disposition: .drop)
            }
            let reason = codeEnd < r.upperBound ? makeString(buf, (codeEnd + 1)..<r.upperBound) : ""
            for i in codeEnd..<r.upperBound where buf[i] < ASCII.sp && buf[i] != ASCII.ht {
                throw SIPParseError("control character in reason phrase", line: 1, disposition: .drop)
            }
            return .response(version: version, code: code, reason: reason)
        }
        // Request-Line = Method SP Request-URI SP SIP-Version, exactly one SP between elements.
        let sp1 = indexOf(ASCII.sp, buf, from: r.lowerBound, to: r.upperBound)
        let sp2 = indexOf(ASCII.sp, buf, from: min(sp1 + 1, r.upperBound), to: r.upperBound)
        let m = r.lowerBound..<sp1
        let u = min(sp1 + 1, sp2)..<sp2
        let v = min(sp2 + 1, r.upperBound)..<r.upperBound
        if m.isEmpty || u.isEmpty || v.isEmpty || indexOf(ASCII.sp, buf, from: v.lowerBound, to: v.upperBound) != v.upperBound
            || indexOf(ASCII.ht, buf, from: r.lowerBound, to: r.upperBound) != r.upperBound {
            var fields = 0, empty = false
            var s = r.lowerBound
            for i in r where buf[i] == ASCII.sp || buf[i] == ASCII.ht {
                fields += 1
                if i == s { empty = true }
                s = i + 1
            }
            fields += 1
            if s == r.upperBound { empty = true }
            let detail = empty ? "extra white space in request line"
                : fields > 3 ? "white space inside the Request-URI" : "request line must be 'METHOD URI SIP/2.0'"
            throw SIPParseError(detail, line: 1)
        }
        for i in m where !ASCII.isToken(buf[i]) {
            throw SIPParseError("method is not a token", line: 1)
        }
        let version = try parseVersion(buf, v, disposition: .respond(400))
        let uri: URI
        do { uri = try URI.parse(buf, u) } catch {
            throw SIPParseError("Request-URI: \(error.message)", line: 1)
        }
        return .request(method: SIPMethod.known(buf, m) ?? SIPMethod(makeString(buf, m)), uri: uri, version: version)
    }

    static func parseVersion(_ buf: UnsafeBufferPointer<UInt8>, _ r: Range<Int>, disposition: SIPParseError.Disposition) throws(SIPParseError) -> String {
        // SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT
        if bytesEqual(buf, r, "SIP/2.0") { return "SIP/2.0" }
        let bad = SIPParseError("invalid SIP version '\(makeString(buf, r))'", line: 1, disposition: disposition)
        guard r.count >= 7, ASCII.lower(buf[r.lowerBound]) == UInt8(ascii: "s"), ASCII.lower(buf[r.lowerBound + 1]) == UInt8(ascii: "i"),
              ASCII.lower(buf[r.lowerBound + 2]) == UInt8(ascii: "p"), buf[r.lowerBound + 3] == ASCII.slash else { throw bad }
        let rest = (r.lowerBound + 4)..<r.upperBound
        guard let dot = rest.first(where: { buf[$0] == UInt8(ascii: ".") }), dot > rest.lowerBound, dot + 1 < rest.upperBound,
              (rest.lowerBound..<dot).allSatisfy({ ASCII.isDigit(buf[$0]) }),
              ((dot + 1)..<rest.upperBound).allSatisfy({ ASCII.isDigit(buf[$0]) }) else { throw bad }
        return makeString(buf, r)
    }
}
