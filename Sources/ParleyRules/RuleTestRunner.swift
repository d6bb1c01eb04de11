import Foundation

/// The result of one rule test (or of a test file or rule set that did not load, which counts as
/// one failed test).
public struct RuleTestResult: Sendable, Equatable, Error {
    /// The test file (display path).
    public var file: String
    /// The test function, or `(load)` when the file or its rule set did not load.
    public var name: String
    /// Where it failed (`file:line`), or where the test is defined when it passed.
    public var location: String
    public var passed: Bool
    /// The failure message without its position.
    public var message: String?
    public var seconds: Double

    /// `file:line: name: message` for a failure.
    public var failureLine: String {
        "\(location): \(name): \(message ?? "failed")"
    }
}

/// All results of a run.
public struct RuleTestReport: Sendable {
    public var results: [RuleTestResult] = []

    public var passed: Int { results.filter(\.passed).count }
    public var failed: Int { results.count - passed }
    public var summary: String { "\(passed) passed, \(failed) failed" }

    /// JUnit XML: one testsuite per test file.
    public func junitXML() -> String {
        var byFile: [(String, [RuleTestResult])] = []
        for r in results {
            if let i = byFile.firstIndex(where: { $0.0 == r.file }) { byFile[i].1.append(r) } else { byFile.append((r.file, [r])) }
        }
        var x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        x += "<testsuites name=\"parley test\" tests=\"\(results.count)\" failures=\"\(failed)\">\n"
        for (file, rs) in byFile {
            let time = rs.reduce(0) { $0 + $1.seconds }
            x += "  <testsuite name=\"\(xml(file))\" tests=\"\(rs.count)\" failures=\"\(rs.filter { !$0.passed }.count)\" time=\"\(String(format: "%.6f", time))\">\n"
            for r in rs {
                x += "    <testcase classname=\"\(xml(file))\" name=\"\(xml(r.name))\" time=\"\(String(format: "%.6f", r.seconds))\""
                if r.passed {
                    x += "/>\n"
                } else {
                    x += ">\n      <failure message=\"\(xml(r.message ?? "failed"))\">\(xml(r.failureLine))</failure>\n    </testcase>\n"
                }
            }
            x += "  </testsuite>\n"
        }
        x += "</testsuites>\n"
        return x
    }

    private func xml(_ s: String) -> String {
        var o = ""
        for c in s.unicodeScalars {
            switch c {
            case "&": o += "&amp;"
            case "<": o += "&lt;"
            case ">": o += "&gt;"
            case "\"": o += "&quot;"
            case "\n": o += "&#10;"
            default:
                if c.value < 0x20 && c != "\t" { o += "?" } else { o.unicodeScalars.append(c) }
            }
        }
        return o
    }
}

/// Runs rule tests: every global `test_*` function of every `*_test.lua` file, each against a
/// freshly loaded copy of its rule set (the nearest directory above the test file holding
/// init.lua, or `rulesDirectory`), under `limits`.
public struct RuleTestRunner: Sendable {
    /// Use this rule set for every test file instead of the one each file sits in.
    public var rulesDirectory: String?
    /// Run only tests whose name matches this regular expression.
    public var filter: String?
    public var limits: RuleLimits
    /// Where the rules' `log.*` goes during tests (discarded by default).
    public var log: RuleLogSink

    public init(rulesDirectory: String? = nil, filter: String? = nil, limits: RuleLimits = .tests,
                log: RuleLogSink = .discard) {
        self.rulesDirectory = rulesDirectory
        self.filter = filter
        self.limits = limits
        self.log = log
    }

    public enum RunError: Error, CustomStringConvertible {
        case badFilter(String)
        case noSuchPath(String)

        public var description: String {
            switch self {
            case .badFilter(let f): "--run: invalid regular expression '\(f)'"
            case .noSuchPath(let p): "\(p): no such file or directory"
            }
        }
    }

    /// The test files under the given paths (files are taken as given; directories searched).
    public static func testFiles(_ paths: [String]) throws(RunError) -> [String] {
        var out: [String] = []
        for p in paths {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: p, isDirectory: &isDir) else { throw .noSuchPath(p) }
            if isDir.boolValue {
                out += RuleSetSnapshot.listLuaFiles(p).filter { $0.hasSuffix("_test.lua") }.map { RuleSetSnapshot.join(p, $0) }
            } else {
                out.append(p)
            }
        }
        var seen = Set<String>()
        return out.filter { seen.insert($0).inserted }
    }

    /// The nearest directory at or above the file's own that holds init.lua.
    public static func ruleDirectory(for testFile: String) -> String? {
        var dir = (testFile as NSString).deletingLastPathComponent
        while true {
            let probe = dir.isEmpty ? "init.lua" : RuleSetSnapshot.join(dir, "init.lua")
            if FileManager.default.fileExists(atPath: probe) { return dir.isEmpty ? "." : dir }
            if dir.isEmpty || dir == "/" { return nil }
            dir = (dir as NSString).deletingLastPathComponent
        }
    }

    public func run(paths: [String]) throws(RunError) -> RuleTestReport {
        let regex: NSRegularExpression?
        if let filter {
            do { regex = try NSRegularExpression(pattern: filter) } catch { throw .badFilter(filter) }
        } else {
            regex = nil
        }
        let files = try RuleTestRunner.testFiles(paths.isEmpty ? ["rules"] : paths)
        var report = RuleTestReport()
        var snapshots: [String: (RuleSetSnapshot?, [RuleProblem])] = [:]
        for file in files {
            guard let dir = rulesDirectory ?? RuleTestRunner.ruleDirectory(for: file) else {
                report.results.append(RuleTestResult(file: file, name: "(load)", location: file, passed: false,
                                                     message: "no init.lua in this directory or above it; use --rules DIR",
                                                     seconds: 0))
                continue
            }
            if snapshots[dir] == nil { snapshots[dir] = RuleSetSnapshot.read(directory: dir) }
            let (snapshot, readProblems) = snapshots[dir]!
            report.results += runFile(file, snapshot: snapshot, readProblems: readProblems, regex: regex)
        }
        return report
    }

    /// A fresh state with the rule set, the helpers and the test file loaded; or the failure.
    private func prepare(_ file: String, _ source: [UInt8], _ snapshot: RuleSetSnapshot) -> Result<LuaRuntime, RuleTestResult> {
        func failed(_ message: String) -> RuleTestResult {
            let p = RuleProblem(luaMessage: message)
            return RuleTestResult(file: file, name: "(load)", location: p.file.map { "\($0):\(p.line ?? 1)" } ?? file,
                                  passed: false, message: p.message, seconds: 0)
        }
        let rt: LuaRuntime
        do {
            rt = try LuaRuntime(limits: limits, sink: log, clock: .fixed(0), testMode: true)
        } catch {
            return .failure(failed(error.message))
        }
        let problems = rt.load(snapshot)
        if !problems.isEmpty {
            var r = failed(problems[0].description)
            if problems.count > 1 { r.message! += " (and \(problems.count - 1) more: " + problems.dropFirst().map(\.description).joined(separator: "; ") + ")" }
            return .failure(r)
        }
        if let e = rt.runChunk(display: "=[parley test helpers]", source: Array(testPrelude.utf8)) {
            return .failure(failed("test helpers: " + e.message))
        }
        if let e = rt.runChunk(display: file, source: source) { return .failure(failed(e.message)) }
        return .success(rt)
    }

    private func runFile(_ file: String, snapshot: RuleSetSnapshot?, readProblems: [RuleProblem],
                         regex: NSRegularExpression?) -> [RuleTestResult] {
        guard let snapshot, readProblems.isEmpty else {
            let p = readProblems.first ?? RuleProblem(file: file, line: nil, message: "cannot read the rule set")
            return [RuleTestResult(file: file, name: "(load)", location: p.file ?? file, passed: false,
                                   message: readProblems.map(\.description).joined(separator: "; "), seconds: 0)]
        }
        guard let data = FileManager.default.contents(atPath: file) else {
            return [RuleTestResult(file: file, name: "(load)", location: file, passed: false, message: "cannot read the file", seconds: 0)]
        }
        let source = [UInt8](data)
        let listing: LuaRuntime
        switch prepare(file, source, snapshot) {
        case .failure(let r): return [r]
        case .success(let rt): listing = rt
        }
        var tests = listing.listTests(display: file)
        if let regex {
            tests = tests.filter { regex.firstMatch(in: $0.name, range: NSRange($0.name.startIndex..., in: $0.name)) != nil }
        }
        var results: [RuleTestResult] = []
        for t in tests {
            let start = DispatchTime.now().uptimeNanoseconds
            var r: RuleTestResult
            switch prepare(file, source, snapshot) {
            case .failure(let f):
                r = f
                r.name = t.name
            case .success(let rt):
                if let e = rt.runTest(t.name) {
                    let p = RuleProblem(luaMessage: e.message)
                    let location = p.file.map { "\($0):\(p.line ?? 0)" } ?? "\(file):\(t.line)"
                    r = RuleTestResult(file: file, name: t.name, location: location, passed: false,
                                       message: p.message.replacingOccurrences(of: "\n", with: " | "), seconds: 0)
                } else {
                    r = RuleTestResult(file: file, name: t.name, location: "\(file):\(t.line)", passed: true, message: nil, seconds: 0)
                }
            }
            r.seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            results.append(r)
        }
        return results
    }
}
