// Allocation counts of the message core (issue 20), in the style of SwiftNIO's allocation
// counters: this executable links CAllocCounter, which replaces malloc and its family in the
// process and counts every call. Each case runs once to warm up, then REPS times; the count per
// run is what it allocated divided by REPS. A count over its limit fails the run (exit 1), so a
// change that brings allocations back shows in `make test`; a count under its limit is reported,
// so that the limit can be lowered to it.
//
//   parley-alloc-counts [--reps N] [--only NAME]
//
// The counts are those of a release build (`make test` builds it so); a debug build allocates
// more and is not checked against the limits.
import CAllocCounter
import ParleySIP
#if canImport(Glibc)
import Glibc
#endif

let invite = Array("""
INVITE sip:sales@cc.example.com SIP/2.0\r
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r
Max-Forwards: 70\r
To: "Sales" <sip:sales@cc.example.com>\r
From: "Alice Caller" <sip:alice@atlanta.example.com>;tag=1928301774\r
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r
CSeq: 314159 INVITE\r
Contact: <sip:alice@192.0.2.10:5060;transport=udp>\r
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY\r
Supported: timer, replaces, 100rel\r
User-Agent: ExamplePhone/1.0 (build 4711)\r
Content-Type: application/sdp\r
Content-Length: 129\r
\r
v=0\r
o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r
s=-\r
c=IN IP4 192.0.2.10\r
t=0 0\r
m=audio 49170 RTP/AVP 0 8 101\r
a=sendrecv\r

""".utf8)

let ringing = Array("""
SIP/2.0 180 Ringing\r
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKpl1a2b3c.4d5e6f;rport=5070;received=127.0.0.1\r
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport=5060;received=192.0.2.10\r
Record-Route: <sip:127.0.0.1:5070;lr>\r
To: "Sales" <sip:sales@cc.example.com>;tag=as7d6f5e\r
From: "Alice Caller" <sip:alice@atlanta.example.com>;tag=1928301774\r
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r
CSeq: 314159 INVITE\r
Contact: <sip:agent-7@127.0.0.1:5090>\r
Content-Length: 0\r
\r

""".utf8)

/// One case: what it does to a message, and the most allocations a run of it may make.
struct Case {
    var name: String
    var limit: Int
    var run: () throws -> Int
}

nonisolated(unsafe) var out: [UInt8] = []
out.reserveCapacity(4096)

/// The received datagram: the transport copies it out of the channel's buffer into an array.
func received(_ bytes: [UInt8]) -> [UInt8] { bytes.withUnsafeBufferPointer { Array($0) } }

/// What the transport does to a request's top Via (RFC 3261 18.2.1, RFC 3581 4).
func stamp(_ m: inout SIPMessage) throws {
    guard var via = try m.topVia() else { return }
    via.parameters.set("received", "198.51.100.7")
    via.parameters.set("rport", "5062")
    m.replaceTopVia(via)
}

func write(_ m: SIPMessage) -> Int {
    out.removeAll(keepingCapacity: true)
    m.serialize { out.append(contentsOf: $0) }
    return out.count
}

let target = try URI.parse("sip:agent-7@127.0.0.1:5090")

let cases: [Case] = [
    Case(name: "parse an INVITE (frame, start line, header lines)", limit: 4) {
        try SIPParser.parse(received(invite), validate: false).headers.count
    },
    Case(name: "parse and validate an INVITE", limit: 12) {
        try SIPParser.parse(received(invite)).headers.count
    },
    Case(name: "parse and validate a 180 response", limit: 17) {
        try SIPParser.parse(received(ringing)).headers.count
    },
    Case(name: "write a parsed INVITE unchanged", limit: 12) {
        write(try SIPParser.parse(received(invite)))
    },
    Case(name: "stamp received and rport on an INVITE's Via", limit: 19) {
        var m = try SIPParser.parse(received(invite))
        try stamp(&m)
        return m.headers.count
    },
    Case(name: "proxy an INVITE: stamp, Request-URI, Max-Forwards, Record-Route, Via, write", limit: 20) {
        var m = try SIPParser.parse(received(invite))
        try stamp(&m)
        m.requestURI = target
        if let mf = try m.maxForwards() { m.headers.set(HeaderName(.maxForwards), String(mf - 1)) }
        m.headers.prepend(HeaderName(.recordRoute), "<sip:127.0.0.1:5070;lr>")
        m.headers.prepend(HeaderName(.via), "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKpl1a2b3c.4d5e6f;rport")
        return write(m)
    },
    Case(name: "proxy a 180: pop the top Via, write", limit: 18) {
        var m = try SIPParser.parse(received(ringing))
        m.headers.removeFirstElement(HeaderName(.via))
        return write(m)
    },
]

var reps = 1000
var only: String?
var args = CommandLine.arguments.dropFirst().makeIterator()
while let a = args.next() {
    switch a {
    case "--reps": reps = args.next().flatMap { Int($0) } ?? reps
    case "--only": only = args.next()
    default:
        print("usage: parley-alloc-counts [--reps N] [--only NAME]")
        exit(2)
    }
}

var failed = 0
var sink = 0
for c in cases where only.map({ c.name.contains($0) }) ?? true {
    sink &+= try c.run()
    let before = parley_alloc_counts_now()
    for _ in 0..<reps { sink &+= try c.run() }
    let after = parley_alloc_counts_now()
    let allocations = after.allocations - before.allocations + after.reallocations - before.reallocations
    let perRun = (Double(allocations) / Double(reps) * 100).rounded() / 100
    let count = Int(perRun.rounded(.up))
    let verdict = count > c.limit ? "OVER the limit of \(c.limit)" : count < c.limit ? "under the limit of \(c.limit): lower it" : "at the limit"
    if count > c.limit { failed += 1 }
    print("\(c.name): \(perRun) allocations, \((after.bytes - before.bytes) / Int64(reps)) bytes; \(verdict)")
}
precondition(sink != 42)
if failed > 0 {
    print("alloc-counts: \(failed) case(s) over their limit")
    exit(1)
}
print("alloc-counts: every case within its limit")
