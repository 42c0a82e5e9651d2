// The charts of a study: steps and examples to the target against batch size (log-log, with the perfect-scaling
// line and the fit), every trial's steps against its rate, the best trials' curves and the range tests.
import Config
import Foundation
import Numerics
import Reports
import Training

struct StudyCharts {
    let report: StudyReport
    let bests: [StudyReport.Best]
    let fits: [(variant: String, fit: CriticalBatchFit?, noise: Double?)]
    /// The best points' per-epoch curves over their seeds, as `curves.csv` has them.
    let curves: [StudyReport.CurvePoint]

    var config: StudyConfig { report.config }

    func all() -> [(file: String, chart: Chart)] {
        var charts: [(String, Chart)] = []
        if config.target.final { return [("final_by_lr.svg", finalByRate()), ("best_curves.svg", epochCurves())] }
        if config.batches.count > 1 {
            charts.append(("steps_vs_batch.svg", againstBatch(examples: false)))
            charts.append(("examples_vs_batch.svg", againstBatch(examples: true)))
        }
        charts.append(("trials_by_lr.svg", trialsByRate()))
        charts.append(("best_curves.svg", bestCurves()))
        if let ranges = rangeTests() { charts.append(("range_tests.svg", ranges)) }
        return charts
    }

    /// Best steps (or examples) to the target against the global batch, per variant, with the perfect-scaling line
    /// through the smallest batch and McCandlish et al.'s fit.
    func againstBatch(examples: Bool) -> Chart {
        let what = examples ? "examples" : "steps"
        var chart = Chart(title: "best \(what) to \(config.target.text) against the global batch",
                          subtitle: examples ? "E = B·S; the fit: E_min (1 + B/B_crit)"
                              : "dashed: perfect scaling (doubling the batch halves the steps); dotted: the fit S_min (1 + B_crit/B)",
                          x: Axis("global batch (log)", scale: .log), y: Axis("\(what) to the target (log)", scale: .log))
        for (k, f) in fits.enumerated() {
            let style = Palette.style(k)
            let points = bests.filter { $0.group.variant.label == f.variant && $0.best.reached }.sorted { $0.batchSamples < $1.batchSamples }
                .map { SIMD2(Double($0.batchSamples), Double(examples ? $0.best.examples! : $0.best.steps!)) }
            guard let first = points.first, let last = points.last else { continue }
            chart.series.append(Series(label: f.variant, points: points, style: style, dots: true))
            // The perfect-scaling line, down to half the fewest steps measured (further it would only stretch the axis).
            let floor = points.map(\.y).min()! / 2
            let end = examples ? last.x : min(last.x, first.x * first.y / floor)
            let perfect = [first.x, end].map { b in SIMD2(b, examples ? first.y : first.y * first.x / b) }
            chart.series.append(Series(label: "\(f.variant): perfect scaling", points: perfect,
                                       style: SeriesStyle(colour: style.colour, dash: "6 4"), lineWidth: 1))
            if let fit = f.fit {
                let curve = (0...40).map { i -> SIMD2<Double> in
                    let b = exp(log(first.x) + Double(i) / 40 * (log(last.x) - log(first.x)))
                    return SIMD2(b, examples ? fit.examples(batch: b) : fit.steps(batch: b))
                }
                chart.series.append(Series(label: "\(f.variant): fit, B_crit \(fixed(fit.criticalBatch, 0))", points: curve,
                                           style: SeriesStyle(colour: style.colour, dash: "2 3"), lineWidth: 1.2))
            }
        }
        return chart
    }

    /// Every trial's steps to the target against its rate, one line per group; trials that did not reach it are
    /// drawn at their group's budget, in light grey (the budget ran out) or dark grey (diverged).
    func trialsByRate() -> Chart {
        var chart = Chart(title: "steps to \(config.target.text) of every trial against its learning rate",
                          subtitle: "how sensitive each variant is to its rate; trials that did not reach the target are drawn at their budget",
                          x: Axis("learning rate (log)", scale: .log), y: Axis("steps to the target (log)", scale: .log))
        for (k, b) in bests.enumerated() {
            let points = b.trials.filter(\.reached).sorted { $0.learningRate < $1.learningRate }
                .map { SIMD2($0.learningRate, Double($0.steps!)) }
            chart.series.append(Series(label: b.group.label, points: points, style: Palette.style(k), dots: true))
        }
        for (diverged, label, colour) in [(false, "budget ran out", "#B0B0B0"), (true, "diverged", "#505050")] {
            let missed = bests.flatMap { b in
                b.trials.filter { !$0.reached && $0.diverged == diverged }.map { SIMD2($0.learningRate, Double(report.study.budget(b.group.batch))) }
            }
            if !missed.isEmpty {
                chart.series.append(Series(label: label, points: missed, style: SeriesStyle(colour: colour), lineWidth: 0, dots: true))
            }
        }
        return chart
    }

    /// The target's metric along each group's best trial, from its evaluation rows.
    func bestCurves() -> Chart {
        let metric = config.target.metric
        var chart = Chart(title: "\(metric.rawValue) of the best trial of each group",
                          subtitle: "evaluated at steps growing by ×\(shortNumber(config.target.ratio)); the target is \(config.target.text)",
                          x: Axis("step (log)", scale: .log), y: Axis(metric.rawValue, scale: metric.rises ? .linear : .log))
        for (k, b) in bests.enumerated() {
            let rows = Self.metricsRows(report.study.directory + "/" + b.best.folder + "/metrics.csv")
            let column = metric.rawValue
            let points = rows.filter { $0["kind"] == "eval" }.compactMap { r -> SIMD2<Double>? in
                guard let s = r["step"].flatMap(Double.init), let v = r[column].flatMap(Double.init), v.isFinite else { return nil }
                return SIMD2(s, v)
            }
            chart.series.append(Series(label: "\(b.group.label), lr \(shortNumber(b.best.learningRate))", points: points, style: Palette.style(k)))
        }
        let steps = chart.series.flatMap { $0.points.map(\.x) }
        if let last = steps.max() {
            chart.series.append(Series(label: "target \(shortNumber(config.target.value))", points: [SIMD2(1, config.target.value),
                                       SIMD2(max(last, 2), config.target.value)], style: SeriesStyle(colour: "#9A9A9A", dash: "6 4"), lineWidth: 1))
        }
        return chart
    }

    /// With a final objective: every trial's final metric against its rate (at the study's seed), one line per
    /// group — DeepOBS's tuneability; diverged trials are left out.
    func finalByRate() -> Chart {
        let metric = config.target.metric
        var chart = Chart(title: "final \(metric.rawValue) of every trial against its learning rate",
                          subtitle: "at the end of the budget, seed \(config.base.seed); diverged trials are left out",
                          x: Axis("learning rate (log)", scale: .log), y: Axis("final \(metric.rawValue)", scale: metric.rises ? .linear : .log))
        for (k, b) in bests.enumerated() {
            let points = b.trials.filter { $0.seed == config.base.seed }.sorted { $0.learningRate < $1.learningRate }
                .compactMap { r in r.final(metric).flatMap { $0.isFinite && !r.diverged ? SIMD2(r.learningRate, $0) : nil } }
            chart.series.append(Series(label: b.group.label, points: points, style: Palette.style(k), dots: true))
        }
        return chart
    }

    /// With a final objective: the test accuracy at every epoch end of each group's best point, the mean over its
    /// seeds when it has several.
    func epochCurves() -> Chart {
        var chart = Chart(title: "test accuracy of the best point of each group, per epoch",
                          subtitle: report.seeded ? "mean over the best point's seeds (curves.csv has the standard deviations)" : "the best trial",
                          x: Axis("epoch"), y: Axis("test accuracy"))
        for (k, b) in bests.enumerated() {
            let points: [SIMD2<Double>]
            if report.seeded {
                points = curves.filter { $0.best.group.folder == b.group.folder }.compactMap { c in c.accuracy.map { SIMD2(c.epoch, $0.mean) } }
            } else {
                points = Self.metricsRows(report.study.directory + "/" + b.best.folder + "/metrics.csv").filter { $0["kind"] == "epoch" }
                    .compactMap { r in
                        guard let e = r["epoch"].flatMap(Double.init), let a = r["test_accuracy"].flatMap(Double.init) else { return nil }
                        return SIMD2(e, a)
                    }
            }
            chart.series.append(Series(label: "\(b.group.label), lr \(shortNumber(b.best.learningRate))", points: points, style: Palette.style(k), dots: true))
        }
        return chart
    }

    /// The range tests' smoothed-free batch loss against the rate, with the chosen ranges in the legend.
    func rangeTests() -> Chart? {
        guard !report.ranges.isEmpty else { return nil }
        var chart = Chart(title: "learning-rate range tests",
                          subtitle: "the mini-batch loss as the rate grows; each range: a decade either side of the smoothed minimum",
                          x: Axis("learning rate (log)", scale: .log), y: Axis("mini-batch loss (log)", scale: .log))
        for (k, b) in bests.enumerated() {
            guard let range = report.ranges[b.group.folder] else { continue }
            let path = report.study.directory + "/" + RunConfig.folderName("lr range test \(b.group.folder)") + "/metrics.csv"
            let points = Self.metricsRows(path).filter { $0["kind"] == "step" }.compactMap { r -> SIMD2<Double>? in
                guard let x = r["lr"].flatMap(Double.init), let y = r["batch_loss"].flatMap(Double.init), y.isFinite else { return nil }
                return SIMD2(x, y)
            }
            chart.series.append(Series(label: "\(b.group.label): \(shortNumber(range.low))–\(shortNumber(range.high))", points: points,
                                       style: Palette.style(k), lineWidth: 1.2))
        }
        return chart
    }

    /// A run folder's `metrics.csv` as rows of column → value (empty when it cannot be read).
    static func metricsRows(_ path: String) -> [[String: String]] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        let rows = csvRows(text)
        guard let header = rows.first else { return [] }
        return rows.dropFirst().map { Dictionary(zip(header, $0), uniquingKeysWith: { a, _ in a }) }
    }
}
