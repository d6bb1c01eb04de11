/// Header names Parley knows, with their canonical spelling and RFC 3261 compact forms.
public enum KnownHeader: UInt8, Sendable, CaseIterable {
    case via, from, to, callID, cseq, maxForwards, contact, route, recordRoute, path
    case contentType, contentLength, contentEncoding, expires, require, supported, proxyRequire
    case unsupported, allow, accept, authorization, proxyAuthorization, wwwAuthenticate
    case proxyAuthenticate, subject, date, minExpires, event, referTo, referredBy, allowEvents
    case sessionExpires, userAgent, server, warning, retryAfter, timestamp, acceptEncoding
    case acceptLanguage, alertInfo, callInfo, errorInfo, inReplyTo, organization, priority
    case replyTo, mimeVersion, contentDisposition, contentLanguage, recvInfo, rseq, rack

    /// The canonical spelling used when writing a header under its full name.
    public var canonicalName: String {
        switch self {
        case .via: "Via"
        case .from: "From"
        case .to: "To"
        case .callID: "Call-ID"
        case .cseq: "CSeq"
        case .maxForwards: "Max-Forwards"
        case .contact: "Contact"
        case .route: "Route"
        case .recordRoute: "Record-Route"
        case .path: "Path"
        case .contentType: "Content-Type"
        case .contentLength: "Content-Length"
        case .contentEncoding: "Content-Encoding"
        case .expires: "Expires"
        case .require: "Require"
        case .supported: "Supported"
        case .proxyRequire: "Proxy-Require"
        case .unsupported: "Unsupported"
        case .allow: "Allow"
        case .accept: "Accept"
        case .authorization: "Authorization"
        case .proxyAuthorization: "Proxy-Authorization"
        case .wwwAuthenticate: "WWW-Authenticate"
        case .proxyAuthenticate: "Proxy-Authenticate"
        case .subject: "Subject"
        case .date: "Date"
        case .minExpires: "Min-Expires"
        case .event: "Event"
        case .referTo: "Refer-To"
        case .referredBy: "Referred-By"
        case .allowEvents: "Allow-Events"
        case .sessionExpires: "Session-Expires"
        case .userAgent: "User-Agent"
        case .server: "Server"
        case .warning: "Warning"
        case .retryAfter: "Retry-After"
        case .timestamp: "Timestamp"
        case .acceptEncoding: "Accept-Encoding"
        case .acceptLanguage: "Accept-Language"
        case .alertInfo: "Alert-Info"
        case .callInfo: "Call-Info"
        case .errorInfo: "Error-Info"
        case .inReplyTo: "In-Reply-To"
        case .organization: "Organization"
        case .priority: "Priority"
        case .replyTo: "Reply-To"
        case .mimeVersion: "MIME-Version"
        case .contentDisposition: "Content-Disposition"
        case .contentLanguage: "Content-Language"
        case .recvInfo: "Recv-Info"
        case .rseq: "RSeq"
        case .rack: "RAck"
        }
    }

    /// The compact form (RFC 3261 section 7.3.3 and later RFCs), if the header has one.
    public var compactForm: Character? {
        switch self {
        case .via: "v"
        case .from: "f"
        case .to: "t"
        case .callID: "i"
        case .contact: "m"
        case .contentType: "c"
        case .contentLength: "l"
        case .contentEncoding: "e"
        case .supported: "k"
        case .subject: "s"
        case .event: "o"
        case .referTo: "r"
        case .referredBy: "b"
        case .allowEvents: "u"
        case .sessionExpires: "x"
        default: nil
        }
    }

    /// Whether the grammar allows several comma-separated values in one header line.
    /// Headers whose values contain commas of their own (Date, WWW-Authenticate, ...) are not lists.
    public var isList: Bool {
        switch self {
        case .via, .contact, .route, .recordRoute, .path, .require, .supported, .proxyRequire,
             .unsupported, .allow, .accept, .contentEncoding, .acceptEncoding, .acceptLanguage,
             .alertInfo, .callInfo, .errorInfo, .inReplyTo, .warning, .allowEvents, .contentLanguage,
             .recvInfo:
            true
        default:
            false
        }
    }

    /// Looks a header name up case-insensitively; compact forms resolve to their full header.
    public init?(name: String) {
        let found: KnownHeader? = withBytes(name) { KnownHeader.lookup($0, 0..<$0.count) }
        guard let found else { return nil }
        self = found
    }

    /// Full names grouped by length (lower-cased and canonical spelling), so a lookup compares
    /// only names of the same length.
    static let byLength: [[(lower: [UInt8], canonical: [UInt8], header: KnownHeader)]] = {
        var t = [[(lower: [UInt8], canonical: [UInt8], header: KnownHeader)]](repeating: [], count: 25)
        for h in KnownHeader.allCases {
            let c = Array(h.canonicalName.utf8)
            t[c.count].append((Array(h.canonicalName.lowercased().utf8), c, h))
        }
        return t
    }()

    /// Resolves a header name from bytes without allocating.
    static func lookup(_ buf: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) -> KnownHeader? {
        lookupName(buf, r).header
    }

    /// Resolves a header name from bytes, and tells whether it is written in the canonical spelling.
    static func lookupName(_ buf: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) -> (header: KnownHeader?, canonical: Bool) {
        let n = r.count
        if n == 1 {
            let h: KnownHeader?
            switch ASCII.lower(buf[r.lowerBound]) {
            case UInt8(ascii: "v"): h = .via
            case UInt8(ascii: "f"): h = .from
            case UInt8(ascii: "t"): h = .to
            case UInt8(ascii: "i"): h = .callID
            case UInt8(ascii: "m"): h = .contact
            case UInt8(ascii: "c"): h = .contentType
            case UInt8(ascii: "l"): h = .contentLength
            case UInt8(ascii: "e"): h = .contentEncoding
            case UInt8(ascii: "k"): h = .supported
            case UInt8(ascii: "s"): h = .subject
            case UInt8(ascii: "o"): h = .event
            case UInt8(ascii: "r"): h = .referTo
            case UInt8(ascii: "b"): h = .referredBy
            case UInt8(ascii: "u"): h = .allowEvents
            case UInt8(ascii: "x"): h = .sessionExpires
            default: h = nil
            }
            return (h, false)
        }
        guard n > 1, n < 25 else { return (nil, false) }
        let base = r.lowerBound
        for e in byLength[n] {
            var exact = true
            var match = true
            for i in 0..<n {
                let c = buf[base + i]
                if c != e.canonical[i] {
                    exact = false
                    if ASCII.lower(c) != e.lower[i] { match = false; break }
                }
            }
            if match { return (e.header, exact) }
        }
        return (nil, false)
    }
}

/// A header name as a caller asks for it: known headers match every spelling and compact form,
/// other names match case-insensitively.
public struct HeaderName: Sendable, Hashable, ExpressibleByStringLiteral, CustomStringConvertible {
    public let known: KnownHeader?
    public let text: String

    public init(_ name: String) {
        known = KnownHeader(name: name)
        text = known?.canonicalName ?? name
    }

    public init(_ known: KnownHeader) {
        self.known = known
        text = known.canonicalName
    }

    public init(stringLiteral value: String) { self.init(value) }

    public var description: String { text }

    public static func == (a: HeaderName, b: HeaderName) -> Bool {
        if let ka = a.known, let kb = b.known { return ka == kb }
        if a.known != nil || b.known != nil { return false }
        return asciiCaseInsensitiveEquals(a.text, b.text)
    }

    public func hash(into hasher: inout Hasher) {
        if let known { hasher.combine(known.rawValue) } else { hasher.combine(text.lowercased()) }
    }
}
