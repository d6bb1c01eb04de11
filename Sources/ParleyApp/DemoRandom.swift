/// The demo's source of randomness: SplitMix64 (Steele, Lea and Flood), seeded, so a run can be
/// repeated with `parley demo --seed N` (the draws repeat; the timing of the network does not).
public struct DemoRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A duration drawn uniformly from a range of seconds.
    mutating func seconds(_ range: ClosedRange<Double>) -> Duration {
        let s = range.lowerBound == range.upperBound ? range.lowerBound : Double.random(in: range, using: &self)
        return .milliseconds(Int64((s * 1000).rounded()))
    }

    /// True with probability `p`.
    mutating func chance(_ p: Double) -> Bool {
        p > 0 && Double.random(in: 0..<1, using: &self) < p
    }

    /// The wait before the next arrival of a Poisson process of `rate` per second.
    mutating func interArrival(rate: Double) -> Duration {
        let u = Double.random(in: Double.leastNonzeroMagnitude..<1, using: &self)
        let s = min(-log(u) / rate, 3600)
        return .microseconds(Int64((s * 1_000_000).rounded()))
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
