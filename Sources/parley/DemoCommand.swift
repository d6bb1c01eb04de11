import ArgumentParser
import Dispatch
import Foundation
import Logging
import ParleyTransport
import ParleyApp

/// `parley demo`: the whole contact center on loopback with simulated agents and callers, and a
/// live summary once a second.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the whole contact center on loopback with simulated agents and callers.",
        discussion: """
        Starts the distributor and the buffer server (with a generated configuration in a \
        temporary directory and the rules of --rules), agents' phones that ring, answer, talk and \
        hang up (some decline with 486, some let it ring), and callers that call at --rate calls \
        per second and hang up if kept waiting too long. Prints a summary every second until \
        --duration has passed or Ctrl-C, then hangs up what is left and prints the final summary. \
        Everything is SIP over UDP on 127.0.0.1, ports --base-port to --base-port+4. See docs/demo.md.
        """
    )

    @Option(help: "Simulated agents.")
    var agents = 5

    @Option(help: "New calls per second (Poisson arrivals).")
    var rate = 1.0

    @Option(help: "Seconds the callers keep calling.")
    var duration = 60.0

    @Option(help: "The rule set (default: rules/ in the current directory, else beside the executable's checkout).")
    var rules: String?

    @Option(help: "Seed for the simulated people's choices (the same seed, the same choices).")
    var seed: UInt64 = 1

    @Option(name: .customLong("base-port"), help: "First of five UDP ports on 127.0.0.1 (distributor, buffer, tunnel, phones, callers).")
    var basePort = 25_060

    @Option(help: "Agents' talk time in seconds, MIN-MAX.")
    var talk = "4-15"

    @Option(help: "Callers' patience in seconds (unanswered this long, they hang up), MIN-MAX.")
    var patience = "10-45"

    @Option(name: .customLong("records"), help: "Keep the call records in this SQLite file (read it with parley calls/stats --database).")
    var records: String?

    @Option(name: .customLong("log-level"), help: "Log level of the servers (their logs go to standard error).")
    var logLevel = "warning"

    @Flag(help: "Print only the final summary.")
    var quiet = false

    @Flag(name: .customLong("real-time"), help: "Run the rules on the real clock (outside business hours the shipped rules route every call to after_hours). By default their clock starts on a Tuesday at 15:00 UTC.")
    var realTime = false

    func validate() throws {
        guard agents >= 1, agents <= 500 else { throw ValidationError("--agents must be 1 to 500") }
        guard rate > 0, rate <= 500 else { throw ValidationError("--rate must be above 0 and at most 500 calls/s") }
        guard duration > 0, duration <= 86_400 else { throw ValidationError("--duration must be above 0 and at most 86400 s") }
        guard (1024...65_530).contains(basePort) else { throw ValidationError("--base-port must be 1024 to 65530") }
        _ = try Self.range(talk, "--talk")
        _ = try Self.range(patience, "--patience")
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level '\(logLevel)' is not a log level") }
    }

    static func range(_ text: String, _ name: String) throws -> ClosedRange<Double> {
        let parts = text.split(separator: "-", maxSplits: 1).map { Double($0.trimmingCharacters(in: .whitespaces)) }
        if parts.count == 1, let v = parts[0], v >= 0 { return v...v }
        guard parts.count == 2, let lo = parts[0], let hi = parts[1], lo >= 0, lo <= hi else {
            throw ValidationError("\(name) must be SECONDS or MIN-MAX, such as 4-15, not '\(text)'")
        }
        return lo...hi
    }

    /// rules/ of the current directory, else of the checkout the executable was built in.
    static func defaultRules() -> String? {
        let fm = FileManager.default
        let here = (fm.currentDirectoryPath as NSString).appendingPathComponent("rules")
        if fm.fileExists(atPath: (here as NSString).appendingPathComponent("init.lua")) { return here }
        var dir = (CommandLine.arguments[0] as NSString).deletingLastPathComponent
        for _ in 0..<5 {
            let candidate = (dir as NSString).appendingPathComponent("rules")
            if fm.fileExists(atPath: (candidate as NSString).appendingPathComponent("init.lua")) { return candidate }
            dir = (dir as NSString).deletingLastPathComponent
        }
        return nil
    }

    /// Writes to standard output at once (the live summary is read as it comes).
    private func say(_ text: String) { FileHandle.standardOutput.write(Data(text.utf8)) }

    func run() throws {
        guard let rulesDir = rules ?? Self.defaultRules() else {
            FileHandle.standardError.write(Data("parley demo: no rules/ directory here; name one with --rules DIR\n".utf8))
            throw ExitCode(2)
        }
        let level = Logger.Level(rawValue: logLevel) ?? .warning
        LoggingSystem.bootstrap { label in
            // Escaped: wire text (Call-IDs, user parts, errors) must not write control characters to the log.
            EscapingLogHandler.standardError(label: label, level: level)
        }
        var options = DemoOptions(rulesDirectory: (rulesDir as NSString).standardizingPath.hasPrefix("/")
            ? rulesDir : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(rulesDir))
        options.agents = agents
        options.rate = rate
        options.duration = .milliseconds(Int64(duration * 1000))
        options.seed = seed
        options.basePort = basePort
        options.behaviour.talk = try Self.range(talk, "--talk")
        options.behaviour.patience = try Self.range(patience, "--patience")
        options.recordsPath = records.map { ($0 as NSString).standardizingPath.hasPrefix("/") ? $0 : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent($0) }
        options.logLevel = logLevel
        if realTime { options.rulesClockStartMs = nil }

        let demo = try ParleyDemo(options: options)
        do {
            try demo.start()
        } catch {
            FileHandle.standardError.write(Data("parley demo: cannot start: \(error)\n".utf8))
            demo.stop()
            throw ExitCode(1)
        }
        say("parley demo: \(agents) agents, \(rate) calls/s for \(duration) s, rules \(options.rulesDirectory), seed \(seed)\n")
        say("  distributor 127.0.0.1:\(basePort), buffer server 127.0.0.1:\(basePort + 1), phones 127.0.0.1:\(basePort + 3), callers 127.0.0.1:\(basePort + 4); Ctrl-C stops\n")

        // Stop at --duration or at the first SIGINT/SIGTERM, whichever comes first.
        let stop = DispatchSemaphore(value: 0)
        var sources: [DispatchSourceSignal] = []
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { stop.signal() }
            s.resume()
            sources.append(s)
        }
        let end = DispatchTime.now() + duration
        var interrupted = false
        while true {
            let next = min(DispatchTime.now() + 1, end)
            if stop.wait(timeout: next) == .success { interrupted = true; break }
            if !quiet {
                say(demo.snapshot().render(title: "live"))
            }
            if DispatchTime.now() >= end { break }
        }
        demo.stopCalling()
        say(interrupted ? "interrupted: hanging up the calls left\n" : "time is up: hanging up the calls left\n")
        let final = demo.drain(timeout: .seconds(8))
        say(final.render(title: "final"))
        if let d = final.distributor {
            say("  distributor: calls \(d.calls), answered \(d.answered), cancelled \(d.cancelled), failed \(d.failed), no answers \(d.noAnswers), queued \(d.queued), queue timeouts \(d.queueTimeouts), rule failures \(d.ruleFailures)\n")
        }
        let problems = final.inconsistencies(final: final.settled)
        if !final.settled { say("  not everything was over after 8 s of hanging up: \(final.inFlight)\n") }
        for p in problems { say("  inconsistent: \(p)\n") }
        if let records = options.recordsPath { say("  call records: parley stats --database \(records)\n") }
        for s in sources { s.cancel() }
        demo.stop()
        if !problems.isEmpty || !final.settled { throw ExitCode(1) }
    }
}
