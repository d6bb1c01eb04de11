/// A `name[=value]` parameter of a URI or a header, kept as written (escapes and quotes intact).
public struct SIPParameter: Sendable, Hashable {
    public var name: String
    public var value: String?
    public init(_ name: String, _ value: String? = nil) {
        self.name = name
        self.value = value
    }
}

extension Array where Element == SIPParameter {
    /// The first parameter with this name (case-insensitive). A parameter without a value gives "".
    public func value(_ name: String) -> String? {
        for p in self where asciiCaseInsensitiveEquals(p.name, name) { return p.value ?? "" }
        return nil
    }

    public func has(_ name: String) -> Bool { value(name) != nil }

    /// Sets (or adds) a parameter, keeping its place if it already exists.
    public mutating func set(_ name: String, _ value: String?) {
        if let i = firstIndex(where: { asciiCaseInsensitiveEquals($0.name, name) }) {
            self[i].value = value
        } else {
            append(SIPParameter(name, value))
        }
    }

    public mutating func remove(_ name: String) {
        removeAll { asciiCaseInsensitiveEquals($0.name, name) }
    }

    func write(to out: inout String, separator: Character = ";") {
        for p in self {
            out.append(separator)
            out += p.name
            if let v = p.value { out += "="; out += v }
        }
    }
}

/// The host part of a URI or a Via sent-by.
public enum SIPHost: Sendable, Hashable, CustomStringConvertible {
    case name(String)
    case ipv4(String)
    /// An IPv6 address without its brackets.
    case ipv6(String)

    /// As written in a URI (IPv6 in brackets).
    public var description: String {
        switch self {
        case .name(let s), .ipv4(let s): s
        case .ipv6(let s): "[\(s)]"
        }
    }

    /// The address or name without brackets, as a socket layer wants it.
    public var address: String {
        switch self {
        case .name(let s), .ipv4(let s), .ipv6(let s): s
        }
    }

    /// Parses a host: `[IPv6]`, dotted IPv4, or a host name.
    static func parse(_ buf: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) throws(SIPSyntaxError) -> SIPHost {
        guard !r.isEmpty else { throw SIPSyntaxError("empty host") }
        if buf[r.lowerBound] == ASCII.lbracket {
            guard r.count > 2, buf[r.upperBound - 1] == ASCII.rbracket else {
                throw SIPSyntaxError("unterminated IPv6 reference")
            }
            let inner = (r.lowerBound + 1)..<(r.upperBound - 1)
            var colons = 0
            for i in inner {
                let c = buf[i]
                if c == ASCII.colon { colons += 1; continue }
                guard ASCII.isHex(c) || c == UInt8(ascii: ".") else {
                    throw SIPSyntaxError("invalid character in IPv6 reference")
                }
            }
            guard colons >= 2 else { throw SIPSyntaxError("invalid IPv6 reference") }
            return .ipv6(makeString(buf, inner))
        }
        var allDigitsOrDots = true
        var dots = 0
        for i in r {
            let c = buf[i]
            if c == UInt8(ascii: ".") { dots += 1; continue }
            if ASCII.isDigit(c) { continue }
            allDigitsOrDots = false
            guard ASCII.isAlpha(c) || c == UInt8(ascii: "-") else {
                throw SIPSyntaxError("invalid character '\(Character(Unicode.Scalar(c)))' in host")
            }
        }
        if allDigitsOrDots && dots == 3 {
            var part = 0, digits = 0
            for i in r {
                let c = buf[i]
                if c == UInt8(ascii: ".") {
                    guard digits > 0, part <= 255 else { throw SIPSyntaxError("invalid IPv4 address") }
                    part = 0; digits = 0
                } else {
                    part = part * 10 + Int(c - ASCII.zero); digits += 1
                    guard digits <= 3 else { throw SIPSyntaxError("invalid IPv4 address") }
                }
            }
            guard digits > 0, part <= 255 else { throw SIPSyntaxError("invalid IPv4 address") }
            return .ipv4(makeString(buf, r))
        }
        return .name(makeString(buf, r))
    }

    public static func parse(_ text: String) throws(SIPSyntaxError) -> SIPHost {
        try withBytes(text) { buf throws(SIPSyntaxError) in try parse(buf, 0..<buf.count) }
    }
}

/// Parses a decimal port (0 to 65535).
func parsePort(_ buf: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) throws(SIPSyntaxError) -> Int {
    guard !r.isEmpty, r.count <= 5 else { throw SIPSyntaxError("invalid port") }
    var v = 0
    for i in r {
        guard ASCII.isDigit(buf[i]) else { throw SIPSyntaxError("invalid port") }
        v = v * 10 + Int(buf[i] - ASCII.zero)
    }
    guard v <= 65535 else { throw SIPSyntaxError("port \(v) out of range") }
    return v
}

/// A SIP or SIPS URI (RFC 3261 section 19.1). Parts are kept as written, escapes included;
/// use the `decoded` accessors to compare.
public struct SIPURI: Sendable, Hashable, CustomStringConvertible {
    public var secure: Bool
    public var user: String?
    public var password: String?
    public var host: SIPHost
    public var port: Int?
    public var parameters: [SIPParameter]
    public var headers: [SIPParameter]

    public init(secure: Bool = false, user: String? = nil, password: String? = nil, host: SIPHost,
                port: Int? = nil, parameters: [SIPParameter] = [], headers: [SIPParameter] = []) {
        self.secure = secure
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.parameters = parameters
        self.headers = headers
    }

    public var scheme: String { secure ? "sips" : "sip" }
    /// The user part with `%XX` escapes decoded.
    public var decodedUser: String? { user.map(percentDecoded) }
    public var transportParameter: String? { parameters.value("transport") }
    public var maddr: String? { parameters.value("maddr") }
    /// The host requests to this URI are sent to: `maddr` when present, else the host (as an
    /// address, without IPv6 brackets).
    public var targetHost: String { maddr ?? host.address }
    /// Whether the URI carries `lr` (a loose router, RFC 3261 section 19.1.1).
    public var isLooseRouter: Bool { parameters.has("lr") }

    public var description: String {
        var s = ""
        s.reserveCapacity(64)
        write(to: &s)
        return s
    }

    /// Appends the URI as written (what `description` returns), without intermediate strings.
    func write(to s: inout String) {
        s += secure ? "sips:" : "sip:"
        if let user {
            s += user
            if let password { s += ":"; s += password }
            s += "@"
        }
        s += host.description
        if let port { s += ":"; s += String(port) }
        parameters.write(to: &s)
        if !headers.isEmpty {
            var h = ""
            headers.write(to: &h, separator: "&")
            s += "?"
            s += h.dropFirst()
        }
    }

    static func parse(_ buf: UnsafeBufferPointer<UInt8>, _ r: Range<Int>, secure: Bool) throws(SIPSyntaxError) -> SIPURI {
        var lo = r.lowerBound
        let hi = r.upperBound
        for i in r {
            let c = buf[i]
            guard c > ASCII.sp, c < 0x7F, c != ASCII.lt, c != ASCII.gt, c != ASCII.quote else {
                throw SIPSyntaxError(c == ASCII.sp || c == ASCII.ht ? "white space inside URI" : "invalid character in URI")
            }
        }
        var user: String?
        var password: String?
        if let at = (lo..<hi).first(where: { buf[$0] == ASCII.at }) {
            let userEnd = (lo..<at).first(where: { buf[$0] == ASCII.colon }) ?? at
            guard userEnd > lo else { throw SIPSyntaxError("empty user part in URI") }
            try checkEscapes(buf, lo..<at)
            user = makeString(buf, lo..<userEnd)
            if userEnd < at { password = makeString(buf, (userEnd + 1)..<at) }
            lo = at + 1
        }
        // host[:port] ends at ';' or '?'
        var hostEnd = lo
        if hostEnd < hi, buf[hostEnd] == ASCII.lbracket {
            while hostEnd < hi, buf[hostEnd] != ASCII.rbracket { hostEnd += 1 }
            if hostEnd < hi { hostEnd += 1 }
        }
        while hostEnd < hi, buf[hostEnd] != ASCII.colon, buf[hostEnd] != ASCII.semicolon, buf[hostEnd] != ASCII.question {
            hostEnd += 1
        }
        let host = try SIPHost.parse(buf, lo..<hostEnd)
        var i = hostEnd
        var port: Int?
        if i < hi, buf[i] == ASCII.colon {
            var pe = i + 1
            while pe < hi, buf[pe] != ASCII.semicolon, buf[pe] != ASCII.question { pe += 1 }
            port = try parsePort(buf, (i + 1)..<pe)
            i = pe
        }
        var params: [SIPParameter] = []
        while i < hi, buf[i] == ASCII.semicolon {
            var e = i + 1
            while e < hi, buf[e] != ASCII.semicolon, buf[e] != ASCII.question { e += 1 }
            params.append(try uriParameter(buf, (i + 1)..<e, what: "URI parameter"))
            i = e
        }
        var headers: [SIPParameter] = []
        if i < hi, buf[i] == ASCII.question {
            i += 1
            while i <= hi {
                var e = i
                while e < hi, buf[e] != ASCII.amp { e += 1 }
                headers.append(try uriParameter(buf, i..<e, what: "URI header"))
                i = e + 1
            }
        }
        return SIPURI(secure: secure, user: user, password: password, host: host, port: port,
                      parameters: params, headers: headers)
    }

    private static func uriParameter(_ buf: UnsafeBufferPointer<UInt8>, _ r: Range<Int>, what: String) throws(SIPSyntaxError) -> SIPParameter {
        guard !r.isEmpty else { throw SIPSyntaxError("empty \(what)") }
        try checkEscapes(buf, r)
        if let eq = r.first(where: { buf[$0] == ASCII.equals }) {
            guard eq > r.lowerBound else { throw SIPSyntaxError("\(what) without a name") }
            return SIPParameter(makeString(buf, r.lowerBound..<eq), makeString(buf, (eq + 1)..<r.upperBound))
        }
        return SIPParameter(makeString(buf, r), nil)
    }

    public static func parse(_ text: String) throws(SIPSyntaxError) -> SIPURI {
        guard case .sip(let u) = try URI.parse(text) else { throw SIPSyntaxError("not a sip or sips URI") }
        return u
    }
}

func checkEscapes(_ buf: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) throws(SIPSyntaxError) {
    var i = r.lowerBound
    while i < r.upperBound {
        if buf[i] == ASCII.percent {
            guard i + 2 < r.upperBound, ASCII.isHex(buf[i + 1]), ASCII.isHex(buf[i + 2]) else {
                throw SIPSyntaxError("malformed %-escape in URI")
            }
            i += 3
        } else {
            i += 1
        }
    }
}

/// A tel URI (RFC 3966): the number as written and its parameters.
public struct TelURI: Sendable, Hashable, CustomStringConvertible {
    public var number: String
    public var parameters: [SIPParameter]

    public init(number: String, parameters: [SIPParameter] = []) {
        self.number = number
        self.parameters = parameters
    }

    /// Whether the number is global (`+` and digits).
    public var isGlobal: Bool { number.hasPrefix("+") }

    /// The digits only, without visual separators (`-`, `.`, `(`, `)`).
    public var digits: String { String(number.filter { !"-.()".contains($0) }) }

    public var description: String {
        var s = "tel:" + number
        parameters.write(to: &s)
        return s
    }

    static func parse(_ buf: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) throws(SIPSyntaxError) -> TelURI {
        var e = r.lowerBound
        while e < r.upperBound, buf[e] != ASCII.semicolon { e += 1 }
        guard e > r.lowerBound else { throw SIPSyntaxError("empty tel number") }
        for i in r.lowerBound..<e {
            let c = buf[i]
            guard ASCII.isHex(c) || "+-.()*#".utf8.contains(c) || c == UInt8(ascii: "p") || c == UInt8(ascii: "w") else {
                throw SIPSyntaxError("invalid character in tel number")
            }
        }
        var params: [SIPParameter] = []
        var i = e
        while i < r.upperBound {
            var pe = i + 1
            while pe < r.upperBound, buf[pe] != ASCII.semicolon { pe += 1 }
            let pr = (i + 1)..<pe
            guard !pr.isEmpty else { throw SIPSyntaxError("empty tel parameter") }
            if let eq = pr.first(where: { buf[$0] == ASCII.equals }) {
                params.append(SIPParameter(makeString(buf, pr.lowerBound..<eq), makeString(buf, (eq + 1)..<pe)))
            } else {
                params.append(SIPParameter(makeString(buf, pr)))
            }
            i = pe
        }
        return TelURI(number: makeString(buf, r.lowerBound..<e), parameters: params)
    }
}

/// Any URI a SIP message can carry: SIP/SIPS and tel parsed, other schemes kept as opaque text.
public enum URI: Sendable, Hashable, CustomStringConvertible {
    case sip(SIPURI)
    case tel(TelURI)
    /// An absolute URI of another scheme (`mailto:`, `http:`, `urn:`...), kept as written.
    case other(scheme: String, text: String)

    public var description: String {
        switch self {
        case .sip(let u): u.description
        case .tel(let t): t.description
        case .other(_, let text): text
        }
    }

    /// Appends the URI as written.
    func write(to s: inout String) {
        switch self {
        case .sip(let u): u.write(to: &s)
        case .tel(let t): s += t.description
        case .other(_, let text): s += text
        }
    }

    public var scheme: String {
        switch self {
        case .sip(let u): u.scheme
        case .tel: "tel"
        case .other(let s, _): s
        }
    }

    public var sipURI: SIPURI? {
        if case .sip(let u) = self { return u }
        return nil
    }

    /// The user part (SIP) or number (tel), if any.
    public var user: String? {
        switch self {
        case .sip(let u): u.user
        case .tel(let t): t.number
        case .other: nil
        }
    }

    public var host: String? {
        if case .sip(let u) = self { return u.host.address }
        return nil
    }

    public static func parse(_ text: String) throws(SIPSyntaxError) -> URI {
        try withBytes(text) { buf throws(SIPSyntaxError) in try parse(buf, 0..<buf.count) }
    }

    static func parse(_ buf: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) throws(SIPSyntaxError) -> URI {
        guard let colon = r.first(where: { buf[$0] == ASCII.colon }), colon > r.lowerBound else {
            throw SIPSyntaxError("URI has no scheme")
        }
        let schemeRange = r.lowerBound..<colon
        guard ASCII.isAlpha(buf[schemeRange.lowerBound]) else { throw SIPSyntaxError("invalid URI scheme") }
        for i in schemeRange {
            let c = buf[i]
            guard ASCII.isAlpha(c) || ASCII.isDigit(c) || c == UInt8(ascii: "+") || c == UInt8(ascii: "-") || c == UInt8(ascii: ".") else {
                throw SIPSyntaxError("invalid URI scheme")
            }
        }
        let rest = (colon + 1)..<r.upperBound
        guard !rest.isEmpty else { throw SIPSyntaxError("empty URI after scheme") }
        if schemeRange.count == 3, ASCII.lower(buf[schemeRange.lowerBound]) == UInt8(ascii: "s"),
           ASCII.lower(buf[schemeRange.lowerBound + 1]) == UInt8(ascii: "i"),
           ASCII.lower(buf[schemeRange.lowerBound + 2]) == UInt8(ascii: "p") {
            return .sip(try SIPURI.parse(buf, rest, secure: false))
        }
        let scheme = makeString(buf, schemeRange).lowercased()
        switch scheme {
        case "sips": return .sip(try SIPURI.parse(buf, rest, secure: true))
        case "tel": return .tel(try TelURI.parse(buf, rest))
        default:
            for i in rest where buf[i] <= ASCII.sp || buf[i] >= 0x7F || buf[i] == ASCII.lt || buf[i] == ASCII.gt {
                throw SIPSyntaxError("invalid character in URI")
            }
            return .other(scheme: scheme, text: makeString(buf, r))
        }
    }
}
