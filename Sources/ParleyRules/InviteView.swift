import ParleySIP

/// The read-only INVITE view rules receive (`invite.uri_user`, `invite:header("Subject")`, ...),
/// built once from a parsed message and copied into each Lua call as one packed block.
///
/// The packed form (read by CLuaShim): for each field in `Field` order an Int32 length (-1 for
/// nil) and its bytes; then a UInt32 count of header elements, and for each a UInt32 length, the
/// lower-cased canonical header name (compact forms expanded), a UInt32 length and the value.
public struct InviteView: Sendable, Equatable {
    /// The fields, in the order the shim expects.
    public enum Field: Int, CaseIterable, Sendable {
        case method, uri, uriUser, uriHost, from, fromUser, fromDisplay, to, toUser, callID, source, transport,
             contentType, body
    }

    /// The packed form handed to Lua: all the view holds (fields and headers are read back from it).
    public private(set) var packed: [UInt8]

    /// The field values by `Field.rawValue`.
    public var fields: [String?] {
        var r = Reader(packed)
        return Field.allCases.map { _ in r.string() }
    }

    /// Header elements in message order: (lower-cased canonical name, value).
    public var headers: [(name: String, value: String)] {
        var r = Reader(packed)
        for _ in Field.allCases { _ = r.string() }
        return (0..<Int(r.u32())).map { _ in (r.string() ?? "", r.string() ?? "") }
    }

    /// Builds the view of a request. `source` is the sender's `ip:port`, `transport` e.g. `udp`.
    /// Written straight into the packed form: the distributor builds one per call.
    public init(message: SIPMessage, source: String? = nil, transport: String? = nil) {
        var capacity = 256 + message.body.count
        for line in message.headers.lines { capacity += 24 + line.withValueBytes { $0.count } }
        var p = Packer(capacity: capacity)
        p.put(message.method?.rawValue)
        let uri = message.requestURI
        p.put(uri?.description)
        p.put(uri?.user)
        p.put(uri?.host)
        let from = (try? message.from()) ?? nil
        p.put(from?.uri.description)
        p.put(from?.uri.user)
        p.put(from?.displayName)
        let to = (try? message.to()) ?? nil
        p.put(to?.uri.description)
        p.put(to?.uri.user)
        p.put(message.callID)
        p.put(source)
        p.put(transport?.lowercased())
        if let ct = message.headers.value(.contentType) {
            p.put(((try? message.contentType())?.description) ?? ct)
        } else {
            p.put(String?.none)
        }
        p.put(message.body.isEmpty ? nil : message.bodyText)
        let countAt = p.placeholder()
        var count: UInt32 = 0
        for line in message.headers {
            let name = InviteView.normalizedName(line)
            if line.known?.isList ?? false {
                line.forEachElement { element in
                    p.put(name)
                    p.put(bytes: element)
                    count += 1
                }
            } else {
                p.put(name)
                line.withValueBytes { p.put(bytes: $0) }
                count += 1
            }
        }
        p.patch(countAt, count)
        packed = p.bytes
    }

    init(fields: [String?], headers: [(name: String, value: String)]) {
        var p = Packer(capacity: 256)
        for v in fields { p.put(v) }
        p.put32(UInt32(headers.count))
        for h in headers {
            p.put(h.name)
            p.put(h.value)
        }
        packed = p.bytes
    }

    /// Writes the packed form.
    struct Packer {
        var bytes: [UInt8] = []
        init(capacity: Int) { bytes.reserveCapacity(capacity) }
        mutating func put32(_ v: UInt32) { withUnsafeBytes(of: v) { bytes.append(contentsOf: $0) } }
        mutating func put(_ s: String?) {
            guard var s else { return put32(UInt32(bitPattern: -1)) }
            s.withUTF8 { put(bytes: $0) }
        }
        mutating func put(bytes b: UnsafeBufferPointer<UInt8>) {
            put32(UInt32(b.count))
            bytes.append(contentsOf: b)
        }
        mutating func placeholder() -> Int {
            put32(0)
            return bytes.count - 4
        }
        mutating func patch(_ at: Int, _ v: UInt32) {
            withUnsafeBytes(of: v) { for (i, b) in $0.enumerated() { bytes[at + i] = b } }
        }
    }

    /// Reads it back.
    struct Reader {
        let bytes: [UInt8]
        var at = 0
        init(_ bytes: [UInt8]) { self.bytes = bytes }
        mutating func u32() -> UInt32 {
            var v: UInt32 = 0
            withUnsafeMutableBytes(of: &v) { for i in 0..<4 { $0[i] = bytes[at + i] } }
            at += 4
            return v
        }
        mutating func skip() {
            let n = u32()
            if n != UInt32(bitPattern: -1) { at += Int(n) }
        }
        mutating func string() -> String? {
            let n = u32()
            guard n != UInt32(bitPattern: -1) else { return nil }
            defer { at += Int(n) }
            return String(decoding: bytes[at..<at + Int(n)], as: UTF8.self)
        }
    }

    public subscript(field: Field) -> String? {
        var r = Reader(packed)
        for _ in 0..<field.rawValue { r.skip() }
        return r.string()
    }

    /// `invite:header(name)`: the first value of a header (compact forms understood), or nil.
    public func header(_ name: String) -> String? {
        let key = InviteView.normalizedName(name)
        return headers.first { $0.name == key }?.value
    }

    /// The lower-cased canonical name Lua lookups use.
    static func normalizedName(_ line: SIPHeader) -> String {
        if let k = line.known { return lowerCanonical[Int(k.rawValue)] }
        return line.name.lowercased()
    }

    /// Every known header's canonical name, lower-cased, by raw value.
    static let lowerCanonical: [String] = KnownHeader.allCases.map { $0.canonicalName.lowercased() }

    static func normalizedName(_ name: String) -> String {
        HeaderName(name).text.lowercased()
    }

    /// Compact form letter -> lower-cased long name, from the message core's table.
    static let compactForms: [Character: String] = {
        var m: [Character: String] = [:]
        for h in KnownHeader.allCases {
            if let c = h.compactForm { m[Character(c.lowercased())] = h.canonicalName.lowercased() }
        }
        return m
    }()
}
