/// Parsers for headers whose grammar is a comma-separated list (`1#element`). They walk the value
/// once with a cursor, so no intermediate strings are made for the elements.
enum ListParser {
    /// Walks a comma-separated list: each element is parsed by `element` and handed to `body`,
    /// which returns false to stop there (the rest is not read). After each element read, only
    /// white space and then a comma or the end may follow; an empty value or an empty element
    /// is an error.
    @inline(__always)
    static func walk<T>(_ buf: UnsafeBufferPointer<UInt8>, what: String,
                        element: (inout ByteCursor) throws(SIPSyntaxError) -> T,
                        _ body: (T) -> Bool) throws(SIPSyntaxError) {
        var cur = ByteCursor(buf)
        cur.skipWS()
        if cur.atEnd { throw SIPSyntaxError("empty value") }
        while true {
            let e = try element(&cur)
            cur.skipWS()
            guard cur.atEnd || cur.peek == ASCII.comma else { throw SIPSyntaxError("unexpected text after \(what)") }
            if !body(e) || cur.atEnd { return }
            _ = cur.consume(ASCII.comma)
            cur.skipWS()
            if cur.atEnd || cur.peek == ASCII.comma { throw SIPSyntaxError("empty element in list") }
        }
    }

    /// Every element of the list.
    @inline(__always)
    static func parse<T>(_ buf: UnsafeBufferPointer<UInt8>, what: String,
                         element: (inout ByteCursor) throws(SIPSyntaxError) -> T) throws(SIPSyntaxError) -> [T] {
        var out: [T] = []
        try walk(buf, what: what, element: element) { out.append($0); return true }
        return out
    }
}

extension Via {
    /// Every Via value in one header line.
    public static func parseList(_ text: String) throws(SIPSyntaxError) -> [Via] {
        try withBytes(text) { buf throws(SIPSyntaxError) in try parseList(bytes: buf) }
    }

    public static func parseList(bytes: UnsafeBufferPointer<UInt8>) throws(SIPSyntaxError) -> [Via] {
        try ListParser.parse(bytes, what: "Via value") { cur throws(SIPSyntaxError) in try Via.parse(&cur) }
    }

    /// The first Via value of a header line, the elements after it not read (the top Via of a
    /// message validation has not parsed: no array is made, nothing after it is parsed).
    public static func parseFirst(bytes: UnsafeBufferPointer<UInt8>) throws(SIPSyntaxError) -> Via {
        var first: Via?
        try ListParser.walk(bytes, what: "Via value", element: { cur throws(SIPSyntaxError) in try Via.parse(&cur) }) {
            first = $0
            return false
        }
        // walk hands over at least one element or throws.
        guard let first else { throw SIPSyntaxError("empty value") }
        return first
    }
}

extension NameAddress {
    /// Every address in one header line (Route, Record-Route, Path).
    public static func parseList(_ text: String) throws(SIPSyntaxError) -> [NameAddress] {
        try withBytes(text) { buf throws(SIPSyntaxError) in try parseList(bytes: buf) }
    }

    public static func parseList(bytes: UnsafeBufferPointer<UInt8>) throws(SIPSyntaxError) -> [NameAddress] {
        try ListParser.parse(bytes, what: "address") { cur throws(SIPSyntaxError) in try NameAddress.parse(&cur) }
    }
}

extension ContactValue {
    /// Every Contact value in one header line; `*` stands alone.
    public static func parseList(_ text: String) throws(SIPSyntaxError) -> [ContactValue] {
        try withBytes(text) { buf throws(SIPSyntaxError) in try parseList(bytes: buf) }
    }

    public static func parseList(bytes: UnsafeBufferPointer<UInt8>) throws(SIPSyntaxError) -> [ContactValue] {
        try ListParser.parse(bytes, what: "Contact value") { cur throws(SIPSyntaxError) -> ContactValue in
            if cur.peek == UInt8(ascii: "*") {
                var probe = cur
                probe.pos += 1
                probe.skipWS()
                if probe.atEnd || probe.peek == ASCII.comma {
                    cur.pos += 1
                    return .wildcard
                }
            }
            return .address(try NameAddress.parse(&cur))
        }
    }
}
