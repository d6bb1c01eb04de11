import ParleyRules
import ParleySIP

/// The handoff between distributor and buffer server, as it looks on the wire (docs/call-path.md
/// draws each one):
///
/// - `uri`: the caller's INVITE, forwarded, with the agent's id appended to the buffer server's
///   URI as a parameter: `INVITE sip:buffer@10.0.0.2:5070;agent=alice SIP/2.0`.
/// - `message`: the same INVITE (distributor's Via on top) carried as the body of a SIP MESSAGE
///   (RFC 3428) to that same URI, `Content-Type: message/sip`. Everything else of that INVITE
///   transaction between the two (responses, CANCEL) travels the same way.
/// - `tunnel`: the same INVITE sent as one WebSocket message on a connection between distributor
///   and buffer server (SIP over WebSocket, RFC 7118, subprotocol `sip`), responses and CANCEL on
///   the same connection.
///
/// In every encoding the INVITE carries `X-Parley-Call`, the distributor's reference for the call,
/// which the buffer server quotes in its call events. Neither header nor parameter reaches the
/// agent or the caller.
public enum HandoffWire {
    /// The Request-URI parameter that names the agent.
    public static let agentParameter = "agent"
    /// The Request-URI parameter that names a treatment system instead of an agent.
    public static let treatmentParameter = "treatment"
    /// On a handoff that moves a caller already connected to a treatment (by its reference in
    /// `X-Parley-Call`) to the agent or treatment the Request-URI names.
    public static let moveHeader = HeaderName("X-Parley-Move")
    /// The distributor's call reference, on the handoff hop only.
    public static let callHeader = HeaderName("X-Parley-Call")
    /// The encoding used, on the handoff hop only (for logs and counters).
    public static let encodingHeader = HeaderName("X-Parley-Handoff")
    /// MIME type of an encapsulated SIP message (RFC 3261 section 27.5).
    public static let messageSIP = "message/sip"
    /// Buffer server -> distributor call events.
    public static let eventType = "application/vnd.parley.call-event"

    /// The buffer server's URI with the agent id appended (`;agent=ID`).
    public static func target(buffer: SIPURI, agent: String) -> URI {
        var u = buffer
        u.parameters.set(agentParameter, agent)
        return .sip(u)
    }

    /// The buffer server's URI with a treatment's name appended (`;treatment=moh`).
    public static func target(buffer: SIPURI, treatment: String) -> URI {
        var u = buffer
        u.parameters.set(treatmentParameter, treatment)
        return .sip(u)
    }

    /// The treatment a handoff's Request-URI names.
    public static func treatmentName(in uri: URI?) -> String? {
        guard case .sip(let u)? = uri, let name = u.parameters.value(treatmentParameter), !name.isEmpty else { return nil }
        return name
    }

    /// The agent id a handoff's Request-URI names.
    public static func agentID(in uri: URI?) -> String? {
        guard case .sip(let u)? = uri, let id = u.parameters.value(agentParameter), !id.isEmpty else { return nil }
        return id
    }

    /// Whether an agent id can be carried in a URI parameter as it is.
    public static func isValidAgentID(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                || c == UInt8(ascii: "-") || c == UInt8(ascii: "_") || c == UInt8(ascii: ".")
        }
    }

    /// A MESSAGE carrying `inner` (RFC 3428; body `message/sip`).
    public static func wrap(_ inner: SIPMessage, requestURI: URI, from: String, to: String, callID: String,
                            cseq: UInt32, contact: String? = nil) -> SIPMessage {
        message(requestURI: requestURI, from: from, to: to, callID: callID, cseq: cseq, contact: contact,
                contentType: messageSIP, body: inner.serialized())
    }

    /// A MESSAGE between distributor and buffer server (RFC 3428) with this body.
    private static func message(requestURI: URI, from: String, to: String, callID: String, cseq: UInt32,
                                contact: String? = nil, contentType: String, body: [UInt8]) -> SIPMessage {
        var h = SIPHeaders()
        h.append(HeaderName(.maxForwards), "70")
        h.append(HeaderName(.from), from)
        h.append(HeaderName(.to), to)
        h.append(HeaderName(.callID), callID)
        h.append(HeaderName(.cseq), "\(cseq) MESSAGE")
        if let contact { h.append(HeaderName(.contact), contact) }
        h.append(HeaderName(.contentType), contentType)
        var m = SIPMessage.request(.message, requestURI, headers: h, body: body)
        m.updateContentLength()
        return m
    }

    /// A MESSAGE carrying a call event between distributor and buffer server (`eventType`).
    public static func eventMessage(_ event: CallEvent, requestURI: URI, from: String, to: String, callID: String,
                                    cseq: UInt32) -> SIPMessage {
        eventMessage([event], requestURI: requestURI, from: from, to: to, callID: callID, cseq: cseq)
    }

    /// One MESSAGE carrying several events, a blank line between them (`CallEvent.list`).
    public static func eventMessage(_ events: [CallEvent], requestURI: URI, from: String, to: String, callID: String,
                                    cseq: UInt32) -> SIPMessage {
        message(requestURI: requestURI, from: from, to: to, callID: callID, cseq: cseq, contentType: eventType,
                body: Array(events.map(\.body).joined(separator: "\n").utf8))
    }

    /// The SIP message a MESSAGE carries, if its body is `message/sip` and parses.
    public static func unwrap(_ message: SIPMessage) -> SIPMessage? {
        guard message.method == .message, let ct = (try? message.contentType()) ?? nil, ct.essence == messageSIP else { return nil }
        return try? SIPParser.parse(message.body, framing: .datagram)
    }
}

/// What the buffer server tells the distributor about calls (agent state depends on it).
public enum CallEvent: Sendable, Equatable {
    /// The call the distributor handed off as `call` has ended (BYE, or a leg failed).
    case ended(call: String, agent: String)
    /// Heartbeat: every call the buffer server holds right now. A busy agent whose call is
    /// missing from consecutive heartbeats is reconciled.
    case live(calls: [String])
    /// Distributor -> buffer server: hang up this call (a caller on a treatment who waited too long).
    case hangup(call: String)
    /// The agent of an answered call asked to transfer it (REFER) to `target`: an agent's id or
    /// a queue (call type). `caller`: the caller's From as the buffer server keeps it (the
    /// rules' view of a transferred call shows it).
    case transfer(call: String, agent: String, target: String, caller: String)
    /// Distributor -> buffer server: the transfer found no one (`code` as a SIP status); the
    /// caller stays with the agent who asked for it.
    case transferFailed(call: String, code: Int)

    /// The body of the MESSAGE that carries the event.
    public var body: String {
        switch self {
        case .ended(let c, let a): "event=ended\ncall=\(c)\nagent=\(a)\n"
        case .live(let calls): "event=live\ncalls=\(calls.joined(separator: ","))\n"
        case .hangup(let c): "event=hangup\ncall=\(c)\n"
        case .transfer(let c, let a, let t, let from): "event=transfer\ncall=\(c)\nagent=\(a)\ntarget=\(t)\ncaller=\(from)\n"
        case .transferFailed(let c, let code): "event=transfer-failed\ncall=\(c)\ncode=\(code)\n"
        }
    }

    /// Every event of a body: one, or several separated by a blank line. Sections that are no
    /// event are left out. One pass over the lines (LF or CRLF); only the values kept are copied.
    public static func list(body: String) -> [CallEvent] {
        var events: [CallEvent] = []
        var fields = Fields()
        for line in body.utf8.split(separator: 10, omittingEmptySubsequences: false) {
            let l = line.last == 13 ? line.dropLast() : line
            if l.isEmpty {
                if let e = fields.event { events.append(e) }
                fields = Fields()
            } else {
                fields.take(Substring(l))
            }
        }
        if let e = fields.event { events.append(e) }
        return events
    }

    public init?(body: String) {
        var fields = Fields()
        for line in body.utf8.split(whereSeparator: { $0 == 10 || $0 == 13 }) { fields.take(Substring(line)) }
        guard let e = fields.event else { return nil }
        self = e
    }

    /// The `key=value` lines of one event (a key given twice: the last value).
    private struct Fields {
        var name: Substring?
        var call: Substring?
        var agent: Substring?
        var calls: Substring?
        var target: Substring?
        var code: Substring?
        var caller: Substring?

        mutating func take(_ line: Substring) {
            guard let eq = line.firstIndex(of: "=") else { return }
            let value = line[line.index(after: eq)...]
            switch line[..<eq] {
            case "event": name = value
            case "call": call = value
            case "agent": agent = value
            case "calls": calls = value
            case "target": target = value
            case "code": code = value
            case "caller": caller = value
            default: break
            }
        }

        var event: CallEvent? {
            switch name {
            case "ended"?:
                guard let call, let agent else { return nil }
                return .ended(call: String(call), agent: String(agent))
            case "hangup"?:
                guard let call else { return nil }
                return .hangup(call: String(call))
            case "transfer"?:
                guard let call, let agent, let target else { return nil }
                return .transfer(call: String(call), agent: String(agent), target: String(target), caller: String(caller ?? ""))
            case "transfer-failed"?:
                guard let call, let code = code.flatMap({ Int($0) }), (300...699).contains(code) else { return nil }
                return .transferFailed(call: String(call), code: code)
            case "live"?:
                return .live(calls: (calls ?? "").split(separator: ",").map(String.init))
            default:
                return nil
            }
        }
    }
}
