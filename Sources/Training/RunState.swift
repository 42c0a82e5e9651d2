// The state a run carries from step to step and across a restart, as values: where the run stands, and each
// replica's running records. A checkpoint encodes them whole; nothing copies them field by field.
import Config
import Numerics
import Optimizers

/// Where a run stands: the next step's epoch and batch, and the running totals a continued run needs.
public struct RunPosition: Codable, Equatable, Sendable {
    /// Optimizer steps completed.
    public var step = 0
    /// The epoch the next step belongs to, and the index of its global batch within that epoch.
    public var epoch = 0
    public var batch = 0
    public var samples = 0
    /// Steps since the last step row, and since the last epoch row.
    public var windowSteps = 0
    public var epochSteps = 0
    /// Seconds spent in local gradients and in the exchange (`PhaseSeconds`), and of wall time, so far.
    public var compute = 0.0
    public var exchange = 0.0
    public var wall = 0.0
    /// Seconds of wall time spent evaluating so far (none in checkpoints written before it was kept).
    public var evaluation = 0.0

    /// Checkpoints of formats 1 and 2 store the exchange's seconds as `reduceSeconds`.
    enum CodingKeys: String, CodingKey {
        case step, epoch, batch, samples, windowSteps, epochSteps
        case compute = "computeSeconds", exchange = "reduceSeconds", wall = "wallSeconds", evaluation = "evaluationSeconds"
    }


    /// Counts one step over a batch of `samples` samples.
    mutating func advance(samples count: Int, computeSeconds: Double, exchangeSeconds: Double) {
        step += 1
        batch += 1
        samples += count
        windowSteps += 1
        epochSteps += 1
        compute += computeSeconds
        exchange += exchangeSeconds
    }

    /// This position as a checkpoint stores it: a finished epoch continues at the next one's first batch.
    func committed(batchCount: Int, wall: Double) -> RunPosition {
        var p = self
        if p.batch == batchCount { (p.epoch, p.batch) = (p.epoch + 1, 0) }
        p.wall = wall
        return p
    }
}

extension RunPosition {
    /// Checkpoints written before the evaluation seconds were kept continue from none.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        (step, epoch, batch, samples) = try (c.decode(Int.self, forKey: .step), c.decode(Int.self, forKey: .epoch),
                                             c.decode(Int.self, forKey: .batch), c.decode(Int.self, forKey: .samples))
        (windowSteps, epochSteps) = try (c.decode(Int.self, forKey: .windowSteps), c.decode(Int.self, forKey: .epochSteps))
        (compute, exchange, wall) = try (c.decode(Double.self, forKey: .compute), c.decode(Double.self, forKey: .exchange),
                                         c.decode(Double.self, forKey: .wall))
        evaluation = try c.decodeIfPresent(Double.self, forKey: .evaluation) ?? 0
    }
}

/// What the guards remember between steps, for one replica.
public struct GuardState: Codable, Equatable, Sendable {
    /// The first step's mean loss (the divergence guard's yardstick).
    public var firstLoss: Double?
    /// Steps whose update was skipped because a loss or gradient was not finite: in a row, and in all.
    public var skippedInRow = 0
    public var skipped = 0
    /// Steps in a row whose loss was above the divergence threshold.
    public var divergingInRow = 0
}

/// One replica's running records: the loss and noise windows, the last evaluation, time spent in its optimizer
/// and every metrics row so far.
public struct ReplicaProgress: Codable, Sendable {
    public var windowLoss = 0.0
    public var epochLoss = 0.0
    public var windowNoise = NoiseScale()
    public var epochNoise = NoiseScale()
    public var lastNoise: Double?
    public var lastTrainLoss: Double?
    public var lastTrainAccuracy: Double?
    public var lastTestLoss: Double?
    public var lastTestAccuracy: Double?
    public var lastValidationLoss: Double?
    public var lastValidationAccuracy: Double?
    public var updateSeconds = 0.0
    public var history: [MetricsRow] = []
    /// `checkpoint.best`'s best value so far, and the step of the state kept for it.
    public var bestValue: Double?
    public var bestStep: Int?
    /// `training.early_stop`'s best value so far, and the epoch ends since it last improved.
    public var stopBest: Double?
    public var stopWait: Int?

    public init() {}

    /// Keeps an epoch row's evaluation as the last one; a finished epoch starts the next epoch's sums.
    mutating func recordEvaluation(_ row: MetricsRow, epochDone: Bool) {
        (lastTrainLoss, lastTrainAccuracy) = (row.trainLoss, row.trainAccuracy)
        (lastTestLoss, lastTestAccuracy) = (row.testLoss, row.testAccuracy)
        (lastValidationLoss, lastValidationAccuracy) = (row.validationLoss, row.validationAccuracy)
        lastNoise = epochNoise.value
        if epochDone { (epochLoss, epochNoise) = (0, NoiseScale()) }
    }
}

/// How a run with a target ended for one replica before its last step: its parameters stay as they were then.
public enum TrialEnd: Sendable {
    /// The evaluation row at which the target was first reached.
    case reached(MetricsRow)
    /// The loss diverged or was not finite in this step, after `samples` samples (the guards' message says how).
    case diverged(step: Int, samples: Int, reason: String)
    /// Retired at this evaluation step by the study's pruner, behind the replicas it kept.
    case pruned(step: Int, samples: Int)

    /// The steps and samples this replica trained for.
    var trained: (steps: Int, samples: Int) {
        switch self {
        case .reached(let row): return (row.step, row.samples)
        case .diverged(let step, let samples, _): return (step, samples)
        case .pruned(let step, let samples): return (step, samples)
        }
    }
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
    public internal(set) var progress = ReplicaProgress()
    public internal(set) var guards = GuardState()
    public internal(set) var result: RunResult?
    /// Set when a run with a target is over for this replica (reached or diverged); it then trains no further.
    public internal(set) var end: TrialEnd?
    var metrics: MetricsWriter?

    /// Every metrics row so far (on every rank, with or without output), for reports.
    public var history: [MetricsRow] { progress.history }

    init(label: String, config: RunConfig, optimizer: Optimizer, parameters: [Float], directory: String?) {
        self.label = label
        self.config = config
        self.optimizer = optimizer
        self.parameters = parameters
        self.directory = directory
    }

    func write(_ row: MetricsRow) throws {
        progress.history.append(row)
        try metrics?.append(row)
    }
}
