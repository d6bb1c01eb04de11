import Foundation
import ParleyCallCenter
import ParleyRecords

/// The admin API's event stream: every event gets an increasing id and is kept in a bounded
/// buffer (the last `capacity`), so a client that reconnects with `Last-Event-ID` gets what it
/// missed. Publishing (on the roles' event loops) only appends to each client's pending list;
/// `flush` (every 100 ms, from `start`) hands each client what it has in one batch, so a client
/// costs one write per flush, not one per event. A client that falls `clientBuffer` events behind
/// is dropped, never waited for.
public final class EventHub: @unchecked Sendable {
    public struct Event: Sendable, Equatable {
        public var id: Int64
        public var name: String
        /// The event's JSON (one line).
        public var data: String
    }

    /// What a client's stream carries: an event, or a comment line (keep-alive).
    public enum Item: Sendable, Equatable {
        case event(Event)
        case comment(String)
    }

    private struct Client {
        var continuation: AsyncStream<[Item]>.Continuation
        var pending: [Item] = []
    }

    public let capacity: Int
    /// Events a client may be behind before it is dropped.
    public let clientBuffer: Int
    /// Streams open at once; more are refused.
    public let maxClients: Int
    private let lock = NSLock()
    private var ring: [Event] = []
    private var head = 0
    private var nextID: Int64 = 1
    private var clients: [Int: Client] = [:]
    private var nextClient = 0
    private(set) var dropped = 0
    private var timer: DispatchSourceTimer?

    public init(capacity: Int = 10_000, clientBuffer: Int = 4_096, maxClients: Int = 100) {
        self.capacity = max(1, capacity)
        self.clientBuffer = max(1, clientBuffer)
        self.maxClients = max(1, maxClients)
        ring.reserveCapacity(self.capacity)
    }

    /// Delivers every `interval` (until `close`).
    public func start(interval: DispatchTimeInterval = .milliseconds(100)) {
        let t = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "parley.admin.events"))
        t.schedule(deadline: .now() + interval, repeating: interval)
        t.setEventHandler { [weak self] in self?.flush() }
        t.resume()
        lock.withLock { timer?.cancel(); timer = t }
    }

    /// Adds an event; clients get it at the next flush.
    public func publish(_ name: String, _ data: JSONValue) {
        let text = data.text
        lock.lock()
        let e = Event(id: nextID, name: name, data: text)
        nextID += 1
        if ring.count < capacity {
            ring.append(e)
        } else {
            ring[head] = e
            head = (head + 1) % capacity
        }
        var slow: [Int] = []
        for id in clients.keys {
            clients[id]!.pending.append(.event(e))
            if clients[id]!.pending.count > clientBuffer { slow.append(id) }
        }
        let gone = slow.compactMap { clients.removeValue(forKey: $0) }
        dropped += gone.count
        lock.unlock()
        for c in gone { c.continuation.finish() }
    }

    /// A comment line to every client (keep-alive), with the next flush.
    public func comment(_ text: String) {
        lock.withLock {
            for id in clients.keys { clients[id]!.pending.append(.comment(text)) }
        }
    }

    /// Hands each client what is pending for it, in one batch; a client whose stream holds too
    /// many undelivered batches (it does not read) is dropped.
    public func flush() {
        var batches: [(Int, AsyncStream<[Item]>.Continuation, [Item])] = []
        lock.withLock {
            for (id, c) in clients where !c.pending.isEmpty {
                batches.append((id, c.continuation, c.pending))
                clients[id]!.pending = []
            }
        }
        var slow: [Int] = []
        for (id, c, items) in batches {
            if case .dropped = c.yield(items) { slow.append(id) }
        }
        guard !slow.isEmpty else { return }
        let gone = lock.withLock { () -> [Client] in
            let g = slow.compactMap { clients.removeValue(forKey: $0) }
            dropped += g.count
            return g
        }
        for c in gone { c.continuation.finish() }
    }

    public var clientCount: Int { lock.withLock { clients.count } }
    public var lastID: Int64 { lock.withLock { nextID - 1 } }

    /// A new client: the events after `lastEventID` still kept (nil when some were lost: the
    /// client must reload its summaries), then every new one. nil when `maxClients` streams
    /// are open already.
    public func subscribe(after lastEventID: Int64?) -> (missed: [Event]?, stream: AsyncStream<[Item]>, id: Int)? {
        // Undelivered batches a client may hold: with the pending limit, what it can be behind.
        let (stream, continuation) = AsyncStream<[Item]>.makeStream(bufferingPolicy: .bufferingOldest(16))
        lock.lock()
        defer { lock.unlock() }
        guard clients.count < maxClients else { return nil }
        var missed: [Event]? = []
        if let last = lastEventID, last < nextID - 1 {
            let kept = ring.count < capacity ? ring : Array(ring[head...] + ring[..<head])
            if let first = kept.first, first.id <= last + 1 {
                missed = kept.filter { $0.id > last }
            } else {
                missed = nil
            }
        }
        let id = nextClient
        nextClient += 1
        clients[id] = Client(continuation: continuation)
        return (missed, stream, id)
    }

    public func unsubscribe(_ id: Int) {
        let c = lock.withLock { clients.removeValue(forKey: id) }
        c?.continuation.finish()
    }

    /// Ends every stream and the deliveries (shutdown).
    public func close() {
        let all = lock.withLock { () -> [Client] in
            timer?.cancel()
            timer = nil
            let a = Array(clients.values)
            clients = [:]
            return a
        }
        for c in all { c.continuation.finish() }
    }
}

/// What the roles' events look like on the stream.
public enum AdminEvents {
    /// A call event from the distributor: `call.queued`, `call.offered`, `call.answered`,
    /// `call.ended` (with `outcome`), `call.abandoned` (then `call.ended` too); nil for events
    /// the stream does not carry.
    public static func call(_ e: ParleyRecords.CallEvent) -> [(String, JSONValue)] {
        switch e {
        case .arrived(let c, _, let caller, let queue, let priority, let version, let at):
            return [("call.queued", .object(["ref": .string(c), "queue": .string(queue), "priority": .number(priority),
                                              "caller": .string(caller), "rules_version": .string(version), "at_ms": .int(at)]))]
        case .offered(let c, let agent, let at):
            return [("call.offered", .object(["ref": .string(c), "agent": .string(agent), "at_ms": .int(at)]))]
        case .connected(let c, let agent, let at):
            return [("call.answered", .object(["ref": .string(c), "agent": .string(agent), "at_ms": .int(at)]))]
        case .completed(let c, let agent, let at):
            return [ended(c, "completed", agent: agent, code: 200, at: at)]
        case .abandoned(let c, let at):
            return [("call.abandoned", .object(["ref": .string(c), "at_ms": .int(at)])), ended(c, "abandoned", agent: nil, code: 487, at: at)]
        case .failed(let c, let code, let timedOut, let at):
            return [ended(c, timedOut ? "timeout" : "failed", agent: nil, code: code, at: at)]
        case .overflowed(let c, let full, let treatment, let code, let at):
            return [ended(c, full ? "full" : "timeout", agent: nil, code: code, at: at, treatment: treatment)]
        case .transferred(let c, let agent, let target, let at):
            return [("call.transferred", .object(["ref": .string(c), "agent": .string(agent), "target": .string(target), "at_ms": .int(at)]))]
        case .notAnswered, .treatment, .agent, .trace:
            return []
        }
    }

    static func ended(_ c: String, _ outcome: String, agent: String?, code: Int?, at: Int64, treatment: String? = nil) -> (String, JSONValue) {
        ("call.ended", .object(["ref": .string(c), "outcome": .string(outcome), "agent": .optional(agent),
                                "code": code.map { .number($0) } ?? .null, "treatment": .optional(treatment), "at_ms": .int(at)]))
    }
}
