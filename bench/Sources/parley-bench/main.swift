// Message-core benchmark: parse (with validation) plus serialize of a typical INVITE, on one
// core. Prints messages per second; run it through bench/run-parser.sh (release build).
import ParleySIP
import Foundation

let invite = """
INVITE sip:sales@cc.example.com SIP/2.0\r
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r
Max-Forwards: 70\r
To: "Sales" <sip:sales@cc.example.com>\r
From: "Alice Caller" <sip:alice@atlanta.example.com>;tag=1928301774\r
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r
CSeq: 314159 INVITE\r
Contact: <sip:alice@192.0.2.10:5060;transport=udp>\r
Subject: Order status\r
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE\r
Supported: timer, replaces\r
User-Agent: ExamplePhone/1.0\r
Content-Type: application/sdp\r
Content-Length: 
"""

let sdp = """
v=0\r
o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r
s=-\r
c=IN IP4 192.0.2.10\r
t=0 0\r
m=audio 49170 RTP/AVP 0 8 97 101\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:97 iLBC/8000\r
a=rtpmap:101 telephone-event/8000\r
a=fmtp:101 0-15\r
a=sendrecv\r
a=ptime:20\r

"""

let message = Array((invite + "\(sdp.utf8.count)\r\n\r\n" + sdp).utf8)
var iterations = 300_000
var seconds = 0.0
var args = CommandLine.arguments.dropFirst()
while let a = args.first {
    args = args.dropFirst()
    if a == "--iterations", let n = args.first.flatMap({ Int($0) }) { iterations = n; args = args.dropFirst() }
}

// Check the message is valid before timing it.
let check = try SIPParser.parse(message)
let again = try SIPParser.parse(check.serialized())
precondition(again == check)

func run(_ n: Int) -> (Double, Int) {
    var bytes = 0
    let clock = ContinuousClock()
    let start = clock.now
    for _ in 0..<n {
        do {
            let m = try SIPParser.parse(message)
            bytes &+= m.serialized().count
        } catch {
            fatalError("parse failed: \(error)")
        }
    }
    let d = clock.now - start
    let secs = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    return (secs, bytes)
}

if CommandLine.arguments.contains("--from-only") {
    let from = check.headers.value(.from)!
    for _ in 0..<2_000_000 { _ = try NameAddress.parse(from) }
    exit(0)
}
_ = run(iterations / 10)  // warm up
var best = Double.infinity
for _ in 0..<3 {
    let (secs, bytes) = run(iterations)
    precondition(bytes == iterations * message.count)
    best = min(best, secs)
}
let rate = Double(iterations) / best
if CommandLine.arguments.contains("--split") {
    let clock = ContinuousClock()
    var t = clock.now
    for _ in 0..<iterations { _ = try SIPParser.parse(message, validate: false) }
    print("parse only: \(clock.now - t)")
    t = clock.now
    for _ in 0..<iterations { try check.validate() }
    print("validate only: \(clock.now - t)")
    let via = check.headers.value(.via)!, from = check.headers.value(.from)!, cs = check.headers.value(.cseq)!, ct = check.headers.value(.contact)!
    t = clock.now
    for _ in 0..<iterations { _ = try Via.parseList(via) }
    print("  via: \(clock.now - t)")
    t = clock.now
    for _ in 0..<iterations { _ = try NameAddress.parse(from) }
    print("  from: \(clock.now - t)")
    t = clock.now
    for _ in 0..<iterations { _ = try CSeq.parse(cs) }
    print("  cseq: \(clock.now - t)")
    t = clock.now
    for _ in 0..<iterations { _ = try ContactValue.parseList(ct) }
    print("  contact: \(clock.now - t)")
    t = clock.now
    for _ in 0..<iterations { _ = try check.from() }
    print("  message.from(): \(clock.now - t)")
    t = clock.now
    for _ in 0..<iterations { _ = check.serialized() }
    print("serialize only: \(clock.now - t)")
}
print("message: \(message.count) bytes INVITE with SDP")
print("iterations: \(iterations) x 3 runs, best run \(String(format: "%.3f", best)) s")
print("parse+validate+serialize: \(Int(rate)) messages/s on one core (\(String(format: "%.2f", 1e6 / rate)) us each)")
