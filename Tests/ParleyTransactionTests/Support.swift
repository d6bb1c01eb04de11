// Test support: SIP messages for the tests, and `Driven`, a virtual-clock driver that does what
// a real driver does with a machine's actions (schedules and cancels timers, records sends) and
// fires timers in deadline order as the virtual clock advances.

import ParleySIP
import Testing
@testable import ParleyTransaction

enum Msg {
    static func parse(_ lines: [String], body: String = "") -> SIPMessage {
        let text = lines.joined(separator: "\r\n") + "\r\n\r\n" + body
        do {
            return try SIPParser.parse(text)
        } catch {
            Issue.record("test message does not parse: \(error)")
            fatalError("unparsable test message")
        }
    }

    static func request(_ method: String, branch: String? = "z9hG4bK74bf9", sentBy: String = "pc33.atlanta.example.com",
                        cseq: Int = 314159, toTag: String? = nil, fromTag: String = "9fxced76sl",
                        callID: String = "3848276298220188511@atlanta.example.com",
                        uri: String = "sip:bob@biloxi.example.com", extra: [String] = []) -> SIPMessage {
        let via = "Via: SIP/2.0/UDP \(sentBy)" + (branch.map { ";branch=\($0)" } ?? "")
        var lines = [
            "\(method) \(uri) SIP/2.0",
            via,
            "Via: SIP/2.0/UDP 192.0.2.9:5070;branch=z9hG4bKlower",
            "Max-Forwards: 70",
            "To: Bob <sip:bob@biloxi.example.com>" + (toTag.map { ";tag=\($0)" } ?? ""),
            "From: Alice <sip:alice@atlanta.example.com>;tag=\(fromTag)",
            "Call-ID: \(callID)",
            "CSeq: \(cseq) \(method)",
            "Contact: <sip:alice@pc33.atlanta.example.com>",
        ]
        lines += extra
        lines.append("Content-Length: 0")
        return parse(lines)
    }

    static func invite(branch: String? = "z9hG4bK74bf9", sentBy: String = "pc33.atlanta.example.com", toTag: String? = nil,
                       extra: [String] = []) -> SIPMessage {
        request("INVITE", branch: branch, sentBy: sentBy, toTag: toTag, extra: extra)
    }

    static func options(branch: String? = "z9hG4bKopt1") -> SIPMessage {
        request("OPTIONS", branch: branch, cseq: 63104)
    }

    /// An ACK for a non-2xx response to `invite` as a UAC would send it (17.1.1.3).
    static func ack(for invite: SIPMessage, response: SIPMessage) -> SIPMessage {
        invite.makeACK(for: response)
    }

    /// A response to `request` built per 8.2.6.2: every Via, From, To (a tag added), Call-ID, CSeq.
    static func response(_ code: Int, to request: SIPMessage, toTag: String? = "8321234356") -> SIPMessage {
        var h = SIPHeaders()
        for line in request.headers.lines {
            switch line.known {
            case .via, .from, .callID, .cseq: h.append(line)
            case .to:
                var value = line.value
                if let toTag, !value.contains(";tag=") { value += ";tag=\(toTag)" }
                h.append(HeaderName(.to), value)
            default: break
            }
        }
        h.append(HeaderName(.contentLength), "0")
        return .response(code, headers: h)
    }
}

/// A machine driven on a virtual clock, the way a real driver runs it.
struct Driven<M: TransactionStateMachine> {
    struct Sent {
        var at: Int64
        var message: SIPMessage
        var retransmission: Bool
    }

    var machine: M
    var now = SIPInstant.zero
    private(set) var scheduled: [TransactionTimer: SIPInstant] = [:]
    private(set) var log: [(at: Int64, action: TransactionAction)] = []

    init(_ machine: M) { self.machine = machine }

    @discardableResult
    mutating func start() -> [TransactionAction] {
        let actions = machine.start(now: now)
        apply(actions)
        return actions
    }

    @discardableResult
    mutating func handle(_ event: TransactionEvent) -> [TransactionAction] {
        let actions = machine.handle(event, now: now)
        apply(actions)
        return actions
    }

    /// Moves the clock forward, firing every scheduled timer that falls due, in order.
    @discardableResult
    mutating func advance(by milliseconds: Int64) -> [TransactionAction] {
        let target = SIPInstant(milliseconds: now.milliseconds + milliseconds)
        var all: [TransactionAction] = []
        while let next = scheduled.filter({ $0.value <= target })
            .min(by: { ($0.value, $0.key.generation) < ($1.value, $1.key.generation) }) {
            scheduled[next.key] = nil
            now = next.value
            all += handle(.timerFired(next.key))
        }
        now = target
        return all
    }

    /// Advances to an absolute time.
    @discardableResult
    mutating func advance(to milliseconds: Int64) -> [TransactionAction] {
        advance(by: milliseconds - now.milliseconds)
    }

    private mutating func apply(_ actions: [TransactionAction]) {
        for a in actions {
            log.append((now.milliseconds, a))
            switch a {
            case .startTimer(let t, let after): scheduled[t] = now + after
            case .cancelTimer(let t): scheduled[t] = nil
            default: break
            }
        }
    }

    var sent: [Sent] {
        log.compactMap {
            if case .send(let m, let r) = $0.action { return Sent(at: $0.at, message: m, retransmission: r) }
            return nil
        }
    }

    var sendTimes: [Int64] { sent.map(\.at) }

    var passedToTU: [SIPMessage] {
        log.compactMap {
            if case .passToTU(let m) = $0.action { return m }
            return nil
        }
    }

    /// Reports to the TU (timeouts and transport errors), with when they happened.
    var reports: [(at: Int64, action: TransactionAction)] {
        log.filter {
            switch $0.action {
            case .timeout, .transportError: true
            default: false
            }
        }
    }

    var terminatedAt: Int64? {
        log.first { $0.action == .terminated }?.at
    }

    /// The timer currently armed of a kind, as the driver knows it.
    func armed(_ kind: TimerKind) -> TransactionTimer? {
        scheduled.keys.first { $0.kind == kind }
    }
}

extension Array where Element == TransactionAction {
    var sentMessages: [SIPMessage] {
        compactMap {
            if case .send(let m, _) = $0 { return m }
            return nil
        }
    }

    var passedToTU: [SIPMessage] {
        compactMap {
            if case .passToTU(let m) = $0 { return m }
            return nil
        }
    }

    var startedTimers: [TimerKind] {
        compactMap {
            if case .startTimer(let t, _) = $0 { return t.kind }
            return nil
        }
    }

    var terminates: Bool { contains(.terminated) }
}
