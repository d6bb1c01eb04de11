import Foundation
import Hummingbird
import NIOCore
import ParleyCallCenter
import ParleyRecords
import ParleyRules

extension AdminAPI {
    /// `GET /v1/events`: Server-Sent Events. What was missed since `Last-Event-ID` first (or a
    /// `resync` event when it is no longer kept), then every new event; a comment line every
    /// 15 s keeps proxies from closing the stream.
    func eventStream(_ request: Request) throws -> Response {
        let last = request.headers.first { $0.name.canonicalName == "last-event-id" }
            .flatMap { Int64($0.value.trimmingCharacters(in: .whitespaces)) }
        let hub = events
        guard let (missed, stream, id) = hub.subscribe(after: last) else {
            throw AdminError(.tooManyRequests, "too_many_streams", "\(hub.maxClients) event streams are open already; close one first")
        }
        let body = ResponseBody { writer in
            defer { hub.unsubscribe(id) }
            var head = "retry: 2000\n\n"
            if let missed {
                for e in missed { head += Self.sse(e) }
            } else {
                head += "id: \(hub.lastID)\nevent: resync\ndata: {\"reason\":\"events since \(last ?? 0) are no longer kept; reload the summaries\"}\n\n"
            }
            try await writer.write(ByteBuffer(string: head))
            for await batch in stream {
                var text = ""
                for item in batch {
                    switch item {
                    case .event(let e): text += Self.sse(e)
                    case .comment(let c): text += ": \(c)\n\n"
                    }
                }
                try await writer.write(ByteBuffer(string: text))
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-store"], body: body)
    }

    static func sse(_ e: EventHub.Event) -> String {
        "id: \(e.id)\nevent: \(e.name)\ndata: \(e.data)\n\n"
    }

    /// Feeds the stream from the roles of this process: call and agent events from the
    /// distributor's loop, a `queue.update` at most once a second for each queue that changed,
    /// rule reloads, and a keep-alive comment every 15 s. Call once, after the roles started.
    public func startEvents() {
        let hub = events
        rules?.observeReloads { outcome in
            switch outcome {
            case .published(let n, let v):
                hub.publish("rules.reloaded", .object(["version": .string(v), "generation": .number(n)]))
            case .failed(let problems):
                hub.publish("rules.failed", .object(["errors": .array(problems.map { p in
                    .object(["file": .optional(p.file), "line": p.line.map { .number($0) } ?? .null, "message": .string(p.message)])
                })]))
            case .unchanged:
                break
            }
        }
        keepAlive.start(every: 15) { hub.comment("keep-alive") }
        hub.start()
        guard let d = distributor else { return }
        let dirty = DirtyQueues()
        let metrics = self.metrics
        d.stack.loop.execute {
            d.callObserver = { e in
                metrics.observe(e)
                for (name, data) in AdminEvents.call(e) { hub.publish(name, data) }
                dirty.all = true
            }
            d.agentObserver = { m in
                hub.publish("agent.state", AdminViews.agent(d.snapshot(of: m)))
                dirty.all = true
            }
            self.scheduleQueueUpdates(d, dirty)
        }
    }

    /// Once a second on the distributor's loop: the queues' summaries when something changed,
    /// their "today" figures read off the loop.
    private func scheduleQueueUpdates(_ d: Distributor, _ dirty: DirtyQueues) {
        _ = d.stack.schedule(after: .seconds(1)) { [weak self] in
            guard let self else { return }
            if dirty.all {
                dirty.all = false
                let snaps = d.queueSnapshots()
                let records = self.records, hub = self.events
                DispatchQueue.global().async {
                    for q in snaps {
                        let today = try? records?.queueToday(q.name, sinceMs: self.midnight(before: q.nowMs), thresholdMs: q.serviceLevelMs)
                        hub.publish("queue.update", AdminViews.queue(q, today: today))
                    }
                }
            }
            self.scheduleQueueUpdates(d, dirty)
        }
    }

    /// Stops the keep-alive and ends every stream.
    public func stopEvents() {
        keepAlive.stop()
        events.close()
    }
}

/// Whether anything changed since the last `queue.update` (on the distributor's loop only).
final class DirtyQueues: @unchecked Sendable {
    var all = true
}

/// A repeating timer on its own queue.
final class RepeatingTimer: @unchecked Sendable {
    private var timer: DispatchSourceTimer?
    private let lock = NSLock()

    func start(every seconds: Int, _ body: @escaping @Sendable () -> Void) {
        let t = DispatchSource.makeTimerSource(queue: .global())
        t.schedule(deadline: .now() + .seconds(seconds), repeating: .seconds(seconds))
        t.setEventHandler(handler: body)
        t.resume()
        lock.withLock { timer?.cancel(); timer = t }
    }

    func stop() {
        lock.withLock { timer?.cancel(); timer = nil }
    }
}
