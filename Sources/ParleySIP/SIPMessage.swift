/// A SIP method. Methods are case-sensitive (RFC 3261 section 7.1); any token is a method.
public struct SIPMethod: Sendable, Hashable, RawRepresentable, CustomStringConvertible, ExpressibleByStringLiteral {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }
    public var description: String { rawValue }

    /// The common methods, matched from bytes without making a new string.
    static func known(_ buf: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) -> SIPMethod? {
        switch r.count {
        case 3: if bytesEqual(buf, r, "ACK") { return .ack }; if bytesEqual(buf, r, "BYE") { return .bye }
        case 4: if bytesEqual(buf, r, "INFO") { return .info }
        case 5: if bytesEqual(buf, r, "PRACK") { return .prack }; if bytesEqual(buf, r, "REFER") { return .refer }
        case 6: if bytesEqual(buf, r, "INVITE") { return .invite }; if bytesEqual(buf, r, "CANCEL") { return .cancel }
            if bytesEqual(buf, r, "UPDATE") { return .update }; if bytesEqual(buf, r, "NOTIFY") { return .notify }
        case 7: if bytesEqual(buf, r, "OPTIONS") { return .options }; if bytesEqual(buf, r, "MESSAGE") { return .message }
            if bytesEqual(buf, r, "PUBLISH") { return .publish }
        case 8: if bytesEqual(buf, r, "REGISTER") { return .register }
        case 9: if bytesEqual(buf, r, "SUBSCRIBE") { return .subscribe }
        default: break
        }
        return nil
    }

    public static let invite = SIPMethod("INVITE")
    public static let ack = SIPMethod("ACK")
    public static let bye = SIPMethod("BYE")
    public static let cancel = SIPMethod("CANCEL")
    public static let options = SIPMethod("OPTIONS")
    public static let register = SIPMethod("REGISTER")
    public static let message = SIPMethod("MESSAGE")
    public static let info = SIPMethod("INFO")
    public static let update = SIPMethod("UPDATE")
    public static let prack = SIPMethod("PRACK")
    public static let subscribe = SIPMethod("SUBSCRIBE")
    public static let notify = SIPMethod("NOTIFY")
    public static let refer = SIPMethod("REFER")
    public static let publish = SIPMethod("PUBLISH")
}

/// The first line of a message.
public enum SIPStartLine: Sendable, Equatable {
    case request(method: SIPMethod, uri: URI, version: String)
    case response(version: String, code: Int, reason: String)
}

/// A SIP request or response: start line, headers in order, and body bytes.
///
/// A small copy-on-write value: the message is one reference to storage that copies share, so
/// handing a message through transactions, actions and loops copies one pointer. The first
/// change to a copy that shares its storage copies the storage (its fields, not their bytes:
/// header values stay views of the same buffers).
public struct SIPMessage: Sendable, Equatable {
    /// What a message holds. Changed only through a message that holds the one reference to it.
    ///
    /// Its fields skip the runtime's exclusivity checks: the static checks on the message that
    /// owns it already rule out overlapping access, since a field is changed only through
    /// `owned()`, by the one message that holds the storage.
    final class Storage: @unchecked Sendable {
        @exclusivity(unchecked) var startLine: SIPStartLine
        @exclusivity(unchecked) var headers: SIPHeaders
        @exclusivity(unchecked) var body: [UInt8]
        /// The start line as received, written back as it was until the start line changes.
        @exclusivity(unchecked) var rawStartLine: ValueBytes?
        /// Typed headers parsed by validation; dropped when the headers change.
        @exclusivity(unchecked) var parsed: ParsedHeaders?

        init(startLine: SIPStartLine, headers: SIPHeaders, body: [UInt8], rawStartLine: ValueBytes? = nil, parsed: ParsedHeaders? = nil) {
            self.startLine = startLine
            self.headers = headers
            self.body = body
            self.rawStartLine = rawStartLine
            self.parsed = parsed
        }

        func copy() -> Storage {
            Storage(startLine: startLine, headers: headers, body: body, rawStartLine: rawStartLine, parsed: parsed)
        }
    }

    private var storage: Storage

    /// The storage, made this message's own first if a copy shares it.
    private mutating func owned() -> Storage {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
        return storage
    }

    public var startLine: SIPStartLine {
        _read { yield storage.startLine }
        set {
            let s = owned()
            s.startLine = newValue
            s.rawStartLine = nil
        }
    }

    public var headers: SIPHeaders {
        _read { yield storage.headers }
        _modify {
            let s = owned()
            yield &s.headers
            s.parsed = nil
        }
        set {
            let s = owned()
            s.headers = newValue
            s.parsed = nil
        }
    }

    public var body: [UInt8] {
        _read { yield storage.body }
        _modify {
            let s = owned()
            yield &s.body
        }
        set { owned().body = newValue }
    }

    /// The start line as received, written back as it was until the start line changes.
    var rawStartLine: ValueBytes? {
        get { storage.rawStartLine }
        set { owned().rawStartLine = newValue }
    }

    /// Typed headers parsed by validation; dropped when the headers change.
    var parsed: ParsedHeaders? {
        get { storage.parsed }
        set { owned().parsed = newValue }
    }

    public init(startLine: SIPStartLine, headers: SIPHeaders = SIPHeaders(), body: [UInt8] = []) {
        storage = Storage(startLine: startLine, headers: headers, body: body)
    }

    public static func == (a: SIPMessage, b: SIPMessage) -> Bool {
        a.startLine == b.startLine && a.headers == b.headers && a.body == b.body
    }

    /// A new request with the given headers.
    public static func request(_ method: SIPMethod, _ uri: URI, headers: SIPHeaders = SIPHeaders(), body: [UInt8] = []) -> SIPMessage {
        SIPMessage(startLine: .request(method: method, uri: uri, version: "SIP/2.0"), headers: headers, body: body)
    }

    /// A new response with the given headers.
    public static func response(_ code: Int, _ reason: String? = nil, headers: SIPHeaders = SIPHeaders(), body: [UInt8] = []) -> SIPMessage {
        SIPMessage(startLine: .response(version: "SIP/2.0", code: code, reason: reason ?? SIPMessage.defaultReason(code)),
                   headers: headers, body: body)
    }

    public var isRequest: Bool {
        if case .request = startLine { return true }
        return false
    }

    public var method: SIPMethod? {
        if case .request(let m, _, _) = startLine { return m }
        return nil
    }

    public var requestURI: URI? {
        get {
            if case .request(_, let u, _) = startLine { return u }
            return nil
        }
        set {
            if case .request(let m, _, let v) = startLine, let newValue { startLine = .request(method: m, uri: newValue, version: v) }
        }
    }

    public var statusCode: Int? {
        if case .response(_, let c, _) = startLine { return c }
        return nil
    }

    public var reasonPhrase: String? {
        if case .response(_, _, let r) = startLine { return r }
        return nil
    }

    public var version: String {
        switch startLine {
        case .request(_, _, let v), .response(let v, _, _): v
        }
    }

    /// The body as text (UTF-8, invalid bytes replaced).
    public var bodyText: String { String(decoding: body, as: UTF8.self) }

    /// Sets Content-Length to the body's size.
    public mutating func updateContentLength() {
        headers.set(HeaderName(.contentLength), String(body.count))
    }

    /// The same message with every known header written under its full canonical name.
    public func canonicalized() -> SIPMessage {
        var m = self
        for i in 0..<m.headers.count {
            if let k = m.headers[i].known, m.headers[i].name != k.canonicalName { m.headers[i].name = k.canonicalName }
        }
        return m
    }

    /// A reason phrase for the common status codes.
    public static func defaultReason(_ code: Int) -> String {
        switch code {
        case 100: "Trying"
        case 180: "Ringing"
        case 181: "Call Is Being Forwarded"
        case 182: "Queued"
        case 183: "Session Progress"
        case 200: "OK"
        case 202: "Accepted"
        case 301: "Moved Permanently"
        case 302: "Moved Temporarily"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 406: "Not Acceptable"
        case 407: "Proxy Authentication Required"
        case 408: "Request Timeout"
        case 415: "Unsupported Media Type"
        case 416: "Unsupported URI Scheme"
        case 420: "Bad Extension"
        case 423: "Interval Too Brief"
        case 480: "Temporarily Unavailable"
        case 481: "Call/Transaction Does Not Exist"
        case 482: "Loop Detected"
        case 483: "Too Many Hops"
        case 484: "Address Incomplete"
        case 486: "Busy Here"
        case 487: "Request Terminated"
        case 488: "Not Acceptable Here"
        case 491: "Request Pending"
        case 500: "Server Internal Error"
        case 501: "Not Implemented"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Server Time-out"
        case 505: "Version Not Supported"
        case 513: "Message Too Large"
        case 600: "Busy Everywhere"
        case 603: "Decline"
        case 604: "Does Not Exist Anywhere"
        case 606: "Not Acceptable"
        default: "Unknown"
        }
    }
}

/// CSeq: sequence number and method (RFC 3261 section 20.16).
public struct CSeq: Sendable, Hashable, CustomStringConvertible {
    public var sequence: UInt32
    public var method: SIPMethod
    public init(_ sequence: UInt32, _ method: SIPMethod) {
        self.sequence = sequence
        self.method = method
    }
    public var description: String { "\(sequence) \(method.rawValue)" }

    public static func parse(_ text: String) throws(SIPSyntaxError) -> CSeq {
        try withBytes(text) { buf throws(SIPSyntaxError) in try parse(bytes: buf) }
    }

    public static func parse(bytes buf: UnsafeBufferPointer<UInt8>) throws(SIPSyntaxError) -> CSeq {
        do {
            var cur = ByteCursor(buf)
            cur.skipWS()
            let ds = cur.pos
            while let c = cur.peek, ASCII.isDigit(c) { cur.pos += 1 }
            guard cur.pos > ds else { throw SIPSyntaxError("missing sequence number") }
            let n = try parseUInt32(buf, ds..<cur.pos, what: "sequence number")
            let ws = cur.pos
            cur.skipWS()
            guard cur.pos > ws, let m = cur.token() else { throw SIPSyntaxError("missing method") }
            cur.skipWS()
            guard cur.atEnd else { throw SIPSyntaxError("unexpected text after method") }
            return CSeq(n, SIPMethod.known(buf, m) ?? SIPMethod(cur.string(m)))
        }
    }
}

/// A media type such as `application/sdp; charset=utf-8` (RFC 3261 section 20.15).
public struct MediaType: Sendable, Hashable, CustomStringConvertible {
    public var type: String
    public var subtype: String
    public var parameters: [SIPParameter]
    public init(type: String, subtype: String, parameters: [SIPParameter] = []) {
        self.type = type
        self.subtype = subtype
        self.parameters = parameters
    }
    /// `type/subtype` lower-cased, for comparisons.
    public var essence: String { (type + "/" + subtype).lowercased() }
    public var description: String {
        var s = type + "/" + subtype
        parameters.write(to: &s)
        return s
    }

    public static func parse(_ text: String) throws(SIPSyntaxError) -> MediaType {
        try withBytes(text) { buf throws(SIPSyntaxError) in try parse(bytes: buf) }
    }

    public static func parse(bytes buf: UnsafeBufferPointer<UInt8>) throws(SIPSyntaxError) -> MediaType {
        do {
            var cur = ByteCursor(buf)
            cur.skipWS()
            guard let t = cur.token() else { throw SIPSyntaxError("missing media type") }
            guard cur.separator(ASCII.slash), let s = cur.token() else { throw SIPSyntaxError("missing media subtype") }
            let params = try parseHeaderParameters(&cur)
            cur.skipWS()
            guard cur.atEnd else { throw SIPSyntaxError("unexpected text in media type") }
            return MediaType(type: cur.string(t), subtype: cur.string(s), parameters: params)
        }
    }
}

func parseUInt32(_ buf: UnsafeBufferPointer<UInt8>, _ r: Range<Int>, what: String) throws(SIPSyntaxError) -> UInt32 {
    var v: UInt64 = 0
    for i in r {
        guard ASCII.isDigit(buf[i]) else { throw SIPSyntaxError("\(what) is not a number") }
        v = v * 10 + UInt64(buf[i] - ASCII.zero)
        guard v <= UInt64(UInt32.max) else { throw SIPSyntaxError("\(what) too large") }
    }
    return UInt32(v)
}

/// Parses `1*DIGIT` (leading zeros allowed) with an upper bound.
public func parseDecimal(_ text: String, max: UInt64, what: String) throws(SIPSyntaxError) -> UInt64 {
    try withBytes(text) { buf throws(SIPSyntaxError) in try parseDecimal(bytes: buf, max: max, what: what) }
}

/// Parses `1*DIGIT` (leading zeros allowed, white space around ignored) with an upper bound.
public func parseDecimal(bytes buf: UnsafeBufferPointer<UInt8>, max: UInt64, what: String) throws(SIPSyntaxError) -> UInt64 {
    do {
        var a = 0, b = buf.count
        while a < b, ASCII.isWS(buf[a]) { a += 1 }
        while b > a, ASCII.isWS(buf[b - 1]) { b -= 1 }
        guard b > a else { throw SIPSyntaxError("\(what) is empty") }
        var v: UInt64 = 0
        for i in a..<b {
            guard ASCII.isDigit(buf[i]) else { throw SIPSyntaxError("\(what) is not a number") }
            v = v &* 10 &+ UInt64(buf[i] - ASCII.zero)
            guard v <= max else { throw SIPSyntaxError("\(what) is larger than \(max)") }
        }
        return v
    }
}

// MARK: - Typed access

extension SIPMessage {
    private func typed<T>(_ known: KnownHeader, _ parse: (UnsafeBufferPointer<UInt8>) throws(SIPSyntaxError) -> T) throws(SIPParseError) -> T? {
        guard let i = headers.firstIndex(known) else { return nil }
        do { return try headers[i].withValueBytes(parse) } catch { throw SIPParseError(error.message, header: known.canonicalName) }
    }

    private func typedList<T>(_ known: KnownHeader, _ parse: (UnsafeBufferPointer<UInt8>) throws(SIPSyntaxError) -> [T]) throws(SIPParseError) -> [T] {
        var out: [T] = []
        for i in 0..<headers.count where headers[i].known == known {
            do { out += try headers[i].withValueBytes(parse) } catch { throw SIPParseError(error.message, header: known.canonicalName) }
        }
        return out
    }

    /// Writes `via` in place of the top Via value (a transport stamping `received`/`rport`, RFC
    /// 3261 18.2.1, RFC 3581 4). The typed headers validation parsed stay, the top Via changed
    /// in them too: any other header edit drops them all, and every later read of From, To,
    /// CSeq or Contact would parse its header again.
    public mutating func replaceTopVia(_ via: Via) {
        let kept = parsed
        headers.removeFirstElement(HeaderName(.via))
        headers.prepend(HeaderName(.via), via.description)
        parsed = kept?.with(topVia: via)
    }

    /// Whether validation's typed headers are still with the message (for tests).
    public var keepsParsedHeaders: Bool { parsed != nil }

    /// Every Via value, top first.
    public func vias() throws(SIPParseError) -> [Via] {
        if let p = parsed { return p.vias }
        return try typedList(.via) { b throws(SIPSyntaxError) in try Via.parseList(bytes: b) }
    }

    /// The top Via.
    public func topVia() throws(SIPParseError) -> Via? {
        if let p = parsed { return p.vias.first }
        return try typed(.via) { b throws(SIPSyntaxError) in try Via.parseFirst(bytes: b) }
    }

    /// The Via at position `n` (0 is the top), the Via lines read only as far as it.
    public func via(at n: Int) throws(SIPParseError) -> Via? {
        if let p = parsed { return n < p.vias.count ? p.vias[n] : nil }
        var seen = 0
        for i in 0..<headers.count where headers[i].known == .via {
            let found: Via?
            do {
                found = try headers[i].withValueBytes { buf throws(SIPSyntaxError) -> Via? in
                    var hit: Via?
                    try ListParser.walk(buf, what: "Via value", element: { cur throws(SIPSyntaxError) in try Via.parse(&cur) }) { via in
                        if seen == n { hit = via; return false }
                        seen += 1
                        return true
                    }
                    return hit
                }
            } catch { throw SIPParseError(error.message, header: KnownHeader.via.canonicalName) }
            if let found { return found }
        }
        return nil
    }

    public func from() throws(SIPParseError) -> NameAddress? {
        if let p = parsed { return p.from }
        return try typed(.from) { b throws(SIPSyntaxError) in try NameAddress.parse(bytes: b) }
    }
    public func to() throws(SIPParseError) -> NameAddress? {
        if let p = parsed { return p.to }
        return try typed(.to) { b throws(SIPSyntaxError) in try NameAddress.parse(bytes: b) }
    }
    public var callID: String? { headers.value(.callID) }
    public func cseq() throws(SIPParseError) -> CSeq? {
        if let p = parsed { return p.cseq }
        return try typed(.cseq) { b throws(SIPSyntaxError) in try CSeq.parse(bytes: b) }
    }

    public func maxForwards() throws(SIPParseError) -> Int? {
        if let p = parsed { return p.maxForwards }
        return try typed(.maxForwards) { v throws(SIPSyntaxError) in Int(try parseDecimal(bytes: v, max: 255, what: "value")) }
    }

    public func contentLength() throws(SIPParseError) -> Int? {
        try typed(.contentLength) { v throws(SIPSyntaxError) in Int(try parseDecimal(bytes: v, max: UInt64(Int32.max), what: "value")) }
    }

    public func expires() throws(SIPParseError) -> UInt32? {
        try typed(.expires) { v throws(SIPSyntaxError) in UInt32(try parseDecimal(bytes: v, max: UInt64(UInt32.max), what: "value")) }
    }

    public func contentType() throws(SIPParseError) -> MediaType? { try typed(.contentType) { b throws(SIPSyntaxError) in try MediaType.parse(bytes: b) } }

    public func contacts() throws(SIPParseError) -> [ContactValue] {
        if let p = parsed { return p.contacts }
        return try typedList(.contact) { b throws(SIPSyntaxError) in try ContactValue.parseList(bytes: b) }
    }

    public func routes() throws(SIPParseError) -> [NameAddress] {
        if let p = parsed { return p.routes }
        return try typedList(.route) { b throws(SIPSyntaxError) in try NameAddress.parseList(bytes: b) }
    }
    public func recordRoutes() throws(SIPParseError) -> [NameAddress] {
        if let p = parsed { return p.recordRoutes }
        return try typedList(.recordRoute) { b throws(SIPSyntaxError) in try NameAddress.parseList(bytes: b) }
    }
    public func paths() throws(SIPParseError) -> [NameAddress] { try typedList(.path) { b throws(SIPSyntaxError) in try NameAddress.parseList(bytes: b) } }

    /// Option tags of Require, Supported or Proxy-Require.
    public func optionTags(_ known: KnownHeader) -> [String] {
        headers.lines.filter { $0.known == known }.flatMap { splitList($0.value) }
    }
}

extension SIPMessage {
    /// The headers a finished transaction may still need of its message: matching (Via, From,
    /// To, Call-ID, CSeq), the ACK or CANCEL built from a request (Route), and a response built
    /// from one (Record-Route, Contact, Timestamp).
    static func keptWhenCompacted(_ known: KnownHeader?) -> Bool {
        switch known {
        case .via, .from, .to, .callID, .cseq, .route, .recordRoute, .contact, .timestamp: true
        default: false
        }
    }

    /// A copy that keeps the start line and those headers only, in their order and as written,
    /// in one buffer of their own; no body, no typed headers. A message that was received
    /// holds the whole datagram (every header value is a view into it) and the typed headers
    /// validation parsed: a transaction that outlives its call set-up by 32 s (Timers L, M, H, D)
    /// keeps this copy instead, so the set-up's large, short-lived blocks are freed at once
    /// rather than 32 s later between the calls' own allocations.
    public func compacted() -> SIPMessage { copy(keeping: Self.keptWhenCompacted, body: []) }

    /// A copy of the whole message (every header and the body) in buffers of its own, for a
    /// transaction that keeps a response to send again: a response built from a received
    /// request shares the request's datagram until then.
    public func detached() -> SIPMessage { copy(keeping: { _ in true }, body: body) }

    private func copy(keeping keep: (KnownHeader?) -> Bool, body: [UInt8]) -> SIPMessage {
        var total = 0, count = 0
        for line in headers.lines where keep(line.known) {
            total += line.bytes.count
            count += 1
        }
        var storage: [UInt8] = []
        storage.reserveCapacity(total)
        for line in headers.lines where keep(line.known) { line.withValueBytes { storage.append(contentsOf: $0) } }
        var lines: [SIPHeader] = []
        lines.reserveCapacity(count)
        var offset = 0
        for line in headers.lines where keep(line.known) {
            let n = line.bytes.count
            lines.append(SIPHeader(name: line.name, bytes: ValueBytes(storage: storage, range: offset..<offset + n), known: line.known))
            offset += n
        }
        return SIPMessage(startLine: startLine, headers: SIPHeaders(lines), body: body)
    }
}
