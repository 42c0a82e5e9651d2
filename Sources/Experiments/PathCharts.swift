// The lab's charts: the paths over the contours of f, f against step or epoch, the step sizes; their legends,
// titles and subtitles.
import Config
import Foundation
import Numerics
import Optimizers
import Reports

extension PathLab {
    static func pointText(_ p: SIMD2<Double>) -> String { "(\(shortNumber(p.x)), \(shortNumber(p.y)))" }

    /// How an entry samples, for legends: "σ 0.5", "batch 16", or nothing (exact gradients).
    static func samplingText(_ c: PathConfig, _ e: PathConfig.Entry) -> String? {
        switch c.function {
        case .test: return c.noise(of: e) > 0 ? "σ \(shortNumber(c.noise(of: e)))" : nil
        case .finiteSum: return "batch \(e.batch)"
        }
    }

    /// The label with how it samples, the settings that differ from the optimizer's defaults (the rate always),
    /// and a note when the path diverged: "momentum (σ 1, sutskever, lr 0.1)".
    static func legendLabel(_ t: Trajectory, sampling: String? = nil) -> String {
        let s = t.settings
        let defaults = OptimizerSettings(s.kind)
        var parts = (sampling.map { [$0] } ?? []) + (s.variant == defaults.variant ? [] : [s.variant.rawValue])
        for key in s.kind.keys {
            guard let value = s.yamlValue(key), value != defaults.yamlValue(key) || key == "lr" || (key == "weight_decay" && s.weightDecay != 0)
            else { continue }
            parts.append("\(key) " + value.split(separator: " ").map(Self.shortNumbers).joined(separator: " "))
        }
        // What the label already says is not repeated ("sgd lr 0.1", not "sgd lr 0.1 (lr 0.1)").
        parts = parts.filter { !t.label.contains($0) }
        var text = parts.isEmpty ? t.label : t.label + " (" + parts.joined(separator: ", ") + ")"
        if let d = t.divergedAt { text += " diverged at step \(d)" }
        return text
    }

    /// A word of a YAML value with whole numbers shortened: "1.0" → "1", "[2.0," → "[2,".
    static func shortNumbers(_ word: Substring) -> String {
        word.hasSuffix(".0") || word.hasSuffix(".0]") || word.hasSuffix(".0,") ? word.replacingOccurrences(of: ".0", with: "") : String(word)
    }

    /// The entries, each with its runs (one, or one per seed).
    static func groups(_ c: PathConfig, _ trajectories: [Trajectory]) -> [(entry: PathConfig.Entry, runs: [Trajectory])] {
        var rest = trajectories[...]
        return c.optimizers.map { e in
            let n = c.isStochastic(e) ? e.seeds : 1
            defer { rest = rest.dropFirst(n) }
            return (e, Array(rest.prefix(n)))
        }
    }

    /// How many of `runs` end nearer a global minimum than a local one.
    static func escapes(_ runs: [Trajectory], _ land: Landscape) -> Int {
        runs.filter { $0.divergedAt == nil && land.nearestIsGlobal(Double($0.last.x), Double($0.last.y)) }.count
    }

    /// The legend of an entry: its first run's label, with the seeds (and where they ended) when it repeats.
    static func entryLabel(_ c: PathConfig, _ land: Landscape, _ e: PathConfig.Entry, _ runs: [Trajectory]) -> String {
        var text = legendLabel(runs[0], sampling: samplingText(c, e))
        if runs.count > 1 {
            text = text.replacingOccurrences(of: " diverged at step \(runs[0].divergedAt ?? 0)", with: "")
            text += land.localMinima.isEmpty ? ", \(runs.count) seeds"
                : ": \(escapes(runs, land)) of \(runs.count) seeds reach the deep minimum"
        }
        return text
    }

    /// "Beale: sgd, adam" — or "Beale: 10 optimizers" when the names would not fit in `width` pixels.
    static func title(_ land: Landscape, _ c: PathConfig, width: Double) -> String {
        let names = "\(land.title): " + c.optimizers.map(\.label).joined(separator: ", ")
        return Double(names.count) * 10.5 <= width - 20 ? names : "\(land.title): \(c.optimizers.count) optimizers"
    }

    /// What the run was: steps or epochs, start and noise, for subtitles and the console.
    static func runText(_ c: PathConfig) -> String {
        switch c.function {
        case .test:
            let σs = Set(c.optimizers.map { c.noise(of: $0) })
            let noise = σs.count == 1 && σs.first! > 0 ? ", gradient noise σ \(shortNumber(σs.first!)) (seed \(c.seed))"
                : σs.count > 1 ? ", gradient noise per optimizer (seed \(c.seed))" : ""
            return "\(c.steps) steps from \(pointText(c.start))" + noise
        case .finiteSum:
            return "\(c.epochs) epochs over \(c.samples) points from \(pointText(c.start)) (seed \(c.seed))"
        }
    }

    /// Each run's series: the entry's colour; of repeats after the first only where they end, out of the legend.
    static func series(_ c: PathConfig, _ land: Landscape, _ trajectories: [Trajectory],
                       _ point: (Trajectory.Point) -> SIMD2<Double>, path: Bool) -> [Series] {
        groups(c, trajectories).enumerated().flatMap { k, group in
            group.runs.map { t in
                let first = t.repeatIndex == 0
                return Series(label: first ? entryLabel(c, land, group.entry, group.runs) : "", points: t.points.map(point),
                              style: Palette.style(k), lineWidth: first ? 1.8 : 0,
                              dots: path && group.runs.count == 1 && t.points.count <= 81, endpoints: path)
            }
        }
    }

    /// The paths over the contour lines of f, the minima marked.
    public static func pathChart(_ c: PathConfig, _ land: Landscape, _ trajectories: [Trajectory], title: String? = nil) -> Chart {
        var chart = Chart(title: title ?? "",
                          subtitle: (land.title == land.formula ? "" : "f = \(land.formula) · ") + runText(c),
                          x: Axis(c.function.isFiniteSum ? "w" : "x", domain: c.window.x),
                          y: Axis(c.function.isFiniteSum ? "b" : "y", domain: c.window.y))
        let grid = Grid(x: c.window.x, y: c.window.y, nx: c.function.isFiniteSum ? 120 : 240, ny: c.function.isFiniteSum ? 120 : 240) { land.value($0, $1) }
        let levels = contourLevels(grid, count: c.levels, spacing: c.contours, floor: land.minimumValue)
        chart.contours = contours(grid, levels: levels.levels)
        chart.series = series(c, land, trajectories, { SIMD2(Double($0.x), Double($0.y)) }, path: true)
        chart.markers = land.minima.map { Marker(point: $0, label: land.minima.count > 1 ? "\(land.minima.count) minima, f = 0" : markerLabel(land, $0)) }
            + land.localMinima.map { Marker(point: $0, label: "local minimum (\(String(format: "%.3g", $0.x)), \(String(format: "%.3g", $0.y)))") }
        let plot = equalAspect(x: c.window.x, y: c.window.y)
        chart.sizePlot(width: plot.width, height: plot.height)
        if title == nil { chart.title = Self.title(land, c, width: chart.width) }
        return chart
    }

    /// The plot area for a contour map at equal aspect (a unit of x as long as a unit of y): the longer side 480
    /// pixels, lengthened up to 960 where the shorter one would be under 240.
    static func equalAspect(x: ClosedRange<Double>, y: ClosedRange<Double>) -> (width: Double, height: Double) {
        let ratio = (y.upperBound - y.lowerBound) / (x.upperBound - x.lowerBound)
        let long = min(960, max(480, 240 / min(ratio, 1 / ratio)))
        return ratio <= 1 ? (long, long * ratio) : (long / ratio, long)
    }

    static func markerLabel(_ land: Landscape, _ p: SIMD2<Double>) -> String {
        "\(land.minimaName) (\(String(format: "%.3g", p.x)), \(String(format: "%.3g", p.y)))"
    }

    /// What a value chart's x axis counts.
    public enum Progress { case step, epoch }

    /// f against step or epoch: on a log axis of f − f* when f has a known minimum f* (values at f* left out),
    /// linear otherwise (the saddle). Steps of a finite sum on a log axis (batch 1 takes N× the steps of full).
    public static func valueChart(_ c: PathConfig, _ land: Landscape, _ trajectories: [Trajectory], against progress: Progress = .step,
                                  title: String? = nil, legend: Bool = true) -> Chart {
        let floor = land.minimumValue
        let log = floor != nil
        let excess = (floor ?? 0) != 0
        func y(_ f: Double) -> Double { f - (floor ?? 0) }
        // The axis shows what the paths picture shows: values up to the largest f in the window (or at the
        // start), so a diverging path leaves the chart instead of flattening everything else.
        let grid = Grid(x: c.window.x, y: c.window.y, nx: 60, ny: 60) { land.value($0, $1) }
        let inWindow = (grid.values.filter(\.isFinite) + trajectories.map { $0.points[0].f }).map(y)
        let reached = trajectories.flatMap { $0.points.map { y($0.f) } }.filter { $0.isFinite && (!log || $0 > 0) }
        let yDomain: ClosedRange<Double>
        if log {
            let top = inWindow.max()!
            let lo = max(reached.min() ?? top * 1e-3, top * 1e-30)
            yDomain = pow(10, Foundation.floor(log10(lo)))...pow(10, ceil(log10(max(top, lo * 10))))
        } else {
            yDomain = padded(inWindow.min()!...inWindow.max()!, by: 0.04)
        }
        let finiteSum = c.function.isFiniteSum
        let lastStep = Double(trajectories.map { $0.points.last!.step }.max() ?? c.steps)
        let x: Axis
        switch progress {
        case .step: x = finiteSum ? Axis("step, log scale", scale: .log, domain: 1...max(10, lastStep)) : Axis("step", domain: 0...Double(c.steps))
        case .epoch: x = Axis("epoch", domain: 0...Double(c.epochs))
        }
        var chart = Chart(title: title ?? "\(land.title): f against \(progress)", subtitle: runText(c), x: x,
                          y: Axis(log ? (excess ? "f − f*, log scale" : "f, log scale") : "f", scale: log ? .log : .linear, domain: yDomain))
        chart.series = series(c, land, trajectories, { p in
            SIMD2(progress == .epoch ? p.epoch ?? 0 : Double(p.step), y(p.f))
        }, path: false)
        chart.legend = legend
        chart.sizePlot(width: 540, height: 480)
        return chart
    }

    /// The effective step size |Δθ| of each step, on a log axis: how far each optimizer actually moves.
    public static func stepSizeChart(_ c: PathConfig, _ land: Landscape, _ trajectories: [Trajectory], legend: Bool = true) -> Chart {
        var sized = trajectories
        for k in sized.indices {
            let p = sized[k].points
            sized[k].points = zip(p, p.dropFirst()).map { a, b in
                let dx = Double(b.x) - Double(a.x), dy = Double(b.y) - Double(a.y)
                return Trajectory.Point(step: b.step, epoch: b.epoch, x: b.x, y: b.y, f: (dx * dx + dy * dy).squareRoot())
            }
        }
        let sizes = sized.flatMap { $0.points.map(\.f) }.filter { $0 > 0 && $0.isFinite }
        // Down to a millionth of the largest step: below that a path has arrived.
        let hi = sizes.max() ?? 1, lo = max(sizes.min() ?? 1e-3, hi * 1e-6)
        var chart = Chart(title: "\(land.title): step size |Δθ| against step", subtitle: runText(c),
                          x: Axis("step", domain: 1...Double(max(2, sized.map { $0.points.last?.step ?? 1 }.max()!))),
                          y: Axis("|Δθ|, log scale", scale: .log,
                                  domain: pow(10, Foundation.floor(log10(lo)))...pow(10, ceil(log10(max(hi, lo * 10))))))
        chart.series = series(c, land, sized, { SIMD2(Double($0.step), $0.f) }, path: false)
        chart.legend = legend
        chart.sizePlot(width: 540, height: 420)
        return chart
    }
}
