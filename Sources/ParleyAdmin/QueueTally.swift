import ParleyRecords

/// Each queue's figures since local midnight, counted from the distributor's call events as they
/// happen, so that neither `queue.update` nor `GET /v1/queues` reads the records (a query over a
/// day's calls, once a second per queue, grows with the day). What the records held from before
/// this process started is read once (`setBase`) and added. A value: events in, figures out; the
/// day's bounds come from the injected `midnight`, the service-level threshold per queue from
/// `threshold`. On the distributor's loop only.
struct QueueTally {
    /// A call not yet ended: its queue, when it arrived and when an agent answered.
    struct Live: Equatable {
        var queue: String
        var arrivedMs: Int64
        var answeredMs: Int64?
    }

    private(set) var live: [String: Live] = [:]
    private var counts: [String: QueueToday] = [:]
    private var base: [String: QueueToday] = [:]
    private var baseDay: Int64?
    /// The day counted: [dayStart, dayEnd).
    private(set) var dayStart: Int64 = .min
    private var dayEnd: Int64 = .min
    /// Local midnight at or before a time (ms).
    let midnight: (Int64) -> Int64
    /// A queue's service-level threshold (ms).
    let threshold: (String) -> Int64

    init(midnight: @escaping (Int64) -> Int64, threshold: @escaping (String) -> Int64) {
        self.midnight = midnight
        self.threshold = threshold
    }

    /// Starts a new day when `now` is past the one counted.
    private mutating func roll(_ now: Int64) {
        guard now >= dayEnd else { return }
        dayStart = midnight(now)
        // The next midnight: 30 h on is inside tomorrow whether today has 23, 24 or 25 hours.
        dayEnd = midnight(dayStart + 30 * 3_600_000)
        counts = [:]
    }

    /// Counts into the call's queue, when it arrived today.
    private mutating func count(_ l: Live, _ body: (inout QueueToday) -> Void) {
        guard l.arrivedMs >= dayStart else { return }
        body(&counts[l.queue, default: QueueToday()])
    }

    /// A call event. Returns the call's entry as it was before the event (nil: a call this
    /// tally does not know, or an event it does not count).
    @discardableResult
    mutating func observe(_ e: ParleyRecords.CallEvent) -> Live? {
        switch e {
        case .arrived(let c, _, _, let queue, _, _, let at):
            roll(at)
            let l = Live(queue: queue, arrivedMs: at)
            live[c] = l
            count(l) { $0.offered += 1 }
            return l
        case .connected(let c, _, let at):
            guard let before = live[c] else { return nil }
            // A transfer target's answer is not a second answer.
            guard before.answeredMs == nil else { return before }
            live[c]?.answeredMs = at
            let wait = at - before.arrivedMs, limit = threshold(before.queue)
            count(before) { t in
                t.answered += 1
                t.waitTotalMs += wait
                if wait <= limit { t.answeredInTime += 1 }
            }
            return before
        case .completed(let c, _, let at):
            guard let before = live.removeValue(forKey: c) else { return nil }
            if let answered = before.answeredMs {
                count(before) { t in
                    t.completed += 1
                    t.handleTotalMs += at - answered
                }
            }
            return before
        case .abandoned(let c, let at):
            guard let before = live.removeValue(forKey: c) else { return nil }
            if before.answeredMs == nil {
                let late = at - before.arrivedMs > threshold(before.queue)
                count(before) { t in
                    t.abandoned += 1
                    if late { t.abandonedLate += 1 }
                }
            }
            return before
        case .failed(let c, _, _, _), .overflowed(let c, _, _, _, _):
            guard let before = live.removeValue(forKey: c) else { return nil }
            if before.answeredMs == nil { count(before) { $0.failed += 1 } }
            return before
        case .offered, .notAnswered, .treatment, .transferred, .agent, .trace:
            return nil
        }
    }

    /// What the records held for the day that began at `day`, from before the counting began.
    mutating func setBase(_ figures: [String: QueueToday], day: Int64) {
        base = figures
        baseDay = day
    }

    /// A queue's figures for the day `now` is in.
    mutating func today(_ queue: String, now: Int64) -> QueueToday {
        roll(now)
        let b = baseDay == dayStart ? base[queue] ?? QueueToday() : QueueToday()
        return b + (counts[queue] ?? QueueToday())
    }
}
