import NIOCore
import ParleySIP
import ParleyTransaction

/// The transport protocols Parley speaks.
public enum SIPTransportKind: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// TLS is TCP with TLS on it (RFC 3261 section 26, RFC 5630).
    case udp, tcp, tls

    /// As written in a Via header.
    public var viaName: String { rawValue.uppercased() }
    public var reliability: TransportReliability { self == .udp ? .unreliable : .reliable }
    public var description: String { rawValue }
    /// A byte stream (TCP or TLS): framed by Content-Length, with connections.
    public var isStream: Bool { self != .udp }
    /// The port when a URI names none (RFC 3261 19.1.2: 5061 for TLS).
    public var defaultPort: Int { self == .tls ? 5061 : 5060 }
    /// The `;transport=` parameter Contact and Record-Route carry for it ("" for UDP).
    public var uriParameter: String { self == .udp ? "" : ";transport=\(rawValue)" }

    /// Parses a Via transport or a `transport=` URI parameter.
    public init?(token: String) {
        switch token.lowercased() {
        case "udp": self = .udp
        case "tcp": self = .tcp
        case "tls": self = .tls
        default: return nil
        }
    }
}

/// Where a message came from.
public struct SIPSource: Sendable {
    public var transport: SIPTransportKind
    public var remote: SocketAddress
    public var local: SocketAddress?
    /// The connection it came on (TCP).
    public var connection: Channel?

    public init(transport: SIPTransportKind, remote: SocketAddress, local: SocketAddress? = nil, connection: Channel? = nil) {
        self.transport = transport
        self.remote = remote
        self.local = local
        self.connection = connection
    }
}

/// Where to send a message.
public struct SIPDestination: Sendable, CustomStringConvertible {
    public var transport: SIPTransportKind
    public var address: SocketAddress
    /// An existing connection to use first (TCP), such as the one a request came on.
    public var connection: Channel?

    public init(transport: SIPTransportKind, address: SocketAddress, connection: Channel? = nil) {
        self.transport = transport
        self.address = address
        self.connection = connection
    }

    public var description: String { "\(transport)://\(hostPort(address))" }
}

extension SIPDestination {
    /// A SIP or SIPS URI as a destination: maddr or host, the port (5060, or 5061 for TLS), and
    /// the transport its `transport` parameter names, TLS for `sips:` (RFC 3261 26.2), else
    /// `defaultTransport`. nil when the host does not resolve.
    public static func resolve(_ u: SIPURI, defaultTransport: SIPTransportKind = .udp) -> SIPDestination? {
        var kind = u.transportParameter.flatMap(SIPTransportKind.init(token:)) ?? defaultTransport
        if u.secure { kind = .tls }
        guard let address = HostResolver.shared.address(host: u.targetHost, port: u.port ?? kind.defaultPort) else { return nil }
        return SIPDestination(transport: kind, address: address)
    }
}

/// `IP:PORT` for IPv4, `[IP]:PORT` for IPv6.
public func hostPort(_ address: SocketAddress) -> String {
    let ip = address.ipAddress ?? "?"
    let port = address.port ?? 0
    if case .v6 = address { return "[\(ip)]:\(port)" }
    return "\(ip):\(port)"
}

/// Parses `IP:PORT`, `[IPv6]:PORT` or `host:PORT` into a socket address (a name is resolved once).
public func parseSocketAddress(_ text: String, defaultPort: Int = 5060) throws -> SocketAddress {
    var host = text
    var port = defaultPort
    if text.hasPrefix("[") {
        guard let close = text.firstIndex(of: "]") else { throw AddressError("'\(text)': missing ']'") }
        host = String(text[text.index(after: text.startIndex)..<close])
        let rest = text[text.index(after: close)...]
        if !rest.isEmpty {
            guard rest.hasPrefix(":"), let p = Int(rest.dropFirst()), (0...65535).contains(p) else {
                throw AddressError("'\(text)': invalid port")
            }
            port = p
        }
    } else if let colon = text.lastIndex(of: ":"), text.firstIndex(of: ":") == colon {
        host = String(text[..<colon])
        guard let p = Int(text[text.index(after: colon)...]), (0...65535).contains(p) else {
            throw AddressError("'\(text)': invalid port")
        }
        port = p
    }
    guard !host.isEmpty else { throw AddressError("'\(text)': missing host") }
    if let a = try? SocketAddress(ipAddress: host, port: port) { return a }
    do { return try SocketAddress.makeAddressResolvingHost(host, port: port) } catch {
        throw AddressError("'\(text)': cannot resolve \(host)")
    }
}

public struct AddressError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ d: String) { description = d }
}

extension SIPInstant {
    /// The current instant on NIO's monotonic clock.
    public static func now() -> SIPInstant {
        SIPInstant(milliseconds: Int64(NIODeadline.now().uptimeNanoseconds / 1_000_000))
    }
}

extension Duration {
    /// As a NIO time amount.
    public var timeAmount: TimeAmount {
        let c = components
        return .nanoseconds(c.seconds * 1_000_000_000 + c.attoseconds / 1_000_000_000)
    }
}
