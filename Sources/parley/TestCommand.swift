import ArgumentParser
import Foundation
import ParleyRules

/// `parley test [PATH...]`: run rule tests (rule API v1, "Testing rules: parley test").
struct TestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Run rule tests: every test_* function of every *_test.lua file.",
        discussion: """
            Each test runs against a freshly loaded copy of the rule set its file sits in (the \
            nearest directory above it holding init.lua), or the one named by --rules. Prints one \
            line per failing test (file:line: test: message), then 'N passed, N failed'. Exits 0 \
            only when every test passed; a test file or rule set that does not load is a failure.
            """
    )

    @Argument(help: "Test files or directories to search for *_test.lua (default: rules/).")
    var paths: [String] = []

    @Option(name: .customLong("run"), help: "Run only tests whose name matches this regular expression.")
    var runPattern: String?

    @Option(help: "Also write JUnit XML to this file.")
    var junit: String?

    @Option(help: "Test against this rule set instead of the one each test file sits in.")
    var rules: String?

    @Option(help: "Time bound per test, in milliseconds.")
    var timeoutMs: Int = RuleLimits.tests.wallClockMs

    @Option(help: "Instruction budget per test.")
    var maxInstructions: Int = RuleLimits.tests.instructions

    @Flag(name: .shortAndLong, help: "Also print passing tests, and the rules' log output.")
    var verbose = false

    func validate() throws {
        if timeoutMs <= 0 { throw ValidationError("--timeout-ms must be positive") }
        if maxInstructions <= 0 { throw ValidationError("--max-instructions must be positive") }
    }

    func run() throws {
        var limits = RuleLimits.tests
        limits.wallClockMs = timeoutMs
        limits.instructions = maxInstructions
        let log: RuleLogSink = verbose
            ? RuleLogSink { r in FileHandle.standardError.write(Data("  log \(r.location): \(r.message)\n".utf8)) }
            : .discard
        let runner = RuleTestRunner(rulesDirectory: rules, filter: runPattern, limits: limits, log: log)
        let report: RuleTestReport
        do {
            report = try runner.run(paths: paths)
        } catch {
            FileHandle.standardError.write(Data("error: \(error.description)\n".utf8))
            throw ExitCode(2)
        }
        for r in report.results {
            if !r.passed {
                print(r.failureLine)
            } else if verbose {
                print("ok \(r.location): \(r.name)")
            }
        }
        if let junit {
            do {
                try report.junitXML().write(toFile: junit, atomically: true, encoding: .utf8)
            } catch {
                FileHandle.standardError.write(Data("error: cannot write \(junit): \(error.localizedDescription)\n".utf8))
                print(report.summary)
                throw ExitCode(2)
            }
        }
        print(report.summary)
        if report.failed > 0 { throw ExitCode(1) }
    }
}
