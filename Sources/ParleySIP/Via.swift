/// One Via value (RFC 3261 section 20.42, RFC 3581 for rport).
public struct Via: Sendable, Hashable, CustomStringConvertible {
    public var protocolName: String
    public var protocolVersion: String
    /// The transport as written (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`, ...).
    public var transport: String
    public var host: SIPHost
    public var port: Int?
    public var parameters: [SIPParameter]

    /// The RFC 3261 magic cookie that starts every compliant branch.
    public static let magicCookie = "z9hG4bK"

    public init(transport: String, host: SIPHost, port: Int? = nil, branch: String? = nil,
                parameters: [SIPParameter] = []) {
        self.protocolName = "SIP"
        self.protocolVersion = "2.0"
        self.transport = transport
        self.host = host
        self.port = port
        self.parameters = parameters
        if let branch { self.parameters.set("branch", branch) }
    }

    public var branch: String? { parameters.value("branch") }
    public var received: String? { parameters.value("received") }
    public var maddr: String? { parameters.value("maddr") }
    public var ttl: String? { parameters.value("ttl") }
    /// `rport` present: `.some(nil)` when it has no value yet (a request asking for it),
    /// `.some(port)` once filled in by the server.
    public var rport: Int?? {
        guard let v = parameters.value("rport") else { return nil }
        return .some(Int(v))
    }

    /// Whether the branch starts with the RFC 3261 magic cookie.
    public var isRFC3261Branch: Bool { branch?.hasPrefix(Via.magicCookie) ?? false }

    /// `host[:port]` as written in the sent-by.
    public var sentBy: String {
        port.map { "\(host):\($0)" } ?? host.description
    }

    public var description: String {
        var s = protocolName + "/" + protocolVersion + "/" + transport + " " + sentBy
        parameters.write(to: &s)
        return s
    }

    public static func parse(_ text: String) throws(SIPSyntaxError) -> Via {
        try withBytes(text) { buf throws(SIPSyntaxError) in try parse(bytes: buf) }
    }

    public static func parse(bytes buf: UnsafeBufferPointer<UInt8>) throws(SIPSyntaxError) -> Via {
        var cur = ByteCursor(buf)
        let v = try parse(&cur)
        cur.skipWS()
        guard cur.atEnd else { throw SIPSyntaxError("unexpected text after Via value") }
        return v
    }

    static func parse(_ cur: inout ByteCursor) throws(SIPSyntaxError) -> Via {
        cur.skipWS()
        guard let name = cur.token() else { throw SIPSyntaxError("missing protocol name") }
        guard cur.separator(ASCII.slash), let version = cur.token() else { throw SIPSyntaxError("missing protocol version") }
        guard cur.separator(ASCII.slash), let transport = cur.token() else { throw SIPSyntaxError("missing transport") }
        let afterTransport = cur.pos
        cur.skipWS()
        guard cur.pos > afterTransport else { throw SIPSyntaxError("missing white space before sent-by") }
        let hostStart = cur.pos
        if cur.peek == ASCII.lbracket {
            cur.scan { $0 == ASCII.rbracket }
            _ = cur.consume(ASCII.rbracket)
        } else {
            cur.scan { $0 == ASCII.colon || $0 == ASCII.semicolon || ASCII.isWS($0) || $0 == ASCII.comma }
        }
        let host = try SIPHost.parse(cur.buf, hostStart..<cur.pos)
        var port: Int?
        if cur.separator(ASCII.colon) {
            let ps = cur.pos
            while let c = cur.peek, ASCII.isDigit(c) { cur.pos += 1 }
            port = try parsePort(cur.buf, ps..<cur.pos)
        }
        let params = try parseHeaderParameters(&cur, room: 4)
        if let b = params.value("branch"), b.isEmpty { throw SIPSyntaxError("empty branch") }
        var v = Via(transport: cur.string(transport), host: host, port: port, parameters: params)
        v.protocolName = cur.string(name)
        v.protocolVersion = cur.string(version)
        return v
    }
}
