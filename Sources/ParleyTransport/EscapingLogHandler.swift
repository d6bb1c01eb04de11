import Logging

/// A log handler that escapes what the wire may have put in a log line before another handler
/// writes it: control characters (C0, DEL, C1: ESC sequences that repaint a terminal, CR and LF
/// that forge a line of their own) and the Unicode controls that reorder text (bidi overrides),
/// in the message and in every metadata value. Invalid UTF-8 never reaches here as such: bytes
/// from the wire become U+FFFD when they are decoded.
public struct EscapingLogHandler: LogHandler {
    public var wrapped: any LogHandler

    public init(_ wrapped: any LogHandler) { self.wrapped = wrapped }

    /// A standard-error handler at `level`, escaped: what every `parley` command logs through.
    public static func standardError(label: String, level: Logger.Level) -> EscapingLogHandler {
        var h = StreamLogHandler.standardError(label: label)
        h.logLevel = level
        return EscapingLogHandler(h)
    }

    public var logLevel: Logger.Level {
        get { wrapped.logLevel }
        set { wrapped.logLevel = newValue }
    }

    public var metadata: Logger.Metadata {
        get { wrapped.metadata }
        set { wrapped.metadata = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { wrapped[metadataKey: key] }
        set { wrapped[metadataKey: key] = newValue }
    }

    public func log(event: LogEvent) {
        var e = event
        e.message = Logger.Message(stringLiteral: Self.escape(event.message.description))
        e.metadata = event.metadata.map { $0.mapValues(Self.escape) }
        wrapped.log(event: e)
    }

    /// The text with each control character written as `\xNN` (`\u{NNNN}` above U+00FF); a
    /// backslash is left as it is, so text without controls is unchanged.
    public static func escape(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isControl) else { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count + 16)
        for s in text.unicodeScalars {
            if isControl(s) {
                let hex = String(s.value, radix: 16, uppercase: true)
                out += s.value <= 0xFF ? "\\x" + (hex.count == 1 ? "0" + hex : hex) : "\\u{\(hex)}"
            } else {
                out.unicodeScalars.append(s)
            }
        }
        return out
    }

    static func escape(_ value: Logger.Metadata.Value) -> Logger.Metadata.Value {
        switch value {
        case .string(let s): .string(escape(s))
        case .stringConvertible(let c): .string(escape(c.description))
        case .array(let a): .array(a.map(escape))
        case .dictionary(let d): .dictionary(d.mapValues(escape))
        }
    }

    static func isControl(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x00...0x1F, 0x7F...0x9F: true
        case 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: true  // bidi marks, embeddings, overrides, isolates
        default: false
        }
    }
}
