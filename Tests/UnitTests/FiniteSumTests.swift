// The 2-D lab's finite sums, trained by the real trainer: full batch against gradient descent written here in
// Double, the same bits on 1, 2 and 3 in-process ranks, the recorded f against the trainer's own training loss.
import Collectives
import CollectivesTesting
import Config
import Datasets
import DescentTestSupport
import Foundation
import Models
import Numerics
import Optimizers
import Testing
@testable import Experiments

@Suite("Finite sums in the 2-D lab")
struct FiniteSumTests {
    static func config(_ sum: FiniteSum, batches: [RunConfig.Batch], lr: Double, epochs: Int = 4, samples: Int = 48) -> PathConfig {
        var c = PathConfig(function: .finiteSum(sum))
        c.samples = samples
        c.epochs = epochs
        var sgd = OptimizerSettings(.sgd)
        sgd.learningRate = lr
        c.optimizers = batches.map { PathConfig.Entry(label: "batch \($0)", settings: sgd, batch: $0) }
        return c
    }

    /// ∇ of the mean loss, written from the per-sample losses ½(wx + b − t)² and log(1 + eᶻ) − tz.
    static func gradient(_ sum: FiniteSum, _ θ: SIMD2<Double>, _ data: PointSet) -> SIMD2<Double> {
        var g = SIMD2<Double>()
        for (x, t) in zip(data.xs.map(Double.init), data.targets.map(Double.init)) {
            let z = θ.x * x + θ.y
            let r = sum == .leastSquares ? z - t : 1 / (1 + exp(-z)) - t
            g += SIMD2(r * x, r)
        }
        return g / Double(data.count)
    }

    @Test("batch full takes gradient-descent steps on the whole set (Double reference, relative 1e-5)",
          arguments: FiniteSum.allCases)
    func fullBatchIsGradientDescent(_ sum: FiniteSum) throws {
        let c = Self.config(sum, batches: [.full], lr: 0.3, epochs: 12)
        let run = try PathLab.run(c)[0]
        let data = Landscape(c).data!.train
        var θ = c.start
        #expect(run.points.count == 13)
        for p in run.points {
            #expect(abs(Double(p.x) - θ.x) <= 1e-5 * max(1, abs(θ.x)) && abs(Double(p.y) - θ.y) <= 1e-5 * max(1, abs(θ.y)),
                    "step \(p.step): (\(p.x), \(p.y)) against (\(θ.x), \(θ.y))")
            θ -= 0.3 * Self.gradient(sum, θ, data)
        }
    }

    @Test("any batch gives the same bits on 1, 2 and 3 ranks", arguments: FiniteSum.allCases)
    func sameBitsOnAnyRanks(_ sum: FiniteSum) throws {
        let c = Self.config(sum, batches: [.samples(1), .samples(5), .full], lr: 0.05)
        var paths: [[[Trajectory.Point]]] = []
        for ranks in [1, 2, 3] {
            let perRank = try InProcessGroup.run(ranks: ranks) { comm in try PathLab.run(c, on: comm).map(\.points) }
            #expect(perRank.allSatisfy { $0 == perRank[0] })
            paths.append(perRank[0])
        }
        #expect(paths[1] == paths[0] && paths[2] == paths[0])
        // Steps per run: 48 at batch 1, 10 at batch 5, 1 at full, per epoch.
        #expect(paths[0].map(\.count) == [4 * 48 + 1, 4 * 10 + 1, 4 + 1])
    }

    @Test("the recorded f equals the trainer's own training loss at every epoch end (relative 1e-5)",
          arguments: FiniteSum.allCases)
    func recordedLossIsTheDatasetLoss(_ sum: FiniteSum) throws {
        let c = Self.config(sum, batches: [.samples(7), .full], lr: 0.1)
        for run in try PathLab.run(c) {
            #expect(run.epochLosses.count == 4)
            for (step, loss) in run.epochLosses {
                let point = try #require(run.points.first { $0.step == step })
                #expect(abs(point.f - loss) <= 1e-5 * loss, "\(run.label) step \(step): \(point.f) against \(loss)")
                #expect(point.epoch.map { abs($0 - $0.rounded()) < 1e-12 } == true)
            }
        }
    }

    @Test("the minimum: the normal equations for least squares, a zero gradient for logistic regression")
    func minima() {
        let data = FiniteSum.leastSquares.data(count: 200, seed: 4)
        let x = data.xs.map(Double.init), t = data.targets.map(Double.init), n = Double(x.count)
        let sx = x.reduce(0, +), st = t.reduce(0, +), sxx = x.map { $0 * $0 }.reduce(0, +), sxt = zip(x, t).map(*).reduce(0, +)
        let w = (n * sxt - sx * st) / (n * sxx - sx * sx), b = (st - w * sx) / n
        let m = FiniteSum.leastSquares.minimum(over: data)
        #expect(abs(m.x - w) < 1e-12 && abs(m.y - b) < 1e-12)
        #expect(abs(w - 2) < 0.2 && abs(b + 1) < 0.2)  // the line the data were drawn from
        let logistic = FiniteSum.logistic.data(count: 400, seed: 4)
        let l = FiniteSum.logistic.minimum(over: logistic)
        let g = Self.gradient(.logistic, l, logistic)
        #expect(abs(g.x) < 1e-12 && abs(g.y) < 1e-12)
    }

    @Test("escapes: exact gradient descent stays in the shallow well of the double well; the count says so")
    func escapes() throws {
        var c = PathConfig(function: .test(.doubleWell))
        c.steps = 300
        var sgd = OptimizerSettings(.sgd)
        sgd.learningRate = 0.02
        c.optimizers = [PathConfig.Entry(label: "gd", settings: sgd, noise: 0, seeds: 5)]
        let runs = try PathLab.run(c)
        #expect(runs.count == 1)  // exact gradients: one run, whatever `seeds` says
        let land = Landscape(c)
        #expect(abs(Double(runs[0].last.x) - 0.96015) < 1e-3)
        #expect(PathLab.escapes(runs, land) == 0)
        #expect(land.nearestIsGlobal(-1, 0.3) && !land.nearestIsGlobal(0.5, 0))
    }
}

@Suite("Exponentially weighted averages")
struct MovingAverageTests {
    @Test("v_t = (1 − β) Σ_k β^(t−k) θ_k from v_0 = 0; corrected by 1 − βᵗ, a constant series averages to itself")
    func formula() {
        let x = MovingAverages.series(count: 60, seed: 3)
        for β in [0.5, 0.9, 0.98] {
            let v = MovingAverages.average(x, beta: β, corrected: false)
            let corrected = MovingAverages.average(x, beta: β, corrected: true)
            for t in [1, 2, 10, 60] {
                let direct = (1...t).map { k in (1 - β) * pow(β, Double(t - k)) * x[k - 1] }.reduce(0, +)
                #expect(abs(v[t - 1] - direct) <= 1e-12 * max(1, abs(direct)))
                #expect(abs(corrected[t - 1] - direct / (1 - pow(β, Double(t)))) <= 1e-12 * max(1, abs(direct)))
            }
            let constant = MovingAverages.average([Double](repeating: 7, count: 30), beta: β, corrected: true)
            #expect(constant.allSatisfy { abs($0 - 7) < 1e-12 })
            #expect(abs(MovingAverages.average([7], beta: β, corrected: false)[0] - 7 * (1 - β)) < 1e-12)
        }
    }
}
