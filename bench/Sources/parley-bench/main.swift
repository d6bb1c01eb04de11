// Message-core benchmark: parse plus serialize of a typical INVITE with SDP, on one core.
// Prints messages per second for
//   - parse + serialize: framing, start line, headers split and named (what every message gets),
//   - parse + validate + serialize: also every typed header Parley reads checked
//     (Via, From, To, Call-ID, CSeq, Max-Forwards, Content-Length, Contact, Content-Type, ...).
// Run it through bench/run-parser.sh (release build, pinned to one core).
import Foundation
import ParleySIP

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
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY\r
Supported: timer, replaces, 100rel\r
User-Agent: ExamplePhone/1.0 (build 4711)\r
P-Preferred-Language: en\r
Accept: application/sdp\r
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
let iterations: Int = {
    let args = Array(CommandLine.arguments.dropFirst())
    if let i = args.firstIndex(of: "--iterations"), i + 1 < args.count, let n = Int(args[i + 1]) { return n }
    return 300_000
}()

// The message must be valid and must survive a round trip before anything is timed.
let check = try SIPParser.parse(message)
let again = try SIPParser.parse(check.serialized())
precondition(again == check)

func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

/// Best of three runs of `body` repeated `n` times, in seconds.
func best(_ n: Int, _ body: () throws -> Int) rethrows -> Double {
    let clock = ContinuousClock()
    var best = Double.infinity
    var sink = 0
    _ = try body()
    for _ in 0..<3 {
        let start = clock.now
        for _ in 0..<n { sink &+= try body() }
        best = min(best, seconds(clock.now - start))
    }
    precondition(sink != 42)
    return best
}

func report(_ label: String, _ secs: Double, iterations: Int = iterations) {
    let rate = Double(iterations) / secs
    print("\(label): \(Int(rate)) messages/s (\(String(format: "%.2f", 1e6 / rate)) us each)")
}

print("message: \(message.count)-byte INVITE with SDP; \(iterations) iterations, best of 3 runs, one core")
report("parse + serialize", try best(iterations) { try SIPParser.parse(message, validate: false).serialized().count })
report("parse + validate + serialize", try best(iterations) { try SIPParser.parse(message).serialized().count })
report("  parse only", try best(iterations) { try SIPParser.parse(message, validate: false).headers.count })
report("  validate only", try best(iterations) { try check.validate(); return 1 })
report("  serialize only", best(iterations) { check.serialized().count })
