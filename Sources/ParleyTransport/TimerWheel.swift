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
struct TimerWheel {
    enum Entry {
        case transaction(TransactionKey, TransactionTimer)
        case closure(TimerToken, () -> Void)
    }

    let resolutionMs: Int64
    private var buckets: [Int64: [Entry]] = [:]
    private var lastTick: Int64
    private(set) var count = 0

    init(now: SIPInstant, resolutionMs: Int64 = 10) {
        self.resolutionMs = resolutionMs
        self.lastTick = now.milliseconds / resolutionMs
    }

    mutating func add(_ entry: Entry, after: Duration, now: SIPInstant) {
        let ms = max(0, after.components.seconds * 1000 + after.components.attoseconds / 1_000_000_000_000_000)
        // Round up, and never into a bucket that has already been processed.
        let tick = max(lastTick + 1, (now.milliseconds + ms + resolutionMs - 1) / resolutionMs)
        buckets[tick, default: []].append(entry)
        count += 1
    }

    /// Removes and returns every entry due at `now`, in deadline order.
    mutating func due(now: SIPInstant) -> [Entry] {
        let tick = now.milliseconds / resolutionMs
        guard tick > lastTick else { return [] }
        var out: [Entry] = []
        if tick - lastTick > Int64(buckets.count) {
            // A long gap (a stalled loop): visit the occupied buckets instead of every tick.
            for t in buckets.keys.filter({ $0 <= tick }).sorted() { out += buckets.removeValue(forKey: t) ?? [] }
        } else {
            for t in (lastTick + 1)...tick { if let b = buckets.removeValue(forKey: t) { out += b } }
        }
        lastTick = tick
        count -= out.count
        return out
    }
}
