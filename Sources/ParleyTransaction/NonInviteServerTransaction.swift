// The non-INVITE server transaction: RFC 3261 section 17.2.2 (figure 8).
//
//   start          -> Trying: request to TU
//   Trying         -- request again     -> discarded
//   Trying/Proc.   -- 1xx from TU       -> send it, Proceeding
//   Proceeding     -- request again     -> send the last provisional again
//   Trying/Proc.   -- 200-699 from TU   -> send it, Completed, Timer J (0 if reliable)
//   Completed      -- request again     -> send the final response again
//   Completed      -- J fires           -> Terminated
//   Proceeding/Completed -- transport error -> report to TU, Terminated (17.2.4)

import ParleySIP

/// A non-INVITE server transaction (RFC 3261 section 17.2.2).
public struct NonInviteServerTransaction: TransactionStateMachine {
    /// The states of RFC 3261 figure 8.
    public enum State: Sendable, Hashable {
        case trying, proceeding, completed, terminated
    }

    public private(set) var state: State = .trying
    public let request: SIPMessage
    public let transport: TransportReliability
    public let timers: SIPTimers
    /// The last response sent: a provisional in Proceeding, the final one in Completed.
    public private(set) var lastResponse: SIPMessage?
    private var book = TimerBook()
    private var started = false

    /// A transaction for a received `request` (any method but INVITE and ACK).
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
        return [.passToTU(request)]
    }

    public mutating func handle(_ event: TransactionEvent, now: SIPInstant) -> [TransactionAction] {
        guard started, state != .terminated else { return [] }
        var actions = [TransactionAction].forStep()
        switch event {
        case .tuResponse(let response):
            guard let code = response.statusCode else { break }
            switch (state, code) {
            case (.trying, 100...199), (.proceeding, 100...199):
                state = .proceeding
                lastResponse = response
                actions.append(.send(response, retransmission: false))
            case (.trying, 200...699), (.proceeding, 200...699):
                // 17.2.2: Completed, Timer J (zero on a reliable transport).
                state = .completed
                lastResponse = response
                actions.append(.send(response, retransmission: false))
                if transport == .reliable {
                    terminate(&actions)
                } else {
                    book.start(.j, after: timers.timerJ, now: now, &actions)
                }
            default:
                // 17.2.2: further finals from the TU in Completed are discarded.
                break
            }
        case .received(let message):
            // 17.2.2: Trying discards request retransmissions; Proceeding and Completed send the
            // last response again.
            guard message.isRequest, state != .trying, let lastResponse else { break }
            actions.append(.send(lastResponse, retransmission: true))
        case .timerFired(let timer):
            guard book.fire(timer) != nil else { break }
            if state == .completed, timer.kind == .j { terminate(&actions) }
        case .transportError:
            actions.append(.transportError)
            terminate(&actions)
        case .tuGiveUp:
            break
        }
        return actions
    }

    private mutating func terminate(_ actions: inout [TransactionAction]) {
        book.cancelAll(&actions)
        state = .terminated
        actions.append(.terminated)
    }
}
