/// The bytes of a header value: a range of the received message's bytes (parsing copies
/// nothing), or the string it was set to (building a message copies nothing either: a value
/// set from a string is written out from that string's own bytes).
struct ValueBytes: Sendable {
    private enum Repr: Sendable {
        case slice([UInt8], Range<Int>)
        case text(String)
    }
    private var repr: Repr

    init(_ s: String) {
        repr = .text(s)
    }

    init(storage: [UInt8], range: Range<Int>) {
        repr = .slice(storage, range)
    }

    var count: Int {
        switch repr {
        case .slice(_, let r): r.count
        case .text(let s): s.utf8.count
        }
    }

    func withBuffer<R, E: Error>(_ body: (UnsafeBufferPointer<UInt8>) throws(E) -> R) throws(E) -> R {
        let result: Result<R, E>
        switch repr {
        case .slice(let storage, let r):
            result = storage.withUnsafeBufferPointer { all in
                Result { () throws(E) -> R in try body(UnsafeBufferPointer(rebasing: all[r])) }
            }
        case .text(var s):
            result = s.withUTF8 { buf in Result { () throws(E) -> R in try body(buf) } }
        }
        return try result.get()
    }

    var string: String {
        switch repr {
        case .slice: withBuffer { String(decoding: $0, as: UTF8.self) }
        case .text(let s): s
        }
    }

    /// The size of the buffer a sliced value is a range of (nil for a value set from a string).
    var storageCount: Int? {
        if case .slice(let storage, _) = repr { return storage.count }
        return nil
    }

    /// The bytes at `r` (offsets within this value): a narrower range of the same storage, or
    /// a new string for a value that was set from one.
    func slice(_ r: Range<Int>) -> ValueBytes {
        switch repr {
        case .slice(let storage, let range):
            return ValueBytes(storage: storage, range: range.lowerBound + r.lowerBound..<range.lowerBound + r.upperBound)
        case .text:
            return ValueBytes(withBuffer { makeString($0, r) })
        }
    }

    static func == (a: ValueBytes, b: ValueBytes) -> Bool {
        guard a.count == b.count else { return false }
        return a.withBuffer { x in b.withBuffer { y in x.elementsEqual(y) } }
    }
}

/// One header line: its name as written and its value, unfolded and trimmed, as written.
public struct SIPHeader: Sendable, Equatable {
    /// The name as it appeared (or as the caller set it).
    public var name: String { didSet { known = KnownHeader(name: name) } }
    var bytes: ValueBytes
    /// The known header this name stands for (compact forms resolved).
    public private(set) var known: KnownHeader?

    /// The value with line folding replaced by a single space and outer white space removed.
    public var value: String {
        get { bytes.string }
        set { bytes = ValueBytes(newValue) }
    }

    public init(name: String, value: String) {
        self.name = name
        self.bytes = ValueBytes(value)
        self.known = KnownHeader(name: name)
    }

    public init(_ known: KnownHeader, _ value: String) {
        self.name = known.canonicalName
        self.bytes = ValueBytes(value)
        self.known = known
    }

    init(name: String, value: String, known: KnownHeader?) {
        self.name = name
        self.bytes = ValueBytes(value)
        self.known = known
    }

    init(name: String, bytes: ValueBytes, known: KnownHeader?) {
        self.name = name
        self.bytes = bytes
        self.known = known
    }

    /// Runs `body` over the value's UTF-8 bytes without making a String.
    public func withValueBytes<R, E: Error>(_ body: (UnsafeBufferPointer<UInt8>) throws(E) -> R) throws(E) -> R {
        try bytes.withBuffer(body)
    }

    /// Whether this header line is the header `name` (any spelling, compact forms included).
    public func matches(_ name: HeaderName) -> Bool {
        if let k = name.known { return known == k }
        return known == nil && asciiCaseInsensitiveEquals(self.name, name.text)
    }

    /// The comma-separated elements of this header's value, when its grammar is a list
    /// (split outside quoted strings and angle brackets); otherwise the whole value.
    public var elements: [String] {
        let isList = known?.isList ?? false
        return isList ? splitList(value) : [value]
    }

    /// Calls `body` with the bytes of each element `elements` holds, in order, making no string.
    public func forEachElement(_ body: (UnsafeBufferPointer<UInt8>) -> Void) {
        withValueBytes { buf in
            guard known?.isList ?? false else { return body(buf) }
            forEachListElement(buf) { element, _ in
                body(UnsafeBufferPointer(rebasing: buf[element]))
                return true
            }
        }
    }

    public static func == (a: SIPHeader, b: SIPHeader) -> Bool {
        a.name == b.name && a.bytes == b.bytes
    }
}

/// Splits a comma-separated header value where the grammar allows: never inside a quoted string
/// or angle brackets. Empty elements are dropped; each element is trimmed.
public func splitList(_ value: String) -> [String] {
    withBytes(value) { buf in
        var out: [String] = []
        forEachListElement(buf) { element, _ in
            out.append(makeString(buf, element))
            return true
        }
        return out
    }
}

/// The first element of a list value as `splitList` finds it, and where the elements after it
/// begin; nil when the value holds no element.
func firstListElement(_ buf: UnsafeBufferPointer<UInt8>) -> (element: Range<Int>, next: Int)? {
    var first: (element: Range<Int>, next: Int)?
    forEachListElement(buf) { element, next in
        first = (element, next)
        return false
    }
    return first
}

/// Calls `body` with each non-empty element of a comma-separated list value, trimmed, and the
/// offset just past its comma (the end of the value for the last one), splitting never inside a
/// quoted string or angle brackets. Stops when `body` returns false.
func forEachListElement(_ buf: UnsafeBufferPointer<UInt8>, _ body: (Range<Int>, Int) -> Bool) {
    func element(_ start: Int, _ end: Int) -> Range<Int>? {
        var a = start, b = end
        while a < b, ASCII.isWS(buf[a]) { a += 1 }
        while b > a, ASCII.isWS(buf[b - 1]) { b -= 1 }
        return b > a ? a..<b : nil
    }
    var start = 0
    var i = 0
    var inQuotes = false
    var inAngle = false
    while i < buf.count {
        let c = buf[i]
        if inQuotes {
            if c == ASCII.backslash { i += 1 } else if c == ASCII.quote { inQuotes = false }
        } else if c == ASCII.quote {
            inQuotes = true
        } else if c == ASCII.lt {
            inAngle = true
        } else if c == ASCII.gt {
            inAngle = false
        } else if c == ASCII.comma && !inAngle {
            if let e = element(start, i), !body(e, i + 1) { return }
            start = i + 1
        }
        i += 1
    }
    if let e = element(start, buf.count) { _ = body(e, buf.count) }
}

/// The headers of a message, in order.
public struct SIPHeaders: Sendable, Equatable, Sequence {
    public private(set) var lines: [SIPHeader]

    public init(_ lines: [SIPHeader] = []) { self.lines = lines }

    public var count: Int { lines.count }
    public func makeIterator() -> IndexingIterator<[SIPHeader]> { lines.makeIterator() }
    public subscript(index: Int) -> SIPHeader {
        get { lines[index] }
        set { lines[index] = newValue }
    }

    /// The value of the first line of header `name`, or nil.
    public subscript(name: HeaderName) -> String? {
        first(name)?.value
    }

    public func first(_ name: HeaderName) -> SIPHeader? {
        lines.first { $0.matches(name) }
    }

    /// The value of the first line of a known header (the fast path used by the typed accessors).
    
    public func value(_ known: KnownHeader) -> String? {
        for i in 0..<lines.count where lines[i].known == known { return lines[i].value }
        return nil
    }

    /// The index of the first line of a known header.
    public func firstIndex(_ known: KnownHeader) -> Int? {
        for i in 0..<lines.count where lines[i].known == known { return i }
        return nil
    }

    /// Every line of header `name`, in order.
    public func values(_ name: HeaderName) -> [String] {
        lines.filter { $0.matches(name) }.map(\.value)
    }

    /// Every element of header `name`: all its lines, list values split at commas where the
    /// grammar allows.
    public func elements(_ name: HeaderName) -> [String] {
        lines.filter { $0.matches(name) }.flatMap(\.elements)
    }

    public func contains(_ name: HeaderName) -> Bool { first(name) != nil }

    /// Adds a line at the end.
    public mutating func append(_ name: HeaderName, _ value: String) {
        lines.append(SIPHeader(name: name.text, value: value, known: name.known))
    }

    public mutating func append(_ header: SIPHeader) { lines.append(header) }

    /// Adds a line before the first line of the same header, or at the top if there is none
    /// (how a proxy inserts its Via and Record-Route).
    public mutating func prepend(_ name: HeaderName, _ value: String) {
        let h = SIPHeader(name: name.text, value: value, known: name.known)
        if let i = lines.firstIndex(where: { $0.matches(name) }) {
            lines.insert(h, at: i)
        } else {
            lines.insert(h, at: 0)
        }
    }

    /// Removes every line of header `name`.
    public mutating func removeAll(_ name: HeaderName) {
        lines.removeAll { $0.matches(name) }
    }

    /// Replaces every line of header `name` with one line, kept where the first one stood.
    public mutating func set(_ name: HeaderName, _ value: String) {
        if let i = lines.firstIndex(where: { $0.matches(name) }) {
            lines[i].value = value
            var j = lines.count - 1
            while j > i {
                if lines[j].matches(name) { lines.remove(at: j) }
                j -= 1
            }
        } else {
            append(name, value)
        }
    }

    /// Removes the first element of a list header (the top Via, the first Route), dropping the
    /// line when it held only that element. Returns the element removed.
    ///
    /// The elements left stay as they were written (the line keeps a range of the same bytes):
    /// a proxy does this to the Via of every response it relays, so nothing is split or joined.
    @discardableResult
    public mutating func removeFirstElement(_ name: HeaderName) -> String? {
        guard let i = lines.firstIndex(where: { $0.matches(name) }) else { return nil }
        guard lines[i].known?.isList ?? false else {
            let value = lines[i].value
            lines.remove(at: i)
            return value
        }
        let bytes = lines[i].bytes
        let (first, rest) = bytes.withBuffer { buf -> (String?, Range<Int>?) in
            guard let f = firstListElement(buf) else { return (nil, nil) }
            var a = f.next, b = buf.count
            while a < b, ASCII.isWS(buf[a]) || buf[a] == ASCII.comma { a += 1 }
            while b > a, ASCII.isWS(buf[b - 1]) || buf[b - 1] == ASCII.comma { b -= 1 }
            return (makeString(buf, f.element), a < b ? a..<b : nil)
        }
        if let rest {
            lines[i].bytes = bytes.slice(rest)
        } else {
            lines.remove(at: i)
        }
        return first
    }

    public mutating func reserveCapacity(_ n: Int) { lines.reserveCapacity(n) }
}
