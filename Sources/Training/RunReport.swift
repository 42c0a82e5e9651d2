// The pictures and the HTML page a training run leaves beside its metrics: loss and accuracy curves (the
// mini-batch loss smoothed as 'Deep Learning from Scratch' smooths it), the gradient noise scale, key figures.
import Config
import Foundation
import Reports

public enum RunReport {
    /// What a curve is drawn against.
    public enum XAxis: String, Sendable {
        case epoch, step, seconds
        public var label: String {
            switch self {
            case .epoch: return "epoch (passes over the training set)"
            case .step: return "optimizer step"
            case .seconds: return "wall seconds"
            }
        }
        func value(_ r: MetricsRow) -> Double {
            switch self {
            case .epoch: return r.epoch
            case .step: return Double(r.step)
            case .seconds: return r.wallSeconds
            }
        }
    }

    /// A line chart of curves, each a list of (x, y); empty curves are left out.
    public static func curves(_ title: String, subtitle: String? = nil, x: String, y: String, log: Bool = false,
                              xScale: ScaleKind = .linear,
                              _ series: [(label: String, points: [SIMD2<Double>], style: SeriesStyle?)]) -> Chart {
        var chart = Chart(title: title, subtitle: subtitle, x: Axis(x, scale: xScale), y: Axis(y, scale: log ? .log : .linear))
        chart.series = series.filter { !$0.points.isEmpty }.map {
            Series(label: $0.label, points: $0.points, style: $0.style, lineWidth: 1.8, dots: $0.points.count <= 30)
        }
        chart.sizePlot(width: 560, height: 340)
        return chart
    }

    /// The mini-batch loss of the step rows, smoothed (Kaiser window of 11 rows, β 2, as the book does).
    public static func smoothedBatchLoss(_ rows: [MetricsRow], x: XAxis) -> [SIMD2<Double>] {
        let steps = rows.filter { $0.kind == .step && $0.batchLoss != nil }
        let values = smoothed(steps.map { $0.batchLoss! })
        return zip(steps, values).map { SIMD2(x.value($0), $1) }
    }

    public static func epochPoints(_ rows: [MetricsRow], x: XAxis, _ value: (MetricsRow) -> Double?) -> [SIMD2<Double>] {
        rows.filter { $0.kind == .epoch }.compactMap { r in value(r).map { SIMD2(x.value(r), $0) } }
    }

    /// The charts of one run: loss, accuracy and (with two or more ranks) the noise scale, against epochs.
    public static func charts(name: String, _ rows: [MetricsRow]) -> [(file: String, chart: Chart)] {
        let grey = SeriesStyle(colour: "#9A9A9A")
        var out: [(String, Chart)] = [
            ("loss.svg", curves("\(name): loss", x: XAxis.epoch.label, y: "cross-entropy loss", [
                ("mini-batch loss (smoothed)", smoothedBatchLoss(rows, x: .epoch), grey),
                ("training set", epochPoints(rows, x: .epoch) { $0.trainLoss }, Palette.style(0)),
                ("test set", epochPoints(rows, x: .epoch) { $0.testLoss }, Palette.style(1)),
            ])),
            ("accuracy.svg", curves("\(name): accuracy", x: XAxis.epoch.label, y: "accuracy", [
                ("training set", epochPoints(rows, x: .epoch) { $0.trainAccuracy }, Palette.style(0)),
                ("test set", epochPoints(rows, x: .epoch) { $0.testAccuracy }, Palette.style(1)),
            ])),
        ]
        let noise = rows.filter { $0.kind == .step }.compactMap { r in r.noiseScale.map { SIMD2(r.epoch, $0) } }
        if !noise.isEmpty {
            out.append(("noise_scale.svg", curves(
                "\(name): gradient noise scale B_simple = tr(Σ) / |G|²", subtitle: "per logged window of steps; per epoch as dots",
                x: XAxis.epoch.label, y: "B_simple (samples)", log: true, [
                    ("per window", noise.filter { $0.y > 0 }, grey),
                    ("per epoch", epochPoints(rows, x: .epoch) { $0.noiseScale }.filter { $0.y > 0 }, Palette.style(2)),
                ])))
        }
        if rows.contains(where: { $0.kind == .curvature }) { out.append(("sharpness.svg", sharpnessChart(name: name, rows))) }
        return out
    }

    /// The sharpness (the Hessian's largest eigenvalue) and its trace over the steps, with gradient descent's stability
    /// threshold 2/η beside them.
    static func sharpnessChart(name: String, _ rows: [MetricsRow]) -> Chart {
        let measured = rows.filter { $0.kind == .curvature }
        func points(_ value: (MetricsRow) -> Double?) -> [SIMD2<Double>] {
            measured.compactMap { r in value(r).flatMap { $0 > 0 && $0.isFinite ? SIMD2(Double(r.step), $0) : nil } }
        }
        return curves("\(name): sharpness", subtitle: StabilityEdge(rows).text, x: XAxis.step.label, y: "eigenvalue of the Hessian",
                      log: true, [
                        ("sharpness λ_max", points(\.sharpness), Palette.style(0)),
                        ("2/η", points { 2 / $0.learningRate }, SeriesStyle(colour: "#9A9A9A", dash: "6 4")),
                        ("trace / 100", points { $0.hessianTrace.map { $0 / 100 } }, Palette.style(2)),
                        ("λ_max(P⁻¹H), the rule's preconditioner", points(\.preconditionedSharpness), Palette.style(1)),
                        ("its threshold", points(\.preconditionedThreshold), SeriesStyle(colour: Palette.style(1).colour, dash: "6 4")),
                      ])
    }

    /// Writes the charts and `report.html` into `directory`.
    public static func write(directory: String, name: String, subtitle: String, figures: [(String, String)],
                             rows: [MetricsRow], config: String) throws {
        let charts = charts(name: name, rows)
        var report = HTMLReport(title: "descent run: \(name)", subtitle: subtitle)
        report.figures = figures
        for (k, c) in charts.enumerated() {
            let svg = c.chart.svg(id: "r\(k)-")
            try writeAtomically(svg, to: directory + "/" + c.file)
            report.charts.append(svg)
        }
        report.files = ["metrics.csv", "metrics.jsonl", "summary.json", "config.yaml"] + charts.map(\.file)
        report.config = config
        try writeAtomically(report.html, to: directory + "/report.html")
    }
}
