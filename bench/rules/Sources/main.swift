// parley-rules-bench: hook calls per second and reload time for the Lua rules engine.
//
//   swift run -c release --scratch-path .build-rules parley-rules-bench [--seconds S]
//
// Uses the shipped rules/ (classify: hours, IVR header, number table, Subject words, VIP table;
// select_agent over 50 resident agents with the "longest_idle" strategy) and prints one line per
// measurement. Figures vary with the machine and its load: run it a few times.

import Foundation
import ParleyRules
import ParleySIP

var seconds = 1.0
var rulesDir = "rules"
var args = CommandLine.arguments.dropFirst()
while let a = args.popFirst() {
    switch a {
    case "--seconds": seconds = Double(args.popFirst() ?? "1") ?? 1
    case "--rules": rulesDir = args.popFirst() ?? "rules"
    default:
        print("usage: parley-rules-bench [--seconds S] [--rules DIR]")
        exit(2)
    }
}

func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

/// Runs `body` in batches until `seconds` have passed; returns nanoseconds per call.
@MainActor func measure(_ label: String, _ body: () -> Void) -> Double {
    for _ in 0..<1000 { body() }  // warm up
    var calls = 0
    let start = now()
    let budget = UInt64(seconds * 1e9)
    while now() - start < budget {
        for _ in 0..<1000 { body() }
        calls += 1000
    }
    let ns = Double(now() - start) / Double(calls)
    print(String(format: "%-44@ %9.0f calls/s  %7.2f us/call", label as NSString, 1e9 / ns, ns / 1000))
    return ns
}

let text = """
    INVITE sip:+18005550100@cc.example.com SIP/2.0\r
    Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK776asdhds\r
    Max-Forwards: 70\r
    To: <sip:+18005550100@cc.example.com>\r
    From: "Alice" <sip:+15105550199@carrier.example>;tag=1928301774\r
    Call-ID: a84b4c76e66710@198.51.100.7\r
    CSeq: 314159 INVITE\r
    Contact: <sip:alice@198.51.100.7>\r
    Subject: Refund for order 42\r
    Content-Length: 0\r
    \r

    """
let invite = InviteView(message: try! SIPParser.parse(text), source: "198.51.100.7:5060", transport: "udp")
let monday10 = Int64(1_741_014_000_000)  // open hours in rules/config.lua
let store = RuleStore(directory: rulesDir, options: RuleOptions(clock: .fixed(monday10), log: .discard))
guard case .published = store.reload() else {
    print("rules did not load: \(store.lastProblems)")
    exit(1)
}
let ids = (0..<50).map { "agent\($0)" }
for (i, id) in ids.enumerated() {
    store.agents.update(AgentInfo(id: id, skills: ["sales", "support"], idleSinceMs: monday10 - Int64(i * 1000 % 37_000),
                                  callsHandled: i, talkMs: Int64(i * 7919 % 100_000),
                                  contact: "sip:\(id)@192.0.2.10", attrs: ["language": i % 5 == 0 ? "fr" : "en"]))
}
let engine = RuleEngine(store: store)
let rules = engine.pin()
let call = CallInfo(id: "c1", type: "sales", arrivedMs: monday10 - 3000, invite: invite)
precondition(rules.classify(invite).failure == nil)
precondition(rules.selectAgent(for: call, candidates: ids).failure == nil)

print("rules \(rulesDir) version \(store.version!.prefix(12)), 50 resident agents, \(seconds) s per figure")
let classify = measure("classify (shipped rules)") { _ = rules.classify(invite) }
let select = measure("select_agent over 50 agents (longest idle)") { _ = rules.selectAgent(for: call, candidates: ids) }
_ = measure("handoff_encoding") { _ = rules.handoffEncoding(for: call, agent: "agent7") }
let address = AddressInfo(aor: "sip:sales@cc.example.com", skill: "sales", kind: .skill, name: "sales")
_ = measure("order_registrations over 50 agents") { _ = rules.orderRegistrations(for: address, agents: ids) }

// A trivial hook, to separate the engine's own cost from the rules' work.
let tiny = NSTemporaryDirectory() + "parley-bench-rules-\(getpid())"
try? FileManager.default.createDirectory(atPath: tiny, withIntermediateDirectories: true)
_ = FileManager.default.createFile(atPath: tiny + "/init.lua",
                               contents: Data("function classify(invite) return 'sales' end\nfunction select_agent(c, a) return nil end\n".utf8))
let tinyStore = RuleStore(directory: tiny, options: RuleOptions(clock: .fixed(monday10), log: .discard), agents: store.agents)
_ = tinyStore.reload()
let tinyRules = RuleEngine(store: tinyStore).pin()
_ = measure("classify (no-op rule: engine overhead)") { _ = tinyRules.classify(invite) }
_ = measure("select_agent, 50 agents (no-op rule)") { _ = tinyRules.selectAgent(for: call, candidates: ids) }

// Reload: read the directory, hash, build a fresh state, compile, run init.lua, check, publish.
// Each round touches a comment so the version changes and the reload really publishes.
let reloadDir = NSTemporaryDirectory() + "parley-bench-reload-\(getpid())"
try? FileManager.default.removeItem(atPath: reloadDir)
try! FileManager.default.copyItem(atPath: rulesDir, toPath: reloadDir)
let reloadStore = RuleStore(directory: reloadDir, options: RuleOptions(clock: .fixed(monday10), log: .discard))
let configPath = reloadDir + "/config.lua"
let configText = try! String(contentsOfFile: configPath, encoding: .utf8)
var rounds = 0
var total: UInt64 = 0
let reloadStart = now()
while now() - reloadStart < UInt64(seconds * 1e9) || rounds < 20 {
    try! (configText + "\n-- \(rounds)\n").write(toFile: configPath, atomically: false, encoding: .utf8)
    let t0 = now()
    let outcome = reloadStore.reload()
    total += now() - t0
    guard case .published = outcome else {
        print("reload failed: \(outcome)")
        exit(1)
    }
    rounds += 1
}
let reloadUs = Double(total) / Double(rounds) / 1000
print(String(format: "%-44@ %9d rounds     %7.1f us/reload", "reload (read, hash, validate, publish)" as NSString, rounds, reloadUs))

// Building the per-thread state for the new generation (what each engine does once per reload).
var builds = 0
var buildTotal: UInt64 = 0
let buildEngine = RuleEngine(store: reloadStore)
while builds < 50 {
    try! (configText + "\n-- b\(builds)\n").write(toFile: configPath, atomically: false, encoding: .utf8)
    _ = reloadStore.reload()
    let t0 = now()
    _ = buildEngine.pin()
    buildTotal += now() - t0
    builds += 1
}
print(String(format: "%-44@ %9d rounds     %7.1f us/state", "engine picks up a new generation" as NSString, builds,
             Double(buildTotal) / Double(builds) / 1000))

try? FileManager.default.removeItem(atPath: tiny)
try? FileManager.default.removeItem(atPath: reloadDir)
print(String(format: "targets: classify < 5 us (%.2f), select_agent(50) < 10 us (%.2f), reload < 1000 us (%.0f)",
             classify / 1000, select / 1000, reloadUs))
