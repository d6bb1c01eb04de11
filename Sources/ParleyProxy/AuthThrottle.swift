/// Slows down and locks out password guessing (docs/security.md), as a value on an injected
/// clock (milliseconds), confined to its owner's event loop:
///
/// - a source address that fails `slowAfter` times within `window` has each later answer delayed,
///   doubling from `firstDelayMs` up to `maxDelayMs`; at `lockAfter` failures it is locked out for
///   `lockout`, and while locked every attempt it makes fails without its password being checked
///   (answered as a wrong password, after the longest delay, so it tells nothing);
/// - a user that fails `userSlowAfter` times within `window`, from any number of addresses, has
///   every check delayed by `userDelayMs` (successes too, else a quick answer would tell a right
///   guess), but is never locked: an attacker cannot keep the real agent from registering;
/// - unknown users share one entry, and the table of addresses holds at most `maxSources` (past
///   that, new addresses are tracked only through their user): what a stranger sends cannot grow
///   it without bound.
public struct AuthThrottle: Sendable {
    public struct Settings: Sendable, Equatable {
        public var window: Int64 = 300_000
        public var lockAfter = 10
        public var lockout: Int64 = 900_000
        public var slowAfter = 3
        public var firstDelayMs: Int64 = 250
        public var maxDelayMs: Int64 = 2_000
        public var userSlowAfter = 20
        public var userDelayMs: Int64 = 1_000
        public var maxSources = 65_536
        public init() {}
    }

    public let settings: Settings

    struct Record {
        /// Failure times within the window, oldest first.
        var failures: [Int64] = []
        var lockedUntil: Int64 = 0
        var lastSeen: Int64 = 0

        mutating func prune(now: Int64, window: Int64) {
            if let i = failures.firstIndex(where: { $0 > now - window }) {
                if i > 0 { failures.removeFirst(i) }
            } else {
                failures.removeAll()
            }
        }
    }

    private var sources: [[UInt8]: Record] = [:]
    private var lastSweep: Int64?
    private var users: [String: Record] = [:]
    /// The key all unknown user names share.
    public static let unknownUser = "\u{0}unknown"

    public init(settings: Settings = Settings()) { self.settings = settings }

    /// Addresses tracked now (tests).
    public var trackedSources: Int { sources.count }
    public var trackedUsers: Int { users.count }

    /// Whether the address is locked out now.
    public mutating func isLocked(source: [UInt8], now: Int64) -> Bool {
        guard let r = sources[source] else { return false }
        return r.lockedUntil > now
    }

    /// How long to wait before answering this attempt (the same whatever its outcome).
    public mutating func delay(source: [UInt8], user: String, now: Int64) -> Int64 {
        var d: Int64 = 0
        if var r = sources[source] {
            if r.lockedUntil > now {
                d = settings.maxDelayMs
            } else {
                r.prune(now: now, window: settings.window)
                sources[source] = r
                let over = r.failures.count - settings.slowAfter
                if over >= 0 { d = min(settings.maxDelayMs, settings.firstDelayMs << min(over, 20)) }
            }
        }
        if var u = users[user] {
            u.prune(now: now, window: settings.window)
            users[user] = u
            if u.failures.count >= settings.userSlowAfter { d = max(d, settings.userDelayMs) }
        }
        return d
    }

    /// A failed attempt (wrong password, unknown user). Returns true when it locked the address.
    @discardableResult
    public mutating func failed(source: [UInt8], user: String, now: Int64) -> Bool {
        var locked = false
        if sources[source] != nil || makeRoom(now: now) {
            var r = sources[source] ?? Record()
            r.prune(now: now, window: settings.window)
            r.failures.append(now)
            r.lastSeen = now
            if r.failures.count >= settings.lockAfter, r.lockedUntil <= now {
                r.lockedUntil = now + settings.lockout
                r.failures.removeAll()
                locked = true
            }
            sources[source] = r
        }
        var u = users[user] ?? Record()
        u.prune(now: now, window: settings.window)
        u.failures.append(now)
        if u.failures.count > settings.userSlowAfter * 4 { u.failures.removeFirst(u.failures.count - settings.userSlowAfter * 4) }
        users[user] = u
        return locked
    }

    /// A right password: the address's failures are forgotten (not a lock in force).
    public mutating func succeeded(source: [UInt8], user: String, now: Int64) {
        if var r = sources[source], r.lockedUntil <= now {
            r.failures.removeAll()
            if r.lockedUntil == 0 { sources[source] = nil } else { sources[source] = r }
        }
    }

    /// Room for one more address: drops what is neither locked nor failing within the window.
    private mutating func makeRoom(now: Int64) -> Bool {
        guard sources.count >= settings.maxSources else { return true }
        if let last = lastSweep, now - last < 1_000 { return false }  // a full table is swept once a second at most
        lastSweep = now
        let window = settings.window
        sources = sources.filter { $0.value.lockedUntil > now || ($0.value.failures.last ?? 0) > now - window }
        return sources.count < settings.maxSources
    }
}
