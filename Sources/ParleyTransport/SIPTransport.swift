import Logging
import NIOCore
import NIOSSL
import NIOPosix
import ParleySIP

/// The SwiftNIO transports: UDP and TCP listeners, outgoing TCP connections (reused, closed when
/// idle), framing, and the transport rules of RFC 3261 section 18 and RFC 3581.
///
/// Confined to one event loop: every method must be called on `loop`, and every channel it
/// creates lives on that loop.
public final class SIPTransport: @unchecked Sendable {
    public let loop: EventLoop
    public var logger: Logger
    /// Messages that parsed, with where they came from. Requests have had `received`/`rport`
    /// added to their top Via (18.2.1, RFC 3581).
    public var onMessage: ((SIPMessage, SIPSource) -> Void)?
    public var limits = SIPParserLimits()
    /// How long an idle TCP connection stays open (`connectionLimits.idleTimeout`).
    public var idleTimeout: TimeAmount {
        get { connectionLimits.idleTimeout }
        set { connectionLimits.idleTimeout = newValue }
    }
    /// What accepted connections may hold: how many, from one address, how long a message may
    /// take (docs/security.md).
    public var connectionLimits = ConnectionLimits()
    /// Bytes of partly received messages, shared with the process's other transports.
    public var partialBudget = ByteBudget(limit: ConnectionLimits().partialBudget)
    /// What the connection limits refused.
    public internal(set) var connectionCounters = ConnectionCounters()
    /// Per-source request rates and the amplification bound (docs/security.md); nil: off.
    public var sourceGuard: SourceGuard? = SourceGuard()
    /// Milliseconds on a monotonic clock, for the source guard (tests replace it).
    public var clockMs: () -> Int64 = { Int64(NIODeadline.now().uptimeNanoseconds / 1_000_000) }
    /// Largest request sent over UDP (18.1.1: 200 bytes under a 1500-byte MTU); larger go over TCP.
    public var udpRequestLimit = 1300

    /// What was refused or lost, for logs and tests.
    public struct Counters: Sendable, Equatable {
        public var malformedRequests = 0
        public var malformedResponses = 0
        public var badRequestsAnswered = 0
        public var sendFailures = 0
        public var streamErrors = 0
        /// Messages read here for a call another loop owns, and handed to it.
        public var handedOff = 0
        /// Messages another loop read for a call this one owns.
        public var handedIn = 0
    }
    public internal(set) var counters = Counters()
    /// Datagrams read per system call.
    static let vectorRead = 8
    /// UDP listeners written to since their last flush: flushed once, after the loop's turn, so
    /// that what one turn sends goes out in one system call (sendmmsg).
    private var unflushed: [Channel] = []
    /// The shards this transport is one of (nil: alone), its place among them, and what this
    /// read queued for each of the others.
    public internal(set) weak var shards: SIPShards?
    public internal(set) var shardIndex = 0
    /// How many shards there are (1: alone): read per message, so an unsharded transport pays
    /// no weak-reference load.
    var shardCount = 1
    var pendingHandoffs: [[Handoff]] = []
    var handoffsQueued = 0

    /// A bound listener.
    public struct Listener: Sendable {
        public let kind: SIPTransportKind
        public let local: SocketAddress
        public let channel: Channel
        /// `local` as Via, Contact and Call-IDs write it (`IP:PORT`, `[IPv6]:PORT`), and its IP
        /// alone: made once, not for every message.
        public let hostPort: String
        public let ip: String

        init(kind: SIPTransportKind, local: SocketAddress, channel: Channel) {
            self.kind = kind
            self.local = local
            self.channel = channel
            self.hostPort = ParleyTransport.hostPort(local)
            self.ip = local.ipAddress ?? "?"
        }
    }
    public private(set) var listeners: [Listener] = []
    /// TLS contexts (nil: no TLS here: a TLS listener or destination fails).
    public var tls: SIPTLS?
    private struct ConnectionKey: Hashable {
        var address: SocketAddress
        var kind: SIPTransportKind
    }
    private var connections: [ConnectionKey: Channel] = [:]
    private var connecting: [ConnectionKey: EventLoopFuture<Channel>] = [:]

    public init(loop: EventLoop, logger: Logger = Logger(label: "parley.transport")) {
        self.loop = loop
        self.logger = logger
    }

    // MARK: Listening

    /// Binds a listener. Port 0 picks a free port (see `listeners` for the one bound).
    /// `reusePort`: SO_REUSEPORT, for shards that share the address (`SIPShards.listen`).
    public func listen(_ kind: SIPTransportKind, on address: SocketAddress, reusePort: Bool = false) -> EventLoopFuture<Listener> {
        let reuse = reusePort ? 1 : 0
        let future: EventLoopFuture<Channel>
        switch kind {
        case .udp:
            future = DatagramBootstrap(group: loop)
                .channelOption(.socketOption(.so_reuseaddr), value: 1)
                .channelOption(.socketOption(Self.soReusePort), value: reuse)
                .channelOption(.socketOption(.so_rcvbuf), value: 4 << 20)
                .channelOption(.maxMessagesPerRead, value: 16)
                // Up to `vectorRead` datagrams per system call (recvmmsg). NIO splits the read
                // buffer evenly between them, and a datagram may hold up to 65,535 bytes (a
                // registrar's 200 lists every binding): 64 KiB each.
                .channelOption(.datagramVectorReadMessageCount, value: Self.vectorRead)
                .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: Self.vectorRead * 65_536))
                .channelInitializer { [self] channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(UDPHandler(transport: self)) }
                }
                .bind(to: address)
        case .tcp, .tls:
            if kind == .tls, tls?.server == nil {
                return loop.makeFailedFuture(TransportError.noTLS)
            }
            future = ServerBootstrap(group: loop)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .serverChannelOption(.socketOption(Self.soReusePort), value: reuse)
                .serverChannelOption(.backlog, value: 1024)
                .serverChannelInitializer { [self] channel in
                    addAcceptBackoff(channel).flatMapThrowing {
                        try channel.pipeline.syncOperations.addHandler(self.makeGate())
                    }
                }
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { [self] channel in
                    channel.eventLoop.makeCompletedFuture { try self.addStreamHandlers(channel, kind: kind, accepted: true) }
                }
                .bind(to: address)
        }
        return future.map { [self] channel in
            let listener = Listener(kind: kind, local: channel.localAddress ?? address, channel: channel)
            listeners.append(listener)
            logger.info("listening on \(kind) \(hostPort(listener.local))")
            return listener
        }
    }

    /// The address to put in Via and Record-Route for `kind`, in the family of `peer`.
    public func advertisedAddress(for kind: SIPTransportKind, toward peer: SocketAddress? = nil) -> SocketAddress? {
        advertisedListener(for: kind, toward: peer)?.local
    }

    /// The listener whose address goes in Via and Record-Route for `kind`: of that kind and in
    /// the family of `peer`, else the first of that kind, else the first.
    public func advertisedListener(for kind: SIPTransportKind, toward peer: SocketAddress? = nil) -> Listener? {
        var firstOfKind: Listener?
        for l in listeners where l.kind == kind {
            guard let peer else { return l }
            if sameFamily(l.local, peer) { return l }
            if firstOfKind == nil { firstOfKind = l }
        }
        return firstOfKind ?? listeners.first
    }

    /// Whether `host:port` names one of our listeners (for Route and Request-URI checks).
    public func isLocal(host: String, port: Int?) -> Bool {
        listeners.contains { l in
            guard let ip = l.local.ipAddress, let p = l.local.port else { return false }
            return sameIP(ip, host) && (port ?? 5060) == p
        }
    }

    /// Closes every listener and connection.
    public func close() -> EventLoopFuture<Void> {
        let all = listeners.map(\.channel) + Array(connections.values)
        listeners = []
        connections = [:]
        let futures = all.map { $0.close().recover { _ in } }
        return EventLoopFuture.andAllComplete(futures, on: loop)
    }

    // MARK: Sending

    /// Sends a message. Over TCP an existing connection is used (the destination's own first),
    /// or a new one is opened and kept for reuse. The message is written straight into the
    /// channel's buffer.
    @discardableResult
    public func send(_ message: SIPMessage, to destination: SIPDestination) -> EventLoopFuture<Void> {
        send(.message(message), to: destination)
    }

    @discardableResult
    public func send(bytes: [UInt8], to destination: SIPDestination) -> EventLoopFuture<Void> {
        send(.bytes(bytes), to: destination)
    }

    /// What goes out: a message (serialized into the channel's buffer) or its bytes.
    private enum Payload {
        case message(SIPMessage)
        case bytes([UInt8])

        /// A response (the guard bounds those), from the message or its first bytes.
        var isResponse: Bool {
            switch self {
            case .message(let m): !m.isRequest
            case .bytes(let b): b.starts(with: SIPTransport.statusLinePrefix)
            }
        }

        func buffer(_ allocator: ByteBufferAllocator) -> ByteBuffer {
            switch self {
            case .message(let m):
                var buffer = allocator.buffer(capacity: m.estimatedSerializedCount)
                m.serialize { buffer.writeBytes($0) }
                return buffer
            case .bytes(let b):
                return allocator.buffer(bytes: b)
            }
        }
    }

    private func send(_ payload: Payload, to destination: SIPDestination) -> EventLoopFuture<Void> {
        let result: EventLoopFuture<Void>
        switch destination.transport {
        case .udp:
            guard let listener = listeners.first(where: { $0.kind == .udp && sameFamily($0.local, destination.address) }) else {
                result = loop.makeFailedFuture(TransportError.noListener(destination.transport))
                break
            }
            let buffer = payload.buffer(listener.channel.allocator)
            if payload.isResponse, sourceGuard != nil, let key = SourceKey(destination.address),
               sourceGuard?.mayRespond(to: key, bytes: buffer.readableBytes, now: clockMs()) == false {
                // Over the amplification bound: dropped as a lost datagram would be.
                return loop.makeSucceededFuture(())
            }
            let envelope = AddressedEnvelope(remoteAddress: destination.address, data: buffer)
            if buffer.readableBytes > Self.largestDatagram {
                // Too large for a datagram: the write fails, and the transaction hears of it.
                result = listener.channel.writeAndFlush(envelope)
            } else {
                // Nothing waits on a datagram's write: no promise; flushed after this turn.
                listener.channel.write(envelope, promise: nil)
                flushAfterTurn(listener.channel)
                return loop.makeSucceededVoidFuture()
            }
        case .tcp, .tls:
            if let c = destination.connection, c.isActive {
                // The connection may live on another loop (a shard answering a request another
                // shard read): its write completes there, and what waits on it runs here.
                result = c.writeAndFlush(payload.buffer(c.allocator)).hop(to: loop)
            } else {
                result = connection(to: destination.address, kind: destination.transport).flatMap { c in
                    c.writeAndFlush(payload.buffer(c.allocator))
                }
            }
        }
        result.whenFailure { [self] error in
            counters.sendFailures += 1
            logger.debug("send to \(destination) failed: \(error)")
        }
        return result
    }

    /// The largest UDP payload over IPv4 (65,535 less the IP and UDP headers).
    static let largestDatagram = 65_507

    private func flushAfterTurn(_ channel: Channel) {
        if unflushed.isEmpty { loop.execute { [self] in flushUnflushed() } }
        if !unflushed.contains(where: { $0 === channel }) { unflushed.append(channel) }
    }

    /// Flushes the channels written this turn. The array keeps its room from turn to turn; a
    /// channel added while flushing (a write's failure could) gets a turn of its own.
    private func flushUnflushed() {
        let n = unflushed.count
        for i in 0..<n { unflushed[i].flush() }
        unflushed.removeFirst(n)
        if !unflushed.isEmpty { loop.execute { [self] in flushUnflushed() } }
    }

    /// The open connection to `address` (TCP, or TLS), or a new one.
    func connection(to address: SocketAddress, kind: SIPTransportKind = .tcp) -> EventLoopFuture<Channel> {
        let key = ConnectionKey(address: address, kind: kind)
        if let c = connections[key], c.isActive { return loop.makeSucceededFuture(c) }
        if let pending = connecting[key] { return pending }
        if kind == .tls, tls == nil { return loop.makeFailedFuture(TransportError.noTLS) }
        let future = ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture { try self.addStreamHandlers(channel, kind: kind, accepted: false) }
            }
            .connect(to: address)
        connecting[key] = future
        future.whenComplete { [self] result in
            connecting[key] = nil
            if case .success(let c) = result { connections[key] = c }
        }
        return future
    }

    // MARK: Receiving

    /// A stream connection's handlers: TLS first for TLS (the listener's certificate when
    /// `accepted`, the client context when we connected), then the idle timer and the framer.
    func addStreamHandlers(_ channel: Channel, kind: SIPTransportKind = .tcp, accepted: Bool = true) throws {
        let sync = channel.pipeline.syncOperations
        if kind == .tls {
            guard let tls else { throw TransportError.noTLS }
            if accepted {
                guard let server = tls.server else { throw TransportError.noTLS }
                try sync.addHandler(NIOSSLServerHandler(context: server))
            } else {
                try sync.addHandler(try NIOSSLClientHandler(context: tls.client, serverHostname: nil))
            }
        }
        try sync.addHandler(IdleStateHandler(allTimeout: connectionLimits.idleTimeout))
        try sync.addHandler(StreamHandler(transport: self, limits: limits, kind: kind))
    }

    static let statusLinePrefix: [UInt8] = Array("SIP/".utf8)

    /// Whether to take a message of `bytes` from `remote` (the per-source rate); counts what
    /// it received toward what may be sent back.
    func admit(_ remote: SocketAddress, isRequest: Bool, bytes: Int) -> Bool {
        guard sourceGuard != nil, let key = SourceKey(remote) else { return true }
        let blockedBefore = sourceGuard?.counters.blocked ?? 0
        let ok = sourceGuard?.admit(key, isRequest: isRequest, bytes: bytes, now: clockMs()) ?? true
        if let g = sourceGuard, g.counters.blocked > blockedBefore {
            logger.notice("\(remote.ipAddress ?? "?") sent more than \(g.settings.requestsPerSecond) requests a second: its requests are dropped for \(g.settings.blockMs / 1000) s")
        }
        return ok
    }

    /// The gate of a TCP listener: the connection limits, counted here.
    func makeGate() -> ConnectionGate {
        ConnectionGate(limits: { [unowned self] in connectionLimits }) { [unowned self] why in connectionCounters.count(why) }
    }

    func connectionActive(_ channel: Channel, kind: SIPTransportKind) {
        if let remote = channel.remoteAddress { connections[ConnectionKey(address: remote, kind: kind)] = channel }
    }

    func connectionInactive(_ channel: Channel, kind: SIPTransportKind) {
        if let remote = channel.remoteAddress, connections[ConnectionKey(address: remote, kind: kind)] === channel {
            connections[ConnectionKey(address: remote, kind: kind)] = nil
        }
    }

    func streamError(_ error: Error, on channel: Channel) {
        counters.streamErrors += 1
        logger.warning("closing TCP connection from \(channel.remoteAddress.map(hostPort) ?? "?"): \(error)")
        channel.close(promise: nil)
    }

    /// A datagram or a framed stream message.
    func received(_ bytes: [UInt8], from source: SIPSource, framing: SIPFraming) {
        do {
            let message = try SIPParser.parse(bytes, framing: framing, limits: limits)
            route(message, from: source, bytes: bytes.count)
        } catch {
            refuse(bytes, error: error, from: source)
        }
    }

    func deliver(_ message: SIPMessage, from source: SIPSource) {
        var message = message
        if message.isRequest { Self.stampReceived(&message, from: source.remote) }
        onMessage?(message, source)
    }

    /// A message that failed parsing: requests get the answer the error calls for (400, 505...)
    /// when one can be built, statelessly; responses and hopeless requests are dropped (counted).
    func refuse(_ bytes: [UInt8], error: SIPParseError, from source: SIPSource) {
        guard let loose = try? SIPParser.parse(bytes, framing: .datagram, limits: limits, validate: false), loose.isRequest else {
            counters.malformedResponses += (bytes.starts(with: Array("SIP/".utf8)) ? 1 : 0)
            counters.malformedRequests += (bytes.starts(with: Array("SIP/".utf8)) ? 0 : 1)
            logger.info("dropped malformed message from \(hostPort(source.remote)): \(error)")
            logger.debug("malformed bytes: \(String(decoding: bytes.prefix(2000), as: UTF8.self).debugDescription)")
            return
        }
        counters.malformedRequests += 1
        guard case .respond(let code) = error.disposition, loose.method != .ack,
              loose.headers.value(.via) != nil, loose.headers.value(.callID) != nil else {
            logger.info("dropped malformed request from \(hostPort(source.remote)): \(error)")
            return
        }
        var request = loose
        Self.stampReceived(&request, from: source.remote)
        let response = Self.makeResponse(to: request, code: code, reason: error.reasonPhrase)
        counters.badRequestsAnswered += 1
        logger.info("answered \(code) to malformed request from \(hostPort(source.remote)): \(error)")
        sendResponse(response, toRequestFrom: source)
    }

    /// Sends a response where RFC 3261 section 18.2.2 and RFC 3581 say: on the request's
    /// connection for TCP, else to maddr, else to `received`/`rport`, else to the sent-by.
    @discardableResult
    public func sendResponse(_ response: SIPMessage, toRequestFrom source: SIPSource?) -> EventLoopFuture<Void> {
        guard let destination = Self.responseDestination(response, source: source) else {
            return loop.makeFailedFuture(TransportError.noRoute)
        }
        return send(response, to: destination)
    }

    /// 18.2.2: where a response goes, from its top Via (and the request's connection).
    public static func responseDestination(_ response: SIPMessage, source: SIPSource?) -> SIPDestination? {
        guard let via = try? response.topVia() else { return nil }
        let kind = SIPTransportKind(token: via.transport) ?? source?.transport ?? .udp
        if kind.isStream, let source, let c = source.connection, c.isActive {
            return SIPDestination(transport: kind, address: source.remote, connection: c)
        }
        let host: String
        var port: Int
        if let maddr = via.maddr {
            host = maddr
            port = via.port ?? kind.defaultPort
        } else if let received = via.received {
            host = received
            if case .some(.some(let rport)) = via.rport { port = rport } else { port = via.port ?? kind.defaultPort }
        } else {
            host = via.host.address
            port = via.port ?? kind.defaultPort
        }
        if case .some(.some(let rport)) = via.rport, via.maddr == nil { port = rport }
        guard let address = HostResolver.shared.address(host: host, port: port) else {
            if let source { return SIPDestination(transport: kind, address: source.remote) }
            return nil
        }
        return SIPDestination(transport: kind, address: address)
    }

    /// 18.2.1 and RFC 3581 section 4: `received` when the sent-by host is not the source address,
    /// and `rport` filled in (with `received`) when the client asked for it.
    public static func stampReceived(_ request: inout SIPMessage, from remote: SocketAddress) {
        guard let ip = remote.ipAddress, let port = remote.port, var via = try? request.topVia() else { return }
        let wantsRport = via.rport != nil
        var changed = false
        if wantsRport || !sameIP(via.host.address, ip) {
            via.parameters.set("received", ip)
            changed = true
        }
        if wantsRport {
            via.parameters.set("rport", String(port))
            changed = true
        }
        guard changed else { return }
        request.replaceTopVia(via)
    }

    /// The headers after the Vias that a response copies from its request, in order (8.2.6.2).
    private static let copiedIntoResponses: [KnownHeader] = [.from, .to, .callID, .cseq]

    /// A response built from a request per RFC 3261 section 8.2.6 (Via, From, To, Call-ID, CSeq
    /// copied; a To tag added for a final response when the request had none).
    public static func makeResponse(to request: SIPMessage, code: Int, reason: String? = nil, toTag: String? = nil) -> SIPMessage {
        var headers = SIPHeaders()
        headers.reserveCapacity(request.headers.count(where: { $0.known == .via }) + 6)
        for h in request.headers where h.known == .via { headers.append(h) }
        for k in Self.copiedIntoResponses {
            guard let i = request.headers.firstIndex(k) else { continue }
            var h = request.headers[i]
            if k == .to, code > 100, let toTag, (try? request.to())??.tag == nil {
                var v = h.value
                v.reserveCapacity(v.utf8.count + 5 + toTag.utf8.count)
                v += ";tag="
                v += toTag
                h.value = v
            }
            headers.append(h)
        }
        headers.append(HeaderName(.contentLength), "0")
        return .response(code, reason, headers: headers)
    }
}

public enum TransportError: Error, Sendable, CustomStringConvertible {
    case noListener(SIPTransportKind)
    case noRoute
    case noTLS
    /// Another socket holds the address (several loops share a port only among themselves).
    case addressInUse(String)
    public var description: String {
        switch self {
        case .noListener(let k): "no \(k) listener for that address family"
        case .noRoute: "no route for the response (no usable Via)"
        case .noTLS: "TLS is not configured (tls.certificate and tls.key for a listener)"
        case .addressInUse(let a): "\(a) is in use by another socket"
        }
    }
}

func sameFamily(_ a: SocketAddress, _ b: SocketAddress) -> Bool {
    switch (a, b) {
    case (.v4, .v4), (.v6, .v6): true
    default: false
    }
}

func sameIP(_ a: String, _ b: String) -> Bool {
    if a == b { return true }
    guard let x = try? SocketAddress(ipAddress: a, port: 0), let y = try? SocketAddress(ipAddress: b, port: 0) else {
        return a.lowercased() == b.lowercased()
    }
    return x.ipAddress == y.ipAddress
}
