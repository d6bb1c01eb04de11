import Foundation
import ParleyRules
import ParleySIP

/// A temporary rule directory that tests write files into.
final class RuleDir {
    let path: String

    init(_ files: [String: String] = [:]) {
        path = NSTemporaryDirectory() + "pr-" + String(UUID().uuidString.prefix(8))
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        for (name, text) in files { write(name, text) }
    }

    func write(_ name: String, _ text: String) {
        write(name, Array(text.utf8))
    }

    func write(_ name: String, _ bytes: [UInt8]) {
        let full = path + "/" + name
        try! FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent,
                                                 withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: full, contents: Data(bytes))
    }

    func remove(_ name: String) { try? FileManager.default.removeItem(atPath: path + "/" + name) }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// A store and engine over a rule directory, with a manual clock and collected logs.
struct Harness {
    let dir: RuleDir
    let clock = ManualClock(1_000_000)
    let logs = CollectingLogSink()
    let store: RuleStore
    let engine: RuleEngine

    init(_ files: [String: String], limits: RuleLimits = RuleLimits(instructions: 200_000, memoryBytes: 4 << 20)) {
        dir = RuleDir(files)
        store = RuleStore(directory: dir.path, options: RuleOptions(limits: limits, clock: clock.clock, log: logs.sink))
        engine = RuleEngine(store: store)
    }

    func call(_ type: String = "sales", attempts: [String] = []) -> CallInfo {
        CallInfo(id: "c1", type: type, arrivedMs: clock.nowMs - 5000, attempts: attempts, invite: invite())
    }
}

let sampleInvite = """
    INVITE sip:+18005550100@cc.example.com;user=phone SIP/2.0\r
    Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK776asdhds\r
    Max-Forwards: 70\r
    To: <sip:+18005550100@cc.example.com>\r
    f: "Alice Example" <sip:alice@example.net>;tag=1928301774\r
    i: a84b4c76e66710@198.51.100.7\r
    CSeq: 314159 INVITE\r
    Contact: <sip:alice@198.51.100.7>\r
    s: Refund please\r
    Accept-Language: fr, en;q=0.5\r
    Accept-Language: de\r
    X-Tenant: blue\r
    c: application/sdp\r
    Content-Length: 4\r
    \r
    v=0

    """

func invite(_ text: String = sampleInvite) -> InviteView {
    InviteView(message: try! SIPParser.parse(text), source: "198.51.100.7:5060", transport: "UDP")
}
