extension Array where Element == UInt8 {
    /// Appends a string's UTF-8 bytes with one copy.
    @inline(__always)
    mutating func appendUTF8(_ s: String) {
        if s.utf8.withContiguousStorageIfAvailable({ self.append(contentsOf: $0) }) == nil {
            append(contentsOf: s.utf8)
        }
    }
}

extension SIPMessage {
    /// The message as bytes on the wire: the start line, each header as `Name: value` on its own
    /// line, an empty line, and the body. Parsing the result gives this message again.
    public func serialized() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64 + body.count + headerLinesCount)
        if let raw = rawStartLine {
            raw.withBuffer { out.append(contentsOf: $0) }
        } else {
            writeStartLine(into: &out)
        }
        out.append(ASCII.cr)
        out.append(ASCII.lf)
        for i in 0..<headers.count {
            out.appendUTF8(headers[i].name)
            out.append(ASCII.colon)
            out.append(ASCII.sp)
            headers[i].withValueBytes { out.append(contentsOf: $0) }
            out.append(ASCII.cr)
            out.append(ASCII.lf)
        }
        out.append(ASCII.cr)
        out.append(ASCII.lf)
        out.append(contentsOf: body)
        return out
    }

    /// How many bytes `serialized()` writes, without writing them.
    public var serializedCount: Int {
        let n = 4 + body.count + headerLinesCount  // the start line's CRLF, the empty line
        if let raw = rawStartLine { return n + raw.count }
        switch startLine {
        case .request(let method, let uri, let version):
            return n + method.rawValue.utf8.count + uri.description.utf8.count + version.utf8.count + 2
        case .response(let version, let code, let reason):
            return n + version.utf8.count + String(code).utf8.count + reason.utf8.count + 2
        }
    }

    /// The bytes of the header lines (`Name: value` and CRLF each).
    private var headerLinesCount: Int {
        var n = 0
        for i in 0..<headers.count { n += headers[i].name.utf8.count + headers[i].bytes.count + 4 }
        return n
    }

    private func writeStartLine(into out: inout [UInt8]) {
        switch startLine {
        case .request(let method, let uri, let version):
            out.appendUTF8(method.rawValue)
            out.append(ASCII.sp)
            out.appendUTF8(uri.description)
            out.append(ASCII.sp)
            out.appendUTF8(version)
        case .response(let version, let code, let reason):
            out.appendUTF8(version)
            out.append(ASCII.sp)
            out.appendUTF8(String(code))
            out.append(ASCII.sp)
            out.appendUTF8(reason)
        }
    }

    /// The message as text (the body decoded as UTF-8).
    public var text: String { String(decoding: serialized(), as: UTF8.self) }
}
