// The deterministic reduction's transport: a batch's chunks summed along one fixed tree, whoever computes them,
// finished by an all-to-all of slices and an allgather. Bit-identical for any number of ranks.
import Numerics

/// What the deterministic reduction derives from a batch size: the tree over its chunks, every rank's blocks and
/// the chunks' sizes.
struct DeterministicLayout {
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

/// One rank's side of the tree: it computes the blocks (largest whole subtrees) of its run of chunks, sends slice
/// s of each block to rank s, finishes the tree for its own slice from all ranks' blocks, and gathers the slices.
/// The same traffic as a ring allreduce when a rank has one block.
final class DeterministicExchange {
    let ranks: Int
    let rank: Int
    let chunk: Int
    /// Floats per vector (the summed part of the exchange buffer).
    let floats: Int
    private var layout = DeterministicLayout(count: 0, chunk: 1, ranks: 1)
    private var blocks: [FixedTree.Node] { layout.blocks[rank] }
    private var blockSums: [Float] = []
    private var sendBuffer: [Float] = []
    private var receiveBuffer: [Float] = []
    private let local: FixedTree.Evaluator
    private let global: FixedTree.Evaluator
    private let slices: (counts: [Int], offsets: [Int])

    init(floats: Int, ranks: Int, rank: Int, chunk: Int) {
        self.floats = floats
        self.ranks = ranks
        self.rank = rank
        self.chunk = chunk
        local = FixedTree.Evaluator(length: floats)
        let parts = (0..<ranks).map { shard(of: 0..<floats, rank: $0, size: ranks) }
        slices = (parts.map(\.count), parts.map(\.lowerBound))
        global = FixedTree.Evaluator(length: parts[rank].count)
    }

    /// The sizes of a batch's chunks.
    var chunkCounts: [Int] { layout.chunkCounts }

    /// Each rank's slice of the summed vector, and this rank's.
    var sliceRanges: [Range<Int>] { zip(slices.offsets, slices.counts).map { $0..<($0 + $1) } }
    var ownedSlice: Range<Int> { slices.offsets[rank]..<(slices.offsets[rank] + slices.counts[rank]) }

    /// Computes this rank's block sums for a batch of `count` samples; `leaf` writes one chunk's vector (its
    /// positions in the batch) into the given `floats` floats. Returns the samples this rank's chunks hold.
    func accumulate(count: Int, _ leaf: (_ positions: Range<Int>, _ out: UnsafeMutablePointer<Float>) -> Void) -> Int {
        let leaves = (count + chunk - 1) / chunk
        let (chunk, floats) = (self.chunk, self.floats)
        // The layout changes only with the batch size (an epoch's smaller last batch).
        if layout.count != count { layout = DeterministicLayout(count: count, chunk: chunk, ranks: ranks) }
        let mine = shard(of: 0..<leaves, rank: rank, size: ranks)
        if blockSums.count < blocks.count * floats { blockSums = [Float](repeating: 0, count: blocks.count * floats) }
        let tree = layout.tree
        blockSums.withUnsafeMutableBufferPointer { sums in
            for (j, node) in blocks.enumerated() {
                local.value(of: node, in: tree, into: sums.baseAddress! + j * floats) { index, out in
                    leaf((index * chunk)..<min((index + 1) * chunk, count), out)
                }
            }
        }
        return mine.isEmpty ? 0 : min(mine.upperBound * chunk, count) - mine.lowerBound * chunk
    }

    /// This rank's local vectors: one per block.
    func withLocalVectors<T>(_ body: ([UnsafeMutablePointer<Float>]) throws -> T) rethrows -> T {
        let floats = self.floats, n = blocks.count
        return try blockSums.withUnsafeMutableBufferPointer { s in
            try body((0..<n).map { s.baseAddress! + $0 * floats })
        }
    }

    /// Finishes the tree over all ranks' blocks into the first `floats` floats of `result`, on every rank.
    /// `slice` may change this rank's finished slice (its range of `result`) in place before the slices are gathered.
    /// Without `gather` each rank keeps only its own slice.
    func finish(into result: UnsafeMutableBufferPointer<Float>, over communicator: Communicator, gather: Bool = true,
                slice: (Range<Int>) -> Void = { _ in }) throws {
        let blocksOf = layout.blocks, tree = layout.tree
        let mine = blocks.count, width = slices.counts[rank]
        // To rank s: slice s of each block, block after block. One block is already laid out that way.
        if mine > 1 { packSlices(blocks: mine) }
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
            if width > 0 {
                try global.value(of: tree.root, in: tree, into: result.baseAddress! + slices.offsets[rank], known: { known[$0] })
                slice(slices.offsets[rank]..<(slices.offsets[rank] + width))
            }
            guard gather else { return }
            try communicator.allGather(Pieces(UnsafeMutableBufferPointer(rebasing: result[0..<floats]),
                                              counts: slices.counts, offsets: slices.offsets))
        }
    }

    /// Lays out slice s of every block, block after block, for each rank s in turn.
    private func packSlices(blocks mine: Int) {
        if sendBuffer.count < mine * floats { sendBuffer = [Float](repeating: 0, count: mine * floats) }
        let floats = self.floats
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
}
