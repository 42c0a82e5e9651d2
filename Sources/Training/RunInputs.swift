// The three values a trainer is built from: what it trains on (RunInputs, loaded and agreed once), the replicas it
// trains (ReplicaPlan), and where it writes (RunOutput); and the held-out evaluation that needs only the first.
import Collectives
import Config
import Datasets
import Foundation
import Models
import Numerics
import Optimizers

/// What a run trains on, loaded and agreed on every rank before step 0: the config as every rank has it, the data,
/// the model and the matrix kernels. `descent eval` evaluates with it, without a trainer.
public struct RunInputs {
    public let config: RunConfig
    public let communicator: Communicator
    public let trainSet: Dataset
    /// The training samples `data.validation` holds out, evaluated beside the test set.
    public let validationSet: Dataset?
    public let testSet: Dataset
    public let model: any Model
    /// Every rank's matrix kernels, by rank.
    public let kernels: [RankKernels]
    /// Seconds this rank took to load, check and agree on the data.
    public let dataLoadSeconds: Double
    /// Named points where a test acts on the run (fault injection); production runs have none.
    public let hooks: TrainingHooks?

    /// Loads `config`'s data (or takes `problem`'s data and model), builds the model and chooses the kernels, with
    /// the ranks agreeing on the config, the data files and the kernels. `hooks` may first change this rank's config
    /// (a fault). Every failure is collective: all ranks throw, before anything is written.
    public static func load(_ config: RunConfig, on communicator: Communicator, hooks: TrainingHooks? = nil,
                            problem: Problem? = nil) throws -> RunInputs {
        var config = config
        hooks?.adjust(&config, rank: communicator.rank)
        communicator.setContext(step: -1, phase: "startup")
        communicator.setDeadline(config.guards.collectiveTimeout)
        let start = monotonicSeconds()
        let data: (train: Dataset, validation: Dataset?, test: Dataset)
        if let problem {
            try Agreement.check(config, on: communicator)
            data = (problem.train, nil, problem.test)
        } else {
            data = try Trainer.agreedData(config, on: communicator)
        }
        let seconds = monotonicSeconds() - start
        let kernels = try Trainer.agreedKernels(config, on: communicator)
        Trainer.chooseBLASThreads(config, ranks: communicator.size)
        let model = try problem?.model ?? Trainer.makeModel(config, data.train)
        let kind = config.optimizer.kind
        if kind.needsProducts && !(model is CurvatureModel) {
            throw AgreedFailure(description: ConfigError(source: config.origin.of("optimizer.name"), key: "optimizer.name",
                                                         expected: "a rule without Hessian-vector products: the model \(model.shapeText) has none",
                                                         found: kind.rawValue).description)
        }
        if kind.formsHessian && model.parameterCount > Newton.denseLimit {
            throw AgreedFailure(description: ConfigError(
                source: config.origin.of("optimizer.name"), key: "optimizer.name",
                expected: "\(kind.rawValue) on a model of at most \(Newton.denseLimit) parameters (it forms the Hessian from one product per "
                    + "parameter each step; newton-cg takes a few products instead)",
                found: "\(kind.rawValue) on \(model.shapeText), \(model.parameterCount) parameters").description)
        }
        if config.curvature.every > 0 && !(model is CurvatureModel) {
            throw AgreedFailure(description: ConfigError(source: config.origin.of("curvature.every"), key: "curvature.every",
                                                         expected: "0: the model \(model.shapeText) has no Hessian-vector products",
                                                         found: "\(config.curvature.every)").description)
        }
        return RunInputs(config: config, communicator: communicator, trainSet: data.train, validationSet: data.validation,
                         testSet: data.test, model: model, kernels: kernels, dataLoadSeconds: seconds, hooks: hooks)
    }

    /// Samples per optimizer step: the configured batch, or the whole training set.
    public func globalBatch() throws -> Int { try Trainer.globalBatch(config, samples: trainSet.count, ranks: communicator.size) }

    /// Whole-data-set evaluation with this model and a workspace of its own, in the passes a run of this config
    /// makes: with the deterministic reduction one chunk of the fixed grid; otherwise up to a chunk of a rank's shard.
    public func evaluator() throws -> Evaluator { evaluator(globalBatch: try globalBatch()) }

    func evaluator(globalBatch: Int) -> Evaluator {
        let chunk = config.training.chunkSize(globalBatch: globalBatch)
        let localMost = (globalBatch + communicator.size - 1) / communicator.size
        let capacity = config.training.reduction == .deterministic ? chunk : min(chunk, max(localMost, 1))
        return Evaluator(model: model, workspace: model.makeWorkspace(capacity: capacity), chunk: capacity,
                         reduction: config.training.reduction, communicator: communicator)
    }
}

/// One model a trainer trains: its label (its folder's name when there are several) and its optimizer.
public struct ReplicaPlan: Sendable {
    public var label: String
    public var settings: OptimizerSettings

    public init(label: String, settings: OptimizerSettings) { (self.label, self.settings) = (label, settings) }
}

/// Where a run writes: nowhere, or a run folder (`<output.dir>/<name>/`, written by rank 0).
public enum RunOutput: Sendable {
    case none
    /// `overwrite` replaces an existing folder; `checkpoints` writes them (and resumes from them when the config
    /// asks); `resumeFrom` continues from that file instead of the folder's newest committed checkpoint.
    case folder(overwrite: Bool = false, checkpoints: Bool = true, resumeFrom: String? = nil)
}

/// How a trainer shows and measures itself.
public struct TrainerOptions {
    public var console: Console?
    /// When set, a step row is logged often enough to give at least this many rows (a comparison wants curves).
    public var rows: Int?
    /// A target each replica trains to (a trial of `descent study`); nil: train to the configured length.
    public var goal: Target?
    /// Successive halving of the replicas training towards `goal`; nil: none is retired early.
    public var pruner: Pruner?

    public init(console: Console? = nil, rows: Int? = nil, goal: Target? = nil, pruner: Pruner? = nil) {
        (self.console, self.rows, self.goal, self.pruner) = (console, rows, goal, pruner)
    }
}

/// Successive halving in lock step (as ASHA's rungs, with every trial at the same rung at once): at the first
/// evaluation at or after each rung step, the replicas still in the race (training, or at the target already)
/// are ranked — those at the target first, by the step they reached it, then by the goal's metric — and only the
/// best `1/reduction` of them (rounded up, at least one) go on; the others still training are retired.
public struct Pruner: Equatable, Sendable {
    public var rungs: [Int]
    public var reduction: Int

    public init(rungs: [Int], reduction: Int) { (self.rungs, self.reduction) = (rungs, reduction) }

    /// Rungs at `first`, `first`·η, `first`·η², … below `budget`.
    public init(first: Int, reduction: Int, budget: Int) {
        var rungs: [Int] = [], r = first
        while r < budget {
            rungs.append(r)
            r *= reduction
        }
        self.init(rungs: rungs, reduction: reduction)
    }

    /// The indices of `candidates` to keep, given each one's reach step (nil: still training) and latest value of
    /// `metric` (nan when it has none); ties go to the earlier index.
    public func keep(_ candidates: [(index: Int, reached: Int?, value: Double)], metric: Target.Metric) -> [Int] {
        let ranked = candidates.sorted { a, b in
            func key(_ c: (index: Int, reached: Int?, value: Double)) -> (Int, Double, Int) {
                let v = c.value.isFinite ? (metric.rises ? -c.value : c.value) : .infinity
                return (c.reached ?? Int.max, c.reached == nil ? v : 0, c.index)
            }
            return key(a) < key(b)
        }
        let count = max(1, (candidates.count + reduction - 1) / reduction)
        return ranked.prefix(count).map(\.index)
    }
}

/// Loss and accuracy of parameters over a whole data set, each rank evaluating its share. With the deterministic
/// reduction the share is a run of whole chunks and the chunks' loss sums are added in chunk order on every rank
/// (each rank fills its own chunks' slots of one allreduce, which is exact), so the result does not depend on the
/// number of ranks. The counts (correct predictions, samples, the confusion matrix's cells) are whole numbers and
/// add exactly either way.
public struct Evaluator {
    public let model: any Model
    public let workspace: AnyObject
    /// Samples per pass of the workspace.
    let chunk: Int
    let reduction: Reduction
    let communicator: Communicator

    public func evaluate(_ dataset: Dataset, _ parameters: [Float]) throws -> (loss: Double, accuracy: Double) {
        let r = try evaluate(dataset, parameters, confusionOf: nil)
        return (r.loss, r.accuracy)
    }

    /// The same, with the confusion matrix of `classifier` (confusion[true class][predicted class] = samples) from the
    /// same passes; without one the matrix is empty.
    public func evaluate(_ dataset: Dataset, _ parameters: [Float], confusionOf classifier: Classifier?) throws
        -> (loss: Double, accuracy: Double, confusion: [[Int]]) {
        let (rank, size) = (communicator.rank, communicator.size)
        let n = dataset.count, classes = classifier == nil ? 0 : dataset.classCount
        // This rank's confusion counts, row by row, added across ranks in the same allreduce as the rest.
        var tally = [Double](repeating: 0, count: classes * classes)
        func totals(_ range: Range<Int>) -> LossTotals {
            let indices = (Int32(range.lowerBound)..<Int32(range.upperBound)).map { $0 }
            return indices.withUnsafeBufferPointer { idx in
                parameters.withUnsafeBufferPointer { theta in
                    guard let classifier else {
                        return model.evaluate(parameters: theta.baseAddress!, dataset: dataset, indices: idx, workspace: workspace)
                    }
                    let (t, predictions) = classifier.classify(parameters: theta.baseAddress!, dataset: dataset, indices: idx,
                                                               workspace: workspace)
                    for (label, predicted) in predictions { tally[label * classes + predicted] += 1 }
                    return t
                }
            }
        }
        // [loss sum of each chunk (one chunk: the rank's share, with the mpi reduction) | correct | count | tally]
        var slots: [Double], chunks: Int
        switch reduction {
        case .mpi:
            let t = totals(shard(of: 0..<n, rank: rank, size: size))
            (slots, chunks) = ([t.lossSum, Double(t.correct), Double(t.count)], 1)
        case .deterministic:
            chunks = (n + chunk - 1) / chunk
            slots = [Double](repeating: 0, count: chunks + 2)
            for c in shard(of: 0..<chunks, rank: rank, size: size) {
                let t = totals((c * chunk)..<min((c + 1) * chunk, n))
                slots[c] = t.lossSum
                slots[chunks] += Double(t.correct)
                slots[chunks + 1] += Double(t.count)
            }
        }
        slots += tally
        try communicator.allreduce(&slots, .sum)
        let loss = slots[0..<chunks].reduce(0, +), count = slots[chunks + 1]
        let confusion = (0..<classes).map { t in (0..<classes).map { p in Int(slots[chunks + 2 + t * classes + p]) } }
        return (loss / count, slots[chunks] / count, confusion)
    }
}
