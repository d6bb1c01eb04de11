import Foundation
import Testing

@testable import ParleyApp

/// The `admin:` section: off without it, tokens from the file or the environment (never echoed),
/// and no admin listener off the loopback without a token.
@Suite struct AdminConfigurationTests {
    func parse(_ extra: String, environment: [String: String] = [:]) throws -> ParleyConfiguration {
        try ConfigurationFixture.parse(extra, environment: environment)
    }

    func problems(_ extra: String, environment: [String: String] = [:]) -> [String] {
        ConfigurationFixture.problems(extra, environment: environment).map { "\($0.key): \($0.message)" }
    }

    @Test func offWithoutTheSection() throws {
        #expect(try parse("").admin == nil)
    }

    @Test func theTimeZoneOfToday() throws {
        #expect(try parse("").timezone == "UTC")
        #expect(try parse("timezone: Europe/Paris").timezone == "Europe/Paris")
        #expect(problems("timezone: Mars/Olympus") == ["timezone: 'Mars/Olympus' is not a time zone name such as UTC, Europe/Paris or America/New_York"])
    }

    @Test func everyKeyIsRead() throws {
        let a = try #require(try parse("""
            admin: {listen: "0.0.0.0:8080", token: "full-token-0123456789", read_token: "read-token-0123456789", metrics_open: true}
            """).admin)
        #expect(a.listen == "0.0.0.0:8080" && a.metricsOpen)
        #expect(a.token == Array("full-token-0123456789".utf8) && a.readToken == Array("read-token-0123456789".utf8))
        #expect(!"\(a)".contains("0123456789"))
    }

    @Test func theEnvironmentWins() throws {
        let a = try #require(try parse("admin: {listen: \"127.0.0.1:8080\", token: \"file-token-0123456789\"}",
                                       environment: ["PARLEY_ADMIN_TOKEN": "env-token-0123456789", "PARLEY_ADMIN_READ_TOKEN": "env-read-0123456789"]).admin)
        #expect(a.token == Array("env-token-0123456789".utf8) && a.readToken == Array("env-read-0123456789".utf8))
    }

    @Test func aLoopbackListenerMayGoWithoutATokenNoOtherMay() throws {
        #expect(try parse("admin: {listen: \"127.0.0.1:8080\"}").admin?.token == nil)
        #expect(try parse("admin: {listen: \"[::1]:8080\"}").admin != nil)
        let p = problems("admin: {listen: \"0.0.0.0:8080\", read_token: \"read-token-0123456789\"}")
        #expect(p.count == 1 && p[0].hasPrefix("admin.token: missing"))
    }

    @Test func badValuesAreNamedAndTokensNeverRepeated() throws {
        let p = problems("admin: {listen: \"127.0.0.1:8080\", token: short, read_token: short, metrics_open: maybe, colour: red}")
        #expect(p.contains { $0.hasPrefix("admin.colour: unknown key") })
        #expect(p.contains { $0.hasPrefix("admin.token: must be at least 16 bytes") })
        #expect(p.contains { $0.hasPrefix("admin.read_token: must be at least 16 bytes") })
        #expect(p.contains { $0.hasPrefix("admin.metrics_open:") })
        #expect(problems("admin: {listen: \"127.0.0.1:8080\", idle_timeout: 0}").first?.hasPrefix("admin.idle_timeout:") == true)
        #expect(try parse("admin: {listen: \"127.0.0.1:8080\", idle_timeout: 2s}").admin?.idleTimeout == .seconds(2))
        #expect(try parse("admin: {listen: \"127.0.0.1:8080\"}").admin?.idleTimeout == .seconds(30))
        #expect(!p.joined().contains("short"))
        let same = problems("admin: {listen: \"127.0.0.1:8080\", token: \"same-token-0123456789\", read_token: \"same-token-0123456789\"}")
        #expect(same == ["admin.read_token: must differ from admin.token (the read token is the one shown on wallboards)"])
        #expect(!problems("admin: {token: \"full-token-0123456789\"}").isEmpty)  // no listen
        #expect(problems("admin: {listen: nowhere}").first?.hasPrefix("admin.listen:") == true)
    }
}
