import ParleySIP

/// The `uri` handoff when the distributor and the buffer server run in one process: the INVITE
/// the distributor would send to the buffer server's listener (Request-URI the buffer server's
/// with the agent id appended) is handed to the buffer server on its event loop instead, and
/// what the buffer server answers comes back to the distributor on the distributor's loop. No
/// serializing, no socket, no parsing, no transaction on either side for the hop between them;
/// the caller and the agent see exactly what they see when the hop is UDP.
///
/// Each side is confined to its own loop; this object only hops between them (tasks a loop runs
/// in the order they were submitted, so messages of a handoff keep their order).
public final class InProcessHandoff: HandoffLink, HandoffReplyPath, @unchecked Sendable {
    private weak var distributor: Distributor?
    private weak var buffer: BufferServer?

    public init(distributor: Distributor, buffer: BufferServer) {
        self.distributor = distributor
        self.buffer = buffer
    }

    // Distributor side (on the distributor's loop).

    public func via(branch: String) -> String { Distributor.handoffVia(distributor, branch: branch) }

    public func send(_ message: SIPMessage, failed: @escaping () -> Void) {
        guard let buffer else { return failed() }
        buffer.stack.loop.execute { [self] in
            buffer.handoffReceived(message, path: self, encoding: .uri)
        }
    }

    // Buffer server side (on the buffer server's loop).

    public func send(_ message: SIPMessage) {
        guard let distributor else { return }
        distributor.stack.loop.execute {
            distributor.linkReceived(message)
        }
    }
}
