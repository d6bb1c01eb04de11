#if canImport(Glibc)
import Glibc
#endif
import ParleyTransport

/// The process's file-descriptor limit, raised at start so that connections are refused by
/// Parley's own limits (with a clean close) before accept runs out of descriptors.
enum FileLimit {
    /// Descriptors kept for everything that is not a connection: listeners, the record and
    /// registration databases, the rule files, logs.
    static let reserve = 256

    /// Raises the soft limit to the hard one; returns the soft limit in force afterwards.
    @discardableResult
    static func raise() -> Int {
        var l = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &l) == 0 else { return 1024 }
        if l.rlim_cur < l.rlim_max {
            var raised = l
            raised.rlim_cur = l.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { l = raised }
        }
        return l.rlim_cur > rlim_t(Int32.max) ? Int(Int32.max) : Int(l.rlim_cur)
    }

    /// The configured limits with `max` cut to what `listeners` listeners can share of
    /// `descriptors` (less the reserve), so that together they never exhaust the table.
    static func fit(_ limits: ConnectionLimits, descriptors: Int, listeners: Int) -> ConnectionLimits {
        var l = limits
        let share = max(16, (descriptors - reserve) / max(1, listeners))
        l.maxConnections = min(l.maxConnections, share)
        l.maxPerSource = min(l.maxPerSource, l.maxConnections)
        return l
    }
}
