// The deterministic reduction's transport: a batch's chunks summed along one fixed tree, whoever computes them,
// finished by an all-to-all of slices and an allgather. Bit-identical for any number of ranks.
import Numerics

/// What the deterministic reduction derives from a batch size: the tree over its chunks, every rank's blocks and
/// the chunks' sizes, and one rank's traffic: what it sends and receives, and where each block of its slice lies.
struct DeterministicLayout {
    let count: Int
    let tree: FixedTree
    let blocks: [[FixedTree.Node]]
    let chunkCounts: [Int]
    /// The all-to-all's pieces. A rank sends nothing to itself: it reads its own blocks where they lie.
    let send: (counts: [Int], offsets: [Int])
    let receive: (counts: [Int], offsets: [Int])
    /// Where each block of this rank's slice lies: in this rank's own send source, or in the receive buffer.
    let located: [FixedTree.Node: (own: Bool, offset: Int)]
    /// Which rank computes each block, and its place among that rank's blocks (for reading it in shared memory).
    let origin: [FixedTree.Node: (rank: Int, index: Int)]
    /// The most blocks any rank computes.
    var mostBlocks: Int { blocks.map(\.count).max() ?? 0 }

    init(count: Int, chunk: Int, rank: Int, slices: (counts: [Int], offsets: [Int])) {
        let ranks = slices.counts.count
        let leaves = max(1, (count + chunk - 1) / chunk)
        self.count = count
        tree = FixedTree(leaves: leaves)
        let blocks = (0..<ranks).map { FixedTree.blocks(of: shard(of: 0..<leaves, rank: $0, size: ranks)) }
        self.blocks = blocks
        chunkCounts = (0..<leaves).map { min(($0 + 1) * chunk, count) - $0 * chunk }
        let mine = blocks[rank].count, width = slices.counts[rank]
        // One block is sent from where it lies; several are packed slice by slice (`packSlices`).
        let packed = slices.counts.map { $0 * mine }
        let sendOffsets = mine == 1 ? slices.offsets : Pieces<Void>.endToEnd(packed)
        var sendCounts = packed, receiveCounts = blocks.map { $0.count * width }
        sendCounts[rank] = 0
        receiveCounts[rank] = 0
        let receiveOffsets = Pieces<Void>.endToEnd(receiveCounts)
        send = (sendCounts, sendOffsets)
        receive = (receiveCounts, receiveOffsets)
        var located: [FixedTree.Node: (own: Bool, offset: Int)] = [:], origin: [FixedTree.Node: (rank: Int, index: Int)] = [:]
        for (q, nodes) in blocks.enumerated() {
            for (j, node) in nodes.enumerated() {
                located[node] = q == rank ? (true, sendOffsets[rank] + j * width) : (false, receiveOffsets[q] + j * width)
                origin[node] = (q, j)
            }
        }
        self.located = located
        self.origin = origin
    }
}

/// One rank's side of the tree: it computes the blocks (largest whole subtrees) of its run of chunks, sends slice
/// s of each block to rank s, finishes the tree for its own slice from all ranks' blocks, and gathers the slices.
/// The same traffic as a ring allreduce when a rank has one block.
///
/// When all ranks share one host (`Communicator.sharedRegions`), nothing is sent: each rank computes its blocks in
/// its own shared region, and after one fence every rank reads its slice of the others' blocks where they lie. The
/// gathers copy slices through the regions too. The additions are the same, so are the bits. Each use alternates
/// between two areas of the region, so that a rank writing the next step's blocks never overwrites what another
/// rank may still be reading: between two uses of one area lies the other's fence, which every rank reaches only
/// after its reads.
final class DeterministicExchange {
    let ranks: Int
    let rank: Int
    let chunk: Int
    /// Floats per vector (the summed part of the exchange buffer).
    let floats: Int
    private var layout: DeterministicLayout
    /// Layouts by batch size: an epoch's smaller last batch switches between two.
    private var layouts: [Int: DeterministicLayout] = [:]
    private var blocks: [FixedTree.Node] { layout.blocks[rank] }
    private var blockSums: [Float] = []
    private var sendBuffer: [Float] = []
    private var receiveBuffer: [Float] = []
    private let local: FixedTree.Evaluator
    private let global: FixedTree.Evaluator
    private let slices: (counts: [Int], offsets: [Int])
    /// Shared memory, when the ranks share a host: `[blocks | blocks | gather | gather]`, each pair used in turn.
    private var shared: SharedRegions?
    /// Whether shared memory was asked for (once; later only to grow it).
    private var askedForShared = false
    private var blockArea = 0, gatherArea = 0
    private var blockTurn = 0, gatherTurn = 0

    /// - Parameter slices: each rank's contiguous part of the `floats` floats, in rank order, covering them.
    init(floats: Int, ranks: Int, rank: Int, chunk: Int, slices parts: [Range<Int>]) {
        precondition(parts.count == ranks && parts.first?.lowerBound == 0 && parts.last?.upperBound == floats
                     && zip(parts, parts.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
        self.floats = floats
        self.ranks = ranks
        self.rank = rank
        self.chunk = chunk
        local = FixedTree.Evaluator(length: floats)
        slices = (parts.map(\.count), parts.map(\.lowerBound))
        global = FixedTree.Evaluator(length: parts[rank].count)
        layout = DeterministicLayout(count: 0, chunk: chunk, rank: rank, slices: slices)
    }

    /// Whether the blocks and gathers go through shared memory (known after the first `accumulate`).
    var usesSharedMemory: Bool { shared != nil }

    /// The sizes of a batch's chunks.
    var chunkCounts: [Int] { layout.chunkCounts }

    /// This rank's slice of the summed vector.
    var ownedSlice: Range<Int> { slices.offsets[rank]..<(slices.offsets[rank] + slices.counts[rank]) }

    /// Computes this rank's block sums for a batch of `count` samples; `leaf` writes one chunk's vector (its
    /// positions in the batch) into the given `floats` floats. Returns the samples this rank's chunks hold.
    /// Collective: every rank calls it with the same `count`.
    func accumulate(count: Int, over communicator: Communicator,
                    _ leaf: (_ positions: Range<Int>, _ out: UnsafeMutablePointer<Float>) -> Void) throws -> Int {
        let leaves = (count + chunk - 1) / chunk
        let (chunk, floats) = (self.chunk, self.floats)
        // The layout changes only with the batch size (an epoch's smaller last batch).
        if layout.count != count {
            if layouts[count] == nil { layouts[count] = DeterministicLayout(count: count, chunk: chunk, rank: rank, slices: slices) }
            layout = layouts[count]!
            try provideSharedMemory(over: communicator)
        }
        let mine = shard(of: 0..<leaves, rank: rank, size: ranks)
        if shared == nil && blockSums.count < blocks.count * floats { blockSums = [Float](repeating: 0, count: blocks.count * floats) }
        blockTurn ^= 1
        let tree = layout.tree
        withBlocks { sums in
            for (j, node) in blocks.enumerated() {
                local.value(of: node, in: tree, into: sums + j * floats, leaf: { index, out in
                    leaf((index * chunk)..<min((index + 1) * chunk, count), out)
                })
            }
        }
        return mine.isEmpty ? 0 : min(mine.upperBound * chunk, count) - mine.lowerBound * chunk
    }

    /// Asks for shared memory the first time, and for a larger one when a layout needs more blocks than it holds
    /// (the layout is the same on every rank, so every rank makes the same calls).
    private func provideSharedMemory(over communicator: Communicator) throws {
        let blocksNeeded = layout.mostBlocks * floats
        guard !askedForShared || (shared != nil && blocksNeeded > blockArea) else { return }
        askedForShared = true
        try shared?.fence()  // nobody reads the old regions any more
        let gather = max(slices.counts.max() ?? 0, 256)  // a slice, or the exchange's small slots
        shared = try communicator.sharedRegions(floats: 2 * blocksNeeded + 2 * gather)
        (blockArea, gatherArea) = (blocksNeeded, gather)
    }

    /// Where this step's blocks are: in this rank's shared region (this turn's area), or in `blockSums`.
    private func withBlocks<T>(_ body: (UnsafeMutablePointer<Float>) throws -> T) rethrows -> T {
        if let shared { return try body(shared.region(rank) + blockTurn * blockArea) }
        return try blockSums.withUnsafeMutableBufferPointer { try body($0.baseAddress!) }
    }

    /// Whether `test` holds for every one of this rank's local vectors (one per block).
    func allLocalVectors(_ test: (UnsafeMutablePointer<Float>) -> Bool) -> Bool {
        let floats = self.floats, n = blocks.count
        return withBlocks { s in (0..<n).allSatisfy { test(s + $0 * floats) } }
    }

    /// Completes `pieces.buffer` on every rank from every rank's own piece, through the shared regions when there
    /// are some and every piece fits their gather area (a slice, or 256 floats), with the communicator's allgather
    /// otherwise.
    func allGather(_ pieces: Pieces<UnsafeMutableBufferPointer<Float>>, over communicator: Communicator) throws {
        guard let shared, pieces.counts.allSatisfy({ $0 <= gatherArea }) else { return try communicator.allGather(pieces) }
        gatherTurn ^= 1
        let area = 2 * blockArea + gatherTurn * gatherArea, base = pieces.buffer.baseAddress!
        (shared.region(rank) + area).update(from: base + pieces.offsets[rank], count: pieces.counts[rank])
        try shared.fence()
        for q in 0..<ranks where q != rank {
            (base + pieces.offsets[q]).update(from: shared.region(q) + area, count: pieces.counts[q])
        }
    }

    /// Finishes the tree over all ranks' blocks into the first `floats` floats of `result`, on every rank.
    /// `scaling` multiplies the first `prefix` floats of the sum by `factor` in the tree's last pass (this rank's
    /// slice of them). Without `gather` each rank keeps only its own slice.
    func finish(into result: UnsafeMutableBufferPointer<Float>, over communicator: Communicator, gather: Bool = true,
                scaling: (prefix: Int, factor: Float)? = nil) throws {
        let layout = self.layout, width = slices.counts[rank], own = slices.offsets[rank]
        let scaled = scaling.map { (prefix: min(max($0.prefix - own, 0), width), factor: $0.factor) }
        if let shared {
            try shared.fence()
            let (area, floats) = (blockTurn * blockArea, self.floats)
            if width > 0 {
                try global.value(of: layout.tree.root, in: layout.tree, into: result.baseAddress! + own, scaling: scaled, known: { node in
                    layout.origin[node].map { UnsafePointer(shared.region($0.rank) + area + $0.index * floats + own) }
                })
            }
        } else {
            try exchangeBlocks(into: result, over: communicator, scaling: scaled)
        }
        guard gather else { return }
        try allGather(Pieces(UnsafeMutableBufferPointer(rebasing: result[0..<floats]), counts: slices.counts, offsets: slices.offsets),
                      over: communicator)
    }

    /// Sends every rank its slice of this rank's blocks and finishes the tree for this rank's slice from what arrives.
    private func exchangeBlocks(into result: UnsafeMutableBufferPointer<Float>, over communicator: Communicator,
                                scaling scaled: (prefix: Int, factor: Float)?) throws {
        let layout = self.layout, mine = blocks.count, width = slices.counts[rank], own = slices.offsets[rank]
        // To rank s: slice s of each block, block after block. One block is already laid out that way.
        if mine > 1 { packSlices(blocks: mine) }
        let needed = layout.receive.counts.reduce(0, +)
        if receiveBuffer.count < needed { receiveBuffer = [Float](repeating: 0, count: max(needed, 1)) }
        try (mine > 1 ? sendBuffer : blockSums).withUnsafeBufferPointer { send in
            try receiveBuffer.withUnsafeMutableBufferPointer { receive in
                try communicator.allToAll(Pieces(send, counts: layout.send.counts, offsets: layout.send.offsets),
                                          Pieces(receive, counts: layout.receive.counts, offsets: layout.receive.offsets))
                guard width > 0 else { return }
                try global.value(of: layout.tree.root, in: layout.tree, into: result.baseAddress! + own, scaling: scaled,
                                 known: { node in
                                     layout.located[node].map { ($0.own ? send.baseAddress! : UnsafePointer(receive.baseAddress!)) + $0.offset }
                                 })
            }
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
