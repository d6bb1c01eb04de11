import ParleyTransaction

/// A cancellable handle for a timer set with `SIPStack.schedule(after:_:)`.
public final class TimerToken: @unchecked Sendable {
    fileprivate(set) var cancelled = false
    /// Stops the timer; harmless if it has fired.
    public func cancel() { cancelled = true }
}

/// A hashed timing wheel: timers land in 10 ms buckets and one periodic tick fires the due
/// buckets. Adding is O(1) and cancelling is a flag (transaction timers need no cancelling at
/// all: a machine ignores a timer generation it no longer has armed). NIO's scheduled tasks keep
/// a heap whose cancellation is linear, which at thousands of calls per second, each with
/// timers that live 32 s (Timer L, M), costs more than the SIP work.
///
/// The buckets of the next `span` ticks (81.92 s at 10 ms, past RFC 3261's longest timer,
/// 64*T1) are a ring indexed by tick; a timer further out waits in a map keyed by its tick.
/// A bucket about to be filled reserves as many places as the last bucket fired held, so a
/// busy bucket is allocated once rather than grown by doubling.
struct TimerWheel {
    enum Entry {
        case transaction(TransactionKey, TransactionTimer)
        case closure(TimerToken, () -> Void)
    }

    let resolutionMs: Int64
    static let span: Int64 = 8192
    private var ring = [[Entry]](repeating: [], count: Int(TimerWheel.span))
    private var far: [Int64: [Entry]] = [:]
    private var lastTick: Int64
    /// How many entries the last fired bucket held: what an empty bucket reserves.
    private var typicalBucket = 4
    private(set) var count = 0

    init(now: SIPInstant, resolutionMs: Int64 = 10) {
        self.resolutionMs = resolutionMs
        self.lastTick = now.milliseconds / resolutionMs
    }

    mutating func add(_ entry: Entry, after: Duration, now: SIPInstant) {
        let ms = max(0, after.components.seconds * 1000 + after.components.attoseconds / 1_000_000_000_000_000)
        // Round up, and never into a bucket that has already been processed.
        let tick = max(lastTick + 1, (now.milliseconds + ms + resolutionMs - 1) / resolutionMs)
        count += 1
        guard tick - lastTick < Self.span else {
            far[tick, default: []].append(entry)
            return
        }
        let i = Int(tick % Self.span)
        if ring[i].capacity == 0 { ring[i].reserveCapacity(typicalBucket) }
        ring[i].append(entry)
    }

    /// Removes and returns every entry due at `now`, in deadline order.
    mutating func due(now: SIPInstant) -> [Entry] {
        let tick = now.milliseconds / resolutionMs
        guard tick > lastTick else { return [] }
        var out: [Entry] = []
        // Every ring entry is within `span` ticks after `lastTick`: after a longer gap (a stalled
        // loop) each bucket is visited once, in tick order, and all of them are due.
        let last = min(tick, lastTick + Self.span)
        for t in (lastTick + 1)...last {
            let i = Int(t % Self.span)
            if !ring[i].isEmpty {
                typicalBucket = max(4, ring[i].count)
                if out.isEmpty { swap(&out, &ring[i]) } else { out += ring[i]; ring[i] = [] }
            }
            if !far.isEmpty, let f = far.removeValue(forKey: t) { out += f }
        }
        if tick > last, !far.isEmpty {
            // After a long gap, the far entries past the ring's reach that are due, in order.
            for t in far.keys.filter({ $0 <= tick }).sorted() { out += far.removeValue(forKey: t) ?? [] }
        }
        lastTick = tick
        count -= out.count
        return out
    }
}
