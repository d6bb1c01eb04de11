import Foundation
import ParleySIP

/// A JSON value written the way the admin API shows it: keys in the order given, `null` written
/// out (never a missing key), strings escaped per RFC 8259 (control characters as \u00XX, so
/// nothing a caller or an operator sent reaches a log or a page raw).
public indirect enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([Field])
    /// JSON text written as it is (stored JSON, already written by this type).
    case raw(String)

    public struct Field: Sendable, Equatable {
        public var key: String
        public var value: JSONValue
        public init(_ key: String, _ value: JSONValue) {
            self.key = key
            self.value = value
        }
    }

    public static func number(_ v: Int) -> JSONValue { .int(Int64(v)) }
    public static func optional(_ v: String?) -> JSONValue { v.map { .string($0) } ?? .null }
    public static func optional(_ v: Int64?) -> JSONValue { v.map { .int($0) } ?? .null }
    public static func object(_ pairs: KeyValuePairs<String, JSONValue>) -> JSONValue {
        .object(pairs.map { Field($0.key, $0.value) })
    }

    public var text: String {
        var out = ""
        write(to: &out)
        return out
    }

    public func write(to out: inout String) {
        switch self {
        case .null: out += "null"
        case .raw(let text): out += text
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d):
            if d.isFinite {
                // Shortest round-trip form; whole numbers without an exponent.
                out += d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : "\(d)"
            } else {
                out += "null"
            }
        case .string(let s): Self.quote(s, into: &out)
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                item.write(to: &out)
            }
            out += "]"
        case .object(let fields):
            out += "{"
            for (i, f) in fields.enumerated() {
                if i > 0 { out += "," }
                Self.quote(f.key, into: &out)
                out += ":"
                f.value.write(to: &out)
            }
            out += "}"
        }
    }

    /// The same value indented for people (two spaces a level, `"key": value`), as
    /// `parley sip parse --json` prints it.
    public func pretty(indent: String = "") -> String {
        switch self {
        case .array(let items):
            if items.isEmpty { return "[]" }
            let inner = indent + "  "
            return "[\n" + items.map { inner + $0.pretty(indent: inner) }.joined(separator: ",\n") + "\n" + indent + "]"
        case .object(let fields):
            if fields.isEmpty { return "{}" }
            let inner = indent + "  "
            return "{\n" + fields.map { f in
                var key = ""
                Self.quote(f.key, into: &key)
                return inner + key + ": " + f.value.pretty(indent: inner)
            }.joined(separator: ",\n") + "\n" + indent + "}"
        default:
            return text
        }
    }

    /// Whether UTF-8 text holds a byte JSON text must escape (or that may begin U+2028/U+2029).
    static func needsEscape(_ buf: UnsafeBufferPointer<UInt8>) -> Bool {
        for b in buf where b < 0x20 || b == 0x22 || b == 0x5C || b == 0x7F || b == 0xE2 { return true }
        return false
    }

    public static func quote(_ s: String, into out: inout String) {
        out += "\""
        // Most strings need no escape: copied whole.
        var s = s
        if !s.withUTF8(needsEscape) {
            out += s
            out += "\""
            return
        }
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{2028}": out += "\\u2028"
            case "\u{2029}": out += "\\u2029"
            default:
                if u.value < 0x20 || u.value == 0x7F {
                    let h = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out += "\""
    }

    /// Parses a request body: a JSON object's members (nil for anything else). Numbers come as
    /// Double, JSON null as NSNull.
    public static func parseObject(_ bytes: [UInt8]) -> [String: Any]? {
        guard let any = try? JSONSerialization.jsonObject(with: Data(bytes), options: []) else { return nil }
        return any as? [String: Any]
    }
}

/// JSON text written straight into bytes, for what is written often (the event stream): the
/// same text `JSONValue` writes, without building the value first. Members and elements are
/// separated by themselves; text outside JSON (an SSE frame's head) goes in with `prefix`.
public struct JSONWriter {
    public private(set) var bytes: [UInt8] = []
    /// Where the value being written began (no comma before its first member).
    private var mark = 0

    public init(capacity: Int = 256) {
        bytes.reserveCapacity(capacity)
    }

    public var text: String { String(decoding: bytes, as: UTF8.self) }

    /// Text that is not JSON, written as it is; the next value starts afresh.
    public mutating func prefix(_ s: String) {
        bytes.append(contentsOf: s.utf8)
        mark = bytes.count
    }

    /// A comma, unless this opens an object or array, follows a key or begins the value.
    private mutating func separate() {
        guard bytes.count > mark else { return }
        switch bytes[bytes.count - 1] {
        case UInt8(ascii: "{"), UInt8(ascii: "["), UInt8(ascii: ":"): break
        default: bytes.append(UInt8(ascii: ","))
        }
    }

    public mutating func beginObject() { separate(); bytes.append(UInt8(ascii: "{")) }
    public mutating func endObject() { bytes.append(UInt8(ascii: "}")) }
    public mutating func beginArray() { separate(); bytes.append(UInt8(ascii: "[")) }
    public mutating func endArray() { bytes.append(UInt8(ascii: "]")) }

    public mutating func key(_ k: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        k.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
    }

    public mutating func string(_ v: String) {
        separate()
        var v = v
        // Most strings need no escape: their bytes are copied whole.
        let copied = v.withUTF8 { buf -> Bool in
            guard !JSONValue.needsEscape(buf) else { return false }
            bytes.append(UInt8(ascii: "\""))
            bytes.append(contentsOf: buf)
            bytes.append(UInt8(ascii: "\""))
            return true
        }
        if !copied {
            var quoted = ""
            JSONValue.quote(v, into: &quoted)
            bytes.append(contentsOf: quoted.utf8)
        }
    }

    public mutating func string(_ v: String?) { if let v { string(v) } else { null() } }

    public mutating func int(_ v: Int64) {
        separate()
        digits(v)
    }

    /// A whole number in decimal, without building a string.
    public mutating func digits(_ v: Int64) {
        if v < 0 { bytes.append(UInt8(ascii: "-")) }
        bytes.appendDecimal(v.magnitude)
    }

    public mutating func int(_ v: Int) { int(Int64(v)) }
    public mutating func int(_ v: Int64?) { if let v { int(v) } else { null() } }
    public mutating func bool(_ v: Bool) { separate(); bytes.append(contentsOf: (v ? "true" : "false").utf8) }
    public mutating func null() { separate(); bytes.append(contentsOf: "null".utf8) }
    /// JSON text as it is.
    public mutating func raw(_ json: String) { separate(); bytes.append(contentsOf: json.utf8) }

    public mutating func field(_ k: StaticString, _ v: String) { key(k); string(v) }
    public mutating func field(_ k: StaticString, _ v: String?) { key(k); string(v) }
    public mutating func field(_ k: StaticString, _ v: Int64) { key(k); int(v) }
    public mutating func field(_ k: StaticString, _ v: Int) { key(k); int(v) }
    public mutating func field(_ k: StaticString, _ v: Int64?) { key(k); int(v) }
    public mutating func field(_ k: StaticString, _ v: Bool) { key(k); bool(v) }
}
