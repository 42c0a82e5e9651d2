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
        /// The run's seed (one of the config's `seeds`, or its `seed`).
        public var seed: UInt64
        /// The run's folder, relative to the comparison's.
        public var folder: String
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
        var outcomes: [Outcome] = []
        switch config.mode {
        case .batches, .inits, .seeds:
            for v in config.variants {
                for c in v.config.perSeed { outcomes.append(try train(v, c)) }
            }
        case .optimizers:
            // One launch of the replicas per seed: a seed also draws the data order, which the replicas share.
            for c in config.base.perSeed { outcomes += try trainReplicas(c) }
        }
        if let directory { try writeReport(outcomes, into: directory) }
        return outcomes
    }

    /// One run of a variant with one of its seeds, into `<comparison>/<variant>[-seed-<s>]/`.
    func train(_ v: CompareConfig.Variant, _ seedConfig: RunConfig) throws -> Outcome {
        var c = seedConfig
        c.outputDirectory = config.base.outputDirectory + "/" + config.base.name
        if !v.config.seeds.isEmpty { c.name += "-seed-\(c.seed)" }
        let trainer = try Trainer(RunInputs.load(c, on: communicator),
                                  output: directory != nil ? .folder(overwrite: true, checkpoints: false) : .none,
                                  options: TrainerOptions(console: console, rows: 200))
        let result: RunResult
        if v.config.seeds.isEmpty {
            console.note("== \(v.label)")
            result = try trainer.run()
        } else {
            // Repeats print one line each, not every epoch of every seed.
            result = try console.quietly { try trainer.run() }
            console.note("== \(v.label), seed \(c.seed): \(result.steps) steps, final test accuracy "
                         + (result.lastTestAccuracy.map { fixed($0, 4) } ?? "–") + ", \(fixed(result.trainSeconds, 1)) s")
        }
        return Outcome(label: v.label, seed: c.seed, folder: c.name, config: c, result: result, rows: trainer.history)
    }

    /// The optimizer replicas with one seed, into `<comparison>/<label>/` (`<comparison>/seed-<s>/<label>/` with
    /// seeds), the folder this comparison created.
    func trainReplicas(_ seedConfig: RunConfig) throws -> [Outcome] {
        var c = seedConfig
        let seeded = !config.base.seeds.isEmpty
        if seeded { (c.outputDirectory, c.name) = (config.base.outputDirectory + "/" + config.base.name, "seed-\(c.seed)") }
        let trainer = try Trainer(RunInputs.load(c, on: communicator),
                                  replicas: config.variants.map { ReplicaPlan(label: $0.label, settings: $0.config.optimizer) },
                                  output: directory != nil ? .folder(overwrite: true, checkpoints: false) : .none,
                                  options: TrainerOptions(console: console, rows: 200))
        if seeded {
            try console.quietly { _ = try trainer.run() }
            console.note("== seed \(c.seed): final test accuracy " + trainer.replicas.map {
                "\($0.label) " + ($0.result?.lastTestAccuracy.map { fixed($0, 4) } ?? "–")
            }.joined(separator: ", "))
        } else {
            try trainer.run()
        }
        return trainer.replicas.map {
            Outcome(label: $0.label, seed: c.seed, folder: (seeded ? c.name + "/" : "") + $0.config.name, config: $0.config,
                    result: $0.result!, rows: $0.history)
        }
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
                : config.mode == .seeds ? "one training config repeated over \(base.seeds.count) seeds, \(communicator.size) ranks"
                : "one model replica per optimizer, all fed the same mini-batches, \(communicator.size) ranks")
        report.figures = [("data", base.data.source.rawValue), ("model hidden layers", base.model.hidden.map(String.init).joined(separator: "-")),
                          ("ranks", "\(communicator.size)")] + (target.map { [("target training loss", "\($0)")] } ?? [])
        let seeded = self.seeded
        let shown = { (name: String) in name != "final_hash" && name != "target_loss" && (name != "seed" || seeded) }
        report.tables = [(seeded ? "Every run (one row per variant and seed)" : "Results", header.filter(shown),
                          rows.map { r in zip(header, r).filter { shown($0.0) }.map(\.1) })]
        if seeded {
            let spread = seedSpread(outcomes)
            let csv = ([Self.spreadHeader] + spread).map { $0.map(csvField).joined(separator: ",") }.joined(separator: "\n") + "\n"
            try writeAtomically(csv, to: directory + "/comparison_seeds.csv")
            report.tables.insert(seedTable(outcomes), at: 0)
            report.findings = seedFindings(outcomes)
        }
        for (k, c) in charts.enumerated() {
            let svg = c.1.svg(id: "k\(k)-")
            try writeAtomically(svg, to: directory + "/" + c.0)
            report.charts.append(svg)
        }
        report.files = ["comparison.csv"] + (seeded ? ["comparison_seeds.csv"] : []) + ["config.yaml"] + charts.map(\.0)
            + outcomes.map { ($0.config.name) + "/report.html" }
        report.config = config.resolvedYAML
        try writeAtomically(report.html, to: directory + "/report.html")
        try HParams.write(into: directory, name: base.name, config: config.resolvedYAML, sessions: outcomes.map(session))
        console.note("comparison in \(directory)/ (report.html, comparison.csv, *.svg; one folder per variant)")
    }

    /// Whether the variants are repeated over seeds.
    var seeded: Bool { !config.base.seeds.isEmpty }

    /// The outcomes grouped by variant, in the variants' order.
    static func groups(_ outcomes: [Outcome]) -> [(label: String, runs: [Outcome])] {
        var labels: [String] = []
        for o in outcomes where !labels.contains(o.label) { labels.append(o.label) }
        return labels.map { label in (label, outcomes.filter { $0.label == label }) }
    }

    /// The metrics whose spread over seeds is reported, with how each run gives it (nil: the run has none).
    func spreadMetrics() -> [(name: String, digits: Int, value: (Outcome) -> Double?)] {
        var metrics: [(String, Int, (Outcome) -> Double?)] = [
            ("final_train_loss", 4, { $0.result.lastTrainLoss }), ("final_test_loss", 4, { $0.result.lastTestLoss }),
            ("final_test_accuracy", 4, { $0.result.lastTestAccuracy }), ("train_s", 2, { $0.result.trainSeconds }),
        ]
        if let target = config.targetLoss {
            metrics += [("steps_to_target", 1, { Self.firstReach($0.rows, target: target).map { Double($0.step) } }),
                        ("wall_s_to_target", 2, { Self.firstReach($0.rows, target: target)?.wallSeconds })]
        }
        return metrics
    }

    static let spreadHeader = ["variant", "metric", "runs", "values", "mean", "ci95_low", "ci95_high", "std", "median", "q1", "q3"]

    /// comparison_seeds.csv: one row per variant and metric with the spread of the seeds' values.
    func seedSpread(_ outcomes: [Outcome]) -> [[String]] {
        Self.groups(outcomes).flatMap { group in
            spreadMetrics().compactMap { metric -> [String]? in
                let values = group.runs.compactMap(metric.value)
                guard let s = Spread(values) else { return nil }
                let d = metric.digits
                return [group.label, metric.name, "\(group.runs.count)", "\(s.count)", fixed(s.mean, d), fixed(s.low, d),
                        fixed(s.high, d), fixed(s.std, d), fixed(s.median, d), fixed(s.q1, d), fixed(s.q3, d)]
            }
        }
    }

    /// The report's table of the seeds: one row per variant, each metric as its mean with the 95 % interval
    /// (comparison_seeds.csv has every figure).
    func seedTable(_ outcomes: [Outcome]) -> (caption: String, header: [String], rows: [[String]]) {
        let metrics = spreadMetrics()
        let rows = Self.groups(outcomes).map { group in
            [group.label, "\(group.runs.count)"] + metrics.map { metric -> String in
                let values = group.runs.compactMap(metric.value)
                guard let s = Spread(values) else { return "–" }
                let d = metric.digits
                return "\(fixed(s.mean, d)) (\(fixed(s.low, d))–\(fixed(s.high, d)))" + (values.count < group.runs.count ? ", \(values.count) runs" : "")
            }
        }
        return ("Across seeds: mean (95 % interval, Student's t); medians and quartiles in comparison_seeds.csv",
                ["variant", "seeds"] + metrics.map(\.name), rows)
    }

    /// One sentence per variant: its final test accuracy (and steps to the target) as a mean with its interval.
    func seedFindings(_ outcomes: [Outcome]) -> [String] {
        Self.groups(outcomes).compactMap { group in
            var parts: [String] = []
            if let s = Spread(group.runs.compactMap { $0.result.lastTestAccuracy }) {
                parts.append("final test accuracy: \(fixed(s.mean, 4)) (95 % interval \(fixed(s.low, 4))–\(fixed(s.high, 4)))")
            }
            if let target = config.targetLoss {
                let reached = group.runs.compactMap { Self.firstReach($0.rows, target: target).map { Double($0.step) } }
                if let s = Spread(reached) {
                    parts.append("steps to training loss \(target): \(fixed(s.mean, 0)) (\(fixed(s.low, 0))–\(fixed(s.high, 0)); "
                                 + "\(reached.count) of \(group.runs.count) runs reached it)")
                } else {
                    parts.append("no run reached loss \(target)")
                }
            }
            return parts.isEmpty ? nil : "\(group.label), \(group.runs.count) seeds: " + parts.joined(separator: "; ") + "."
        }
    }

    /// A variant's run as TensorBoard's HParams dashboard lists it; the seeds of one variant form one group.
    func session(_ o: Outcome) -> HParams.Session {
        let target = config.targetLoss.flatMap { Self.firstReach(o.rows, target: $0) }
        var hparams: [(String, HParams.Value)] = [("variant", .text(o.label)), ("optimizer", .text(o.config.optimizer.kind.rawValue)),
                                                 ("batch", .text("\(o.config.training.batch)")), ("lr", .number(o.config.optimizer.learningRate)),
                                                 ("seed", .number(Double(o.seed))), ("steps", .number(Double(o.result.steps)))]
        hparams += HParams.optimizerValues(o.config.optimizer)
        let metrics: [(String, Double?)] = [
            ("train_loss", o.result.lastTrainLoss), ("test_loss", o.result.lastTestLoss), ("test_accuracy", o.result.lastTestAccuracy),
            ("steps_to_target", target.map { Double($0.step) }), ("train_s", o.result.trainSeconds),
        ]
        return HParams.Session(folder: o.folder, group: o.label, hparams: hparams,
                               metrics: metrics.compactMap { m in m.1.map { (m.0, $0) } },
                               succeeded: o.result.lastTrainLoss?.isFinite ?? false)
    }

    /// comparison.csv's header and one row per variant and seed.
    func table(_ outcomes: [Outcome]) -> (header: [String], rows: [[String]]) {
        let target = config.targetLoss
        // Two clocks, each named: train_s is the run's own training time (a replica's share of the shared steps and
        // its own updates); wall_s and wall_s_to_target are both read from the run's wall clock (metrics.csv's wall_s),
        // which for replicas is the launch's.
        let header = ["variant", "seed", "batch", "optimizer", "lr", "epochs", "steps", "train_s", "wall_s", "samples_per_s",
                      "final_train_loss", "final_test_loss", "final_test_accuracy", "noise_scale",
                      "target_loss", "steps_to_target", "epochs_to_target", "wall_s_to_target", "distinct_hidden_units", "final_hash"]
        func cell(_ v: Double?, _ digits: Int = 4) -> String { v.map { fixed($0, digits) } ?? "" }
        let rows: [[String]] = outcomes.map { o in
            let reach = target.flatMap { Self.firstReach(o.rows, target: $0) }
            return [o.label, "\(o.seed)", "\(o.config.training.batch)", o.config.optimizer.kind.rawValue, "\(o.config.optimizer.learningRate)",
                    cell(o.rows.last?.epoch, 2),
                    "\(o.result.steps)", fixed(o.result.trainSeconds, 2), cell(o.rows.last?.wallSeconds, 2), "\(Int(o.result.samplesPerSecond))",
                    cell(o.result.lastTrainLoss), cell(o.result.lastTestLoss), cell(o.result.lastTestAccuracy),
                    o.result.lastNoiseScale.map { "\(fixed($0, 0))" } ?? "",
                    target.map { "\($0)" } ?? "", reach.map { "\($0.step)" } ?? "", cell(reach?.epoch, 2),
                    cell(reach?.wallSeconds, 2), o.result.distinctHiddenUnits.map { $0.map(String.init).joined(separator: "-") } ?? "",
                    hexDigest(o.result.finalHash)]
        }
        return (header, rows)
    }

    /// The charts by file name: the training loss against epochs, steps and seconds, the test accuracy, the noise
    /// scale. A variant run with several seeds is drawn as the median of its seeds' curves, in a band between their
    /// quartiles.
    static func charts(_ outcomes: [Outcome]) -> [(String, Chart)] {
        var charts: [(String, Chart)] = []
        let groups = Self.groups(outcomes)
        let seeded = groups.contains { $0.runs.count > 1 }
        let over = seeded ? " (median over seeds, quartiles shaded)" : ""
        /// One curve per variant from `points` of each of its runs, with its band when it has several.
        func curves(_ points: (Outcome) -> [SIMD2<Double>]) -> [(label: String, points: [SIMD2<Double>], style: SeriesStyle?, band: Band?)] {
            groups.enumerated().map { k, g in
                let each = g.runs.map(points)
                guard each.count > 1 else { return (g.label, each.first ?? [], Palette.style(k), nil) }
                let (median, band) = medianCurve(each)
                return (g.label, median, Palette.style(k), band)
            }
        }
        func chart(_ title: String, subtitle: String? = nil, x: String, y: String, log: Bool = false, xScale: ScaleKind = .linear,
                   _ c: [(label: String, points: [SIMD2<Double>], style: SeriesStyle?, band: Band?)]) -> Chart {
            var chart = RunReport.curves(title, subtitle: subtitle, x: x, y: y, log: log, xScale: xScale, c.map { ($0.label, $0.points, $0.style) })
            for k in chart.series.indices { chart.series[k].band = c.first { $0.label == chart.series[k].label }?.band }
            return chart
        }
        for x in [RunReport.XAxis.epoch, .step, .seconds] {
            let c = curves { RunReport.smoothedBatchLoss($0.rows, x: x) }
            // Steps and seconds span decades between batch sizes: a log axis keeps the short runs visible.
            let xScale = x == .epoch ? ScaleKind.linear : ScaleKind.fitting(c.flatMap { $0.points.map(\.x) })
            charts.append(("loss_vs_\(x.rawValue).svg", chart(
                "training loss against \(x == .epoch ? "epochs" : x == .step ? "steps" : "wall seconds")",
                subtitle: "mini-batch loss, smoothed (Kaiser window of 11 rows, β 2)" + over, x: x.label + (xScale == .log ? " (log)" : ""),
                y: "cross-entropy loss", log: true, xScale: xScale, c)))
        }
        charts.append(("test_accuracy.svg", chart(
            "test accuracy against epochs", subtitle: seeded ? "median over seeds, quartiles shaded" : nil, x: RunReport.XAxis.epoch.label,
            y: "test accuracy", curves { RunReport.epochPoints($0.rows, x: .epoch) { $0.testAccuracy } })))
        let noise = curves { RunReport.epochPoints($0.rows, x: .epoch) { $0.noiseScale }.filter { $0.y > 0 } }
        if noise.contains(where: { !$0.points.isEmpty }) {
            charts.append(("noise_scale.svg", chart(
                "gradient noise scale B_simple per epoch", x: RunReport.XAxis.epoch.label, y: "B_simple (samples)", log: true, noise)))
        }
        // The sharpness against gradient descent's 2/η and, for an adaptive rule, the preconditioned sharpness against
        // its threshold (2 + 2β1)/((1 − β1)η): each variant's threshold dashed in its colour.
        let edges: [(file: String, title: String, subtitle: String, value: (MetricsRow) -> Double?, threshold: (MetricsRow) -> Double?, name: String)] = [
            ("sharpness.svg", "sharpness λ_max of the Hessian against steps", "dashed: gradient descent's stability threshold 2/η for each rate",
             { $0.sharpness }, { 2 / $0.learningRate }, "2/η"),
            ("preconditioned_sharpness.svg", "preconditioned sharpness λ_max(P⁻¹H) against steps",
             "dashed: the rule's stability threshold (2 + 2β1)/((1 − β1)η) for each rate (Cohen et al. 2022)",
             { $0.preconditionedSharpness }, { $0.preconditionedThreshold }, "threshold"),
        ]
        for edge in edges {
            let values = curves { $0.rows.filter { $0.kind == .curvature }.compactMap { r in edge.value(r).map { SIMD2(Double(r.step), $0) } } }
            guard values.contains(where: { !$0.points.isEmpty }) else { continue }
            let thresholds = curves { $0.rows.filter { $0.kind == .curvature }.compactMap { r in edge.threshold(r).map { SIMD2(Double(r.step), $0) } } }
            var seen: Set<Double> = []
            let dashed = thresholds.filter { !$0.points.isEmpty && seen.insert($0.points.last!.y).inserted }.map { c in
                (label: "\(edge.name) = \(significant(c.points.last!.y, 3))", points: c.points,
                 style: c.style.map { SeriesStyle(colour: $0.colour, dash: "6 4") }, band: Band?.none)
            }
            charts.append((edge.file, chart(edge.title, subtitle: edge.subtitle, x: RunReport.XAxis.step.label, y: "λ_max", log: true, values + dashed)))
        }
        return charts
    }

    /// The pointwise median of several runs' curves (x and y, point by point up to the shortest) and the band
    /// between their first and third quartiles.
    static func medianCurve(_ curves: [[SIMD2<Double>]]) -> (median: [SIMD2<Double>], band: Band) {
        let n = curves.map(\.count).min() ?? 0
        var median: [SIMD2<Double>] = [], lower: [SIMD2<Double>] = [], upper: [SIMD2<Double>] = []
        for i in 0..<n {
            let xs = curves.map { $0[i].x }.sorted(), ys = curves.map { $0[i].y }.sorted()
            let x = Spread.quantile(xs, 0.5)
            median.append(SIMD2(x, Spread.quantile(ys, 0.5)))
            lower.append(SIMD2(x, Spread.quantile(ys, 0.25)))
            upper.append(SIMD2(x, Spread.quantile(ys, 0.75)))
        }
        return (median, Band(lower: lower, upper: upper))
    }
}
