/// An INVITE Parley has sent (an offer to an agent, a handoff, a move, a proxy branch) seen from
/// the side that may have to take it back: the one place that knows when a CANCEL may go and
/// what a late answer means. A value type: responses and the owner's wishes go in, actions come
/// out; the owner sends what they say.
///
/// - A CANCEL goes only once a provisional response has arrived (RFC 3261 9.1); asked for
///   earlier, it is remembered and sent with the first provisional.
/// - A 2xx that arrives after the CANCEL was asked for (it crossed the CANCEL, or answered a
///   branch given up on) is still a dialog: it is ACKed and reported as unwanted, so the owner
///   hangs it up (or, where a late answer wins, connects it).
/// - Every 2xx is ACKed, a retransmission with the ACK sent for the first (13.2.2.4).
///
/// The INVITE client transaction below it keeps its own timers; the owner's timers (no answer,
/// give up) only feed `cancel()`.
public struct OutgoingInvite: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        /// Sent, nothing back yet; `cancelWanted`: a CANCEL goes with the first provisional.
        case calling(cancelWanted: Bool)
        /// A provisional arrived: it rings (or proceeds), a CANCEL may go.
        case early
        /// The CANCEL went; the final answer (487, or a 2xx that crossed it) is awaited.
        case cancelling
        /// Answered 2xx; `unwanted` when the CANCEL had been asked for first.
        case answered(unwanted: Bool)
        /// Answered 3xx to 6xx, or the transaction failed (408 timeout, 503 transport).
        case failed(code: Int)
    }

    public enum Action: Sendable, Equatable {
        /// Send a CANCEL for the INVITE now.
        case sendCancel
        /// A provisional the owner may pass on (none once a CANCEL is under way).
        case provisional(code: Int)
        /// The first 2xx: ACK it; `unwanted` when the owner had asked to cancel.
        case answered(unwanted: Bool)
        /// A 2xx again (a retransmission, or a second fork's): ACK it with the first's ACK.
        case ackAgain
        /// The first final failure (or the transaction's own).
        case failed(code: Int)
    }

    public private(set) var state: State = .calling(cancelWanted: false)

    public init() {}

    /// Whether a final answer (or a failure) has arrived.
    public var isFinal: Bool {
        switch state {
        case .answered, .failed: true
        default: false
        }
    }

    /// Whether any provisional has arrived (before or after the final answer).
    public private(set) var hadProvisional = false

    /// Whether the owner asked for a CANCEL (sent or waiting for a provisional).
    public var cancelAsked: Bool {
        switch state {
        case .calling(let wanted): wanted
        case .cancelling: true
        case .answered(let unwanted): unwanted
        default: false
        }
    }

    /// Whether the CANCEL has been sent.
    public private(set) var cancelSent = false

    /// The owner wants the INVITE taken back (the caller cancelled, no answer in time, another
    /// branch answered).
    public mutating func cancel() -> [Action] {
        switch state {
        case .calling:
            state = .calling(cancelWanted: true)
            return []
        case .early:
            state = .cancelling
            cancelSent = true
            return [.sendCancel]
        case .cancelling, .answered, .failed:
            return []
        }
    }

    /// A response to the INVITE.
    public mutating func received(status code: Int) -> [Action] {
        switch code {
        case 100...199:
            hadProvisional = true
            switch state {
            case .calling(let wanted):
                if wanted {
                    state = .cancelling
                    cancelSent = true
                    return [.sendCancel]
                }
                state = .early
                return [.provisional(code: code)]
            case .early:
                return [.provisional(code: code)]
            case .cancelling, .answered, .failed:
                return []
            }
        case 200...299:
            switch state {
            case .calling(let wanted):
                state = .answered(unwanted: wanted)
                return [.answered(unwanted: wanted)]
            case .early:
                state = .answered(unwanted: false)
                return [.answered(unwanted: false)]
            case .cancelling:
                state = .answered(unwanted: true)
                return [.answered(unwanted: true)]
            case .answered:
                return [.ackAgain]
            case .failed:
                return []  // after a final failure nothing can be answered (17.1.1.2)
            }
        case 300...699:
            guard !isFinal else { return [] }
            state = .failed(code: code)
            return [.failed(code: code)]
        default:
            return []
        }
    }

    /// The INVITE's transaction ended without a final answer (Timer B: 408; a transport error:
    /// 503).
    public mutating func transactionFailed(code: Int) -> [Action] {
        guard !isFinal else { return [] }
        state = .failed(code: code)
        return [.failed(code: code)]
    }
}
