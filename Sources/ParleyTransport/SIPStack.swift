import Logging
import NIOCore
import ParleySIP
import ParleyTransaction

/// Why a transaction failed.
public enum TransactionFailure: Sendable, Equatable {
    /// Timer B or F (no final response), or H (no ACK).
    case timeout(TimerKind)
    /// The transport could not send one of its messages.
    case transportError
}

/// The transaction user: a proxy core, a user agent, a B2BUA. Called on the stack's loop.
public protocol SIPTransactionUser: AnyObject {
    /// A new request. `transaction` is its server transaction; nil for an ACK to a 2xx (which
    /// has none).
    func stack(_ stack: SIPStack, didReceiveRequest request: SIPMessage, transaction: TransactionKey?, from source: SIPSource)
    /// A response for a client transaction the TU started (100 Trying included).
    func stack(_ stack: SIPStack, didReceiveResponse response: SIPMessage, transaction: TransactionKey)
    /// A CANCEL matched this INVITE server transaction; the stack has answered the CANCEL with 200.
    func stack(_ stack: SIPStack, didReceiveCancel cancel: SIPMessage, forInvite invite: TransactionKey)
    /// A transaction failed.
    func stack(_ stack: SIPStack, transaction: TransactionKey, didFail failure: TransactionFailure)
    /// A transaction is over and forgotten (its key will not be seen again).
    func stack(_ stack: SIPStack, didTerminate transaction: TransactionKey)
}

extension SIPTransactionUser {
    public func stack(_ stack: SIPStack, didTerminate transaction: TransactionKey) {}
}

/// Drives the RFC 3261 transaction state machines on one event loop: routes what the
/// transport receives to transactions, schedules their timers on the loop, sends what they send,
/// and hands the rest to the transaction user. Confined to `transport.loop`.
public final class SIPStack: @unchecked Sendable {
    enum Context {
        case server(SIPSource)
        case client(SIPDestination)
    }


    public let transport: SIPTransport
    public weak var user: SIPTransactionUser?
    public var logger: Logger
    var table: TransactionTable<Context>
    private var wheel: TimerWheel
    private var ticker: RepeatedTask?
    private var branchCounter: UInt64 = 0
    private let branchSeed: UInt64

    public var loop: EventLoop { transport.loop }
    /// Live transactions (for tests and statistics).
    public var transactionCount: Int { table.count }
    /// What went through the stack, for metrics.
    public private(set) var sipCounts = SIPCounts()
    /// Timers waiting in the wheel (stale ones included until their time comes).
    public var scheduledTimerCount: Int { wheel.count }

    public init(transport: SIPTransport, timers: SIPTimers = SIPTimers(), logger: Logger = Logger(label: "parley.stack")) {
        self.transport = transport
        self.table = TransactionTable(timers: timers)
        self.logger = logger
        self.branchSeed = UInt64.random(in: 0...UInt64.max)
        self.wheel = TimerWheel(now: .now())
        transport.onMessage = { [unowned self] message, source in self.received(message, from: source) }
        let resolution = TimeAmount.milliseconds(wheel.resolutionMs)
        ticker = transport.loop.scheduleRepeatedTask(initialDelay: resolution, delay: resolution) { [weak self] _ in
            self?.tick()
        }
    }

    deinit { ticker?.cancel() }

    /// Stops the timer tick (the stack is being shut down).
    public func stop() {
        ticker?.cancel()
        ticker = nil
    }

    /// Runs `body` on the loop after `delay` (10 ms resolution) unless the token is cancelled.
    @discardableResult
    public func schedule(after delay: Duration, _ body: @escaping () -> Void) -> TimerToken {
        let token = TimerToken()
        wheel.add(.closure(token, body), after: delay, now: .now())
        return token
    }

    private func tick() {
        let now = SIPInstant.now()
        for entry in wheel.due(now: now) {
            switch entry {
            case .transaction(let key, let timer):
                if let o = table.handle(.timerFired(timer), for: key, now: now) { perform(o) }
            case .closure(let token, let body):
                if !token.cancelled { body() }
            }
        }
    }

    // MARK: For the transaction user

    /// A fresh RFC 3261 branch (magic cookie, then unique).
    public func newBranch(prefix: String = "") -> String {
        branchCounter &+= 1
        return Via.magicCookie + prefix + String(branchSeed &+ branchCounter &* 0x9E37_79B9_7F4A_7C15, radix: 36)
    }

    /// Our Via for a request going to `destination`.
    public func makeVia(for destination: SIPDestination, branch: String) -> String {
        let sentBy = transport.advertisedListener(for: destination.transport, toward: destination.address)?.hostPort ?? "invalid"
        return "SIP/2.0/\(destination.transport.viaName) \(sentBy);branch=\(branch);rport"
    }

    /// Sends a request in a new client transaction, with our Via on top (unless `addVia` is
    /// false: a CANCEL reuses the INVITE's). A request too large for UDP goes over TCP (18.1.1).
    /// Returns the transaction's key, or nil if it could not start.
    @discardableResult
    public func sendRequest(_ request: SIPMessage, to destination: SIPDestination, addVia: Bool = true,
                            branch: String? = nil) -> TransactionKey? {
        var destination = destination
        var message = request
        var written: String?
        if addVia {
            let b = branch ?? newBranch()
            written = b
            message.headers.prepend(HeaderName(.via), makeVia(for: destination, branch: b))
            if destination.transport == .udp, transport.listeners.contains(where: { $0.kind == .tcp }),
               message.serializedCount > transport.udpRequestLimit {
                destination.transport = .tcp
                message = request
                message.headers.prepend(HeaderName(.via), makeVia(for: destination, branch: b))
            }
        }
        do {
            let out = try table.startClient(request: message, branch: written, transport: destination.transport.reliability,
                                            context: .client(destination), now: .now())
            perform(out)
            return out.key
        } catch {
            logger.warning("cannot start client transaction: \(error)")
            return nil
        }
    }

    /// Sends a CANCEL for a client INVITE transaction (9.1). Returns the CANCEL's key.
    @discardableResult
    public func cancel(_ invite: TransactionKey) -> TransactionKey? {
        guard let request = table.request(for: invite), case .client(let destination)? = table.context(for: invite) else { return nil }
        return sendRequest(request.makeCancel(), to: destination, addVia: false)
    }

    /// Stops a client INVITE transaction's retransmissions: the TU has given it up before any
    /// response. A late response still reaches the TU until Timer B.
    public func giveUp(_ invite: TransactionKey) {
        if let out = table.handle(.tuGiveUp, for: invite, now: .now()) { perform(out) }
    }

    /// The request that started a transaction.
    public func request(of key: TransactionKey) -> SIPMessage? { table.request(for: key) }

    /// Where a server transaction's request came from.
    public func source(of key: TransactionKey) -> SIPSource? {
        if case .server(let s)? = table.context(for: key) { return s }
        return nil
    }

    /// Sends a response in a server transaction.
    public func respond(_ response: SIPMessage, to key: TransactionKey) {
        guard let out = table.handle(.tuResponse(response), for: key, now: .now()) else {
            logger.debug("response for a finished transaction \(key) not sent")
            return
        }
        perform(out)
    }

    /// Builds and sends a response (8.2.6) to a server transaction's request.
    public func respond(_ code: Int, _ reason: String? = nil, to key: TransactionKey, toTag: String? = nil,
                        extraHeaders: [(String, String)] = []) {
        guard let request = request(of: key) else { return }
        var r = SIPTransport.makeResponse(to: request, code: code, reason: reason, toTag: toTag ?? (code > 100 ? localTag(of: key) : nil))
        for (n, v) in extraHeaders { r.headers.append(HeaderName(n), v) }
        respond(r, to: key)
    }

    /// Answers a server transaction's request once, statelessly, and forgets the transaction:
    /// for a request refused before the TU keeps anything (an unsigned handoff). A stateful
    /// 4xx to an INVITE is retransmitted until its ACK (17.2.1), up to ten times toward an
    /// address that may be spoofed; this sends it once (8.2.7: a UAS may answer statelessly),
    /// so what goes back is never more than what came (no amplification). A retransmitted
    /// request is answered once again.
    public func refuseStatelessly(_ code: Int, _ reason: String? = nil, to key: TransactionKey) {
        guard let request = request(of: key) else { return }
        let source = self.source(of: key)
        table.remove(key)
        let r = SIPTransport.makeResponse(to: request, code: code, reason: reason, toTag: localTag(of: key))
        transport.sendResponse(r, toRequestFrom: source)
    }

    /// The To tag of every response this stack builds to a server transaction's request
    /// (RFC 3261 8.2.6.2: one tag for a UAS's responses to one request; 9.2: the CANCEL's 200 has
    /// the INVITE's). Derived from the transaction's identity and this stack's random seed, so
    /// it is the same for a 182 and the 487 that follows it without being stored, and no one
    /// outside can guess it.
    public func localTag(of key: TransactionKey) -> String {
        var h = Hasher()
        h.combine(branchSeed)
        key.hashIgnoringMethod(into: &h)
        return String(UInt64(bitPattern: Int64(h.finalize())), radix: 36)
    }

    /// A fresh tag for To/From.
    public func newTag() -> String {
        branchCounter &+= 1
        return String(branchSeed &* 31 &+ branchCounter &* 0x2545_F491_4F6C_DD1D, radix: 36)
    }

    /// Sends a message outside any transaction (an ACK for a 2xx, a stateless answer).
    @discardableResult
    public func sendStateless(_ message: SIPMessage, to destination: SIPDestination) -> EventLoopFuture<Void> {
        transport.send(message, to: destination)
    }

    // MARK: From the transport

    func received(_ message: SIPMessage, from source: SIPSource) {
        let now = SIPInstant.now()
        if let m = message.method { sipCounts.request(m, source.transport) }
        switch table.receive(message, now: now) {
        case .handled(let out):
            perform(out)
        case .newRequest:
            do {
                let out = try table.startServer(request: message, transport: source.transport.reliability,
                                                context: .server(source), now: now)
                perform(out)
            } catch {
                logger.debug("request not started: \(error)")
            }
        case .unmatchedACK:
            user?.stack(self, didReceiveRequest: message, transaction: nil, from: source)
        case .strayResponse:
            logger.debug("stray response \(message.statusCode ?? 0) discarded (RFC 6026 8.8)")
        case .unmatchable:
            logger.debug("unmatchable message dropped")
        }
    }

    // MARK: Performing transaction actions

    func perform(_ out: TransactionTable<Context>.Output) {
        let key = out.key
        for action in out.actions {
            switch action {
            case .send(let message, let again):
                if again { sipCounts.retransmissions += 1 }
                if let code = message.statusCode { sipCounts.response(code) }
                let future: EventLoopFuture<Void>
                switch out.context {
                case .server(let source): future = transport.sendResponse(message, toRequestFrom: source)
                case .client(let destination): future = transport.send(message, to: destination)
                }
                future.whenFailure { [self] _ in
                    if let o = table.handle(.transportError, for: key, now: .now()) { perform(o) }
                }
            case .passToTU(let message):
                deliverToUser(message, key: key, context: out.context)
            case .startTimer(let timer, let after):
                wheel.add(.transaction(key, timer), after: after, now: .now())
            case .cancelTimer:
                break  // a timer that fires after being cancelled is ignored by its transaction
            case .timeout(let kind):
                user?.stack(self, transaction: key, didFail: .timeout(kind))
            case .transportError:
                user?.stack(self, transaction: key, didFail: .transportError)
            case .terminated:
                user?.stack(self, didTerminate: key)
            }
        }
    }

    private func deliverToUser(_ message: SIPMessage, key: TransactionKey, context: Context) {
        guard case .server(let source) = context else {
            user?.stack(self, didReceiveResponse: message, transaction: key)
            return
        }
        switch message.method {
        case .ack?:
            // An ACK for a 2xx matched in the RFC 6026 Accepted state: the TU's.
            user?.stack(self, didReceiveRequest: message, transaction: nil, from: source)
        case .cancel?:
            // 9.2: answer the CANCEL; the TU cancels the INVITE's branches or answers it 487.
            if let invite = table.inviteTransaction(cancelledBy: message) {
                respond(200, to: key)
                user?.stack(self, didReceiveCancel: message, forInvite: invite)
            } else {
                respond(481, to: key)
            }
        default:
            user?.stack(self, didReceiveRequest: message, transaction: key, from: source)
        }
    }
}

/// Requests a stack received by method and transport, responses it sent by class, and its
/// retransmissions: counted on its loop, read for metrics.
public struct SIPCounts: Sendable, Equatable {
    /// Method -> per transport (in `SIPTransportKind.allCases` order).
    public private(set) var requests: [SIPMethod: [Int]] = [:]
    /// Index = code / 100 (1...6).
    public private(set) var responses = [Int](repeating: 0, count: 7)
    public var retransmissions = 0

    mutating func request(_ m: SIPMethod, _ t: SIPTransportKind) {
        let i = t == .udp ? 0 : t == .tcp ? 1 : 2
        requests[m, default: [0, 0, 0]][i] += 1
    }

    mutating func response(_ code: Int) {
        let c = code / 100
        if c >= 1, c <= 6 { responses[c] += 1 }
    }
}
