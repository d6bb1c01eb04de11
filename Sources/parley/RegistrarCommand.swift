import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import ParleyProxy
import ParleyRegistration
import ParleySIP
import ParleyTransaction
import ParleyTransport

/// `parley registrar`: a standards registrar (RFC 3261 section 10) with digest authentication,
/// and a proxy in front of it that forks calls to an address of record over its contacts, highest
/// q first. The upstream registrar of a contact-center deployment, on one machine.
struct RegistrarCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "registrar",
        abstract: "Run a SIP registrar with a proxy that forks calls to the bound contacts in q order.",
        discussion: """
        Listens on UDP and TCP at --listen. REGISTER is answered from the location service \
        (challenged with digest authentication when --realm is given; users from --user NAME:PASSWORD). \
        Any other request for an address of record goes to its contacts one after the other, highest q \
        first, the next on a failure response or when a branch gives no final answer within \
        --branch-timeout. Bindings live in memory, and with --database also in SQLite, so a restarted \
        registrar keeps them until they expire. Stops on SIGINT or SIGTERM.
        """
    )

    @Option(help: "Address to listen on, IP:PORT or [IPv6]:PORT (UDP and TCP).")
    var listen: String

    @Option(help: "Digest realm; without it REGISTER is not authenticated.")
    var realm: String?

    @Option(help: "A user allowed to register, NAME:PASSWORD (repeat).")
    var user: [String] = []

    @Option(help: "Digest algorithms offered, preferred first: SHA-256, MD5, or both (SHA-256,MD5). MD5 only when named.")
    var algorithm: String = "SHA-256"

    @Option(name: .customLong("branch-timeout"), help: "Seconds a contact may ring before the next one is tried.")
    var branchTimeout: Double = 32

    @Option(name: .customLong("min-expires"), help: "Shortest registration accepted (423 below it), seconds.")
    var minExpires: UInt32 = 60

    @Option(name: .customLong("max-expires"), help: "Longest registration granted, seconds.")
    var maxExpires: UInt32 = 3600

    @Option(help: "A SQLite file that keeps the bindings across restarts (created if missing).")
    var database: String?

    @OptionGroup var sources: SourceOptions

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    func validate() throws {
        guard algorithms != nil else { throw ValidationError("--algorithm must be SHA-256, MD5 or a list of them (SHA-256,MD5), not '\(algorithm)'") }
        for u in user where !u.contains(":") || u.hasPrefix(":") {
            throw ValidationError("--user '\(u)' must be NAME:PASSWORD")
        }
        guard minExpires <= maxExpires else { throw ValidationError("--min-expires must not exceed --max-expires") }
        guard branchTimeout > 0 else { throw ValidationError("--branch-timeout must be positive") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level '\(logLevel)' is not a log level") }
    }

    /// `--algorithm` as a list, nil if any entry is not an algorithm.
    var algorithms: [DigestAlgorithm]? {
        let list = algorithm.split(separator: ",").map { DigestAlgorithm(parameter: $0.trimmingCharacters(in: .whitespaces)) }
        guard !list.isEmpty, list.allSatisfy({ $0 != nil }) else { return nil }
        return list.compactMap { $0 }
    }

    func run() throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            // Escaped: wire text (Call-IDs, user parts, errors) must not write control characters to the log.
            EscapingLogHandler.standardError(label: label, level: level)
        }
        let listenAddress: SocketAddress
        do { listenAddress = try parseSocketAddress(listen) } catch { throw ValidationError("\(error)") }
        var users: [String: String] = [:]
        for u in user {
            let i = u.firstIndex(of: ":")!
            users[String(u[..<i])] = String(u[u.index(after: i)...])
        }
        var config = SIPRegistrar.Configuration()
        config.realm = realm
        config.algorithms = algorithms ?? [.sha256]
        config.policy.minExpires = minExpires
        config.policy.maxExpires = maxExpires
        config.policy.defaultExpires = min(max(3600, minExpires), maxExpires)
        var proxyConfig = ProxyConfiguration()
        proxyConfig.branchTimeout = .milliseconds(Int64(branchTimeout * 1000))
        let registrarConfig = config, forkConfig = proxyConfig, passwords = users
        var store: RegistrarBindingStore?
        if let database {
            let log = Logger(label: "parley.registrar")
            do {
                store = try RegistrarBindingStore(path: database) { error in log.error("binding not written: \(error)") }
            } catch {
                throw ValidationError("--database: \(error)")
            }
        }
        let persisted = store

        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let setup = loop.flatSubmit { () -> EventLoopFuture<SIPRegistrar> in
            let transport = SIPTransport(loop: loop)
            sources.apply(to: transport)
            let stack = SIPStack(transport: transport)
            let registrar = SIPRegistrar(stack: stack, configuration: registrarConfig, proxyConfiguration: forkConfig) { name, _ in
                passwords[name]
            }
            if let persisted {
                let wall = { Int64(Date().timeIntervalSince1970 * 1000) }
                if let list = try? persisted.load(now: .now(), wallNowMs: wall()) {
                    registrar.location.restore(list)
                    registrar.logger.info("restored \(list.count) binding(s) from \(persisted.path)")
                }
                registrar.onChange = { aor, bindings in persisted.replace(aor: aor, bindings: bindings, now: .now(), wallNowMs: wall()) }
            }
            return transport.listen(.udp, on: listenAddress)
                .flatMap { _ in transport.listen(.tcp, on: listenAddress) }
                .map { _ in registrar }
        }
        let registrar: SIPRegistrar
        do { registrar = try setup.wait() } catch {
            try? group.syncShutdownGracefully()
            throw ValidationError("cannot listen on \(listen): \(error)")
        }
        waitForTerminationSignal()
        let summary = try? loop.submit { () -> String in
            let c = registrar.counters
            return "registers=\(c.registers) challenged=\(c.challenged) refused=\(c.refusedCredentials) replays=\(c.replays) bindings=\(registrar.location.all.count) forwarded=\(registrar.proxy.counters.forwarded)\n"
        }.wait()
        if let summary { FileHandle.standardError.write(Data(summary.utf8)) }
        _ = try? loop.flatSubmit { registrar.stack.stop(); return registrar.stack.transport.close() }.wait()
        try? group.syncShutdownGracefully()
        store?.flush()
    }
}
