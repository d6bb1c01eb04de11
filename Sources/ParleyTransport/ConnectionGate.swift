import NIOConcurrencyHelpers
import NIOCore

/// Limits on what connections a stranger can make a listener hold (docs/security.md).
public struct ConnectionLimits: Sendable, Equatable, CustomStringConvertible {
    /// Connections accepted at once (each further one is closed at accept).
    public var maxConnections = 4096
    /// Connections accepted at once from one IP address.
    public var maxPerSource = 128
    /// A message must arrive whole within this of its first byte, and a new connection's first
    /// message within this of the connect (Kamailio's `tcp_msg_read_timeout`); an idle timer reset
    /// by every byte would let a message trickle in for ever.
    public var messageTimeout: TimeAmount = .seconds(20)
    /// A connection with no message in flight is closed after this without traffic.
    public var idleTimeout: TimeAmount = .seconds(180)
    /// Bytes of partly received messages the process may hold (shared by every connection).
    public var partialBudget = 64 << 20
    /// Sources exempt from the per-source limit (a carrier's SBC, the other role).
    public var trusted: [IPNetwork] = []

    public init() {}

    public var description: String {
        "max=\(maxConnections) per_source=\(maxPerSource) message_timeout=\(messageTimeout.nanoseconds / 1_000_000)ms idle_timeout=\(idleTimeout.nanoseconds / 1_000_000)ms partial_budget=\(partialBudget)"
    }
}

/// Bytes of partly received messages, shared by every connection of the process: a connection
/// whose next read would take it over the budget is closed instead of buffering more.
public final class ByteBudget: Sendable {
    public let limit: Int
    private let used = NIOLockedValueBox(0)

    public init(limit: Int) { self.limit = limit }

    /// Takes `n` more bytes; false (nothing taken) if that would exceed the budget.
    public func take(_ n: Int) -> Bool {
        used.withLockedValue { u in
            guard u + n <= limit else { return false }
            u += n
            return true
        }
    }

    /// Gives `n` bytes back.
    public func give(_ n: Int) {
        guard n > 0 else { return }
        used.withLockedValue { $0 = max(0, $0 - n) }
    }

    /// Bytes held now.
    public var inUse: Int { used.withLockedValue { $0 } }
}

/// Counts what the gates and the stream handlers refused, for the stats line and tests.
public struct ConnectionCounters: Sendable, Equatable {
    /// Connections closed at accept: over the total limit, over the per-source limit, not an allowed peer.
    public var refusedTotal = 0
    public var refusedPerSource = 0
    public var refusedPeer = 0
    /// Connections closed because a message did not arrive whole in time.
    public var messageTimeouts = 0
    /// Connections closed because the partial-message budget was spent.
    public var overBudget = 0

    public init() {}

    /// Counts a connection the gate refused.
    public mutating func count(_ why: ConnectionGate.Refusal) {
        switch why {
        case .total: refusedTotal += 1
        case .perSource: refusedPerSource += 1
        case .peer: refusedPeer += 1
        }
    }
}

/// The first handler of a listening socket's pipeline: closes each accepted connection that
/// would go over the limits (in total, from its address, or from an address not allowed) before
/// anything is read from it, and counts the rest until they close. Confined to the listener's
/// event loop (the accepted connections share it).
public final class ConnectionGate: ChannelInboundHandler, @unchecked Sendable {
    public typealias InboundIn = Channel
    public typealias InboundOut = Channel

    private let limits: () -> ConnectionLimits
    private let allowed: (@Sendable (SocketAddress) -> Bool)?
    private let refused: (_ why: Refusal) -> Void
    private var open = 0
    private var perSource: [[UInt8]: Int] = [:]

    public enum Refusal: Sendable { case total, perSource, peer }

    /// `limits` is read at each accept; `allowed` (nil: anyone) filters peers; `refused` counts.
    public init(limits: @escaping () -> ConnectionLimits, allowed: (@Sendable (SocketAddress) -> Bool)? = nil,
                refused: @escaping (Refusal) -> Void) {
        self.limits = limits
        self.allowed = allowed
        self.refused = refused
    }

    /// Connections counted now (tests).
    public var openConnections: Int { open }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let child = unwrapInboundIn(data)
        let l = limits()
        guard let remote = child.remoteAddress, let ip = IPNetwork.bytes(of: remote) else {
            child.close(promise: nil)
            return
        }
        if let allowed, !allowed(remote) { return refuse(child, .peer) }
        if open >= l.maxConnections { return refuse(child, .total) }
        let count = perSource[ip, default: 0]
        if count >= l.maxPerSource, !l.trusted.contains(where: { $0.contains(bytes: ip) }) { return refuse(child, .perSource) }
        open += 1
        perSource[ip] = count + 1
        let loop = context.eventLoop
        child.closeFuture.whenComplete { [self] _ in
            loop.execute { self.release(ip) }
        }
        context.fireChannelRead(data)
    }

    private func refuse(_ child: Channel, _ why: Refusal) {
        refused(why)
        child.close(promise: nil)
    }

    private func release(_ ip: [UInt8]) {
        open -= 1
        if let n = perSource[ip], n > 1 { perSource[ip] = n - 1 } else { perSource[ip] = nil }
    }
}

/// Accepting again after the process ran out of file descriptors (or another accept error):
/// NIO's back-off (a second), so a full table does not spin a core on accept.
public func addAcceptBackoff(_ channel: Channel) -> EventLoopFuture<Void> {
    channel.eventLoop.makeCompletedFuture {
        try channel.pipeline.syncOperations.addHandler(AcceptBackoffHandler(shouldForwardIOErrorCaught: false))
    }
}
