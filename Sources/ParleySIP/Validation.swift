extension SIPMessage {
    /// Checks what an element must check before acting on a message (RFC 3261 sections 8.2, 16.3
    /// and 18, RFC 4475 section 3.1.2): the version, the mandatory headers and the grammar of every
    /// header Parley reads. Throws the first problem, with the answer it calls for.
    ///
    /// One pass finds where each header Parley reads stands; the checks then run in a fixed order
    /// (version, mandatory headers, From/To/Call-ID/CSeq, then the rest), so the error reported
    /// for a message with several problems does not depend on header order.
    public func validate() throws(SIPParseError) {
        _ = try validated()
    }

    /// Validates, and keeps the typed headers it parsed so later reads need not parse again
    /// (until the headers change). The parser calls this.
    public mutating func validateAndCache() throws(SIPParseError) {
        parsed = try validated()
    }

    func validated() throws(SIPParseError) -> ParsedHeaders {
        let isRequest = self.isRequest
        let cache = ParsedHeaders()
        let bad: SIPParseError.Disposition = isRequest ? .respond(400) : .drop

        // RFC 3261 section 8.2.2 (505) for requests; a response of another version is dropped.
        if !asciiCaseInsensitiveEquals(version, "SIP/2.0") {
            throw SIPParseError("SIP version \(version) is not supported", line: 1, disposition: isRequest ? .respond(505) : .drop)
        }
        if case .request(_, .sip(let u), _) = startLine, !u.headers.isEmpty {
            // RFC 3261 section 19.1.1: headers are not allowed in a Request-URI.
            throw SIPParseError("Request-URI must not carry headers", line: 1, disposition: bad)
        }

        var index = HeaderIndex()
        let lines = headers.lines
        for i in 0..<lines.count {
            if let k = lines[i].known { index.note(k, at: i) }
        }
        do throws(SIPParseError) {
            for k in [KnownHeader.via, .from, .to, .callID, .cseq] where index.first(k) == nil {
                throw SIPParseError("missing mandatory header", header: k.canonicalName)
            }
            for k in [KnownHeader.from, .to, .callID, .cseq] where index.count(k) > 1 {
                throw SIPParseError("appears more than once", header: k.canonicalName)
            }
            try check(.from, index, lines) { v throws(SIPSyntaxError) in cache.from = try NameAddress.parse(bytes: v) }
            try check(.to, index, lines) { v throws(SIPSyntaxError) in cache.to = try NameAddress.parse(bytes: v) }
            try check(.callID, index, lines) { v throws(SIPSyntaxError) in
                // callid = word [ "@" word ]: no white space.
                if v.isEmpty { throw SIPSyntaxError("empty value") }
                for c in v where c <= ASCII.sp || c >= 0x7F {
                    throw SIPSyntaxError("white space or control character in value")
                }
            }
            try check(.cseq, index, lines) { v throws(SIPSyntaxError) in
                let cseq = try CSeq.parse(bytes: v)
                cache.cseq = cseq
                if let m = method, cseq.method != m {
                    throw SIPSyntaxError("method \(cseq.method) does not match the request method \(m)")
                }
            }
            try checkAll(.via, index, lines) { v throws(SIPSyntaxError) in
                let list = try Via.parseList(bytes: v)
                if cache.vias.isEmpty { cache.vias = list } else { cache.vias += list }
                for via in list where !asciiCaseInsensitiveEquals(via.protocolName, "SIP") || via.protocolVersion != "2.0" {
                    throw SIPSyntaxError("unsupported protocol \(via.protocolName)/\(via.protocolVersion)")
                }
            }
            try check(.maxForwards, index, lines) { v throws(SIPSyntaxError) in cache.maxForwards = Int(try parseDecimal(bytes: v, max: 255, what: "value")) }
            if index.count(.contentLength) > 1 {
                var seen: String?
                for i in 0..<lines.count where lines[i].known == .contentLength {
                    if let s = seen, s != lines[i].value {
                        throw SIPParseError("appears more than once with different values", header: "Content-Length")
                    }
                    seen = lines[i].value
                }
            }
            try check(.contentLength, index, lines) { v throws(SIPSyntaxError) in _ = try parseDecimal(bytes: v, max: UInt64(Int32.max), what: "value") }
            try check(.expires, index, lines) { v throws(SIPSyntaxError) in _ = try parseDecimal(bytes: v, max: UInt64(UInt32.max), what: "value") }
            var wildcard = false
            var contactCount = 0
            try checkAll(.contact, index, lines) { v throws(SIPSyntaxError) in
                let list = try ContactValue.parseList(bytes: v)
                if cache.contacts.isEmpty { cache.contacts = list } else { cache.contacts += list }
                for c in list {
                    contactCount += 1
                    guard let a = c.address else { wildcard = true; continue }
                    if let e = a.parameters.value("expires") { _ = try parseDecimal(e, max: UInt64(UInt32.max), what: "expires parameter") }
                    if let q = a.parameters.value("q"), parseQValue(q) == nil {
                        throw SIPSyntaxError("q value '\(q)' is not between 0 and 1 with at most three decimals")
                    }
                }
            }
            if wildcard && contactCount > 1 { throw SIPParseError("'*' must be the only Contact", header: "Contact") }
            for k in [KnownHeader.route, .recordRoute, .path] {
                try checkAll(k, index, lines) { v throws(SIPSyntaxError) in
                    let list = try NameAddress.parseList(bytes: v)
                    switch k {
                    case .route: if cache.routes.isEmpty { cache.routes = list } else { cache.routes += list }
                    case .recordRoute: if cache.recordRoutes.isEmpty { cache.recordRoutes = list } else { cache.recordRoutes += list }
                    default: break
                    }
                }
            }
            try check(.contentType, index, lines) { v throws(SIPSyntaxError) in _ = try MediaType.parse(bytes: v) }
            if !body.isEmpty, index.first(.contentType) == nil, isRequest {
                throw SIPParseError("a body needs a Content-Type", header: "Content-Type")
            }
            try check(.date, index, lines) { v throws(SIPSyntaxError) in try checkDate(String(decoding: v, as: UTF8.self)) }
        } catch {
            var e = error
            e.disposition = bad
            throw e
        }
        return cache
    }

    private func check(_ k: KnownHeader, _ index: HeaderIndex, _ lines: [SIPHeader],
                       _ body: (UnsafeBufferPointer<UInt8>) throws(SIPSyntaxError) -> Void) throws(SIPParseError) {
        guard let i = index.first(k) else { return }
        do { try lines[i].withValueBytes(body) } catch { throw SIPParseError(error.message, header: k.canonicalName) }
    }

    private func checkAll(_ k: KnownHeader, _ index: HeaderIndex, _ lines: [SIPHeader],
                          _ body: (UnsafeBufferPointer<UInt8>) throws(SIPSyntaxError) -> Void) throws(SIPParseError) {
        guard let first = index.first(k) else { return }
        for i in first..<lines.count where lines[i].known == k {
            do { try lines[i].withValueBytes(body) } catch { throw SIPParseError(error.message, header: k.canonicalName) }
        }
    }
}

/// The typed headers validation parsed, kept with the message until its headers change.
/// Filled once, during validation, and never changed after: safe to share.
final class ParsedHeaders: @unchecked Sendable {
    var vias: [Via] = []
    var from: NameAddress?
    var to: NameAddress?
    var cseq: CSeq?
    var maxForwards: Int?
    var contacts: [ContactValue] = []
    var routes: [NameAddress] = []
    var recordRoutes: [NameAddress] = []

    /// A copy with another top Via (shared copies are never changed).
    func with(topVia via: Via) -> ParsedHeaders {
        let p = ParsedHeaders()
        p.vias = vias
        if p.vias.isEmpty { p.vias = [via] } else { p.vias[0] = via }
        p.from = from
        p.to = to
        p.cseq = cseq
        p.maxForwards = maxForwards
        p.contacts = contacts
        p.routes = routes
        p.recordRoutes = recordRoutes
        return p
    }
}

/// Where the known headers stand in a message: the first line of each and how many lines.
/// Kept inline (no allocation): every received message is indexed once.
struct HeaderIndex {
    /// Room for every KnownHeader (ParleySIPTests checks that they fit).
    static let capacity = 64
    private var firsts = InlineArray<64, Int16>(repeating: -1)
    private var counts = InlineArray<64, UInt16>(repeating: 0)

    mutating func note(_ k: KnownHeader, at i: Int) {
        let r = Int(k.rawValue)
        if firsts[r] < 0 { firsts[r] = Int16(truncatingIfNeeded: i) }
        counts[r] &+= 1
    }

    func first(_ k: KnownHeader) -> Int? {
        let f = firsts[Int(k.rawValue)]
        return f < 0 ? nil : Int(f)
    }

    func count(_ k: KnownHeader) -> Int { Int(counts[Int(k.rawValue)]) }
}

/// `rfc1123-date = wkday "," SP date1 SP time SP "GMT"` (RFC 3261 section 20.17).
func checkDate(_ text: String) throws(SIPSyntaxError) {
    let parts = text.split(separator: " ", omittingEmptySubsequences: false)
    let days = ["Mon,", "Tue,", "Wed,", "Thu,", "Fri,", "Sat,", "Sun,"]
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    guard parts.count == 6, days.contains(String(parts[0])), parts[1].count == 2, parts[1].allSatisfy(\.isNumber),
          months.contains(String(parts[2])), parts[3].count == 4, parts[3].allSatisfy(\.isNumber) else {
        throw SIPSyntaxError("not an RFC 1123 date")
    }
    let time = parts[4].split(separator: ":")
    guard time.count == 3, time.allSatisfy({ $0.count == 2 && $0.allSatisfy(\.isNumber) }) else {
        throw SIPSyntaxError("invalid time of day")
    }
    guard parts[5] == "GMT" else { throw SIPSyntaxError("time zone must be GMT, not \(parts[5])") }
}
