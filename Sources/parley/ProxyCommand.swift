import ArgumentParser
import Dispatch
import Foundation
import Logging
import NIOCore
import NIOPosix
import ParleyProxy
import ParleySIP
import ParleyTransaction
import ParleyTransport

/// `parley proxy`: a stateful forwarding proxy with a static next hop (or several, tried in
/// order). An edge proxy for tests, and the proof of the transport and transaction layers.
struct ProxyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy",
        abstract: "Run a stateful SIP proxy that forwards initial requests to a static next hop.",
        discussion: """
        Listens on UDP and TCP at --listen. Initial requests go to the --to targets in order \
        (serial forking: the next on a 4xx-6xx answer or when a branch gives no final answer \
        within --branch-timeout); in-dialog requests follow their Route and Request-URI. \
        Record-Routes, answers Max-Forwards 0 with 483, forwards CANCEL. Stops on SIGINT or SIGTERM.
        """
    )

    @Option(help: "Address to listen on, IP:PORT or [IPv6]:PORT (UDP and TCP).")
    var listen: String

    @Option(help: "Next hop IP:PORT; repeat for serial forking, tried in order.")
    var to: [String]

    @Option(help: "Transport toward the --to targets: udp or tcp.")
    var transport: String = "udp"

    @Option(name: .customLong("branch-timeout"), help: "Seconds an INVITE branch may go without a final answer before the next target.")
    var branchTimeout: Double = 32

    @Flag(name: .customLong("no-record-route"), help: "Do not insert Record-Route.")
    var noRecordRoute = false

    @Option(help: "Event loops, each reading its own socket on --listen; a call's messages are all handled on the loop its Call-ID hashes to. Default: one per core.")
    var loops: Int?

    @OptionGroup var sources: SourceOptions

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    @Option(name: .customLong("stats-file"), help: "Write counters to this file on exit (for tests).")
    var statsFile: String?

    func validate() throws {
        // TLS is `parley serve`'s (its tls: section); this test proxy speaks UDP and TCP only.
        guard let kind = SIPTransportKind(token: transport), kind != .tls else {
            throw ValidationError("--transport must be udp or tcp, not '\(transport)'")
        }
        guard !to.isEmpty else { throw ValidationError("give at least one --to target") }
        guard branchTimeout > 0 else { throw ValidationError("--branch-timeout must be positive") }
        if let loops, !(1...64).contains(loops) { throw ValidationError("--loops must be 1 to 64, not \(loops)") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level '\(logLevel)' is not a log level") }
    }

    func run() throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            // Escaped: wire text (Call-IDs, user parts, errors) must not write control characters to the log.
            EscapingLogHandler.standardError(label: label, level: level)
        }
        let listenAddress: SocketAddress
        let targets: [SIPDestination]
        let kind = SIPTransportKind(token: transport)!
        do {
            listenAddress = try parseSocketAddress(listen)
            targets = try to.map { SIPDestination(transport: kind, address: try parseSocketAddress($0)) }
        } catch {
            throw ValidationError("\(error)")
        }

        let count = loops ?? System.coreCount
        let group = MultiThreadedEventLoopGroup(numberOfThreads: count)
        var configuration = ProxyConfiguration()
        configuration.recordRoute = !noRecordRoute
        configuration.branchTimeout = .milliseconds(Int64(branchTimeout * 1000))
        configuration.defaultTransport = kind

        let proxyConfiguration = configuration
        let proxies: [SIPProxy]
        let shards: SIPShards
        do {
            // One proxy per loop, each with its own transport and transaction stack.
            proxies = try group.makeIterator().map { loop in
                try loop.submit { () -> SIPProxy in
                    let transport = SIPTransport(loop: loop)
                    sources.apply(to: transport)
                    let stack = SIPStack(transport: transport)
                    return SIPProxy(stack: stack, configuration: proxyConfiguration) { _, _ in
                        targets.map { ProxyTarget(destination: $0) }
                    }
                }.wait()
            }
            shards = SIPShards(proxies.map(\.stack.transport))
            _ = try shards.listen(.udp, on: listenAddress).wait()
            _ = try shards.listen(.tcp, on: listenAddress).wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw ValidationError("cannot listen on \(listen): \(error)")
        }

        waitForTerminationSignal()
        let parts = proxies.compactMap { proxy in
            try? proxy.stack.loop.submit { () -> [Int] in
                let c = proxy.counters
                let t = proxy.stack.transport.counters
                return [c.requests, c.forwarded, c.refused, c.branchTimeouts, c.acksForwarded, proxy.activeCalls,
                        proxy.stack.transactionCount, t.malformedRequests, t.malformedResponses, t.sendFailures, t.handedOff]
            }.wait()
        }
        if parts.count == proxies.count {
            let n = parts.reduce(into: Array(repeating: 0, count: 11)) { sum, p in for i in sum.indices { sum[i] += p[i] } }
            let summary = "requests=\(n[0]) forwarded=\(n[1]) refused=\(n[2]) branch_timeouts=\(n[3]) acks=\(n[4]) active_calls=\(n[5]) transactions=\(n[6]) malformed_requests=\(n[7]) malformed_responses=\(n[8]) send_failures=\(n[9]) loops=\(count) handed_off=\(n[10])\n"
            FileHandle.standardError.write(Data(summary.utf8))
            if let statsFile { try? summary.write(toFile: statsFile, atomically: true, encoding: .utf8) }
        }
        for proxy in proxies { try? proxy.stack.loop.submit { proxy.stack.stop() }.wait() }
        _ = try? shards.close().wait()
        try? group.syncShutdownGracefully()
    }
}
