// Turns per-rank gradient sums into the exact gradient of the global batch with one allreduce per step — for one
// model, or for several replicas (one per optimizer) trained on the same mini-batches.
import Numerics

/// How the ranks' gradient sums are combined.
public enum Reduction: String, CaseIterable, Sendable {
    /// The global batch is cut into chunks of a fixed size; each chunk's sums are computed alone and the chunk
    /// sums are added along one fixed tree (`FixedTree`), finished by a reduce-scatter (all-to-all) and an
    /// allgather. Bit-identical results for any number of ranks.
    case deterministic
    /// One MPI_Allreduce of each rank's sums over its shard. The order of the additions depends on the number
    /// of ranks and on the algorithm Open MPI picks, so the last bits do too.
    case mpi
}

/// Owns the flat exchange buffer
/// `[replica 0 gradient sums | … | replica K−1 gradient sums | K loss sums | K small-batch |g|² sums |
///   sample count | K × ranks non-finite flags | stop request]`.
///
/// Sums (not means) are reduced, so shards of unequal size — even empty ones — give exactly the gradient of the
/// whole global batch. With `.mpi` each rank accumulates its shard of the batch into `buffer` and one allreduce
/// adds the buffers. With `.deterministic` the batch is cut into chunks of `chunk` samples, the leaves of a
/// `FixedTree`; each rank computes its run of chunks, sums them along the tree into a few blocks, and the tree is
/// finished for one slice of the buffer on each rank (an all-to-all of the blocks' slices) and gathered (an
/// allgather of the slices) — the same traffic as a ring allreduce when a rank has one block. The last slots
/// (count, flags, stop) hold small integers, exact in any order, and are added by a plain allreduce.
///
/// The |g|² slots feed the gradient noise scale: the squared norm of each small batch's mean gradient, summed.
/// The small batches are the ranks' shards (`.mpi`) or the chunks (`.deterministic`). Element-wise sums do not
/// depend on the buffer's length, so a replica's gradient is the same as if it were exchanged alone.
///
/// The guards ride in the same exchange: each rank raises its own flag slot for a replica whose local loss or
/// gradient is not finite, and a stop slot when it was asked to stop (a signal). After the exchange every rank
/// sees the same flags, so every rank takes the same decision without another message.
public final class GradientAverager {
    public let parameterCount: Int
    public let replicas: Int
    /// Ranks in the group (one non-finite flag per rank and replica).
    public let ranks: Int
    /// This process's rank.
    public let rank: Int
    public let reduction: Reduction
    /// Samples per chunk, the leaves of the deterministic reduction's tree.
    public let chunk: Int
    /// The exchange buffer (see the type's description).
    public private(set) var buffer: [Float]
    /// After `accumulate`: the sizes of the small batches whose |g|² the noise-scale slots sum (ranks' shards or
    /// chunks, empty ones included).
    public private(set) var smallBatchCounts: [Int] = []

    // The deterministic reduction's step state: the tree, this rank's blocks and their sums.
    private var layout = Layout(count: 0, chunk: 1, ranks: 1)
    private var tree: FixedTree { layout.tree }
    private var blocks: [FixedTree.Node] { layout.blocks[rank] }
    private var blockSums: [Float] = []
    private var sendBuffer: [Float] = []
    private var receiveBuffer: [Float] = []
    private let local: FixedTree.Evaluator
    private var slices: (counts: [Int], offsets: [Int])
    private let global: FixedTree.Evaluator

    public init(parameterCount: Int, replicas: Int = 1, ranks: Int = 1, rank: Int = 0,
                reduction: Reduction = .mpi, chunk: Int = 1024) {
        precondition(replicas >= 1 && ranks >= 1 && (0..<ranks).contains(rank) && chunk >= 1)
        self.parameterCount = parameterCount
        self.replicas = replicas
        self.ranks = ranks
        self.rank = rank
        self.reduction = reduction
        self.chunk = chunk
        let floats = replicas * (parameterCount + 2)
        buffer = [Float](repeating: 0, count: floats + 1 + replicas * ranks + 1)
        local = FixedTree.Evaluator(length: floats)
        let parts = (0..<ranks).map { shard(of: 0..<floats, rank: $0, size: ranks) }
        slices = (parts.map(\.count), parts.map(\.lowerBound))
        global = FixedTree.Evaluator(length: parts[rank].count)
    }

    private var lossSlot: Int { replicas * parameterCount }
    private var normSlot: Int { lossSlot + replicas }
    /// The slots added as floats; the rest hold integers.
    private var floatCount: Int { normSlot + replicas }
    private var countSlot: Int { floatCount }
    private var flagSlot: Int { countSlot + 1 }
    private var stopSlot: Int { flagSlot + replicas * ranks }

    /// Number of chunks (deterministic) or ranks (mpi) a batch of `count` samples is cut into: the small
    /// batches of the noise-scale estimate.
    public func smallBatches(count: Int) -> Int {
        reduction == .deterministic ? (count + chunk - 1) / chunk : min(ranks, count)
    }

    /// Computes this rank's sums for a global batch of `count` samples, after clearing the buffer.
    ///
    /// - Parameters:
    ///   - measureNoise: also record the |g|² of each small batch's mean gradient.
    ///   - compute: writes the gradient of the summed loss of a replica over some positions of the batch into
    ///     the given buffer (overwriting it; with no positions it may leave it, which is then zero) and returns
    ///     their loss sum. With `.deterministic` it is called
    ///     once per replica and chunk, with `.mpi` once per replica for this rank's shard.
    public func accumulate(
        count: Int, measureNoise: Bool,
        _ compute: (_ replica: Int, _ positions: Range<Int>, _ gradient: UnsafeMutablePointer<Float>) -> Double
    ) {
        let p = parameterCount
        buffer.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        switch reduction {
        case .mpi:
            let mine = shard(of: 0..<count, rank: rank, size: ranks)
            buffer.withUnsafeMutableBufferPointer { b in
                for r in 0..<replicas { b[lossSlot + r] = Float(compute(r, mine, b.baseAddress! + r * p)) }
                b[countSlot] = Float(mine.count)
                if measureNoise && !mine.isEmpty {
                    for r in 0..<replicas {
                        b[normSlot + r] = Float(Kernels.sumOfSquares(b.baseAddress! + r * p, count: p) / Double(mine.count * mine.count))
                    }
                }
            }
            smallBatchCounts = (0..<ranks).map { shard(of: 0..<count, rank: $0, size: ranks).count }
        case .deterministic:
            let leaves = (count + chunk - 1) / chunk
            let chunk = self.chunk, floats = floatCount, lossSlot = self.lossSlot, normSlot = self.normSlot
            // The layout changes only with the batch size (an epoch's smaller last batch).
            if layout.count != count { layout = Layout(count: count, chunk: chunk, ranks: ranks) }
            let mine = shard(of: 0..<leaves, rank: rank, size: ranks)
            if blockSums.count < blocks.count * floats { blockSums = [Float](repeating: 0, count: blocks.count * floats) }
            blockSums.withUnsafeMutableBufferPointer { sums in
                for (j, node) in blocks.enumerated() {
                    local.value(of: node, in: tree, into: sums.baseAddress! + j * floats) { leaf, out in
                        let positions = (leaf * chunk)..<min((leaf + 1) * chunk, count)
                        let b = Double(positions.count)
                        for r in 0..<replicas {
                            out[lossSlot + r] = Float(compute(r, positions, out + r * p))
                            out[normSlot + r] = measureNoise ? Float(Kernels.sumOfSquares(out + r * p, count: p) / (b * b)) : 0
                        }
                    }
                }
            }
            buffer[countSlot] = Float(mine.isEmpty ? 0 : min(mine.upperBound * chunk, count) - mine.lowerBound * chunk)
            smallBatchCounts = layout.chunkCounts
        }
    }

    /// The vectors that hold this rank's local sums: the whole buffer (mpi) or each block's sums (deterministic).
    private func withLocalVectors<T>(_ body: ([UnsafeMutablePointer<Float>]) throws -> T) rethrows -> T {
        switch reduction {
        case .mpi:
            return try buffer.withUnsafeMutableBufferPointer { try body([$0.baseAddress!]) }
        case .deterministic:
            let floats = floatCount, n = blocks.count
            return try blockSums.withUnsafeMutableBufferPointer { s in
                try body((0..<n).map { s.baseAddress! + $0 * floats })
            }
        }
    }

    /// Checks this rank's local loss sum and gradient sums of `replica` and, when any is NaN or ±∞, raises this
    /// rank's flag for it. Call after `accumulate` and before `average(over:)`. Returns whether they were finite.
    @discardableResult
    public func flagLocalNonFinite(replica: Int) -> Bool {
        let (p, lossSlot) = (parameterCount, self.lossSlot)
        // A non-finite term makes every sum it enters non-finite, so the blocks tell about their chunks.
        let finite = withLocalVectors { vectors in
            vectors.allSatisfy { v in
                v[lossSlot + replica].isFinite && Kernels.allFinite(v + replica * p, count: p)
            }
        }
        if !finite { buffer[flagSlot + replica * ranks + rank] = 1 }
        return finite
    }

    /// Makes this rank's local sums of `replica` non-finite (fault injection: a NaN produced on one rank).
    public func poisonLocalSums(replica: Int) {
        let (p, lossSlot) = (parameterCount, self.lossSlot)
        withLocalVectors { vectors in
            guard let v = vectors.first else { return }
            v[replica * p] = .nan
            v[lossSlot + replica] = .nan
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

    /// The result of an averaging step, for one replica.
    public struct Average {
        /// Mean loss over the global batch.
        public var loss: Double
        /// Number of samples in the global batch.
        public var count: Int
        /// Σ |g_b|² over the small batches b (0 unless `accumulate` measured the noise).
        public var smallBatchSquaredNormSum: Double
    }

    /// Adds the sums of all ranks and divides every replica's gradient by the global count. Afterwards each
    /// replica's part of `buffer` holds its mean gradient, identical on every rank.
    @discardableResult
    public func averageAll(over communicator: Communicator) throws -> [Average] {
        precondition(communicator.size == ranks && communicator.rank == rank)
        switch reduction {
        case .mpi:
            try buffer.withUnsafeMutableBufferPointer { try communicator.allreduce($0, .sum) }
        case .deterministic:
            try finishTree(over: communicator)
            try buffer.withUnsafeMutableBufferPointer {
                try communicator.allreduce(UnsafeMutableBufferPointer(rebasing: $0[countSlot...]), .sum)
            }
        }
        return buffer.withUnsafeMutableBufferPointer { b in
            let count = b[countSlot]
            precondition(count > 0, "a global batch holds at least one sample")
            Kernels.scale(b.baseAddress!, count: replicas * parameterCount, by: 1 / count)
            return (0..<replicas).map { r in
                Average(loss: Double(b[lossSlot + r]) / Double(count), count: Int(count),
                        smallBatchSquaredNormSum: Double(b[normSlot + r]))
            }
        }
    }

    /// The deterministic exchange: every rank sends slice s of each of its blocks to rank s, which finishes the
    /// tree for slice s from all ranks' blocks; then the slices are gathered into `buffer` on every rank.
    private func finishTree(over communicator: Communicator) throws {
        let floats = floatCount
        let blocksOf = layout.blocks
        let mine = blocks.count, width = slices.counts[rank]
        // To rank s: slice s of each block, block after block. One block is already laid out that way.
        if mine > 1 {
            if sendBuffer.count < mine * floats { sendBuffer = [Float](repeating: 0, count: mine * floats) }
            blockSums.withUnsafeBufferPointer { sums in
                sendBuffer.withUnsafeMutableBufferPointer { send in
                    var at = 0
                    for s in 0..<ranks {
                        for j in 0..<mine {
                            let from = sums.baseAddress! + j * floats + slices.offsets[s]
                            (send.baseAddress! + at).update(from: from, count: slices.counts[s])
                            at += slices.counts[s]
                        }
                    }
                }
            }
        }
        let receiveCounts = blocksOf.map { $0.count * width }
        let needed = receiveCounts.reduce(0, +)
        if receiveBuffer.count < needed { receiveBuffer = [Float](repeating: 0, count: needed) }
        let sendCounts = slices.counts.map { $0 * mine }
        let sendOffsets = mine == 1 ? slices.offsets : Pieces<Void>.endToEnd(sendCounts)
        let receiveOffsets = Pieces<Void>.endToEnd(receiveCounts)
        try (mine > 1 ? sendBuffer : blockSums).withUnsafeBufferPointer { send in
            try receiveBuffer.withUnsafeMutableBufferPointer { receive in
                try communicator.allToAll(Pieces(send, counts: sendCounts, offsets: sendOffsets),
                                          Pieces(receive, counts: receiveCounts, offsets: receiveOffsets))
            }
        }
        // Rank q's blocks, in order, each `width` floats of this rank's slice.
        var known: [FixedTree.Node: UnsafePointer<Float>] = [:]
        try receiveBuffer.withUnsafeBufferPointer { r in
            for (q, nodes) in blocksOf.enumerated() {
                for (j, node) in nodes.enumerated() { known[node] = r.baseAddress! + receiveOffsets[q] + j * width }
            }
            try buffer.withUnsafeMutableBufferPointer { b in
                if width > 0 {
                    try global.value(of: tree.root, in: tree, into: b.baseAddress! + slices.offsets[rank], known: { known[$0] })
                }
                try communicator.allGather(Pieces(UnsafeMutableBufferPointer(rebasing: b[0..<floats]),
                                                  counts: slices.counts, offsets: slices.offsets))
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

/// What the deterministic reduction derives from a batch size: the tree over its chunks, every rank's blocks and
/// the chunks' sizes.
private struct Layout {
    let count: Int
    let tree: FixedTree
    let blocks: [[FixedTree.Node]]
    let chunkCounts: [Int]

    init(count: Int, chunk: Int, ranks: Int) {
        let leaves = max(1, (count + chunk - 1) / chunk)
        self.count = count
        tree = FixedTree(leaves: leaves)
        blocks = (0..<ranks).map { FixedTree.blocks(of: shard(of: 0..<leaves, rank: $0, size: ranks)) }
        chunkCounts = (0..<leaves).map { min(($0 + 1) * chunk, count) - $0 * chunk }
    }
}
