// The data-parallel training loop: every rank computes gradient sums over its slice of each global batch, one
// allreduce averages them, every rank applies the same optimizer step.
import Collectives
import Datasets
import Foundation
import Models
import Numerics
import Optimizers

/// Raised identically on every rank (the ranks found it together), so one rank reports it for all.
public struct AgreedFailure: Error, CustomStringConvertible, Sendable {
    public var description: String
}


/// What a finished run measured.
public struct RunResult: Sendable {
    public var finalHash: UInt64
    /// Each rank's own hash of its final parameters, by rank.
    public var rankHashes: [UInt64]
    public var steps: Int
    public var samples: Int
    /// Time in training steps (excluding evaluation and output), the maximum over ranks.
    public var trainSeconds: Double
    /// Per-phase seconds (local gradient, allreduce, optimizer), each the maximum over ranks.
    public var computeSeconds: Double
    public var allreduceSeconds: Double
    public var optimizerSeconds: Double
    public var peakResidentBytes: [Int]
    public var lastTestLoss: Double?
    public var lastTestAccuracy: Double?
    public var lastTrainLoss: Double?
    /// B_simple over the last epoch (nil with fewer than two ranks holding samples).
    public var lastNoiseScale: Double?

    public var samplesPerSecond: Double { Double(samples) / trainSeconds }
}

/// One training run on one rank. Create it on every rank with the same config, then call `run()` on every rank.
public final class Trainer {
    public let config: RunConfig
    public let communicator: Communicator
    public let trainSet: Dataset
    public let testSet: Dataset
    public let model: MLP
    public let optimizer: Optimizer
    /// θ: the flat parameter buffer, identical on every rank.
    public private(set) var parameters: [Float]
    /// Where rank 0 writes `config.yaml`, metrics and the summary; nil on other ranks or without output.
    public let runDirectory: String?

    private let averager: GradientAverager
    private let workspace: MLP.Workspace
    private let console: Console
    private var metrics: MetricsWriter?
    /// Every metrics row written so far (rank 0 with output), for the run report.
    public private(set) var history: [MetricsRow] = []
    private let globalBatch: Int

    /// Loads data, builds the model and optimizer, broadcasts rank 0's initial parameters and (on rank 0)
    /// creates the run folder. Every failure is collective: all ranks throw, before any output is written.
    ///
    /// - Parameters:
    ///   - writeOutput: create `<output.dir>/<name>/` on rank 0 (tests may train without files).
    ///   - overwrite: replace an existing run folder instead of refusing.
    public init(config: RunConfig, communicator: Communicator, writeOutput: Bool = true, overwrite: Bool = false,
                console: Console? = nil) throws {
        self.config = config
        self.communicator = communicator
        let rank = communicator.rank, size = communicator.size
        self.console = console ?? Console(enabled: rank == 0, style: .auto)

        let (trainSet, testSet) = try communicator.collectively { try Self.loadData(config) }
        self.trainSet = trainSet
        self.testSet = testSet
        let globalBatch: Int
        switch config.training.batch {
        case .full: globalBatch = trainSet.count
        case .samples(let n): globalBatch = min(n, trainSet.count)
        }
        self.globalBatch = globalBatch
        if globalBatch < size {
            throw AgreedFailure(description: ConfigError(
                source: "config", key: "training.batch",
                expected: "a global batch of at least \(size) samples (one per rank)",
                found: "\(globalBatch)").description)
        }

        if let threads = config.blasThreads {
            BLASThreads.count = threads
        } else if size > 1 {
            BLASThreads.count = Self.automaticBLASThreads()
        }

        let model = MLP(sizes: [trainSet.featureCount] + config.model.hidden + [trainSet.classCount])
        self.model = model
        optimizer = config.optimizer.makeOptimizer(parameterCount: model.parameterCount)
        averager = GradientAverager(parameterCount: model.parameterCount)
        let localMost = (globalBatch + size - 1) / size
        workspace = model.makeWorkspace(capacity: min(config.training.chunk, max(localMost, 1)))

        // Rank 0's initial parameters are the run's; the broadcast makes that true whatever the others drew.
        var initial = rank == 0 ? model.initialParameters(seed: config.seed) : [Float](repeating: 0, count: model.parameterCount)
        try communicator.broadcast(&initial, root: 0)
        parameters = initial

        let directory = config.outputDirectory + "/" + config.name
        let runDirectory = writeOutput && rank == 0 ? directory : nil
        self.runDirectory = runDirectory
        metrics = try communicator.collectively {
            guard let runDirectory else { return nil }
            return try Self.createRunDirectory(runDirectory, config: config, overwrite: overwrite)
        }
    }

    static func loadData(_ config: RunConfig) throws -> (Dataset, Dataset) {
        switch config.data.source {
        case .fashionMNIST:
            return (try FashionMNIST.load(.train, from: config.data.path),
                    try FashionMNIST.load(.test, from: config.data.path))
        case .synthetic:
            let d = config.data
            func make(_ n: Int, test: Bool) -> Dataset {
                SyntheticClassification(count: n, featureCount: d.features, classCount: d.classes,
                                        noise: Float(d.noise), seed: config.seed, test: test)
            }
            return (make(d.trainSamples, test: false), make(d.testSamples, test: true))
        }
    }

    /// One BLAS thread per rank when the ranks on this node fill its cores; otherwise share the spare cores.
    static func automaticBLASThreads() -> Int {
        let env = ProcessInfo.processInfo.environment
        let local = Int(env["OMPI_COMM_WORLD_LOCAL_SIZE"] ?? env["SLURM_NTASKS_PER_NODE"] ?? "") ?? 1
        let cores = ProcessInfo.processInfo.activeProcessorCount
        return max(1, cores / max(local, 1))
    }

    static func createRunDirectory(_ path: String, config: RunConfig, overwrite: Bool) throws -> MetricsWriter {
        let fm = FileManager.default
        if fm.fileExists(atPath: path) {
            guard overwrite else {
                throw OutputError(path: path, reason: "the run folder already exists (pass --overwrite to replace it, "
                                  + "or choose another name with --set name=...)")
            }
            do { try fm.removeItem(atPath: path) } catch {
                throw OutputError(path: path, reason: "cannot remove the old run folder: \(error.localizedDescription)")
            }
        }
        do {
            try fm.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw OutputError(path: path, reason: error.localizedDescription)
        }
        try writeAtomically(config.resolvedYAML, to: path + "/config.yaml")
        return try MetricsWriter(directory: path)
    }

    // MARK: the loop

    /// Trains to the configured epochs or steps and returns the measurements (identical hashes on all ranks).
    @discardableResult
    public func run() throws -> RunResult {
        let rank = communicator.rank, size = communicator.size
        let n = trainSet.count
        let stepLimit = config.training.steps
        let plannedSteps = stepLimit ?? (config.training.epochs * ((n + globalBatch - 1) / globalBatch))
        let schedule = config.schedule
        let baseRate = schedule.batchScaling.scale(config.optimizer.learningRate, batch: globalBatch,
                                                   referenceBatch: schedule.referenceBatch ?? globalBatch)
        let scaled = schedule.batchScaling == .none ? ""
            : " (\(schedule.batchScaling.rawValue)-scaled from \(config.optimizer.learningRate) at batch \(schedule.referenceBatch!))"
        let variant = config.optimizer.variant == config.optimizer.kind.variants[0] ? "" : " (\(config.optimizer.variant))"
        console.note("descent: \(size) rank\(size == 1 ? "" : "s"), \(trainSet.summary), model "
                     + model.sizes.map(String.init).joined(separator: "-") + " (\(model.parameterCount) parameters), "
                     + "\(config.optimizer.kind.rawValue)\(variant) lr \(baseRate)\(scaled)"
                     + (schedule.rate.kind == .constant && schedule.rate.warmupSteps == 0 ? "" : ", \(schedule.rate.kind.rawValue) schedule")
                     + (schedule.rate.warmupSteps > 0 ? " after \(schedule.rate.warmupSteps) warmup steps" : "")
                     + ", batch \(config.training.batch), \(plannedSteps) steps (\((n + globalBatch - 1) / globalBatch) per epoch), "
                     + "BLAS threads \(BLASThreads.count)")

        let start = monotonicSeconds()
        var step = 0, samples = 0
        var compute = 0.0, reduce = 0.0, update = 0.0
        var windowLoss = 0.0, windowSteps = 0, epochLoss = 0.0, epochSteps = 0
        var windowNoise = NoiseScale(), epochNoise = NoiseScale(), lastNoise: Double?
        var last = (train: Double?.none, trainAccuracy: Double?.none, test: Double?.none, testAccuracy: Double?.none)
        var epoch = 0
        var finished = false

        while !finished {
            let plan = EpochPlan(seed: config.seed, epoch: epoch, sampleCount: n, batchSize: globalBatch,
                                 shuffle: config.training.shuffle)
            for k in 0..<plan.batchCount {
                let mine = shard(of: plan.batch(k), rank: rank, size: size)
                let t0 = monotonicSeconds()
                averager.reset()
                plan.order.withUnsafeBufferPointer { order in
                    parameters.withUnsafeBufferPointer { theta in
                        averager.withLocalSums { gradient, lossSum, count in
                            let t = model.accumulateGradient(
                                parameters: theta.baseAddress!, gradient: gradient, dataset: trainSet,
                                indices: UnsafeBufferPointer(rebasing: order[mine]), workspace: workspace)
                            lossSum = Float(t.lossSum)
                            count = Float(t.count)
                        }
                    }
                }
                averager.recordLocalSquaredNorm()
                let t1 = monotonicSeconds()
                let average = try averager.average(over: communicator)
                let t2 = monotonicSeconds()
                if size > 1, let e = NoiseScale.estimate(
                    localSquaredNormSum: average.localSquaredNormSum,
                    localCounts: (0..<size).map { shard(of: plan.batch(k), rank: $0, size: size).count },
                    globalSquaredNorm: averager.squaredNorm()) {
                    windowNoise.add(e)
                    epochNoise.add(e)
                }
                if let maxNorm = config.training.clipNorm { averager.clip(toNorm: maxNorm) }
                optimizer.learningRate = schedule.rate.rate(step: step + 1, base: baseRate, totalSteps: plannedSteps)
                averager.withGradient { g in
                    parameters.withUnsafeMutableBufferPointer { optimizer.update($0, gradient: g) }
                }
                let t3 = monotonicSeconds()
                compute += t1 - t0; reduce += t2 - t1; update += t3 - t2
                step += 1
                samples += average.count
                windowLoss += average.loss; windowSteps += 1
                epochLoss += average.loss; epochSteps += 1

                if step % config.training.logEvery == 0 {
                    try write(MetricsRow(kind: .step, step: step, epoch: Double(samples) / Double(n), samples: samples,
                                         wallSeconds: t3 - start, learningRate: optimizer.learningRate,
                                         batchLoss: windowLoss / Double(windowSteps), noiseScale: windowNoise.value))
                    windowLoss = 0; windowSteps = 0; windowNoise = NoiseScale()
                }
                if step % config.training.hashCheckEvery == 0 { try checkReplicasAgree(step: step) }
                let rate = Double(samples) / max(compute + reduce + update, 1e-9)
                console.progress(
                    "epoch \(epoch + 1) step \(step)/\(plannedSteps) loss \(fixed(average.loss, 4)) "
                    + "\(Int(rate)) samples/s ETA \(durationText(Double((plannedSteps - step) * globalBatch) / rate))",
                    now: t3)
                if let stepLimit, step >= stepLimit {
                    finished = true
                    break
                }
            }
            epoch += 1
            if stepLimit == nil && epoch >= config.training.epochs { finished = true }
            // An evaluation row at every epoch end, and at the end of a run that stops mid-epoch.
            if epochSteps > 0 {
                let train = config.training.evaluateTrainingSet ? try evaluate(trainSet) : nil
                let test = try evaluate(testSet)
                last = (train?.loss, train?.accuracy, test.loss, test.accuracy)
                let row = MetricsRow(kind: .epoch, step: step, epoch: Double(samples) / Double(n), samples: samples,
                                     wallSeconds: monotonicSeconds() - start, learningRate: optimizer.learningRate,
                                     batchLoss: epochSteps > 0 ? epochLoss / Double(epochSteps) : nil,
                                     trainLoss: train?.loss, trainAccuracy: train?.accuracy,
                                     testLoss: test.loss, testAccuracy: test.accuracy, noiseScale: epochNoise.value)
                lastNoise = epochNoise.value
                try write(row)
                console.note("epoch \(fixed(row.epoch, 2)) step \(step): batch loss \(fixed(row.batchLoss ?? .nan, 4))"
                             + (train.map { ", train loss \(fixed($0.loss, 4)) acc \(fixed($0.accuracy, 4))" } ?? "")
                             + ", test loss \(fixed(test.loss, 4)) acc \(fixed(test.accuracy, 4))"
                             + (epochNoise.value.map { ", noise scale \(Int($0.rounded()))" } ?? ""))
                epochLoss = 0; epochSteps = 0; epochNoise = NoiseScale()
            }
        }

        try checkReplicasAgree(step: step)
        let hash = fingerprint(parameters)
        let hashes = try communicator.allGather(Int64(bitPattern: hash)).map { UInt64(bitPattern: $0) }
        var phases = [compute + reduce + update, compute, reduce, update]
        try communicator.allreduce(&phases, .max)
        let rss = try communicator.allGather(Double(peakResidentBytes())).map { Int($0) }
        let result = RunResult(
            finalHash: hash, rankHashes: hashes, steps: step, samples: samples, trainSeconds: phases[0],
            computeSeconds: phases[1], allreduceSeconds: phases[2], optimizerSeconds: phases[3],
            peakResidentBytes: rss, lastTestLoss: last.test, lastTestAccuracy: last.testAccuracy,
            lastTrainLoss: last.train, lastNoiseScale: lastNoise)
        try finish(result)
        return result
    }

    /// Loss and accuracy of the current parameters over a whole data set, each rank evaluating its share.
    public func evaluate(_ dataset: Dataset) throws -> (loss: Double, accuracy: Double) {
        let mine = shard(of: 0..<dataset.count, rank: communicator.rank, size: communicator.size)
        let indices = (Int32(mine.lowerBound)..<Int32(mine.upperBound)).map { $0 }
        let t = indices.withUnsafeBufferPointer { idx in
            parameters.withUnsafeBufferPointer { theta in
                model.evaluate(parameters: theta.baseAddress!, dataset: dataset, indices: idx, workspace: workspace)
            }
        }
        var totals = [t.lossSum, Double(t.correct), Double(t.count)]
        try communicator.allreduce(&totals, .sum)
        return (totals[0] / totals[2], totals[1] / totals[2])
    }

    /// Compares a hash of θ across ranks; a mismatch stops every rank with the step at which it was seen.
    public func checkReplicasAgree(step: Int) throws {
        let hash = fingerprint(parameters)
        guard try communicator.allAgree(on: hash) else {
            let all = try communicator.allGather(Int64(bitPattern: hash)).map { hexDigest(UInt64(bitPattern: $0)) }
            throw AgreedFailure(description: "parameters differ between ranks at step \(step) "
                                + "(hashes by rank: \(all.joined(separator: ", "))); the replicas are no longer identical")
        }
    }

    private func write(_ row: MetricsRow) throws {
        guard let metrics else { return }
        try metrics.append(row)
        history.append(row)
    }

    /// Rank 0: the summary file, the final parameters and hash, and the closing lines.
    private func finish(_ r: RunResult) throws {
        let mb = r.peakResidentBytes.map { fixed(Double($0) / 1e6, 1) }
        console.note("done: \(r.steps) steps, \(r.samples) samples in \(fixed(r.trainSeconds, 2)) s of training "
                     + "(\(Int(r.samplesPerSecond)) samples/s; compute \(fixed(r.computeSeconds, 2)) s, "
                     + "allreduce \(fixed(r.allreduceSeconds, 2)) s, optimizer \(fixed(r.optimizerSeconds, 2)) s), "
                     + "peak RSS per rank \(mb.joined(separator: ", ")) MB")
        console.note("final parameter hash \(hexDigest(r.finalHash)) (equal on all \(communicator.size) ranks)")
        guard let dir = runDirectory else { return }
        var summary: [String: Any] = [
            "name": config.name,
            "ranks": communicator.size,
            "blas_threads": BLASThreads.count,
            "steps": r.steps,
            "samples": r.samples,
            "train_seconds": r.trainSeconds,
            "samples_per_second": r.samplesPerSecond,
            "compute_seconds": r.computeSeconds,
            "allreduce_seconds": r.allreduceSeconds,
            "optimizer_seconds": r.optimizerSeconds,
            "peak_rss_bytes": r.peakResidentBytes,
            "final_hash": hexDigest(r.finalHash),
            "rank_hashes": r.rankHashes.map(hexDigest),
            "parameter_count": model.parameterCount,
            "parameter_layout": model.parameterSummary,
        ]
        // JSON has no inf or nan: a diverged run records them as text, as metrics.jsonl does.
        func number(_ v: Double) -> Any { v.isFinite ? v : (v.isNaN ? "nan" : (v > 0 ? "inf" : "-inf")) }
        if let v = r.lastTestLoss { summary["test_loss"] = number(v) }
        if let v = r.lastTestAccuracy { summary["test_accuracy"] = number(v) }
        if let v = r.lastTrainLoss { summary["train_loss"] = number(v) }
        if let v = r.lastNoiseScale { summary["noise_scale"] = number(v) }
        let json = try JSONSerialization.data(withJSONObject: summary, options: [.prettyPrinted, .sortedKeys])
        try writeAtomically(json, to: dir + "/summary.json")
        try writeAtomically(hexDigest(r.finalHash) + "\n", to: dir + "/final_hash")
        try writeAtomically(parameters.withUnsafeBytes { Data($0) }, to: dir + "/parameters.f32")
        var figures: [(String, String)] = [
            ("ranks", "\(communicator.size)"), ("steps", "\(r.steps)"), ("samples", "\(r.samples)"),
            ("training seconds", fixed(r.trainSeconds, 2)), ("samples/s", "\(Int(r.samplesPerSecond))"),
            ("compute / allreduce / optimizer s", "\(fixed(r.computeSeconds, 2)) / \(fixed(r.allreduceSeconds, 2)) / \(fixed(r.optimizerSeconds, 2))"),
        ]
        if let v = r.lastTrainLoss { figures.append(("final training loss", fixed(v, 4))) }
        if let v = r.lastTestLoss { figures.append(("final test loss", fixed(v, 4))) }
        if let v = r.lastTestAccuracy { figures.append(("final test accuracy", fixed(v, 4))) }
        if let v = r.lastNoiseScale { figures.append(("noise scale B_simple, last epoch", "\(Int(v.rounded()))")) }
        figures.append(("final parameter hash", hexDigest(r.finalHash)))
        let optimizer = config.optimizer.kind.rawValue + " lr \(config.optimizer.learningRate)"
        try RunReport.write(directory: dir, name: config.name,
                            subtitle: "\(trainSet.summary), model " + model.sizes.map(String.init).joined(separator: "-")
                                + ", \(optimizer), batch \(config.training.batch)",
                            figures: figures, rows: history, config: config.resolvedYAML)
        console.note("results in \(dir)/ (report.html, metrics.csv, metrics.jsonl, summary.json, parameters.f32, *.svg)")
    }
}
