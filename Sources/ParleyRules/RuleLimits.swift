import Foundation
import Logging

/// Limits on each hook call (and on running a rule set's chunk at load).
public struct RuleLimits: Sendable, Equatable {
    /// Lua VM instructions per call. Checked every 1000 instructions.
    public var instructions: Int
    /// Bytes a call may allocate beyond what its Lua state already held.
    public var memoryBytes: Int
    /// Wall-clock bound per call in milliseconds; 0 for none. `parley test` uses it; hooks rely
    /// on the instruction budget.
    public var wallClockMs: Int
    /// The longest subject `string.find/match/gmatch/gsub` accept.
    public var patternSubjectBytes: Int
    /// The largest worst-case backtracking estimate a pattern call may have (see docs/rules.md).
    public var patternCost: Double

    public init(instructions: Int = 1_000_000, memoryBytes: Int = 16 << 20, wallClockMs: Int = 0,
                patternSubjectBytes: Int = 64 << 10, patternCost: Double = 5e7) {
        self.instructions = instructions
        self.memoryBytes = memoryBytes
        self.wallClockMs = wallClockMs
        self.patternSubjectBytes = patternSubjectBytes
        self.patternCost = patternCost
    }

    /// The defaults for hook calls.
    public static let hooks = RuleLimits()

    /// The defaults for one `parley test` test: larger, and bounded in time too.
    public static let tests = RuleLimits(instructions: 200_000_000, memoryBytes: 64 << 20, wallClockMs: 5_000)
}

/// Wall-clock milliseconds for `parley.now_ms()` and for `idle_ms`/`waited_ms`. Inject one in tests.
public struct RuleClock: Sendable {
    public let nowMs: @Sendable () -> Int64

    public init(_ nowMs: @escaping @Sendable () -> Int64) { self.nowMs = nowMs }

    /// The system's wall clock.
    public static let system = RuleClock { Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)) }

    /// A clock that always reads `ms`.
    public static func fixed(_ ms: Int64) -> RuleClock { RuleClock { ms } }
}

/// A clock tests can set and advance.
public final class ManualClock: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Int64

    public init(_ ms: Int64 = 0) { value = ms }

    public var nowMs: Int64 {
        get { lock.withLock { value } }
        set { lock.withLock { value = newValue } }
    }

    public func advance(by ms: Int64) { lock.withLock { value += ms } }

    public var clock: RuleClock { RuleClock { [self] in self.nowMs } }
}

/// One record from a rule's `log.*` call, or from the engine about a failed hook or a reload.
public struct RuleLogRecord: Sendable, Equatable {
    public enum Level: Int, Sendable, Comparable {
        case debug, info, warn, error
        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
    }

    public var level: Level
    /// `file:line` of the rule code that logged, or "" for the engine's own records.
    public var location: String
    public var message: String

    public init(level: Level, location: String, message: String) {
        self.level = level
        self.location = location
        self.message = message
    }
}

/// Where rule and engine log records go.
public struct RuleLogSink: Sendable {
    public let write: @Sendable (RuleLogRecord) -> Void

    public init(_ write: @escaping @Sendable (RuleLogRecord) -> Void) { self.write = write }

    /// Writes to a swift-log Logger (label `parley.rules` by default).
    public static func logger(_ logger: Logger = Logger(label: "parley.rules")) -> RuleLogSink {
        RuleLogSink { r in
            let level: Logger.Level
            switch r.level {
            case .debug: level = .debug
            case .info: level = .info
            case .warn: level = .warning
            case .error: level = .error
            }
            if r.location.isEmpty {
                logger.log(level: level, "\(r.message)")
            } else {
                logger.log(level: level, "\(r.message)", metadata: ["rule": "\(r.location)"])
            }
        }
    }

    /// Discards everything.
    public static let discard = RuleLogSink { _ in }
}

/// A sink that keeps records in memory (tests).
public final class CollectingLogSink: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [RuleLogRecord] = []

    public init() {}

    public var records: [RuleLogRecord] { lock.withLock { stored } }

    public var sink: RuleLogSink { RuleLogSink { [self] r in self.lock.withLock { self.stored.append(r) } } }
}
