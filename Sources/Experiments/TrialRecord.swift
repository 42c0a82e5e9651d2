// One row of `study.csv`: a trial's hyperparameters, whether and when it reached the target, and how it ended.
import Config
import Foundation
import Numerics
import Training

public struct TrialRecord: Equatable, Sendable {
    public var hash: String
    public var variant: String
    public var optimizer: String
    public var batch: String
    public var trial: Int
    /// The trial's seed (one of the study's `seeds`, or its `seed`).
    public var seed: UInt64
    public var learningRate: Double
    public var momentum: Double?
    public var reached: Bool
    public var diverged: Bool
    /// Retired by the study's pruner before the target.
    public var pruned: Bool
    public var steps: Int?
    public var epochs: Double?
    public var examples: Int?
    /// The launch's wall time at the evaluation that reached the target, less the time spent evaluating until then.
    public var seconds: Double?
    /// The step at which the trial ended: where it reached the target or diverged, or its last one.
    public var stepsRun: Int
    public var finalTrainLoss: Double?
    public var finalTestLoss: Double?
    public var finalTestAccuracy: Double?
    public var finalValidationLoss: Double?
    public var finalValidationAccuracy: Double?
    /// The gradient noise scale B_simple while the trial approached the target (see `noiseNearTarget`).
    public var noiseScale: Double?
    public var trainSeconds: Double
    public var finalHash: String
    /// The values of `study.search_space`'s keys ("optimizer.weight_decay=0.0001 schedule.warmup=40"); "" without.
    public var searched: String
    /// The trial's run folder, relative to the study folder.
    public var folder: String

    public static let columns = ["trial_hash", "variant", "optimizer", "batch", "trial", "seed", "lr", "momentum", "reached", "diverged",
                                 "pruned", "steps_to_target", "epochs_to_target", "examples_to_target", "seconds_to_target", "steps",
                                 "final_train_loss", "final_test_loss", "final_test_accuracy", "final_val_loss",
                                 "final_val_accuracy", "noise_scale", "train_s", "final_hash", "searched", "folder"]
    /// The columns a study.csv written before the validation columns lacks; such a file still reads back.
    static let addedColumns: Set<String> = ["final_val_loss", "final_val_accuracy", "searched", "pruned", "seed"]
    /// The columns that measure time, which differ from run to run.
    public static let timingColumns: Set<String> = ["seconds_to_target", "train_s"]

    init(trial: Study.Trial, group: Study.Group, replica: Replica, trainCount: Int) {
        let result = replica.result!
        hash = trial.hash
        variant = group.variant.label
        optimizer = trial.config.optimizer.kind.rawValue
        batch = group.batch.description
        self.trial = trial.index + 1
        seed = trial.config.seed
        learningRate = trial.point.learningRate
        momentum = trial.point.momentum
        reached = false
        diverged = false
        pruned = false
        if case .reached(let row) = replica.end {
            reached = true
            (steps, epochs, examples, seconds) = (row.step, row.epoch, row.samples, row.wallSeconds - (row.evaluationSeconds ?? 0))
        }
        stepsRun = steps ?? result.steps
        if case .diverged(let step, _, _) = replica.end { (diverged, stepsRun) = (true, step) }
        if case .pruned(let step, _) = replica.end { (pruned, stepsRun) = (true, step) }
        (finalTrainLoss, finalTestLoss, finalTestAccuracy) = (result.lastTrainLoss, result.lastTestLoss, result.lastTestAccuracy)
        (finalValidationLoss, finalValidationAccuracy) = (result.lastValidationLoss, result.lastValidationAccuracy)
        noiseScale = Self.noiseNearTarget(replica.history, until: steps ?? result.steps)
        trainSeconds = result.trainSeconds
        finalHash = hexDigest(result.finalHash)
        searched = trial.searched
        folder = group.folder + "/" + trial.config.name
    }

    /// The trial's last measured value of `metric` (the one a study's target names).
    func final(_ metric: Target.Metric) -> Double? {
        switch metric {
        case .trainLoss: return finalTrainLoss
        case .testLoss: return finalTestLoss
        case .testAccuracy: return finalTestAccuracy
        case .validationLoss: return finalValidationLoss
        case .validationAccuracy: return finalValidationAccuracy
        }
    }

    /// The median B_simple of the step rows in the second half of the steps up to `until`: the noise scale near
    /// the target, where McCandlish et al. compare it with B_crit.
    static func noiseNearTarget(_ rows: [MetricsRow], until step: Int) -> Double? {
        let values = rows.filter { $0.kind == .step && $0.step <= step && 2 * $0.step >= step }.compactMap(\.noiseScale)
            .filter(\.isFinite).sorted()
        return values.isEmpty ? nil : values[values.count / 2]
    }

    var cells: [String] {
        func number(_ v: Double?) -> String { v.map { "\($0)" } ?? "" }
        return [hash, variant, optimizer, batch, "\(trial)", "\(seed)", "\(learningRate)", number(momentum), "\(reached)", "\(diverged)", "\(pruned)",
                steps.map(String.init) ?? "", number(epochs), examples.map(String.init) ?? "", number(seconds), "\(stepsRun)",
                number(finalTrainLoss), number(finalTestLoss), number(finalTestAccuracy), number(finalValidationLoss),
                number(finalValidationAccuracy), number(noiseScale), "\(trainSeconds)",
                finalHash, searched, folder]
    }

    static func csv(_ records: [TrialRecord]) -> String {
        ([columns] + records.map(\.cells)).map { $0.map(csvField).joined(separator: ",") }.joined(separator: "\n") + "\n"
    }

    /// The records of a `study.csv` by trial hash (rows that do not read back are left out: they are measured again).
    public static func parse(_ text: String) -> [String: TrialRecord] {
        let rows = csvRows(text)
        // A study.csv written before a column was added still reads back.
        guard let header = rows.first, header == columns.filter({ !addedColumns.contains($0) || header.contains($0) })
        else { return [:] }
        var records: [String: TrialRecord] = [:]
        for row in rows.dropFirst() where row.count == header.count {
            if let r = TrialRecord(Dictionary(uniqueKeysWithValues: zip(header, row))) { records[r.hash] = r }
        }
        return records
    }

    init?(_ f: [String: String]) {
        guard let hash = f["trial_hash"], let trial = f["trial"].flatMap({ Int($0) }), let lr = f["lr"].flatMap({ Double($0) }),
              let stepsRun = f["steps"].flatMap({ Int($0) }), let seconds = f["train_s"].flatMap({ Double($0) }) else { return nil }
        func number(_ key: String) -> Double? { f[key].flatMap { Double($0) } }
        self.hash = hash
        variant = f["variant"]!
        optimizer = f["optimizer"]!
        batch = f["batch"]!
        self.trial = trial
        seed = f["seed"].flatMap { UInt64($0) } ?? 0
        learningRate = lr
        momentum = number("momentum")
        reached = f["reached"] == "true"
        diverged = f["diverged"] == "true"
        pruned = f["pruned"] == "true"
        steps = f["steps_to_target"].flatMap { Int($0) }
        epochs = number("epochs_to_target")
        examples = f["examples_to_target"].flatMap { Int($0) }
        self.seconds = number("seconds_to_target")
        self.stepsRun = stepsRun
        (finalTrainLoss, finalTestLoss, finalTestAccuracy) = (number("final_train_loss"), number("final_test_loss"),
                                                              number("final_test_accuracy"))
        (finalValidationLoss, finalValidationAccuracy) = (number("final_val_loss"), number("final_val_accuracy"))
        noiseScale = number("noise_scale")
        trainSeconds = seconds
        finalHash = f["final_hash"]!
        searched = f["searched"] ?? ""
        folder = f["folder"]!
    }
}
