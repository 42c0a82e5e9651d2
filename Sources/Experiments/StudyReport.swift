// What a study says: the best trial of every variant and batch size (`best.csv`), McCandlish et al.'s fit of steps
// against batch size, the charts, and plain sentences that state what the numbers show.
import Config
import Foundation
import Numerics
import Reports
import Training

struct StudyReport {
    let study: Study
    let records: [TrialRecord]
    let ranges: [String: SearchRange]

    /// The best trial of one group, and what the group's trials looked like.
    struct Best {
        var group: Study.Group
        var trials: [TrialRecord]
        var best: TrialRecord
        var range: SearchRange
        /// "low" or "high" when the best rate is the lowest or highest one tried (widen the range); "" otherwise.
        var edge: String
        var batchSamples: Int
        /// With seeds: the best point's trials, one per seed (`best` is the one at their median steps).
        var seedTrials: [TrialRecord] = []
    }

    var config: StudyConfig { study.config }

    /// Whether a group's best point is trained at several seeds: the training config's `seeds` (every point), or
    /// DeepOBS's rerun of the best one (`study.rerun_seeds`).
    var seeded: Bool { !config.base.seeds.isEmpty || config.rerunSeeds > 0 }

    /// Per group: the trial that reached the target in the fewest steps; when none did, the one whose final metric
    /// came closest (a group with no trial measured is left out).
    func bests() -> [Best] {
        study.groups.compactMap { g in
            let trials = records.filter { $0.folder.hasPrefix(g.folder + "/") }
            let metric = config.target.metric
            let found: (TrialRecord, [TrialRecord])?
            if let seed = config.choosingSeed {
                // The search at the study's seed chooses; the rerun measures the spread of that choice.
                found = Self.best(of: trials.filter { $0.seed == seed }, metric: metric).map { b in
                    (b, trials.filter { $0.trial == b.trial }.sorted { $0.seed < $1.seed })
                }
            } else if !config.base.seeds.isEmpty {
                found = Self.bestOverSeeds(trials, metric: metric)
            } else {
                found = Self.best(of: trials, metric: metric).map { ($0, []) }
            }
            guard let (best, seedTrials) = found else { return nil }
            let rates = trials.map(\.learningRate)
            let edge = Set(rates).count < 2 ? "" : best.learningRate == rates.min() ? "low" : best.learningRate == rates.max() ? "high" : ""
            let range = g.variant.rates ?? ranges[g.folder] ?? SearchRange(rates.min()!, rates.max()!)
            return Best(group: g, trials: trials, best: best, range: range, edge: edge, batchSamples: study.samples(g.batch),
                        seedTrials: seedTrials)
        }
    }

    /// The trial that reached the target in the fewest steps; when none did, the one whose final `metric` came
    /// closest; ties go to the earlier trial.
    static func best(of trials: [TrialRecord], metric: Target.Metric) -> TrialRecord? {
        func final(_ r: TrialRecord) -> Double {
            guard let v = r.final(metric), v.isFinite else { return -.infinity }
            return metric.rises ? v : -v
        }
        return trials.min { a, b in (a.steps ?? Int.max, -final(a), a.trial) < (b.steps ?? Int.max, -final(b), b.trial) }
    }

    /// With seeds, a point (a trial number) is judged by its seeds together: the point whose median steps to the
    /// target is fewest (a seed that did not reach it counts as never), then whose median final metric is best;
    /// its representative is the seed at that median (the lower one of an even count), and its trials are returned.
    static func bestOverSeeds(_ trials: [TrialRecord], metric: Target.Metric) -> (TrialRecord, [TrialRecord])? {
        func final(_ r: TrialRecord) -> Double {
            guard let v = r.final(metric), v.isFinite else { return -.infinity }
            return metric.rises ? v : -v
        }
        let points = Dictionary(grouping: trials, by: \.trial).map { trial, seeds -> (key: (Int, Double, Int), median: TrialRecord, all: [TrialRecord]) in
            let ranked = seeds.sorted { a, b in (a.steps ?? Int.max, -final(a), a.seed) < (b.steps ?? Int.max, -final(b), b.seed) }
            let median = ranked[(ranked.count - 1) / 2]
            return ((median.steps ?? Int.max, -final(median), trial), median, seeds.sorted { $0.seed < $1.seed })
        }
        return points.min { $0.key < $1.key }.map { ($0.median, $0.all) }
    }

    /// Each variant's fit over the batch sizes whose best trial reached the target.
    func fits(_ bests: [Best]) -> [(variant: String, fit: CriticalBatchFit?, noise: Double?)] {
        config.variants.map { v in
            let reached = bests.filter { $0.group.variant.label == v.label && $0.best.reached }
            let fit = CriticalBatchFit.fit(reached.map { (Double($0.batchSamples), Double($0.best.steps!)) })
            let noise = reached.compactMap(\.best.noiseScale).sorted()
            return (v.label, fit, noise.isEmpty ? nil : noise[noise.count / 2])
        }
    }

    static let bestColumns = ["variant", "optimizer", "batch", "trials", "reached_trials", "diverged_trials", "lr_low", "lr_high",
                              "best_lr", "best_momentum", "edge", "reached", "steps_to_target", "epochs_to_target",
                              "examples_to_target", "seconds_to_target", "final_test_loss", "final_test_accuracy", "noise_scale", "folder"]

    /// With seeds, best.csv also gives the best point's spread over them: how many reached the target, and the
    /// steps of those that did.
    /// and the final value of the target's metric over them (mean, standard deviation, 95 % interval: DeepOBS's
    /// "mean ± std").
    var seedColumns: [String] {
        let m = "final_" + config.target.metric.rawValue
        return ["seeds", "reached_seeds", "steps_mean", "steps_ci95_low", "steps_ci95_high", "steps_median", "steps_q1", "steps_q3",
                m + "_mean", m + "_std", m + "_ci95_low", m + "_ci95_high"]
    }
    var bestHeader: [String] {
        Array(Self.bestColumns.dropLast()) + (seeded ? seedColumns : []) + ["folder"]
    }

    /// The final value of the target's metric over the best point's seeds.
    func finalSpread(_ b: Best) -> Spread? {
        Spread(b.seedTrials.compactMap { $0.final(config.target.metric) })
    }

    func bestRow(_ b: Best) -> [String] {
        let r = b.best
        func number(_ v: Double?, _ digits: Int = 4) -> String { v.map { fixed($0, digits) } ?? "" }
        var row: [String] = [r.variant, r.optimizer, r.batch, "\(b.trials.count)", "\(b.trials.filter(\.reached).count)",
                             "\(b.trials.filter(\.diverged).count)", shortNumber(b.range.low), shortNumber(b.range.high)]
        row += [shortNumber(r.learningRate), r.momentum.map(shortNumber) ?? "", b.edge, "\(r.reached)"]
        row += [r.steps.map(String.init) ?? "", number(r.epochs, 3), r.examples.map(String.init) ?? "", number(r.seconds, 2)]
        row += [number(r.finalTestLoss), number(r.finalTestAccuracy), r.noiseScale.map { "\(fixed($0, 0))" } ?? ""]
        if seeded {
            let steps = b.seedTrials.compactMap { $0.steps.map(Double.init) }
            let spread = Spread(steps), final = finalSpread(b)
            row += ["\(b.seedTrials.count)", "\(steps.count)"]
                + [spread?.mean, spread?.low, spread?.high, spread?.median, spread?.q1, spread?.q3].map { number($0, 1) }
                + [final?.mean, final?.std, final?.low, final?.high].map { number($0, 5) }
        }
        return row + [r.folder]
    }

    /// The report's table of every trial: its header, and a trial's row.
    var trialHeader: [String] {
        ["variant", "batch", "trial"] + (seeded ? ["seed"] : []) + ["lr", "momentum"] + (config.space.isEmpty ? [] : ["searched"])
            + ["reached", "diverged"] + (config.prune ? ["pruned"] : []) + ["steps to target", "steps", "final test accuracy", "final test loss"]
    }

    func trialRow(_ r: TrialRecord) -> [String] {
        var row = [r.variant, r.batch, "\(r.trial)"] + (seeded ? ["\(r.seed)"] : [])
        row += [shortNumber(r.learningRate), r.momentum.map(shortNumber) ?? ""]
        if !config.space.isEmpty { row.append(r.searched) }
        row += ["\(r.reached)", "\(r.diverged)"] + (config.prune ? ["\(r.pruned)"] : [])
        row += [r.steps.map(String.init) ?? "not reached", "\(r.stepsRun)"]
        row += [r.finalTestAccuracy.map { fixed($0, 4) } ?? "", r.finalTestLoss.map { fixed($0, 4) } ?? ""]
        return row
    }

    /// With seeds: the best point's steps to the target over its seeds, as a median and a mean with its interval.
    func seedFinding(_ b: Best) -> String? {
        guard !b.seedTrials.isEmpty else { return nil }
        if config.target.final {
            guard let f = finalSpread(b) else { return "\(b.group.label): lr \(shortNumber(b.best.learningRate)) is the best, and none of its seeds ended finite." }
            return "\(b.group.label): lr \(shortNumber(b.best.learningRate)) is the best at seed \(config.base.seed); over \(f.count) seeds its final "
                + "\(config.target.metric.rawValue) is \(fixed(f.mean, 4)) ± \(fixed(f.std, 4)) (mean ± std; 95 % interval "
                + "\(fixed(f.low, 4))–\(fixed(f.high, 4)))."
        }
        let steps = b.seedTrials.compactMap { $0.steps.map(Double.init) }
        guard let s = Spread(steps) else {
            return "\(b.group.label): lr \(shortNumber(b.best.learningRate)) is the best, and none of its \(b.seedTrials.count) seeds reached the target."
        }
        return "\(b.group.label): lr \(shortNumber(b.best.learningRate)) is the best over \(b.seedTrials.count) seeds; \(steps.count) reached the "
            + "target, in a median of \(fixed(s.median, 0)) steps (mean \(fixed(s.mean, 1)), 95 % interval \(fixed(s.low, 1))–\(fixed(s.high, 1)))."
    }

    /// A trial as TensorBoard's HParams dashboard lists it.
    func session(_ r: TrialRecord) -> HParams.Session {
        var hparams: [(String, HParams.Value)] = [("variant", .text(r.variant)), ("optimizer", .text(r.optimizer)), ("batch", .text(r.batch)),
                                                 ("lr", .number(r.learningRate)), ("seed", .number(Double(r.seed)))]
        if let m = r.momentum { hparams.append(("momentum", .number(m))) }
        for pair in r.searched.split(separator: " ") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            if kv.count == 2, let v = Double(kv[1]) { hparams.append((String(kv[0]), .number(v))) }
        }
        let metrics: [(String, Double?)] = [
            ("steps_to_target", r.steps.map(Double.init)), ("steps", Double(r.stepsRun)), ("train_loss", r.finalTrainLoss),
            ("test_loss", r.finalTestLoss), ("test_accuracy", r.finalTestAccuracy), ("val_loss", r.finalValidationLoss),
            ("val_accuracy", r.finalValidationAccuracy), ("noise_scale", r.noiseScale), ("train_s", r.trainSeconds),
        ]
        // A point's seeds form one group.
        let group = !seeded ? "" : r.variant + " batch " + r.batch + " trial \(r.trial)"
        return HParams.Session(folder: r.folder, group: group, hparams: hparams, metrics: metrics.compactMap { m in m.1.map { (m.0, $0) } },
                               succeeded: !r.diverged && !r.pruned)
    }

    func write() throws {
        let dir = study.directory
        let bests = bests(), fits = fits(bests)
        let rows = bests.map(bestRow)
        try writeAtomically(([bestHeader] + rows).map { $0.map(csvField).joined(separator: ",") }.joined(separator: "\n") + "\n",
                            to: dir + "/best.csv")
        var report = HTMLReport(title: "descent study: \(config.base.name)",
                                subtitle: "every variant tuned at every batch size with \(config.trials) \(config.search.rawValue) trials; "
                                    + (config.target.final ? "objective: \(config.target.text), evaluated at epoch ends"
                                       + (config.rerunSeeds > 0 ? "; the best point rerun at \(config.rerunSeeds) seeds (DeepOBS's protocol)" : "")
                                       : "objective: steps to \(config.target.text), evaluated at steps growing by ×\(shortNumber(config.target.ratio))"))
        report.figures = [("data", config.base.data.source.rawValue),
                          ("model hidden layers", config.base.model.hidden.map(String.init).joined(separator: "-")),
                          ("ranks", "\(study.communicator.size)"), ("target", config.target.text),
                          ("budget per trial", "\(config.maxSteps) steps or \(config.maxEpochs) epochs, whichever is fewer"),
                          ("trials", "\(records.count), \(records.filter(\.reached).count) reached the target, "
                              + "\(records.filter(\.diverged).count) diverged"
                              + (config.prune ? ", \(records.filter(\.pruned).count) pruned (successive halving from step "
                                 + "\(config.pruneFrom), 1/\(config.pruneReduction) going on at each rung)" : ""))]
        for f in fits {
            guard let fit = f.fit else { continue }
            report.figures.append(("\(f.variant): S_min, E_min, B_crit",
                                   "\(fixed(fit.minimumSteps, 1)) steps, \(fixed(fit.minimumExamples, 0)) examples, "
                                   + "\(fixed(fit.criticalBatch, 0)) samples"))
            if let n = f.noise { report.figures.append(("\(f.variant): B_simple near the target", "\(fixed(n, 0)) samples")) }
        }
        let curves = epochCurves(bests)
        if !curves.isEmpty {
            try writeAtomically(([Self.curveColumns] + curves.map(\.row)).map { $0.map(csvField).joined(separator: ",") }.joined(separator: "\n") + "\n",
                                to: dir + "/curves.csv")
        }
        report.findings = findings(bests, fits) + bests.compactMap(seedFinding)
        report.tables = [("Best trial per variant and batch size (best.csv)", bestHeader.dropLast().map { $0 },
                          rows.map { Array($0.dropLast()) }),
                         ("Every trial (study.csv)", trialHeader, records.map(trialRow))]
        let charts = StudyCharts(report: self, bests: bests, fits: fits, curves: curves).all()
        for (k, c) in charts.enumerated() {
            let svg = c.chart.svg(id: "s\(k)-")
            try writeAtomically(svg, to: dir + "/" + c.file)
            report.charts.append(svg)
        }
        report.files = ["study.csv", "best.csv", "config.yaml"] + (ranges.isEmpty ? [] : ["ranges.csv"]) + (curves.isEmpty ? [] : ["curves.csv"])
            + charts.map(\.file)
        report.config = config.resolvedYAML
        try writeAtomically(report.html, to: dir + "/report.html")
        try HParams.write(into: dir, name: config.base.name, config: config.resolvedYAML, sessions: records.map(session))
        study.console.note("study in \(dir)/ (report.html, study.csv, best.csv, *.svg; one run folder per trial)")
    }

    // MARK: the best point's curves over its seeds

    /// One epoch end of a group's best point, over its seeds.
    struct CurvePoint {
        var best: Best
        var epoch: Double
        var accuracy: Spread?
        var loss: Spread?
        var row: [String] {
            [best.group.variant.label, best.group.batch.description, shortNumber(best.best.learningRate), fixed(epoch, 3),
             "\(max(accuracy?.count ?? 0, loss?.count ?? 0))"]
                + [accuracy?.mean, accuracy?.std, loss?.mean, loss?.std].map { $0.map { fixed($0, 5) } ?? "" }
        }
    }

    static let curveColumns = ["variant", "batch", "lr", "epoch", "seeds", "test_accuracy_mean", "test_accuracy_std", "test_loss_mean",
                               "test_loss_std"]

    /// The test accuracy and loss at every epoch end of each group's best point, mean and standard deviation over
    /// its seeds (`curves.csv`, the curves DeepOBS plots); empty without seeds.
    func epochCurves(_ bests: [Best]) -> [CurvePoint] {
        bests.flatMap { b -> [CurvePoint] in
            var byEpoch: [Double: (accuracy: [Double], loss: [Double])] = [:]
            for t in b.seedTrials {
                for r in StudyCharts.metricsRows(study.directory + "/" + t.folder + "/metrics.csv") where r["kind"] == "epoch" {
                    guard let e = r["epoch"].flatMap(Double.init) else { continue }
                    if let a = r["test_accuracy"].flatMap(Double.init) { byEpoch[e, default: ([], [])].accuracy.append(a) }
                    if let l = r["test_loss"].flatMap(Double.init) { byEpoch[e, default: ([], [])].loss.append(l) }
                }
            }
            return byEpoch.keys.sorted().map { e in CurvePoint(best: b, epoch: e, accuracy: Spread(byEpoch[e]!.accuracy), loss: Spread(byEpoch[e]!.loss)) }
        }
    }

    // MARK: sentences

    func findings(_ bests: [Best], _ fits: [(variant: String, fit: CriticalBatchFit?, noise: Double?)]) -> [String] {
        var lines: [String] = []
        let notReached = records.filter { !$0.reached }
        if !notReached.isEmpty && !config.target.final {
            lines.append("\(notReached.count) of \(records.count) trials did not reach \(config.target.text) within the budget "
                         + "(\(notReached.filter(\.diverged).count) of them diverged); they are in the tables, marked not reached.")
        }
        for b in bests where !b.edge.isEmpty {
            lines.append("\(b.group.label): the best rate, \(shortNumber(b.best.learningRate)), is the \(b.edge)est one tried; "
                         + "widen the range (\(shortNumber(b.range.low)) to \(shortNumber(b.range.high))) on that side.")
        }
        for b in bests where !b.best.reached && !config.target.final {
            lines.append("\(b.group.label): no trial reached the target; the best final value came from lr \(shortNumber(b.best.learningRate)).")
        }
        if config.batches.count > 1 { lines += batchFindings(bests, fits) }
        if config.variants.count > 1 { lines += optimizerFindings(bests) }
        return lines
    }

    private func batchFindings(_ bests: [Best], _ fits: [(variant: String, fit: CriticalBatchFit?, noise: Double?)]) -> [String] {
        var lines: [String] = []
        for f in fits {
            let reached = bests.filter { $0.group.variant.label == f.variant && $0.best.reached }.sorted { $0.batchSamples < $1.batchSamples }
            if let small = reached.first, let large = reached.last, small.batchSamples < large.batchSamples {
                let ratio = Double(small.best.steps!) / Double(large.best.steps!)
                lines.append("\(f.variant): batch \(large.group.batch) needs \(fixed(ratio, 1))× fewer steps than batch \(small.group.batch) "
                             + "(\(large.best.steps!) against \(small.best.steps!)) and \(fixed(Double(large.best.examples!) / Double(small.best.examples!), 1))× "
                             + "the examples.")
            }
            guard let fit = f.fit else {
                if reached.count >= 2 { lines.append("\(f.variant): the steps do not fall with the batch as S_min(1 + B_noise/B) would; no fit.") }
                continue
            }
            let bCrit = fit.criticalBatch
            lines.append("\(f.variant): the fit gives S_min = \(fixed(fit.minimumSteps, 1)) steps and E_min = \(fixed(fit.minimumExamples, 0)) "
                         + "examples (\(fixed(fit.minimumExamples / Double(study.trainCount), 2)) epochs), so B_crit = \(fixed(bCrit, 0)): "
                         + "below it doubling the batch nearly halves the steps; beyond batch ~\(fixed(4 * bCrit, 0)) doubling it "
                         + "saves less than 10 % of the steps.")
            if let n = f.noise {
                lines.append("\(f.variant): the gradient noise scale B_simple measured near the target is \(fixed(n, 0)), "
                             + "\(fixed(n / bCrit, 1))× B_crit (McCandlish et al. find B_simple predicts B_crit within a small factor).")
            }
        }
        return lines
    }

    private func optimizerFindings(_ bests: [Best]) -> [String] {
        config.batches.compactMap { batch in
            let here = bests.filter { $0.group.batch == batch && $0.best.reached }.sorted { $0.best.steps! < $1.best.steps! }
            guard let first = here.first else { return nil }
            var line = "Batch \(batch): \(first.group.variant.label) reaches the target first, in \(first.best.steps!) steps"
            if here.count > 1 {
                line += "; then " + here.dropFirst().map { "\($0.group.variant.label) (\(fixed(Double($0.best.steps!) / Double(first.best.steps!), 2))×)" }
                    .joined(separator: ", ")
            }
            let missing = bests.filter { $0.group.batch == batch && !$0.best.reached }.map(\.group.variant.label)
            if !missing.isEmpty { line += "; not reached: " + missing.joined(separator: ", ") }
            return line + "."
        }
    }
}
