import Foundation

@testable import ParleyApp

/// A minimal configuration (two listeners, one agent) that a test adds its section to.
enum ConfigurationFixture {
    static let base = """
        listeners: {distributor: "127.0.0.1:5060", buffer: "127.0.0.1:5070"}
        agents:
          - {id: alice, skills: [sales], contact: "sip:alice@127.0.0.1:5081"}

        """

    static func parse(_ extra: String, environment: [String: String] = [:]) throws -> ParleyConfiguration {
        try ParleyConfiguration.parse(base + extra, path: "/tmp/parley.yaml", environment: environment)
    }

    /// Every problem the file has (none when it loads).
    static func problems(_ extra: String, environment: [String: String] = [:]) -> [ConfigurationError] {
        do throws(ConfigurationErrors) {
            _ = try ParleyConfiguration.parse(base + extra, path: "/tmp/parley.yaml", environment: environment)
            return []
        } catch {
            return error.errors
        }
    }
}
