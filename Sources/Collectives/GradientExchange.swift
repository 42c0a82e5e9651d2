// One exchange per step turns every rank's local gradient sums into the exact gradient of the global batch — for
// one model, or for several replicas (one per optimizer) trained on the same mini-batches — and carries the
// step's loss sums, counts, non-finite flags, noise-scale sums and stop request with it.
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

/// What one exchange returns, identical on every rank.
public struct Exchanged: Sendable {
    /// One replica's share of the exchange.
    public struct Replica: Sendable {
        /// Mean loss over the global batch.
        public var loss: Double
        /// Σ |g_b|² over the small batches b (0 unless the exchange measured the noise).
        public var smallBatchSquaredNormSum: Double
        /// The ranks whose local loss or gradient sums were not finite (NaN or ±∞), ascending.
        public var nonFiniteRanks: [Int]
    }

    public var replicas: [Replica]
    /// Samples in the global batch.
    public var count: Int
    /// The sizes of the small batches whose |g|² the noise-scale sums add (ranks' shards or chunks).
    public var smallBatchCounts: [Int]
    /// Whether any rank asked to stop after this step.
    public var stopRequested: Bool
    /// Seconds this rank spent computing its local sums, and in the collectives (with the scaling).
    public var computeSeconds: Double
    public var exchangeSeconds: Double
}

/// Owns the flat exchange buffer
/// `[replica 0 gradient sums | … | replica K−1 gradient sums | K loss sums | K small-batch |g|² sums |
///   sample count | K × ranks non-finite flags | stop request]`
/// and fills it with one call per step, `exchange`.
///
/// Sums (not means) are reduced, so shards of unequal size — even empty ones — give exactly the gradient of the
/// whole global batch. With `.mpi` each rank accumulates its shard of the batch and one allreduce adds the
/// buffers. With `.deterministic` the batch is cut into chunks of `chunk` samples, summed along a fixed tree
/// (`DeterministicExchange`); the last slots (count, flags, stop) hold small integers, exact in any order, and
/// are added by a plain allreduce.
///
/// The |g|² slots feed the gradient noise scale: the squared norm of each small batch's mean gradient, summed.
/// The small batches are the ranks' shards (`.mpi`) or the chunks (`.deterministic`). Element-wise sums do not
/// depend on the buffer's length, so a replica's gradient is the same as if it were exchanged alone.
///
/// The guards ride in the same exchange: each rank raises its own flag slot for a replica whose local loss or
/// gradient is not finite, and a stop slot when it was asked to stop. After the exchange every rank sees the same
/// flags, so every rank takes the same decision without another message.
public final class GradientExchange {
    public let parameterCount: Int
    public let replicas: Int
    /// Ranks in the group (one non-finite flag per rank and replica).
    public let ranks: Int
    /// This process's rank.
    public let rank: Int
    public let reduction: Reduction
    /// Samples per chunk, the leaves of the deterministic reduction's tree.
    public let chunk: Int
    private var buffer: [Float]
    private let tree: DeterministicExchange?
    /// What `exchange` returns, kept between steps so that a step allocates nothing (the caller's copy of the last
    /// one is gone by the next step, so the storage is reused in place).
    private var shares: [Exchanged.Replica]
    private var shardCounts: (count: Int, sizes: [Int]) = (0, [])
    /// Every rank's small slots, side by side (`addAcrossRanks`).
    private var gathered: [Float]
    private let gatheredPieces: (counts: [Int], offsets: [Int])

    /// - Parameter ownership: who updates what (`OwnershipPlan`). A plan other than `.everything` needs the
    ///   deterministic reduction and one replica; otherwise every rank updates everything.
    public init(parameterCount: Int, replicas: Int = 1, ranks: Int = 1, rank: Int = 0,
                reduction: Reduction = .mpi, chunk: Int = 1024, ownership: OwnershipPlan.Unit = .everything) {
        precondition(replicas >= 1 && ranks >= 1 && (0..<ranks).contains(rank) && chunk >= 1)
        (self.parameterCount, self.replicas, self.ranks, self.rank) = (parameterCount, replicas, ranks, rank)
        (self.reduction, self.chunk) = (reduction, chunk)
        let floats = replicas * (parameterCount + 2)
        buffer = [Float](repeating: 0, count: floats + 1 + replicas * ranks + 1 + 2 * replicas)
        let unit = reduction == .deterministic && replicas == 1 ? ownership : .everything
        // The tree's cut of the summed vector is the plan's, over one replica's slots or all replicas' at once.
        self.ownership = OwnershipPlan(unit, parameterCount: parameterCount, extra: 2, ranks: ranks)
        let slices = replicas == 1 ? self.ownership.slices : (0..<ranks).map { shard(of: 0..<floats, rank: $0, size: ranks) }
        tree = reduction == .deterministic
            ? DeterministicExchange(floats: floats, ranks: ranks, rank: rank, chunk: chunk, slices: slices) : nil
        let small = buffer.count - floats  // the slots from countSlot on
        gathered = [Float](repeating: 0, count: ranks * small)
        gatheredPieces = ([Int](repeating: small, count: ranks), (0..<ranks).map { $0 * small })
        shares = [Exchanged.Replica](repeating: .init(loss: 0, smallBatchSquaredNormSum: 0, nonFiniteRanks: []), count: replicas)
    }

    private var lossSlot: Int { replicas * parameterCount }
    private var normSlot: Int { lossSlot + replicas }
    /// The slots added as floats; the rest hold integers.
    private var floatCount: Int { normSlot + replicas }
    private var countSlot: Int { floatCount }
    private var flagSlot: Int { countSlot + 1 }
    private var stopSlot: Int { flagSlot + replicas * ranks }
    /// Copies of the loss and |g|² sums, for a step whose gradient is not gathered (0 but on the rank that owns them).
    private var sharedSlot: Int { stopSlot + 1 }

    /// Which rank updates which parameters.
    public let ownership: OwnershipPlan

    /// How the sums travel: "shared memory" (ranks on one host), "messages" (the deterministic reduction between
    /// hosts) or "allreduce" (the mpi reduction); "none" for one rank. Known after the first exchange.
    public var transport: String {
        guard ranks > 1 else { return "none" }
        guard let tree else { return "allreduce" }
        return tree.usesSharedMemory ? "shared memory" : "messages"
    }

    /// The parameters this rank updates when the step is sharded (`ownership`), nil when every rank updates all.
    public var ownedParameters: Range<Int>? { ownership.sharded ? ownership.parts[rank] : nil }

    /// Number of chunks (deterministic) or ranks (mpi) a batch of `count` samples is cut into: the small
    /// batches of the noise-scale estimate.
    public func smallBatches(count: Int) -> Int {
        reduction == .deterministic ? (count + chunk - 1) / chunk : min(ranks, count)
    }

    /// The gradient sums of one replica over some positions of the batch: writes them into `gradient`
    /// (overwriting it; with no positions it may leave it, which is then zero) and returns their loss sum.
    public typealias LocalSums = (_ replica: Int, _ positions: Range<Int>, _ gradient: UnsafeMutablePointer<Float>) -> Double

    /// One step's exchange: computes this rank's sums for a global batch of `count` samples with `sums` (once per
    /// replica and chunk with `.deterministic`, once per replica for this rank's shard with `.mpi`), flags them
    /// when not finite, adds every rank's, and divides each replica's gradient by the global count. Afterwards
    /// `withGradient` gives each replica's mean gradient, identical on every rank.
    ///
    /// - Parameters:
    ///   - measureNoise: also add the |g|² of each small batch's mean gradient.
    ///   - requestStop: this rank asks every rank to stop after this step.
    ///   - wholeGradient: the caller needs every replica's whole mean gradient (to measure or clip it). Without it a
    ///     sharded plan leaves each rank only its own part (`ownedParameters`), which is all `update` needs;
    ///     losses, flags and the rest are known to every rank either way.
    public func exchange(count: Int, measureNoise: Bool, requestStop: Bool, wholeGradient: Bool = true, over communicator: Communicator,
                         sums: LocalSums) throws -> Exchanged {
        let gather = wholeGradient || !ownership.sharded
        precondition(communicator.size == ranks && communicator.rank == rank)
        let t0 = monotonicSeconds()
        buffer.withUnsafeMutableBufferPointer { b in
            // The tree writes every summed slot; only the integer slots need zeros. The mpi path adds the buffer
            // as it stands, so a replica that writes no sums must leave zeros.
            let from = tree == nil ? 0 : countSlot
            UnsafeMutableBufferPointer(rebasing: b[from...]).update(repeating: 0)
        }
        let counts = try accumulate(count: count, measureNoise: measureNoise, over: communicator, sums)
        for r in 0..<replicas where !localSumsAreFinite(replica: r) { buffer[flagSlot + r * ranks + rank] = 1 }
        if requestStop { buffer[stopSlot] = 1 }
        let t1 = monotonicSeconds()
        try buffer.withUnsafeMutableBufferPointer { b in
            if let tree {
                // Each rank divides its own slice of the summed gradients by the count in the tree's last
                // addition, before the slices are gathered.
                try tree.finish(into: b, over: communicator, gather: gather,
                                scaling: (prefix: replicas * parameterCount, factor: 1 / Float(count)))
                // Without the gather only the owner knows the loss and |g|² sums: they ride with the small slots
                // (added to zeros, so exactly).
                let shared = lossSlot..<floatCount, owned = tree.ownedSlice
                if !gather { for i in shared where owned.contains(i) { b[sharedSlot + i - lossSlot] = b[i] } }
                try addAcrossRanks(UnsafeMutableBufferPointer(rebasing: b[countSlot...]), with: tree, over: communicator)
                if !gather { for i in shared { b[i] = b[sharedSlot + i - lossSlot] } }
            } else {
                try communicator.allreduce(b, .sum)
            }
        }
        return averaged(smallBatchCounts: counts, scale: tree == nil, computeSeconds: t1 - t0, since: t1)
    }

    /// Adds the small slots (integers, and floats only one rank holds) of every rank, in rank order: an allgather
    /// and a local sum, exact in any order for these values, where Open MPI's MPI_Allreduce would allocate a
    /// temporary buffer on every call.
    private func addAcrossRanks(_ slots: UnsafeMutableBufferPointer<Float>, with tree: DeterministicExchange,
                                over communicator: Communicator) throws {
        let k = slots.count
        gathered.withUnsafeMutableBufferPointer { g in (g.baseAddress! + rank * k).update(from: slots.baseAddress!, count: k) }
        try gathered.withUnsafeMutableBufferPointer { g in
            try tree.allGather(Pieces(g, counts: gatheredPieces.counts, offsets: gatheredPieces.offsets), over: communicator)
            for i in 0..<k {
                var sum: Float = 0
                for q in 0..<ranks { sum += g[q * k + i] }
                slots[i] = sum
            }
        }
    }

    /// Fills this rank's sums; returns the sizes of the small batches.
    private func accumulate(count: Int, measureNoise: Bool, over communicator: Communicator, _ sums: LocalSums) throws -> [Int] {
        let (p, lossSlot, normSlot, replicas) = (parameterCount, self.lossSlot, self.normSlot, self.replicas)
        guard let tree else {
            let mine = shard(of: 0..<count, rank: rank, size: ranks)
            buffer.withUnsafeMutableBufferPointer { b in
                for r in 0..<replicas { b[lossSlot + r] = Float(sums(r, mine, b.baseAddress! + r * p)) }
                b[countSlot] = Float(mine.count)
                if measureNoise && !mine.isEmpty {
                    for r in 0..<replicas {
                        b[normSlot + r] = Float(Kernels.sumOfSquares(b.baseAddress! + r * p, count: p) / Double(mine.count * mine.count))
                    }
                }
            }
            if shardCounts.count != count { shardCounts = (count, (0..<ranks).map { shard(of: 0..<count, rank: $0, size: ranks).count }) }
            return shardCounts.sizes
        }
        buffer[countSlot] = Float(try tree.accumulate(count: count, over: communicator) { positions, out in
            let b = Double(positions.count)
            for r in 0..<replicas {
                out[lossSlot + r] = Float(sums(r, positions, out + r * p))
                out[normSlot + r] = measureNoise ? Float(Kernels.sumOfSquares(out + r * p, count: p) / (b * b)) : 0
            }
        })
        return tree.chunkCounts
    }

    /// Whether this rank's local loss sum and gradient sums of `replica` are all finite. A non-finite term makes
    /// every sum it enters non-finite, so the deterministic blocks tell about their chunks.
    private func localSumsAreFinite(replica: Int) -> Bool {
        let (p, lossSlot) = (parameterCount, self.lossSlot)
        func finite(_ v: UnsafeMutablePointer<Float>) -> Bool {
            v[lossSlot + replica].isFinite && Kernels.allFinite(v + replica * p, count: p)
        }
        if let tree { return tree.allLocalVectors(finite) }
        return buffer.withUnsafeMutableBufferPointer { finite($0.baseAddress!) }
    }

    /// Divides the summed gradients by the global count when `scale` is set (the mpi path; the tree divides each
    /// rank's slice itself) and reads the other slots; the exchange's time runs from `start` to the end.
    private func averaged(smallBatchCounts: [Int], scale: Bool, computeSeconds: Double, since start: Double) -> Exchanged {
        buffer.withUnsafeMutableBufferPointer { b in
            let count = b[countSlot]
            precondition(count > 0, "a global batch holds at least one sample")
            if scale { Kernels.scale(b.baseAddress!, count: replicas * parameterCount, by: 1 / count) }
            for r in 0..<replicas {
                var flagged: [Int] = []  // (empty, it allocates nothing)
                for q in 0..<ranks where b[flagSlot + r * ranks + q] != 0 { flagged.append(q) }
                shares[r] = Exchanged.Replica(loss: Double(b[lossSlot + r]) / Double(count),
                                              smallBatchSquaredNormSum: Double(b[normSlot + r]), nonFiniteRanks: flagged)
            }
            return Exchanged(replicas: shares, count: Int(count), smallBatchCounts: smallBatchCounts,
                             stopRequested: b[stopSlot] != 0, computeSeconds: computeSeconds,
                             exchangeSeconds: monotonicSeconds() - start)
        }
    }

    /// Applies replica `replica`'s update after `exchange`: `body` gets the parameters this rank updates and their
    /// mean gradient (its own part with a sharded plan, all of them otherwise), then the parts are gathered into
    /// `parameters` on every rank. Returns the seconds of the update and of the gather.
    public func update(replica: Int = 0, _ parameters: UnsafeMutableBufferPointer<Float>, over communicator: Communicator,
                       _ body: (_ parameters: UnsafeMutableBufferPointer<Float>, _ gradient: UnsafeBufferPointer<Float>) throws -> Void)
        throws -> (update: Double, gather: Double) {
        precondition(parameters.count == parameterCount)
        let t0 = monotonicSeconds()
        let part = ownedParameters ?? 0..<parameterCount
        try withGradient(replica: replica) { g in
            try body(UnsafeMutableBufferPointer(rebasing: parameters[part]), UnsafeBufferPointer(rebasing: g[part]))
        }
        let t1 = monotonicSeconds()
        guard ownership.sharded else { return (t1 - t0, 0) }
        try gatherParts(parameters, over: communicator)
        return (t1 - t0, monotonicSeconds() - t1)
    }

    /// Completes a parameter-sized buffer on every rank from every rank's own part (`ownership`).
    public func gatherParts(_ buffer: UnsafeMutableBufferPointer<Float>, over communicator: Communicator) throws {
        precondition(buffer.count == parameterCount)
        let pieces = Pieces(buffer, counts: ownership.pieces.counts, offsets: ownership.pieces.offsets)
        if let tree { try tree.allGather(pieces, over: communicator) } else { try communicator.allGather(pieces) }
    }

    /// A replica's mean gradient after `exchange` (which the caller may change in place, e.g. clip).
    public func withGradient<T>(replica: Int = 0, _ body: (UnsafeMutableBufferPointer<Float>) throws -> T) rethrows -> T {
        try buffer.withUnsafeMutableBufferPointer {
            try body(UnsafeMutableBufferPointer(rebasing: $0[(replica * parameterCount)..<((replica + 1) * parameterCount)]))
        }
    }
}
