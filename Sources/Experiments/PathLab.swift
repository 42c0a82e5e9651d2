// `descent path`: runs optimizers on a 2-D test function with the same optimizer code that trains networks
// (OptimizerSettings.makeOptimizer over a 2-element Float buffer), and draws their paths.
import Config
import Training
import Foundation
import Models
import Numerics
import Optimizers
import Reports

/// The path of one optimizer: the point after each step (step 0 is the start).
public struct Trajectory: Sendable {
    public struct Point: Equatable, Sendable {
        public var step: Int
        public var x: Float
        public var y: Float
        public var f: Double
    }

    public var label: String
    public var settings: OptimizerSettings
    public var points: [Point]
    /// The step at which the parameters or f stopped being finite or left |θ| ≤ 1e12; nil if they never did.
    public var divergedAt: Int?

    public var last: Point { points[points.count - 1] }
}

public enum PathLab {
    /// Every optimizer of `config` from the start point for `config.steps` steps. Gradients are exact, plus
    /// N(0, σ²) noise per component when `config.noise` is σ > 0 — the same noise sequence for every optimizer.
    public static func run(_ config: PathConfig) -> [Trajectory] {
        config.optimizers.map { entry in
            let f = config.function
            let optimizer = entry.settings.makeOptimizer(parameterCount: 2)
            var θ: [Float] = [Float(config.start.x), Float(config.start.y)]
            var g: [Float] = [0, 0]
            var noise = Xoshiro256(seed: config.seed, stream: 0x7A7B)
            var points = [Trajectory.Point(step: 0, x: θ[0], y: θ[1], f: f.value(Double(θ[0]), Double(θ[1])))]
            var diverged: Int?
            for step in 1...config.steps {
                var exact = f.gradient(Double(θ[0]), Double(θ[1]))
                if config.noise > 0 { exact += config.noise * SIMD2(noise.nextGaussian(), noise.nextGaussian()) }
                g[0] = Float(exact.x)
                g[1] = Float(exact.y)
                optimizer.update(&θ, gradient: g)
                let value = f.value(Double(θ[0]), Double(θ[1]))
                guard θ[0].isFinite, θ[1].isFinite, value.isFinite, abs(θ[0]) <= 1e12, abs(θ[1]) <= 1e12 else {
                    diverged = step
                    break
                }
                points.append(Trajectory.Point(step: step, x: θ[0], y: θ[1], f: value))
            }
            return Trajectory(label: entry.label, settings: entry.settings, points: points, divergedAt: diverged)
        }
    }

    // MARK: outputs

    /// The trajectories as CSV: step, optimizer, x, y, f.
    public static func csv(_ trajectories: [Trajectory]) -> String {
        var out = "step,optimizer,x,y,f\n"
        for t in trajectories {
            let label = csvField(t.label)
            for p in t.points { out += "\(p.step),\(label),\(p.x),\(p.y),\(p.f)\n" }
        }
        return out
    }

    /// The distance from `p` to the nearest of the function's minima (or its saddle point).
    public static func distanceToMinimum(_ p: Trajectory.Point, _ f: TestFunction) -> Double {
        f.minima.map { m in ((Double(p.x) - m.x) * (Double(p.x) - m.x) + (Double(p.y) - m.y) * (Double(p.y) - m.y)).squareRoot() }.min()!
    }

    static func pointText(_ p: SIMD2<Double>) -> String { "(\(shortNumber(p.x)), \(shortNumber(p.y)))" }

    /// The label with the settings that differ from the optimizer's defaults (the rate always), and a note
    /// when the path diverged: "momentum (sutskever, lr 0.1)".
    static func legendLabel(_ t: Trajectory) -> String {
        let s = t.settings
        let defaults = OptimizerSettings(s.kind)
        var parts = s.variant == defaults.variant ? [] : [s.variant]
        for line in s.yamlLines().dropFirst(2)
        where !defaults.yamlLines().contains(line) || line.hasPrefix("lr:") || (line.hasPrefix("weight_decay:") && s.weightDecay != 0) {
            let words = line.split(separator: " ").map { $0.hasSuffix(".0") || $0.hasSuffix(".0]") || $0.hasSuffix(".0,")
                ? $0.replacingOccurrences(of: ".0", with: "") : String($0) }
            parts.append(words.joined(separator: " ").replacingOccurrences(of: ": ", with: " ").replacingOccurrences(of: ":", with: ""))
        }
        var text = t.label + " (" + parts.joined(separator: ", ") + ")"
        if let d = t.divergedAt { text += " diverged at step \(d)" }
        return text
    }

    /// "Beale: sgd, adam" — or "Beale: 10 optimizers" when the names would not fit in `width` pixels.
    static func title(_ f: TestFunction, _ trajectories: [Trajectory], width: Double) -> String {
        let names = "\(f.title): " + trajectories.map(\.label).joined(separator: ", ")
        return Double(names.count) * 10.5 <= width - 20 ? names : "\(f.title): \(trajectories.count) optimizers"
    }

    /// What the run was: function, start, steps and noise, for subtitles and the console.
    static func runText(_ c: PathConfig) -> String {
        "\(c.steps) steps from \(pointText(c.start))" + (c.noise > 0 ? ", gradient noise σ \(shortNumber(c.noise)) (seed \(c.seed))" : "")
    }

    /// The paths over the contour lines of f, the minima marked.
    public static func pathChart(_ c: PathConfig, _ trajectories: [Trajectory], title: String? = nil) -> Chart {
        let f = c.function
        var chart = Chart(title: title ?? "",
                          subtitle: (f.title == f.formula ? "" : "f = \(f.formula) · ") + runText(c),
                          x: Axis("x", domain: c.window.x), y: Axis("y", domain: c.window.y))
        let grid = Grid(x: c.window.x, y: c.window.y, nx: 240, ny: 240) { f.value($0, $1) }
        let levels = contourLevels(grid, count: c.levels, spacing: c.contours, floor: f.minimumValue)
        chart.contours = contours(grid, levels: levels.levels)
        chart.series = trajectories.map { t in
            Series(label: legendLabel(t), points: t.points.map { SIMD2(Double($0.x), Double($0.y)) },
                   lineWidth: 1.8, dots: c.steps <= 80, endpoints: true)
        }
        chart.markers = f.minima.map { Marker(point: $0, label: f.minima.count > 1 ? "\(f.minima.count) minima, f = 0" : markerLabel(f, $0)) }
        chart.sizePlot(width: 480, height: 480)
        if title == nil { chart.title = Self.title(f, trajectories, width: chart.width) }
        return chart
    }

    static func markerLabel(_ f: TestFunction, _ p: SIMD2<Double>) -> String {
        "\(f.minimaName) (\(String(format: "%.3g", p.x)), \(String(format: "%.3g", p.y)))"
    }

    /// f against step: a log axis when f has a known minimum of 0 (zeros are left out), linear otherwise.
    public static func valueChart(_ c: PathConfig, _ trajectories: [Trajectory], title: String? = nil, legend: Bool = true) -> Chart {
        let f = c.function
        let log = f.minimumValue == 0
        // The axis shows what the paths picture shows: values up to the largest f in the window (or at the
        // start), so a diverging path leaves the chart instead of flattening everything else.
        let grid = Grid(x: c.window.x, y: c.window.y, nx: 60, ny: 60) { f.value($0, $1) }
        let inWindow = grid.values.filter(\.isFinite) + trajectories.map { $0.points[0].f }
        let reached = trajectories.flatMap { $0.points.map(\.f) }.filter { $0.isFinite && (!log || $0 > 0) }
        let yDomain: ClosedRange<Double>
        if log {
            let top = inWindow.max()!
            let lo = max(reached.min() ?? top * 1e-3, top * 1e-30)
            yDomain = pow(10, floor(log10(lo)))...pow(10, ceil(log10(max(top, lo * 10))))
        } else {
            yDomain = padded(inWindow.min()!...inWindow.max()!, by: 0.04)
        }
        var chart = Chart(title: title ?? "\(f.title): f against step", subtitle: runText(c),
                          x: Axis("step", domain: 0...Double(c.steps)),
                          y: Axis(log ? "f(x, y), log scale" : "f(x, y)", scale: log ? .log : .linear, domain: yDomain))
        chart.series = trajectories.map { t in
            Series(label: legendLabel(t), points: t.points.map { SIMD2(Double($0.step), $0.f) }, lineWidth: 1.8)
        }
        chart.legend = legend
        chart.sizePlot(width: 540, height: 480)
        return chart
    }

    /// The files of a finished run, by name.
    public static func outputs(_ c: PathConfig, _ trajectories: [Trajectory]) -> [(name: String, text: String)] {
        let paths = pathChart(c, trajectories)
        let values = valueChart(c, trajectories)
        var left = paths
        left.title = "\(c.function.title): paths"
        var right = valueChart(c, trajectories, title: "f against step", legend: false)
        left.subtitle = nil
        right.subtitle = nil
        left.sizePlot(width: 480, height: 480)
        right.sizePlot(width: 540, height: 480)
        let figure = Figure([left, right], title: paths.title, subtitle: paths.subtitle)
        return [("paths.csv", csv(trajectories)), ("paths.svg", paths.svg()), ("f.svg", values.svg()),
                ("figure.svg", figure.svg()), ("config.yaml", c.resolvedYAML)]
    }

    /// Writes the outputs into `<output.dir>/<name>/` (created if needed; files of an earlier run of the same
    /// name are replaced, each one whole). Returns the folder.
    @discardableResult
    public static func write(_ c: PathConfig, _ trajectories: [Trajectory]) throws -> String {
        let files = outputs(c, trajectories)
        let folder = c.outputDirectory + "/" + c.name
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw OutputError(path: folder, reason: "cannot create the folder (\(error.localizedDescription))")
        }
        for file in files { try writeAtomically(file.text, to: folder + "/" + file.name) }
        return folder
    }

    /// A console summary: one line per optimizer with its final point, f and distance to the minimum.
    public static func summary(_ c: PathConfig, _ trajectories: [Trajectory]) -> String {
        let f = c.function
        var lines = ["\(f.title): f = \(f.formula), \(runText(c))"]
        let width = max(12, trajectories.map(\.label.count).max() ?? 0)
        let to = f.minimaName == "saddle point" ? "to saddle" : "to minimum"
        lines.append("optimizer".padding(toLength: width, withPad: " ", startingAt: 0)
                     + "        x            y            f   " + to)
        for t in trajectories {
            let p = t.last
            var line = t.label.padding(toLength: width, withPad: " ", startingAt: 0)
                + String(format: "  %11.5g  %11.5g  %11.4g  %9.3g", Double(p.x), Double(p.y), p.f, distanceToMinimum(p, f))
            if let d = t.divergedAt { line += "   diverged at step \(d)" }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }
}
