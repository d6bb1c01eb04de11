// The set of live transactions of one element, keyed by `TransactionKey`. It routes received
// messages to their transaction (17.1.3, 17.2.3), says when nothing matched, and forgets every
// transaction the moment it terminates, so it cannot leak.
//
// It is a value type with no locking: one event loop owns it (the transport driver keeps it in
// a class confined to that loop) and every call runs there. Each transaction carries a
// `Context` of the driver's choosing (where to send: a remote address, a TCP connection), handed
// back with every batch of actions, even the batch that ends the transaction.

import ParleySIP

/// One transaction of any of the four kinds.
public enum Transaction: TransactionStateMachine {
    case inviteClient(InviteClientTransaction)
    case nonInviteClient(NonInviteClientTransaction)
    case inviteServer(InviteServerTransaction)
    case nonInviteServer(NonInviteServerTransaction)

    /// A client transaction for `request`: INVITE or non-INVITE by its method.
    public init(client request: SIPMessage, transport: TransportReliability, timers: SIPTimers) {
        if request.method == .invite {
            self = .inviteClient(InviteClientTransaction(request: request, transport: transport, timers: timers))
        } else {
            self = .nonInviteClient(NonInviteClientTransaction(request: request, transport: transport, timers: timers))
        }
    }

    /// A server transaction for a received `request`: INVITE or non-INVITE by its method.
    public init(server request: SIPMessage, transport: TransportReliability, timers: SIPTimers) {
        if request.method == .invite {
            self = .inviteServer(InviteServerTransaction(request: request, transport: transport, timers: timers))
        } else {
            self = .nonInviteServer(NonInviteServerTransaction(request: request, transport: transport, timers: timers))
        }
    }

    public var request: SIPMessage {
        switch self {
        case .inviteClient(let t): t.request
        case .nonInviteClient(let t): t.request
        case .inviteServer(let t): t.request
        case .nonInviteServer(let t): t.request
        }
    }

    public var isTerminated: Bool {
        switch self {
        case .inviteClient(let t): t.isTerminated
        case .nonInviteClient(let t): t.isTerminated
        case .inviteServer(let t): t.isTerminated
        case .nonInviteServer(let t): t.isTerminated
        }
    }

    public var armedTimers: [ArmedTimer] {
        switch self {
        case .inviteClient(let t): t.armedTimers
        case .nonInviteClient(let t): t.armedTimers
        case .inviteServer(let t): t.armedTimers
        case .nonInviteServer(let t): t.armedTimers
        }
    }

    /// The state's name, for logs.
    public var stateName: String {
        switch self {
        case .inviteClient(let t): "\(t.state)"
        case .nonInviteClient(let t): "\(t.state)"
        case .inviteServer(let t): "\(t.state)"
        case .nonInviteServer(let t): "\(t.state)"
        }
    }

    // `switch consume self`: the state machine is moved out, not copied, so what it mutates
    // (its timers, its last response) is uniquely referenced and changed in place.
    public mutating func start(now: SIPInstant) -> [TransactionAction] {
        switch consume self {
        case .inviteClient(var t): let a = t.start(now: now); self = .inviteClient(t); return a
        case .nonInviteClient(var t): let a = t.start(now: now); self = .nonInviteClient(t); return a
        case .inviteServer(var t): let a = t.start(now: now); self = .inviteServer(t); return a
        case .nonInviteServer(var t): let a = t.start(now: now); self = .nonInviteServer(t); return a
        }
    }

    public mutating func handle(_ event: TransactionEvent, now: SIPInstant) -> [TransactionAction] {
        switch consume self {
        case .inviteClient(var t): let a = t.handle(event, now: now); self = .inviteClient(t); return a
        case .nonInviteClient(var t): let a = t.handle(event, now: now); self = .nonInviteClient(t); return a
        case .inviteServer(var t): let a = t.handle(event, now: now); self = .inviteServer(t); return a
        case .nonInviteServer(var t): let a = t.handle(event, now: now); self = .nonInviteServer(t); return a
        }
    }
}

/// Why a `TransactionTable` refused to start a transaction.
public enum TransactionTableError: Error, Sendable, Equatable {
    /// The request has no key: no top Via (or branch, for a client), or it is an ACK, which
    /// never starts a transaction of its own.
    case noTransactionKey
    /// A live transaction already has this key.
    case duplicate(TransactionKey)
}

/// The live transactions of one element. See the file header for ownership.
public struct TransactionTable<Context> {
    /// A transaction and the driver's context for it.
    public struct Entry {
        public var transaction: Transaction
        public var context: Context
    }

    /// What a transaction asked for, with its key and context. When `actions` ends with
    /// `.terminated` the table has already forgotten the transaction.
    public struct Output {
        public var key: TransactionKey
        public var context: Context
        public var actions: [TransactionAction]
    }

    /// Where a received message went.
    public enum Routing {
        /// It matched a transaction, which returned these actions.
        case handled(Output)
        /// A request (not an ACK) that matches no transaction. The TU decides: `startServer` to
        /// handle it statefully, or answer it statelessly.
        case newRequest(TransactionKey)
        /// An ACK that matches no INVITE server transaction: an ACK for a 2xx, which goes to the
        /// TU (a UA core, or a proxy core that forwards it statelessly).
        case unmatchedACK
        /// A response that matches no client transaction. RFC 6026 section 8.8 (amending 18.1.2):
        /// any element but a stateless proxy silently discards it.
        case strayResponse
        /// The message lacks what matching needs (top Via, CSeq, ...); drop it.
        case unmatchable
    }

    private var entries: [TransactionKey: Entry] = [:]
    /// The timers new transactions get.
    public var timers: SIPTimers

    /// An empty table whose transactions will use `timers`.
    public init(timers: SIPTimers = SIPTimers()) {
        self.timers = timers
    }

    /// How many transactions are live.
    public var count: Int { entries.count }
    /// How many the table's storage holds without growing (it shrinks after a burst).
    public var capacity: Int { entries.capacity }
    public var isEmpty: Bool { entries.isEmpty }
    /// The keys of the live transactions.
    public var keys: some Collection<TransactionKey> { entries.keys }

    /// The live transaction with this key.
    public func transaction(for key: TransactionKey) -> Transaction? { entries[key]?.transaction }

    /// The request that started the live transaction with this key (the transaction itself is
    /// not copied out).
    public func request(for key: TransactionKey) -> SIPMessage? {
        guard let i = entries.index(forKey: key) else { return nil }
        return entries.values[i].transaction.request
    }

    /// The context of the live transaction with this key.
    public func context(for key: TransactionKey) -> Context? { entries[key]?.context }

    /// Replaces the context of a live transaction (a TCP connection was replaced, say).
    /// Returns false when there is no such transaction.
    @discardableResult
    public mutating func setContext(_ context: Context, for key: TransactionKey) -> Bool {
        guard entries[key] != nil else { return false }
        entries[key]!.context = context
        return true
    }

    /// Creates and starts the client transaction for an outgoing `request` (the TU "sends a
    /// request"): the output sends it and arms its timers.
    /// `branch`: the branch of the top Via when the caller has just written it (it is then not
    /// parsed back from the request).
    public mutating func startClient(request: SIPMessage, branch: String? = nil, transport: TransportReliability,
                                     context: Context, now: SIPInstant) throws(TransactionTableError) -> Output {
        let key = branch.map { TransactionKey.client(sending: request, branch: $0) } ?? TransactionKey.client(sending: request)
        guard let key else { throw .noTransactionKey }
        return try start(Transaction(client: request, transport: transport, timers: timers), key: key, context: context, now: now)
    }

    /// Creates and starts the server transaction for a received `request` that matched nothing
    /// (`Routing.newRequest`): the output passes it to the TU (and, for an INVITE, sends or
    /// schedules 100 Trying).
    public mutating func startServer(request: SIPMessage, transport: TransportReliability, context: Context,
                                     now: SIPInstant) throws(TransactionTableError) -> Output {
        guard request.method != .ack, let key = TransactionKey.server(matching: request) else { throw .noTransactionKey }
        return try start(Transaction(server: request, transport: transport, timers: timers), key: key, context: context, now: now)
    }

    private mutating func start(_ transaction: Transaction, key: TransactionKey, context: Context,
                                now: SIPInstant) throws(TransactionTableError) -> Output {
        guard entries.index(forKey: key) == nil else { throw .duplicate(key) }
        var t = transaction
        let actions = t.start(now: now)
        if !t.isTerminated { entries[key] = Entry(transaction: t, context: context) }
        return Output(key: key, context: context, actions: actions)
    }

    /// Routes a message from the transport to its transaction (17.1.3, 17.2.3).
    public mutating func receive(_ message: SIPMessage, now: SIPInstant) -> Routing {
        if message.isRequest {
            guard let key = TransactionKey.server(matching: message) else { return .unmatchable }
            if let i = entries.index(forKey: key),
               !key.isRFC2543 || Self.legacyToTagMatches(message, key: key, transaction: entries.values[i].transaction) {
                return .handled(handle(.received(message), at: i, key: key, now: now))
            }
            return message.method == .ack ? .unmatchedACK : .newRequest(key)
        }
        guard let key = TransactionKey.client(matching: message) else { return .unmatchable }
        guard let i = entries.index(forKey: key) else { return .strayResponse }
        return .handled(handle(.received(message), at: i, key: key, now: now))
    }

    /// Feeds an event to the transaction with this key: a response from the TU, a fired timer,
    /// a transport error. Nil when no such transaction is live (it terminated; a late timer).
    public mutating func handle(_ event: TransactionEvent, for key: TransactionKey, now: SIPInstant) -> Output? {
        guard let i = entries.index(forKey: key) else { return nil }
        return handle(event, at: i, key: key, now: now)
    }

    /// The entry at `i` (found once by the caller) handles the event in place: neither the
    /// entry nor its transaction is copied out of the table and back.
    private mutating func handle(_ event: TransactionEvent, at i: Dictionary<TransactionKey, Entry>.Index, key: TransactionKey,
                                 now: SIPInstant) -> Output {
        let actions = entries.values[i].transaction.handle(event, now: now)
        let context = entries.values[i].context
        if entries.values[i].transaction.isTerminated {
            entries.remove(at: i)
            shrinkIfSparse()
        }
        return Output(key: key, context: context, actions: actions)
    }

    /// A Dictionary keeps the capacity of its largest size. After a burst (10,000 calls set up
    /// in a minute, then only their dialogs left) that is kilobytes per past transaction, so a
    /// table down to an eighth of its capacity is rebuilt at its size (amortised O(1)).
    private mutating func shrinkIfSparse() {
        guard entries.capacity > 4096, entries.count * 8 < entries.capacity else { return }
        var smaller = [TransactionKey: Entry](minimumCapacity: entries.count * 2)
        for (k, v) in entries { smaller[k] = v }
        entries = smaller
    }

    /// The INVITE server transaction a received CANCEL refers to (9.2), if it is live.
    public func inviteTransaction(cancelledBy cancel: SIPMessage) -> TransactionKey? {
        guard let key = TransactionKey.invite(cancelledBy: cancel), let entry = entries[key],
              case .inviteServer(let invite) = entry.transaction else { return nil }
        if key.isRFC2543 {
            // 9.2: with the RFC 2543 rules the CANCEL's To tag is the INVITE's.
            guard (try? cancel.to())??.tag == (try? invite.request.to())??.tag else { return nil }
        }
        return key
    }

    /// Removes a transaction without terminating it (shutting down, a connection gone).
    @discardableResult
    public mutating func remove(_ key: TransactionKey) -> Entry? {
        entries.removeValue(forKey: key)
    }

    /// The earliest deadline of any armed timer. Scans every transaction: for tests and simple
    /// polling drivers; an event-loop driver schedules each `.startTimer` instead.
    public var nextDeadline: SIPInstant? {
        entries.values.compactMap { $0.transaction.nextDeadline }.min()
    }

    /// Fires, in deadline order, every timer due at `now` (deadline not after it) and returns
    /// the outputs. Timers armed by these firings wait for the next call, even if already due.
    /// Scans every transaction: for tests and simple polling drivers.
    public mutating func fireDueTimers(now: SIPInstant) -> [Output] {
        var due: [(deadline: SIPInstant, key: TransactionKey, timer: TransactionTimer)] = []
        for (key, entry) in entries {
            for armed in entry.transaction.armedTimers where armed.deadline <= now {
                due.append((armed.deadline, key, armed.timer))
            }
        }
        due.sort { ($0.deadline, $0.timer.generation) < ($1.deadline, $1.timer.generation) }
        return due.compactMap { handle(.timerFired($0.timer), for: $0.key, now: now) }
    }

    /// For RFC 2543 keys, the To tag check the key leaves out (17.2.3): an ACK's To tag must be
    /// that of the final response it acknowledges; any other request's that of the request that
    /// created the transaction.
    private static func legacyToTagMatches(_ request: SIPMessage, key: TransactionKey, transaction: Transaction) -> Bool {
        guard key.isRFC2543 else { return true }
        let tag = (try? request.to())??.tag
        if request.method == .ack {
            guard case .inviteServer(let invite) = transaction, let final = invite.finalResponse else { return false }
            return tag == (try? final.to())??.tag
        }
        return tag == (try? transaction.request.to())??.tag
    }
}

extension TransactionTable: Sendable where Context: Sendable {}
extension TransactionTable.Entry: Sendable where Context: Sendable {}
extension TransactionTable.Output: Sendable where Context: Sendable {}
extension TransactionTable.Routing: Sendable where Context: Sendable {}
