import ArgumentParser
import Dispatch
import Foundation
import Logging
import ParleyTransport
import ParleyApp
import ServiceLifecycle

/// `parley serve --config FILE`: runs the roles the configuration names (distributor and buffer
/// server), in this process or, with `--role`, one role per process.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the contact-center roles a configuration file names.",
        discussion: """
        Reads the configuration (YAML; see examples/parley.yaml and docs/call-path.md), checks it \
        as a whole and refuses to start on any problem, naming the key and its line. Runs the \
        distributor and the buffer server in this process, or only the roles given with --role \
        (repeat it), so that each role can run in its own process on its own address. Reloads the \
        rules when their directory changes or on SIGHUP. With an admin: section, serves the admin API, \
        event stream, metrics and wallboard (docs/admin.md). Stops on SIGINT or SIGTERM.
        """
    )

    @Option(help: "The configuration file (YAML).")
    var config: String

    @Option(help: "Run only this role (distributor or buffer); repeat for several. Default: the file's roles.")
    var role: [String] = []

    @Flag(help: "Check the configuration and exit.")
    var check = false

    @Option(name: .customLong("log-level"), help: "Override the file's log_level.")
    var logLevel: String?

    @Option(name: .customLong("stats-file"), help: "Write counters and table sizes to this file every second and on exit.")
    var statsFile: String?

    func validate() throws {
        for r in role where Role(rawValue: r) == nil {
            throw ValidationError("--role must be distributor, buffer or registration, not '\(r)'")
        }
        if let logLevel, Logger.Level(rawValue: logLevel) == nil {
            throw ValidationError("--log-level '\(logLevel)' is not a log level")
        }
    }

    func run() async throws {
        let configuration: ParleyConfiguration
        do {
            configuration = try ParleyConfiguration.load(path: config)
        } catch {
            FileHandle.standardError.write(Data("parley serve: the configuration has problems:\n\(error)\n".utf8))
            throw ExitCode(2)
        }
        if check {
            print("\(config): ok (\(configuration.agents.count) agents, roles \(configuration.roles.map(\.rawValue).joined(separator: ", ")))")
            return
        }
        let level = Logger.Level(rawValue: logLevel ?? configuration.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            // Escaped: wire text (Call-IDs, user parts, errors) must not write control characters to the log.
            EscapingLogHandler.standardError(label: label, level: level)
        }
        let roles = role.isEmpty ? nil : role.compactMap(Role.init(rawValue:))
        let server = ParleyServer(configuration: configuration, roles: roles)
        do {
            try server.start()
        } catch {
            FileHandle.standardError.write(Data("parley serve: cannot start: \(error)\n".utf8))
            server.stop()
            throw ExitCode(1)
        }

        var statsTimer: DispatchSourceTimer?
        if let statsFile {
            let t = DispatchSource.makeTimerSource(queue: .global())
            t.schedule(deadline: .now() + 1, repeating: 1)
            t.setEventHandler { try? server.statistics().write(toFile: statsFile, atomically: true, encoding: .utf8) }
            t.resume()
            statsTimer = t
        }
        let logger = Logger(label: "parley.serve")
        let admin: (any Service)?
        do {
            admin = try server.adminService(logger: Logger(label: "parley.admin"))
        } catch {
            FileHandle.standardError.write(Data("parley serve: cannot start: \(error)\n".utf8))
            server.stop()
            throw ExitCode(1)
        }
        nonisolated(unsafe) let timer = statsTimer  // cancelled once, at the end
        let file = statsFile
        let rolesService = RolesService(server: server) {
            timer?.cancel()
            let summary = server.statistics()
            FileHandle.standardError.write(Data(summary.utf8))
            if let file { try? summary.write(toFile: file, atomically: true, encoding: .utf8) }
        }
        // Shut down in reverse order: the admin listener first, then the roles.
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [rolesService] + (admin.map { [$0] } ?? []), gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            FileHandle.standardError.write(Data("parley serve: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
