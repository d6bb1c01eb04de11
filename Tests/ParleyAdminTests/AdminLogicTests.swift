import Foundation
import ParleyCallCenter
import ParleyRecords
import Testing

@testable import ParleyAdmin

/// The admin API's logic without sockets: tokens, request bodies, JSON text, the event buffer.
@Suite struct AdminLogicTests {
    let full = Array("full-token-0123456789".utf8), read = Array("read-token-0123456789".utf8)

    @Test func tokensGrantWhatTheyShould() {
        let a = AdminAccess(token: full, readToken: read, metricsOpen: false)
        #expect(a.grant("full-token-0123456789") == .all)
        #expect(a.grant("read-token-0123456789") == .read)
        #expect(a.grant("full-token-012345678") == .none)  // a prefix
        #expect(a.grant("full-token-0123456789x") == .none)
        #expect(a.grant("") == .none && a.grant(nil) == .none)
        #expect(AdminAccess(token: nil, readToken: nil, metricsOpen: false).grant(nil) == .all)  // loopback, no tokens
        #expect(AdminAccess(token: nil, readToken: read, metricsOpen: false).grant("read-token-0123456789") == .read)
    }

    @Test func agentStateBodies() throws {
        #expect(try AdminAPI.agentCommand(["state": "break", "reason": "lunch"]) == .pause(reason: "lunch"))
        #expect(try AdminAPI.agentCommand(["state": "offline", "reason": NSNull()]) == .logOff(reason: nil))
        #expect(try AdminAPI.agentCommand(["state": "available"]) == .available)
        for bad: [String: Any] in [[:], ["state": 1], ["state": "asleep"], ["state": "break", "x": 1], ["state": "break", "reason": 5],
                                   ["state": "break", "reason": "a\u{7}b"], ["state": "break", "reason": String(repeating: "x", count: 65)],
                                   ["state": "available", "reason": "lunch"]] {
            #expect(throws: AdminError.self) { try AdminAPI.agentCommand(bad) }
        }
        do {
            _ = try AdminAPI.agentCommand(["state": "break", "colour": "red"])
        } catch let e as AdminError {
            #expect(e.status == .badRequest && e.message.contains("'colour'"))
        }
    }

    @Test func jsonTextEscapesEverythingAndKeepsNulls() {
        let v = JSONValue.object(["a": .string("q\"\\\n\u{1}\u{7F}é"), "n": .null, "l": .array([.int(1), .bool(false), .double(0.5)])])
        #expect(v.text == #"{"a":"q\"\\\n\u0001\u007fé","n":null,"l":[1,false,0.5]}"#)
        #expect(JSONValue.parseObject(Array(v.text.utf8)) != nil)
    }

    @Test func ruleFilesAreShownRelativeToTheDirectory() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("parley-rulefile-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir + "/lib", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(FileManager.default.createFile(atPath: dir + "/lib/select.lua", contents: Data()))
        #expect(AdminAPI.ruleFile(dir + "/lib/select.lua", directory: dir) == "lib/select.lua")
        #expect(AdminAPI.ruleFile("...ib/select.lua", directory: dir) == "lib/select.lua")
        #expect(AdminAPI.ruleFile("other.lua", directory: dir) == "other.lua")
    }

    /// The ids in SSE text (nil stays nil: a resync).
    func ids(_ text: String?) -> [Int64]? {
        text.map { $0.split(separator: "\n").compactMap { $0.hasPrefix("id: ") ? Int64($0.dropFirst(4)) : nil } }
    }

    /// Kept events, written or not yet (no client was there), resume from any id still kept;
    /// the oldest go first, in part of a flush's events too.
    @Test func theEventBufferResumesOrSaysResync() {
        let hub = EventHub(capacity: 3, clientBuffer: 8)
        for i in 1...5 { hub.publish("e", .number(i)) }
        hub.flush()
        #expect(hub.lastID == 5)
        #expect(ids(hub.subscribe(after: 3)?.missed) == [4, 5])
        #expect(hub.subscribe(after: 2)?.missed == "id: 3\nevent: e\ndata: 3\n\nid: 4\nevent: e\ndata: 4\n\nid: 5\nevent: e\ndata: 5\n\n")
        #expect(hub.subscribe(after: 1).map { $0.missed == nil } == true)  // 2 is no longer kept: resync
        #expect(hub.subscribe(after: 5)?.missed?.isEmpty == true)
        #expect(hub.subscribe(after: nil)?.missed?.isEmpty == true)
        // Now with clients: the next flushes are written, and the buffer goes on dropping the oldest.
        hub.publish("e", .number(6))
        hub.flush()
        #expect(ids(hub.subscribe(after: 3)?.missed) == [4, 5, 6])
        for i in 7...8 { hub.publish("e", .number(i)) }
        hub.flush()
        #expect(ids(hub.subscribe(after: 5)?.missed) == [6, 7, 8])
        #expect(hub.subscribe(after: 4).map { $0.missed == nil } == true)
        #expect(ids(hub.subscribe(after: 6)?.missed) == [7, 8])
    }

    /// Events reach every client in one batch per flush, written once; a client that falls too
    /// far behind is dropped, the others go on; publishing never waits.
    @Test func batchesAndASlowClientIsDropped() async {
        let hub = EventHub(capacity: 100, clientBuffer: 4)
        guard let slow = hub.subscribe(after: nil), let fast = hub.subscribe(after: nil) else { Issue.record("refused"); return }
        for i in 1...3 { hub.publish("e", .number(i)) }
        hub.flush()
        var it = fast.stream.makeAsyncIterator()
        guard let first = await it.next() else { Issue.record("no batch"); return }
        #expect(first.events == 3)
        #expect(String(buffer: first.text) == "id: 1\nevent: e\ndata: 1\n\nid: 2\nevent: e\ndata: 2\n\nid: 3\nevent: e\ndata: 3\n\n")
        hub.delivered(fast.id, events: 3)
        hub.comment("keep-alive")
        hub.flush()
        #expect(await it.next().map { String(buffer: $0.text) } == ": keep-alive\n\n")
        // The slow one has 3 unwritten; 2 more put it over its 4: dropped. The fast one wrote its 3.
        for i in 4...5 { hub.publish("e", .number(i)) }
        hub.flush()
        #expect(hub.clientCount == 1)
        #expect(await it.next()?.events == 2)
        var batches = 0
        for await _ in slow.stream { batches += 1 }
        #expect(batches == 2)  // the events and the keep-alive it had before it was dropped, then the end
    }

    /// A client that subscribes between flushes gets what was flushed as missed events and the
    /// rest from the next flush: nothing twice, nothing lost.
    @Test func resumingBetweenFlushesLosesNothing() async {
        let hub = EventHub(capacity: 100, clientBuffer: 100)
        guard let other = hub.subscribe(after: nil) else { return }
        for i in 1...3 { hub.publish("e", .number(i)) }
        hub.flush()
        hub.publish("e", .number(4))
        guard let late = hub.subscribe(after: 1) else { return }
        #expect(ids(late.missed) == [2, 3])
        hub.flush()
        var it = late.stream.makeAsyncIterator()
        #expect(await it.next().map { String(buffer: $0.text) } == "id: 4\nevent: e\ndata: 4\n\n")
        _ = other
        // Ids from before a restart are past the last one: resync.
        #expect(hub.subscribe(after: 99).map { $0.missed == nil } == true)
    }

    @Test func streamsAreCapped() {
        let hub = EventHub(capacity: 10, clientBuffer: 4, maxClients: 2)
        let a = hub.subscribe(after: nil), b = hub.subscribe(after: nil)
        #expect(a != nil && b != nil && hub.subscribe(after: nil) == nil)
        hub.unsubscribe(a!.id)
        #expect(hub.subscribe(after: nil) != nil)
    }

    @Test func todayStartsAtLocalMidnight() {
        let paris = AdminAPI(distributor: nil, records: nil, rules: nil, access: AdminAccess(token: nil, readToken: nil, metricsOpen: false),
                             timeZone: TimeZone(identifier: "Europe/Paris")!)
        // 2026-12-06 00:30 in Paris is 2026-12-05 23:30 UTC: today began at 2026-12-05 23:00 UTC.
        let t: Int64 = 1_796_513_400_000  // 2026-12-05T23:30:00Z
        #expect(paris.midnight(before: t) == t - 30 * 60_000)
        let utc = AdminAPI(distributor: nil, records: nil, rules: nil, access: AdminAccess(token: nil, readToken: nil, metricsOpen: false))
        #expect(utc.midnight(before: t) == t - (23 * 60 + 30) * 60_000)
    }

    @Test func callEventsOnTheStream() async {
        /// What a client reads for one call event: each event's name and data.
        func rendered(_ e: ParleyRecords.CallEvent) async -> [String] {
            let hub = EventHub()
            guard let client = hub.subscribe(after: nil) else { return ["refused"] }
            AdminEvents.publish(e, to: hub)
            hub.comment("end")
            hub.flush()
            var it = client.stream.makeAsyncIterator()
            let text = await it.next().map { String(buffer: $0.text) } ?? ""
            return text.components(separatedBy: "\n\n").compactMap { frame in
                let lines = frame.split(separator: "\n")
                guard lines.count == 3 else { return nil }
                return lines[1].dropFirst("event: ".count) + " " + lines[2].dropFirst("data: ".count)
            }
        }
        #expect(await rendered(.abandoned(call: "c1", at: 5)) == [#"call.abandoned {"ref":"c1","at_ms":5}"#,
                                                                  #"call.ended {"ref":"c1","outcome":"abandoned","agent":null,"code":487,"treatment":null,"at_ms":5}"#])
        #expect(await rendered(.arrived(call: "c1", sipCallID: "x", caller: "sip:a\"@b", queue: "sales", priority: 2, rulesVersion: "v", at: 1))
                == [#"call.queued {"ref":"c1","queue":"sales","priority":2,"caller":"sip:a\"@b","rules_version":"v","at_ms":1}"#])
        #expect(await rendered(.overflowed(call: "c1", full: true, treatment: "vm", code: nil, at: 3))
                == [#"call.ended {"ref":"c1","outcome":"full","agent":null,"code":null,"treatment":"vm","at_ms":3}"#])
        #expect(await rendered(.notAnswered(call: "c1", agent: "a", code: nil, at: 1)).isEmpty)
    }

    /// The writer writes what JSONValue writes, separators and escapes included.
    @Test func theWriterWritesWhatTheValueWrites() {
        var w = JSONWriter()
        w.beginObject()
        w.field("a", "x\u{1}\u{2028}é"); w.field("n", nil as String?); w.key("l"); w.beginArray()
        w.int(1); w.bool(false); w.beginObject(); w.field("k", Int64(-3)); w.endObject(); w.beginArray(); w.endArray(); w.endArray()
        w.key("o"); w.beginObject(); w.endObject()
        w.field("min", Int64.min); w.field("zero", 0); w.field("big", Int64.max)
        w.endObject()
        let v = JSONValue.object(["a": .string("x\u{1}\u{2028}é"), "n": .null,
                                  "l": .array([.int(1), .bool(false), .object(["k": .int(-3)]), .array([])]), "o": .object([]),
                                  "min": .int(.min), "zero": .int(0), "big": .int(.max)])
        #expect(w.text == v.text)
        #expect(w.text.hasPrefix(#"{"a":"x\u0001\u2028é","n":null,"l":[1,false,{"k":-3},[]],"o":{},"min":-9223372036854775808,"zero":0,"#))
    }
}
