// The data-parallel training loop: every rank computes gradient sums over its slice of each global batch, one
// allreduce averages them, every rank applies the same optimizer step. Several replicas of the model, one per
// optimizer, can train on the same mini-batches with one allreduce per step for all of them.
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

/// One model trained by one optimizer: parameters, optimizer, output folder and record.
public final class Replica {
    public let label: String
    /// The config this replica follows (the run's, with its own optimizer and name).
    public let config: RunConfig
    public let optimizer: Optimizer
    /// θ: the flat parameter buffer, identical on every rank.
    public internal(set) var parameters: [Float]
    /// Where rank 0 writes this replica's files; nil on other ranks or without output.
    public let directory: String?
    var metrics: MetricsWriter?
    /// Every metrics row written so far (rank 0 with output), for reports.
    public internal(set) var history: [MetricsRow] = []
    public internal(set) var result: RunResult?

    var windowLoss = 0.0, epochLoss = 0.0
    var windowNoise = NoiseScale(), epochNoise = NoiseScale(), lastNoise: Double?
    var last = (train: Double?.none, trainAccuracy: Double?.none, test: Double?.none, testAccuracy: Double?.none)
    var update = 0.0
    /// The first step's mean loss (the divergence guard's yardstick).
    var firstLoss: Double?
    /// Steps whose update was skipped because a loss or gradient was not finite: in a row, and in all.
    var skippedInRow = 0, skipped = 0
    /// Steps in a row whose loss was above the divergence threshold.
    var divergingInRow = 0

    init(label: String, config: RunConfig, optimizer: Optimizer, parameters: [Float], directory: String?) {
        self.label = label
        self.config = config
        self.optimizer = optimizer
        self.parameters = parameters
        self.directory = directory
    }

    func write(_ row: MetricsRow) throws {
        guard let metrics else { return }
        try metrics.append(row)
        history.append(row)
    }
}

/// One training run on one rank. Create it on every rank with the same config, then call `run()` on every rank.
public final class Trainer {
    public let config: RunConfig
    public let communicator: Communicator
    public let trainSet: Dataset
    public let testSet: Dataset
    public let model: MLP
    /// The models being trained: one, or one per optimizer of a comparison.
    public let replicas: [Replica]
    /// Where rank 0 writes the run's files; nil on other ranks or without output.
    public let runDirectory: String?
    /// Optimizer steps the run will take.
    public let plannedSteps: Int
    /// Steps between step rows.
    public let logEvery: Int

    /// The first replica's parameters, optimizer and record (the only ones of a plain run).
    public var parameters: [Float] { replicas[0].parameters }
    public var optimizer: Optimizer { replicas[0].optimizer }
    public var history: [MetricsRow] { replicas[0].history }

    let averager: GradientAverager
    let workspace: MLP.Workspace
    let console: Console
    let globalBatch: Int
    /// Where checkpoints go (every rank knows it; rank 0 writes); nil when this run keeps none.
    public let checkpointDirectory: String?
    /// The checkpoint this run continues from, if any.
    public private(set) var resumedFrom: (path: String, header: CheckpointHeader)?
    let faults: FaultPlan?
    /// The step of the last checkpoint this process committed (or resumed from).
    var lastCheckpointStep: Int?

    /// Loads data, builds the model and optimizers, broadcasts rank 0's initial parameters and (on rank 0)
    /// creates the run folder. Every failure is collective: all ranks throw, before any output is written.
    ///
    /// - Parameters:
    ///   - writeOutput: create `<output.dir>/<name>/` on rank 0 (tests may train without files).
    ///   - overwrite: replace an existing run folder instead of refusing.
    ///   - rows: when set, log a step row often enough to give at least this many rows over the run (a
    ///     comparison wants curves, whatever `log_every` says).
    ///   - optimizers: train one replica per (label, optimizer), all from the same initial parameters on the
    ///     same mini-batches; each writes into `<run folder>/<label>/` (spaces and '/' as '-'). nil: one model
    ///     with `config.optimizer`.
    ///   - checkpoints: write checkpoints into `<run folder>/checkpoints/` as `config.checkpoint` says, and
    ///     resume from them when `config.checkpoint.resume` is set (needs `writeOutput` and a single model).
    ///   - resumeFrom: continue from this checkpoint file instead of the folder's newest committed one.
    ///   - faults: a fault to inject (tests of the guards).
    public init(config: RunConfig, communicator: Communicator, writeOutput: Bool = true, overwrite: Bool = false,
                console: Console? = nil, rows: Int? = nil, optimizers: [(label: String, settings: OptimizerSettings)]? = nil,
                checkpoints: Bool = true, resumeFrom: String? = nil, faults: FaultPlan? = nil) throws {
        var config = config
        let rank = communicator.rank, size = communicator.size
        if let faults, faults.kind == .config, faults.rank == rank { config.seed &+= 1 }
        self.config = config
        self.communicator = communicator
        self.faults = faults
        self.console = console ?? Console(enabled: rank == 0, style: .auto)
        communicator.setContext(step: -1, phase: "startup")
        if let watched = communicator as? WatchedCommunicator { watched.watchdog.deadline = config.guards.collectiveTimeout }

        // Agreement before work: the same config everywhere, then the same data.
        try Agreement.check(config, on: communicator)
        let (trainSet, testSet) = try communicator.collectively { try Self.loadData(config) }
        for file in trainSet.files + testSet.files {
            try Agreement.check("data file \(file.path)", file.identity, on: communicator)
        }
        self.trainSet = trainSet
        self.testSet = testSet
        let globalBatch: Int
        switch config.training.batch {
        case .full: globalBatch = trainSet.count
        case .samples(let n): globalBatch = min(n, trainSet.count)
        }
        self.globalBatch = globalBatch
        let stepsPerEpoch = (trainSet.count + globalBatch - 1) / globalBatch
        let planned = config.training.steps ?? config.training.epochs * stepsPerEpoch
        plannedSteps = planned
        if let rows {
            logEvery = max(1, min(config.training.logEvery, planned / rows))
        } else {
            logEvery = config.training.logEvery
        }
        if globalBatch < size {
            throw AgreedFailure(description: ConfigError(
                source: "config", key: "training.batch",
                expected: "a global batch of at least \(size) samples (one per rank)",
                found: "\(globalBatch)").description)
        }

        if let threads = config.blasThreads {
            BLASThreads.count = threads
        } else if config.training.reduction == .deterministic {
            // One thread per rank: the bits of a product must not depend on how many cores a rank was given.
            BLASThreads.count = 1
        } else if size > 1 {
            BLASThreads.count = Self.automaticBLASThreads()
        }

        let model = MLP(sizes: [trainSet.featureCount] + config.model.hidden + [trainSet.classCount])
        self.model = model
        let plan = optimizers ?? [(config.name, config.optimizer)]
        let chunk = config.training.chunkSize(globalBatch: globalBatch)
        averager = GradientAverager(parameterCount: model.parameterCount, replicas: plan.count, ranks: size, rank: rank,
                                    reduction: config.training.reduction, chunk: chunk)
        // Deterministic: every pass is one chunk of the fixed grid. mpi: passes of up to `chunk` samples of a shard.
        let localMost = (globalBatch + size - 1) / size
        workspace = model.makeWorkspace(capacity: config.training.reduction == .deterministic ? chunk : min(chunk, max(localMost, 1)))

        // Rank 0's initial parameters are the run's; the broadcast makes that true whatever the others drew.
        var initial = rank == 0 ? model.initialParameters(seed: config.seed) : [Float](repeating: 0, count: model.parameterCount)
        try communicator.broadcast(&initial, root: 0)

        let directory = config.outputDirectory + "/" + config.name
        let runDirectory = writeOutput && rank == 0 ? directory : nil
        self.runDirectory = runDirectory
        replicas = plan.map { entry in
            var c = config
            c.optimizer = entry.settings
            if optimizers != nil { c.name = RunConfig.folderName(entry.label) }
            let folder = optimizers == nil ? runDirectory : runDirectory.map { $0 + "/" + c.name }
            return Replica(label: entry.label, config: c, optimizer: entry.settings.makeOptimizer(parameterCount: model.parameterCount),
                           parameters: initial, directory: folder)
        }
        let replicas = self.replicas
        let single = optimizers == nil
        let checkpointDirectory = writeOutput && single && checkpoints ? CheckpointStore.directory(ofRun: directory) : nil
        self.checkpointDirectory = checkpointDirectory
        if let checkpointDirectory, config.checkpoint.resume || resumeFrom != nil {
            if overwrite {
                throw AgreedFailure(description: "--overwrite and --resume contradict each other: "
                                    + "--overwrite starts the run again, --resume continues it; choose one")
            }
            resumedFrom = try resume(from: resumeFrom, directory: checkpointDirectory)
        }
        let resumed = resumedFrom != nil
        try communicator.collectively {
            guard let runDirectory else { return }
            if resumed {
                // The folder stays; its record is rewritten up to the checkpoint and continues from there.
                try writeAtomically(config.resolvedYAML, to: runDirectory + "/config.yaml")
                replicas[0].metrics = try MetricsWriter(directory: runDirectory, rows: replicas[0].history)
                return
            }
            // With resume requested but nothing committed yet, the folder holds no work to lose.
            try Self.createRunDirectory(runDirectory, overwrite: overwrite || (checkpointDirectory != nil && config.checkpoint.resume))
            if single {
                try writeAtomically(config.resolvedYAML, to: runDirectory + "/config.yaml")
                replicas[0].metrics = try MetricsWriter(directory: runDirectory)
            } else {
                for r in replicas {
                    try Self.createRunDirectory(r.directory!, overwrite: true)
                    // Each replica's folder is a complete run record: its config trains it alone.
                    try writeAtomically(r.config.resolvedYAML, to: r.directory! + "/config.yaml")
                    r.metrics = try MetricsWriter(directory: r.directory!)
                }
            }
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

    /// Creates an empty run folder; an existing one is replaced only with `overwrite`.
    static func createRunDirectory(_ path: String, overwrite: Bool) throws {
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
    }

    // MARK: the loop

    /// Trains to the configured epochs or steps and returns the first replica's measurements (identical hashes
    /// on all ranks); every replica's are in `replicas[k].result`.
    @discardableResult
    public func run() throws -> RunResult {
        let rank = communicator.rank, size = communicator.size
        let n = trainSet.count
        let stepLimit = config.training.steps
        let schedule = config.schedule
        let baseRates = replicas.map { r in
            schedule.batchScaling.scale(r.config.optimizer.learningRate, batch: globalBatch,
                                        referenceBatch: schedule.referenceBatch ?? globalBatch)
        }
        let scaled = schedule.batchScaling == .none ? ""
            : " (\(schedule.batchScaling.rawValue)-scaled at batch \(schedule.referenceBatch!))"
        let optimizers = zip(replicas, baseRates).map { r, rate -> String in
            let o = r.config.optimizer
            let variant = o.variant == o.kind.variants[0] ? "" : " (\(o.variant))"
            return "\(o.kind.rawValue)\(variant) lr \(rate)"
        }
        console.note("descent: \(size) rank\(size == 1 ? "" : "s"), \(trainSet.summary), model "
                     + model.sizes.map(String.init).joined(separator: "-") + " (\(model.parameterCount) parameters), "
                     + (replicas.count > 1 ? "\(replicas.count) replicas on the same batches: " : "")
                     + optimizers.joined(separator: ", ") + scaled
                     + (schedule.rate.kind == .constant && schedule.rate.warmupSteps == 0 ? "" : ", \(schedule.rate.kind.rawValue) schedule")
                     + (schedule.rate.warmupSteps > 0 ? " after \(schedule.rate.warmupSteps) warmup steps" : "")
                     + ", batch \(config.training.batch), \(plannedSteps) steps (\((n + globalBatch - 1) / globalBatch) per epoch), "
                     + "BLAS threads \(BLASThreads.count)")

        let position = startPosition
        let start = monotonicSeconds() - position.wall
        var step = position.step, samples = position.samples
        var compute = position.compute, reduce = position.reduce
        var windowSteps = position.windowSteps, epochSteps = position.epochSteps
        var epoch = position.epoch, firstBatch = position.batch
        var finished = step >= plannedSteps
        let guards = config.guards
        StopSignals.install()

        while !finished {
            let plan = EpochPlan(seed: config.seed, epoch: epoch, sampleCount: n, batchSize: globalBatch,
                                 shuffle: config.training.shuffle)
            let orderHash = plan.order.withUnsafeBytes { fingerprint(bytes: $0) }
            if let (path, header) = resumedFrom, epoch == header.epoch, hexDigest(orderHash) != header.orderHash {
                throw AgreedFailure(description: "checkpoint \(path): the sample order of epoch \(epoch + 1) derived again "
                                    + "differs from the one it was written with (fingerprint \(hexDigest(orderHash)), "
                                    + "recorded \(header.orderHash)); was it written by another build?")
            }
            var k = firstBatch
            firstBatch = 0
            var saveAtEnd = false, stopping = false
            /// The state after `step` steps, with the next step at batch `next` of this epoch.
            func here(_ next: Int) -> RunPosition {
                RunPosition(step: step, epoch: next == plan.batchCount ? epoch + 1 : epoch,
                            batch: next == plan.batchCount ? 0 : next, samples: samples, windowSteps: windowSteps,
                            epochSteps: epochSteps, compute: compute, reduce: reduce, wall: monotonicSeconds() - start)
            }
            while k < plan.batchCount {
                let batch = plan.batch(k)
                faults?.act(rank: rank, step: step + 1)
                communicator.setContext(step: step + 1, phase: "gradient exchange")
                let t0 = monotonicSeconds()
                // The noise scale needs two small batches, and is measured on every n-th step only (an unbiased
                // subsample of the window's steps): the other steps skip a pass over each small batch's sums.
                let every = config.training.noiseScaleEvery
                let measure = every > 0 && step % every == 0 && averager.smallBatches(count: batch.count) >= 2
                plan.order.withUnsafeBufferPointer { order in
                    averager.accumulate(count: batch.count, measureNoise: measure) { r, positions, gradient in
                        replicas[r].parameters.withUnsafeBufferPointer { theta in
                            let indices = (batch.lowerBound + positions.lowerBound)..<(batch.lowerBound + positions.upperBound)
                            return model.accumulateGradient(
                                parameters: theta.baseAddress!, gradient: gradient, dataset: trainSet,
                                indices: UnsafeBufferPointer(rebasing: order[indices]), workspace: workspace, overwrite: true).lossSum
                        }
                    }
                }
                for r in replicas.indices {
                    if let faults, faults.strikes(.nan, rank: rank, step: step + 1) { averager.poisonLocalSums(replica: r) }
                    averager.flagLocalNonFinite(replica: r)
                }
                if StopSignals.pending != 0 { averager.requestStop() }
                let t1 = monotonicSeconds()
                let averages = try averager.averageAll(over: communicator)
                let t2 = monotonicSeconds()

                // Guards: every rank sees the same flags and losses, so every rank decides alike.
                var skip = [Bool](repeating: false, count: replicas.count)
                for (r, replica) in replicas.enumerated() {
                    let bad = averager.nonFiniteRanks(replica: r)
                    if bad.isEmpty {
                        replica.skippedInRow = 0
                    } else {
                        let what = "non-finite loss or gradient" + (replicas.count > 1 ? " of \(replica.label)" : "")
                            + " in step \(step + 1) on rank\(bad.count > 1 ? "s" : "") " + bad.map(String.init).joined(separator: ", ")
                        switch guards.nonFinite {
                        case .stop:
                            let saved = try saveCheckpoint(here(k), orderHash: orderHash)
                            throw AgreedFailure(description: what + "; stopped (guards.non_finite: stop)"
                                + (saved.map { ". The last good state (after step \(step)) is in \($0)" } ?? "")
                                + "; to skip such steps instead, set guards.non_finite: skip")
                        case .skip:
                            replica.skippedInRow += 1
                            replica.skipped += 1
                            skip[r] = true
                            console.note(what + ": update skipped on every rank (guards.non_finite: skip)")
                            if replica.skippedInRow > guards.maxSkips {
                                throw AgreedFailure(description: what + "; \(replica.skippedInRow) steps in a row were "
                                                    + "skipped, more than guards.max_skips (\(guards.maxSkips)); stopped")
                            }
                        case .ignore:
                            break
                        }
                    }
                    let loss = averages[r].loss
                    if replica.firstLoss == nil, loss.isFinite { replica.firstLoss = loss }
                    if guards.divergence > 0, let first = replica.firstLoss, loss.isFinite, loss > guards.divergence * first {
                        replica.divergingInRow += 1
                        if replica.divergingInRow >= guards.divergenceSteps {
                            let steps = guards.divergenceSteps
                            throw AgreedFailure(description: "the loss" + (replicas.count > 1 ? " of \(replica.label)" : "")
                                + " diverged in step \(step + 1): \(fixed(loss, 4)) is more than \(shortNumber(guards.divergence))× "
                                + "the first step's \(fixed(first, 4))" + (steps > 1 ? ", \(steps) steps in a row" : "")
                                + " (guards.divergence); lower optimizer.lr, add training.clip_norm, or raise guards.divergence")
                        }
                    } else {
                        replica.divergingInRow = 0
                    }
                }

                var t3 = t2
                for (r, replica) in replicas.enumerated() where !skip[r] {
                    let u0 = monotonicSeconds()
                    if measure, let e = NoiseScale.estimate(localSquaredNormSum: averages[r].smallBatchSquaredNormSum,
                                                              localCounts: averager.smallBatchCounts,
                                                              globalSquaredNorm: averager.squaredNorm(replica: r)) {
                        replica.windowNoise.add(e)
                        replica.epochNoise.add(e)
                    }
                    if let maxNorm = config.training.clipNorm { averager.clip(toNorm: maxNorm, replica: r) }
                    replica.optimizer.learningRate = schedule.rate.rate(step: step + 1, base: baseRates[r], totalSteps: plannedSteps)
                    averager.withGradient(replica: r) { g in
                        replica.parameters.withUnsafeMutableBufferPointer { replica.optimizer.update($0, gradient: g) }
                    }
                    t3 = monotonicSeconds()
                    replica.update += t3 - u0
                    replica.windowLoss += averages[r].loss
                    replica.epochLoss += averages[r].loss
                }
                compute += t1 - t0; reduce += t2 - t1
                step += 1
                k += 1
                samples += averages[0].count
                windowSteps += 1
                epochSteps += 1

                if step % logEvery == 0 {
                    for replica in replicas {
                        try replica.write(MetricsRow(
                            kind: .step, step: step, epoch: Double(samples) / Double(n), samples: samples,
                            wallSeconds: t3 - start, learningRate: replica.optimizer.learningRate,
                            batchLoss: replica.windowLoss / Double(windowSteps), noiseScale: replica.windowNoise.value))
                        replica.windowLoss = 0
                        replica.windowNoise = NoiseScale()
                    }
                    windowSteps = 0
                }
                if step % config.training.hashCheckEvery == 0 {
                    communicator.setContext(step: step, phase: "parameter hash check")
                    try checkReplicasAgree(step: step)
                }
                let busy = compute + reduce + replicas.map(\.update).reduce(0, +)
                let rate = Double(samples) / max(busy, 1e-9)
                console.progress(
                    "epoch \(epoch + 1) step \(step)/\(plannedSteps) loss "
                    + averages.map { fixed($0.loss, 4) }.joined(separator: "/")
                    + " \(Int(rate)) samples/s ETA \(durationText(Double((plannedSteps - step) * globalBatch) / rate))",
                    now: t3)
                let limitReached = stepLimit.map { step >= $0 } ?? false
                let due = config.checkpoint.every > 0 && step % config.checkpoint.every == 0
                stopping = averager.stopRequested
                // A checkpoint that falls on the epoch's last step, the run's last step or a stop waits for the
                // epoch's evaluation row.
                if due && k < plan.batchCount && !limitReached && !stopping {
                    try saveCheckpoint(here(k), orderHash: orderHash)
                } else if due {
                    saveAtEnd = true
                }
                if stopping { break }
                if limitReached {
                    finished = true
                    break
                }
            }
            let epochDone = k == plan.batchCount
            if epochDone && stepLimit == nil && epoch + 1 >= config.training.epochs { finished = true }
            // An evaluation row at every epoch end, and at the end of a run that stops mid-epoch (not when a
            // signal stops it: the continued run writes that epoch's row).
            if epochSteps > 0 && (epochDone || finished) {
                communicator.setContext(step: step, phase: "evaluation")
                for replica in replicas {
                    let train = config.training.evaluateTrainingSet ? try evaluate(trainSet, replica.parameters) : nil
                    let test = try evaluate(testSet, replica.parameters)
                    replica.last = (train?.loss, train?.accuracy, test.loss, test.accuracy)
                    let row = MetricsRow(kind: .epoch, step: step, epoch: Double(samples) / Double(n), samples: samples,
                                         wallSeconds: monotonicSeconds() - start, learningRate: replica.optimizer.learningRate,
                                         batchLoss: replica.epochLoss / Double(epochSteps),
                                         trainLoss: train?.loss, trainAccuracy: train?.accuracy,
                                         testLoss: test.loss, testAccuracy: test.accuracy, noiseScale: replica.epochNoise.value)
                    replica.lastNoise = replica.epochNoise.value
                    try replica.write(row)
                    console.note((replicas.count > 1 ? "\(replica.label): " : "")
                                 + "epoch \(fixed(row.epoch, 2)) step \(step): batch loss \(fixed(row.batchLoss ?? .nan, 4))"
                                 + (train.map { ", train loss \(fixed($0.loss, 4)) acc \(fixed($0.accuracy, 4))" } ?? "")
                                 + ", test loss \(fixed(test.loss, 4)) acc \(fixed(test.accuracy, 4))"
                                 + (replica.epochNoise.value.map { ", noise scale \(Int($0.rounded()))" } ?? "")
                                 + (replica.skipped > 0 ? ", \(replica.skipped) skipped step\(replica.skipped == 1 ? "" : "s")" : ""))
                    if epochDone {
                        replica.epochLoss = 0
                        replica.epochNoise = NoiseScale()
                    }
                }
                if epochDone { epochSteps = 0 }
            }
            if saveAtEnd || stopping || finished {
                let path = try saveCheckpoint(here(k), orderHash: orderHash)
                if stopping {
                    let own = StopSignals.pending
                    throw StopRequested(step: step, checkpoint: path,
                                        signal: own != 0 ? StopSignals.name(own) : "a stop signal (SIGTERM or SIGUSR1) received by another rank")
                }
            }
            if epochDone { epoch += 1 }
        }

        communicator.setContext(step: step, phase: "results")
        try checkReplicasAgree(step: step)
        let rss = try communicator.allGather(Double(peakResidentBytes())).map { Int($0) }
        for replica in replicas {
            let hash = fingerprint(replica.parameters)
            let hashes = try communicator.allGather(Int64(bitPattern: hash)).map { UInt64(bitPattern: $0) }
            // Shared phases (compute, allreduce) are split evenly between replicas; each has its own optimizer time.
            let share = 1 / Double(replicas.count)
            var phases = [(compute + reduce) * share + replica.update, compute * share, reduce * share, replica.update]
            try communicator.allreduce(&phases, .max)
            let result = RunResult(
                finalHash: hash, rankHashes: hashes, steps: step, samples: samples, trainSeconds: phases[0],
                computeSeconds: phases[1], allreduceSeconds: phases[2], optimizerSeconds: phases[3],
                peakResidentBytes: rss, lastTestLoss: replica.last.test, lastTestAccuracy: replica.last.testAccuracy,
                lastTrainLoss: replica.last.train, lastNoiseScale: replica.lastNoise)
            replica.result = result
            try finish(replica, result)
        }
        return replicas[0].result!
    }

    /// Loss and accuracy of `parameters` over a whole data set, each rank evaluating its share. With the
    /// deterministic reduction the share is a run of whole chunks and the chunks' loss sums are added in chunk
    /// order on every rank (each rank fills its own chunks' slots of one allreduce, which is exact), so the
    /// result does not depend on the number of ranks.
    public func evaluate(_ dataset: Dataset, _ parameters: [Float]? = nil) throws -> (loss: Double, accuracy: Double) {
        let (rank, size) = (communicator.rank, communicator.size)
        let n = dataset.count
        func totals(_ range: Range<Int>) -> MLP.Totals {
            let indices = (Int32(range.lowerBound)..<Int32(range.upperBound)).map { $0 }
            return indices.withUnsafeBufferPointer { idx in
                (parameters ?? self.parameters).withUnsafeBufferPointer { theta in
                    model.evaluate(parameters: theta.baseAddress!, dataset: dataset, indices: idx, workspace: workspace)
                }
            }
        }
        switch config.training.reduction {
        case .mpi:
            let t = totals(shard(of: 0..<n, rank: rank, size: size))
            var sums = [t.lossSum, Double(t.correct), Double(t.count)]
            try communicator.allreduce(&sums, .sum)
            return (sums[0] / sums[2], sums[1] / sums[2])
        case .deterministic:
            let chunk = workspace.capacity, chunks = (n + chunk - 1) / chunk
            // [loss sum of each chunk | correct | count]
            var slots = [Double](repeating: 0, count: chunks + 2)
            for c in shard(of: 0..<chunks, rank: rank, size: size) {
                let t = totals((c * chunk)..<min((c + 1) * chunk, n))
                slots[c] = t.lossSum
                slots[chunks] += Double(t.correct)
                slots[chunks + 1] += Double(t.count)
            }
            try communicator.allreduce(&slots, .sum)
            let loss = slots[0..<chunks].reduce(0, +)
            return (loss / slots[chunks + 1], slots[chunks] / slots[chunks + 1])
        }
    }

    /// Compares a hash of every replica's θ across ranks; a mismatch stops every rank with the step at which it
    /// was seen.
    public func checkReplicasAgree(step: Int) throws {
        for replica in replicas {
            let hash = fingerprint(replica.parameters)
            guard try communicator.allAgree(on: hash) else {
                let all = try communicator.allGather(Int64(bitPattern: hash)).map { hexDigest(UInt64(bitPattern: $0)) }
                throw AgreedFailure(description: "parameters" + (replicas.count > 1 ? " of \(replica.label)" : "")
                                    + " differ between ranks at step \(step) "
                                    + "(hashes by rank: \(all.joined(separator: ", "))); the replicas are no longer identical")
            }
        }
    }

    /// Rank 0: the summary file, the final parameters and hash, the report, and the closing lines.
    private func finish(_ replica: Replica, _ r: RunResult) throws {
        let mb = r.peakResidentBytes.map { fixed(Double($0) / 1e6, 1) }
        let who = replicas.count > 1 ? "\(replica.label): " : ""
        console.note(who + "done: \(r.steps) steps, \(r.samples) samples in \(fixed(r.trainSeconds, 2)) s of training "
                     + "(\(Int(r.samplesPerSecond)) samples/s; compute \(fixed(r.computeSeconds, 2)) s, "
                     + "allreduce \(fixed(r.allreduceSeconds, 2)) s, optimizer \(fixed(r.optimizerSeconds, 2)) s), "
                     + "peak RSS per rank \(mb.joined(separator: ", ")) MB")
        console.note(who + "final parameter hash \(hexDigest(r.finalHash)) (equal on all \(communicator.size) ranks)")
        guard let dir = replica.directory else { return }
        var summary: [String: Any] = [
            "name": replica.config.name,
            "ranks": communicator.size,
            "global_batch": globalBatch,
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
        if let (path, header) = resumedFrom { summary["resumed_from"] = ["checkpoint": path, "step": header.step] }
        if replica.skipped > 0 { summary["skipped_steps"] = replica.skipped }
        let json = try JSONSerialization.data(withJSONObject: summary, options: [.prettyPrinted, .sortedKeys])
        try writeAtomically(json, to: dir + "/summary.json")
        try writeAtomically(hexDigest(r.finalHash) + "\n", to: dir + "/final_hash")
        try writeAtomically(replica.parameters.withUnsafeBytes { Data($0) }, to: dir + "/parameters.f32")
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
        let o = replica.config.optimizer
        try RunReport.write(directory: dir, name: replica.config.name,
                            subtitle: "\(trainSet.summary), model " + model.sizes.map(String.init).joined(separator: "-")
                                + ", \(o.kind.rawValue) lr \(o.learningRate), batch \(config.training.batch)",
                            figures: figures, rows: replica.history, config: replica.config.resolvedYAML)
        console.note(who + "results in \(dir)/ (report.html, metrics.csv, metrics.jsonl, summary.json, parameters.f32, *.svg)")
    }
}
