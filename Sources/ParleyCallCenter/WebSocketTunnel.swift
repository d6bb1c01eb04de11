import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket
import ParleySIP
import ParleyTransport

// The `tunnel` encoding: SIP over WebSocket (RFC 7118) between distributor and buffer server.
//
// Why WebSocket: it is a standard tunnel for SIP (RFC 7118, subprotocol "sip", one SIP message
// per WebSocket message), it crosses HTTP-only paths and proxies between sites, and SwiftNIO
// ships it (NIOWebSocket, swift-nio 2.101), so no new dependency comes in. The distributor
// keeps one connection open to the buffer server and reconnects when it drops; each handoff's
// INVITE, CANCEL and ACK go one way and its responses the other, on that connection.
// The tunnel carries only the handoff hop: once answered, the caller's dialog with the buffer
// server is plain SIP over UDP/TCP, as with the other encodings.

/// The buffer server's end: accepts WebSocket connections (subprotocol `sip`) and hands what
/// arrives to the buffer server. Runs on the buffer server's event loop.
///
/// Only a distributor may open it: the connection must come from one of `peers`, and its
/// upgrade request must carry a valid `X-Parley-Auth` (a fresh HMAC with the handoff secret,
/// `HandoffAuthenticator.tunnelToken`); anything else is answered 403 and closed, before a
/// WebSocket exists. Every handoff INVITE and CANCEL on it is signed as well.
public final class TunnelServer: @unchecked Sendable {
    let buffer: BufferServer
    /// Addresses a tunnel may come from (the distributors').
    public let peers: [IPNetwork]
    private var channel: Channel?
    public private(set) var localAddress: SocketAddress?

    /// Connection limits (a tunnel comes from a few distributors: most strangers are turned
    /// away at accept, by address, before any byte is read).
    public let limits: ConnectionLimits
    /// Connections refused at accept.
    public private(set) var refused = ConnectionCounters()

    /// Secure WebSocket (WSS): TLS with this context before the HTTP upgrade (nil: plain WS).
    public let tls: NIOSSLContext?

    public init(buffer: BufferServer, peers: [IPNetwork], limits: ConnectionLimits = ConnectionLimits(), tls: NIOSSLContext? = nil) {
        self.buffer = buffer
        self.peers = peers
        self.limits = limits
        self.tls = tls
    }

    public func listen(on address: SocketAddress) -> EventLoopFuture<Void> {
        let loop = buffer.stack.loop
        let buffer = self.buffer
        let peers = self.peers
        let limits = self.limits
        let tls = self.tls
        return ServerBootstrap(group: loop)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { [self] channel in
                addAcceptBackoff(channel).flatMapThrowing {
                    let gate = ConnectionGate(limits: { [limits] in limits }, allowed: { peers.contains(address: $0) }) { [self] why in
                        refused.count(why)
                    }
                    try channel.pipeline.syncOperations.addHandler(gate)
                }
            }
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                let upgrader = NIOWebSocketServerUpgrader(
                    maxFrameSize: 1 << 20,
                    shouldUpgrade: { channel, head in
                        guard let remote = channel.remoteAddress, peers.contains(address: remote) else {
                            buffer.tunnelRefused("from \(channel.remoteAddress.map(hostPort) ?? "?"), not one of the tunnel peers")
                            return channel.eventLoop.makeSucceededFuture(nil)
                        }
                        guard buffer.tunnelHandshake(head.headers.first(name: HandoffAuthenticator.header.description)) else {
                            return channel.eventLoop.makeSucceededFuture(nil)
                        }
                        // RFC 7118 section 4: the client must offer "sip"; we answer with it.
                        let offered = head.headers[canonicalForm: "Sec-WebSocket-Protocol"].map { $0.lowercased() }
                        guard offered.contains("sip") else { return channel.eventLoop.makeSucceededFuture(nil) }
                        return channel.eventLoop.makeSucceededFuture(HTTPHeaders([("Sec-WebSocket-Protocol", "sip")]))
                    },
                    upgradePipelineHandler: { channel, _ in
                        channel.eventLoop.makeCompletedFuture {
                            // Upgraded: no deadline, and what comes now is WebSocket, not HTTP.
                            let sync = channel.pipeline.syncOperations
                            try sync.handler(type: HandshakeDeadline.self).cancel()
                            sync.removeHandler(try sync.handler(type: TunnelRefusalHandler.self), promise: nil)
                            try channel.pipeline.syncOperations.addHandler(TunnelFrameHandler(role: .server(buffer)))
                        }
                    })
                return channel.eventLoop.makeCompletedFuture {
                    // The upgrade must be done within the message timeout (the TLS handshake included).
                    try channel.pipeline.syncOperations.addHandler(HandshakeDeadline(timeout: limits.messageTimeout))
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                        withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
                    try channel.pipeline.syncOperations.addHandler(TunnelRefusalHandler())
                }
            }
            .bind(to: address)
            .map { [self] ch in
                channel = ch
                localAddress = ch.localAddress
                buffer.logger.info("tunnel (SIP over \(tls == nil ? "WebSocket" : "secure WebSocket, WSS")) listening on \(ch.localAddress.map(hostPort) ?? "?")")
            }
    }

    public func close() -> EventLoopFuture<Void> {
        channel?.close() ?? buffer.stack.loop.makeSucceededFuture(())
    }
}

/// The distributor's end: one WebSocket connection to the buffer server, opened at start and
/// again whenever it drops. Confined to the distributor's event loop.
public final class TunnelClient: HandoffLink, @unchecked Sendable {
    weak var distributor: Distributor?
    let loop: EventLoop
    let server: SocketAddress
    let host: String
    private var channel: Channel?
    private var connecting = false
    private var closed = false
    private var pending: [(SIPMessage, () -> Void)] = []
    private var retry: TimerToken?
    /// A random host for our Via (RFC 7118 section 5: a WebSocket client has no address to give).
    private let viaHost: String
    public private(set) var connections = 0

    /// Secure WebSocket (WSS): the buffer server's certificate is checked with this context.
    let tls: NIOSSLContext?

    public init(distributor: Distributor, server: SocketAddress, uri: SIPURI, tls: NIOSSLContext? = nil) {
        self.distributor = distributor
        self.loop = distributor.stack.loop
        self.server = server
        self.host = hostPort(server)
        self.viaHost = distributor.stack.newTag() + ".invalid"
        self.tls = tls
    }

    public func via(branch: String) -> String { "SIP/2.0/\(tls == nil ? "WS" : "WSS") \(viaHost);branch=\(branch)" }

    public func send(_ message: SIPMessage, failed: @escaping () -> Void) {
        loop.preconditionInEventLoop()
        if let channel, channel.isActive {
            write(message, on: channel, failed: failed)
        } else {
            pending.append((message, failed))
            connect()
        }
    }

    private func write(_ message: SIPMessage, on channel: Channel, failed: @escaping () -> Void) {
        let data = channel.allocator.buffer(bytes: message.serialized())
        let frame = WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: data)
        channel.writeAndFlush(frame).assumeIsolated().whenFailure { _ in failed() }
    }

    /// Opens the connection (if it is not open or opening).
    public func connect() {
        if !loop.inEventLoop {
            loop.execute { self.connect() }
            return
        }
        guard !closed, !connecting, channel?.isActive != true else { return }
        connecting = true
        let host = self.host
        let upgraded = loop.makePromise(of: Channel.self)
        let upgrader = NIOWebSocketClientUpgrader(maxFrameSize: 1 << 20) { [weak self] channel, _ in
            channel.eventLoop.makeCompletedFuture {
                guard let self else { return }
                try channel.pipeline.syncOperations.addHandler(TunnelFrameHandler(role: .client(self)))
                upgraded.succeed(channel)
            }
        }
        ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(3))
            .channelInitializer { [tls] channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: nil)) }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers(
                        withClientUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
                    try channel.pipeline.syncOperations.addHandler(UpgradeRequestHandler(host: host, token: self.distributor?.tunnelToken()))
                }
            }
            .connect(to: server)
            .whenComplete { [self] result in
                switch result {
                case .failure(let error):
                    upgraded.fail(error)
                case .success(let ch):
                    // The upgrade must finish soon; a server that refuses leaves us with HTTP.
                    loop.scheduleTask(in: .seconds(3)) { upgraded.fail(TunnelError.upgradeRefused) }
                    ch.closeFuture.whenComplete { _ in upgraded.fail(TunnelError.upgradeRefused) }
                }
            }
        upgraded.futureResult.whenComplete { [self] result in
            connecting = false
            switch result {
            case .success(let ch):
                channel = ch
                connections += 1
                distributor?.logger.info("tunnel to the buffer server at \(host) open (SIP over \(tls == nil ? "WebSocket" : "secure WebSocket, WSS"))")
                let queued = pending
                pending = []
                for (m, f) in queued { write(m, on: ch, failed: f) }
                ch.closeFuture.whenComplete { [weak self] _ in
                    guard let self else { return }
                    self.channel = nil
                    self.scheduleReconnect()
                }
            case .failure(let error):
                distributor?.logger.warning("tunnel to the buffer server at \(host): \(error)")
                let queued = pending
                pending = []
                for (_, f) in queued { f() }
                scheduleReconnect()
            }
        }
    }

    private func scheduleReconnect() {
        guard !closed, retry == nil, let d = distributor else { return }
        retry = d.stack.schedule(after: .seconds(1)) { [weak self] in
            self?.retry = nil
            self?.connect()
        }
    }

    func received(_ message: SIPMessage) { distributor?.linkReceived(message) }

    public func close() {
        loop.execute { [self] in
            closed = true
            retry?.cancel()
            channel?.close(promise: nil)
        }
    }
}

enum TunnelError: Error, CustomStringConvertible {
    case upgradeRefused
    var description: String { "the WebSocket upgrade (subprotocol sip) was refused or did not finish" }
}

/// Closes a connection whose WebSocket upgrade is not done within the timeout (a stranger that
/// connects and says nothing, or trickles its request).
final class HandshakeDeadline: ChannelInboundHandler {
    typealias InboundIn = NIOAny
    let timeout: TimeAmount
    private var task: Scheduled<Void>?

    init(timeout: TimeAmount) { self.timeout = timeout }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        task = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { channel.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) { cancel() }

    func channelInactive(context: ChannelHandlerContext) {
        cancel()
        context.fireChannelInactive()
    }

    func cancel() {
        task?.cancel()
        task = nil
    }
}

/// Answers an upgrade request that was refused (wrong peer, bad signature) with 403 and closes
/// the connection; a request that is no upgrade at all is refused the same way. Sits after the
/// HTTP server pipeline, so it sees only what the upgrader did not take.
final class TunnelRefusalHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head = unwrapInboundIn(data) else { return }
        refuse(context)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        refuse(context)
    }

    private func refuse(_ context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Length", value: "0")
        headers.add(name: "Connection", value: "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .forbidden, headers: headers))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }
}

/// Sends the HTTP upgrade request once connected (the upgrade handler adds the WebSocket headers).
final class UpgradeRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    typealias OutboundOut = HTTPClientRequestPart
    let host: String
    /// `X-Parley-Auth` for the buffer server (nil: none, and the buffer server refuses us).
    let token: String?
    init(host: String, token: String?) {
        self.host = host
        self.token = token
    }

    func channelActive(context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: host)
        if let token { headers.add(name: HandoffAuthenticator.header.description, value: token) }
        headers.add(name: "Content-Length", value: "0")
        headers.add(name: "Sec-WebSocket-Protocol", value: "sip")
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }

    // Reads pass through untouched: after the upgrade this handler sees WebSocket bytes, not
    // HTTP. A refused upgrade is caught by the upgrade handler and the connect timeout.
}

/// One SIP message per WebSocket message (RFC 7118 section 5), both ends.
final class TunnelFrameHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    enum Role {
        case server(BufferServer)
        case client(TunnelClient)
    }

    let role: Role
    private var fragments: ByteBuffer?

    init(role: Role) { self.role = role }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text, .binary:
            if frame.fin {
                deliver(frame.unmaskedData, context: context)
            } else {
                fragments = frame.unmaskedData
            }
        case .continuation:
            var data = frame.unmaskedData
            fragments?.writeBuffer(&data)
            if frame.fin, let whole = fragments {
                fragments = nil
                deliver(whole, context: context)
            }
        case .ping:
            let pong = WebSocketFrame(fin: true, opcode: .pong, maskKey: maskKey, data: frame.unmaskedData)
            context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
        case .connectionClose:
            let close = WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: maskKey, data: context.channel.allocator.buffer(capacity: 0))
            context.writeAndFlush(wrapOutboundOut(close), promise: nil)
            context.close(promise: nil)
        default:
            break
        }
    }

    private var maskKey: WebSocketMaskingKey? {
        if case .client = role { return .random() }
        return nil
    }

    private func deliver(_ buffer: ByteBuffer, context: ChannelHandlerContext) {
        let bytes = Array(buffer.readableBytesView)
        guard let message = try? SIPParser.parse(bytes, framing: .datagram) else { return }
        switch role {
        case .server(let buffer):
            buffer.handoffReceived(message, path: TunnelReplyPath(channel: context.channel), encoding: .tunnel)
        case .client(let client):
            client.received(message)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

/// The buffer server's replies on the connection the handoff came on.
final class TunnelReplyPath: HandoffReplyPath {
    let channel: Channel
    init(channel: Channel) { self.channel = channel }

    func send(_ message: SIPMessage) {
        let data = channel.allocator.buffer(bytes: message.serialized())
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .text, data: data), promise: nil)
    }
}
