// Timer values of RFC 3261 section 17 (Table 4 in appendix A) and RFC 6026 section 8.11, and the
// instant type the state machines are driven with. Nothing here reads a clock: the driver passes
// `now` with every event and schedules the timers the machines ask for.

/// A point in time as the driver sees it, in whole milliseconds from an origin of its choosing
/// (a monotonic clock in production, zero in tests).
public struct SIPInstant: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Milliseconds since the driver's origin.
    public var milliseconds: Int64

    /// An instant `milliseconds` after the driver's origin.
    public init(milliseconds: Int64) { self.milliseconds = milliseconds }

    /// The origin.
    public static let zero = SIPInstant(milliseconds: 0)

    public static func < (a: SIPInstant, b: SIPInstant) -> Bool { a.milliseconds < b.milliseconds }

    /// The instant `duration` later, rounded up to the next whole millisecond so a deadline is
    /// never earlier than asked.
    public static func + (instant: SIPInstant, duration: Duration) -> SIPInstant {
        SIPInstant(milliseconds: instant.milliseconds + duration.wholeMillisecondsRoundedUp)
    }

    /// The time from `b` to `a`.
    public static func - (a: SIPInstant, b: SIPInstant) -> Duration {
        .milliseconds(a.milliseconds - b.milliseconds)
    }

    public var description: String { "\(milliseconds)ms" }
}

extension Duration {
    /// This duration in milliseconds, a partial millisecond counted as a whole one.
    var wholeMillisecondsRoundedUp: Int64 {
        let (seconds, attoseconds) = components
        let perMillisecond: Int64 = 1_000_000_000_000_000
        var ms = seconds * 1000 + attoseconds / perMillisecond
        if attoseconds % perMillisecond > 0 { ms += 1 }
        return ms
    }
}

/// The timers of the transaction layer. Each names the RFC 3261 (or RFC 6026) timer it is.
public enum TimerKind: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Timer A: INVITE request retransmission interval, unreliable transports only (17.1.1.2).
    case a
    /// Timer B: INVITE client transaction timeout (17.1.1.2).
    case b
    /// Timer C: proxy INVITE transaction timeout (16.6 step 11). Used by the proxy core; these
    /// state machines never arm it.
    case c
    /// Timer D: wait time for response retransmissions in Completed (17.1.1.2).
    case d
    /// Timer E: non-INVITE request retransmission interval, unreliable transports only (17.1.2.2).
    case e
    /// Timer F: non-INVITE client transaction timeout (17.1.2.2).
    case f
    /// Timer G: INVITE non-2xx final response retransmission interval (17.2.1).
    case g
    /// Timer H: wait time for the ACK of a non-2xx final response (17.2.1).
    case h
    /// Timer I: wait time for ACK retransmissions in Confirmed (17.2.1).
    case i
    /// Timer J: wait time for non-INVITE request retransmissions in Completed (17.2.2).
    case j
    /// Timer K: wait time for non-INVITE response retransmissions in Completed (17.1.2.2).
    case k
    /// Timer L: wait time for INVITE retransmissions in Accepted (RFC 6026 section 7.1).
    case l
    /// Timer M: wait time for 2xx retransmissions and forked 2xx in Accepted (RFC 6026 section 7.2).
    case m
    /// The 100 Trying delay: an INVITE server transaction sends 100 Trying when the TU has sent
    /// no provisional response this long after the INVITE arrived (17.2.1, "200 ms").
    case trying

    public var description: String { self == .trying ? "Trying" : "Timer " + rawValue.uppercased() }
}

/// Whether the transport a transaction uses is reliable (TCP, TLS, SCTP, WebSocket) or not (UDP).
/// Over a reliable transport no retransmission timer (A, E, G) is armed and the wait timers
/// D, I, J and K are zero, so those states end at once (RFC 3261 sections 17.1.1.2 to 17.2.2).
public enum TransportReliability: Sendable, Hashable {
    case unreliable
    case reliable
}

/// The timer values of RFC 3261 Table 4 and RFC 6026, derived from T1, T2 and T4. Any timer
/// can be overridden; an override wins over the derived value.
///
/// ```swift
/// var timers = SIPTimers()            // T1 500 ms, T2 4 s, T4 5 s
/// timers.t1 = .milliseconds(250)      // A, E, G follow; B, F, H, J, L, M become 16 s
/// timers.timerD = .seconds(40)        // an override
/// ```
public struct SIPTimers: Sendable, Hashable {
    /// T1, the round-trip time estimate (500 ms).
    public var t1: Duration
    /// T2, the longest retransmission interval for non-INVITE requests and INVITE responses (4 s).
    public var t2: Duration
    /// T4, the longest time a message stays in the network (5 s).
    public var t4: Duration
    private var overrides: [TimerKind: Duration]

    /// The RFC 3261 defaults, or other base values.
    public init(t1: Duration = .milliseconds(500), t2: Duration = .seconds(4), t4: Duration = .seconds(5)) {
        self.t1 = t1
        self.t2 = t2
        self.t4 = t4
        self.overrides = [:]
    }

    /// The value of a timer on an unreliable transport: the override if set, else RFC 3261
    /// Table 4 (A, E, G: T1; B, F, H, J: 64*T1; C: 3 min 1 s, the RFC asks for more than 3 min;
    /// D: 32 s; I, K: T4), RFC 6026 (L, M: 64*T1), and 200 ms for the 100 Trying delay.
    public subscript(kind: TimerKind) -> Duration {
        get {
            if let v = overrides[kind] { return v }
            switch kind {
            case .a, .e, .g: return t1
            case .b, .f, .h, .j, .l, .m: return t1 * 64
            case .c: return .seconds(181)
            case .d: return .seconds(32)
            case .i, .k: return t4
            case .trying: return .milliseconds(200)
            }
        }
        set { overrides[kind] = newValue }
    }

    /// The value of a timer on the given transport: D, I, J and K are zero on a reliable one.
    public func value(_ kind: TimerKind, on transport: TransportReliability) -> Duration {
        if transport == .reliable {
            switch kind {
            case .d, .i, .j, .k: return .zero
            default: break
            }
        }
        return self[kind]
    }

    /// Removes an override, so the timer is derived from T1, T2 and T4 again.
    public mutating func removeOverride(_ kind: TimerKind) { overrides[kind] = nil }

    /// Timer A (initially T1).
    public var timerA: Duration { get { self[.a] } set { self[.a] = newValue } }
    /// Timer B (64*T1).
    public var timerB: Duration { get { self[.b] } set { self[.b] = newValue } }
    /// Timer C (more than 3 minutes).
    public var timerC: Duration { get { self[.c] } set { self[.c] = newValue } }
    /// Timer D (32 s on unreliable transports; zero on reliable ones).
    public var timerD: Duration { get { self[.d] } set { self[.d] = newValue } }
    /// Timer E (initially T1).
    public var timerE: Duration { get { self[.e] } set { self[.e] = newValue } }
    /// Timer F (64*T1).
    public var timerF: Duration { get { self[.f] } set { self[.f] = newValue } }
    /// Timer G (initially T1).
    public var timerG: Duration { get { self[.g] } set { self[.g] = newValue } }
    /// Timer H (64*T1).
    public var timerH: Duration { get { self[.h] } set { self[.h] = newValue } }
    /// Timer I (T4 on unreliable transports; zero on reliable ones).
    public var timerI: Duration { get { self[.i] } set { self[.i] = newValue } }
    /// Timer J (64*T1 on unreliable transports; zero on reliable ones).
    public var timerJ: Duration { get { self[.j] } set { self[.j] = newValue } }
    /// Timer K (T4 on unreliable transports; zero on reliable ones).
    public var timerK: Duration { get { self[.k] } set { self[.k] = newValue } }
    /// Timer L (64*T1, RFC 6026).
    public var timerL: Duration { get { self[.l] } set { self[.l] = newValue } }
    /// Timer M (64*T1, RFC 6026).
    public var timerM: Duration { get { self[.m] } set { self[.m] = newValue } }
    /// How long an INVITE server transaction waits for a provisional response from the TU before
    /// it sends 100 Trying itself (200 ms). Zero sends 100 Trying as soon as the INVITE arrives.
    public var tryingDelay: Duration { get { self[.trying] } set { self[.trying] = newValue } }
}
