import Logging
import ParleyDialog
import ParleySIP
import ParleyTransaction
import ParleyTransport

/// A blind transfer an agent asked for (REFER, RFC 3515), while the distributor finds its target.
final class Transfer {
    /// The agent who asked.
    let agent: String
    /// What Refer-To named: an agent's id or a queue.
    let target: String
    /// The REFER's CSeq number: the `id` of the implicit subscription's NOTIFYs (RFC 3515 2.4.6).
    /// (Whether the agent hung up after asking is the call life's: `byeSent[.agent]`.)
    let referCSeq: UInt32

    init(agent: String, target: String, referCSeq: UInt32) {
        self.agent = agent
        self.target = target
        self.referCSeq = referCSeq
    }
}

/// Transfers: the buffer server takes an agent's REFER itself (202, then NOTIFYs with the
/// progress as message/sipfrag) and asks the distributor, which owns agent state, to find the
/// target. The distributor moves the caller as it moves one off a treatment: the buffer server
/// calls the target with the caller's session, and once it answers re-INVITEs the caller with
/// Parley's own session (a new version), tells the first agent it worked and hangs its leg up.
/// If no one answers, the caller stays with the first agent, which is told so.
extension BufferServer {
    /// What the leg toward an agent allows (REFER and NOTIFY for transfers); the caller's leg
    /// allows the rest (Parley takes no transfer from a caller).
    static let agentAllow = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY"
    static let callerAllow = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE"

    /// An agent's REFER on an answered call.
    func referred(_ refer: SIPMessage, key: TransactionKey, call: B2BCall) {
        guard call.callerAcked, !call.over, call.treatment == nil else {
            stack.respond(403, "Forbidden: only an answered call with an agent can be transferred", to: key)
            return
        }
        guard call.move == nil, call.transfer == nil else {
            stack.respond(491, "Request Pending: the call is being moved already", to: key)
            return
        }
        guard configuration.eventTarget != nil else {
            stack.respond(501, "Not Implemented: no distributor to find the target", to: key)
            return
        }
        let values = refer.headers.values(HeaderName(.referTo))
        guard values.count == 1, let to = try? NameAddress.parse(values[0]) else {
            stack.respond(400, "Bad Request: one Refer-To is required", to: key)
            return
        }
        guard case .sip(let uri) = to.uri else {
            stack.respond(416, "Unsupported URI Scheme", to: key)
            return
        }
        guard uri.headers.isEmpty else {
            // Refer-To with Replaces (attended transfer) or other headers: not carried.
            stack.respond(501, "Not Implemented: attended transfer (Refer-To with headers)", to: key)
            return
        }
        guard let target = uri.decodedUser, Self.isTargetName(target) else {
            stack.respond(400, "Bad Request: Refer-To names no agent or queue", to: key)
            return
        }
        let cseq = ((try? refer.cseq()) ?? nil)?.sequence ?? 0
        stack.respond(202, "Accepted", to: key, extraHeaders: [("Contact", call.agentContact)])
        let transfer = Transfer(agent: call.agentID, target: target, referCSeq: cseq)
        call.transfer = transfer
        onTreatment[call.reference] = call  // the distributor may now move the caller
        counters.transfersAsked += 1
        notifyTransfer(call, status: 100, reason: "Trying", final: false)
        logger.debug("call \(call.id) (\(call.reference)): \(call.agentID) transfers it to \(target)")
        sendEvent(.transfer(call: call.reference, agent: call.agentID, target: target, caller: call.caller.remote))
    }

    /// The distributor found no one: the caller stays with the first agent (told with a final
    /// NOTIFY), or, if that agent hung up meanwhile, the call ends. False: no such transfer.
    func transferFailed(_ reference: String, code: Int) -> Bool {
        guard let call = onTreatment[reference], let transfer = call.transfer, !call.over else { return false }
        counters.transfersFailed += 1
        onTreatment[reference] = nil
        notifyTransfer(call, status: code, reason: Self.reason(code), final: true)
        call.transfer = nil
        if call.byeSent[.agent] {  // the agent hung up after asking: nobody to go back to
            endCall(call, reason: "the transfer to \(transfer.target) failed after \(transfer.agent) hung up")
        } else {
            logger.debug("call \(call.id): the transfer to \(transfer.target) failed (\(code)); the caller stays with \(transfer.agent)")
        }
        return true
    }

    /// A NOTIFY of the transfer's progress to the agent who asked (RFC 3515 2.4.5): the status
    /// line of the target's response as message/sipfrag; the last one ends the subscription.
    func notifyTransfer(_ call: B2BCall, status: Int, reason: String, final: Bool) {
        guard let transfer = call.transfer, !call.byeSent[.agent] else { return }
        var leg = call.agent
        var notify = leg.makeRequest(.notify, contact: call.agentContact, payload: nil)
        call.agent = leg
        notify.headers.append(HeaderName(.event), "refer;id=\(transfer.referCSeq)")
        notify.headers.append(HeaderName("Subscription-State"), final ? "terminated;reason=noresource" : "active;expires=60")
        notify.headers.append(HeaderName(.contentType), "message/sipfrag;version=2.0")
        notify.body = Array("SIP/2.0 \(status) \(reason)\r\n".utf8)
        notify.updateContentLength()
        if let hop = call.hop(.agent), let key = stack.sendRequest(notify, to: hop) { clientTransactions[key] = .event }
    }

    /// A Refer-To user part that can name an agent or a queue: 1 to 64 of letters, digits,
    /// `.`, `_`, `-`, `+`.
    static func isTargetName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 64 && s.unicodeScalars.allSatisfy {
            ($0.value < 128 && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || "._-+".unicodeScalars.contains($0)
        }
    }

    static func reason(_ code: Int) -> String {
        switch code {
        case 404: "Not Found"
        case 403: "Forbidden"
        case 408: "Request Timeout"
        case 480: "Temporarily Unavailable"
        case 481: "Call/Transaction Does Not Exist"
        case 486: "Busy Here"
        case 487: "Request Terminated"
        default: code < 500 ? "Request Failed" : "Server Error"
        }
    }
}
