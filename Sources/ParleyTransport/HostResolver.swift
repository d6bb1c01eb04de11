import Dispatch
import NIOConcurrencyHelpers
import NIOCore

/// Host names to addresses for the destinations of SIP URIs (a Contact, a Route, a configured
/// agent or treatment), without blocking an event loop on every message.
///
/// An IP address is used as it is. A name is looked up once (getaddrinfo, which blocks) and kept
/// `ttl`; a failure is kept `negativeTTL`. After that, the address kept is still used while a
/// new lookup runs on a thread of its own, and replaces it when it answers: only the first
/// lookup of a name blocks its caller. A new lookup that fails keeps the old address for another
/// `negativeTTL` (a DNS outage does not take away an agent that was reachable). `parley serve` looks up every configured name at start
/// (`warm`), so a call to a configured agent never waits for DNS. RFC 3263's NAPTR and SRV steps
/// are not taken: the name's A/AAAA records and the URI's port (5060 by default) are used.
public final class HostResolver: Sendable {
    /// The resolver the call path and the proxy use.
    public static let shared = HostResolver()

    public let ttl: Int64
    public let negativeTTL: Int64
    private let now: @Sendable () -> Int64
    private let lookup: @Sendable (String) -> SocketAddress?

    private struct Entry {
        var address: SocketAddress?
        var expiresMs: Int64
        var refreshing = false
    }
    private let entries = NIOLockedValueBox<[String: Entry]>([:])
    private let refreshes = DispatchQueue(label: "parley.resolver", qos: .utility)

    /// - Parameters:
    ///   - ttlMs: how long an answer is used before it is looked up again (in the background).
    ///   - negativeTTLMs: how long a failed lookup is kept.
    ///   - now: a monotonic clock in ms (injected by tests).
    ///   - lookup: the name to one address (injected by tests; getaddrinfo by default).
    public init(ttlMs: Int64 = 60_000, negativeTTLMs: Int64 = 10_000,
                now: @escaping @Sendable () -> Int64 = { Int64(NIODeadline.now().uptimeNanoseconds / 1_000_000) },
                lookup: @escaping @Sendable (String) -> SocketAddress? = HostResolver.systemLookup) {
        self.ttl = ttlMs
        self.negativeTTL = negativeTTLMs
        self.now = now
        self.lookup = lookup
    }

    /// getaddrinfo's first answer for `host` (port 0).
    public static func systemLookup(_ host: String) -> SocketAddress? {
        try? SocketAddress.makeAddressResolvingHost(host, port: 0)
    }

    /// The address of `host` with `port`; nil when the name does not resolve.
    public func address(host: String, port: Int) -> SocketAddress? {
        if let ip = try? SocketAddress(ipAddress: host, port: port) { return ip }
        let key = host.lowercased()
        let t = now()
        enum Step { case use(SocketAddress?), refresh(SocketAddress?), resolve }
        let step: Step = entries.withLockedValue { all in
            guard var e = all[key] else { return .resolve }
            if t < e.expiresMs || e.refreshing { return .use(e.address) }
            e.refreshing = true
            all[key] = e
            return .refresh(e.address)
        }
        var found: SocketAddress?
        switch step {
        case .use(let a):
            found = a
        case .refresh(let a):
            found = a
            refreshes.async { [self] in store(key, lookup(key), keepingOld: true) }
        case .resolve:
            found = lookup(key)
            store(key, found)
        }
        guard var a = found else { return nil }
        a.port = port
        return a
    }

    /// Looks `host` up now (blocking) and keeps the answer: for names known before any call.
    @discardableResult
    public func warm(_ host: String) -> Bool {
        if (try? SocketAddress(ipAddress: host, port: 0)) != nil { return true }
        let key = host.lowercased()
        let a = lookup(key)
        store(key, a)
        return a != nil
    }

    private func store(_ key: String, _ address: SocketAddress?, keepingOld: Bool = false) {
        let t = now()
        entries.withLockedValue { all in
            if address == nil, keepingOld, let old = all[key]?.address {
                all[key] = Entry(address: old, expiresMs: t + negativeTTL)
            } else {
                all[key] = Entry(address: address, expiresMs: t + (address == nil ? negativeTTL : ttl))
            }
        }
    }
}
