// Turns per-rank gradient sums into the exact gradient of the global batch with one allreduce per step.
import Numerics

/// Owns the flat exchange buffer `[gradient sums … | loss sum | sample count]` of length parameters + 2.
///
/// Each rank accumulates the *sums* over its own samples into `buffer`; `average()` adds the buffers of all
/// ranks in a single allreduce and divides by the global sample count. Because sums (not means) are reduced,
/// shards of unequal size — even empty ones — give exactly the gradient of the whole global batch.
public final class GradientAverager {
    public let parameterCount: Int
    /// The exchange buffer: gradient sums in `0..<parameterCount`, then loss sum, then sample count.
    public private(set) var buffer: [Float]

    public init(parameterCount: Int) {
        self.parameterCount = parameterCount
        buffer = [Float](repeating: 0, count: parameterCount + 2)
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

    /// The result of an averaging step.
    public struct Average {
        /// Mean loss over the global batch.
        public var loss: Double
        /// Number of samples in the global batch.
        public var count: Int
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
            return Average(loss: Double(lossSum) / Double(count), count: Int(count))
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

    /// The averaged gradient (valid after `average(over:)`).
    public func withGradient<T>(_ body: (UnsafeBufferPointer<Float>) throws -> T) rethrows -> T {
        try buffer.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[0..<parameterCount])) }
    }
}
