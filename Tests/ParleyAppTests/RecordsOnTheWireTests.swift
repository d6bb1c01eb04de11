#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import ParleyRecords
import Testing

@testable import ParleyApp

/// `parley serve`'s distributor writes call records to records.database: a call sent over UDP
/// leaves its record and queue log, stamped with the rules version, and a restart loses nothing.
@Suite(.serialized) struct RecordsOnTheWireTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The distributor role alone on 127.0.0.1:`port`, agent a1 (`agent`: more of its fields), and
    /// `records` as the records section.
    static func distributorYAML(port: Int, agent: String = "", records: String) -> String {
        """
        rules: \(root.appendingPathComponent("rules").path)
        roles: [distributor]
        listeners: {distributor: "127.0.0.1:\(port)", buffer: "127.0.0.1:\(port + 1)"}
        agents:
          - {id: a1, contact: "sip:a1@127.0.0.1:\(port + 2)"\(agent)}
        records: \(records)
        security: {handoff_secret: "records-wire-test-secret"}
        """
    }

    /// Sends `text` over UDP from 127.0.0.1:`from` to 127.0.0.1:`port` and returns the responses
    /// until a final one (or 5 s).
    func sendAndCollect(_ text: String, from: Int, port: Int) throws -> [String] {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        #expect(fd >= 0)
        defer { close(fd) }
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_port = in_port_t(UInt16(from).bigEndian)
        local.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &local) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        #expect(bound == 0)
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bytes = Array(text.utf8)
        let sent = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, bytes, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        #expect(sent == bytes.count)
        var responses: [String] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            guard n > 0 else { break }
            let r = String(decoding: buffer[0..<n], as: UTF8.self)
            responses.append(r)
            if let code = Int(r.dropFirst(8).prefix(3)), code >= 200 { break }
        }
        return responses
    }

    @Test func aCallNoAgentCanTakeIsRecordedAndSurvivesARestart() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("parley-records-wire-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let port = Int.random(in: 21_000..<29_000)
        let yaml = Self.distributorYAML(port: port, agent: ", available: false", records: "{database: calls.sqlite}")
        let configPath = dir.appendingPathComponent("parley.yaml").path
        try yaml.write(toFile: configPath, atomically: true, encoding: .utf8)
        let configuration = try ParleyConfiguration.load(path: configPath)
        #expect(configuration.recordsDatabase == dir.appendingPathComponent("calls.sqlite").path)

        let server = ParleyServer(configuration: configuration)
        try server.start()
        let version = server.store?.version ?? "?"
        let invite = [
            "INVITE sip:sales@127.0.0.1:\(port) SIP/2.0",
            "Via: SIP/2.0/UDP 127.0.0.1:\(port + 3);branch=z9hG4bK-records-1",
            "Max-Forwards: 70",
            "From: <sip:caller@127.0.0.1>;tag=caller1",
            "To: <sip:sales@127.0.0.1>",
            "Call-ID: records-wire-1@127.0.0.1",
            "CSeq: 1 INVITE",
            "Contact: <sip:caller@127.0.0.1:\(port + 3)>",
            "Content-Length: 0",
            "", "",
        ].joined(separator: "\r\n")
        let responses = try sendAndCollect(invite, from: port + 3, port: port)
        // the stats end with the process's memory: resident, and what the C heap holds
        let memory = try #require(server.statistics().split(separator: "\n").last { $0.hasPrefix("memory ") })
        var figures: [String: Int] = [:]
        for kv in memory.split(separator: " ").dropFirst() {
            let p = kv.split(separator: "=")
            figures[String(p[0])] = Int(p[1])
        }
        #expect((figures["rss_kib"] ?? 0) > 1_000 && (figures["heap_in_use_kib"] ?? 0) > 100, "\(memory)")
        #expect(figures["heap_in_use_kib"]! < figures["rss_kib"]!, "\(memory)")
        #expect(figures["heap_free_kib"] != nil && figures["heap_releases"] != nil && figures["heap_released_kib"] != nil, "\(memory)")
        server.stop()
        #expect(responses.last?.hasPrefix("SIP/2.0 480") == true)

        // A new store on the same file: the process that wrote it is gone.
        let store = try RecordStore(path: try #require(configuration.recordsDatabase))
        let calls = try store.recentCalls()
        #expect(calls.count == 1)
        let call = try #require(calls.first)
        #expect(call.sipCallID == "records-wire-1@127.0.0.1")
        #expect(call.caller == "sip:caller@127.0.0.1")
        #expect(call.outcome == .failed)
        #expect(call.finalCode == 480)
        #expect(call.rulesVersion == version)
        let log = try store.queueLog(call: call.reference)
        #expect(log.map(\.event) == [.enterQueue, .failed])
        #expect(log.allSatisfy { $0.rulesVersion == version })
    }

    /// records.retention: `parley serve` deletes the records of calls older than it when it
    /// starts (and every hour after); newer ones stay.
    @Test func serveDeletesRecordsPastTheRetentionAtStart() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("parley-retention-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let database = dir.appendingPathComponent("calls.sqlite").path
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let day: Int64 = 86_400_000
        do {
            let store = try RecordStore(path: database)
            for (call, age) in [("ancient", 40 * day), ("old", 31 * day), ("recent", 29 * day), ("today", day / 2)] {
                try store.recordNow(.arrived(call: call, sipCallID: "\(call)@caller", caller: "sip:caller@127.0.0.1", queue: "sales",
                                             priority: 0, rulesVersion: "v1", at: now - age))
                try store.recordNow(.failed(call: call, code: 480, timedOut: false, at: now - age + 10))
            }
        }
        let port = Int.random(in: 21_000..<29_000)
        let yaml = Self.distributorYAML(port: port, records: "{database: calls.sqlite, retention: 30d}")
        let configPath = dir.appendingPathComponent("parley.yaml").path
        try yaml.write(toFile: configPath, atomically: true, encoding: .utf8)
        let server = ParleyServer(configuration: try ParleyConfiguration.load(path: configPath))
        try server.start()
        defer { server.stop() }
        let store = try #require(server.records)
        var left: [String] = []
        for _ in 0..<50 {
            left = try store.recentCalls(limit: 10).map(\.reference)
            if left.count == 2 { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        #expect(left == ["today", "recent"])
        #expect(try store.queueLog().map(\.call).sorted() == ["recent", "recent", "today", "today"])
    }
}
