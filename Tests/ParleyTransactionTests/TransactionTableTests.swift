// TransactionTable: routing (17.1.3, 17.2.3), stray messages, removal of terminated
// transactions, and two tables talking over a lossy virtual network.

import ParleySIP
import Testing
@testable import ParleyTransaction

@Suite("Transaction table")
struct TransactionTableTests {
    @Test("RFC 3261 17.1.3: a response goes to its client transaction, with the driver's context")
    func routesResponses() throws {
        var table = TransactionTable<String>()
        let out = try table.startClient(request: Msg.invite(), transport: .unreliable, context: "10.0.0.2:5060", now: .zero)
        #expect(out.actions.sentMessages == [Msg.invite()])
        #expect(table.count == 1)
        guard case .handled(let got) = table.receive(Msg.response(180, to: Msg.invite()), now: SIPInstant(milliseconds: 100)) else {
            Issue.record("expected a match")
            return
        }
        #expect(got.key == out.key)
        #expect(got.context == "10.0.0.2:5060")
        #expect(got.actions.passedToTU.map(\.statusCode) == [180])
        #expect(table.transaction(for: out.key)?.stateName == "proceeding")
    }

    @Test("after a burst the table's storage shrinks back, and what is still live is still found")
    func storageShrinksAfterABurst() throws {
        var table = TransactionTable<Int>()
        var keys: [TransactionKey] = []
        for i in 0..<10_000 {
            let out = try table.startClient(request: Msg.options(branch: "z9hG4bKburst\(i)"), transport: .reliable, context: i, now: .zero)
            keys.append(out.key)
        }
        let peak = table.capacity
        #expect(peak >= 10_000)
        // Over TCP a final response ends a non-INVITE client transaction at once (Timer K is 0).
        for (i, key) in keys.enumerated() where i % 100 != 0 {
            let r = Msg.response(200, to: Msg.options(branch: "z9hG4bKburst\(i)"))
            guard case .handled = table.receive(r, now: SIPInstant(milliseconds: 10)) else {
                Issue.record("response \(i) did not match")
                return
            }
            _ = key
        }
        #expect(table.count == 100)
        #expect(table.capacity * 3 < peak)
        for (i, key) in keys.enumerated() where i % 100 == 0 {
            #expect(table.context(for: key) == i)
        }
    }

    @Test("RFC 6026 8.8: a response matching no client transaction is reported as stray")
    func strayResponse() {
        var table = TransactionTable<Int>()
        guard case .strayResponse = table.receive(Msg.response(200, to: Msg.invite()), now: .zero) else {
            Issue.record("expected a stray response")
            return
        }
    }

    @Test("RFC 3261 17.2.3: a new request and an ACK that match nothing are reported, not created")
    func newRequestAndUnmatchedAck() throws {
        var table = TransactionTable<Int>()
        guard case .newRequest(let key) = table.receive(Msg.options(), now: .zero) else {
            Issue.record("expected a new request")
            return
        }
        #expect(key == TransactionKey.server(matching: Msg.options()))
        #expect(table.isEmpty)
        let ack = Msg.invite().makeACK(for: Msg.response(200, to: Msg.invite()))
        guard case .unmatchedACK = table.receive(ack, now: .zero) else {
            Issue.record("expected an unmatched ACK")
            return
        }
        #expect(throws: TransactionTableError.noTransactionKey) {
            try table.startServer(request: ack, transport: .unreliable, context: 0, now: .zero)
        }
    }

    @Test("RFC 3261 17.2.3: a message without a top Via cannot be matched")
    func unmatchable() throws {
        let noVia = try SIPParser.parse("OPTIONS sip:a@b.example SIP/2.0\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nFrom: <sip:c@d.example>;tag=1\r\nTo: <sip:a@b.example>\r\n\r\n", validate: false)
        var table = TransactionTable<Int>()
        guard case .unmatchable = table.receive(noVia, now: .zero) else {
            Issue.record("expected unmatchable")
            return
        }
        #expect(throws: TransactionTableError.noTransactionKey) {
            try table.startClient(request: noVia, transport: .unreliable, context: 0, now: .zero)
        }
    }

    @Test("RFC 3261 17.1.3: two live transactions cannot share a key")
    func duplicateKey() throws {
        var table = TransactionTable<Int>()
        let out = try table.startClient(request: Msg.options(), transport: .unreliable, context: 0, now: .zero)
        #expect(throws: TransactionTableError.duplicate(out.key)) {
            try table.startClient(request: Msg.options(), transport: .unreliable, context: 0, now: .zero)
        }
    }

    @Test("RFC 3261 17.1.2.2: a transaction that terminates at once over TCP is removed in the same call")
    func removesOnReliableCompletion() throws {
        var table = TransactionTable<String>()
        let out = try table.startClient(request: Msg.options(), transport: .reliable, context: "tcp#7", now: .zero)
        guard case .handled(let got) = table.receive(Msg.response(200, to: Msg.options()), now: .zero) else {
            Issue.record("expected a match")
            return
        }
        #expect(got.actions.last == .terminated)
        #expect(got.context == "tcp#7")
        #expect(table.isEmpty)
        #expect(table.handle(.transportError, for: out.key, now: .zero) == nil)
    }

    @Test("RFC 3261 17.1.1.2: Timer D ends Completed and the table forgets the transaction; later timers find nothing")
    func removesAfterTimers() throws {
        var table = TransactionTable<Int>()
        let out = try table.startClient(request: Msg.invite(), transport: .unreliable, context: 0, now: .zero)
        let firstA = try #require(table.transaction(for: out.key)?.armedTimers.first { $0.timer.kind == .a })
        _ = table.receive(Msg.response(486, to: Msg.invite()), now: SIPInstant(milliseconds: 100))
        #expect(table.count == 1)
        // The cancelled Timer A is stale.
        #expect(table.handle(.timerFired(firstA.timer), for: out.key, now: SIPInstant(milliseconds: 500))?.actions == [])
        #expect(table.nextDeadline == SIPInstant(milliseconds: 32_100))
        #expect(table.fireDueTimers(now: SIPInstant(milliseconds: 32_099)).isEmpty)
        let fired = table.fireDueTimers(now: SIPInstant(milliseconds: 32_100))
        #expect(fired.map(\.actions.last) == [.terminated])
        #expect(table.isEmpty)
        #expect(table.nextDeadline == nil)
        #expect(table.handle(.timerFired(firstA.timer), for: out.key, now: SIPInstant(milliseconds: 40_000)) == nil)
    }

    @Test("RFC 3261 9.2: a CANCEL is a new server transaction that finds the INVITE it cancels")
    func cancelFindsInvite() throws {
        var table = TransactionTable<Int>()
        let invite = try table.startServer(request: Msg.invite(), transport: .unreliable, context: 1, now: .zero)
        let cancel = Msg.invite().makeCancel()
        guard case .newRequest(let cancelKey) = table.receive(cancel, now: SIPInstant(milliseconds: 50)) else {
            Issue.record("a CANCEL must not match its INVITE's transaction")
            return
        }
        #expect(table.inviteTransaction(cancelledBy: cancel) == invite.key)
        let started = try table.startServer(request: cancel, transport: .unreliable, context: 1, now: SIPInstant(milliseconds: 50))
        #expect(started.key == cancelKey)
        #expect(table.count == 2)
        // A CANCEL for an INVITE that is not there finds nothing.
        #expect(table.inviteTransaction(cancelledBy: Msg.invite(branch: "z9hG4bKgone").makeCancel()) == nil)
    }

    @Test("RFC 3261 17.2.1: timers due together fire in deadline order across transactions")
    func fireDueTimersInOrder() throws {
        var table = TransactionTable<Int>()
        let a = try table.startServer(request: Msg.invite(branch: "z9hG4bKaaa"), transport: .unreliable, context: 1, now: .zero)
        let b = try table.startServer(request: Msg.invite(branch: "z9hG4bKbbb"), transport: .unreliable, context: 2,
                                      now: SIPInstant(milliseconds: 50))
        let outs = table.fireDueTimers(now: SIPInstant(milliseconds: 1000))
        #expect(outs.map(\.key) == [a.key, b.key])
        #expect(outs.map { $0.actions.sentMessages.map(\.statusCode) } == [[100], [100]])
    }

    @Test("RFC 3261 17.1.1.2 and 17.2.1: over a lossy UDP network a rejected INVITE completes through retransmissions")
    func lossyNetworkEndToEnd() throws {
        var net = LossyNetwork()
        // Lose the first two INVITEs, the first 486 and the first ACK.
        net.drop = ["INVITE": 2, "486": 1, "ACK": 1]
        try net.run(until: 120_000)
        #expect(net.uacFinals == [486])
        #expect(net.uasState == "confirmed")
        #expect(net.reports.isEmpty)
        #expect(net.uac.isEmpty && net.uas.isEmpty)
        // The third INVITE (Timer A, 1.5 s) gets through; the lost 486 is recovered by Timer G, the
        // lost ACK by the next Timer G retransmission, which the UAC answers with its ACK again.
        #expect(net.delivered["INVITE"] == 1)
        #expect(net.delivered["486"] == 2)
        #expect(net.delivered["ACK"] == 1)
    }
}

/// A UAC table and a UAS table over a virtual UDP link with 10 ms latency that loses chosen
/// messages. The UAS TU rejects every INVITE with 486.
struct LossyNetwork {
    var uac = TransactionTable<String>()
    var uas = TransactionTable<String>()
    var now = SIPInstant.zero
    var inFlight: [(at: SIPInstant, toUAS: Bool, message: SIPMessage)] = []
    var drop: [String: Int] = [:]
    var delivered: [String: Int] = [:]
    var uacFinals: [Int] = []
    var uasKey: TransactionKey?
    var uasStateWhenDone: String?
    var reports: [TransactionAction] = []

    var uasState: String? { uasKey.flatMap { uas.transaction(for: $0)?.stateName } ?? uasStateWhenDone }

    static func label(_ m: SIPMessage) -> String { m.method?.rawValue ?? String(m.statusCode ?? 0) }

    mutating func perform(_ out: TransactionTable<String>.Output, fromUAC: Bool) {
        for action in out.actions {
            switch action {
            case .send(let m, _):
                let l = Self.label(m)
                if let n = drop[l], n > 0 { drop[l] = n - 1; continue }
                inFlight.append((now + .milliseconds(10), fromUAC, m))
            case .passToTU(let m):
                if fromUAC {
                    if let c = m.statusCode, c >= 200 { uacFinals.append(c) }
                } else if m.method == .invite, let reply = uas.handle(.tuResponse(Msg.response(486, to: m)), for: out.key, now: now) {
                    perform(reply, fromUAC: false)
                }
            case .timeout, .transportError:
                reports.append(action)
            case .terminated:
                if !fromUAC, out.key == uasKey { uasStateWhenDone = "confirmed"; uasKey = nil }
            default:
                break
            }
        }
    }

    mutating func run(until end: Int64) throws {
        perform(try uac.startClient(request: Msg.invite(), transport: .unreliable, context: "uas", now: now), fromUAC: true)
        while true {
            let candidates = inFlight.map(\.at) + [uac.nextDeadline, uas.nextDeadline].compactMap { $0 }
            guard let next = candidates.min(), next.milliseconds <= end else { break }
            now = next
            let due = inFlight.filter { $0.at <= now }
            inFlight.removeAll { $0.at <= now }
            for d in due {
                delivered[Self.label(d.message), default: 0] += 1
                if d.toUAS {
                    switch uas.receive(d.message, now: now) {
                    case .handled(let out): perform(out, fromUAC: false)
                    case .newRequest:
                        let out = try uas.startServer(request: d.message, transport: .unreliable, context: "uac", now: now)
                        uasKey = out.key
                        perform(out, fromUAC: false)
                    default: Issue.record("unexpected routing for \(Self.label(d.message))")
                    }
                } else if case .handled(let out) = uac.receive(d.message, now: now) {
                    perform(out, fromUAC: true)
                }
            }
            for out in uac.fireDueTimers(now: now) { perform(out, fromUAC: true) }
            for out in uas.fireDueTimers(now: now) { perform(out, fromUAC: false) }
        }
    }
}
