extension SIPMessage {
    /// Checks what an element must check before acting on a message (RFC 3261 sections 8.2, 16.3
    /// and 18, RFC 4475 section 3.1.2): the version, the mandatory headers and the grammar of every
    /// header Parley reads. Throws the first problem, with the answer it calls for.
    public func validate() throws(SIPParseError) {
        let isRequest = self.isRequest
        let bad: SIPParseError.Disposition = isRequest ? .respond(400) : .drop
        func fail(_ e: SIPParseError) -> SIPParseError {
            var e = e
            e.disposition = bad
            return e
        }

        // RFC 3261 section 8.2.2 (505) for requests; a response of another version is dropped.
        if !asciiCaseInsensitiveEquals(version, "SIP/2.0") {
            throw SIPParseError("SIP version \(version) is not supported", line: 1, disposition: isRequest ? .respond(505) : .drop)
        }
        if case .request(_, .sip(let u), _) = startLine, !u.headers.isEmpty {
            // RFC 3261 section 19.1.1: headers are not allowed in a Request-URI.
            throw SIPParseError("Request-URI must not carry headers", line: 1, disposition: bad)
        }

        for (known, name) in [(KnownHeader.via, "Via"), (.from, "From"), (.to, "To"), (.callID, "Call-ID"), (.cseq, "CSeq")]
        where headers.value(known) == nil {
            throw SIPParseError("missing mandatory header", header: name, disposition: bad)
        }

        do throws(SIPParseError) {
            let vias = try self.vias()
            if vias.isEmpty { throw SIPParseError("empty value", header: "Via") }
            for v in vias where !asciiCaseInsensitiveEquals(v.protocolName, "SIP") || v.protocolVersion != "2.0" {
                throw SIPParseError("unsupported protocol \(v.protocolName)/\(v.protocolVersion)", header: "Via")
            }
            for known in [KnownHeader.from, .to] {
                let lines = headers.lines.filter { $0.known == known }
                if lines.count > 1 { throw SIPParseError("appears more than once", header: known.canonicalName) }
            }
            _ = try from()
            _ = try to()
            try checkCallID()
            guard let cseq = try cseq() else { throw SIPParseError("missing", header: "CSeq") }
            if headers.lines.filter({ $0.known == .cseq }).count > 1 { throw SIPParseError("appears more than once", header: "CSeq") }
            if let m = method, cseq.method != m {
                throw SIPParseError("method \(cseq.method) does not match the request method \(m)", header: "CSeq")
            }
            _ = try maxForwards()
            let lengths = headers.lines.filter { $0.known == .contentLength }
            if lengths.count > 1, Set(lengths.map { $0.value }).count > 1 {
                throw SIPParseError("appears more than once with different values", header: "Content-Length")
            }
            _ = try contentLength()
            _ = try expires()
            let contacts = try self.contacts()
            if contacts.contains(.wildcard), contacts.count > 1 {
                throw SIPParseError("'*' must be the only Contact", header: "Contact")
            }
            for c in contacts {
                if let e = c.address?.parameters.value("expires") {
                    do { _ = try parseDecimal(e, max: UInt64(UInt32.max), what: "expires parameter") } catch {
                        throw SIPParseError(error.message, header: "Contact")
                    }
                }
                if let q = c.address?.parameters.value("q"), parseQValue(q) == nil {
                    throw SIPParseError("q value '\(q)' is not between 0 and 1 with at most three decimals", header: "Contact")
                }
            }
            _ = try routes()
            _ = try recordRoutes()
            _ = try paths()
            _ = try contentType()
            if !body.isEmpty, headers.value(.contentType) == nil, isRequest {
                throw SIPParseError("a body needs a Content-Type", header: "Content-Type")
            }
            if let date = headers.value(.date) {
                do { try checkDate(date) } catch { throw SIPParseError(error.message, header: "Date") }
            }
        } catch {
            throw fail(error)
        }
    }

    private func checkCallID() throws(SIPParseError) {
        // callid = word [ "@" word ]: no white space.
        guard let id = callID, !id.isEmpty else { throw SIPParseError("empty value", header: "Call-ID") }
        if id.utf8.contains(where: { $0 <= ASCII.sp || $0 >= 0x7F }) {
            throw SIPParseError("white space or control character in value", header: "Call-ID")
        }
    }
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
