// `descent path`: runs optimizers on a 2-D test function with the same optimizer code that trains networks
// (OptimizerSettings.makeOptimizer over a 2-element Float buffer), and draws their paths.
import Collectives
import Config
import Datasets
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
        /// Passes over a finite sum's data (step / steps per epoch); nil on an analytic function.
        public var epoch: Double?
        public var x: Float
        public var y: Float
        public var f: Double

        public init(step: Int, epoch: Double? = nil, x: Float, y: Float, f: Double) {
            (self.step, self.epoch, self.x, self.y, self.f) = (step, epoch, x, y, f)
        }
    }

    public var label: String
    public var settings: OptimizerSettings
    /// Which repeat of its entry this is (0, 1, …: seed + repeat).
    public var repeatIndex = 0
    public var points: [Point]
    /// The step at which the parameters or f stopped being finite or left |θ| ≤ 1e12; nil if they never did.
    public var divergedAt: Int?
    /// A finite sum's training loss as the trainer measured it at each epoch end: (step, loss).
    public var epochLosses: [(step: Int, loss: Double)] = []

    public var last: Point { points[points.count - 1] }
}

/// The surface the paths run on: an analytic function, or a finite sum's mean loss over its training data.
public struct Landscape: Sendable {
    public let title: String
    public let formula: String
    /// The global minima (for the saddle: the saddle point).
    public let minima: [SIMD2<Double>]
    /// Minima that are not global.
    public let localMinima: [SIMD2<Double>]
    public let minimumValue: Double?
    public let minimaName: String
    /// A finite sum's training and test data.
    public let data: (train: PointSet, test: PointSet)?
    private let f: @Sendable (Double, Double) -> Double

    public func value(_ x: Double, _ y: Double) -> Double { f(x, y) }

    public init(_ c: PathConfig) {
        switch c.function {
        case .test(let fn):
            (title, formula, minima, localMinima, minimumValue, minimaName) =
                (fn.title, fn.formula, fn.minima, fn.localMinima, fn.minimumValue, fn.minimaName)
            data = nil
            f = { fn.value($0, $1) }
        case .finiteSum(let sum):
            let train = sum.data(count: c.samples, seed: c.seed), test = sum.data(count: max(2, c.samples / 4), seed: c.seed, test: true)
            let m = sum.minimum(over: train)
            (title, formula, minima, localMinima, minimaName) = (sum.title, sum.formula, [m], [], "minimum")
            minimumValue = sum.meanLoss(m.x, m.y, over: train)
            data = (train, test)
            f = { sum.meanLoss($0, $1, over: train) }
        }
    }

    /// The distance from (x, y) to the nearest global minimum.
    public func distanceToMinimum(_ x: Double, _ y: Double) -> Double {
        minima.map { ((x - $0.x) * (x - $0.x) + (y - $0.y) * (y - $0.y)).squareRoot() }.min()!
    }

    /// Whether (x, y) is nearer a global minimum than any local one.
    public func nearestIsGlobal(_ x: Double, _ y: Double) -> Bool {
        let local = localMinima.map { ((x - $0.x) * (x - $0.x) + (y - $0.y) * (y - $0.y)).squareRoot() }.min() ?? .infinity
        return distanceToMinimum(x, y) < local
    }
}

public enum PathLab {
    /// Every optimizer of `config` from the start point, each stochastic one once per seed. On an analytic
    /// function: `config.steps` steps with exact gradients, plus N(0, σ²) noise per component when the entry's σ
    /// is > 0 (repeat k uses seed + k: every optimizer with the same σ sees the same noise). On a finite sum: the
    /// real trainer over `communicator`'s ranks, `config.epochs` passes at each entry's batch (repeat k orders the
    /// samples with seed + k).
    public static func run(_ config: PathConfig, on communicator: Communicator = SingleProcessCommunicator()) throws -> [Trajectory] {
        let landscape = Landscape(config)
        return try config.optimizers.flatMap { entry in
            try (0..<(config.isStochastic(entry) ? entry.seeds : 1)).map { k in
                var t: Trajectory
                switch config.function {
                case .test(let f): t = analyticPath(config, f, landscape, entry, seed: config.seed &+ UInt64(k))
                case .finiteSum(let sum): t = try finiteSumPath(config, sum, landscape, entry, seed: config.seed &+ UInt64(k), on: communicator)
                }
                t.repeatIndex = k
                return t
            }
        }
    }

    /// Whether a point may be drawn: finite, and within |θ| ≤ 1e12.
    static func isSane(_ x: Float, _ y: Float, _ f: Double) -> Bool {
        x.isFinite && y.isFinite && f.isFinite && abs(x) <= 1e12 && abs(y) <= 1e12
    }

    static func analyticPath(_ config: PathConfig, _ f: TestFunction, _ landscape: Landscape, _ entry: PathConfig.Entry,
                             seed: UInt64) -> Trajectory {
        let optimizer = entry.settings.makeOptimizer(parameterCount: 2)
        let σ = config.noise(of: entry)
        var θ: [Float] = [Float(config.start.x), Float(config.start.y)]
        var g: [Float] = [0, 0]
        var noise = Xoshiro256(seed: seed, stream: 0x7A7B)
        var points = [Trajectory.Point(step: 0, x: θ[0], y: θ[1], f: f.value(Double(θ[0]), Double(θ[1])))]
        var diverged: Int?
        for step in 1...config.steps {
            var exact = f.gradient(Double(θ[0]), Double(θ[1]))
            if σ > 0 { exact += σ * SIMD2(noise.nextGaussian(), noise.nextGaussian()) }
            g[0] = Float(exact.x)
            g[1] = Float(exact.y)
            optimizer.update(&θ, gradient: g)
            let value = f.value(Double(θ[0]), Double(θ[1]))
            guard isSane(θ[0], θ[1], value) else {
                diverged = step
                break
            }
            points.append(Trajectory.Point(step: step, x: θ[0], y: θ[1], f: value))
        }
        return Trajectory(label: entry.label, settings: entry.settings, points: points, divergedAt: diverged)
    }

    /// One entry of a finite sum, trained by the real trainer; the parameters are recorded after every step.
    static func finiteSumPath(_ config: PathConfig, _ sum: FiniteSum, _ landscape: Landscape, _ entry: PathConfig.Entry,
                              seed: UInt64, on communicator: Communicator) throws -> Trajectory {
        let (train, test) = landscape.data!
        var run = RunConfig()
        run.name = config.name
        run.seed = seed
        run.optimizer = entry.settings
        run.training.batch = entry.batch
        run.training.epochs = config.epochs
        run.training.logEvery = 1_000_000_000
        run.training.noiseScaleEvery = 0
        run.guards.divergence = 0  // the lab's own rule (non-finite or |θ| > 1e12) ends a path
        let model = TwoParameterModel(sum, start: SIMD2(Float(config.start.x), Float(config.start.y)))
        let inputs = try RunInputs.load(run, on: communicator, problem: Problem(train: train, test: test, model: model))
        let trainer = try Trainer(inputs, output: .none, options: TrainerOptions(console: Console(enabled: false, interactive: false)))
        let perEpoch = Double(trainer.plannedSteps / config.epochs)
        var points = [Trajectory.Point(step: 0, epoch: 0, x: model.start.x, y: model.start.y,
                                       f: landscape.value(Double(model.start.x), Double(model.start.y)))]
        var diverged: Int?
        trainer.afterStep = { step, replicas in
            guard diverged == nil else { return }
            let θ = replicas[0].parameters
            let value = landscape.value(Double(θ[0]), Double(θ[1]))
            guard isSane(θ[0], θ[1], value) else {
                diverged = step
                return
            }
            points.append(Trajectory.Point(step: step, epoch: Double(step) / perEpoch, x: θ[0], y: θ[1], f: value))
        }
        do {
            try trainer.run()
        } catch is GuardFailure {
            diverged = diverged ?? points.count
        }
        let losses = trainer.history.filter { $0.kind == .epoch }.compactMap { row in row.trainLoss.map { (row.step, $0) } }
        return Trajectory(label: entry.label, settings: entry.settings, points: points, divergedAt: diverged, epochLosses: losses)
    }

    // MARK: outputs

    /// The trajectories as CSV: step, epoch (finite sums), optimizer, repeat, x, y, f.
    public static func csv(_ trajectories: [Trajectory]) -> String {
        var out = "step,epoch,optimizer,repeat,x,y,f\n"
        for t in trajectories {
            let label = csvField(t.label)
            for p in t.points { out += "\(p.step),\(p.epoch.map { String($0) } ?? ""),\(label),\(t.repeatIndex),\(p.x),\(p.y),\(p.f)\n" }
        }
        return out
    }

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
        for line in s.yamlLines().dropFirst(2)
        where !defaults.yamlLines().contains(line) || line.hasPrefix("lr:") || (line.hasPrefix("weight_decay:") && s.weightDecay != 0) {
            let words = line.split(separator: " ").map { $0.hasSuffix(".0") || $0.hasSuffix(".0]") || $0.hasSuffix(".0,")
                ? $0.replacingOccurrences(of: ".0", with: "") : String($0) }
            parts.append(words.joined(separator: " ").replacingOccurrences(of: ": ", with: " ").replacingOccurrences(of: ":", with: ""))
        }
        // What the label already says is not repeated ("sgd lr 0.1", not "sgd lr 0.1 (lr 0.1)").
        parts = parts.filter { !t.label.contains($0) }
        var text = parts.isEmpty ? t.label : t.label + " (" + parts.joined(separator: ", ") + ")"
        if let d = t.divergedAt { text += " diverged at step \(d)" }
        return text
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
        chart.sizePlot(width: 480, height: 480)
        if title == nil { chart.title = Self.title(land, c, width: chart.width) }
        return chart
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

    /// The files of a finished run, by name.
    public static func outputs(_ c: PathConfig, _ trajectories: [Trajectory]) -> [(name: String, text: String)] {
        let land = Landscape(c)
        let paths = pathChart(c, land, trajectories)
        var left = paths
        left.title = "\(land.title): paths"
        left.subtitle = nil
        left.sizePlot(width: 480, height: 480)
        var charts = [left]
        if c.function.isFiniteSum {
            var byEpoch = valueChart(c, land, trajectories, against: .epoch, title: "f against epoch", legend: false)
            var byStep = valueChart(c, land, trajectories, against: .step, title: "f against step", legend: false)
            byEpoch.subtitle = nil
            byStep.subtitle = nil
            byEpoch.sizePlot(width: 400, height: 480)
            byStep.sizePlot(width: 400, height: 480)
            charts += [byEpoch, byStep]
        } else {
            var right = valueChart(c, land, trajectories, title: "f against step", legend: false)
            right.subtitle = nil
            right.sizePlot(width: 540, height: 480)
            charts.append(right)
        }
        let figure = Figure(charts, title: paths.title, subtitle: paths.subtitle)
        var files = [("paths.csv", csv(trajectories)), ("paths.svg", paths.svg()),
                     ("f.svg", valueChart(c, land, trajectories).svg()), ("step_size.svg", stepSizeChart(c, land, trajectories).svg()),
                     ("figure.svg", figure.svg()), ("config.yaml", c.resolvedYAML)]
        if c.animate { files.append(("paths-animated.svg", animatedPaths(paths))) }
        return files
    }

    /// Writes the outputs into `<output.dir>/<name>/` (created if needed; files of an earlier run of the same
    /// name are replaced, each one whole). Returns the folder and the files' names.
    @discardableResult
    public static func write(_ c: PathConfig, _ trajectories: [Trajectory]) throws -> (folder: String, files: [String]) {
        let files = outputs(c, trajectories)
        let folder = c.outputDirectory + "/" + c.name
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw OutputError(path: folder, reason: "cannot create the folder (\(error.localizedDescription))")
        }
        for file in files { try writeAtomically(file.text, to: folder + "/" + file.name) }
        return (folder, files.map(\.name))
    }

    /// A console summary: one line per entry with its (first run's) final point, f and distance to the minimum,
    /// and for a repeated entry how many of its seeds reached the deep minimum.
    public static func summary(_ c: PathConfig, _ trajectories: [Trajectory]) -> String {
        let land = Landscape(c)
        var lines = ["\(land.title): f = \(land.formula), \(runText(c))"]
        let width = max(12, trajectories.map(\.label.count).max() ?? 0)
        let to = land.minimaName == "saddle point" ? "to saddle" : "to minimum"
        lines.append("optimizer".padding(toLength: width, withPad: " ", startingAt: 0)
                     + "        x            y            f   " + to)
        for group in groups(c, trajectories) {
            for t in group.runs.prefix(1) {
                let p = t.last
                var line = t.label.padding(toLength: width, withPad: " ", startingAt: 0)
                    + String(format: "  %11.5g  %11.5g  %11.4g  %9.3g", Double(p.x), Double(p.y), p.f,
                             land.distanceToMinimum(Double(p.x), Double(p.y)))
                if let d = t.divergedAt { line += "   diverged at step \(d)" }
                lines.append(line)
            }
            if group.runs.count > 1 {
                lines.append("  \(group.runs.count) seeds (the first above)" + (land.localMinima.isEmpty ? ""
                    : ": \(escapes(group.runs, land)) end in the deep minimum"))
            }
        }
        return lines.joined(separator: "\n")
    }
}

extension PathLab {
    /// The paths picture with each path drawn over 6 seconds (SMIL `animate` on the stroke's dash offset, played
    /// by any browser): the same SVG, each path element given a unit length and an animation.
    static func animatedPaths(_ chart: Chart) -> String {
        var svg = chart.svg()
        let seconds = 6
        // Series lines are the only elements drawn with this opacity.
        svg = svg.replacingOccurrences(
            of: #"stroke-opacity="0.85""#,
            with: #"stroke-opacity="0.85" pathLength="1" stroke-dashoffset="1" data-animated="1""#)
        var out = ""
        var rest = svg[...]
        while let r = rest.range(of: #"data-animated="1""#) {
            out += rest[..<r.lowerBound]
            rest = rest[r.lowerBound...]
            let close = rest.range(of: "/>")!
            var element = String(rest[..<close.lowerBound])
            // The dash pattern becomes the drawing: one dash as long as the path, shifted into view.
            if let dash = element.range(of: #"stroke-dasharray="[^"]*""#, options: .regularExpression) { element.removeSubrange(dash) }
            out += element + #" stroke-dasharray="1 1"><animate attributeName="stroke-dashoffset" from="1" to="0" dur="\#(seconds)s" fill="freeze"/></path>"#
            rest = rest[close.upperBound...]
        }
        return out + rest
    }
}
