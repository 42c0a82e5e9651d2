// The global order of samples in one epoch, the same on every rank.
import Numerics

/// One epoch's permutation of sample indices. It depends only on (seed, epoch) — never on the number of
/// ranks — so every rank derives the same global batches without communicating.
public struct EpochPlan: Sendable {
    /// Sample indices in the order this epoch visits them.
    public let order: [Int32]
    public let batchSize: Int

    /// - Parameters:
    ///   - batchSize: the global batch (the whole set for full-batch GD). The last batch may be smaller.
    public init(seed: UInt64, epoch: Int, sampleCount: Int, batchSize: Int, shuffle: Bool = true) {
        precondition(sampleCount > 0 && batchSize > 0 && sampleCount <= Int(Int32.max))
        var order = (0..<Int32(sampleCount)).map { $0 }
        if shuffle {
            var rng = Xoshiro256(seed: seed, stream: UInt64(epoch))
            // Fisher–Yates, from the end.
            for i in stride(from: sampleCount - 1, to: 0, by: -1) {
                let j = rng.nextIndex(below: i + 1)
                order.swapAt(i, j)
            }
        }
        self.order = order
        self.batchSize = batchSize
    }

    /// Number of global batches (steps) in the epoch, counting a smaller last batch.
    public var batchCount: Int { (order.count + batchSize - 1) / batchSize }

    /// Positions in `order` of global batch `k`.
    public func batch(_ k: Int) -> Range<Int> {
        let lo = k * batchSize
        return lo..<min(lo + batchSize, order.count)
    }
}
