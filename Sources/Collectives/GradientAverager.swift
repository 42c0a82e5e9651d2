// Turns per-rank gradient sums into the exact gradient of the global batch with one allreduce per step — for one
// model, or for several replicas (one per optimizer) trained on the same mini-batches.
import Numerics

/// Owns the flat exchange buffer
/// `[replica 0 gradient sums | … | replica K−1 gradient sums | K loss sums | sample count | K values |g_i|² |
///   K × ranks non-finite flags | stop request]`.
///
/// Each rank accumulates the *sums* over its own samples into `buffer`; `average()` adds the buffers of all
/// ranks in a single allreduce and divides by the global sample count. Because sums (not means) are reduced,
/// shards of unequal size — even empty ones — give exactly the gradient of the whole global batch. The last slots
/// carry the squared norm of each replica's mean gradient on this rank, so the same allreduce also yields
/// Σ_i |g_i|² for the gradient noise scale. Element-wise sums do not depend on the buffer's length, so a
/// replica's gradient is the same as if it were exchanged alone (bit for bit with two ranks, where a sum has
/// one order).
///
/// The guards ride in the same allreduce: each rank raises its own flag slot for a replica whose local loss or
/// gradient is not finite, and a stop slot when it was asked to stop (a signal). After the exchange every rank
/// sees the same flags, so every rank takes the same decision without another message.
public final class GradientAverager {
    public let parameterCount: Int
    public let replicas: Int
    /// Ranks in the group (one non-finite flag per rank and replica).
    public let ranks: Int
    /// The exchange buffer (see the type's description).
    public private(set) var buffer: [Float]

    public init(parameterCount: Int, replicas: Int = 1, ranks: Int = 1) {
        precondition(replicas >= 1 && ranks >= 1)
        self.parameterCount = parameterCount
        self.replicas = replicas
        self.ranks = ranks
        buffer = [Float](repeating: 0, count: replicas * parameterCount + 2 * replicas + 1 + replicas * ranks + 1)
    }

    private var lossSlot: Int { replicas * parameterCount }
    private var countSlot: Int { replicas * parameterCount + replicas }
    private var normSlot: Int { countSlot + 1 }
    private var flagSlot: Int { normSlot + replicas }
    private var stopSlot: Int { flagSlot + replicas * ranks }

    /// Checks this rank's local loss sum and gradient sums of `replica` and, when any is NaN or ±∞, raises this
    /// rank's flag for it. Call after the local accumulation and before `average(over:)`. Returns whether
    /// they were finite.
    @discardableResult
    public func flagLocalNonFinite(replica: Int, rank: Int) -> Bool {
        buffer.withUnsafeMutableBufferPointer { b in
            let finite = b[lossSlot + replica].isFinite
                && Kernels.allFinite(b.baseAddress! + replica * parameterCount, count: parameterCount)
            if !finite { b[flagSlot + replica * ranks + rank] = 1 }
            return finite
        }
    }

    /// Makes this rank's local sums of `replica` non-finite (fault injection: a NaN produced on one rank).
    public func poisonLocalSums(replica: Int) {
        buffer.withUnsafeMutableBufferPointer { b in
            b[replica * parameterCount] = .nan
            b[lossSlot + replica] = .nan
        }
    }

    /// Asks every rank to stop after this step (this rank received a signal).
    public func requestStop() {
        buffer[stopSlot] = 1
    }

    /// After `average(over:)`: the ranks whose local sums of `replica` were not finite (the same on every rank).
    public func nonFiniteRanks(replica: Int) -> [Int] {
        (0..<ranks).filter { buffer[flagSlot + replica * ranks + $0] != 0 }
    }

    /// After `average(over:)`: whether any rank asked to stop.
    public var stopRequested: Bool { buffer[stopSlot] != 0 }

    /// Clears the buffer before a step's local accumulation.
    public func reset() {
        buffer.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
    }

    /// Gives the local accumulation of `replica` access to its gradient part, its loss-sum slot and the
    /// (shared) sample-count slot.
    public func withLocalSums<T>(
        replica: Int = 0,
        _ body: (_ gradient: UnsafeMutablePointer<Float>, _ lossSum: inout Float, _ count: inout Float) throws -> T
    ) rethrows -> T {
        let (g, l, c) = (replica * parameterCount, lossSlot + replica, countSlot)
        return try buffer.withUnsafeMutableBufferPointer { b in
            try body(b.baseAddress! + g, &b[l], &b[c])
        }
    }

    /// Records |g_i|², the squared norm of this rank's mean gradient of each replica (0 for an empty shard), in
    /// the exchange buffer. Call it after the local accumulation and before `average(over:)`.
    public func recordLocalSquaredNorm() {
        buffer.withUnsafeMutableBufferPointer { b in
            let count = Double(b[countSlot])
            for r in 0..<replicas {
                let norm = Kernels.sumOfSquares(b.baseAddress! + r * parameterCount, count: parameterCount)
                b[normSlot + r] = count > 0 ? Float(norm / (count * count)) : 0
            }
        }
    }

    /// The result of an averaging step, for one replica.
    public struct Average {
        /// Mean loss over the global batch.
        public var loss: Double
        /// Number of samples in the global batch.
        public var count: Int
        /// Σ_i |g_i|² over the ranks (0 unless each rank called `recordLocalSquaredNorm()`).
        public var localSquaredNormSum: Double
    }

    /// Sums the buffers of all ranks (one allreduce) and divides every replica's gradient by the global count.
    /// Afterwards each replica's part of `buffer` holds its mean gradient, identical on every rank.
    @discardableResult
    public func averageAll(over communicator: Communicator) throws -> [Average] {
        try buffer.withUnsafeMutableBufferPointer { b in
            try communicator.allreduce(b, .sum)
            let count = b[countSlot]
            precondition(count > 0, "a global batch holds at least one sample")
            Kernels.scale(b.baseAddress!, count: replicas * parameterCount, by: 1 / count)
            return (0..<replicas).map { r in
                Average(loss: Double(b[lossSlot + r]) / Double(count), count: Int(count),
                        localSquaredNormSum: Double(b[normSlot + r]))
            }
        }
    }

    /// `averageAll` for a single model.
    @discardableResult
    public func average(over communicator: Communicator) throws -> Average {
        try averageAll(over: communicator)[0]
    }

    /// Scales the averaged gradient of `replica` so that its global L2 norm is at most `maxNorm`, as torch's
    /// clip_grad_norm_ does (g ← g · maxNorm / (‖g‖ + 1e-6) when that factor is below 1). Returns ‖g‖ before
    /// clipping. Every rank holds the same averaged gradient, so every rank clips identically.
    @discardableResult
    public func clip(toNorm maxNorm: Double, replica: Int = 0) -> Double {
        buffer.withUnsafeMutableBufferPointer { b in
            let g = b.baseAddress! + replica * parameterCount
            let norm = Kernels.sumOfSquares(g, count: parameterCount).squareRoot()
            let factor = maxNorm / (norm + 1e-6)
            if factor < 1 { Kernels.scale(g, count: parameterCount, by: Float(factor)) }
            return norm
        }
    }

    /// |ḡ|², the squared norm of a replica's averaged gradient (valid after `average(over:)`).
    public func squaredNorm(replica: Int = 0) -> Double {
        buffer.withUnsafeBufferPointer { Kernels.sumOfSquares($0.baseAddress! + replica * parameterCount, count: parameterCount) }
    }

    /// A replica's averaged gradient (valid after `average(over:)`).
    public func withGradient<T>(replica: Int = 0, _ body: (UnsafeBufferPointer<Float>) throws -> T) rethrows -> T {
        try buffer.withUnsafeBufferPointer {
            try body(UnsafeBufferPointer(rebasing: $0[(replica * parameterCount)..<((replica + 1) * parameterCount)]))
        }
    }
}
