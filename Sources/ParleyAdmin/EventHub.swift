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

/// The admin API's event stream: every event gets an increasing id and the last `capacity` are
/// kept, so a client that reconnects with `Last-Event-ID` gets what it missed. Publishing (on the
/// roles' event loops) takes a lock and appends what happened. `flush` (every 100 ms, from
/// `start`, on its own queue) takes what was published since the last flush as it is (no copy),
/// writes it as SSE text once, hands the same bytes to every client (one write per client per
/// flush) and keeps that text for resumes; with no client attached nothing is written until a
/// client resumes. A client more than `clientBuffer` events behind what it has written is
/// dropped, never waited for.
public final class EventHub: @unchecked Sendable {
    /// What one flush hands a client: SSE text, and how many events it holds.
    public struct Batch: Sendable {
        public var text: ByteBuffer
        public var events: Int
    }

    private struct Entry {
        var id: Int64
        var source: EventSource
    }

    /// Events of one flush, kept for resumes: as SSE text with where each event begins (and the
    /// text's end), or as published when no client was there to read them.
    private struct Kept {
        var firstID: Int64
        var count: Int
        var text: ByteBuffer?
        var offsets: [Int] = []
        var sources: [Entry] = []

        /// Drops the first `n` events.
        mutating func dropFirst(_ n: Int) {
            firstID += Int64(n)
            count -= n
            if var t = text {
                let base = offsets[n]
                t.moveReaderIndex(forwardBy: base - offsets[0])
                text = t
                offsets = Array(offsets[n...])
            } else {
                sources.removeFirst(n)
            }
        }
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
    /// Published since the last flush.
    private var fresh: [Entry] = []
    /// What is kept for resumes, oldest first from `keptHead`; `keptEvents` events in all.
    private var kept: [Kept] = []
    private var keptHead = 0
    private var keptEvents = 0
    private var nextID: Int64 = 1
    private var comments: [String] = []
    private var clients: [Int: Client] = [:]
    private var nextClient = 0
    private var timer: DispatchSourceTimer?

    public init(capacity: Int = 10_000, clientBuffer: Int = 4_096, maxClients: Int = 100) {
        self.capacity = max(1, capacity)
        self.clientBuffer = max(1, clientBuffer)
        self.maxClients = max(1, maxClients)
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
        fresh.append(Entry(id: nextID, source: source))
        nextID += 1
        lock.unlock()
    }

    public func publish(_ name: String, _ data: JSONValue) { publish(.value(name, data)) }

    /// A comment line to every client (keep-alive), with the next flush.
    public func comment(_ text: String) {
        lock.withLock { comments.append(text) }
    }

    /// Keeps a flush's events, dropping the oldest past `capacity` (under the lock).
    private func keep(_ k: Kept) {
        kept.append(k)
        keptEvents += k.count
        while keptEvents > capacity, keptHead < kept.count {
            let over = keptEvents - capacity
            if kept[keptHead].count <= over {
                keptEvents -= kept[keptHead].count
                kept[keptHead] = Kept(firstID: 0, count: 0)
                keptHead += 1
            } else {
                kept[keptHead].dropFirst(over)
                keptEvents -= over
            }
        }
        if keptHead > 64, keptHead * 2 > kept.count {
            kept.removeFirst(keptHead)
            keptHead = 0
        }
    }

    /// Writes what was published since the last flush once and hands it to each client; a
    /// client too far behind, or whose stream holds too many batches, is dropped.
    public func flush() {
        let (entries, notes, targets) = lock.withLock { () -> ([Entry], [String], [(Int, AsyncStream<Batch>.Continuation)]) in
            let e = fresh
            fresh = []
            // Kept as published at once: a client that subscribes before the text is written
            // finds these events among the kept ones (it is not among this flush's targets).
            if let first = e.first { keep(Kept(firstID: first.id, count: e.count, sources: e)) }
            let c = comments
            comments = []
            return (e, c, clients.map { ($0.key, $0.value.continuation) })
        }
        guard !targets.isEmpty, !entries.isEmpty || !notes.isEmpty else { return }
        var w = JSONWriter(capacity: entries.count * 256 + 64)
        var offsets: [Int] = []
        offsets.reserveCapacity(entries.count + 1)
        for e in entries {
            offsets.append(w.bytes.count)
            Self.write(e, into: &w)
        }
        offsets.append(w.bytes.count)
        let eventsText = ByteBuffer(bytes: w.bytes)
        for c in notes { w.prefix(": \(c)\n\n") }
        let batch = Batch(text: notes.isEmpty ? eventsText : ByteBuffer(bytes: w.bytes), events: entries.count)
        var slow: [Int] = []
        lock.withLock {
            // The written text replaces the events kept as published, if they are still kept
            // (the batch that ends with this flush's last event; its first ones may be gone).
            if let first = entries.first {
                let lastID = first.id + Int64(entries.count) - 1
                var i = kept.count - 1
                while i >= keptHead {
                    if kept[i].count > 0, kept[i].firstID + Int64(kept[i].count) - 1 == lastID {
                        let skip = Int(kept[i].firstID - first.id)
                        var t = eventsText
                        t.moveReaderIndex(forwardBy: offsets[skip])
                        kept[i].text = t
                        kept[i].offsets = Array(offsets[skip...])
                        kept[i].sources = []
                        break
                    }
                    i -= 1
                }
            }
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
        let gone = lock.withLock { slow.compactMap { clients.removeValue(forKey: $0) } }
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

    /// A new client: the SSE text of the kept events after `lastEventID` (nil when some of them
    /// are no longer kept: the client must reload its summaries), then every new one from the
    /// next flush. nil when `maxClients` streams are open already.
    public func subscribe(after lastEventID: Int64?) -> (missed: String?, stream: AsyncStream<Batch>, id: Int)? {
        // Undelivered batches a client may hold (1.6 s of them); with `clientBuffer`, what it can be behind.
        let (stream, continuation) = AsyncStream<Batch>.makeStream(bufferingPolicy: .bufferingOldest(16))
        // What was missed: text written already, or events as published (written here, off the lock).
        enum Segment { case text(ByteBuffer), entries(ArraySlice<Entry>) }
        let found = lock.withLock { () -> (id: Int, segments: [Segment], lost: Bool)? in
            guard clients.count < maxClients else { return nil }
            let id = nextClient
            nextClient += 1
            clients[id] = Client(continuation: continuation)
            guard let last = lastEventID else { return (id, [], false) }
            // Published but not flushed: this client gets those from the next flush.
            let flushed = nextID - 1 - Int64(fresh.count)
            if last > nextID - 1 { return (id, [], true) }  // ids began again at a restart
            guard last < flushed else { return (id, [], false) }
            let oldest = keptHead < kept.count ? kept[keptHead].firstID : flushed + 1
            guard last + 1 >= oldest else { return (id, [], true) }
            var segments: [Segment] = []
            for k in kept[keptHead...] where k.count > 0 && k.firstID + Int64(k.count) - 1 > last {
                let skip = max(0, Int(last + 1 - k.firstID))
                if var t = k.text {
                    t.moveReaderIndex(forwardBy: k.offsets[skip] - k.offsets[0])
                    segments.append(.text(t))
                } else {
                    segments.append(.entries(k.sources[skip...]))
                }
            }
            return (id, segments, false)
        }
        guard let found else { return nil }
        if found.lost { return (nil, stream, found.id) }
        var missed = ""
        for segment in found.segments {
            switch segment {
            case .text(let t): missed += String(buffer: t)
            case .entries(let e): missed += String(buffer: Self.text(e))
            }
        }
        return (missed, stream, found.id)
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

    /// One event's SSE frame.
    private static func write(_ e: Entry, into w: inout JSONWriter) {
        w.prefix("id: ")
        w.digits(e.id)
        w.prefix("\nevent: ")
        w.prefix(AdminEvents.name(e.source))
        w.prefix("\ndata: ")
        AdminEvents.write(e.source, into: &w)
        w.prefix("\n\n")
    }

    private static func text(_ entries: ArraySlice<Entry>) -> ByteBuffer {
        var w = JSONWriter(capacity: entries.count * 256)
        for e in entries { write(e, into: &w) }
        return ByteBuffer(bytes: w.bytes)
    }
}
