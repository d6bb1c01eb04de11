import NIOCore
import ParleySIP
import ParleyTransport
import Testing

@testable import ParleyRegistration

/// Where an agent may register its phone: by default only where its REGISTER came from.
@Suite struct ContactPolicyTests {
    static let from = try! SocketAddress(ipAddress: "192.0.2.10", port: 5070)

    @Test func byDefaultOnlyTheRegistersOwnAddress() throws {
        let p = ContactPolicy()
        #expect(p.allows(.ipv4("192.0.2.10"), agent: "alice", source: Self.from))
        #expect(!p.allows(.ipv4("192.0.2.11"), agent: "alice", source: Self.from))
        #expect(!p.allows(.name("gateway.example.com"), agent: "alice", source: Self.from))
        #expect(!p.allows(.ipv6("2001:db8::1"), agent: "alice", source: Self.from))
    }

    @Test func configuredNetworksAndDomainsForAllAndForOne() throws {
        let p = ContactPolicy(all: .init(networks: [IPNetwork("10.1.0.0/16")!], domains: ["Phones.Example.com"]),
                              agents: ["alice": .init(networks: [IPNetwork("2001:db8::/32")!])])
        #expect(p.allows(.ipv4("10.1.200.3"), agent: "bob", source: Self.from))
        #expect(!p.allows(.ipv4("10.2.0.1"), agent: "bob", source: Self.from))
        #expect(p.allows(.name("desk7.phones.example.com"), agent: "bob", source: Self.from))
        #expect(p.allows(.name("phones.example.com"), agent: "bob", source: Self.from))
        #expect(!p.allows(.name("evilphones.example.com"), agent: "bob", source: Self.from))
        #expect(p.allows(.ipv6("2001:db8::5"), agent: "alice", source: Self.from))
        #expect(!p.allows(.ipv6("2001:db8::5"), agent: "bob", source: Self.from))
    }
}
