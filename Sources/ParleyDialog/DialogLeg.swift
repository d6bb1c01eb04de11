import NIOCore
import ParleySIP
import ParleyTransport

/// What crosses the buffer server from one leg to the other, and what never does.
///
/// The buffer server re-addresses every message: the headers that name a leg (Via, From, To,
/// Call-ID, CSeq, Contact, Route, Record-Route) are written per leg, and of the rest only the
/// headers listed here cross, so neither side ever sees the other's Call-ID, tags, hosts or
/// ports in a header. The body (SDP) passes through untouched.
public enum HeaderPolicy {
    /// Known headers that describe the session or the request and carry no addresses.
    public static let crossingKnown: Set<KnownHeader> = [
        .contentType, .contentEncoding, .contentDisposition, .contentLanguage, .mimeVersion,
        .supported, .require, .unsupported, .accept, .acceptEncoding, .acceptLanguage,
        .subject, .event, .allowEvents, .sessionExpires, .retryAfter, .priority, .organization,
        .recvInfo, .expires, .date,
    ]
    /// Unknown (extension) headers that cross, lower-cased.
    public static let crossingOther: Set<String> = ["info-package", "min-se", "reason", "privacy"]
    /// Option tags removed from Supported and Require: the buffer server does not relay
    /// reliable provisionals (PRACK), so neither leg may ask for them.
    public static let droppedOptionTags: Set<String> = ["100rel", "precondition"]
    /// The option tags a Supported may carry across: what Parley relays end to end (session
    /// timers: Session-Expires and Min-SE cross). Others (replaces, norefersub, gruu, ...) name
    /// what Parley does not carry, so a leg is not told the other supports them. Allow does not
    /// cross at all: each leg is told what Parley allows on it (`DialogLeg.allow`).
    public static let carriedSupported: Set<String> = ["timer"]

    /// The option tags a request's Require names that the call path cannot honour (those it
    /// removes, `droppedOptionTags`), as written, each once: such a request is refused with 420
    /// Bad Extension and these in Unsupported (RFC 3261 8.2.2.3; RFC 3262 3: a UAC that requires
    /// 100rel must get reliable provisionals or none). Other tags cross to the agent, whose
    /// answer decides.
    public static func unsupportedRequired(_ request: SIPMessage) -> [String] {
        var out: [String] = []
        for line in request.headers where line.known == .require {
            for tag in line.elements where droppedOptionTags.contains(tag.lowercased()) {
                if !out.contains(where: { $0.lowercased() == tag.lowercased() }) { out.append(tag) }
            }
        }
        return out
    }

    /// Whether a header line may be copied to the other leg.
    public static func crosses(_ header: SIPHeader) -> Bool {
        if let k = header.known { return crossingKnown.contains(k) }
        let name = header.name.lowercased()
        if name.hasPrefix("x-parley-") { return false }
        return name.hasPrefix("x-") || crossingOther.contains(name)
    }

    /// Copies the crossing headers of `source` and its body into `target` (Content-Length set).
    public static func copyPayload(from source: SIPMessage, into target: inout SIPMessage) {
        for line in source.headers where crosses(line) {
            if line.known == .supported {
                let kept = line.elements.filter { carriedSupported.contains($0.lowercased()) }
                if kept.isEmpty { continue }
                target.headers.append(HeaderName(.supported), kept.joined(separator: ", "))
            } else if line.known == .require {
                let kept = line.elements.filter { !droppedOptionTags.contains($0.lowercased()) }
                if kept.isEmpty { continue }
                target.headers.append(HeaderName(line.known!), kept.joined(separator: ", "))
            } else {
                target.headers.append(line)
            }
        }
        target.body = source.body
        target.updateContentLength()
    }
}

/// One side of a back-to-back call: the dialog state RFC 3261 section 12 keeps, for the caller
/// leg (where the buffer server is the UAS) or the agent leg (where it is the UAC).
public struct DialogLeg: Sendable {
    public var callID: String
    /// Our tag (To tag on the caller leg, From tag on the agent leg).
    public var localTag: String
    public var remoteTag: String?
    /// Our address-of-record in this dialog (From when we send requests) as written, without
    /// tag. Kept as text: it is only ever written out, and a parsed name-address (URI, its
    /// parameters, each string) weighs several times more for every call held.
    public var local: String
    /// Theirs (To when we send requests), as written, without tag.
    public var remote: String
    public var localCSeq: UInt32
    public var remoteCSeq: UInt32?
    /// Where in-dialog requests go (the peer's Contact). Boxed: a URI stored inline takes
    /// about 100 bytes in every leg.
    public var remoteTarget: URI? {
        get { target?.value }
        set { target = newValue.map(Held.init) }
    }
    private var target: Held<URI>?
    /// The route set, in the order Route headers are written.
    public var routeSet: [String]
    /// The transport the leg's requests use when a URI does not say.
    public var transport: SIPTransportKind
    /// The methods Parley allows on this leg (its Allow on INVITE, UPDATE and OPTIONS and their
    /// 2xx); nil: none is written.
    public var allow: String?
    /// Parley's own SDP session toward this leg: every description sent on it carries its
    /// origin (nil: descriptions pass as they are). Boxed while unset costs nothing.
    public var sdp: SDPSession? {
        get { session?.value }
        set { session = newValue.map(Held.init) }
    }
    private var session: Held<SDPSession>?

    /// Puts this leg's SDP origin in a message about to be sent on it (a response to the
    /// peer's request, or a request built elsewhere).
    public mutating func ownSDP(_ message: inout SIPMessage) {
        guard var s = sdp, message.carriesSDP else { return }
        message.ownSDP(&s)
        sdp = s
    }

    public init(callID: String, localTag: String, remoteTag: String?, local: NameAddress, remote: NameAddress,
                localCSeq: UInt32, remoteCSeq: UInt32?, remoteTarget: URI?, routeSet: [String], transport: SIPTransportKind) {
        self.callID = callID
        self.localTag = localTag
        self.remoteTag = remoteTag
        self.local = Self.written(local)
        self.remote = Self.written(remote)
        self.localCSeq = localCSeq
        self.remoteCSeq = remoteCSeq
        self.target = remoteTarget.map(Held.init)
        self.routeSet = routeSet
        self.transport = transport
    }

    /// A name-address as From or To is written, without tag, always in angle brackets (so a
    /// `;tag=` appended to it is a header parameter, never the URI's).
    static func written(_ address: NameAddress) -> String {
        var a = address
        a.parameters.remove("tag")
        a.angleBrackets = true
        return a.description
    }

    /// A new in-dialog request (12.2.1.1): Request-URI the remote target, Route the route set,
    /// From/To/Call-ID of this leg, the next CSeq (not for ACK and CANCEL, which reuse one), our
    /// Contact. The body and crossing headers are copied from `payload` when given.
    public mutating func makeRequest(_ method: SIPMethod, contact: String, payload: SIPMessage?, cseq: UInt32? = nil) -> SIPMessage {
        let number: UInt32
        if let cseq {
            number = cseq
        } else {
            localCSeq += 1
            number = localCSeq
        }
        var h = SIPHeaders()
        // Room for what follows, the payload's headers and the Via the stack puts on top, so
        // the lines are allocated once.
        h.reserveCapacity(routeSet.count + 8 + (payload?.headers.count ?? 0))
        for r in routeSet { h.append(HeaderName(.route), r) }
        h.append(HeaderName(.maxForwards), "70")
        h.append(HeaderName(.from), local + ";tag=" + localTag)
        h.append(HeaderName(.to), remoteTag.map { remote + ";tag=" + $0 } ?? remote)
        h.append(HeaderName(.callID), callID)
        h.append(HeaderName(.cseq), "\(number) \(method.rawValue)")
        if method != .ack && method != .cancel && method != .bye {
            h.append(HeaderName(.contact), contact)
        }
        if let allow, method == .invite || method == .update || method == .options {
            h.append(HeaderName(.allow), allow)
        }
        var m = SIPMessage.request(method, remoteTarget ?? .sip(SIPURI(host: .name("invalid"))), headers: h)
        if let payload {
            HeaderPolicy.copyPayload(from: payload, into: &m)
            ownSDP(&m)
        } else {
            m.updateContentLength()
        }
        return m
    }

    /// Where this leg's requests go: the first Route, else the remote target.
    public func nextHop() -> SIPDestination? {
        if let first = routeSet.first, let na = try? NameAddress.parse(first) {
            return Resolver.destination(for: na.uri, defaultTransport: transport)
        }
        return remoteTarget.flatMap { Resolver.destination(for: $0, defaultTransport: transport) }
    }

    /// Whether a request belongs to this leg's dialog (Call-ID and both tags).
    public func matches(callID: String, fromTag: String?, toTag: String?) -> Bool {
        callID == self.callID && toTag == localTag && (remoteTag == nil || fromTag == remoteTag)
    }
}

/// Turns URIs into destinations.
public enum Resolver {
    /// A SIP URI as a destination: maddr or host, port (5060 by default), `transport` param.
    public static func destination(for uri: URI, defaultTransport: SIPTransportKind = .udp) -> SIPDestination? {
        guard case .sip(let u) = uri else { return nil }
        return SIPDestination.resolve(u, defaultTransport: defaultTransport)
    }

    /// `<sip:HOST:PORT>` for one of our addresses (a Contact), with `;transport=tcp` or `tls`.
    public static func contact(for address: SocketAddress, transport: SIPTransportKind = .udp, user: String? = nil) -> String {
        let userPart = user.map { $0 + "@" } ?? ""
        return "<sip:\(userPart)\(hostPort(address))\(transport.uriParameter)>"
    }
}

extension SIPMessage {
    /// From tag, To tag and Call-ID, for dialog matching.
    public var dialogIDs: (callID: String, fromTag: String?, toTag: String?)? {
        guard let callID else { return nil }
        let f = (try? from())??.tag
        let t = (try? to())??.tag
        return (callID, f, t)
    }

    /// The first Contact's URI.
    public var contactURI: URI? {
        ((try? contacts()) ?? []).first?.address?.uri
    }
}

extension SIPHost {
    /// The host of a socket address.
    public static func from(address: SocketAddress, ip known: String? = nil) -> SIPHost {
        let ip = known ?? address.ipAddress ?? "invalid"
        if case .v6 = address { return .ipv6(ip) }
        return .ipv4(ip)
    }
}

/// A value on the heap, for what a call holds only for a while or rarely.
public final class Held<Value>: @unchecked Sendable {
    public let value: Value
    public init(_ value: Value) { self.value = value }
}
