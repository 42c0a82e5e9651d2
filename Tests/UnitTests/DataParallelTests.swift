// The data-parallel invariant with in-process ranks: N ranks compute what one rank computes on the whole batch.
import Collectives
import CollectivesTesting
import Config
import Datasets
import DescentTestSupport
import Experiments
import Foundation
import Models
import Numerics
import Optimizers
import Testing
import Training

@Suite("Data parallelism (in-process ranks)")
struct DataParallelTests {
    static let data = SyntheticClassification(count: 97, featureCount: 12, classCount: 3, noise: 0.8, seed: 4, test: false)
    static let model = MLP(sizes: [12, 10, 3])

    /// The mean gradient and loss over `indices` computed by one process.
    func singleProcessGradient(_ theta: [Float], _ indices: [Int32]) -> ([Float], Double) {
        var g = [Float](repeating: 0, count: Self.model.parameterCount)
        let t = indices.withUnsafeBufferPointer { idx in
            theta.withUnsafeBufferPointer { th in
                g.withUnsafeMutableBufferPointer {
                    Self.model.accumulateGradient(parameters: th.baseAddress!, gradient: $0.baseAddress!, dataset: Self.data,
                                                  indices: idx, workspace: Self.model.makeWorkspace(capacity: 128))
                }
            }
        }
        return (g.map { $0 / Float(indices.count) }, t.lossSum / Double(indices.count))
    }

    @Test("uneven and empty shards average to the gradient of the whole batch; deterministic gives the same bits for any number of ranks",
          arguments: [Reduction.mpi, .deterministic])
    func unevenShards(reduction: Reduction) throws {
        let theta = Self.model.initialParameters(seed: 8)
        var hashes: [Int: Set<UInt64>] = [:]
        // (ranks, batch): 97 samples in chunks of 8 give 13 chunks (blocks of several sizes per rank); 10 and 3
        // samples on 4 and 5 ranks leave ranks with no samples.
        for (ranks, batch) in [(1, 97), (2, 97), (3, 97), (4, 97), (7, 97), (4, 10), (5, 3)] {
            let indices = (0..<Int32(batch)).map { $0 }
            let (expected, expectedLoss) = singleProcessGradient(theta, indices)
            let results = try InProcessGroup.run(ranks: ranks) { comm -> ([Float], Double, Int) in
                let exchange = GradientExchange(parameterCount: Self.model.parameterCount, ranks: comm.size, rank: comm.rank,
                                                reduction: reduction, chunk: 8)
                let ws = Self.model.makeWorkspace(capacity: 8)
                let average = try indices.withUnsafeBufferPointer { idx in
                    try theta.withUnsafeBufferPointer { th in
                        try exchange.exchange(count: batch, measureNoise: false, requestStop: false, over: comm) { _, positions, g in
                            Self.model.accumulateGradient(parameters: th.baseAddress!, gradient: g, dataset: Self.data,
                                                          indices: UnsafeBufferPointer(rebasing: idx[positions]), workspace: ws,
                                                          overwrite: true).lossSum
                        }
                    }
                }
                return (exchange.withGradient { Array($0) }, average.replicas[0].loss, average.count)
            }
            for (gradient, loss, count) in results {
                #expect(count == batch)
                #expect(abs(loss - expectedLoss) <= 1e-5 * expectedLoss)
                for i in gradient.indices {
                    #expect(abs(gradient[i] - expected[i]) <= 1e-5 * max(1, abs(expected[i])), "θ[\(i)]")
                }
            }
            #expect(Set(results.map { fingerprint($0.0) }).count == 1)  // every rank holds the same bits
            hashes[batch, default: []].insert(fingerprint(results[0].0))
        }
        if reduction == .deterministic {
            #expect(hashes.values.allSatisfy { $0.count == 1 }, "one gradient per batch, whatever the number of ranks")
        }
    }

    func config(batch: RunConfig.Batch, steps: Int) throws -> RunConfig {
        var c = try RunConfig.load(yaml: """
            data: {source: synthetic, train_samples: 300, test_samples: 50, features: 10, classes: 3}
            model: {hidden: [16]}
            optimizer: {name: momentum, lr: 0.05}
            training: {epochs: 1, log_every: 1, hash_check_every: 2, chunk: 32}
            """, fileName: "test")
        c.training.batch = batch
        c.training.steps = steps
        return c
    }

    @Test("training on 1, 2 and 3 ranks follows the same trajectory (bit for bit with the deterministic reduction, within float rounding with mpi); ranks stay identical",
          arguments: [RunConfig.Batch.samples(50), .full], [Reduction.deterministic, .mpi])
    func sameTrajectory(batch: RunConfig.Batch, reduction: Reduction) throws {
        var c = try config(batch: batch, steps: 6)
        c.training.reduction = reduction
        c.training.chunk = 8  // 50 samples: 7 chunks; the full 300: 38
        var finals: [[Float]] = []
        for ranks in [1, 2, 3] {
            let params = try InProcessGroup.run(ranks: ranks) { comm -> [Float] in
                let trainer = try Trainer.quiet(c, on: comm, writeOutput: false)
                let result = try trainer.run()
                #expect(Set(result.rankHashes).count == 1 && result.rankHashes.count == ranks)
                #expect(result.steps == 6)
                return trainer.parameters
            }
            #expect(Set(params.map(fingerprint)).count == 1)
            finals.append(params[0])
        }
        for other in finals.dropFirst() {
            if reduction == .deterministic {
                #expect(fingerprint(other) == fingerprint(finals[0]))
            }
            let worst = zip(other, finals[0]).map { abs($0 - $1) / max(1, abs($1)) }.max()!
            #expect(worst < 1e-4, "largest relative difference \(worst)")
        }
        // The trajectory really moved: parameters differ from the initial ones.
        #expect(finals[0] != MLP(sizes: [10, 16, 3]).initialParameters(seed: c.seed))
    }

    @Test("a global batch smaller than the number of ranks is refused on every rank")
    func batchSmallerThanRanks() throws {
        var c = try config(batch: .samples(2), steps: 1)
        c.training.reduction = .mpi
        let messages = try InProcessGroup.run(ranks: 3) { comm -> String in
            do {
                _ = try Trainer.quiet(c, on: comm, writeOutput: false)
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        // The config came from the text named "test": the message names that source.
        #expect(messages == Array(repeating: "test: training.batch: expected a global batch of at least 3 samples (one per rank) with reduction mpi, found 2", count: 3))
    }

    @Test("the sharded optimizer step: each of 3 ranks keeps Adam's state for its own third of the parameters, and the parts tile them")
    func shardedOptimizerState() throws {
        var c = try config(batch: .samples(50), steps: 3)
        c.optimizer = OptimizerSettings(.adam)
        let lengths = try InProcessGroup.run(ranks: 3) { comm -> [Int] in
            let trainer = try Trainer.quiet(c, on: comm, writeOutput: false)
            try trainer.run()
            return trainer.optimizer.state().buffers.values.map(\.count)
        }
        let p = MLP(sizes: [10, 16, 3]).parameterCount
        #expect(lengths.allSatisfy { $0.count == 2 && Set($0).count == 1 })
        #expect(lengths.map { $0[0] }.reduce(0, +) == p)
        #expect(lengths.allSatisfy { abs($0[0] - p / 3) <= 2 })
    }

    @Test("with the deterministic reduction a batch smaller than the ranks trains, with the same bits as on one rank")
    func batchOfOne() throws {
        var c = try config(batch: .samples(1), steps: 7)
        c.training.chunk = 1
        let finals = try [1, 3].map { ranks in
            try InProcessGroup.run(ranks: ranks) { comm -> [Float] in
                let trainer = try Trainer.quiet(c, on: comm, writeOutput: false)
                try trainer.run()
                return trainer.parameters
            }
        }
        #expect(Set(finals.flatMap { $0 }.map(fingerprint)).count == 1)
    }
}
