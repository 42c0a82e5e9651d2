// The optimizer lab: test-function gradients and minima, convergence of every optimizer, the 'Deep Learning
// from Scratch' comparison against the book's update rules recomputed in Double, config errors, and pictures.
import DescentTestSupport
import Foundation
import Models
import Optimizers
import Testing
import Numerics
@testable import Config
@testable import Experiments
@testable import Reports
@testable import Training

@Suite struct TestFunctionTests {
    static let probes: [SIMD2<Double>] = [SIMD2(-1.3, 0.7), SIMD2(0.4, -1.1), SIMD2(2.2, 1.6), SIMD2(-0.6, -0.35),
                                          SIMD2(1.05, 0.2), SIMD2(-2.5, 2.5)]

    @Test("analytic gradients match central finite differences", arguments: TestFunction.allCases)
    func gradientsMatchFiniteDifferences(_ f: TestFunction) {
        for p in Self.probes + [f.start] {
            let g = f.gradient(p.x, p.y)
            let h = 1e-5
            // Fourth-order central differences: truncation error O(h⁴), rounding O(ε·|f| / h).
            func d(_ e: SIMD2<Double>) -> Double {
                let v = { (t: Double) in f.value(p.x + t * e.x, p.y + t * e.y) }
                return (-v(2 * h) + 8 * v(h) - 8 * v(-h) + v(-2 * h)) / (12 * h)
            }
            let numeric = SIMD2(d(SIMD2(1, 0)), d(SIMD2(0, 1)))
            let scale = max(1, abs(f.value(p.x, p.y)))
            for axis in 0..<2 {
                #expect(abs(g[axis] - numeric[axis]) <= 1e-7 * scale + 1e-7 * abs(numeric[axis]),
                        "\(f) at \(p) axis \(axis): analytic \(g[axis]), numeric \(numeric[axis])")
            }
        }
    }

    @Test("known minima have zero gradient, the stated value, and are minima", arguments: TestFunction.allCases)
    func minima(_ f: TestFunction) {
        for m in f.minima + f.localMinima {
            let g = f.gradient(m.x, m.y)
            #expect((g.x * g.x + g.y * g.y).squareRoot() < 1e-12, "\(f): gradient \(g) at \(m)")
            let value = f.value(m.x, m.y)
            if let minimum = f.minimumValue, f.minima.contains(m) {
                #expect(abs(value - minimum) <= 1e-15 * abs(minimum) + 1e-20, "\(f): f\(m) = \(value)")
            }
            if let minimum = f.minimumValue, !f.minima.contains(m) { #expect(value > minimum + 0.1, "\(f): a local minimum lies above the global one") }
            // Around the point: higher in every direction for a minimum; for the saddle higher along x, lower along y.
            for k in 0..<8 {
                let a = Double(k) * Double.pi / 4, δ = 1e-3
                let step = SIMD2(cos(a), sin(a)) * δ
                let around = f.value(m.x + step.x, m.y + step.y)
                if f == .saddle {
                    if k % 4 == 0 { #expect(around > value) }
                    if k % 4 == 2 { #expect(around < value) }
                } else {
                    #expect(around > value, "\(f): f rises in direction \(k) from \(m)")
                }
            }
        }
    }
}

/// One optimizer on one function: the rate and steps it gets and how close to a minimum it must end.
struct ConvergenceCase: CustomStringConvertible, Sendable {
    var function: TestFunction
    var settings: OptimizerSettings
    var steps: Int
    var tolerance: Double
    var description: String { "\(settings.kind.rawValue) lr \(settings.learningRate) on \(function.rawValue)" }
}

/// Rates chosen from a scan over 1e-4…10 as ones a person would pick (not the best ones); tolerances are the
/// distance to the nearest minimum, about 10× above what the runs reach. AdaDelta (torch's form) circles the
/// minimum of a non-quadratic function at lr ≥ 0.1 instead of settling (measured: 0.06–0.9 away after 20 000
/// steps at lr 0.1–1), so it runs at lr 0.02–0.05 there.
let convergenceCases: [ConvergenceCase] = {
    typealias Row = (OptimizerKind, Double)
    let plans: [(TestFunction, steps: Int, tolerance: Double, [Row])] = [
        (.bowl, 3000, 1e-4, [(.sgd, 0.3), (.momentum, 0.1), (.nesterov, 0.1), (.adagrad, 1), (.rmsprop, 0.01),
                             (.adadelta, 1), (.adam, 0.1), (.adamw, 0.1), (.nadam, 0.1), (.angulargrad, 0.1)]),
        (.longValley, 3000, 1e-4, [(.sgd, 0.1), (.momentum, 0.03), (.nesterov, 0.03), (.adagrad, 1), (.rmsprop, 0.01),
                                   (.adam, 0.1), (.adamw, 0.1), (.nadam, 0.1), (.angulargrad, 0.1)]),
        (.rosenbrock, 20000, 1e-2, [(.sgd, 0.001), (.momentum, 0.001), (.nesterov, 0.001), (.adagrad, 0.5),
                                    (.rmsprop, 0.001), (.adam, 0.01), (.adamw, 0.01), (.nadam, 0.01), (.angulargrad, 0.01)]),
        (.beale, 10000, 1e-2, [(.sgd, 0.03), (.momentum, 0.003), (.nesterov, 0.003), (.adagrad, 1), (.rmsprop, 0.001),
                               (.adam, 0.01), (.adamw, 0.01), (.nadam, 0.01), (.angulargrad, 0.01)]),
        (.himmelblau, 3000, 1e-2, [(.sgd, 0.01), (.momentum, 0.003), (.nesterov, 0.003), (.adagrad, 1),
                                   (.rmsprop, 0.003), (.adam, 0.03), (.adamw, 0.03), (.nadam, 0.03), (.angulargrad, 0.03)]),
    ]
    var cases: [ConvergenceCase] = []
    for (f, steps, tolerance, rows) in plans {
        for (kind, lr) in rows {
            var s = OptimizerSettings(kind)
            s.learningRate = lr
            if kind == .adamw { s.weightDecay = 0 }  // decoupled decay would pull the end point towards 0
            cases.append(ConvergenceCase(function: f, settings: s, steps: steps, tolerance: tolerance))
        }
    }
    for (f, lr) in [(TestFunction.longValley, 0.05), (.rosenbrock, 0.02), (.beale, 0.02), (.himmelblau, 0.02)] {
        var s = OptimizerSettings(.adadelta)
        s.learningRate = lr
        cases.append(ConvergenceCase(function: f, settings: s, steps: 20000, tolerance: 1e-2))
    }
    return cases
}()

@Suite struct PathLabTests {
    static func config(_ f: TestFunction, steps: Int, _ entries: [(String, OptimizerSettings)], noise: Double = 0) -> PathConfig {
        var c = PathConfig(function: .test(f))
        c.steps = steps
        c.noise = noise
        c.optimizers = entries.map { PathConfig.Entry(label: $0.0, settings: $0.1) }
        return c
    }

    @Test("every optimizer with a sensible rate ends near a minimum", arguments: convergenceCases)
    func converges(_ c: ConvergenceCase) {
        let config = Self.config(c.function, steps: c.steps, [(c.settings.kind.rawValue, c.settings)])
        let run = try! PathLab.run(config)[0]
        let distance = Landscape(config).distanceToMinimum(Double(run.last.x), Double(run.last.y))
        #expect(run.divergedAt == nil)
        #expect(distance <= c.tolerance, "\(c): ends at (\(run.last.x), \(run.last.y)), \(distance) from a minimum")
    }

    /// The book's optimizers (common/optimizer.py), written again here in Double: SGD, Momentum (v ← μv − γg),
    /// AdaGrad (ε 1e-7 outside the root) and Adam (step size γ√(1−β2ᵗ)/(1−β1ᵗ), m and v as running averages).
    static func bookPath(_ name: String, steps: Int) -> [SIMD2<Double>] {
        var p = SIMD2<Double>(-7, 2), v = SIMD2<Double>(0, 0), h = SIMD2<Double>(0, 0), m = SIMD2<Double>(0, 0)
        var path = [p]
        for t in 1...steps {
            let g = SIMD2(p.x / 10, 2 * p.y)
            switch name {
            case "sgd": p -= 0.95 * g
            case "momentum": v = 0.9 * v - 0.1 * g; p += v
            case "adagrad": h += g * g; p -= 1.5 * g / (h.squareRoot() + 1e-7)
            default:
                let lrT = 0.3 * (1 - pow(0.999, Double(t))).squareRoot() / (1 - pow(0.9, Double(t)))
                m += (1 - 0.9) * (g - m)
                v += (1 - 0.999) * (g * g - v)
                p -= lrT * m / (v.squareRoot() + 1e-7)
            }
            path.append(p)
        }
        return path
    }

    @Test("the DLFS preset follows the book's update rules for 30 steps (relative 1e-4)")
    func dlfsPreset() throws {
        let file = packageRoot.appendingPathComponent("configs/path-dlfs.yaml")
        let config = try PathConfig.load(yaml: String(contentsOf: file, encoding: .utf8), fileName: file.path)
        #expect(config.function == .test(.bowl) && config.steps == 30 && config.start == SIMD2(-7, 2))
        let runs = try PathLab.run(config)
        #expect(runs.map(\.label) == ["sgd", "momentum", "adagrad", "adam", "nesterov"])
        for run in runs where run.label != "nesterov" {
            let reference = Self.bookPath(run.label, steps: 30)
            #expect(run.points.count == 31)
            // Each point within 1e-4 of the reference point's distance from the origin (at least 1e-3 of it).
            for (p, r) in zip(run.points, reference) {
                let error = ((Double(p.x) - r.x) * (Double(p.x) - r.x) + (Double(p.y) - r.y) * (Double(p.y) - r.y)).squareRoot()
                #expect(error <= 1e-4 * max((r.x * r.x + r.y * r.y).squareRoot(), 1e-3),
                        "\(run.label) step \(p.step): (\(p.x), \(p.y)) against (\(r.x), \(r.y))")
            }
        }
    }

    @Test("the L-BFGS preset's paths end where torch 2.13's LBFGS ends on the same evaluations (within 2e-6)")
    func lbfgsPreset() throws {
        let file = packageRoot.appendingPathComponent("configs/path-lbfgs.yaml")
        let config = try PathConfig.load(yaml: String(contentsOf: file, encoding: .utf8), fileName: file.path)
        let runs = try PathLab.run(config)
        // torch.optim.LBFGS on a float32 point, its closure computing f and ∇f in float64 at that point and
        // returning them as float32 (what the lab does), 40 steps from (−1.2, 1) with each entry's settings.
        let torch: [String: (Double, Double)] = ["lbfgs strong-wolfe": (0.999987, 0.999972), "lbfgs fixed step": (-1.056684, 1.072917)]
        for (label, end) in torch {
            let run = try #require(runs.first { $0.label == label })
            #expect(run.points.count == 41 && run.divergedAt == nil)
            #expect(abs(Double(run.last.x) - end.0) <= 2e-6 && abs(Double(run.last.y) - end.1) <= 2e-6,
                    "\(label): (\(run.last.x), \(run.last.y)) against torch's \(end)")
        }
    }

    @Test("gradient noise is seeded, the same for every optimizer, and changes the path")
    func noise() {
        var sgd = OptimizerSettings(.sgd)
        sgd.learningRate = 0.1
        let noisy = Self.config(.bowl, steps: 40, [("a", sgd), ("b", sgd)], noise: 0.5)
        let first = try! PathLab.run(noisy), again = try! PathLab.run(noisy)
        #expect(first[0].points == again[0].points)
        #expect(first[0].points == first[1].points)
        let exact = try! PathLab.run(Self.config(.bowl, steps: 40, [("a", sgd)]))
        #expect(exact[0].points != first[0].points)
        var other = noisy
        other.seed = 2
        #expect(try! PathLab.run(other)[0].points != first[0].points)
        // An entry's own σ overrides the config's; with several seeds a noisy entry runs once per seed.
        var mixed = noisy
        mixed.optimizers[0].noise = 0
        mixed.optimizers[1].seeds = 3
        let runs = try! PathLab.run(mixed)
        #expect(runs.map(\.label) == ["a", "b", "b", "b"] && runs.map(\.repeatIndex) == [0, 0, 1, 2])
        #expect(runs[0].points == exact[0].points && runs[1].points == first[1].points)
        #expect(Set(runs.dropFirst().map { $0.last.x }).count == 3)
    }

    @Test("a diverging optimizer stops at the first non-finite or huge point and says so")
    func divergence() {
        var sgd = OptimizerSettings(.sgd)
        sgd.learningRate = 2  // y ← (1 − 4) y: grows 3× per step
        let run = try! PathLab.run(Self.config(.bowl, steps: 100, [("sgd", sgd)]))[0]
        let stop = try! #require(run.divergedAt)
        #expect(stop > 20 && stop < 30)
        #expect(run.points.count == stop)
        #expect(run.points.allSatisfy { $0.x.isFinite && $0.y.isFinite && $0.f.isFinite })
        #expect(PathLab.legendLabel(run) == "sgd (lr 2) diverged at step \(stop)")
        #expect(PathLab.csv([run]).split(separator: "\n").count == stop + 1)
    }

    @Test("a legend names the settings that differ from the optimizer's defaults, the rate always, whole numbers short")
    func legends() {
        var adam = OptimizerSettings(.adam)
        (adam.variant, adam.beta2, adam.learningRate, adam.amsgrad) = (.kingmaBa, 0.99, 1, true)
        let t = Trajectory(label: "adam", settings: adam, points: [.init(step: 0, x: 0, y: 0, f: 0)])
        #expect(PathLab.legendLabel(t, sampling: "σ 0.5") == "adam (σ 0.5, kingma-ba, lr 1, betas [0.9, 0.99], amsgrad true)")
        var sgd = OptimizerSettings(.momentum)
        sgd.weightDecay = 2
        let u = Trajectory(label: "momentum lr 0.01", settings: sgd, points: [.init(step: 0, x: 0, y: 0, f: 0)])
        #expect(PathLab.legendLabel(u) == "momentum lr 0.01 (weight_decay 2)")
    }

    @Test("contour maps are drawn at equal aspect: a unit of x is as long as a unit of y")
    func equalAspect() throws {
        for (x, y) in [(-2.0...2.0, -1.0...1.0), (-1.0...1.0, -3.0...3.0), (-4.5...4.5, -4.5...4.5), (0.0...10.0, 0.0...1.0)] {
            let plot = PathLab.equalAspect(x: x, y: y)
            let perX = plot.width / (x.upperBound - x.lowerBound), perY = plot.height / (y.upperBound - y.lowerBound)
            #expect(abs(perX - perY) < 1e-9 * perX && max(plot.width, plot.height) <= 960, "\(x) \(y): \(plot)")
        }
        // The long valley's own window, in the chart the lab draws.
        let config = try PathConfig.load(yaml: String(contentsOf: packageRoot.appendingPathComponent("configs/path-long-valley.yaml"), encoding: .utf8),
                                         fileName: "path-long-valley.yaml", overrides: ["steps=5"])
        let chart = PathLab.pathChart(config, Landscape(config), try PathLab.run(config))
        let plot = PathLab.equalAspect(x: config.window.x, y: config.window.y)
        #expect(chart.width == Chart.leftMargin + plot.width + Chart.rightMargin + chart.legendWidth)
    }

    @Test("an animated chart draws each series line over its seconds, and is otherwise the same picture")
    func animation() throws {
        let config = Self.config(.bowl, steps: 20, [("sgd", OptimizerSettings(.sgd)), ("adam", OptimizerSettings(.adam))])
        let runs = try PathLab.run(config)
        var chart = PathLab.pathChart(config, Landscape(config), runs)
        let still = chart.svg()
        chart.drawSeconds = 6
        let moving = chart.svg()
        #expect(xmlError(moving) == nil)
        #expect(!still.contains("<animate") && moving.components(separatedBy: "<animate ").count - 1 == 2)
        #expect(moving.components(separatedBy: #"dur="6s""#).count - 1 == 2)
        // Without the animations and the dash that draws them, the same elements.
        let stripped = moving.replacingOccurrences(of: "\n", with: "").replacingOccurrences(of: #"<animate attributeName="stroke-dashoffset" from="1" to="0" dur="6s" fill="freeze"/></path>"#, with: "")
            .replacingOccurrences(of: #" pathLength="1" stroke-dasharray="1 1" stroke-dashoffset="1">"#, with: "/>")
        #expect(stripped == still.replacingOccurrences(of: "\n", with: ""))
    }
}

@Suite struct PathConfigTests {
    func load(_ yaml: String, _ overrides: [String] = []) throws -> PathConfig {
        try PathConfig.load(yaml: yaml, fileName: "lab.yaml", overrides: overrides)
    }

    func message(_ yaml: String, _ overrides: [String] = []) -> String {
        do {
            _ = try load(yaml, overrides)
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    @Test("defaults come from the function; resolved YAML loads back to the same config")
    func roundTrip() throws {
        let c = try load("function: beale\noptimizers:\n  - {name: adam, lr: 0.05}\n  - {name: adam, lr: 0.1}\n  - {name: momentum, variant: sutskever}\n")
        #expect(c.start == SIMD2(1, 1.5))
        #expect(c.window.x == -4.5...4.5)
        #expect(c.optimizers.map(\.label) == ["adam lr 0.05", "adam lr 0.1", "momentum"])
        #expect(c.optimizers[2].settings.momentum == 0.9)
        let again = try load(c.resolvedYAML)
        #expect(again == c)
        let overridden = try load(c.resolvedYAML, ["optimizers[1].lr=0.2", "start=[0, 1]"])
        #expect(overridden.optimizers[1].settings.learningRate == 0.2 && overridden.start == SIMD2(0, 1))
    }

    @Test("a top-level seeds is every stochastic entry's default; the console gives the final f over the seeds with its spread")
    func seeds() throws {
        let c = try load("function: double-well\nnoise: 2\nsteps: 30\nseeds: 4\noptimizers:\n  - {name: sgd, lr: 0.05}\n"
                         + "  - {name: momentum, lr: 0.01, seeds: 2}\n")
        #expect(c.optimizers.map(\.seeds) == [4, 2] && c.seeds == 4)
        #expect(try load(c.resolvedYAML) == c)
        let runs = try PathLab.run(c)
        let summary = PathLab.summary(c, runs)
        // The spread of the 4 seeds of sgd, computed here from their final f.
        let f = runs.filter { $0.label == "sgd" }.map { Double($0.last.f) }
        let s = try #require(Spread(f))
        #expect(f.count == 4 && summary.contains(String(format: "final f median %.4g [quartiles %.4g–%.4g]", s.median, s.q1, s.q3)), "\(summary)")
        #expect(message("seeds: 0\noptimizers:\n  - {name: sgd}\n") == "lab.yaml: seeds: expected an integer in 1...10000, found '0'")
    }

    @Test("bad path configs name the key, what was expected and what was found")
    func errors() {
        #expect(message("function: bowl\n") == "lab.yaml: optimizers: expected a list of optimizer blocks, like "
                + "[{name: sgd, lr: 0.1}, {name: adam, lr: 0.3}], found no optimizers")
        #expect(message("optimizers: adam\n") == "lab.yaml: optimizers: expected a list of optimizer blocks, like "
                + "[{name: sgd, lr: 0.1}, {name: adam, lr: 0.3}], found 'adam'")
        #expect(message("optimizers:\n  - {lr: 0.1}\n") == "lab.yaml: optimizers[0].name: expected an optimizer name "
                + "(sgd, momentum, nesterov, adagrad, rmsprop, adadelta, adam, adamw, nadam, angulargrad, radam, adamax, lion, asgd, rprop, schedule-free-sgd, schedule-free-adamw, muon, adafactor, shampoo, lbfgs, newton, saddle-free-newton, newton-cg), found no name")
        // An override names itself: past the end of the list, or a block it adds without a name.
        #expect(message("optimizers:\n  - {name: sgd}\n  - {name: adam}\n", ["optimizers[9].lr=0.1"])
                == "--set: optimizers[9].lr: expected an index in 0...1 (optimizers has 2 blocks; [2] adds one), found index 9, past the end of the list")
        #expect(message("optimizers:\n  - {name: sgd}\n", ["optimizers[1].lr=0.1"]).hasPrefix("--set: optimizers[1].name: expected an optimizer name"))
        #expect(message("optimizers:\n  - {name: sgd}\n", ["optimizers[1].name=adam", "optimizers[1].lr=0.2"]) == "no error")
        #expect(message("optimizers:\n  - {name: sgd}\n  - {name: adam, momentum: 0.9}\n")
                == "lab.yaml: optimizers[1].momentum: expected a key that adam reads (variant, lr, betas, eps, "
                + "weight_decay, amsgrad), found a key of sgd, momentum, nesterov, rmsprop, schedule-free-sgd, muon, shampoo")
        #expect(message("optimizers:\n  - {name: sgd, label: a}\n  - {name: adam, label: a}\n")
                == "lab.yaml: optimizers[1].label: expected a label that tells it apart from optimizers[0], found 'a' twice")
        #expect(message("function: himmelblau2\noptimizers:\n  - {name: sgd}\n")
                == "lab.yaml: function: expected one of bowl, rosenbrock, beale, saddle, long-valley, himmelblau, rastrigin, "
                + "sphere, double-well, least-squares, logistic, found 'himmelblau2'")
        #expect(message("function: least-squares\nsteps: 5\noptimizers:\n  - {name: sgd}\n")
                == "lab.yaml: steps: expected no steps with a finite sum (it trains `epochs` passes over its `samples`), found steps with function least-squares")
        #expect(message("epochs: 5\noptimizers:\n  - {name: sgd}\n")
                == "lab.yaml: epochs: expected epochs only with a finite sum (function: least-squares or logistic), found epochs with function bowl")
        #expect(message("optimizers:\n  - {name: sgd, batch: 4}\n")
                == "lab.yaml: optimizers[0].batch: expected batch only with a finite sum (function: least-squares or logistic), found optimizers[0].batch with function bowl")
        #expect(message("function: logistic\nsamples: 64\noptimizers:\n  - {name: sgd, batch: 65}\n")
                == "lab.yaml: optimizers[0].batch: expected an integer in 1...64 or full, found '65'")
        #expect(message("function: logistic\noptimizers:\n  - {name: sgd, noise: 1}\n")
                == "lab.yaml: optimizers[0].noise: expected no noise with a finite sum (it trains `epochs` passes over its `samples`), found optimizers[0].noise with function logistic")
        #expect(message("plot:\n  x: [2, -2]\noptimizers:\n  - {name: sgd}\n")
                == "lab.yaml: plot.x: expected two numbers [low, high] with low < high, found [2.0, -2.0]")
        #expect(message("steps: 0\noptimizers:\n  - {name: sgd}\n") == "lab.yaml: steps: expected an integer in 1...1000000, found '0'")
        #expect(message("optimizers:\n  - {name: sgd, lr: -1}\n") == "lab.yaml: optimizers[0].lr: expected a number > 0, found '-1'")
        #expect(message("optimizers:\n  - {name: sgd}\nsteps: 5\nstep: 4\n")
                == "lab.yaml: step: expected a known key (did you mean 'steps'?), found an unknown key")
    }
}
