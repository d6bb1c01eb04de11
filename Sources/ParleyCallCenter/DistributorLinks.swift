import Logging
import NIOCore
import ParleyRecords
import ParleyRules
import ParleyDialog
import ParleySIP
import ParleyTransaction
import ParleyTransport

extension Distributor {
    // MARK: The message link

    /// A link that carries handoffs in SIP MESSAGEs (RFC 3428, `message/sip`) over this stack.
    public func makeMessageLink() -> HandoffLink { MessageLink(distributor: self) }

    /// The Via a link's handoff carries: ours toward the buffer server (a distributor gone: one
    /// that names no host).
    static func handoffVia(_ d: Distributor?, branch: String) -> String {
        guard let d else { return "SIP/2.0/UDP invalid;branch=\(branch)" }
        return d.stack.makeVia(for: d.configuration.bufferDestination, branch: branch)
    }

    func sendThroughMessage(_ inner: SIPMessage, failed: @escaping () -> Void) {
        let dest = configuration.bufferDestination
        let agent = HandoffWire.agentID(in: inner.requestURI) ?? ""
        let local = stack.transport.advertisedAddress(for: dest.transport, toward: dest.address)
        let me = local.map { "sip:distributor@\(hostPort($0))" } ?? "sip:distributor@invalid"
        linkCSeq += 1
        let callID = "h-" + (((try? inner.topVia()) ?? nil)?.branch ?? stack.newTag()) + "@parley"
        var m = HandoffWire.wrap(inner, requestURI: HandoffWire.target(buffer: configuration.bufferURI, agent: agent),
                                 from: "<\(me)>;tag=\(stack.newTag())", to: "<\(configuration.bufferURI)>", callID: callID,
                                 cseq: linkCSeq, contact: local.map { Resolver.contact(for: $0, transport: dest.transport) })
        auth.sign(&m, nowMs: clock())
        guard let key = stack.sendRequest(m, to: dest) else { return failed() }
        messageFailures[key] = failed
    }

    /// `X-Parley-Auth` for the tunnel's upgrade request (nil without a secret).
    func tunnelToken() -> String? {
        stack.loop.preconditionInEventLoop()
        return auth.tunnelToken(nowMs: clock())
    }

    func messageLinkResult(_ key: TransactionKey, failed: Bool) {
        guard let f = messageFailures.removeValue(forKey: key) else { return }
        if failed { f() }
    }
}

/// `message` encoding, distributor side.
final class MessageLink: HandoffLink {
    weak var distributor: Distributor?
    init(distributor: Distributor) { self.distributor = distributor }

    func via(branch: String) -> String { Distributor.handoffVia(distributor, branch: branch) }

    func send(_ message: SIPMessage, failed: @escaping () -> Void) {
        distributor?.sendThroughMessage(message, failed: failed)
    }
}
