/// A grammar error inside one element (a URI, a header value). Carries what was wrong; the
/// message parser adds where.
public struct SIPSyntaxError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Why a message was refused, where, and what an element should answer.
public struct SIPParseError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What an element should do with the message (RFC 3261 sections 8.2 and 18; RFC 4475).
    public enum Disposition: Equatable, Sendable {
        /// Answer with this status code (400, 505, ...) when a response can be built.
        case respond(Int)
        /// Discard: no response can be built (a malformed response, an unusable request).
        case drop
    }

    public var message: String
    /// The header the problem is in, if any.
    public var header: String?
    /// 1-based line of the message the problem was found on, if known.
    public var line: Int?
    public var disposition: Disposition

    public init(_ message: String, header: String? = nil, line: Int? = nil, disposition: Disposition = .respond(400)) {
        self.message = message
        self.header = header
        self.line = line
        self.disposition = disposition
    }

    public var description: String {
        var s = ""
        if let line { s += "line \(line): " }
        if let header { s += "\(header): " }
        return s + message
    }

    /// A reason phrase for a 4xx/5xx answer: says what was wrong, on one line, printable ASCII.
    public var reasonPhrase: String {
        let base = header.map { "Bad \($0) header: \(message)" } ?? message
        let cleaned = base.unicodeScalars.map { $0.value >= 0x20 && $0.value < 0x7F ? Character($0) : "?" }
        let phrase = String(cleaned)
        return phrase.isEmpty ? "Bad Request" : String(phrase.prefix(120))
    }
}
