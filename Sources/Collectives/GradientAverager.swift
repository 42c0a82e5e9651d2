// Turns per-rank gradient sums into the exact gradient of the global batch with one allreduce per step.
import Numerics

/// Owns the flat exchange buffer `[gradient sums … | loss sum | sample count | |g_i|²]` of length parameters + 3.
///
/// Each rank accumulates the *sums* over its own samples into `buffer`; `average()` adds the buffers of all
/// ranks in a single allreduce and divides by the global sample count. Because sums (not means) are reduced,
/// shards of unequal size — even empty ones — give exactly the gradient of the whole global batch. The last slot
/// carries the squared norm of the rank's own mean gradient, so the same allreduce also yields Σ_i |g_i|² for the
/// gradient noise scale.
public final class GradientAverager {
    public let parameterCount: Int
    /// The exchange buffer: gradient sums in `0..<parameterCount`, then loss sum, sample count, and |g_i|².
    public private(set) var buffer: [Float]

    public init(parameterCount: Int) {
        self.parameterCount = parameterCount
        buffer = [Float](repeating: 0, count: parameterCount + 3)
    }

    /// Clears the buffer before a step's local accumulation.
    public func reset() {
        buffer.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
    }

    /// Gives the local accumulation access to the gradient part and to the loss-sum and count slots.
    public func withLocalSums<T>(
        _ body: (_ gradient: UnsafeMutablePointer<Float>, _ lossSum: inout Float, _ count: inout Float) throws -> T
    ) rethrows -> T {
        let p = parameterCount
        return try buffer.withUnsafeMutableBufferPointer { b in
            try body(b.baseAddress!, &b[p], &b[p + 1])
        }
    }

    /// Records |g_i|², the squared norm of this rank's mean gradient (0 for an empty shard), in the exchange
    /// buffer. Call it after the local accumulation and before `average(over:)`.
    public func recordLocalSquaredNorm() {
        buffer.withUnsafeMutableBufferPointer { b in
            let count = Double(b[parameterCount + 1])
            b[parameterCount + 2] = count > 0 ? Float(Kernels.sumOfSquares(b.baseAddress!, count: parameterCount) / (count * count)) : 0
        }
    }

    /// The result of an averaging step.
    public struct Average {
        /// Mean loss over the global batch.
        public var loss: Double
        /// Number of samples in the global batch.
        public var count: Int
        /// Σ_i |g_i|² over the ranks (0 unless each rank called `recordLocalSquaredNorm()`).
        public var localSquaredNormSum: Double
    }

    /// Sums the buffers of all ranks (one allreduce) and divides the gradient by the global count.
    /// Afterwards `buffer[0..<parameterCount]` holds the mean gradient, identical on every rank.
    @discardableResult
    public func average(over communicator: Communicator) throws -> Average {
        try buffer.withUnsafeMutableBufferPointer { b in
            try communicator.allreduce(b, .sum)
            let lossSum = b[parameterCount], count = b[parameterCount + 1]
            precondition(count > 0, "a global batch holds at least one sample")
            Kernels.scale(b.baseAddress!, count: parameterCount, by: 1 / count)
            return Average(loss: Double(lossSum) / Double(count), count: Int(count),
                           localSquaredNormSum: Double(b[parameterCount + 2]))
        }
    }

    /// Scales the averaged gradient so that its global L2 norm is at most `maxNorm`, as torch's
    /// clip_grad_norm_ does (g ← g · maxNorm / (‖g‖ + 1e-6) when that factor is below 1). Returns ‖g‖ before
    /// clipping. Every rank holds the same averaged gradient, so every rank clips identically.
    @discardableResult
    public func clip(toNorm maxNorm: Double) -> Double {
        buffer.withUnsafeMutableBufferPointer { b in
            let norm = Kernels.sumOfSquares(b.baseAddress!, count: parameterCount).squareRoot()
            let factor = maxNorm / (norm + 1e-6)
            if factor < 1 { Kernels.scale(b.baseAddress!, count: parameterCount, by: Float(factor)) }
            return norm
        }
    }

    /// |ḡ|², the squared norm of the averaged gradient (valid after `average(over:)`).
    public func squaredNorm() -> Double {
        buffer.withUnsafeBufferPointer { Kernels.sumOfSquares($0.baseAddress!, count: parameterCount) }
    }

    /// The averaged gradient (valid after `average(over:)`).
    public func withGradient<T>(_ body: (UnsafeBufferPointer<Float>) throws -> T) rethrows -> T {
        try buffer.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[0..<parameterCount])) }
    }
}
