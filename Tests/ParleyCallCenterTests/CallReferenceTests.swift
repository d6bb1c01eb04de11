import Testing

@testable import ParleyCallCenter

/// Call references grow with arrival time (as strings, the way SQLite's indexes order them), stay
/// unique when many calls arrive in one millisecond or the clock steps back, and end with the
/// distributor's own four random digits.
@Suite struct CallReferenceTests {
    @Test func referencesSortByArrivalAndNeverRepeat() {
        var refs = CallReferences(random: 42)
        var made: [String] = []
        var now: Int64 = 1_795_000_000_000
        for i in 0..<20_000 {
            if i % 7 == 0 { now += 1 }
            if i == 10_000 { now -= 5_000 }  // the wall clock stepped back
            made.append(refs.next(nowMs: now))
        }
        #expect(made == made.sorted())
        #expect(Set(made).count == made.count)
        #expect(made.allSatisfy { $0.count == 18 && $0.hasPrefix("c") && $0.hasSuffix("0016") })
        // 5,000 calls in one millisecond: still unique and ordered, then back on the clock
        var burst = CallReferences(random: 7)
        let b = (0..<5_000).map { _ in burst.next(nowMs: now) }
        #expect(b == b.sorted() && Set(b).count == 5_000)
        #expect(burst.next(nowMs: now + 10) > b.last!)
        // another distributor's references differ in their last four digits
        var other = CallReferences(random: 43)
        #expect(other.next(nowMs: now).suffix(4) != made.last!.suffix(4))
    }
}
