// Messages the transaction layer builds on its own: the ACK for a non-2xx final response
// (RFC 3261 section 17.1.1.3), 100 Trying (sections 8.2.6 and 17.2.1), and, for the TU's use,
// CANCEL (section 9.1). Headers are copied as written, so the peer can match them byte for byte.

import ParleySIP

extension SIPMessage {
    /// The top Via value of this message exactly as written, if there is one.
    var topViaText: String? {
        headers.lines.first { $0.known == .via }?.elements.first
    }

    /// The lines of a known header, as written.
    private func lines(_ known: KnownHeader) -> [SIPHeader] {
        headers.lines.filter { $0.known == known }
    }

    /// The ACK a client transaction sends for a non-2xx final `response` to this INVITE
    /// (RFC 3261 section 17.1.1.3): the same Request-URI, Call-ID and From; the To of the
    /// response (with its tag); the CSeq number with method ACK; one Via, the top Via of this
    /// request; this request's Route headers; Max-Forwards 70; no body.
    public func makeACK(for response: SIPMessage) -> SIPMessage {
        var h = SIPHeaders()
        if let via = topViaText { h.append(HeaderName(.via), via) }
        for r in lines(.route) { h.append(r) }
        h.append(HeaderName(.maxForwards), "70")
        for f in lines(.from) { h.append(f) }
        if let to = response.headers.lines.first(where: { $0.known == .to }) {
            h.append(to)
        } else {
            for t in lines(.to) { h.append(t) }
        }
        for c in lines(.callID) { h.append(c) }
        let number = (try? cseq())?.sequence ?? 0
        h.append(HeaderName(.cseq), "\(number) ACK")
        h.append(HeaderName(.contentLength), "0")
        return .request(.ack, requestURI ?? .other(scheme: "sip", text: "sip:invalid"), headers: h)
    }

    /// A 100 Trying for this request (RFC 3261 sections 8.2.6.1 and 8.2.6.2): Via (every value,
    /// in order), From, To (no tag is added), Call-ID, CSeq and Timestamp copied; no body.
    public func makeTrying() -> SIPMessage {
        var h = SIPHeaders()
        for line in headers.lines {
            switch line.known {
            case .via, .from, .to, .callID, .cseq, .timestamp: h.append(line)
            default: break
            }
        }
        h.append(HeaderName(.contentLength), "0")
        return .response(100, "Trying", headers: h)
    }

    /// A CANCEL for this request (RFC 3261 section 9.1): the same Request-URI, Call-ID, To, From
    /// and CSeq number (method CANCEL); one Via, the top Via of this request; this request's
    /// Route headers; Max-Forwards 70; no body. The TU sends it in a new client transaction,
    /// and should do so only once a provisional response has arrived.
    public func makeCancel() -> SIPMessage {
        var h = SIPHeaders()
        if let via = topViaText { h.append(HeaderName(.via), via) }
        for r in lines(.route) { h.append(r) }
        h.append(HeaderName(.maxForwards), "70")
        for f in lines(.from) { h.append(f) }
        for t in lines(.to) { h.append(t) }
        for c in lines(.callID) { h.append(c) }
        let number = (try? cseq())?.sequence ?? 0
        h.append(HeaderName(.cseq), "\(number) CANCEL")
        h.append(HeaderName(.contentLength), "0")
        return .request(.cancel, requestURI ?? .other(scheme: "sip", text: "sip:invalid"), headers: h)
    }
}
