import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ParleyAdmin
import ParleyTransport
import ServiceLifecycle

/// The roles of a `parley serve` process as one service of the process's lifecycle: started
/// before the service group runs (a problem stops start-up with its message), stopped when the
/// group shuts down (SIGTERM, SIGINT), after the admin listener, which is shut down first.
public struct RolesService: Service {
    let server: ParleyServer
    /// Done before the roles stop (the last statistics).
    let beforeStop: @Sendable () -> Void

    public init(server: ParleyServer, beforeStop: @escaping @Sendable () -> Void) {
        self.server = server
        self.beforeStop = beforeStop
    }

    public func run() async throws {
        // Returns when the group shuts down gracefully; cancellation ends it the same way.
        try? await gracefulShutdown()
        beforeStop()
        server.stop()
    }
}

extension ParleyServer {
    /// How many connections the admin listener takes at once (event streams included).
    public static let adminConnections = 1_024

    /// The admin API's HTTP server (nil: no `admin:` section), over this process's roles. Call
    /// after `start`.
    public func adminService(logger: Logger) throws -> (any Service)? {
        guard let a = configuration.admin else { return nil }
        let address = try parseSocketAddress(a.listen, defaultPort: 8080)
        guard let ip = address.ipAddress, let port = address.port else { throw ServeError("admin.listen: '\(a.listen)' is not IP:PORT") }
        if a.token == nil, a.readToken == nil {
            logger.warning("admin: no token configured; anyone who can reach \(a.listen) may use the admin API")
        }
        if records == nil {
            logger.warning("admin: records.database is off, so agent states set through the API do not survive a restart")
        }
        let api = AdminAPI(distributor: distributor, records: records, rules: distributor == nil ? nil : store,
                           access: AdminAccess(token: a.token, readToken: a.readToken, metricsOpen: a.metricsOpen),
                           figures: { [weak self] in await self?.roleFigures() ?? RoleFigures() },
                           timeZone: TimeZone(identifier: configuration.timezone) ?? TimeZone(identifier: "UTC")!)
        var log = logger
        log.logLevel = max(logger.logLevel, .notice)  // no line per request
        let app = Application(
            router: api.router(),
            // A connection with no request in progress (one that sent nothing, half a head, or
            // nothing after its last response) is closed; event streams are requests in progress.
            server: .http1(configuration: .init(idleTimeout: .milliseconds(a.idleTimeout.milliseconds))),
            configuration: ApplicationConfiguration(address: .hostname(ip, port: port), serverName: "parley",
                                                    availableConnectionsDelegate: MaximumAvailableConnections(Self.adminConnections, logger: log)),
            onServerRunning: { channel in
                logger.info("admin API listening on http://\(channel.localAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? a.listen)")
            },
            logger: log)
        api.startEvents()
        return AdminService(app: app, api: api)
    }
}

extension ParleyServer {
    /// What each role of this process counts, taken on its loop.
    func roleFigures() async -> RoleFigures {
        var f = RoleFigures()
        let stack = Self.figures
        if let d = distributor, let s = try? await d.stack.loop.submit({ (stack(d.stack), d.tableSizes.answered) }).get() {
            f.stacks.append(s.0)
            f.activeCalls = s.1
        }
        if let b = buffer, let s = try? await b.stack.loop.submit({ (stack(b.stack), b.tableSizes.calls) }).get() {
            f.stacks.append(s.0)
            f.activeCalls = s.1
        }
        if let g = registration, let s = try? await g.stack.loop.submit({ (stack(g.stack), g.state.agents.count) }).get() {
            f.stacks.append(s.0)
            f.registrations = s.1
        }
        return f
    }

    /// One role's stack's figures (on its loop).
    @Sendable static func figures(_ s: SIPStack) -> RoleFigures.Stack {
        let t = s.transport.counters
        return RoleFigures.Stack(counts: s.sipCounts, transactions: s.transactionCount, parseErrors: t.malformedRequests + t.malformedResponses)
    }
}

/// The admin listener as a service: on shutdown its event streams end first, so the HTTP
/// server's graceful shutdown does not wait on them.
struct AdminService<App: Service>: Service {
    let app: App
    let api: AdminAPI

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await app.run()
        } onGracefulShutdown: {
            api.stopEvents()
        }
    }
}
