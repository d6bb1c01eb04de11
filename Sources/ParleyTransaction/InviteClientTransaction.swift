// The INVITE client transaction: RFC 3261 section 17.1.1 with the RFC 6026 changes (the
// Accepted state and Timer M, section 7.2; the figure of section 8.4).
//
//   start          -> Calling: send INVITE; A (unreliable only) and B
//   Calling        -- A fires          -> retransmit, A doubles (no cap; B bounds it)
//   Calling        -- B fires          -> timeout to TU, Terminated
//   Calling        -- TU gives up      -> A stops (no more retransmissions); B still runs
//   Calling/Proc.  -- 1xx              -> Proceeding, to TU (A and B stop)
//   Calling/Proc.  -- 2xx              -> Accepted, to TU, Timer M        (RFC 6026)
//   Calling/Proc.  -- 300-699          -> Completed, to TU, send ACK, Timer D (0 if reliable)
//   Completed      -- 300-699          -> send the ACK again
//   Completed      -- D fires          -> Terminated
//   Accepted       -- 2xx              -> to TU (the TU sends the ACK)     (RFC 6026)
//   Accepted       -- M fires          -> Terminated
//   any but Accepted -- transport error -> report to TU, Terminated (17.1.4)

import ParleySIP

/// An INVITE client transaction (RFC 3261 section 17.1.1, RFC 6026 section 7.2).
public struct InviteClientTransaction: TransactionStateMachine {
    /// The states of RFC 3261 figure 5 as amended by RFC 6026 figure 3.
    public enum State: Sendable, Hashable {
        case calling, proceeding, completed, accepted, terminated
    }

    public private(set) var state: State = .calling
    public private(set) var request: SIPMessage
    public let transport: TransportReliability
    public let timers: SIPTimers
    /// The ACK sent for the non-2xx final response, once there is one.
    public private(set) var ack: SIPMessage?
    private var book = TimerBook()
    private var started = false

    /// A transaction for `request` (an INVITE whose top Via carries the branch that names it).
    public init(request: SIPMessage, transport: TransportReliability, timers: SIPTimers = SIPTimers()) {
        self.request = request
        self.transport = transport
        self.timers = timers
    }

    public var isTerminated: Bool { state == .terminated }
    public var armedTimers: [ArmedTimer] { book.armed }

    /// Whether the TU may send a CANCEL for this INVITE now: a provisional response has arrived
    /// and no final one (RFC 3261 section 9.1).
    public var canCancel: Bool { state == .proceeding }

    public mutating func start(now: SIPInstant) -> [TransactionAction] {
        guard !started else { return [] }
        started = true
        var actions = [TransactionAction].forStep()
        actions.append(.send(request, retransmission: false))
        // 17.1.1.2: Timer A on unreliable transports only; Timer B always.
        if transport == .unreliable { book.start(.a, after: timers.timerA, now: now, &actions) }
        book.start(.b, after: timers.timerB, now: now, &actions)
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
            // 17.1.4; in Accepted the transaction sends nothing, so no send of its can fail.
            guard state != .accepted else { break }
            actions.append(.transportError)
            terminate(&actions)
        case .tuResponse:
            break
        case .tuGiveUp:
            // Nothing more goes out; Timer B still ends the wait for a late response.
            if state == .calling { book.cancel(.a, &actions) }
        }
        return actions
    }

    private mutating func receive(_ response: SIPMessage, code: Int, now: SIPInstant, _ actions: inout [TransactionAction]) {
        switch (state, code) {
        case (.calling, 100...199), (.proceeding, 100...199):
            // 17.1.1.2: Proceeding; stop retransmitting. Timer B only acts in Calling.
            if state == .calling {
                book.cancel(.a, &actions)
                book.cancel(.b, &actions)
                state = .proceeding
            }
            actions.append(.passToTU(response))
        case (.calling, 200...299), (.proceeding, 200...299):
            // RFC 6026 section 7.2: Accepted, Timer M; the TU, not the transaction, sends the ACK.
            book.cancelAll(&actions)
            state = .accepted
            request = request.compacted()
            actions.append(.passToTU(response))
            book.start(.m, after: timers.timerM, now: now, &actions)
        case (.accepted, 200...299):
            // RFC 6026 section 7.2: retransmitted or forked 2xx go up to the TU.
            actions.append(.passToTU(response))
        case (.calling, 300...699), (.proceeding, 300...699):
            // 17.1.1.2: Completed; pass up, ACK even on a reliable transport, Timer D.
            book.cancelAll(&actions)
            state = .completed
            actions.append(.passToTU(response))
            let ack = request.makeACK(for: response)
            self.ack = ack.detached()
            request = request.compacted()
            actions.append(.send(ack, retransmission: false))
            if transport == .reliable {
                terminate(&actions)
            } else {
                book.start(.d, after: timers.timerD, now: now, &actions)
            }
        case (.completed, 300...699):
            // 17.1.1.2: a retransmitted final response is answered with the ACK again and not
            // passed up.
            if let ack { actions.append(.send(ack, retransmission: true)) }
        default:
            // Provisional or 2xx after a non-2xx final, anything but 2xx in Accepted, codes
            // outside 100-699: discarded.
            break
        }
    }

    private mutating func fire(_ kind: TimerKind, interval: Duration, now: SIPInstant, _ actions: inout [TransactionAction]) {
        switch (state, kind) {
        case (.calling, .a):
            // 17.1.1.2: retransmit and double the interval.
            actions.append(.send(request, retransmission: true))
            book.start(.a, after: interval * 2, now: now, &actions)
        case (.calling, .b):
            // 17.1.1.2: inform the TU of the timeout; no ACK.
            actions.append(.timeout(.b))
            terminate(&actions)
        case (.completed, .d), (.accepted, .m):
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
