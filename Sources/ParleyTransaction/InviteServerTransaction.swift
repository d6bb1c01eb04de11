// The INVITE server transaction: RFC 3261 section 17.2.1 with the RFC 6026 changes (the
// Accepted state and Timer L, section 7.1; the figure of section 8.7).
//
//   start        -> Proceeding: INVITE to TU; 100 Trying now, or after the Trying delay
//                   unless the TU has sent a response by then
//   Proceeding   -- Trying delay fires  -> send 100 Trying
//   Proceeding   -- 1xx from TU         -> send it
//   Proceeding   -- INVITE again        -> send the last provisional again (100 Trying if none yet)
//   Proceeding   -- 2xx from TU         -> send it, Accepted, Timer L             (RFC 6026)
//   Proceeding   -- 300-699 from TU     -> send it, Completed, G (unreliable only) and H
//   Completed    -- INVITE again        -> send the final response again
//   Completed    -- G fires             -> send the final response again, G = min(2G, T2)
//   Completed    -- H fires             -> timeout to TU, Terminated
//   Completed    -- ACK                 -> Confirmed (absorbed), Timer I (0 if reliable)
//   Confirmed    -- ACK                 -> absorbed
//   Confirmed    -- I fires             -> Terminated
//   Accepted     -- INVITE again        -> absorbed, not passed to the TU           (RFC 6026)
//   Accepted     -- ACK                 -> to TU                                    (RFC 6026)
//   Accepted     -- 2xx from TU         -> send it (the TU retransmits its 2xx)     (RFC 6026)
//   Accepted     -- L fires             -> Terminated
//   Proceeding, Completed, Accepted -- transport error -> report to TU, state unchanged:
//                   RFC 6026 figure 5 draws these as loops, so the transaction keeps absorbing
//                   retransmissions until H or L ends it (RFC 3261 figure 7 terminated instead).

import ParleySIP

/// An INVITE server transaction (RFC 3261 section 17.2.1, RFC 6026 section 7.1).
///
/// 100 Trying: with the default `SIPTimers.tryingDelay` of 200 ms the transaction arms the
/// `.trying` timer and sends 100 Trying when it fires, unless the TU has sent any response by
/// then (17.2.1: "unless it knows that the TU will generate a provisional or final response
/// within 200 ms"). A delay of zero sends 100 Trying as soon as the transaction starts.
public struct InviteServerTransaction: TransactionStateMachine {
    /// The states of RFC 6026 figure 5.
    public enum State: Sendable, Hashable {
        case proceeding, completed, confirmed, accepted, terminated
    }

    public private(set) var state: State = .proceeding
    public private(set) var request: SIPMessage
    public let transport: TransportReliability
    public let timers: SIPTimers
    /// The last provisional response sent (the TU's, or the transaction's 100 Trying).
    public private(set) var lastProvisional: SIPMessage?
    /// The last final response sent: the non-2xx in Completed, the latest 2xx in Accepted.
    public private(set) var finalResponse: SIPMessage?
    private var book = TimerBook()
    private var started = false

    /// A transaction for a received INVITE `request`.
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
        actions.append(.passToTU(request))
        if timers.tryingDelay <= .zero {
            sendTrying(&actions)
        } else {
            book.start(.trying, after: timers.tryingDelay, now: now, &actions)
        }
        return actions
    }

    public mutating func handle(_ event: TransactionEvent, now: SIPInstant) -> [TransactionAction] {
        guard started, state != .terminated else { return [] }
        var actions = [TransactionAction].forStep()
        switch event {
        case .tuResponse(let response):
            guard let code = response.statusCode else { break }
            respond(response, code: code, now: now, &actions)
        case .received(let message):
            guard let method = message.method else { break }
            receive(message, method: method, now: now, &actions)
        case .timerFired(let timer):
            guard let interval = book.fire(timer) else { break }
            fire(timer.kind, interval: interval, now: now, &actions)
        case .transportError:
            // RFC 6026 figure 5: inform the TU and stay; Timer H or L still ends the transaction.
            // In Confirmed nothing is sent, so no send of this transaction can have failed.
            guard state != .confirmed else { break }
            actions.append(.transportError)
        case .tuGiveUp:
            break
        }
        return actions
    }

    private mutating func respond(_ response: SIPMessage, code: Int, now: SIPInstant, _ actions: inout [TransactionAction]) {
        switch (state, code) {
        case (.proceeding, 100...199):
            book.cancel(.trying, &actions)
            lastProvisional = response
            actions.append(.send(response, retransmission: false))
        case (.proceeding, 200...299):
            // RFC 6026 section 7.1: Accepted, Timer L. The TU retransmits its 2xx itself.
            book.cancelAll(&actions)
            finalResponse = response.compacted()
            request = request.compacted()
            state = .accepted
            actions.append(.send(response, retransmission: false))
            book.start(.l, after: timers.timerL, now: now, &actions)
        case (.proceeding, 300...699):
            // 17.2.1: Completed; G on unreliable transports, H always.
            book.cancelAll(&actions)
            finalResponse = response.detached()
            request = request.compacted()
            state = .completed
            actions.append(.send(response, retransmission: false))
            if transport == .unreliable { book.start(.g, after: timers.timerG, now: now, &actions) }
            book.start(.h, after: timers.timerH, now: now, &actions)
        case (.accepted, 200...299):
            // RFC 6026 section 7.1: 2xx from the TU in Accepted (its retransmissions, or another
            // 2xx) go to the transport.
            // The same To tag: the TU sending its 2xx again (another tag: a second dialog).
            let again = (try? response.to())??.tag == (try? finalResponse?.to())??.tag
            finalResponse = response.compacted()
            actions.append(.send(response, retransmission: again))
        default:
            // A response after the final one (other than a 2xx in Accepted) is a TU error: dropped.
            break
        }
    }

    private mutating func receive(_ request: SIPMessage, method: SIPMethod, now: SIPInstant, _ actions: inout [TransactionAction]) {
        switch (state, method) {
        case (.proceeding, .invite):
            // 17.2.1: send the most recent provisional again. None yet (the Trying delay has not
            // passed): the client is retransmitting, so send 100 Trying now.
            if let lastProvisional {
                actions.append(.send(lastProvisional, retransmission: true))
            } else {
                book.cancel(.trying, &actions)
                sendTrying(&actions)
            }
        case (.completed, .invite):
            if let finalResponse { actions.append(.send(finalResponse, retransmission: true)) }
        case (.completed, .ack):
            // 17.2.1: Confirmed; the ACK is absorbed. Timer I is zero on reliable transports.
            book.cancelAll(&actions)
            state = .confirmed
            if transport == .reliable {
                terminate(&actions)
            } else {
                book.start(.i, after: timers.timerI, now: now, &actions)
            }
        case (.accepted, .ack):
            // RFC 6026 section 7.1: an ACK (for the 2xx) matched in Accepted goes to the TU.
            actions.append(.passToTU(request))
        default:
            // INVITE in Confirmed or Accepted, ACK in Confirmed: absorbed. ACK in Proceeding or
            // other methods: discarded.
            break
        }
    }

    private mutating func fire(_ kind: TimerKind, interval: Duration, now: SIPInstant, _ actions: inout [TransactionAction]) {
        switch (state, kind) {
        case (.proceeding, .trying):
            sendTrying(&actions)
        case (.completed, .g):
            // 17.2.1: retransmit the final response; the interval doubles up to T2.
            if let finalResponse { actions.append(.send(finalResponse, retransmission: true)) }
            book.start(.g, after: min(interval * 2, timers.t2), now: now, &actions)
        case (.completed, .h):
            // 17.2.1: the ACK never came; tell the TU.
            actions.append(.timeout(.h))
            terminate(&actions)
        case (.confirmed, .i), (.accepted, .l):
            terminate(&actions)
        default:
            break
        }
    }

    private mutating func sendTrying(_ actions: inout [TransactionAction]) {
        let trying = request.makeTrying()
        lastProvisional = trying
        actions.append(.send(trying, retransmission: false))
    }

    private mutating func terminate(_ actions: inout [TransactionAction]) {
        book.cancelAll(&actions)
        state = .terminated
        actions.append(.terminated)
    }
}
