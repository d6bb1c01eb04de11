// What goes into a transaction state machine and what comes out. A driver (the transport layer
// on an event loop) feeds `TransactionEvent`s in with the current time and performs the
// `TransactionAction`s that come back, in order. The machines never read a clock, never
// schedule anything and never touch a socket.

import ParleySIP

/// One armed timer: which timer, and the generation that tells this arming apart from earlier
/// and later armings of the same timer. A machine ignores a `timerFired` whose generation is not
/// the one it currently has armed, so a driver that could not cancel a timer in time does no harm.
public struct TransactionTimer: Sendable, Hashable, CustomStringConvertible {
    public var kind: TimerKind
    /// Unique within one transaction; grows with each timer the transaction arms.
    public var generation: UInt64

    public init(_ kind: TimerKind, generation: UInt64) {
        self.kind = kind
        self.generation = generation
    }

    public var description: String { "\(kind)#\(generation)" }
}

/// An input to a transaction state machine. Every event comes with `now`.
public enum TransactionEvent: Sendable, Equatable {
    /// The TU sends a response (server transactions only; client transactions ignore it).
    case tuResponse(SIPMessage)
    /// The transport layer received a message that matched this transaction (17.1.3, 17.2.3):
    /// a response for a client transaction; a retransmitted request or an ACK for a server one.
    case received(SIPMessage)
    /// A timer the machine asked for has fired.
    case timerFired(TransactionTimer)
    /// The transport layer failed to send a message of this transaction (17.1.4, 17.2.4).
    case transportError
    /// The TU has given an INVITE up before any response (a proxy branch past its time): the
    /// INVITE client transaction stops retransmitting (Timer A) but stays until Timer B for a
    /// late response, so a late provisional can still be CANCELled (9.1, 16.8). Others ignore it.
    case tuGiveUp
}

/// An output of a transaction state machine, to be performed by the driver in order.
public enum TransactionAction: Sendable, Equatable {
    /// Send this message. A client transaction's messages (the request, its retransmissions and
    /// the ACK for a non-2xx final response) go where the request was sent (17.1.1.3); a server
    /// transaction's responses go back per the top Via (18.2.2). `retransmission` is true when
    /// the same message was sent before by this transaction.
    case send(SIPMessage, retransmission: Bool)
    /// Pass this message up to the transaction user: a response (client) or the request, or an
    /// ACK for a 2xx (server).
    case passToTU(SIPMessage)
    /// Arm a timer that fires `after` from now; report it back with `.timerFired(timer)`.
    case startTimer(TransactionTimer, after: Duration)
    /// The machine no longer needs this timer. Cancelling it is optional: a stale timer that
    /// still fires is ignored.
    case cancelTimer(TransactionTimer)
    /// Tell the TU the transaction failed with a timeout: Timer B or F (no final response) or
    /// Timer H (no ACK for a non-2xx final response).
    case timeout(TimerKind)
    /// Tell the TU the transport failed to send a message of this transaction.
    case transportError
    /// The transaction is over: forget it (a `TransactionTable` does so itself).
    case terminated
}

extension Array where Element == TransactionAction {
    /// An empty list with room for what one step of a machine emits (a handful at most), so it
    /// is allocated once instead of grown append by append.
    static func forStep() -> [TransactionAction] {
        var actions: [TransactionAction] = []
        actions.reserveCapacity(6)
        return actions
    }
}

/// What the four transaction state machines have in common.
public protocol TransactionStateMachine: Sendable {
    /// The request that created the transaction.
    var request: SIPMessage { get }
    /// Whether the transaction has reached its Terminated state.
    var isTerminated: Bool { get }
    /// The timers armed now, with their deadlines.
    var armedTimers: [ArmedTimer] { get }
    /// Begins the transaction: a client transaction sends its request, a server transaction
    /// passes its request to the TU. Call once, right after creating the machine.
    mutating func start(now: SIPInstant) -> [TransactionAction]
    /// Feeds one event in and returns what to do. Events before `start` or after termination
    /// are ignored (no actions).
    mutating func handle(_ event: TransactionEvent, now: SIPInstant) -> [TransactionAction]
}

extension TransactionStateMachine {
    /// The earliest deadline among the armed timers, if any.
    public var nextDeadline: SIPInstant? { armedTimers.map(\.deadline).min() }
}

/// A timer a machine has armed: what the driver was told to schedule, and when it is due.
public struct ArmedTimer: Sendable, Hashable {
    public var timer: TransactionTimer
    /// `now` when it was armed plus its duration.
    public var deadline: SIPInstant
    /// The duration it was armed with (the current retransmission interval for A, E and G).
    public var interval: Duration
}

/// The timers one machine has armed, and the generation counter. Every arming and disarming
/// writes the matching action, so the driver's view and the machine's never drift apart.
struct TimerBook: Sendable, Hashable {
    private(set) var armed: [ArmedTimer] = []
    private var nextGeneration: UInt64 = 1

    mutating func start(_ kind: TimerKind, after: Duration, now: SIPInstant, _ actions: inout [TransactionAction]) {
        cancel(kind, &actions)
        let timer = TransactionTimer(kind, generation: nextGeneration)
        nextGeneration += 1
        if armed.capacity == 0 { armed.reserveCapacity(3) }  // a transaction arms at most three at once
        armed.append(ArmedTimer(timer: timer, deadline: now + after, interval: after))
        actions.append(.startTimer(timer, after: after))
    }

    mutating func cancel(_ kind: TimerKind, _ actions: inout [TransactionAction]) {
        if let i = armed.firstIndex(where: { $0.timer.kind == kind }) {
            actions.append(.cancelTimer(armed[i].timer))
            armed.remove(at: i)
        }
    }

    mutating func cancelAll(_ actions: inout [TransactionAction]) {
        for a in armed { actions.append(.cancelTimer(a.timer)) }
        armed.removeAll()
    }

    func isArmed(_ kind: TimerKind) -> Bool { armed.contains { $0.timer.kind == kind } }

    /// If `timer` is the one armed now, disarms it and returns its interval; nil for a stale
    /// or unknown timer.
    mutating func fire(_ timer: TransactionTimer) -> Duration? {
        guard let i = armed.firstIndex(where: { $0.timer == timer }) else { return nil }
        return armed.remove(at: i).interval
    }
}
