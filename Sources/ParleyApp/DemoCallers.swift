import Logging
import NIOCore
import ParleyCallCenter
import ParleySIP
import ParleyDialog
import ParleyTransaction
import ParleyTransport

/// The demo's callers: SIP user agent clients on one SwiftNIO UDP socket, placing calls to the
/// distributor as a Poisson process at a given rate. A caller waits (182 Queued, 180 Ringing)
/// until answered or until its patience runs out, then hangs up (CANCEL); an answered caller
/// stays on the line until the agent hangs up. Confined to the stack's loop.
public final class DemoCallers: SIPTransactionUser, @unchecked Sendable {
    /// What the callers saw.
    public struct Figures: Sendable, Equatable {
        /// INVITEs sent.
        public var offered = 0
        /// Calls that got a 2xx.
        public var answered = 0
        /// Calls the caller gave up on while waiting (CANCEL, then 487).
        public var abandoned = 0
        /// Calls that ended with another final response (480 after queue_timeout, 486...) or no answer at all.
        public var failed = 0
        /// Calls still waiting when the demo stopped, hung up by the demo (CANCEL).
        public var cutOff = 0
        /// Answered calls that are over (BYE either way).
        public var completed = 0
        /// 182 Queued received (calls that waited in a queue).
        public var queued = 0
        /// Final failure codes and how often each came.
        public var failureCodes: [Int: Int] = [:]
        /// Calls with no final response yet.
        public var waiting = 0
        /// Answered calls still up.
        public var talking = 0
    }

    enum Phase { case trying, queued, ringing, talking, over }

    final class Call {
        let number: Int
        var invite: SIPMessage
        var key: TransactionKey?
        var phase = Phase.trying
        var leg: DialogLeg?
        var ack: SIPMessage?
        var hungUp = false
        var cutOff = false
        var patience: TimerToken?
        init(number: Int, invite: SIPMessage) {
            self.number = number
            self.invite = invite
        }
    }

    public let stack: SIPStack
    public let host: String
    public let port: Int
    private let distributor: SIPDestination
    private let distributorHost: String
    private var behaviour: DemoBehaviour
    private var random: DemoRandom
    private var calls: [TransactionKey: Call] = [:]
    private var dialogs: [String: Call] = [:]
    private var open: [Int: Call] = [:]
    private var generator: TimerToken?
    private var placed = 0
    private var counts = Figures()

    public init(stack: SIPStack, host: String, port: Int, distributor: SIPDestination, behaviour: DemoBehaviour, seed: UInt64) {
        self.stack = stack
        self.host = host
        self.port = port
        self.distributor = distributor
        self.distributorHost = hostPort(distributor.address)
        self.behaviour = behaviour
        self.random = DemoRandom(seed: seed)
        stack.user = self
    }

    /// Calls not over yet (waiting or talking), and BYEs in flight are not counted.
    public var openCalls: Int { open.count }

    /// Starts placing calls at `rate` per second (Poisson arrivals) until `stopCalling()` or
    /// `limit` calls.
    public func startCalling(rate: Double, limit: Int) {
        guard rate > 0, limit > 0 else { return }
        scheduleNext(rate: rate, limit: limit)
    }

    public func stopCalling() {
        generator?.cancel()
        generator = nil
    }

    /// Hangs up every call still waiting (CANCEL; counted as cut off) and every call still up (BYE).
    public func hangUpAll() {
        stopCalling()
        for call in open.values {
            switch call.phase {
            case .trying, .queued, .ringing:
                call.cutOff = true
                giveUp(call)
            case .talking:
                sendBye(call)
            case .over:
                break
            }
        }
    }

    private func scheduleNext(rate: Double, limit: Int) {
        generator = stack.schedule(after: random.interArrival(rate: rate)) { [weak self] in
            guard let self, self.generator != nil else { return }
            self.placeCall()
            if self.placed < limit { self.scheduleNext(rate: rate, limit: limit) }
        }
    }

    /// Places one call now.
    public func placeCall() {
        placed += 1
        let n = placed
        let type = behaviour.callTypes.randomElement(using: &random) ?? "sales"
        let number = "+1555" + String(format: "%07d", Int.random(in: 0...9_999_999, using: &random))
        var h = SIPHeaders()
        h.append(HeaderName(.maxForwards), "70")
        h.append(HeaderName(.from), "\"Caller \(n)\" <sip:\(number)@\(host)>;tag=c\(n)-\(stack.newTag())")
        h.append(HeaderName(.to), "<sip:\(type)@\(host)>")
        h.append(HeaderName(.callID), "demo-\(n)-\(stack.newTag())@\(host)")
        h.append(HeaderName(.cseq), "1 INVITE")
        h.append(HeaderName(.contact), "<sip:\(number)@\(host):\(port)>")
        h.append(HeaderName(.contentType), "application/sdp")
        var uri = SIPURI(host: .name(host))
        if let parsed = try? SIPURI.parse("sip:\(type)@\(distributorHost)") { uri = parsed }
        var invite = SIPMessage.request(.invite, .sip(uri), headers: h,
                                        body: Array(DemoAgentPhones.sdp(host: host, session: UInt32(n)).utf8))
        invite.updateContentLength()
        let call = Call(number: n, invite: invite)
        guard let key = stack.sendRequest(invite, to: distributor) else {
            counts.offered += 1
            fail(call, code: 503)
            return
        }
        call.key = key
        if let sent = stack.request(of: key) { call.invite = sent }
        calls[key] = call
        open[n] = call
        counts.offered += 1
        call.patience = stack.schedule(after: random.seconds(behaviour.patience)) { [weak self, weak call] in
            guard let self, let call, call.phase != .talking, call.phase != .over else { return }
            self.giveUp(call)
        }
    }

    private func giveUp(_ call: Call) {
        guard !call.hungUp, let key = call.key else { return }
        call.hungUp = true
        stack.cancel(key)
    }

    private func sendBye(_ call: Call) {
        guard var leg = call.leg, let hop = leg.nextHop() else { return }
        let bye = leg.makeRequest(.bye, contact: "<sip:caller@\(host):\(port)>", payload: nil)
        call.leg = leg
        stack.sendRequest(bye, to: hop)
        end(call, completed: true)
    }

    // MARK: SIPTransactionUser

    public func stack(_ stack: SIPStack, didReceiveResponse response: SIPMessage, transaction: TransactionKey) {
        guard let call = calls[transaction], let code = response.statusCode else { return }
        switch code {
        case 100: break
        case 182:
            if call.phase == .trying { counts.queued += 1 }
            if call.phase == .trying || call.phase == .ringing { call.phase = .queued }
        case 101...199:
            if call.phase == .trying || call.phase == .queued { call.phase = .ringing }
        case 200...299:
            answered(call, response)
        default:
            call.patience?.cancel()
            if call.phase == .over { return }
            if code == 487, call.hungUp {
                if call.cutOff { counts.cutOff += 1 } else { counts.abandoned += 1 }
                end(call, completed: false)
            } else {
                fail(call, code: code)
            }
        }
    }

    private func answered(_ call: Call, _ response: SIPMessage) {
        if let ack = call.ack, let leg = call.leg, let hop = leg.nextHop() {
            // A retransmitted 2xx: ACK it again (13.2.2.4).
            stack.sendStateless(ack, to: hop)
            return
        }
        guard call.phase != .over, let invite = (try? call.invite.cseq()) ?? nil,
              var to = (try? response.to()) ?? nil, var from = (try? call.invite.from()) ?? nil else { return }
        call.patience?.cancel()
        let remoteTag = to.tag
        to.parameters.remove("tag")
        let localTag = from.tag ?? ""
        from.parameters.remove("tag")
        let target = ((try? response.contacts()) ?? []).first?.address?.uri
        let routes = ((try? response.recordRoutes()) ?? []).reversed().map(\.description)
        var leg = DialogLeg(callID: call.invite.callID ?? "", localTag: localTag, remoteTag: remoteTag, local: from, remote: to,
                            localCSeq: invite.sequence, remoteCSeq: nil, remoteTarget: target, routeSet: routes, transport: .udp)
        guard let hop = leg.nextHop() else { return }
        var ack = leg.makeRequest(.ack, contact: "", payload: nil, cseq: invite.sequence)
        ack.headers.prepend(HeaderName(.via), stack.makeVia(for: hop, branch: stack.newBranch()))
        call.leg = leg
        call.ack = ack
        stack.sendStateless(ack, to: hop)
        counts.answered += 1
        call.phase = .talking
        dialogs[leg.callID + ";" + leg.localTag] = call
        // The caller had hung up and the 2xx crossed the CANCEL: the call is answered, then over.
        if call.hungUp { sendBye(call) }
    }

    public func stack(_ stack: SIPStack, didReceiveRequest request: SIPMessage, transaction: TransactionKey?, from source: SIPSource) {
        guard let transaction else { return }  // an ACK: callers send no 2xx to requests that need one
        guard let ids = request.dialogIDs, let toTag = ids.toTag, let call = dialogs[ids.callID + ";" + toTag] else {
            stack.respond(481, to: transaction)
            return
        }
        stack.respond(200, to: transaction)
        if request.method == .bye, call.phase == .talking {
            end(call, completed: true)
            }
    }

    public func stack(_ stack: SIPStack, didReceiveCancel cancel: SIPMessage, forInvite invite: TransactionKey) {}

    public func stack(_ stack: SIPStack, transaction: TransactionKey, didFail failure: TransactionFailure) {
        guard let call = calls[transaction], call.phase != .talking, call.phase != .over else { return }
        call.patience?.cancel()
        fail(call, code: 408)
    }

    public func stack(_ stack: SIPStack, didTerminate transaction: TransactionKey) {
        calls.removeValue(forKey: transaction)
    }

    private func fail(_ call: Call, code: Int) {
        counts.failed += 1
        counts.failureCodes[code, default: 0] += 1
        end(call, completed: false)
    }

    private func end(_ call: Call, completed: Bool) {
        if completed, call.phase == .talking { counts.completed += 1 }
        call.phase = .over
        call.patience?.cancel()
        open.removeValue(forKey: call.number)
        if let leg = call.leg { dialogs.removeValue(forKey: leg.callID + ";" + leg.localTag) }
    }

    /// The figures so far, with the calls waiting and talking now.
    public var figures: Figures {
        var f = counts
        for c in open.values {
            switch c.phase {
            case .trying, .queued, .ringing: f.waiting += 1
            case .talking: f.talking += 1
            case .over: break
            }
        }
        return f
    }
}
