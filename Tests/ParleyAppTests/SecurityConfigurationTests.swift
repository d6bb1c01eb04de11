import Foundation
import ParleyTransport
import Testing

@testable import ParleyApp

/// The `security:` section: defaults with none, the secret from the file or the environment
/// (never echoed), and every bad value named by its key.
@Suite struct SecurityConfigurationTests {
    func parse(_ extra: String, environment: [String: String] = [:]) throws -> ParleyConfiguration {
        try ConfigurationFixture.parse(extra, environment: environment)
    }

    func problems(_ extra: String, environment: [String: String] = [:]) -> [ConfigurationError] {
        ConfigurationFixture.problems(extra, environment: environment)
    }

    @Test func protectionsAreOnWithoutTheSection() throws {
        let s = try parse("").security
        #expect(s.handoffSecret == nil)
        #expect(s.connections.maxConnections == 4096)
        #expect(s.connections.maxPerSource == 128)
        #expect(s.connections.messageTimeout == .seconds(20))
        #expect(s.connections.partialBudget == 64 << 20)
        #expect(s.unsignedHandoffsFrom.isEmpty)
    }

    @Test func everyKeyIsRead() throws {
        let s = try parse("""
            security:
              handoff_secret: "0123456789abcdef-more"
              handoff_window: 10s
              tunnel_peers: [10.0.0.5, "2001:db8::/32"]
              unsigned_handoffs_from: [127.0.0.1]
              connections: {max: 100, per_source: 4, message_timeout: 5s, idle_timeout: 60s, partial_budget: 8MiB}

            """).security
        #expect(s.handoffSecret == Array("0123456789abcdef-more".utf8))
        #expect(s.handoffSecretSource == "security.handoff_secret")
        #expect(s.handoffWindow == .seconds(10))
        #expect(s.tunnelPeers?.map(\.description) == ["10.0.0.5", "2001:db8::/32"])
        #expect(s.unsignedHandoffsFrom.map(\.description) == ["127.0.0.1"])
        #expect(s.connections.maxConnections == 100)
        #expect(s.connections.maxPerSource == 4)
        #expect(s.connections.messageTimeout == .seconds(5))
        #expect(s.connections.idleTimeout == .seconds(60))
        #expect(s.connections.partialBudget == 8 << 20)
    }

    @Test func theSecretMayComeFromTheEnvironment() throws {
        let s = try parse("", environment: ["PARLEY_HANDOFF_SECRET": "from-the-environment-123"]).security
        #expect(s.handoffSecret == Array("from-the-environment-123".utf8))
        #expect(s.handoffSecretSource == "PARLEY_HANDOFF_SECRET")
        #expect(!s.description.contains("from-the-environment"))
    }

    @Test func aShortSecretIsRefusedWithoutRepeatingIt() {
        let p = problems("security: {handoff_secret: tooshort}\n")
        #expect(p.map(\.key) == ["security.handoff_secret"])
        #expect(p.first?.line != nil)
        #expect(!p.description.contains("tooshort"))
        let env = problems("", environment: ["PARLEY_HANDOFF_SECRET": "short"])
        #expect(env.map(\.key) == ["PARLEY_HANDOFF_SECRET"])
    }

    @Test func badValuesNameTheirKeys() {
        let p = problems("""
            security:
              handoff_window: 10m
              rate_limit: {block: 1e300}
              tunnel_peers: [not-an-address]
              connections: {max: 0, per_source: x, message_timeout: -1, partial_budget: 1KiB, idel_timeout: 5s}
              secret: x

            """)
        #expect(Set(p.map(\.key)) == ["security.handoff_window", "security.tunnel_peers[0]", "security.connections.max",
                                      "security.connections.per_source", "security.connections.message_timeout",
                                      "security.connections.partial_budget", "security.connections.idel_timeout", "security.secret",
                                      "security.rate_limit.block"])
    }

    @Test func bothRolesInOneProcessMakeTheirOwnSecretAndOneRoleAloneNeedsOne() throws {
        let c = try parse("")
        let made = try ParleyServer.handoffSecret(c, roles: [.distributor, .buffer])
        #expect(made?.count == 32)
        #expect(try ParleyServer.handoffSecret(c, roles: [.distributor, .buffer]) != made)
        #expect(throws: ServeError.self) { try ParleyServer.handoffSecret(c, roles: [.buffer]) }
        #expect(throws: ServeError.self) { try ParleyServer.handoffSecret(c, roles: [.distributor]) }
        #expect(try ParleyServer.handoffSecret(c, roles: [.registration]) == nil)
        let configured = try parse("security: {handoff_secret: \"0123456789abcdef-more\"}\n")
        #expect(try ParleyServer.handoffSecret(configured, roles: [.buffer]) == Array("0123456789abcdef-more".utf8))
    }

    @Test func theTunnelIsOpenToTheDistributorsAddressByDefault() throws {
        let c = try parse("")
        #expect(ParleyServer.tunnelPeers(c).map(\.description) == ["127.0.0.1"])
    }

    @Test func connectionLimitsFitTheFileLimit() {
        var l = ConnectionLimits()
        l.maxConnections = 4096
        l.maxPerSource = 4096
        let fitted = FileLimit.fit(l, descriptors: 1024, listeners: 3)
        #expect(fitted.maxConnections == (1024 - 256) / 3)
        #expect(fitted.maxPerSource == fitted.maxConnections)
        #expect(FileLimit.fit(l, descriptors: 1 << 20, listeners: 3).maxConnections == 4096)
    }
}
