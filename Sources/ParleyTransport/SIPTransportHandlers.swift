import NIOCore
import NIOPosix
import ParleySIP

/// Reads datagrams: one message each.
final class UDPHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let transport: SIPTransport

    init(transport: SIPTransport) { self.transport = transport }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var envelope = unwrapInboundIn(data)
        let bytes = envelope.data.readBytes(length: envelope.data.readableBytes) ?? []
        // RFC 5626 keep-alives (CRLF) carry no message.
        if bytes.allSatisfy({ $0 == 13 || $0 == 10 }) { return }
        guard transport.admit(envelope.remoteAddress, isRequest: !bytes.starts(with: SIPTransport.statusLinePrefix), bytes: bytes.count) else { return }
        let source = SIPSource(transport: .udp, remote: envelope.remoteAddress, local: context.channel.localAddress)
        transport.received(bytes, from: source, framing: .datagram)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        transport.sendHandoffs()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // ICMP port unreachable and the like surface here on UDP; the transaction timers cover it.
        transport.logger.debug("UDP error: \(error)")
    }
}

/// Frames a TCP byte stream into messages.
///
/// A message must arrive whole within `messageTimeout` of its first byte (a new connection's
/// first message, of the connect), whatever trickles in meanwhile; the bytes a partial message
/// holds are charged to the process's `partialBudget`, and a read that would overspend it closes
/// the connection.
final class StreamHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let transport: SIPTransport
    var framer: SIPStreamFramer
    /// TCP or TLS: what `SIPSource` says.
    let kind: SIPTransportKind
    /// Bytes charged to the budget now (what the framer holds).
    private var charged = 0
    private var deadline: Scheduled<Void>?
    /// Whether a message has arrived on this connection yet.
    private var spoken = false

    init(transport: SIPTransport, limits: SIPParserLimits, kind: SIPTransportKind = .tcp) {
        self.transport = transport
        self.framer = SIPStreamFramer(limits: limits, validate: true)
        self.kind = kind
    }

    func channelActive(context: ChannelHandlerContext) {
        transport.connectionActive(context.channel, kind: kind)
        armDeadline(context)  // the first message's, from the connect
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        transport.connectionInactive(context.channel, kind: kind)
        release()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        release()
    }

    private func release() {
        deadline?.cancel()
        deadline = nil
        transport.partialBudget.give(charged)
        charged = 0
    }

    private func armDeadline(_ context: ChannelHandlerContext) {
        guard deadline == nil else { return }
        let channel = context.channel
        let transport = self.transport
        deadline = context.eventLoop.assumeIsolated().scheduleTask(in: transport.connectionLimits.messageTimeout) { [weak self] in
            self?.deadline = nil
            transport.connectionCounters.messageTimeouts += 1
            transport.logger.debug("closing TCP connection from \(channel.remoteAddress.map(hostPort) ?? "?"): no whole message within \(transport.connectionLimits.messageTimeout)")
            channel.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        guard transport.partialBudget.take(buffer.readableBytes) else {
            transport.connectionCounters.overBudget += 1
            transport.logger.debug("closing TCP connection from \(context.channel.remoteAddress.map(hostPort) ?? "?"): the partial-message budget is spent")
            context.close(promise: nil)
            return
        }
        charged += buffer.readableBytes
        buffer.withUnsafeReadableBytes { framer.append($0) }
        guard let remote = context.channel.remoteAddress else { return }
        let source = SIPSource(transport: kind, remote: remote, local: context.channel.localAddress, connection: context.channel)
        do {
            loop: while true {
                switch try framer.next() {
                case .message(let m):
                    messageDone(context)
                    // TCP: the rate applies; the connection itself proves the address.
                    guard transport.admit(remote, isRequest: m.isRequest, bytes: 0) else { continue }
                    transport.route(m, from: source, bytes: 0)
                case .invalid(let error, let bytes):
                    messageDone(context)
                    transport.refuse(bytes, error: error, from: source)
                case .needMoreData:
                    break loop
                }
            }
        } catch {
            transport.sendHandoffs()
            transport.streamError(error, on: context.channel)
            return
        }
        transport.sendHandoffs()
        // What is left is a message begun (its deadline runs), or nothing (keep-alive CRLFs).
        let held = framer.bufferedByteCount
        if held < charged {
            transport.partialBudget.give(charged - held)
            charged = held
        }
        if held > 0 { armDeadline(context) } else if spoken { deadline?.cancel(); deadline = nil }
    }

    /// A whole message came: the next one's deadline starts with its own first byte.
    private func messageDone(_ context: ChannelHandlerContext) {
        spoken = true
        deadline?.cancel()
        deadline = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        transport.logger.debug("TCP error from \(context.channel.remoteAddress.map(hostPort) ?? "?"): \(error)")
        context.close(promise: nil)
    }
}
