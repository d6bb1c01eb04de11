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
        #expect(s.algorithms == [.sha256] && s.expires == 120 && s.minExpires == 30 && s.maxExpires == 600)
        #expect(s.database == nil && s.upstreamURI == "sip:cc.example.com")
        let rc = try #require(try c.registrationRoleConfiguration())
        #expect(rc.addresses.map(\.aor) == ["sip:sales@cc.example.com", "sip:support@cc.example.com", "sip:moh@cc.example.com"])
        #expect(rc.agentSkills["bob"] == ["sales", "support"])
        #expect(rc.treatments["moh"] == "sip:moh@127.0.0.1:5090")
        #expect(rc.parleyHostPort == "127.0.0.1:5060" && rc.pathURI == "sip:127.0.0.1:5062")
        #expect(rc.upstreamUsername == "parley" && rc.agentPasswords["alice"] == "a-secret")
        #expect(rc.upstream.transport == .tcp)
    }

    @Test func algorithmsContactsAndForwardingPeers() throws {
        let c = try parse("""
            registration:
              listen: 127.0.0.1:5062
              domain: cc.example.com
              algorithm: [SHA-256, MD5]
              upstream: 10.0.0.9:5080
              credentials: {alice: a-secret}
              contacts: [10.1.0.0/16, phones.example.com]
              agent_contacts: {alice: ["2001:db8::/32"]}
              forward_from: [198.51.100.0/24]
            """)
        let s = try #require(c.registration)
        #expect(s.algorithms == [.sha256, .md5])
        #expect(s.contacts.all.networks.map(\.description) == ["10.1.0.0/16"])
        #expect(s.contacts.all.domains == ["phones.example.com"])
        #expect(s.contacts.agents["alice"]?.networks.map(\.description) == ["2001:db8::/32"])
        let rc = try #require(try c.registrationRoleConfiguration())
        // The configured peers, then the buffer server and the distributor (the upstream always may).
        #expect(rc.forwardFrom.map(\.description) == ["198.51.100.0/24", "127.0.0.1", "127.0.0.1"])
        #expect(rc.contacts == s.contacts)
        // Without the key: SHA-256 alone (MD5 only where configured).
        let plain = try parse("registration: {listen: 127.0.0.1:5062, domain: cc.example.com, upstream: 127.0.0.1:5080, credentials: {alice: a}}")
        #expect(plain.registration?.algorithms == [.sha256])
    }

    @Test func badContactsAndPeersAreNamed() {
        let found = problems("""
            registration:
              listen: 127.0.0.1:5062
              domain: cc.example.com
              upstream: 127.0.0.1:5080
              credentials: {alice: a-secret}
              contacts: ["not a place"]
              agent_contacts: {mallory: [10.0.0.1]}
              forward_from: [example.com]
            """)
        #expect(found.contains { $0.contains("registration.contacts[0]") })
        #expect(found.contains { $0.contains("registration.agent_contacts.mallory") })
        #expect(found.contains { $0.contains("registration.forward_from[0]") })
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
