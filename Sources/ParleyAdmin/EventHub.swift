import Foundation
import NIOCore
import ParleyCallCenter
import ParleyRecords

/// What an event is made of when it happens: the roles hand over values they have already
/// built, and the event's JSON is written later, off their loops, once for every client, and
/// only when someone reads it.
public enum EventSource: Sendable {
    /// An event whose data is ready (rule reloads, queue updates).
    case value(String, JSONValue)
    /// `call.queued`, `call.offered`, `call.answered`, `call.transferred`, `call.abandoned`.
    case call(ParleyRecords.CallEvent)
    /// `call.ended`, for the call events that end a call.
    case ended(ParleyRecords.CallEvent)
    /// `agent.state`.
    case agent(AgentChange)
}

/// An agent as it was at a change, boxed: the event buffer copies it as one reference, not as
/// the dozen its fields hold.
public final class AgentChange: Sendable {
    public let snapshot: AgentSnapshot
    public init(_ snapshot: AgentSnapshot) { self.snapshot = snapshot }
}

/// The admin API's event stream: every event gets an increasing id and is kept in a bounded
/// buffer (the last `capacity`), so a client that reconnects with `Last-Event-ID` gets what it
/// missed. Publishing (on the roles' event loops) only takes a lock and stores the event's
/// source; `flush` (every 100 ms, from `start`, on its own queue) writes the events since the
/// last flush as SSE text once and hands the same bytes to every client, so a client costs one
/// write per flush. A client more than `clientBuffer` events behind what it has written is
/// dropped, never waited for.
public final class EventHub: @unchecked Sendable {
    public struct Event: Sendable, Equatable {
        public var id: Int64
        public var name: String
        /// The event's JSON (one line).
        public var data: String
    }

    /// What one flush hands a client: SSE text, and how many events it holds.
    public struct Batch: Sendable {
        public var text: ByteBuffer
        public var events: Int
    }

    private struct Entry {
        var id: Int64
        var source: EventSource
    }

    private struct Client {
        var continuation: AsyncStream<Batch>.Continuation
        /// Events handed over and not yet written.
        var behind = 0
    }

    public let capacity: Int
    /// Events a client may be behind before it is dropped.
    public let clientBuffer: Int
    /// Streams open at once; more are refused.
    public let maxClients: Int
    private let lock = NSLock()
    private var ring: [Entry] = []
    private var head = 0
    private var nextID: Int64 = 1
    /// The last event handed to clients.
    private var flushedID: Int64 = 0
    private var comments: [String] = []
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
    public func publish(_ source: EventSource) {
        lock.lock()
        let e = Entry(id: nextID, source: source)
        nextID += 1
        if ring.count < capacity {
            ring.append(e)
        } else {
            ring[head] = e
            head = (head + 1) % capacity
        }
        lock.unlock()
    }

    public func publish(_ name: String, _ data: JSONValue) { publish(.value(name, data)) }

    /// A comment line to every client (keep-alive), with the next flush.
    public func comment(_ text: String) {
        lock.withLock { comments.append(text) }
    }

    /// The kept events after `id`, oldest first, and whether any after it are no longer kept
    /// (under the lock).
    private func kept(after id: Int64) -> (entries: [Entry], lost: Bool) {
        let count = Int(nextID - 1 - id)
        // Past the last id (ids began again at a restart): nothing kept is known to follow it.
        guard count > 0 else { return ([], count < 0) }
        let n = min(count, ring.count)
        var out: [Entry] = []
        out.reserveCapacity(n)
        let oldest = ring.count < capacity ? 0 : head
        for i in (ring.count - n)..<ring.count { out.append(ring[(oldest + i) % ring.count]) }
        return (out, n < count)
    }

    /// Writes what happened since the last flush once and hands it to each client; a client
    /// too far behind, or whose stream holds too many batches, is dropped.
    public func flush() {
        let (entries, lost, notes, targets) = lock.withLock { () -> ([Entry], Bool, [String], [(Int, AsyncStream<Batch>.Continuation)]) in
            guard !clients.isEmpty else {
                flushedID = nextID - 1
                comments = []
                return ([], false, [], [])
            }
            let (e, l) = kept(after: flushedID)
            flushedID = nextID - 1
            let c = comments
            comments = []
            return (e, l, c, clients.map { ($0.key, $0.value.continuation) })
        }
        guard !targets.isEmpty, !entries.isEmpty || !notes.isEmpty || lost else { return }
        var w = JSONWriter(capacity: entries.count * 256 + 64)
        if lost, let first = entries.first {
            // More happened in one flush than the buffer keeps.
            w.prefix(Self.sse(Event(id: first.id - 1, name: "resync", data: #"{"reason":"more events than are kept came at once; reload the summaries"}"#)))
        }
        for e in entries {
            w.prefix("id: ")
            w.digits(e.id)
            w.prefix("\nevent: ")
            w.prefix(AdminEvents.name(e.source))
            w.prefix("\ndata: ")
            AdminEvents.write(e.source, into: &w)
            w.prefix("\n\n")
        }
        for c in notes { w.prefix(": \(c)\n\n") }
        let batch = Batch(text: ByteBuffer(bytes: w.bytes), events: entries.count)
        var slow: [Int] = []
        lock.withLock {
            for (id, _) in targets {
                guard clients[id] != nil else { continue }
                clients[id]!.behind += entries.count
                if clients[id]!.behind > clientBuffer { slow.append(id) }
            }
        }
        for (id, c) in targets where !slow.contains(id) {
            if case .dropped = c.yield(batch) { slow.append(id) }
        }
        guard !slow.isEmpty else { return }
        let gone = lock.withLock { () -> [Client] in
            let g = slow.compactMap { clients.removeValue(forKey: $0) }
            dropped += g.count
            return g
        }
        for c in gone { c.continuation.finish() }
    }

    /// A client wrote `events` events of what it was handed.
    public func delivered(_ client: Int, events: Int) {
        lock.withLock {
            if clients[client] != nil { clients[client]!.behind -= events }
        }
    }

    public var clientCount: Int { lock.withLock { clients.count } }
    public var lastID: Int64 { lock.withLock { nextID - 1 } }

    /// A new client: the events after `lastEventID` still kept (nil when some were lost: the
    /// client must reload its summaries), then every new one. nil when `maxClients` streams
    /// are open already.
    public func subscribe(after lastEventID: Int64?) -> (missed: [Event]?, stream: AsyncStream<Batch>, id: Int)? {
        // Undelivered batches a client may hold (1.6 s of them); with `clientBuffer`, what it can be behind.
        let (stream, continuation) = AsyncStream<Batch>.makeStream(bufferingPolicy: .bufferingOldest(16))
        let (id, missed, lost) = lock.withLock { () -> (Int?, [Entry], Bool) in
            guard clients.count < maxClients else { return (nil, [], false) }
            let id = nextClient
            nextClient += 1
            clients[id] = Client(continuation: continuation)
            // What this client gets from the next flush on, it is not handed here.
            let (e, l) = lastEventID.map { kept(after: $0) } ?? ([], false)
            return (id, e.filter { $0.id <= flushedID }, l)
        }
        guard let id else { return nil }
        return (lost ? nil : missed.map(Self.render), stream, id)
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

    private static func render(_ e: Entry) -> Event {
        let (name, data) = AdminEvents.render(e.source)
        return Event(id: e.id, name: name, data: data)
    }

    static func sse(_ e: Event) -> String {
        "id: \(e.id)\nevent: \(e.name)\ndata: \(e.data)\n\n"
    }
}
