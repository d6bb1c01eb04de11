/// What one source address may make a listener do (docs/security.md), as a value on an injected
/// clock (milliseconds), confined to its transport's event loop:
///
/// - **request rate** (Kamailio's pike idea): each address has a bucket of `burst` requests,
///   refilled at `requestsPerSecond`; an address that empties it is ignored for `blockMs` (its
///   requests are dropped unanswered, and counted);
/// - **no amplification**: over UDP, the responses sent to an address (retransmissions included)
///   never come to more than `amplification` times the bytes received from it. A request sent
///   with a spoofed source makes Parley send the victim at most that much; a real peer, which
///   sends its ACKs and requests, never comes near it.
///
/// Trusted addresses (a carrier's SBC, the other role) are exempt from both. The table holds at
/// most `maxSources` addresses; a full table is swept once a second of what is idle, and past
/// that a new address goes untracked (admitted) rather than letting the table grow.
public struct SourceGuard: Sendable {
    public struct Settings: Sendable, Equatable, CustomStringConvertible {
        public var requestsPerSecond = 100.0
        public var burst = 400.0
        public var blockMs: Int64 = 30_000
        public var amplification = 3
        public var trusted: [IPNetwork] = []
        public var maxSources = 65_536
        public init() {}

        public var description: String {
            "requests_per_second=\(requestsPerSecond) burst=\(burst) block=\(blockMs)ms amplification=\(amplification) trusted=\(trusted.map(\.description).joined(separator: ","))"
        }
    }

    public struct Counters: Sendable, Equatable {
        /// Requests dropped because their address was over its rate or blocked.
        public var dropped = 0
        /// Times an address was blocked.
        public var blocked = 0
        /// Responses not sent because they would have exceeded the amplification bound.
        public var withheld = 0
        public init() {}
    }

    struct Entry {
        var tokens: Double
        var refilledAt: Int64
        var blockedUntil: Int64 = 0
        var received = 0
        var sent = 0
        var seen: Int64
    }

    public var settings: Settings
    public private(set) var counters = Counters()
    private var entries: [SourceKey: Entry] = [:]
    private var lastSweep: Int64?

    public init(settings: Settings = Settings()) { self.settings = settings }

    /// Addresses tracked now (tests).
    public var tracked: Int { entries.count }

    /// A message of `bytes` from `source`: whether to take it. Responses are always taken (they
    /// answer our requests) but count toward what the address may be sent.
    public mutating func admit(_ source: SourceKey, isRequest: Bool, bytes: Int, now: Int64) -> Bool {
        if settings.trusted.contains(source) { return true }
        guard var e = entry(source, now: now) else { return true }
        e.received += bytes
        e.seen = now
        defer { entries[source] = e }
        guard isRequest else { return true }
        if e.blockedUntil > now {
            counters.dropped += 1
            return false
        }
        e.tokens = min(settings.burst, e.tokens + Double(now - e.refilledAt) * settings.requestsPerSecond / 1000)
        e.refilledAt = now
        if e.tokens < 1 {
            e.blockedUntil = now + settings.blockMs
            counters.blocked += 1
            counters.dropped += 1
            return false
        }
        e.tokens -= 1
        return true
    }

    /// Bytes `source` sent that another loop read and rated (shards): counted toward what the
    /// address may be sent from here, with no rate applied.
    public mutating func credit(_ source: SourceKey, bytes: Int, now: Int64) {
        if settings.trusted.contains(source) { return }
        guard var e = entry(source, now: now) else { return }
        e.received += bytes
        e.seen = now
        entries[source] = e
    }

    /// Whether a response of `bytes` may go to `destination` over UDP (and counts it if so).
    public mutating func mayRespond(to destination: SourceKey, bytes: Int, now: Int64) -> Bool {
        if settings.trusted.contains(destination) { return true }
        guard var e = entries[destination] else {
            // Untracked because the table is full: sent (the table must not decide for it).
            if entries.count >= settings.maxSources { return true }
            // Nothing ever came from there: a response to no request.
            counters.withheld += 1
            return false
        }
        guard e.sent + bytes <= e.received * settings.amplification else {
            counters.withheld += 1
            return false
        }
        e.sent += bytes
        entries[destination] = e
        return true
    }

    /// Whether the address is blocked now (tests, logs).
    public func isBlocked(_ source: SourceKey, now: Int64) -> Bool {
        (entries[source]?.blockedUntil ?? 0) > now
    }

    private mutating func entry(_ source: SourceKey, now: Int64) -> Entry? {
        if let e = entries[source] { return e }
        if entries.count >= settings.maxSources {
            guard lastSweep.map({ now - $0 >= 1_000 }) ?? true else { return nil }
            lastSweep = now
            // Idle for a minute and not blocked: forgotten (its bucket would be full again).
            entries = entries.filter { $0.value.blockedUntil > now || now - $0.value.seen < 60_000 }
            guard entries.count < settings.maxSources else { return nil }
        }
        return Entry(tokens: settings.burst, refilledAt: now, seen: now)
    }
}
