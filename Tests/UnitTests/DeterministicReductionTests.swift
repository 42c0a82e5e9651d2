// The deterministic reduction's parts: the fixed tree, its blocks, the exchange, and the chunk rule.
import Collectives
import CollectivesTesting
import Config
import Datasets
import DescentTestSupport
import Experiments
import Foundation
import Models
import Numerics
import Testing
import Training

@Suite("Deterministic reduction")
struct DeterministicReductionTests {
    /// The tree's root computed bottom-up, level by level: pairs (2i, 2i+1) are added, a last element without a
    /// partner moves up alone. An independent statement of the order `FixedTree` promises.
    static func pairwise(_ leaves: [[Float]]) -> [Float] {
        var level = leaves
        while level.count > 1 {
            level = stride(from: 0, to: level.count, by: 2).map { i in
                i + 1 < level.count ? zip(level[i], level[i + 1]).map { $0 + $1 } : level[i]
            }
        }
        return level[0]
    }

    /// Leaves whose sums depend on the order of the additions: magnitudes from 1e-8 to 1e8, both signs.
    static func leaves(_ count: Int, length: Int, seed: UInt64) -> [[Float]] {
        var rng = Xoshiro256(seed: seed, stream: 3)
        return (0..<count).map { _ in
            (0..<length).map { _ in Float(rng.nextGaussian() * pow(10, Double(rng.nextIndex(below: 17)) - 8)) }
        }
    }

    @Test("the blocks of the ranks' runs of leaves tile the leaves with aligned nodes inside each run")
    func blocksTile() {
        for leaves in 1...70 {
            for ranks in 1...9 {
                var covered: [Int] = []
                for r in 0..<ranks {
                    let run = shard(of: 0..<leaves, rank: r, size: ranks)
                    for node in FixedTree.blocks(of: run) {
                        let span = node.firstLeaf..<(node.firstLeaf + (1 << node.level))
                        #expect(run.contains(span.lowerBound) && span.upperBound <= run.upperBound)
                        #expect(node.firstLeaf % (1 << node.level) == 0)
                        covered += Array(span)
                    }
                    #expect(FixedTree.blocks(of: run).count <= 2 * (Int.bitWidth - leaves.leadingZeroBitCount))
                }
                #expect(covered == Array(0..<leaves))
            }
        }
    }

    @Test("the root is the bottom-up pairwise sum, bit for bit, however the leaves are split into blocks")
    func rootIsPairwise() {
        let length = 37
        for count in [1, 2, 3, 5, 8, 13, 31, 64, 100] {
            let leaves = Self.leaves(count, length: length, seed: UInt64(count))
            let expected = Self.pairwise(leaves)
            // The order matters for these leaves: a left-to-right sum differs (so the comparison can fail).
            if count >= 4 {  // three leaves: both orders are (0 + 1) + 2
                let sequential = leaves.dropFirst().reduce(leaves[0]) { zip($0, $1).map { $0 + $1 } }
                #expect(sequential != expected)
            }
            let tree = FixedTree(leaves: count)
            for ranks in [1, 2, 3, 4, 7] {
                // Each rank computes its blocks from the leaves; then the tree is finished from the blocks alone.
                var known: [FixedTree.Node: [Float]] = [:]
                for r in 0..<ranks {
                    for node in FixedTree.blocks(of: shard(of: 0..<count, rank: r, size: ranks)) {
                        var out = [Float](repeating: .nan, count: length)
                        out.withUnsafeMutableBufferPointer { o in
                            FixedTree.Evaluator(length: length).value(of: node, in: tree, into: o.baseAddress!, leaf: { i, buffer in
                                buffer.update(from: leaves[i], count: length)
                            })
                        }
                        known[node] = out
                    }
                }
                var root = [Float](repeating: .nan, count: length)
                let pointers = known.mapValues { v in
                    let p = UnsafeMutablePointer<Float>.allocate(capacity: length)
                    p.initialize(from: v, count: length)
                    return p
                }
                defer { pointers.values.forEach { $0.deallocate() } }
                root.withUnsafeMutableBufferPointer { o in
                    try! FixedTree.Evaluator(length: length).value(of: tree.root, in: tree, into: o.baseAddress!,
                                                              known: { pointers[$0].map { UnsafePointer($0) } })
                }
                #expect(root.map(\.bitPattern) == expected.map(\.bitPattern), "\(count) leaves on \(ranks) ranks")
            }
        }
    }

    @Test("allToAll and allGather deliver every rank's pieces, uneven and empty ones included", arguments: [1, 2, 3, 5])
    func exchange(ranks: Int) throws {
        let results = try InProcessGroup.run(ranks: ranks) { comm -> ([Float], [Float]) in
            let (me, n) = (comm.rank, comm.size)
            // Rank r sends rank s the numbers 1000·r + 10·s + i for i < (r + s) % 3.
            let counts = (0..<n).map { (me + $0) % 3 }
            let send = (0..<n).flatMap { s in (0..<counts[s]).map { Float(1000 * me + 10 * s + $0) } }
            let receiveCounts = (0..<n).map { ($0 + me) % 3 }
            var received = [Float](repeating: -1, count: receiveCounts.reduce(0, +))
            try send.withUnsafeBufferPointer { s in
                try received.withUnsafeMutableBufferPointer { r in
                    try comm.allToAll(Pieces(s, counts: counts), Pieces(r, counts: receiveCounts))
                }
            }
            // Rank q owns q + 1 slots (rank 0 one), filled with 100·q + i; the others start at −1.
            let pieces = (0..<n).map { $0 + 1 }
            let offsets = Pieces([Float](), counts: pieces).offsets
            var gathered = [Float](repeating: -1, count: pieces.reduce(0, +))
            for i in 0..<pieces[me] { gathered[offsets[me] + i] = Float(100 * me + i) }
            try gathered.withUnsafeMutableBufferPointer { try comm.allGather(Pieces($0, counts: pieces)) }
            return (received, gathered)
        }
        let gathered = (0..<ranks).flatMap { q in (0...q).map { Float(100 * q + $0) } }
        for (me, (received, all)) in results.enumerated() {
            var expected: [Float] = []
            for q in 0..<ranks {
                for i in 0..<((q + me) % 3) { expected.append(Float(1000 * q + 10 * me + i)) }
            }
            #expect(received == expected)
            #expect(all == gathered)
        }
    }

    @Test("the averaged gradient is the pairwise sum of the chunks' gradients, on any number of ranks")
    func exchangeMatchesPairwiseChunks() throws {
        let data = SyntheticClassification(count: 70, featureCount: 9, classCount: 3, noise: 1, seed: 2, test: false)
        let model = MLP(sizes: [9, 7, 3])
        let theta = model.initialParameters(seed: 5)
        let chunk = 8, p = model.parameterCount
        let indices = (0..<Int32(70)).map { $0 }
        // Each chunk's gradient sum alone, then the pairwise sum, divided by the batch.
        let chunks: [[Float]] = stride(from: 0, to: 70, by: chunk).map { lo in
            var g = [Float](repeating: 0, count: p)
            indices.withUnsafeBufferPointer { idx in
                theta.withUnsafeBufferPointer { th in
                    g.withUnsafeMutableBufferPointer {
                        _ = model.accumulateGradient(parameters: th.baseAddress!, gradient: $0.baseAddress!, dataset: data,
                                                     indices: UnsafeBufferPointer(rebasing: idx[lo..<min(lo + chunk, 70)]),
                                                     workspace: model.makeWorkspace(capacity: chunk))
                    }
                }
            }
            return g
        }
        var expected = Self.pairwise(chunks)
        expected.withUnsafeMutableBufferPointer { Kernels.scale($0.baseAddress!, count: p, by: 1 / Float(70)) }
        for ranks in [1, 2, 3, 4] {
            let gradients = try InProcessGroup.run(ranks: ranks) { comm -> [Float] in
                let exchange = GradientExchange(parameterCount: p, ranks: comm.size, rank: comm.rank,
                                                reduction: .deterministic, chunk: chunk)
                let ws = model.makeWorkspace(capacity: chunk)
                let exchanged = try indices.withUnsafeBufferPointer { idx in
                    try theta.withUnsafeBufferPointer { th in
                        try exchange.exchange(count: 70, measureNoise: true, requestStop: false, over: comm) { _, positions, g in
                            model.accumulateGradient(parameters: th.baseAddress!, gradient: g, dataset: data,
                                                     indices: UnsafeBufferPointer(rebasing: idx[positions]), workspace: ws,
                                                     overwrite: true).lossSum
                        }
                    }
                }
                #expect(exchanged.smallBatchCounts == [8, 8, 8, 8, 8, 8, 8, 8, 6])
                return exchange.withGradient { Array($0) }
            }
            for g in gradients { #expect(g.map(\.bitPattern) == expected.map(\.bitPattern), "\(ranks) ranks") }
        }
    }

    @Test("the automatic chunk depends on the global batch only, as the README states")
    func automaticChunk() throws {
        var t = RunConfig.Training()
        let table = [(8, 4), (32, 16), (64, 32), (128, 64), (256, 64), (1024, 64), (2048, 128), (8192, 512), (60000, 1024)]
        for (batch, chunk) in table { #expect(t.chunkSize(globalBatch: batch) == chunk, "batch \(batch)") }
        t.chunk = 10
        #expect(t.chunkSize(globalBatch: 128) == 10)
        t.chunk = nil
        t.reduction = .mpi
        #expect(t.chunkSize(globalBatch: 128) == 1024)
    }

    @Test("several BLAS threads are refused with the deterministic reduction, naming the key")
    func blasThreadsRefused() throws {
        #expect(throws: ConfigError.self) {
            try RunConfig.load(yaml: "runtime: {blas_threads: 2}", fileName: "run.yaml")
        }
        do {
            _ = try RunConfig.load(yaml: "runtime: {blas_threads: 2}", fileName: "run.yaml")
        } catch {
            #expect("\(error)".hasPrefix("run.yaml: runtime.blas_threads: expected 1 or auto with training.reduction: deterministic"))
        }
        #expect(try RunConfig.load(yaml: "training: {reduction: mpi}\nruntime: {blas_threads: 2}", fileName: "run.yaml").blasThreads == 2)
        #expect(try RunConfig.load(yaml: "runtime: {blas_threads: 1}", fileName: "run.yaml").blasThreads == 1)
    }
}

@Suite("One exchange per step")
struct ExchangeTests {
    @Test("one exchange gives every rank the same flags, loss sums, counts and stop request",
          arguments: [Reduction.mpi, .deterministic])
    func flagsRide(reduction: Reduction) throws {
        // 2 replicas of 5 parameters; every sample's gradient is (1, …, 1) and its loss 1, except that rank 1's
        // sums of replica 1 are NaN; rank 2 asks to stop.
        let results = try InProcessGroup.run(ranks: 3) { comm -> (Exchanged, [Float]) in
            let exchange = GradientExchange(parameterCount: 5, replicas: 2, ranks: 3, rank: comm.rank, reduction: reduction, chunk: 4)
            let exchanged = try exchange.exchange(count: 12, measureNoise: false, requestStop: comm.rank == 2, over: comm) { r, positions, g in
                for i in 0..<5 { g[i] = Float(positions.count) }
                if r == 1 && comm.rank == 1 && !positions.isEmpty { g[2] = .nan }
                return Double(positions.count)
            }
            return (exchanged, exchange.withGradient(replica: 0) { Array($0) })
        }
        for (exchanged, gradient) in results {
            #expect(exchanged.count == 12 && exchanged.stopRequested)
            #expect(exchanged.replicas.map(\.nonFiniteRanks) == [[], [1]])
            #expect(exchanged.replicas[0].loss == 1)
            #expect(gradient == [1, 1, 1, 1, 1])
        }
    }
}
