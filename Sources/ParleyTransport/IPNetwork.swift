import NIOCore

/// An IPv4 or IPv6 network (`10.0.0.0/8`, `2001:db8::/32`; a lone address is a /32 or /128):
/// who may open the tunnel, which peers are trusted past the per-source limits, where agents
/// may register their contacts.
public struct IPNetwork: Sendable, Hashable, CustomStringConvertible {
    /// The network's address bytes (4 or 16), host bits cleared.
    public let bytes: [UInt8]
    public let prefixLength: Int
    /// The network as an IPv6 one (IPv4 as IPv4-mapped), for matching a `SourceKey` with no
    /// allocation: its key and mask.
    let key: SourceKey
    let mask: SourceKey

    /// Parses `ADDRESS` or `ADDRESS/PREFIX`; nil if it is neither.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = Self.addressBytes(String(parts[0])) else { return nil }
        let bits = address.count * 8
        var length = bits
        if parts.count == 2 {
            guard let n = Int(parts[1]), n >= 0, n <= bits, !parts[1].hasPrefix("+") else { return nil }
            length = n
        }
        self.bytes = Self.masked(address, length)
        self.prefixLength = length
        (key, mask) = Self.keyAndMask(bytes, length)
    }

    /// The network that holds exactly this address.
    public init?(address: SocketAddress) {
        guard let b = Self.bytes(of: address) else { return nil }
        bytes = b
        prefixLength = b.count * 8
        (key, mask) = Self.keyAndMask(b, prefixLength)
    }

    /// Whether the source is in this network.
    public func contains(_ source: SourceKey) -> Bool {
        (source.hi ^ key.hi) & mask.hi == 0 && (source.lo ^ key.lo) & mask.lo == 0
    }

    static func keyAndMask(_ b: [UInt8], _ length: Int) -> (SourceKey, SourceKey) {
        let v6 = b.count == 4 ? [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF] + b : b
        let bits = b.count == 4 ? length + 96 : length
        var hi: UInt64 = 0, lo: UInt64 = 0
        for i in 0..<8 { hi = hi << 8 | UInt64(v6[i]) }
        for i in 8..<16 { lo = lo << 8 | UInt64(v6[i]) }
        let maskHi: UInt64 = bits >= 64 ? .max : (bits == 0 ? 0 : .max << (64 - bits))
        let maskLo: UInt64 = bits <= 64 ? 0 : (bits >= 128 ? .max : .max << (128 - bits))
        return (SourceKey(hi: hi, lo: lo), SourceKey(hi: maskHi, lo: maskLo))
    }

    /// Whether the address is in this network (an IPv4-mapped IPv6 address counts as IPv4).
    public func contains(_ address: SocketAddress) -> Bool {
        guard let b = Self.bytes(of: address) else { return false }
        return contains(bytes: b)
    }

    public func contains(bytes b: [UInt8]) -> Bool {
        guard b.count == bytes.count else { return false }
        return Self.masked(b, prefixLength) == bytes
    }

    public var description: String {
        let text: String
        if bytes.count == 4 {
            text = bytes.map(String.init).joined(separator: ".")
        } else {
            text = (try? SocketAddress(packedIPAddress: ByteBuffer(bytes: bytes), port: 0))?.ipAddress ?? "?"
        }
        return prefixLength == bytes.count * 8 ? text : "\(text)/\(prefixLength)"
    }

    /// The address's bytes (4 for IPv4 and IPv4-mapped IPv6, 16 for IPv6); nil for a Unix socket.
    public static func bytes(of address: SocketAddress) -> [UInt8]? {
        switch address {
        case .v4(let a):
            return withUnsafeBytes(of: a.address.sin_addr.s_addr) { Array($0) }
        case .v6(let a):
            let b = withUnsafeBytes(of: a.address.sin6_addr) { Array($0) }
            if b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xFF && b[11] == 0xFF { return Array(b[12...]) }
            return b
        default:
            return nil
        }
    }

    /// The bytes of an address written as text (IPv6 with or without brackets); nil otherwise.
    public static func addressBytes(_ text: String) -> [UInt8]? {
        let t = text.hasPrefix("[") && text.hasSuffix("]") ? String(text.dropFirst().dropLast()) : text
        guard !t.isEmpty, let a = try? SocketAddress(ipAddress: t, port: 0) else { return nil }
        return bytes(of: a)
    }

    static func masked(_ b: [UInt8], _ length: Int) -> [UInt8] {
        var out = b
        for i in 0..<out.count {
            let keep = max(0, min(8, length - i * 8))
            out[i] &= keep == 8 ? 0xFF : UInt8(truncatingIfNeeded: 0xFF << (8 - keep))
        }
        return out
    }
}

/// A source address as 128 bits (IPv4 as IPv4-mapped IPv6), made without allocating: the key of
/// the per-source tables that every received message touches.
public struct SourceKey: Hashable, Sendable {
    public var hi: UInt64
    public var lo: UInt64

    public init(hi: UInt64, lo: UInt64) {
        self.hi = hi
        self.lo = lo
    }

    /// nil for a Unix socket.
    public init?(_ address: SocketAddress) {
        switch address {
        case .v4(let a):
            hi = 0
            lo = 0x0000_FFFF_0000_0000 | UInt64(UInt32(bigEndian: a.address.sin_addr.s_addr))
        case .v6(let a):
            var h: UInt64 = 0, l: UInt64 = 0
            withUnsafeBytes(of: a.address.sin6_addr) { raw in
                for i in 0..<8 { h = h << 8 | UInt64(raw[i]) }
                for i in 8..<16 { l = l << 8 | UInt64(raw[i]) }
            }
            hi = h
            lo = l
        default:
            return nil
        }
    }
}

extension Array where Element == IPNetwork {
    /// Whether any of the networks holds the source.
    public func contains(_ source: SourceKey) -> Bool {
        contains { $0.contains(source) }
    }

    /// Whether any of the networks holds the address.
    public func contains(address: SocketAddress) -> Bool {
        guard let b = IPNetwork.bytes(of: address) else { return false }
        return contains { $0.contains(bytes: b) }
    }
}
