extension SIPMessage {
    /// The message as bytes on the wire: the start line, each header as `Name: value` on its own
    /// line, an empty line, and the body. Parsing the result gives this message again.
    public func serialized() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256 + headers.count * 48 + body.count)
        switch startLine {
        case .request(let method, let uri, let version):
            out.append(contentsOf: method.rawValue.utf8)
            out.append(ASCII.sp)
            out.append(contentsOf: uri.description.utf8)
            out.append(ASCII.sp)
            out.append(contentsOf: version.utf8)
        case .response(let version, let code, let reason):
            out.append(contentsOf: version.utf8)
            out.append(ASCII.sp)
            out.append(contentsOf: String(code).utf8)
            out.append(ASCII.sp)
            out.append(contentsOf: reason.utf8)
        }
        out.append(ASCII.cr)
        out.append(ASCII.lf)
        for h in headers.lines {
            out.append(contentsOf: h.name.utf8)
            out.append(ASCII.colon)
            out.append(ASCII.sp)
            out.append(contentsOf: h.value.utf8)
            out.append(ASCII.cr)
            out.append(ASCII.lf)
        }
        out.append(ASCII.cr)
        out.append(ASCII.lf)
        out.append(contentsOf: body)
        return out
    }

    /// The message as text (the body decoded as UTF-8).
    public var text: String { String(decoding: serialized(), as: UTF8.self) }
}
