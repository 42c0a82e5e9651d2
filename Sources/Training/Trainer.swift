// The data-parallel training loop: every rank computes gradient sums over its slice of each global batch, one
// exchange averages them, every rank applies the same optimizer step. Several replicas of the model, one per
// optimizer, can train on the same mini-batches with one exchange per step for all of them.
import Collectives
import Config
import Datasets
import Foundation
import Models
import Numerics
import Optimizers

/// What a finished run measured.
public struct RunResult: Sendable {
    public var finalHash: UInt64
    /// Each rank's own hash of its final parameters, by rank.
    public var rankHashes: [UInt64]
    public var steps: Int
    public var samples: Int
    /// Time in training steps (excluding evaluation and output), the maximum over ranks.
    public var trainSeconds: Double
    /// Seconds per phase of the steps, each the maximum over ranks.
    public var phases: PhaseSeconds
    public var peakResidentBytes: [Int]
    /// Distinct host names among the ranks.
    public var hosts: Int = 1
    /// Per rank: seconds to load and check the data, and resident memory after the last step.
    public var dataLoadSeconds: [Double] = []
    public var memory: [MemoryUse] = []
    public var lastTestLoss: Double?
    public var lastTestAccuracy: Double?
    public var lastValidationLoss: Double?
    public var lastValidationAccuracy: Double?
    public var lastTrainLoss: Double?
    /// B_simple over the last epoch (nil with fewer than two ranks holding samples).
    public var lastNoiseScale: Double?
    /// An MLP's number of distinct units per hidden layer at the end (`MLP.distinctUnits`).
    public var distinctHiddenUnits: [Int]?

    public var samplesPerSecond: Double { Double(samples) / trainSeconds }
}

/// Seconds spent in each phase of the training steps, under one name everywhere (code, console, summary.json's
/// `compute_seconds`, `exchange_seconds` and `update_seconds`, the reports and the docs).
public struct PhaseSeconds: Equatable, Sendable {
    /// Local gradient sums: forward and backward passes over this rank's chunks.
    public var compute: Double
    /// The exchange: the reduction of the sums, and the gathers of gradients and updated parameters.
    public var exchange: Double
    /// The optimizer's update of the parameters this rank owns (with the noise scale and clipping).
    public var update: Double

    public init(compute: Double, exchange: Double, update: Double) {
        (self.compute, self.exchange, self.update) = (compute, exchange, update)
    }

    /// "compute 1.20 s, exchange 0.31 s, update 0.05 s".
    public var text: String {
        "compute \(fixed(compute, 2)) s, exchange \(fixed(exchange, 2)) s, update \(fixed(update, 2)) s"
    }
}

/// Data and a model given by the caller instead of the config's.
public struct Problem {
    public var train: Dataset
    public var test: Dataset
    public var model: any Model

    public init(train: Dataset, test: Dataset, model: any Model) {
        (self.train, self.test, self.model) = (train, test, model)
    }
}

/// One training run on one rank. Create it on every rank with the same config, then call `run()` on every rank.
public final class Trainer {
    public let config: RunConfig
    public let communicator: Communicator
    public let trainSet: Dataset
    public let testSet: Dataset
    /// The training samples `data.validation` holds out, evaluated beside the test set.
    public let validationSet: Dataset?
    /// Seconds this rank took to load, check and agree on the data.
    let dataLoadSeconds: Double
    public let model: any Model
    /// The models being trained: one, or one per optimizer of a comparison.
    public let replicas: [Replica]
    /// Where rank 0 writes the run's files; nil on other ranks or without output.
    public let runDirectory: String?
    /// Optimizer steps the run will take.
    public let plannedSteps: Int
    /// Steps between step rows.
    public let logEvery: Int
    /// Where checkpoints go (every rank knows it; rank 0 writes); nil when this run keeps none.
    public let checkpointDirectory: String?
    /// The checkpoint this run continues from, if any.
    public internal(set) var resumedFrom: (path: String, header: CheckpointHeader)?

    /// The first replica's parameters, optimizer and record (the only ones of a plain run). With a sharded
    /// optimizer step the optimizer holds the state of this rank's `ownedParameters` only.
    public var parameters: [Float] { replicas[0].parameters }
    public var optimizer: Optimizer { replicas[0].optimizer }
    public var history: [MetricsRow] { replicas[0].history }

    let globalBatch: Int
    let rates: LearningRates
    let guards: Guards
    let exchange: GradientExchange
    /// With a sharded optimizer step (the deterministic reduction, one replica, several ranks): the parameters
    /// this rank updates and keeps optimizer state for; the ranks' updated parts are then gathered. nil: every
    /// rank updates all parameters.
    let ownedParameters: Range<Int>?
    /// Whole-data-set evaluation with the trainer's model and its workspace, which the steps use too.
    public let evaluator: Evaluator
    public var workspace: AnyObject { evaluator.workspace }
    let console: Console
    let hooks: TrainingHooks?
    /// With a target, each replica is evaluated at the target's steps and stops training once it reaches it or
    /// diverges; the run ends when every replica has.
    let goal: Target?
    /// Retires replicas behind the others at its rungs (with a goal); `rung` is the next rung to judge.
    let pruner: Pruner?
    var rung = 0
    /// Called on every rank after each optimizer step, with the step's number (from 1) and the replicas: the
    /// 2-D lab records each parameter point here.
    public var afterStep: ((Int, [Replica]) -> Void)?
    /// The step of the last checkpoint this process committed (or resumed from).
    var lastCheckpointStep: Int?
    /// Every rank's matrix kernels, by rank (agreed before step 0).
    let kernels: [RankKernels]
    /// The monotonic time at which the run would have started had it never stopped (wall time is counted from it).
    var wallOrigin = 0.0

    /// Seconds of wall time since the run started, across restarts.
    func wallSeconds() -> Double { monotonicSeconds() - wallOrigin }

    /// Builds the replicas from rank 0's initial parameters (broadcast) and their optimizers, and (on rank 0) creates
    /// the run folder, from `inputs` loaded and agreed on every rank. Every failure is collective: all ranks throw,
    /// before any output is written.
    ///
    /// - Parameters:
    ///   - replicas: one replica per plan, all from the same initial parameters on the same mini-batches; each writes
    ///     into `<run folder>/<label>/` (spaces and '/' as '-'). nil: one model with `config.optimizer`, the plain run.
    ///   - output: the run folder (with checkpoints, which need a single model), or none (tests, the lab, eval).
    ///   - options: the console, a minimum number of step rows, a target to train to.
    public init(_ inputs: RunInputs, replicas plans: [ReplicaPlan]? = nil, output: RunOutput = .folder(),
                options: TrainerOptions = TrainerOptions()) throws {
        let config = inputs.config, communicator = inputs.communicator
        self.config = config
        self.communicator = communicator
        hooks = inputs.hooks
        (goal, pruner) = (options.goal, options.pruner)
        console = options.console ?? Console(enabled: communicator.rank == 0, style: .auto)
        guards = Guards(policy: config.guards)
        (trainSet, validationSet, testSet, model) = (inputs.trainSet, inputs.validationSet, inputs.testSet, inputs.model)
        (dataLoadSeconds, kernels) = (inputs.dataLoadSeconds, inputs.kernels)
        globalBatch = try inputs.globalBatch()
        let planned = config.training.steps ?? config.training.epochs * ((trainSet.count + globalBatch - 1) / globalBatch)
        plannedSteps = planned
        logEvery = options.rows.map { max(1, min(config.training.logEvery, planned / $0)) } ?? config.training.logEvery

        let single = plans == nil
        let plan = plans ?? [ReplicaPlan(label: config.name, settings: config.optimizer)]
        rates = LearningRates(schedule: config.schedule, configured: plan.map(\.settings.learningRate),
                              globalBatch: globalBatch, totalSteps: plannedSteps)
        let chunk = config.training.chunkSize(globalBatch: globalBatch)
        try Self.checkResources(plan, model: model, chunk: chunk, config: config, output: output, on: communicator)
        exchange = GradientExchange(parameterCount: model.parameterCount, replicas: plan.count, ranks: communicator.size,
                                    rank: communicator.rank, reduction: config.training.reduction,
                                    chunk: chunk, ownership: Self.ownershipUnit(plan, model: model))
        ownedParameters = exchange.ownedParameters
        evaluator = inputs.evaluator(globalBatch: globalBatch)

        let directory = config.outputDirectory + "/" + config.name
        var (writes, overwrite, checkpoints, resumeFrom) = (false, false, false, String?.none)
        if case let .folder(o, c, r) = output { (writes, overwrite, checkpoints, resumeFrom) = (true, o, c, r) }
        runDirectory = writes && communicator.rank == 0 ? directory : nil
        replicas = try Self.makeReplicas(plan, single: single, config: config, model: model,
                                         owned: ownedParameters ?? 0..<model.parameterCount,
                                         runDirectory: runDirectory, on: communicator)
        checkpointDirectory = writes && single && checkpoints ? CheckpointStore.directory(ofRun: directory) : nil
        if let checkpointDirectory, config.checkpoint.resume || resumeFrom != nil {
            if overwrite {
                throw AgreedFailure(description: "--overwrite and --resume contradict each other: "
                                    + "--overwrite starts the run again, --resume continues it; choose one")
            }
            resumedFrom = try resume(from: resumeFrom, directory: checkpointDirectory)
            try communicator.collectively { try checkLength(resumedFrom) }
        }
        try openRecords(single: single, overwrite: overwrite, resuming: checkpointDirectory != nil && config.checkpoint.resume)
    }

    // MARK: the loop

    /// Trains to the configured epochs or steps and returns the first replica's measurements (identical hashes
    /// on all ranks); every replica's are in `replicas[k].result`.
    @discardableResult
    public func run() throws -> RunResult {
        if finishedAlready, let (path, header) = resumedFrom {
            // Nothing to train: the folder's record stays as the finished run wrote it.
            console.note("\(path) is the end of the run (step \(header.step) of \(plannedSteps)\(stoppedEarly ? ", stopped early" : "")): nothing to train; "
                         + "the run folder is left as it is (extend it with --set training.epochs=... or training.steps=...)")
            return try results(header.position, writing: false)
        }
        announce()
        var position = resumedFrom?.header.position ?? RunPosition()
        wallOrigin = monotonicSeconds() - position.wall
        StopSignals.install()
        if config.curvature.every > 0 && position.step == 0 { try writeCurvatureRows(&position) }
        var finished = position.step >= plannedSteps
        while !finished {
            let epoch = try epochPlan(position.epoch)
            let end = try train(epoch, from: &position)
            let epochDone = position.batch == epoch.plan.batchCount
            finished = end.limitReached && !end.stopping
                || epochDone && config.training.steps == nil && epoch.index + 1 >= config.training.epochs
            // An evaluation row at every epoch end, and at the end of a run that stops mid-epoch (not when a
            // signal stops it: the continued run writes that epoch's row).
            if position.epochSteps > 0 && (epochDone || finished) {
                try writeEpochRows(&position, epochDone: epochDone, wall: wallSeconds)
                if epochDone, try judgeEpoch(position.committed(batchCount: epoch.plan.batchCount, wall: wallSeconds()), in: epoch) {
                    finished = true
                }
            }
            let committed = position.committed(batchCount: epoch.plan.batchCount, wall: wallSeconds())
            if end.checkpointDue || end.stopping || finished {
                let path = try saveCheckpoint(committed, in: epoch)
                if end.stopping { throw StopRequested(step: position.step, checkpoint: path, signal: StopSignals.description) }
            }
            if epochDone { (position.epoch, position.batch) = (committed.epoch, committed.batch) }
        }
        return try results(position)
    }

    /// Why `train(_:from:)` returned before or at the end of its epoch.
    struct EpochEnd {
        /// The configured step limit was reached.
        var limitReached = false
        /// A rank asked to stop (a signal).
        var stopping = false
        /// A checkpoint fell due on a step that also ends something (epoch, run, stop): it waits for the epoch row.
        var checkpointDue = false
    }

    /// Takes the epoch's steps from `position` on, with their rows, progress, hash checks and checkpoints, until the
    /// epoch ends, the step limit is reached or a rank asks to stop.
    func train(_ epoch: PlannedEpoch, from position: inout RunPosition) throws -> EpochEnd {
        var end = EpochEnd()
        while position.batch < epoch.plan.batchCount {
            let exchanged = try step(epoch.plan.batch(position.batch), of: epoch, at: position)
            position.advance(samples: exchanged.count, computeSeconds: exchanged.computeSeconds,
                             exchangeSeconds: exchanged.exchangeSeconds)
            afterStep?(position.step, replicas)
            let now = monotonicSeconds()
            if position.step % logEvery == 0 { try writeStepRows(&position, wall: now - wallOrigin) }
            if position.step % config.training.hashCheckEvery == 0 {
                communicator.setContext(step: position.step, phase: "parameter hash check")
                try checkReplicasAgree(step: position.step)
            }
            if config.curvature.every > 0 && position.step % config.curvature.every == 0 { try writeCurvatureRows(&position) }
            showProgress(position, epoch: epoch.index, exchanged, now: now)
            end.limitReached = config.training.steps.map { position.step >= $0 } ?? false
            if let goal {
                if !goal.final && goal.evaluation(after: position.step - 1) == position.step {
                    try evaluateTargets(&position, goal)
                    prune(position, goal)
                }
                if replicas.allSatisfy({ $0.end != nil }) { end.limitReached = true }
            }
            end.stopping = exchanged.stopRequested
            if config.checkpoint.every > 0 && position.step % config.checkpoint.every == 0 {
                if position.batch < epoch.plan.batchCount && !end.limitReached && !end.stopping {
                    try saveCheckpoint(position.committed(batchCount: epoch.plan.batchCount, wall: wallSeconds()), in: epoch)
                } else {
                    end.checkpointDue = true
                }
            }
            if end.stopping || end.limitReached { break }
        }
        return end
    }
}
