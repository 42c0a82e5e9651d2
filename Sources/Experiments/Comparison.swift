// `descent compare`: trains the variants of a CompareConfig in one launch — one run per global batch size, or one
// replica per optimizer on the same mini-batches — and writes a comparison report beside their run folders.
import Collectives
import Config
import Training
import Foundation
import Numerics
import Reports

public final class Comparison {
    public let config: CompareConfig
    public let communicator: Communicator
    /// `<output.dir>/<name>/` on rank 0 with output; nil otherwise.
    public let directory: String?
    private let console: Console

    /// What one variant produced.
    public struct Outcome: Sendable {
        public var label: String
        public var config: RunConfig
        public var result: RunResult
        public var rows: [MetricsRow]
    }

    /// Creates the comparison folder on rank 0 (refusing an existing one unless `overwrite`).
    public init(config: CompareConfig, communicator: Communicator, writeOutput: Bool = true, overwrite: Bool = false,
                console: Console) throws {
        self.config = config
        self.communicator = communicator
        self.console = console
        let folder = config.base.outputDirectory + "/" + config.base.name
        directory = writeOutput && communicator.rank == 0 ? folder : nil
        let directory = self.directory
        try communicator.collectively {
            guard let directory else { return }
            try Trainer.createRunDirectory(directory, overwrite: overwrite)
            try writeAtomically(config.resolvedYAML, to: directory + "/config.yaml")
        }
    }

    /// Trains every variant and writes the report; returns each variant's outcome (rows on rank 0 only).
    @discardableResult
    public func run() throws -> [Outcome] {
        let parent = config.base.outputDirectory + "/" + config.base.name
        var outcomes: [Outcome] = []
        switch config.mode {
        case .batches, .inits:
            for v in config.variants {
                var c = v.config
                c.outputDirectory = parent
                console.note("== \(v.label)")
                let trainer = try Trainer(RunInputs.load(c, on: communicator),
                                          output: directory != nil ? .folder(overwrite: true, checkpoints: false) : .none,
                                          options: TrainerOptions(console: console, rows: 200))
                let result = try trainer.run()
                outcomes.append(Outcome(label: v.label, config: c, result: result, rows: trainer.history))
            }
        case .optimizers:
            var c = config.base
            c.outputDirectory = config.base.outputDirectory
            // The replicas write into <output.dir>/<name>/<label>/, the folder this comparison created.
            let trainer = try Trainer(RunInputs.load(c, on: communicator),
                                      replicas: config.variants.map { ReplicaPlan(label: $0.label, settings: $0.config.optimizer) },
                                      output: directory != nil ? .folder(overwrite: true, checkpoints: false) : .none,
                                      options: TrainerOptions(console: console, rows: 200))
            try trainer.run()
            outcomes = trainer.replicas.map { Outcome(label: $0.label, config: $0.config, result: $0.result!, rows: $0.history) }
        }
        if let directory { try writeReport(outcomes, into: directory) }
        return outcomes
    }

    /// The first point where the training loss reaches `target`: a step row's mini-batch loss (the mean over the
    /// steps since the previous row) or an epoch row's training-set loss, whichever comes first.
    public static func firstReach(_ rows: [MetricsRow], target: Double) -> MetricsRow? {
        rows.first { r in
            (r.kind == .step && (r.batchLoss ?? .infinity) <= target) || (r.kind == .epoch && (r.trainLoss ?? .infinity) <= target)
        }
    }

    /// `comparison.csv`, the charts and `report.html`.
    func writeReport(_ outcomes: [Outcome], into directory: String) throws {
        let target = config.targetLoss
        let (header, rows) = table(outcomes)
        let csv = ([header] + rows).map { $0.map(csvField).joined(separator: ",") }.joined(separator: "\n") + "\n"
        try writeAtomically(csv, to: directory + "/comparison.csv")
        let charts = Self.charts(outcomes)
        let base = config.base
        var report = HTMLReport(
            title: "descent compare: \(base.name)",
            subtitle: config.mode == .batches
                ? "the same model, data and optimizer at several global batch sizes, \(communicator.size) ranks"
                : config.mode == .inits ? "the same model, data and optimizer from several initialisations, \(communicator.size) ranks"
                : "one model replica per optimizer, all fed the same mini-batches, \(communicator.size) ranks")
        report.figures = [("data", base.data.source.rawValue), ("model hidden layers", base.model.hidden.map(String.init).joined(separator: "-")),
                          ("ranks", "\(communicator.size)")] + (target.map { [("target training loss", "\($0)")] } ?? [])
        report.tables = [("Results", header.filter { $0 != "final_hash" && $0 != "target_loss" },
                          rows.map { r in zip(header, r).filter { $0.0 != "final_hash" && $0.0 != "target_loss" }.map(\.1) })]
        for (k, c) in charts.enumerated() {
            let svg = c.1.svg(id: "k\(k)-")
            try writeAtomically(svg, to: directory + "/" + c.0)
            report.charts.append(svg)
        }
        report.files = ["comparison.csv", "config.yaml"] + charts.map(\.0)
            + outcomes.map { ($0.config.name) + "/report.html" }
        report.config = config.resolvedYAML
        try writeAtomically(report.html, to: directory + "/report.html")
        console.note("comparison in \(directory)/ (report.html, comparison.csv, *.svg; one folder per variant)")
    }

    /// comparison.csv's header and one row per variant.
    func table(_ outcomes: [Outcome]) -> (header: [String], rows: [[String]]) {
        let target = config.targetLoss
        let header = ["variant", "batch", "optimizer", "lr", "epochs", "steps", "train_s", "samples_per_s",
                      "final_train_loss", "final_test_loss", "final_test_accuracy", "noise_scale",
                      "target_loss", "steps_to_target", "epochs_to_target", "seconds_to_target", "distinct_hidden_units", "final_hash"]
        func cell(_ v: Double?, _ digits: Int = 4) -> String { v.map { fixed($0, digits) } ?? "" }
        let rows: [[String]] = outcomes.map { o in
            let reach = target.flatMap { Self.firstReach(o.rows, target: $0) }
            return [o.label, "\(o.config.training.batch)", o.config.optimizer.kind.rawValue, "\(o.config.optimizer.learningRate)",
                    cell(o.rows.last?.epoch, 2),
                    "\(o.result.steps)", fixed(o.result.trainSeconds, 2), "\(Int(o.result.samplesPerSecond))",
                    cell(o.result.lastTrainLoss), cell(o.result.lastTestLoss), cell(o.result.lastTestAccuracy),
                    o.result.lastNoiseScale.map { "\(fixed($0, 0))" } ?? "",
                    target.map { "\($0)" } ?? "", reach.map { "\($0.step)" } ?? "", cell(reach?.epoch, 2),
                    cell(reach?.wallSeconds, 2), o.result.distinctHiddenUnits.map { $0.map(String.init).joined(separator: "-") } ?? "",
                    hexDigest(o.result.finalHash)]
        }
        return (header, rows)
    }

    /// The charts by file name: the training loss against epochs, steps and seconds, the test accuracy, the noise scale.
    static func charts(_ outcomes: [Outcome]) -> [(String, Chart)] {
        var charts: [(String, Chart)] = []
        let style = { (k: Int) in Palette.style(k) }
        for x in [RunReport.XAxis.epoch, .step, .seconds] {
            let curves = outcomes.enumerated().map { k, o in (o.label, RunReport.smoothedBatchLoss(o.rows, x: x), style(k)) }
            // Steps and seconds span decades between batch sizes: a log axis keeps the short runs visible.
            let xScale = x == .epoch ? ScaleKind.linear : ScaleKind.fitting(curves.flatMap { $0.1.map(\.x) })
            charts.append(("loss_vs_\(x.rawValue).svg", RunReport.curves(
                "training loss against \(x == .epoch ? "epochs" : x == .step ? "steps" : "wall seconds")",
                subtitle: "mini-batch loss, smoothed (Kaiser window of 11 rows, β 2)", x: x.label + (xScale == .log ? " (log)" : ""),
                y: "cross-entropy loss", log: true, xScale: xScale, curves)))
        }
        charts.append(("test_accuracy.svg", RunReport.curves(
            "test accuracy against epochs", x: RunReport.XAxis.epoch.label, y: "test accuracy",
            outcomes.enumerated().map { k, o in (o.label, RunReport.epochPoints(o.rows, x: .epoch) { $0.testAccuracy }, style(k)) })))
        let noise = outcomes.enumerated().map { k, o in
            (o.label, RunReport.epochPoints(o.rows, x: .epoch) { $0.noiseScale }.filter { $0.y > 0 }, style(k))
        }
        if noise.contains(where: { !$0.1.isEmpty }) {
            charts.append(("noise_scale.svg", RunReport.curves(
                "gradient noise scale B_simple per epoch", x: RunReport.XAxis.epoch.label, y: "B_simple (samples)", log: true,
                noise.map { ($0.0, $0.1, $0.2) })))
        }
        return charts
    }
}
