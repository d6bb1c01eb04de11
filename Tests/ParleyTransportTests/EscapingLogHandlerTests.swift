import Foundation
import Logging
import Testing

@testable import ParleyTransport

/// Wire text in a log line: control characters are escaped, in the message and the metadata.
@Suite struct EscapingLogHandlerTests {
    final class Captured: @unchecked Sendable {
        let lock = NSLock()
        var lines: [String] = []
        var metadata: [Logger.Metadata] = []
    }

    struct Capture: LogHandler {
        let into: Captured
        var logLevel: Logger.Level = .trace
        var metadata: Logger.Metadata = [:]
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            into.lock.withLock {
                into.lines.append(event.message.description)
                into.metadata.append(event.metadata ?? [:])
            }
        }
    }

    @Test func controlCharactersFromTheWireAreEscaped() {
        let captured = Captured()
        let logger = Logger(label: "test") { _ in EscapingLogHandler(Capture(into: captured)) }
        let callID = "abc\u{1B}[2J\r\nFAKE: admin logged in\u{7F}\u{9B}\u{202E}gpj.exe"
        logger.info("dropped malformed request \(callID)", metadata: ["call-id": .string(callID), "list": .array([.string("a\u{0}b")])])
        #expect(captured.lines == ["dropped malformed request abc\\x1B[2J\\x0D\\x0AFAKE: admin logged in\\x7F\\x9B\\u{202E}gpj.exe"])
        #expect(captured.metadata.first?["call-id"] == .string("abc\\x1B[2J\\x0D\\x0AFAKE: admin logged in\\x7F\\x9B\\u{202E}gpj.exe"))
        #expect(captured.metadata.first?["list"] == .array([.string("a\\x00b")]))
    }

    @Test func plainTextIsUnchanged() {
        let text = "call c1 from sip:+15550001@198.51.100.7 \\ é 日本 \u{FFFD}"
        #expect(EscapingLogHandler.escape(text) == text)
    }
}
