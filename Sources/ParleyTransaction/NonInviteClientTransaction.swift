// The non-INVITE client transaction: RFC 3261 section 17.1.2 (figure 6).
//
//   start           -> Trying: send request; E (unreliable only) and F
//   Trying          -- E fires        -> retransmit, E = min(2E, T2)
//   Proceeding      -- E fires        -> retransmit, E = T2
//   Trying/Proc.    -- F fires        -> timeout to TU, Terminated
//   Trying/Proc.    -- 1xx            -> Proceeding, to TU
//   Trying/Proc.    -- 200-699        -> Completed, to TU, Timer K (0 if reliable)
//   Completed       -- any response   -> absorbed
//   Completed       -- K fires        -> Terminated
//   any             -- transport error -> report to TU, Terminated (17.1.4)

import ParleySIP

/// A non-INVITE client transaction (RFC 3261 section 17.1.2).
public struct NonInviteClientTransaction: TransactionStateMachine {
    /// The states of RFC 3261 figure 6.
    public enum State: Sendable, Hashable {
        case trying, proceeding, completed, terminated
    }

    public private(set) var state: State = .trying
    public let request: SIPMessage
    public let transport: TransportReliability
    public let timers: SIPTimers
    private var book = TimerBook()
    private var started = false

    /// A transaction for `request` (any method but INVITE and ACK).
    public init(request: SIPMessage, transport: TransportReliability, timers: SIPTimers = SIPTimers()) {
        self.request = request
        self.transport = transport
        self.timers = timers
    }

    public var isTerminated: Bool { state == .terminated }
    public var armedTimers: [ArmedTimer] { book.armed }

    public mutating func start(now: SIPInstant) -> [TransactionAction] {
        guard !started else { return [] }
        started = true
        var actions = [TransactionAction].forStep()
        actions.append(.send(request, retransmission: false))
        // 17.1.2.2: Timer E on unreliable transports only; Timer F always.
        if transport == .unreliable { book.start(.e, after: timers.timerE, now: now, &actions) }
        book.start(.f, after: timers.timerF, now: now, &actions)
        return actions
    }

    public mutating func handle(_ event: TransactionEvent, now: SIPInstant) -> [TransactionAction] {
        guard started, state != .terminated else { return [] }
        var actions = [TransactionAction].forStep()
        switch event {
        case .received(let message):
            guard let code = message.statusCode else { break }
            receive(message, code: code, now: now, &actions)
        case .timerFired(let timer):
            guard let interval = book.fire(timer) else { break }
            fire(timer.kind, interval: interval, now: now, &actions)
        case .transportError:
            actions.append(.transportError)
            terminate(&actions)
        case .tuResponse, .tuGiveUp:
            break
        }
        return actions
    }

    private mutating func receive(_ response: SIPMessage, code: Int, now: SIPInstant, _ actions: inout [TransactionAction]) {
        switch (state, code) {
        case (.trying, 100...199), (.proceeding, 100...199):
            state = .proceeding
            actions.append(.passToTU(response))
        case (.trying, 200...699), (.proceeding, 200...699):
            // 17.1.2.2: Completed, Timer K (zero on a reliable transport).
            book.cancelAll(&actions)
            state = .completed
            actions.append(.passToTU(response))
            if transport == .reliable {
                terminate(&actions)
            } else {
                book.start(.k, after: timers.timerK, now: now, &actions)
            }
        default:
            // Completed absorbs response retransmissions; codes outside 100-699 are discarded.
            break
        }
    }

    private mutating func fire(_ kind: TimerKind, interval: Duration, now: SIPInstant, _ actions: inout [TransactionAction]) {
        switch (state, kind) {
        case (.trying, .e):
            // 17.1.2.2: retransmit; the interval doubles up to T2.
            actions.append(.send(request, retransmission: true))
            book.start(.e, after: min(interval * 2, timers.t2), now: now, &actions)
        case (.proceeding, .e):
            // 17.1.2.2: in Proceeding the interval is T2.
            actions.append(.send(request, retransmission: true))
            book.start(.e, after: timers.t2, now: now, &actions)
        case (.trying, .f), (.proceeding, .f):
            actions.append(.timeout(.f))
            terminate(&actions)
        case (.completed, .k):
            terminate(&actions)
        default:
            break
        }
    }

    private mutating func terminate(_ actions: inout [TransactionAction]) {
        book.cancelAll(&actions)
        state = .terminated
        actions.append(.terminated)
    }
}
