import Logging
import NIOCore
import ParleySIP
import ParleyTransaction
import ParleyDialog
import ParleyTransport

/// One place to send a request: a new Request-URI, an explicit next hop, or both. With neither,
/// the request goes where its Route or Request-URI says (in-dialog requests).
public struct ProxyTarget: Sendable {
    public var uri: URI?
    public var destination: SIPDestination?
    /// Route values to put on top, in order (a registered contact's Path, RFC 3327).
    public var route: [String]

    public init(uri: URI? = nil, destination: SIPDestination? = nil, route: [String] = []) {
        self.uri = uri
        self.destination = destination
        self.route = route
    }
}

/// What the proxy core does besides routing.
public struct ProxyConfiguration: Sendable {
    /// Insert Record-Route (with `lr`) in initial requests so the dialog's requests come back.
    public var recordRoute = true
    /// How long an INVITE branch may go without a final response before the next target is
    /// tried (the branch is CANCELled if it had a provisional). RFC 3261 Timer C is the upper
    /// bound a proxy must use; this is usually shorter, per contact-center routing needs.
    public var branchTimeout: Duration = .seconds(32)
    /// Transport for next hops whose URI does not say.
    public var defaultTransport: SIPTransportKind = .udp
    /// Option tags the proxy understands (Proxy-Require, RFC 3261 16.3 step 5).
    public var supportedOptions: Set<String> = []

    public init() {}
}

/// The RFC 3261 section 16 stateful proxy core: request validation (16.3), route preprocessing
/// (16.4), forwarding with Max-Forwards, Record-Route and Via (16.6), response processing with
/// serial forking over the targets a router supplies (16.7), CANCEL (16.10), and stateless
/// forwarding of ACKs for 2xx. Confined to the stack's event loop.
public final class SIPProxy: SIPTransactionUser, @unchecked Sendable {
    /// Chooses the targets of an initial request, in the order they are tried.
    public typealias Router = (SIPMessage, SIPSource) -> [ProxyTarget]

    public struct Counters: Sendable, Equatable {
        public var requests = 0
        public var forwarded = 0
        public var refused = 0
        public var branchTimeouts = 0
        public var acksForwarded = 0
    }

    public let stack: SIPStack
    public var configuration: ProxyConfiguration
    public var router: Router
    public var logger: Logger
    public private(set) var counters = Counters()

    private var calls: [TransactionKey: ProxyCall] = [:]
    private var branchOwner: [TransactionKey: ProxyCall] = [:]

    /// Calls in progress (server transactions the proxy holds).
    public var activeCalls: Int { calls.count }
    /// Client branches the proxy is tracking.
    public var activeBranches: Int { branchOwner.count }

    public init(stack: SIPStack, configuration: ProxyConfiguration = ProxyConfiguration(),
                logger: Logger = Logger(label: "parley.proxy"), router: @escaping Router) {
        self.stack = stack
        self.configuration = configuration
        self.router = router
        self.logger = logger
        stack.user = self
    }

    // MARK: Requests

    public func stack(_ stack: SIPStack, didReceiveRequest request: SIPMessage, transaction: TransactionKey?, from source: SIPSource) {
        guard let key = transaction else {
            forwardACK(request, from: source)
            return
        }
        counters.requests += 1
        // 16.3 request validation.
        if case .other(let scheme, _)? = request.requestURI {
            return refuse(key, 416, "Unsupported URI Scheme: \(scheme)")
        }
        let maxForwards = (try? request.maxForwards()) ?? nil
        if maxForwards == 0 {
            return refuse(key, 483, "Too Many Hops")
        }
        let loopHash = Self.loopHash(request)
        if isLoop(request, hash: loopHash) {
            return refuse(key, 482, "Loop Detected")
        }
        let unsupported = request.optionTags(.proxyRequire).filter { !configuration.supportedOptions.contains($0) }
        if !unsupported.isEmpty {
            return refuse(key, 420, "Bad Extension", extra: [("Unsupported", unsupported.joined(separator: ", "))])
        }
        // 16.4 route information preprocessing.
        var request = request
        if case .sip(let uri)? = request.requestURI, stack.transport.isLocal(host: uri.host.address, port: uri.port),
           let routes = try? request.routes(), let last = routes.last {
            // The previous hop was a strict router: the real target is the last Route.
            request.requestURI = last.uri
            Self.removeLastRoute(&request)
        }
        if let top = (try? request.routes())?.first, case .sip(let r) = top.uri,
           stack.transport.isLocal(host: r.host.address, port: r.port) {
            request.headers.removeFirstElement(HeaderName(.route))
        }
        // 16.5 targets.
        let inDialog = ((try? request.to())??.tag) != nil
        let targets = routesItself(request) ? [ProxyTarget()] : router(request, source)
        guard !targets.isEmpty else { return refuse(key, 404, "Not Found") }
        let call = ProxyCall(serverKey: key, request: request, source: source, targets: targets, loopHash: loopHash,
                             recordRoute: configuration.recordRoute && !inDialog && request.method != .register)
        calls[key] = call
        tryNext(call)
    }

    public func stack(_ stack: SIPStack, didReceiveCancel cancel: SIPMessage, forInvite invite: TransactionKey) {
        guard let call = calls[invite] else { return }
        // 16.10: CANCEL every pending branch; a branch without a provisional yet is CANCELled
        // when one arrives (9.1: a CANCEL must not precede the first provisional).
        call.cancelled = true
        for b in call.liveBranches.values where !b.final { cancelBranch(b) }
        if call.liveBranches.values.allSatisfy(\.final) && !call.finalSent {
            finish(call, fallback: 487)
        }
    }

    private func refuse(_ key: TransactionKey, _ code: Int, _ reason: String, extra: [(String, String)] = []) {
        counters.refused += 1
        stack.respond(code, reason, to: key, extraHeaders: extra)
    }

    /// Tries the next target; when none is left, answers upstream.
    private func tryNext(_ call: ProxyCall) {
        while !call.cancelled, call.next < call.targets.count {
            let target = call.targets[call.next]
            call.next += 1
            if forward(call, to: target) { return }
        }
        if call.liveBranches.values.allSatisfy(\.final) || call.cancelled || call.next >= call.targets.count {
            if call.current == nil || call.current!.final { finish(call, fallback: call.cancelled ? 487 : 480) }
        }
    }

    /// 16.6: copy, retarget, Max-Forwards, Record-Route, next hop, Via, send.
    private func forward(_ call: ProxyCall, to target: ProxyTarget) -> Bool {
        var request = call.request
        if let uri = target.uri { request.requestURI = uri }
        for r in target.route.reversed() { request.headers.prepend(HeaderName(.route), r) }
        if let mf = (try? request.maxForwards()) ?? nil {
            request.headers.set(HeaderName(.maxForwards), String(mf - 1))
        } else {
            request.headers.append(HeaderName(.maxForwards), "70")
        }
        guard let destination = target.destination ?? nextHop(request) else {
            call.record(local(call, 502, "Bad Gateway: no route to next hop"), synthetic: true)
            return false
        }
        if call.recordRoute, let local = stack.transport.advertisedAddress(for: call.source.transport, toward: call.source.remote) {
            let transportParam = call.source.transport.uriParameter
            request.headers.prepend(HeaderName(.recordRoute), "<sip:\(hostPort(local));lr\(transportParam)>")
        }
        let branch = stack.newBranch(prefix: "pl" + call.loopHash + ".")
        guard let key = stack.sendRequest(request, to: destination, branch: branch) else { return false }
        counters.forwarded += 1
        let b = ProxyBranch(key: key)
        call.liveBranches[key] = b
        call.current = b
        branchOwner[key] = call
        if request.method == .invite {
            b.timer = stack.schedule(after: configuration.branchTimeout) { [weak self, weak call] in
                guard let self, let call else { return }
                self.branchTimedOut(call, b)
            }
        }
        return true
    }

    /// Whether a request (after 16.4) carries its own route: a Route header, or an in-dialog
    /// Request-URI that is not this proxy. Otherwise the router picks the targets.
    func routesItself(_ request: SIPMessage) -> Bool {
        if request.headers.value(.route) != nil { return true }
        guard ((try? request.to())??.tag) != nil else { return false }
        if case .sip(let u)? = request.requestURI, stack.transport.isLocal(host: u.host.address, port: u.port) { return false }
        return true
    }

    /// Where a request goes by its Route or Request-URI (16.6 step 6 and 7).
    public func nextHop(_ request: SIPMessage) -> SIPDestination? {
        if let top = (try? request.routes())?.first { return resolve(top.uri) }
        guard let uri = request.requestURI else { return nil }
        return resolve(uri)
    }

    /// A SIP URI as a destination: maddr or host, port (5060 by default), `transport` param.
    public func resolve(_ uri: URI) -> SIPDestination? {
        guard case .sip(let u) = uri else { return nil }
        return SIPDestination.resolve(u, defaultTransport: configuration.defaultTransport)
    }

    // MARK: Responses

    public func stack(_ stack: SIPStack, didReceiveResponse response: SIPMessage, transaction: TransactionKey) {
        guard let code = response.statusCode, let call = branchOwner[transaction], let branch = call.liveBranches[transaction] else { return }
        if transaction.method == .cancel { return }
        for action in branch.invite.received(status: code) {
            switch action {
            case .sendCancel:
                stack.cancel(branch.key)  // asked for before its first provisional (9.1)
            case .provisional(let code):
                if code > 100, branch === call.current, !call.finalSent, !call.cancelled, !branch.abandoned {
                    forwardUpstream(response, call)
                }
            case .answered, .ackAgain:
                // 16.7 step 5: every 2xx goes upstream at once, whatever the branch (the UAC
                // ACKs it end to end), a retransmission too.
                branch.timer?.cancel()
                call.finalSent = true
                forwardUpstream(response, call)
                // 16.7 step 10: every other pending branch is CANCELled, one given up on
                // timeout too; one without a provisional yet when its provisional comes.
                for other in call.liveBranches.values where other !== branch { cancelBranch(other) }
            case .failed:
                branch.timer?.cancel()
                call.record(response)
                guard !call.finalSent, branch === call.current else { continue }
                tryNext(call)
            }
        }
    }

    public func stack(_ stack: SIPStack, transaction: TransactionKey, didFail failure: TransactionFailure) {
        guard let call = branchOwner[transaction], let branch = call.liveBranches[transaction], !branch.final else { return }
        _ = branch.invite.transactionFailed(code: failure == .transportError ? 503 : 408)
        branch.timer?.cancel()
        let code = failure == .transportError ? 503 : 408
        call.record(local(call, code, code == 503 ? "Service Unavailable" : "Request Timeout"), synthetic: true)
        if !call.finalSent, branch === call.current { tryNext(call) }
    }

    public func stack(_ stack: SIPStack, didTerminate transaction: TransactionKey) {
        if let call = calls.removeValue(forKey: transaction) {
            for b in call.liveBranches.values { b.timer?.cancel() }
            return
        }
        if let call = branchOwner.removeValue(forKey: transaction) {
            call.liveBranches[transaction]?.timer?.cancel()
            call.liveBranches[transaction] = nil
        }
    }

    private func branchTimedOut(_ call: ProxyCall, _ branch: ProxyBranch) {
        guard !branch.final, !call.finalSent else { return }
        counters.branchTimeouts += 1
        // 16.8: as if it had answered 408. A CANCEL goes now if it rang, else with its first
        // provisional; its INVITE goes out no more (a retransmission reaching the target later,
        // say after it restarted, would ring a call nobody waits for).
        branch.abandoned = true
        cancelBranch(branch)
        if !branch.invite.cancelSent { stack.giveUp(branch.key) }
        call.record(local(call, 408, "Request Timeout"), synthetic: true)
        logger.debug("branch \(branch.key) gave no final answer in \(configuration.branchTimeout); trying the next target")
        if branch === call.current { tryNext(call) }
    }

    private func cancelBranch(_ branch: ProxyBranch) {
        for action in branch.invite.cancel() where action == .sendCancel { stack.cancel(branch.key) }
    }

    /// A response the proxy makes itself for this call (8.2.6: the request's Via, From, To
    /// with a new tag, Call-ID, CSeq).
    private func local(_ call: ProxyCall, _ code: Int, _ reason: String) -> SIPMessage {
        SIPTransport.makeResponse(to: call.request, code: code, reason: reason, toTag: stack.newTag())
    }

    /// Sends the best response upstream (16.7 step 6), or `fallback` when there is none.
    private func finish(_ call: ProxyCall, fallback: Int) {
        guard !call.finalSent else { return }
        call.finalSent = true
        if let best = call.best {
            if call.bestIsLocal {
                stack.respond(best, to: call.serverKey)
            } else {
                forwardUpstream(best, call)
            }
        } else {
            stack.respond(fallback, to: call.serverKey)
        }
    }

    /// 16.7 step 9: our Via off, then out through the server transaction.
    private func forwardUpstream(_ response: SIPMessage, _ call: ProxyCall) {
        var r = response
        r.headers.removeFirstElement(HeaderName(.via))
        if r.statusCode == 503 {
            // 16.7 step 6: a 503 chosen as the best response is sent upstream as 500.
            r.startLine = .response(version: "SIP/2.0", code: 500, reason: "Server Internal Error")
        }
        stack.respond(r, to: call.serverKey)
    }

    // MARK: ACK for 2xx and loops

    /// An ACK for a 2xx has no transaction: forward it statelessly by its Route / Request-URI.
    private func forwardACK(_ ack: SIPMessage, from source: SIPSource) {
        var request = ack
        if let top = (try? request.routes())?.first, case .sip(let r) = top.uri,
           stack.transport.isLocal(host: r.host.address, port: r.port) {
            request.headers.removeFirstElement(HeaderName(.route))
        }
        if let mf = (try? request.maxForwards()) ?? nil {
            guard mf > 0 else { return }
            request.headers.set(HeaderName(.maxForwards), String(mf - 1))
        }
        let destination: SIPDestination?
        if routesItself(request) {
            destination = nextHop(request)
        } else {
            destination = router(request, source).first.flatMap { $0.destination ?? $0.uri.flatMap(resolve) }
        }
        guard let destination else { return }
        // A stateless branch: the same for every retransmission of this ACK (16.11).
        let branch = Via.magicCookie + "ack" + Self.loopHash(ack) + ((try? ack.topVia())??.branch.map { String($0.hashValueStable, radix: 36) } ?? "")
        request.headers.prepend(HeaderName(.via), stack.makeVia(for: destination, branch: branch))
        counters.acksForwarded += 1
        stack.sendStateless(request, to: destination)
    }

    /// 16.6 step 8 / 16.3 step 4: a hash of what identifies the request's routing, put in our
    /// branch so a request that comes back unchanged is recognised as a loop (a spiral, which
    /// changes the Request-URI or routes, is not).
    static func loopHash(_ request: SIPMessage) -> String {
        var h = StableHasher()
        h.add(request.requestURI?.description ?? "")
        h.add(request.callID ?? "")
        h.add(((try? request.from())??.tag) ?? "")
        h.add(((try? request.to())??.tag) ?? "")
        h.add(((try? request.cseq())??.sequence).map { String($0) } ?? "")
        for r in request.headers.values(HeaderName(.route)) { h.add(r) }
        for r in request.headers.values(HeaderName(.proxyRequire)) { h.add(r) }
        return String(h.value, radix: 36)
    }

    private func isLoop(_ request: SIPMessage, hash: String) -> Bool {
        guard let vias = try? request.vias() else { return false }
        let marker = Via.magicCookie + "pl" + hash + "."
        return vias.dropFirst().contains { v in
            stack.transport.isLocal(host: v.host.address, port: v.port) && (v.branch?.hasPrefix(marker) ?? false)
        } || (vias.first.map { v in
            stack.transport.isLocal(host: v.host.address, port: v.port) && (v.branch?.hasPrefix(marker) ?? false)
        } ?? false)
    }

    static func removeLastRoute(_ request: inout SIPMessage) {
        var all = request.headers.elements(HeaderName(.route))
        request.headers.removeAll(HeaderName(.route))
        all.removeLast()
        if !all.isEmpty { request.headers.append(HeaderName(.route), all.joined(separator: ", ")) }
    }
}

/// The state of one proxied request: its server transaction and its branches.
final class ProxyCall: @unchecked Sendable {
    let serverKey: TransactionKey
    let request: SIPMessage
    let source: SIPSource
    let targets: [ProxyTarget]
    let loopHash: String
    let recordRoute: Bool
    var next = 0
    var current: ProxyBranch?
    var liveBranches: [TransactionKey: ProxyBranch] = [:]
    var best: SIPMessage?
    /// Whether `best` was made here (it has no Via of ours to remove).
    var bestIsLocal = false
    var finalSent = false
    var cancelled = false

    init(serverKey: TransactionKey, request: SIPMessage, source: SIPSource, targets: [ProxyTarget], loopHash: String, recordRoute: Bool) {
        self.serverKey = serverKey
        self.request = request
        self.source = source
        self.targets = targets
        self.loopHash = loopHash
        self.recordRoute = recordRoute
    }

    /// Keeps the best final response so far (16.7 step 6): any 6xx wins; otherwise the lowest
    /// class, the first of it received.
    func record(_ response: SIPMessage, synthetic: Bool = false) {
        guard let code = response.statusCode, code >= 300 else { return }
        if let current = best?.statusCode {
            if current >= 600 { return }
            guard code >= 600 || code / 100 < current / 100 else { return }
        }
        best = response
        bestIsLocal = synthetic
    }
}

final class ProxyBranch: @unchecked Sendable {
    let key: TransactionKey
    /// When its CANCEL may go (9.1), whether it has its final answer.
    var invite = OutgoingInvite()
    /// Given up on its timer (16.8): counted as answered 408, though a late answer may come.
    var abandoned = false
    /// No longer pending: answered, failed, or given up on.
    var final: Bool { invite.isFinal || abandoned }
    var timer: TimerToken?

    init(key: TransactionKey) { self.key = key }
}

/// FNV-1a over strings: stable across runs (unlike `Hasher`), for branch markers.
struct StableHasher {
    var value: UInt64 = 0xCBF2_9CE4_8422_2325
    mutating func add(_ s: String) {
        for b in s.utf8 {
            value ^= UInt64(b)
            value &*= 0x0000_0100_0000_01B3
        }
        value ^= 0xFF
        value &*= 0x0000_0100_0000_01B3
    }
}

extension String {
    var hashValueStable: UInt64 {
        var h = StableHasher()
        h.add(self)
        return h.value
    }
}
