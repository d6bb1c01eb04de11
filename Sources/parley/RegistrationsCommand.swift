import ArgumentParser
import Foundation
import ParleyApp
import ParleyRegistration
import ParleyRules

/// `parley registrations`: the bindings Parley created at the upstream registrar, per
/// contact-center address, with the q the rule chose, the q registered and the time left; and
/// the agents registered through Parley. Read from the registration database.
struct RegistrationsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "registrations",
        abstract: "List the bindings Parley created at the upstream registrar (rule q, registered q, expiry).",
        discussion: """
        Reads the registration database that `parley serve` writes (registration.database in the \
        configuration, or --database). One line per binding: the address of record, the contact, who \
        it is (parley, agent:ID, treatment:NAME), the q the rule returned, the q registered upstream \
        (0.9 times the rule's; Parley itself at 1.0) and the seconds left; then the agents registered \
        through Parley. Exit status 2 when there is no database.
        """
    )

    @Option(help: "The configuration file (YAML) whose registration.database to read.")
    var config: String?

    @Option(help: "The registration database (SQLite) to read; overrides --config.")
    var database: String?

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func validate() throws {
        if config == nil, database == nil {
            throw ValidationError("name the registration database with --database PATH or --config FILE")
        }
    }

    func run() throws {
        var path = database
        if path == nil, let config {
            do {
                let c = try ParleyConfiguration.load(path: config)
                guard let r = c.registration else { fail("\(config) has no registration section") }
                guard let p = r.database else { fail("\(config) keeps registrations in memory only (registration.database: off)") }
                path = p
            } catch {
                fail("the configuration has problems:\n\(error)")
            }
        }
        guard let path else { fail("no registration database named") }
        guard FileManager.default.fileExists(atPath: path) else {
            fail("no registration database at \(path) (has `parley serve` run the registration role with this configuration?)")
        }
        let store: RegistrationStore
        let addresses: [AddressRecord]
        let agents: [AgentRegistration]
        do {
            store = try RegistrationStore(path: path)
            addresses = try store.loadAddresses()
            agents = try store.loadAgents()
        } catch {
            fail("\(error)")
        }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        func left(_ ms: Int64) -> Int64 { max(0, (ms - now + 999) / 1000) }
        if json {
            var out: [[String: Any]] = []
            for a in addresses {
                for b in a.bindings {
                    out.append(["aor": a.aor, "contact": b.contact, "owner": b.owner.description, "rule_q": RegistrationQ.format(b.ruleQ),
                                "q": RegistrationQ.format(b.q), "expires_in": left(a.expiresAtMs)])
                }
            }
            let agentList: [[String: Any]] = agents.map {
                ["agent": $0.agentID, "aor": $0.aor, "contact": $0.contact, "expires_in": left($0.expiresAtMs)]
            }
            let data = try JSONSerialization.data(withJSONObject: ["bindings": out, "agents": agentList], options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        var rows: [[String]] = [["ADDRESS", "CONTACT", "OWNER", "RULE_Q", "Q", "EXPIRES_IN"]]
        for a in addresses {
            for b in a.bindings {
                rows.append([a.aor, b.contact, b.owner.description, b.owner == .parley ? "-" : RegistrationQ.format(b.ruleQ),
                             RegistrationQ.format(b.q), "\(left(a.expiresAtMs))s"])
            }
            if let e = a.lastError { rows.append([a.aor, "(last REGISTER failed: \(e))", "", "", "", ""]) }
        }
        printTable(rows)
        print("")
        var agentRows: [[String]] = [["AGENT", "AOR", "CONTACT", "EXPIRES_IN"]]
        for a in agents { agentRows.append([a.agentID, a.aor, a.contact, "\(left(a.expiresAtMs))s"]) }
        printTable(agentRows)
        print("\(addresses.reduce(0) { $0 + $1.bindings.count }) bindings for \(addresses.count) addresses, \(agents.count) agents registered")
    }

    private func printTable(_ rows: [[String]]) {
        guard let first = rows.first else { return }
        var widths = first.map(\.count)
        for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
        for r in rows {
            let line = r.enumerated().map { i, c in i == r.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
            print(line.joined(separator: "  "))
        }
    }

    private func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("parley registrations: \(message)\n".utf8))
        Foundation.exit(2)
    }
}
