/// Parsers for headers whose grammar is a comma-separated list (`1#element`). They walk the value
/// once with a cursor, so no intermediate strings are made for the elements.
enum ListParser {
    static func parse<T>(_ buf: UnsafeBufferPointer<UInt8>, what: String,
                         element: (inout ByteCursor) throws(SIPSyntaxError) -> T) throws(SIPSyntaxError) -> [T] {
        do {
            var cur = ByteCursor(buf)
            var out: [T] = []
            cur.skipWS()
            if cur.atEnd { throw SIPSyntaxError("empty value") }
            while true {
                out.append(try element(&cur))
                cur.skipWS()
                if cur.atEnd { return out }
                guard cur.consume(ASCII.comma) else { throw SIPSyntaxError("unexpected text after \(what)") }
                cur.skipWS()
                if cur.atEnd || cur.peek == ASCII.comma { throw SIPSyntaxError("empty element in list") }
            }
        }
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
        do {
            var cur = ByteCursor(bytes)
            cur.skipWS()
            if cur.atEnd { throw SIPSyntaxError("empty value") }
            let via = try Via.parse(&cur)
            cur.skipWS()
            guard cur.atEnd || cur.peek == ASCII.comma else { throw SIPSyntaxError("unexpected text after Via value") }
            return via
        }
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
