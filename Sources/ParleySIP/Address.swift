/// Parses header parameters: `*( SEMI generic-param )` where generic-param is
/// `token [ EQUAL gen-value ]` and gen-value is a token, a host (IPv6 included) or a quoted string.
/// Values are kept as written (quoted strings keep their quotes).
/// `room`: how many parameters to make room for at the first (a Via's branch, rport and
/// received would grow the list three times); 0 leaves the list exactly as long as it is, for
/// the addresses a dialog keeps for its whole life.
func parseHeaderParameters(_ cur: inout ByteCursor, room: Int = 0) throws(SIPSyntaxError) -> [SIPParameter] {
    var params: [SIPParameter] = []
    while true {
        let save = cur.pos
        cur.skipWS()
        guard cur.consume(ASCII.semicolon) else { cur.pos = save; break }
        cur.skipWS()
        guard let name = cur.token() else { throw SIPSyntaxError("empty parameter") }
        var value: String?
        if cur.separator(ASCII.equals) {
            if cur.peek == ASCII.quote {
                let start = cur.pos
                _ = try cur.quotedString()
                value = cur.string(start..<cur.pos)
            } else if cur.peek == ASCII.lbracket {
                let start = cur.pos
                cur.scan { $0 == ASCII.rbracket }
                guard cur.consume(ASCII.rbracket) else { throw SIPSyntaxError("unterminated IPv6 reference") }
                value = cur.string(start..<cur.pos)
            } else if let v = cur.token() {
                value = cur.string(v)
            } else {
                throw SIPSyntaxError("parameter '\(cur.string(name))' has '=' but no value")
            }
        }
        if params.isEmpty, room > 0 { params.reserveCapacity(room) }
        params.append(SIPParameter(cur.string(name), value))
    }
    return params
}

/// A name-addr or addr-spec with header parameters: the value of From, To, Contact, Route,
/// Record-Route, Path, Reply-To, Refer-To (RFC 3261 section 25.1).
public struct NameAddress: Sendable, Hashable, CustomStringConvertible {
    /// The display name, unescaped (`\"` read as `"`).
    public var displayName: String?
    /// Whether the display name was (or should be written as) a quoted string.
    public var displayNameQuoted: Bool
    public var uri: URI
    /// Header parameters after the address (`tag`, `q`, `expires`, ...), as written.
    public var parameters: [SIPParameter]
    /// Whether the URI was enclosed in `<>` (it always is when written with a display name or
    /// when the URI has parameters or headers).
    public var angleBrackets: Bool

    public init(displayName: String? = nil, uri: URI, parameters: [SIPParameter] = [], angleBrackets: Bool = true) {
        self.displayName = displayName
        self.displayNameQuoted = true
        self.uri = uri
        self.parameters = parameters
        self.angleBrackets = angleBrackets
    }

    public var tag: String? { parameters.value("tag") }

    public var description: String {
        var s = ""
        s.reserveCapacity(96)
        if let displayName {
            if displayNameQuoted { s += "\""; s += quoteEscaped(displayName); s += "\" " } else { s += displayName; s += " " }
        }
        let needsAngle: Bool
        if angleBrackets || displayName != nil {
            needsAngle = true
        } else if case .sip(let u) = uri {
            needsAngle = !u.parameters.isEmpty || !u.headers.isEmpty || u.user.map { $0.contains(";") || $0.contains("?") || $0.contains(",") } == true
        } else {
            needsAngle = uri.description.contains(where: { $0 == ";" || $0 == "," || $0 == "?" })
        }
        if needsAngle { s += "<" }
        uri.write(to: &s)
        if needsAngle { s += ">" }
        parameters.write(to: &s)
        return s
    }

    public static func parse(_ text: String) throws(SIPSyntaxError) -> NameAddress {
        try withBytes(text) { buf throws(SIPSyntaxError) in try parse(bytes: buf) }
    }

    public static func parse(bytes buf: UnsafeBufferPointer<UInt8>) throws(SIPSyntaxError) -> NameAddress {
        var cur = ByteCursor(buf)
        let a = try parse(&cur)
        cur.skipWS()
        guard cur.atEnd else { throw SIPSyntaxError("unexpected text after address") }
        return a
    }

    static func parse(_ cur: inout ByteCursor) throws(SIPSyntaxError) -> NameAddress {
        cur.skipWS()
        var display: String?
        var quoted = false
        if cur.peek == ASCII.quote {
            let r = try cur.quotedString()
            display = unquote(cur.string(r))
            quoted = true
            cur.skipWS()
            guard cur.peek == ASCII.lt else { throw SIPSyntaxError("display name not followed by '<'") }
        } else {
            // Either `*(token LWS) <` (a display name) or an addr-spec. Look for '<' first.
            let start = cur.pos
            var p = start
            while p < cur.end, cur.buf[p] != ASCII.lt, cur.buf[p] != ASCII.semicolon { p += 1 }
            if p < cur.end, cur.buf[p] == ASCII.lt {
                var e = p
                while e > start, ASCII.isWS(cur.buf[e - 1]) { e -= 1 }
                if e > start {
                    for i in start..<e where !(ASCII.isToken(cur.buf[i]) || ASCII.isWS(cur.buf[i])) {
                        throw SIPSyntaxError("display name has characters that need quoting")
                    }
                    display = cur.string(start..<e)
                }
                cur.pos = p
            }
        }
        let uri: URI
        let angle: Bool
        if cur.consume(ASCII.lt) {
            let start = cur.pos
            cur.scan { $0 == ASCII.gt }
            guard cur.pos < cur.end else { throw SIPSyntaxError("missing '>'") }
            var us = start, ue = cur.pos
            // RFC 3261 allows no white space inside the brackets; tolerate none.
            if us < ue, ASCII.isWS(cur.buf[us]) || ASCII.isWS(cur.buf[ue - 1]) {
                throw SIPSyntaxError("white space inside '<>'")
            }
            while us < ue, ASCII.isWS(cur.buf[us]) { us += 1 }
            while ue > us, ASCII.isWS(cur.buf[ue - 1]) { ue -= 1 }
            uri = try URI.parse(cur.buf, us..<ue)
            cur.pos += 1
            angle = true
        } else {
            // addr-spec: the URI runs to the first ';', ',' or white space, and must not contain
            // the characters that force angle brackets (RFC 3261 section 20).
            let start = cur.pos
            cur.scan { $0 == ASCII.semicolon || $0 == ASCII.comma || ASCII.isWS($0) }
            guard cur.pos > start else { throw SIPSyntaxError("missing address") }
            for i in start..<cur.pos where cur.buf[i] == ASCII.question {
                throw SIPSyntaxError("URI with headers must be enclosed in '<>'")
            }
            uri = try URI.parse(cur.buf, start..<cur.pos)
            angle = false
        }
        let params = try parseHeaderParameters(&cur)
        var a = NameAddress(displayName: display, uri: uri, parameters: params, angleBrackets: angle)
        a.displayNameQuoted = quoted
        return a
    }
}

/// One Contact value: an address, or `*` (remove all bindings, RFC 3261 section 10.2.2).
public enum ContactValue: Sendable, Hashable, CustomStringConvertible {
    case wildcard
    case address(NameAddress)

    public var description: String {
        switch self {
        case .wildcard: "*"
        case .address(let a): a.description
        }
    }

    public var address: NameAddress? {
        if case .address(let a) = self { return a }
        return nil
    }

    /// The `q` parameter as a number (RFC 3261 `qvalue`: 0 to 1, three decimals at most).
    public var q: Double? {
        guard let v = address?.parameters.value("q") else { return nil }
        return parseQValue(v)
    }

    /// The `expires` parameter in seconds.
    public var expires: UInt32? {
        guard let v = address?.parameters.value("expires") else { return nil }
        return UInt32(v)
    }
}

/// Parses a qvalue: `( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`.
public func parseQValue(_ text: String) -> Double? {
    let u = Array(text.utf8)
    guard let first = u.first, first == ASCII.zero || first == UInt8(ascii: "1") else { return nil }
    if u.count == 1 { return first == ASCII.zero ? 0 : 1 }
    guard u[1] == UInt8(ascii: "."), u.count <= 5 else { return nil }
    var frac = 0
    var scale = 1000
    for c in u[2...] {
        guard ASCII.isDigit(c) else { return nil }
        scale /= 10
        frac += Int(c - ASCII.zero) * scale
    }
    if first == UInt8(ascii: "1") { return frac == 0 ? 1 : nil }
    return Double(frac) / 1000
}

/// Writes a q-value with at most three decimals (RFC 3261 section 20.10).
public func formatQValue(_ q: Double) -> String {
    let clamped = max(0, min(1, q))
    let thousandths = Int(clamped * 1000 + 0.5)
    if thousandths == 1000 { return "1" }
    if thousandths == 0 { return "0" }
    var digits = String(thousandths)
    while digits.count < 3 { digits = "0" + digits }
    while digits.hasSuffix("0") { digits.removeLast() }
    return "0." + digits
}
