#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// Byte-level helpers shared by the parsers. Everything in the message core works on UTF-8 bytes;
// Strings are made only for the pieces a caller keeps.

extension Array where Element == UInt8 {
    /// Appends `v` in decimal, making no string (SDP origin numbers, JSON numbers).
    public mutating func appendDecimal(_ v: UInt64) {
        var tmp: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: enough for 20 digits
        Swift.withUnsafeMutableBytes(of: &tmp) { buf in
            var i = buf.count
            var m = v
            repeat {
                i -= 1
                buf[i] = ASCII.zero + UInt8(m % 10)
                m /= 10
            } while m > 0
            append(contentsOf: buf[i...])
        }
    }
}

enum ASCII {
    static let cr: UInt8 = 0x0D
    static let lf: UInt8 = 0x0A
    static let sp: UInt8 = 0x20
    static let ht: UInt8 = 0x09
    static let colon: UInt8 = 0x3A
    static let semicolon: UInt8 = 0x3B
    static let comma: UInt8 = 0x2C
    static let equals: UInt8 = 0x3D
    static let quote: UInt8 = 0x22
    static let backslash: UInt8 = 0x5C
    static let lt: UInt8 = 0x3C
    static let gt: UInt8 = 0x3E
    static let slash: UInt8 = 0x2F
    static let at: UInt8 = 0x40
    static let question: UInt8 = 0x3F
    static let amp: UInt8 = 0x26
    static let percent: UInt8 = 0x25
    static let lbracket: UInt8 = 0x5B
    static let rbracket: UInt8 = 0x5D
    static let zero: UInt8 = 0x30
    static let nine: UInt8 = 0x39

    static func isDigit(_ c: UInt8) -> Bool { c &- 0x30 < 10 }
    static func isAlpha(_ c: UInt8) -> Bool { (c | 0x20) &- 0x61 < 26 }
    static func isHex(_ c: UInt8) -> Bool { isDigit(c) || (c | 0x20) &- 0x61 < 6 }
    static func isWS(_ c: UInt8) -> Bool { c == sp || c == ht }
    static func lower(_ c: UInt8) -> UInt8 { (c &- 0x41 < 26) ? c | 0x20 : c }
    static func hexValue(_ c: UInt8) -> UInt8 {
        isDigit(c) ? c &- 0x30 : (c | 0x20) &- 0x61 &+ 10
    }

    /// RFC 3261 `token` characters: alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~",
    /// as two bit masks over the ASCII range (bit n of `tokenLow` is byte n, of `tokenHigh` byte 64+n).
    static let tokenLow: UInt64 = {
        var m: UInt64 = 0
        for c in UInt8(0x30)...0x39 { m |= 1 << UInt64(c) }
        for c in "-.!%*+'".utf8 { m |= 1 << UInt64(c) }
        return m
    }()
    static let tokenHigh: UInt64 = {
        var m: UInt64 = 0
        for c in UInt8(0x41)...0x5A { m |= 1 << UInt64(c - 64) }
        for c in UInt8(0x61)...0x7A { m |= 1 << UInt64(c - 64) }
        for c in "_`~".utf8 { m |= 1 << UInt64(c - 64) }
        return m
    }()

    @inline(__always)
    static func isToken(_ c: UInt8) -> Bool {
        // Constant-folded masks: same sets as `tokenLow` / `tokenHigh` (checked by a unit test).
        if c < 64 { return (0x03FF_6CA2_0000_0000 as UInt64) >> UInt64(c) & 1 == 1 }
        if c < 128 { return (0x47FF_FFFF_87FF_FFFE as UInt64) >> UInt64(c - 64) & 1 == 1 }
        return false
    }
}

/// Runs `body` over the UTF-8 bytes of `string` as one contiguous buffer.
func withBytes<R, E: Error>(_ string: String, _ body: (UnsafeBufferPointer<UInt8>) throws(E) -> R) throws(E) -> R {
    var copy = string
    let result: Result<R, E> = copy.withUTF8 { buf in Result { () throws(E) -> R in try body(buf) } }
    return try result.get()
}

func makeString(_ buffer: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> String {
    String(decoding: UnsafeBufferPointer(rebasing: buffer[range]), as: UTF8.self)
}

/// Case-insensitive ASCII comparison of two strings.
func asciiCaseInsensitiveEquals(_ a: String, _ b: String) -> Bool {
    if a == b { return true }
    guard a.utf8.count == b.utf8.count else { return false }
    return withBytes(a) { x in
        withBytes(b) { y in
            for i in 0..<x.count where ASCII.lower(x[i]) != ASCII.lower(y[i]) { return false }
            return true
        }
    }
}

/// Whether `buf[r]` is exactly the bytes of `literal`.
@inline(__always)
func bytesEqual(_ buf: UnsafeBufferPointer<UInt8>, _ r: Range<Int>, _ literal: StaticString) -> Bool {
    guard r.count == literal.utf8CodeUnitCount else { return false }
    let p = literal.utf8Start
    for i in 0..<r.count where buf[r.lowerBound + i] != p[i] { return false }
    return true
}

/// The index of the first `byte` in `buf[from..<to]`, or `to`.
@inline(__always)
func indexOf(_ byte: UInt8, _ buf: UnsafeBufferPointer<UInt8>, from: Int, to: Int) -> Int {
    guard from < to, let base = buf.baseAddress else { return to }
    guard let p = memchr(base + from, Int32(byte), to - from) else { return to }
    return base.distance(to: p.assumingMemoryBound(to: UInt8.self))
}

/// Decodes `%XX` escapes; malformed escapes are kept as written.
func percentDecoded(_ s: String) -> String {
    guard s.utf8.contains(ASCII.percent) else { return s }
    var out: [UInt8] = []
    out.reserveCapacity(s.utf8.count)
    let u = Array(s.utf8)
    var i = 0
    while i < u.count {
        if u[i] == ASCII.percent, i + 2 < u.count, ASCII.isHex(u[i + 1]), ASCII.isHex(u[i + 2]) {
            out.append(ASCII.hexValue(u[i + 1]) << 4 | ASCII.hexValue(u[i + 2]))
            i += 3
        } else {
            out.append(u[i])
            i += 1
        }
    }
    return String(decoding: out, as: UTF8.self)
}

/// A cursor over a byte buffer, used by the header-value grammars (RFC 3261 section 25).
/// Values it works on are already unfolded: linear white space is SP and HTAB only.

struct ByteCursor {
    let buf: UnsafeBufferPointer<UInt8>
    var pos: Int
    let end: Int

    init(_ buf: UnsafeBufferPointer<UInt8>, from: Int = 0, to: Int? = nil) {
        self.buf = buf
        self.pos = from
        self.end = to ?? buf.count
    }

    var atEnd: Bool { pos >= end }
    var peek: UInt8? { pos < end ? buf[pos] : nil }

    mutating func skipWS() {
        while pos < end, ASCII.isWS(buf[pos]) { pos += 1 }
    }

    mutating func consume(_ c: UInt8) -> Bool {
        if pos < end, buf[pos] == c { pos += 1; return true }
        return false
    }

    /// SWS c SWS: a separator with optional white space on both sides.
    mutating func separator(_ c: UInt8) -> Bool {
        let save = pos
        skipWS()
        if consume(c) { skipWS(); return true }
        pos = save
        return false
    }

    mutating func token() -> Range<Int>? {
        let start = pos
        while pos < end, ASCII.isToken(buf[pos]) { pos += 1 }
        return pos > start ? start..<pos : nil
    }

    func string(_ r: Range<Int>) -> String { makeString(buf, r) }

    /// A quoted-string starting at the current position (which must be `"`).
    /// Returns the range of the contents between the quotes (escapes left as written).
    mutating func quotedString() throws(SIPSyntaxError) -> Range<Int> {
        guard consume(ASCII.quote) else { throw SIPSyntaxError("expected '\"'") }
        let start = pos
        while pos < end {
            let c = buf[pos]
            if c == ASCII.backslash {
                guard pos + 1 < end else { break }
                let n = buf[pos + 1]
                // quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
                guard n != ASCII.cr && n != ASCII.lf && n < 0x80 else {
                    throw SIPSyntaxError("invalid escape in quoted string")
                }
                pos += 2
            } else if c == ASCII.quote {
                let r = start..<pos
                pos += 1
                return r
            } else {
                pos += 1
            }
        }
        throw SIPSyntaxError("unterminated quoted string")
    }

    /// Advances to the first byte outside quoted strings that is in `stops`, or to the end.
    mutating func scan(until stops: (UInt8) -> Bool) {
        while pos < end, !stops(buf[pos]) { pos += 1 }
    }
}

/// Unescapes the inside of a quoted-string (`\"` -> `"`, `\\` -> `\`).
func unquote(_ raw: String) -> String {
    guard raw.utf8.contains(ASCII.backslash) else { return raw }
    var out: [UInt8] = []
    var escape = false
    for c in raw.utf8 {
        if escape { out.append(c); escape = false } else if c == ASCII.backslash { escape = true } else { out.append(c) }
    }
    return String(decoding: out, as: UTF8.self)
}

/// Makes a quoted-string body from plain text (inverse of `unquote`).
func quoteEscaped(_ text: String) -> String {
    guard text.utf8.contains(where: { $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) else { return text }
    var out = ""
    for ch in text.unicodeScalars {
        if ch == "\"" || ch == "\\" { out.unicodeScalars.append("\\") }
        out.unicodeScalars.append(ch)
    }
    return out
}
