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

    /// The field values by `Field.rawValue`.
    public private(set) var fields: [String?]
    /// Header elements in message order: (lower-cased canonical name, value).
    public private(set) var headers: [(name: String, value: String)]
    /// The packed form handed to Lua.
    public private(set) var packed: [UInt8]

    public static func == (a: InviteView, b: InviteView) -> Bool { a.packed == b.packed }

    /// Builds the view of a request. `source` is the sender's `ip:port`, `transport` e.g. `udp`.
    public init(message: SIPMessage, source: String? = nil, transport: String? = nil) {
        var f = [String?](repeating: nil, count: Field.allCases.count)
        f[Field.method.rawValue] = message.method?.rawValue
        if let uri = message.requestURI {
            f[Field.uri.rawValue] = uri.description
            f[Field.uriUser.rawValue] = uri.user
            f[Field.uriHost.rawValue] = uri.host
        }
        if let from = try? message.from() {
            f[Field.from.rawValue] = from.uri.description
            f[Field.fromUser.rawValue] = from.uri.user
            f[Field.fromDisplay.rawValue] = from.displayName
        }
        if let to = try? message.to() {
            f[Field.to.rawValue] = to.uri.description
            f[Field.toUser.rawValue] = to.uri.user
        }
        f[Field.callID.rawValue] = message.callID
        f[Field.source.rawValue] = source
        f[Field.transport.rawValue] = transport?.lowercased()
        if let ct = message.headers.value(.contentType) {
            f[Field.contentType.rawValue] = ((try? message.contentType())?.description) ?? ct
        }
        f[Field.body.rawValue] = message.body.isEmpty ? nil : message.bodyText
        var hs: [(name: String, value: String)] = []
        for line in message.headers {
            let name = InviteView.normalizedName(line)
            for element in line.elements { hs.append((name, element)) }
        }
        self.init(fields: f, headers: hs)
    }

    init(fields: [String?], headers: [(name: String, value: String)]) {
        self.fields = fields
        self.headers = headers
        var p: [UInt8] = []
        p.reserveCapacity(256 + fields.reduce(0) { $0 + ($1?.utf8.count ?? 0) })
        func put32(_ v: UInt32) { withUnsafeBytes(of: v) { p.append(contentsOf: $0) } }
        for v in fields {
            if let v {
                put32(UInt32(v.utf8.count))
                p.append(contentsOf: v.utf8)
            } else {
                put32(UInt32(bitPattern: -1))
            }
        }
        put32(UInt32(headers.count))
        for h in headers {
            put32(UInt32(h.name.utf8.count))
            p.append(contentsOf: h.name.utf8)
            put32(UInt32(h.value.utf8.count))
            p.append(contentsOf: h.value.utf8)
        }
        packed = p
    }

    public subscript(field: Field) -> String? { fields[field.rawValue] }

    /// `invite:header(name)`: the first value of a header (compact forms understood), or nil.
    public func header(_ name: String) -> String? {
        let key = InviteView.normalizedName(name)
        return headers.first { $0.name == key }?.value
    }

    /// The lower-cased canonical name Lua lookups use.
    static func normalizedName(_ line: SIPHeader) -> String {
        (line.known?.canonicalName ?? line.name).lowercased()
    }

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
