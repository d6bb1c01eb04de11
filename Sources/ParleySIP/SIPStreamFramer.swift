/// Splits a byte stream (TCP, TLS) into messages: a partial message waits for more bytes,
/// several messages in one read come out one by one, and a stream that cannot become a valid
/// message within the limits is reported instead of buffered without bound.
public struct SIPStreamFramer: Sendable {
    public let limits: SIPParserLimits
    public let validate: Bool
    private var buffer: [UInt8] = []
    private var readIndex = 0

    public init(limits: SIPParserLimits = .default, validate: Bool = true) {
        self.limits = limits
        self.validate = validate
    }

    /// Bytes received and not yet consumed by a message.
    public var bufferedByteCount: Int { buffer.count - readIndex }

    /// Adds bytes read from the stream.
    public mutating func append<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        if readIndex > 0 && readIndex == buffer.count {
            // An idle connection keeps no large buffer a big message once needed.
            buffer.removeAll(keepingCapacity: buffer.capacity <= 65_536)
            readIndex = 0
        } else if readIndex > 4096 && readIndex * 2 > buffer.count {
            buffer.removeFirst(readIndex)
            readIndex = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The outcome of asking for the next message.
    public enum Next: Sendable {
        /// A complete message.
        case message(SIPMessage)
        /// A complete message that failed parsing or validation, with its bytes (to build a 400
        /// from); they were consumed and the stream can go on.
        case invalid(SIPParseError, [UInt8])
        /// Not enough bytes yet.
        case needMoreData
    }

    /// An error after which the stream cannot be resynchronised; the connection should close.
    public struct StreamError: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// Takes the next message out of the buffer.
    public mutating func next() throws(StreamError) -> Next {
        // RFC 3261 section 7.5 and RFC 5626 keep-alives: skip CRLFs between messages.
        while readIndex < buffer.count, buffer[readIndex] == ASCII.cr || buffer[readIndex] == ASCII.lf { readIndex += 1 }
        guard readIndex < buffer.count else { return .needMoreData }
        let limits = self.limits
        let validate = self.validate
        let start = readIndex
        let result = try buffer.withUnsafeBufferPointer { all throws(StreamError) -> (consumed: Int, next: Next)? in
            let buf = UnsafeBufferPointer(rebasing: all[start...])
            guard let head = SIPParser.findHeaderEnd(buf, from: 0, limit: limits.maxHeaderBytes) else {
                if buf.count > limits.maxHeaderBytes + 4 {
                    throw StreamError(message: "no end of headers within \(limits.maxHeaderBytes) bytes")
                }
                return nil
            }
            // Content-Length frames the body; without it the framing is lost.
            let length: Int
            do throws(SIPSyntaxError) { length = try SIPParser.contentLength(inHead: buf, 0..<head.headersEnd) ?? 0 } catch {
                throw StreamError(message: "unreadable Content-Length: \(error.message)")
            }
            guard length <= limits.maxBodyBytes else {
                throw StreamError(message: "body of \(length) bytes is over the limit of \(limits.maxBodyBytes)")
            }
            let total = head.bodyStart + length
            guard buf.count >= total else { return nil }
            do throws(SIPParseError) {
                let m = try SIPParser.parse(UnsafeBufferPointer(rebasing: buf[0..<total]), framing: .stream,
                                            limits: limits, validate: validate)
                return (total, .message(m))
            } catch {
                return (total, .invalid(error, Array(buf[0..<total])))
            }
        }
        guard let result else { return .needMoreData }
        readIndex = start + result.consumed
        return result.next
    }
}
