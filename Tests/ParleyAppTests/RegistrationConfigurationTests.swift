import Foundation
import ParleyRegistration
import ParleySIP
import Testing

@testable import ParleyApp

/// The `registration:` section: read whole, with its problems named by key and line.
@Suite struct RegistrationConfigurationTests {
    static let base = """
        listeners: {distributor: 127.0.0.1:5060, buffer: 127.0.0.1:5070}
        skills: [sales, support]
        treatments: {moh: "sip:moh@127.0.0.1:5090"}
        agents:
          - {id: alice, skills: [sales], contact: "sip:alice@127.0.0.1:5081"}
          - {id: bob, skills: [sales, support], contact: "sip:bob@127.0.0.1:5082"}
        """

    func parse(_ registration: String) throws(ConfigurationErrors) -> ParleyConfiguration {
        try ParleyConfiguration.parse(Self.base + "\n" + registration, path: "/tmp/parley.yaml")
    }

    func problems(_ registration: String) -> [String] {
        do {
            _ = try parse(registration)
            return []
        } catch {
            return error.errors.map(\.description)
        }
    }

    @Test func aFullSectionIsReadAndStartsTheRole() throws {
        let c = try parse("""
            registration:
              listen: 127.0.0.1:5062
              domain: cc.example.com
              algorithm: SHA-256
              upstream: 127.0.0.1:5080
              upstream_transport: tcp
              upstream_user: parley
              upstream_password: up-secret
              expires: 120
              min_expires: 30
              max_expires: 600
              upstream_timeout: 2s
              database: off
              credentials: {alice: a-secret, bob: b-secret}
            """)
        #expect(c.roles == [.distributor, .buffer, .registration])
        let s = try #require(c.registration)
        #expect(s.algorithm == .sha256 && s.expires == 120 && s.minExpires == 30 && s.maxExpires == 600)
        #expect(s.database == nil && s.upstreamURI == "sip:cc.example.com")
        let rc = try #require(try c.registrationRoleConfiguration())
        #expect(rc.addresses.map(\.aor) == ["sip:sales@cc.example.com", "sip:support@cc.example.com", "sip:moh@cc.example.com"])
        #expect(rc.agentSkills["bob"] == ["sales", "support"])
        #expect(rc.treatments["moh"] == "sip:moh@127.0.0.1:5090")
        #expect(rc.parleyHostPort == "127.0.0.1:5060" && rc.pathURI == "sip:127.0.0.1:5062")
        #expect(rc.upstreamUsername == "parley" && rc.agentPasswords["alice"] == "a-secret")
        #expect(rc.upstream.transport == .tcp)
    }

    @Test func withoutTheSectionTheRoleIsNotRun() throws {
        let c = try ParleyConfiguration.parse(Self.base, path: "/tmp/parley.yaml")
        #expect(c.roles == [.distributor, .buffer] && c.registration == nil)
        #expect(throws: ConfigurationErrors.self) {
            _ = try ParleyConfiguration.parse(Self.base + "\nroles: [registration]", path: "/tmp/parley.yaml")
        }
    }

    @Test func problemsAreNamedWithLineAndKey() {
        let found = problems("""
            registration:
              listen: nowhere
              domain: cc.example.com
              upstream: 127.0.0.1:5080
              algorithm: SHA-512
              expires: 0
              upstream_user: parley
              min_expires: 900
              max_expires: 600
              credentials: {alice: a, zoe: z}
              colour: blue
            """)
        #expect(found.contains { $0.hasPrefix("/tmp/parley.yaml:8: registration.listen: 'nowhere' is not an address") })
        #expect(found.contains("/tmp/parley.yaml:11: registration.algorithm: expected MD5 or SHA-256, got 'SHA-512'"))
        #expect(found.contains("/tmp/parley.yaml:12: registration.expires: expected whole seconds from 10 to 86400, got '0'"))
        #expect(found.contains("/tmp/parley.yaml:13: registration.upstream_password: upstream_user and upstream_password go together"))
        #expect(found.contains("/tmp/parley.yaml:14: registration.min_expires: is more than max_expires (900 > 600)"))
        #expect(found.contains("/tmp/parley.yaml:16: registration.credentials.zoe: 'zoe' is not one of the agents"))
        #expect(found.contains { $0.hasPrefix("/tmp/parley.yaml:17: registration.colour: unknown key") })
        #expect(problems("registration: {listen: 127.0.0.1:5062, upstream: 127.0.0.1:5080, credentials: {alice: a}}")
            == ["/tmp/parley.yaml: registration.domain: missing: the domain of the addresses of record (sip:sales@DOMAIN)"])
    }
}
