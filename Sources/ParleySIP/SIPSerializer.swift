extension SIPMessage {
    /// The message as bytes on the wire: the start line, each header as `Name: value` on its own
    /// line, an empty line, and the body. Parsing the result gives this message again.
    public func serialized() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(estimatedSerializedCount)
        serialize { out.append(contentsOf: $0) }
        return out
    }

    /// At least what `serialized()` writes, unless a Request-URI written anew is over 230 bytes
    /// (cheaper than `serializedCount`, which writes the Request-URI out to count it). A buffer
    /// sized by it is not grown while the message is written into it.
    public var estimatedSerializedCount: Int {
        256 + body.count + headerLinesCount + (rawStartLine?.count ?? 0)
    }

    /// Hands the bytes of `serialized()` to `sink` piece by piece, in order (for writing them
    /// straight into a transport's buffer).
    public func serialize(_ sink: (UnsafeBufferPointer<UInt8>) -> Void) {
        if let raw = rawStartLine {
            raw.withBuffer(sink)
        } else {
            writeStartLine(sink)
        }
        Self.crlf.withUTF8Buffer(sink)
        for i in 0..<headers.count {
            var name = headers[i].name
            name.withUTF8(sink)
            Self.colonSpace.withUTF8Buffer(sink)
            headers[i].withValueBytes(sink)
            Self.crlf.withUTF8Buffer(sink)
        }
        Self.crlf.withUTF8Buffer(sink)
        body.withUnsafeBufferPointer(sink)
    }

    private static let crlf: StaticString = "\r\n"
    private static let colonSpace: StaticString = ": "

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

    private func writeStartLine(_ sink: (UnsafeBufferPointer<UInt8>) -> Void) {
        func put(_ text: String) {
            var t = text
            t.withUTF8(sink)
        }
        let space: StaticString = " "
        switch startLine {
        case .request(let method, let uri, let version):
            put(method.rawValue)
            space.withUTF8Buffer(sink)
            put(uri.description)
            space.withUTF8Buffer(sink)
            put(version)
        case .response(let version, let code, let reason):
            put(version)
            space.withUTF8Buffer(sink)
            put(String(code))
            space.withUTF8Buffer(sink)
            put(reason)
        }
    }

    /// The message as text (the body decoded as UTF-8).
    public var text: String { String(decoding: serialized(), as: UTF8.self) }
}
