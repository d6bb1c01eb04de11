import NIOCore
import ParleySIP
import ParleyTransport

/// Where an agent may register its phone (docs/security.md): the address its REGISTER came from
/// (as RFC 3581 sees it: the packet's source, behind NAT the NAT's public side), and whatever
/// networks and domains the configuration allows, for every agent or for one. A contact anywhere
/// else (a PSTN gateway, someone else's phone) is refused before anything is forwarded, so that
/// a stolen password cannot send the agent's calls, or toll calls, through Parley.
public struct ContactPolicy: Sendable, Equatable {
    /// Networks and domains (a domain allows itself and its subdomains).
    public struct Allowed: Sendable, Equatable {
        public var networks: [IPNetwork] = []
        public var domains: [String] = []
        public init(networks: [IPNetwork] = [], domains: [String] = []) {
            self.networks = networks
            self.domains = domains.map { $0.lowercased() }
        }
    }

    /// For every agent.
    public var all = Allowed()
    /// For one agent, beside `all`.
    public var agents: [String: Allowed] = [:]

    public init(all: Allowed = Allowed(), agents: [String: Allowed] = [:]) {
        self.all = all
        self.agents = agents
    }

    /// Whether `host` may be a contact of `agent`, whose REGISTER came from `source`.
    public func allows(_ host: SIPHost, agent: String, source: SocketAddress) -> Bool {
        let lists = [all] + (agents[agent].map { [$0] } ?? [])
        switch host {
        case .name(let name):
            let n = name.lowercased()
            return lists.contains { $0.domains.contains { n == $0 || n.hasSuffix("." + $0) } }
        case .ipv4(let ip), .ipv6(let ip):
            guard let bytes = IPNetwork.addressBytes(ip) else { return false }
            if let from = IPNetwork.bytes(of: source), from == bytes { return true }
            return lists.contains { $0.networks.contains { $0.contains(bytes: bytes) } }
        }
    }
}
