import Foundation
import ParleyCallCenter
import ParleyRules
import Testing

@testable import ParleyApp

/// `parley serve`'s configuration: the shipped example loads; a bad file is refused with the key,
/// the line and the problem, every problem at once.
@Suite struct ConfigurationTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static let good = """
        rules: rules
        roles: [distributor, buffer]
        listeners:
          distributor: 127.0.0.1:5060
          buffer: 127.0.0.1:5070
          tunnel: "[::1]:5071"
          in_process: false
        timers: {no_answer_timeout: 12s, wrap_up: 500ms, max_no_answer: 2, break: 2m, probe: off, t1: 250}
        skills: [sales, support]
        agents:
          - id: alice
            skills: [sales]
            contact: sip:alice@127.0.0.1:5081
            attributes: {language: fr, seniority: 3, vip: true, note: "3.0"}
          - {id: bob, skills: [support], contact: "sip:bob@[::1]:5082", available: false}
        """

    func problems(_ text: String) -> [ConfigurationError] {
        do {
            _ = try ParleyConfiguration.parse(text, path: "/etc/parley/parley.yaml")
            return []
        } catch {
            return error.errors
        }
    }

    @Test func theShippedExampleLoads() throws {
        let path = Self.root.appendingPathComponent("examples/parley.yaml").path
        let c = try ParleyConfiguration.load(path: path)
        #expect(c.roles == [.distributor, .buffer])
        #expect(c.agents.count == 4)
        #expect(c.tunnelListen != nil)
        #expect(FileManager.default.fileExists(atPath: c.rulesDirectory + "/init.lua"))
    }

    @Test func everyKeyIsRead() throws {
        let c = try ParleyConfiguration.parse(Self.good, path: "/etc/parley/parley.yaml")
        #expect(c.rulesDirectory == "/etc/parley/rules")
        #expect(c.distributorListen == "127.0.0.1:5060")
        #expect(c.tunnelListen == "[::1]:5071")
        #expect(c.handoffInProcess == false)
        #expect(c.noAnswerTimeout == .seconds(12))
        #expect(c.wrapUp == .milliseconds(500))
        #expect(c.maxNoAnswer == 2)
        #expect(c.breakTime == .seconds(120))
        #expect(c.probe == nil)
        #expect(c.t1 == .milliseconds(250_000))
        #expect(c.skills == ["sales", "support"])
        #expect(c.agents[0].attributes == ["language": .string("fr"), "seniority": .number(3), "vip": .bool(true), "note": .string("3.0")])
        #expect(c.agents[1].available == false)
        #expect(c.bufferURI.description == "sip:buffer@127.0.0.1:5070")
        let machines = c.agentMachines(now: 0)
        #expect(machines[0].timers.wrapUpMs == 500)
        #expect(machines[1].ruleState == .offline)
    }

    @Test func aBadFileNamesTheKeyAndLine() {
        let p = problems("""
            listeners:
              distributor: 127.0.0.1:5060
              bufer: 127.0.0.1:5070
            timers: {wrap_up: soon}
            agents:
              - {id: alice, contact: "sip:alice@127.0.0.1"}
              - {id: alice, contact: "mailto:bob@example.com"}
            """)
        let text = p.map(\.description)
        #expect(text.contains("/etc/parley/parley.yaml:3: listeners.bufer: unknown key (expected one of: buffer, distributor, in_process, tunnel)"))
        #expect(text.contains("/etc/parley/parley.yaml: listeners.buffer: missing: an address, IP:PORT or [IPv6]:PORT"))
        #expect(text.contains { $0.hasPrefix("/etc/parley/parley.yaml:4: timers.wrap_up: expected a duration") })
        #expect(text.contains("/etc/parley/parley.yaml:7: agents[1].id: agent 'alice' is configured twice"))
        #expect(text.contains { $0.hasPrefix("/etc/parley/parley.yaml:7: agents[1].contact: 'mailto:bob@example.com' is not a SIP URI") })
        #expect(p.count == 5)
    }

    @Test func inProcessHandoffIsOnUnlessTurnedOff() throws {
        let on = try ParleyConfiguration.parse(Self.good.replacingOccurrences(of: "  in_process: false\n", with: ""), path: "/p.yaml")
        #expect(on.handoffInProcess)
        let p = problems(Self.good.replacingOccurrences(of: "in_process: false", with: "in_process: sometimes"))
        #expect(p.map(\.description) == ["/etc/parley/parley.yaml:7: listeners.in_process: expected true or false, got 'sometimes'"])
    }

    @Test func skillsMustBeConfiguredOnes() {
        let p = problems("""
            listeners: {distributor: 127.0.0.1:5060, buffer: 127.0.0.1:5070}
            skills: [sales]
            agents:
              - {id: a, skills: [sails], contact: "sip:a@127.0.0.1:5081"}
            """)
        #expect(p.map(\.description) == ["/etc/parley/parley.yaml:4: agents[0].skills[0]: 'sails' is not one of the skills (sales)"])
    }

    @Test func missingSectionsAndBrokenYAMLAreReported() {
        #expect(problems("").map(\.message) == ["the file is empty; it needs at least listeners and agents"])
        #expect(problems("listeners: {distributor: 127.0.0.1:5060, buffer: 127.0.0.1:5070}").map(\.description)
            == ["/etc/parley/parley.yaml: agents: missing: at least one agent (id, skills, contact)"])
        let broken = problems("listeners: {distributor: 127.0.0.1:5060\nagents: [")
        #expect(broken.count == 1)
        #expect(broken.first?.message.hasPrefix("not valid YAML") == true)
        #expect(problems("roles: [switchboard]\nlisteners: {distributor: 1.2.3.4:1, buffer: 1.2.3.4:2}\nagents: []").map(\.key) == ["roles[0]"])
        #expect(problems("listeners: {distributor: 'here', buffer: 1.2.3.4:2}\nagents: []").map(\.key) == ["listeners.distributor"])
    }
}

/// `records.database`: the call-record file, beside the configuration by default.
@Suite struct RecordsConfigurationTests {
    static let base = """
        listeners: {distributor: 127.0.0.1:5060, buffer: 127.0.0.1:5070}
        agents:
          - {id: alice, contact: sip:alice@127.0.0.1:5081}

        """

    func problems(_ text: String) -> [ConfigurationError] {
        do {
            _ = try ParleyConfiguration.parse(text, path: "/tmp/parley.yaml")
            return []
        } catch {
            return error.errors
        }
    }

    @Test func theDefaultIsBesideTheConfigurationFile() throws {
        let c = try ParleyConfiguration.parse(Self.base, path: "/tmp/parley.yaml")
        #expect(c.recordsDatabase == "/tmp/parley-records.sqlite")
    }

    @Test func aRelativePathIsAnchoredAndOffDisablesRecords() throws {
        let c = try ParleyConfiguration.parse(Self.base + "records: {database: calls.db}\n", path: "/tmp/parley.yaml")
        #expect(c.recordsDatabase == "/tmp/calls.db")
        let off = try ParleyConfiguration.parse(Self.base + "records: {database: off}\n", path: "/tmp/parley.yaml")
        #expect(off.recordsDatabase == nil)
    }

    @Test func aBadDatabasePathNamesTheKeyAndLine() {
        let missingDir = problems(Self.base + "records: {database: /nonexistent-parley/calls.db}\n")
        #expect(missingDir.map(\.description) == ["/tmp/parley.yaml:4: records.database: the directory of '/nonexistent-parley/calls.db' (/nonexistent-parley) does not exist"])
        let directory = problems(Self.base + "records: {database: /tmp}\n")
        #expect(directory.first?.key == "records.database")
        #expect(directory.first?.message.contains("is a directory") == true)
        let unknown = problems(Self.base + "records: {path: x.db}\n")
        #expect(unknown.first?.key == "records.path")
    }

    @Test func retentionIsOffByDefaultAndTakesHoursOrDays() throws {
        #expect(try ParleyConfiguration.parse(Self.base, path: "/tmp/parley.yaml").recordsRetention == nil)
        let days = try ParleyConfiguration.parse(Self.base + "records: {retention: 90d}\n", path: "/tmp/parley.yaml")
        #expect(days.recordsRetention == .seconds(90 * 86_400))
        let hours = try ParleyConfiguration.parse(Self.base + "records: {retention: 36h}\n", path: "/tmp/parley.yaml")
        #expect(hours.recordsRetention == .seconds(36 * 3_600))
        let off = try ParleyConfiguration.parse(Self.base + "records: {retention: off}\n", path: "/tmp/parley.yaml")
        #expect(off.recordsRetention == nil)
    }

    @Test func aRetentionUnderAnHourOrNotADurationNamesTheKey() {
        let short = problems(Self.base + "records: {retention: 30m}\n")
        #expect(short.map(\.description) == ["/tmp/parley.yaml:4: records.retention: must be at least 1h (a call still in progress would lose its record), got '30m'"])
        let junk = problems(Self.base + "records: {retention: forever}\n")
        #expect(junk.first?.key == "records.retention")
        #expect(junk.first?.message.contains("expected a duration") == true)
    }
}

/// `treatments` and `queues`: per-queue limits, no-agent behaviour, treatment and overflow.
@Suite struct QueueConfigurationTests {
    static let base = """
        listeners: {distributor: 127.0.0.1:5060, buffer: 127.0.0.1:5070}
        timers: {queue_timeout: 45s}
        skills: [sales, support]
        agents:
          - {id: alice, skills: [sales], contact: sip:alice@127.0.0.1:5081}
        treatments:
          moh: sip:moh@127.0.0.1:5090
          announcement: sip:announce@127.0.0.1:5091

        """

    func problems(_ text: String) -> [String] {
        do {
            _ = try ParleyConfiguration.parse(text, path: "/tmp/parley.yaml")
            return []
        } catch {
            return error.errors.map(\.description)
        }
    }

    @Test func withoutQueuesEveryTypeWaitsQueueTimeoutAndIsRejectedWhenNobodyIsLoggedIn() throws {
        let c = try ParleyConfiguration.parse(Self.base, path: "/tmp/parley.yaml")
        #expect(c.treatments.map(\.name) == ["moh", "announcement"])
        #expect(c.treatments[1].contact.description == "sip:announce@127.0.0.1:5091")
        #expect(c.queues.isEmpty)
        #expect(c.defaultQueue == QueuePolicy(maxWait: .seconds(45), maxLength: nil, noAgent: .reject, status: 480, treatment: nil, overflow: .status))
    }

    @Test func theDefaultQueueIsWhereOtherQueuesStart() throws {
        let c = try ParleyConfiguration.parse(Self.base + """
            queues:
              sales: {max_length: 3, overflow: announcement}
              default: {max_wait: 2m, no_agent: queue, status: 486, treatment: moh}
              support: {treatment: none, max_length: unlimited}
            """, path: "/tmp/parley.yaml")
        #expect(c.defaultQueue == QueuePolicy(maxWait: .seconds(120), maxLength: nil, noAgent: .queue, status: 486, treatment: "moh", overflow: .status))
        #expect(c.queues["sales"] == QueuePolicy(maxWait: .seconds(120), maxLength: 3, noAgent: .queue, status: 486, treatment: "moh", overflow: .treatment("announcement")))
        #expect(c.queues["support"]?.treatment == nil)
        #expect(c.queues["support"]?.maxLength == nil)
    }

    @Test func everyBadQueueKeyIsNamedWithItsLine() {
        let p = problems(Self.base + """
            queues:
              sails: {max_wait: 10s}
              sales: {max_wait: 0, max_length: 0, no_agent: hangup, status: 200, treatment: jazz, overflow: voicemail, colour: blue}
            """)
        #expect(p.contains("/tmp/parley.yaml:10: queues.sails: 'sails' is not one of the skills (sales, support) nor 'default'"))
        #expect(p.contains { $0.hasPrefix("/tmp/parley.yaml:11: queues.sales.max_wait: expected a duration") })
        #expect(p.contains("/tmp/parley.yaml:11: queues.sales.max_length: expected a whole number >= 1 (or unlimited), got '0'"))
        #expect(p.contains { $0.hasPrefix("/tmp/parley.yaml:11: queues.sales.no_agent: 'hangup' is neither reject") })
        #expect(p.contains("/tmp/parley.yaml:11: queues.sales.status: expected a final SIP status from 300 to 699, got '200'"))
        #expect(p.contains("/tmp/parley.yaml:11: queues.sales.treatment: 'jazz' is not one of the treatments (announcement, moh)"))
        #expect(p.contains("/tmp/parley.yaml:11: queues.sales.overflow: 'voicemail' is neither status nor one of the treatments (announcement, moh)"))
        #expect(p.contains { $0.hasPrefix("/tmp/parley.yaml:11: queues.sales.colour: unknown key") })
        #expect(p.count == 8)
    }

    @Test func aTreatmentNeedsAReachableSIPURI() {
        #expect(problems(Self.base + "treatments: {hold: 'mailto:x@y'}\n").count == 1)
        let p = problems(Self.base.replacingOccurrences(of: "sip:moh@127.0.0.1:5090", with: "tel:+331234"))
        #expect(p == ["/tmp/parley.yaml:7: treatments.moh: 'tel:+331234' is not a SIP URI with a reachable host (sip:user@host:port)"])
    }
}
