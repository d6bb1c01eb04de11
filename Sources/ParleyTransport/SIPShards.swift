import Glibc
import NIOCore
import NIOPosix
import ParleySIP

/// Which of several event loops a call belongs to: the one its Call-ID hashes to. Every message
/// of a call (its transactions, CANCEL, ACK, in-dialog requests, their responses) carries the
/// same Call-ID, so a call's state is only ever touched on one loop.
public enum CallAffinity {
    /// FNV-1a over the Call-ID's bytes, as received (its header value, without surrounding
    /// white space; RFC 3261 compares Call-IDs byte for byte).
    public static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var a = 0, b = bytes.count
        while a < b, bytes[a] == 0x20 || bytes[a] == 0x09 { a += 1 }
        while b > a, bytes[b - 1] == 0x20 || bytes[b - 1] == 0x09 { b -= 1 }
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for i in a..<b {
            h ^= UInt64(bytes[i])
            h = h &* 0x0000_0100_0000_01b3
        }
        // FNV's low bits mix poorly for short inputs; fold the high half in.
        return h ^ (h >> 29)
    }

    /// The shard, of `count`, a Call-ID belongs to.
    public static func shard(ofCallID callID: String, count: Int) -> Int {
        guard count > 1 else { return 0 }
        var s = callID
        return s.withUTF8 { Int(hash($0) % UInt64(count)) }
    }

    /// The shard, of `count`, a message belongs to (0 for a message with no Call-ID; a
    /// validated message always has one).
    public static func shard(of message: SIPMessage, count: Int) -> Int {
        guard count > 1, let i = message.headers.firstIndex(.callID) else { return 0 }
        return message.headers[i].withValueBytes { Int(hash($0) % UInt64(count)) }
    }

    /// A Call-ID made from `base` that lands on `shard` (a back-to-back user agent's own legs:
    /// their responses and requests then come back to the loop that holds the call): `base`
    /// itself when it lands there, else `base` with the first `.N` suffix that does.
    public static func callID(_ base: String, landingOn shard: Int, count: Int) -> String {
        guard count > 1 else { return base }
        if Self.shard(ofCallID: base, count: count) == shard { return base }
        var n = 1
        while true {
            let candidate = base + "." + String(n)
            if Self.shard(ofCallID: candidate, count: count) == shard { return candidate }
            n += 1
        }
    }
}

/// Several transports, each on its own event loop, listening on the same addresses: one socket
/// per loop, bound with SO_REUSEPORT, so the kernel spreads datagrams (by the sender's address
/// and port) and connections over them. What a transport receives for a call another loop owns
/// (`CallAffinity`) it parses and hands to that loop, in one task per loop and read; each loop
/// sends from its own socket, with the same local address and port.
///
/// The per-source protections stay per loop: a source's requests are rated by the loop that
/// reads them (a sender spreading itself over many ports can reach each loop's rate), and the
/// bytes a message brings are credited on the loop that answers it, so the amplification bound
/// holds whichever loop sends the response.
public final class SIPShards: @unchecked Sendable {
    public let transports: [SIPTransport]

    /// Joins the transports (made on distinct loops, not yet listening) as shards of one another.
    public init(_ transports: [SIPTransport]) {
        precondition(!transports.isEmpty, "at least one transport")
        self.transports = transports
        for (i, t) in transports.enumerated() {
            t.shards = self
            t.shardIndex = i
            t.shardCount = transports.count
            t.pendingHandoffs = Array(repeating: [], count: transports.count)
        }
    }

    public var count: Int { transports.count }

    /// Binds `kind` on `address` on every shard: the first on the address given (after making
    /// sure nothing else holds it: SO_REUSEPORT would otherwise share it with another process
    /// of the same user), the others on the address the first got (port 0 picks one port for
    /// all). Callable from any thread.
    public func listen(_ kind: SIPTransportKind, on address: SocketAddress) -> EventLoopFuture<[SIPTransport.Listener]> {
        let first = transports[0]
        if count == 1 { return first.loop.flatSubmit { first.listen(kind, on: address) }.map { [$0] } }
        if address.port != 0, let problem = Self.heldByOthers(kind, address) {
            return first.loop.makeFailedFuture(problem)
        }
        let rest = Array(transports.dropFirst())
        return first.loop.flatSubmit { first.listen(kind, on: address, reusePort: true) }.flatMap { l0 in
            let futures = rest.map { t in t.loop.flatSubmit { t.listen(kind, on: l0.local, reusePort: true) } }
            return EventLoopFuture.whenAllSucceed(futures, on: first.loop).map { [l0] + $0 }
        }
    }

    /// Closes every shard's listeners and connections.
    public func close() -> EventLoopFuture<Void> {
        let futures = transports.map { t in t.loop.flatSubmit { t.close() } }
        return EventLoopFuture.andAllComplete(futures, on: transports[0].loop)
    }

    /// Whether `address` is bound already (by a socket with or without SO_REUSEPORT): a plain
    /// bind of the same kind is tried and let go.
    static func heldByOthers(_ kind: SIPTransportKind, _ address: SocketAddress) -> Error? {
        let type = kind == .udp ? Int32(SOCK_DGRAM.rawValue) : Int32(SOCK_STREAM.rawValue)
        let fd = socket(Int32(address.protocol.rawValue), type, 0)
        guard fd >= 0 else { return nil }
        defer { _ = Glibc.close(fd) }
        if kind != .udp {
            var one: Int32 = 1
            _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        let r = address.withSockAddr { sa, len in bind(fd, sa, socklen_t(len)) }
        guard r != 0 else { return nil }
        return TransportError.addressInUse("\(kind) \(hostPort(address))")
    }
}

/// One message a transport hands to the loop that owns its call.
struct Handoff {
    var message: SIPMessage
    var source: SIPSource
    /// Bytes it came in (credited toward what its source may be sent).
    var bytes: Int
}

extension SIPTransport {
    static let soReusePort = NIOBSDSocket.Option(rawValue: SO_REUSEPORT)

    /// Delivers here, or queues for the owning shard (sent at the end of the read).
    func route(_ message: SIPMessage, from source: SIPSource, bytes: Int) {
        if shardCount > 1 {
            let owner = CallAffinity.shard(of: message, count: shardCount)
            if owner != shardIndex {
                pendingHandoffs[owner].append(Handoff(message: message, source: source, bytes: bytes))
                handoffsQueued += 1
                counters.handedOff += 1
                return
            }
        }
        deliver(message, from: source)
    }

    /// Sends what this read queued for other shards: one task per shard.
    func sendHandoffs() {
        guard handoffsQueued > 0, let shards else { return }
        handoffsQueued = 0
        for i in pendingHandoffs.indices where !pendingHandoffs[i].isEmpty {
            let batch = pendingHandoffs[i]
            pendingHandoffs[i].removeAll(keepingCapacity: true)
            let target = shards.transports[i]
            target.loop.execute { target.takeHandoffs(batch) }
        }
    }

    /// Messages another shard read for calls this one owns.
    private func takeHandoffs(_ batch: [Handoff]) {
        for h in batch {
            if h.bytes > 0, h.source.transport == .udp, let key = SourceKey(h.source.remote) {
                sourceGuard?.credit(key, bytes: h.bytes, now: clockMs())
            }
            counters.handedIn += 1
            deliver(h.message, from: h.source)
        }
    }
}

extension Handoff: @unchecked Sendable {}
