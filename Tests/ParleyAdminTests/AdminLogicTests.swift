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
        FileManager.default.createFile(atPath: dir + "/lib/select.lua", contents: Data())
        #expect(AdminAPI.ruleFile(dir + "/lib/select.lua", directory: dir) == "lib/select.lua")
        #expect(AdminAPI.ruleFile("...ib/select.lua", directory: dir) == "lib/select.lua")
        #expect(AdminAPI.ruleFile("other.lua", directory: dir) == "other.lua")
    }

    @Test func theEventBufferResumesOrSaysResync() {
        let hub = EventHub(capacity: 3, clientBuffer: 8)
        for i in 1...5 { hub.publish("e", .number(i)) }
        #expect(hub.lastID == 5)
        #expect(hub.subscribe(after: 3)?.missed?.map(\.id) == [4, 5])
        #expect(hub.subscribe(after: 2)?.missed?.map(\.id) == [3, 4, 5])
        #expect(hub.subscribe(after: 1).map { $0.missed == nil } == true)  // 2 is no longer kept: resync
        #expect(hub.subscribe(after: 5)?.missed?.isEmpty == true)
        #expect(hub.subscribe(after: nil)?.missed?.isEmpty == true)
    }

    /// Events reach a client in batches at each flush; a client that falls too far behind is
    /// dropped; publishing never waits.
    @Test func batchesAndASlowClientIsDropped() async {
        let hub = EventHub(capacity: 100, clientBuffer: 4)
        guard let slow = hub.subscribe(after: nil), let fast = hub.subscribe(after: nil) else { Issue.record("refused"); return }
        for i in 1...3 { hub.publish("e", .number(i)) }
        hub.flush()
        var it = fast.stream.makeAsyncIterator()
        let first = await it.next() ?? []
        #expect(first.count == 3)  // one batch, one write
        hub.comment("keep-alive")
        hub.flush()
        #expect(await it.next() == [.comment("keep-alive")])
        _ = slow
        // 5 pending for a client over its 4: dropped at once, the other one goes on.
        let lone = EventHub(capacity: 100, clientBuffer: 4)
        guard let behind = lone.subscribe(after: nil) else { return }
        for i in 1...5 { lone.publish("e", .number(i)) }
        #expect(lone.clientCount == 0)
        var n = 0
        for await _ in behind.stream { n += 1 }
        #expect(n == 0)
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

    @Test func callEventsOnTheStream() {
        let names = AdminEvents.call(.abandoned(call: "c1", at: 5)).map(\.0)
        #expect(names == ["call.abandoned", "call.ended"])
        #expect(AdminEvents.call(.arrived(call: "c1", sipCallID: "x", caller: "sip:a@b", queue: "sales", priority: 0, rulesVersion: "v", at: 1)).first?.0 == "call.queued")
        #expect(AdminEvents.call(.notAnswered(call: "c1", agent: "a", code: nil, at: 1)).isEmpty)
    }
}
