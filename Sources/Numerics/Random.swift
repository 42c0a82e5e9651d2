// Seeded pseudo-random numbers: the same seed gives the same stream on every rank and every machine.

/// SplitMix64 (Steele, Lea & Flood 2014): a tiny generator used to expand seeds and to hash counters.
@inline(__always)
public func splitMix64(_ x: UInt64) -> UInt64 {
    var z = x &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

/// xoshiro256** (Blackman & Vigna 2018), seeded through SplitMix64. Its state is four words, so it can be
/// saved and restored exactly.
public struct Xoshiro256: RandomNumberGenerator, Codable, Equatable, Sendable {
    public var state: [UInt64]

    /// A generator whose stream depends only on the given words (e.g. seed and epoch).
    public init(seed: UInt64, stream: UInt64 = 0) {
        var x = seed ^ splitMix64(stream &+ 0x5EED)
        var s = [UInt64](repeating: 0, count: 4)
        for i in 0..<4 {
            x = x &+ 0x9E37_79B9_7F4A_7C15
            s[i] = splitMix64(x)
        }
        if s.allSatisfy({ $0 == 0 }) { s[0] = 1 }
        state = s
    }

    @inline(__always)
    public mutating func next() -> UInt64 {
        let result = rotl(state[1] &* 5, 7) &* 9
        let t = state[1] << 17
        state[2] ^= state[0]
        state[3] ^= state[1]
        state[1] ^= state[2]
        state[0] ^= state[3]
        state[2] ^= t
        state[3] = rotl(state[3], 45)
        return result
    }

    /// A uniform Double in [0, 1) with 53 random bits.
    @inline(__always)
    public mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// A standard normal deviate (Box–Muller; the second value is discarded so the stream stays simple).
    public mutating func nextGaussian() -> Double {
        let u1 = max(nextUnit(), 0x1.0p-60)
        let u2 = nextUnit()
        return (-2 * logDouble(u1)).squareRoot() * cosDouble(2 * Double.pi * u2)
    }

    /// A uniform integer in 0..<bound without modulo bias (Lemire's method).
    @inline(__always)
    public mutating func nextIndex(below bound: Int) -> Int {
        precondition(bound > 0)
        return Int(truncatingIfNeeded: next(upperBound: UInt64(bound)))
    }

    @inline(__always)
    private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
}

#if canImport(Glibc)
import Glibc
@inline(__always) func logDouble(_ x: Double) -> Double { Glibc.log(x) }
@inline(__always) func cosDouble(_ x: Double) -> Double { Glibc.cos(x) }
#else
import Darwin
@inline(__always) func logDouble(_ x: Double) -> Double { Darwin.log(x) }
@inline(__always) func cosDouble(_ x: Double) -> Double { Darwin.cos(x) }
#endif
