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
                head += missed
            } else {
                head += "id: \(hub.lastID)\nevent: resync\ndata: {\"reason\":\"events since \(last ?? 0) are no longer kept; reload the summaries\"}\n\n"
            }
            try await writer.write(ByteBuffer(string: head))
            for await batch in stream {
                try await writer.write(batch.text)
                hub.delivered(id, events: batch.events)
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-store"], body: body)
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
                AdminEvents.publish(e, to: hub)
                dirty.all = true
            }
            d.agentObserver = { m in
                hub.publish(.agent(AgentChange(d.snapshot(of: m))))
                dirty.all = true
            }
            self.loadTodayBase(d)
            self.scheduleQueueUpdates(d, dirty)
        }
    }

    /// Once a second on the distributor's loop: the queues' summaries when something changed.
    private func scheduleQueueUpdates(_ d: Distributor, _ dirty: DirtyQueues) {
        _ = d.stack.schedule(after: .seconds(1)) { [weak self] in
            guard let self else { return }
            if dirty.all {
                dirty.all = false
                for q in d.queueSnapshots() {
                    events.publish("queue.update", AdminViews.queue(q, today: metrics.today(q.name, now: q.nowMs)))
                }
            }
            self.scheduleQueueUpdates(d, dirty)
        }
    }

    /// The records' figures for today from before the counting began (read once, off the loop).
    private func loadTodayBase(_ d: Distributor) {
        guard let records else { return }
        let names = d.queueSnapshots().map { ($0.name, $0.serviceLevelMs) }
        let now = d.clock(), day = midnight(before: now), metrics = self.metrics
        DispatchQueue.global().async {
            var base: [String: QueueToday] = [:]
            for (name, threshold) in names {
                base[name] = try? records.queueToday(name, sinceMs: day, beforeMs: now, thresholdMs: threshold)
            }
            let read = base
            d.stack.loop.execute { metrics.setTodayBase(read, day: day) }
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

/// What the roles' events look like on the stream.
public enum AdminEvents {
    /// Publishes a call event from the distributor: `call.queued`, `call.offered`,
    /// `call.answered`, `call.transferred`, `call.ended` (with `outcome`), `call.abandoned`
    /// (then `call.ended` too); nothing for events the stream does not carry.
    public static func publish(_ e: ParleyRecords.CallEvent, to hub: EventHub) {
        switch e {
        case .arrived, .offered, .connected, .transferred: hub.publish(.call(e))
        case .completed, .failed, .overflowed: hub.publish(.ended(e))
        case .abandoned:
            hub.publish(.call(e))
            hub.publish(.ended(e))
        case .notAnswered, .treatment, .agent, .trace: break
        }
    }

    static func name(_ source: EventSource) -> String {
        switch source {
        case .value(let name, _): return name
        case .agent: return "agent.state"
        case .ended: return "call.ended"
        case .call(let e):
            switch e {
            case .arrived: return "call.queued"
            case .offered: return "call.offered"
            case .connected: return "call.answered"
            case .transferred: return "call.transferred"
            case .abandoned: return "call.abandoned"
            default: return "call"
            }
        }
    }

    /// An event's JSON.
    static func write(_ source: EventSource, into w: inout JSONWriter) {
        switch source {
        case .value(_, let data):
            w.raw(data.text)
        case .agent(let a):
            AdminViews.agent(a.snapshot, into: &w)
        case .ended(let e):
            w.beginObject()
            switch e {
            case .completed(let c, let agent, let at): ended(&w, c, "completed", agent: agent, code: 200, at: at)
            case .abandoned(let c, let at): ended(&w, c, "abandoned", agent: nil, code: 487, at: at)
            case .failed(let c, let code, let timedOut, let at): ended(&w, c, timedOut ? "timeout" : "failed", agent: nil, code: code, at: at)
            case .overflowed(let c, let full, let treatment, let code, let at):
                ended(&w, c, full ? "full" : "timeout", agent: nil, code: code, at: at, treatment: treatment)
            default: break
            }
            w.endObject()
        case .call(let e):
            w.beginObject()
            switch e {
            case .arrived(let c, _, let caller, let queue, let priority, let version, let at):
                w.field("ref", c); w.field("queue", queue); w.field("priority", priority)
                w.field("caller", caller); w.field("rules_version", version); w.field("at_ms", at)
            case .offered(let c, let agent, let at), .connected(let c, let agent, let at):
                w.field("ref", c); w.field("agent", agent); w.field("at_ms", at)
            case .transferred(let c, let agent, let target, let at):
                w.field("ref", c); w.field("agent", agent); w.field("target", target); w.field("at_ms", at)
            case .abandoned(let c, let at):
                w.field("ref", c); w.field("at_ms", at)
            default:
                break
            }
            w.endObject()
        }
    }

    private static func ended(_ w: inout JSONWriter, _ c: String, _ outcome: String, agent: String?, code: Int?, at: Int64,
                              treatment: String? = nil) {
        w.field("ref", c); w.field("outcome", outcome); w.field("agent", agent)
        w.key("code"); w.int(code.map(Int64.init)); w.field("treatment", treatment); w.field("at_ms", at)
    }
}
