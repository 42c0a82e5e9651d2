// `descent path`: runs optimizers on a 2-D test function with the same optimizer code that trains networks
// (OptimizerSettings.makeOptimizer over a 2-element Float buffer). The lab's parts: the runs (here), the surface
// they run on (PathLandscape.swift), the charts and their legends (PathCharts.swift), the files and the console
// summary (PathOutputs.swift).
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
                case .test(let f): t = analyticPath(config, f, entry, seed: config.seed &+ UInt64(k))
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

    /// One entry on an analytic function: exact gradients, plus the entry's noise.
    static func analyticPath(_ config: PathConfig, _ f: TestFunction, _ entry: PathConfig.Entry, seed: UInt64) -> Trajectory {
        let optimizer = entry.settings.makeOptimizer(parameterCount: 2)
        let σ = config.noise(of: entry)
        var θ: [Float] = [Float(config.start.x), Float(config.start.y)]
        var noise = Xoshiro256(seed: seed, stream: 0x7A7B)
        var points = [Trajectory.Point(step: 0, x: θ[0], y: θ[1], f: f.value(Double(θ[0]), Double(θ[1])))]
        var diverged: Int?
        /// The gradient at (x, y), with the entry's noise.
        func gradient(_ x: Float, _ y: Float) -> [Float] {
            var exact = f.gradient(Double(x), Double(y))
            if σ > 0 { exact += σ * SIMD2(noise.nextGaussian(), noise.nextGaussian()) }
            return [Float(exact.x), Float(exact.y)]
        }
        for step in 1...config.steps {
            if entry.cosine {
                optimizer.learningRate = LearningRateSchedule(kind: .cosine).rate(step: step, base: entry.settings.learningRate,
                                                                                  totalSteps: config.steps)
            }
            if let newton = optimizer as? Newton {
                // Exact products with the function's Hessian at θ, and f wherever a trial step asks.
                let h = f.hessian(Double(θ[0]), Double(θ[1]))
                let g = gradient(θ[0], θ[1])
                try? θ.withUnsafeMutableBufferPointer { p in
                    try newton.step(p, loss: Double(Float(f.value(Double(p[0]), Double(p[1])))), gradient: g,
                                    product: { v in [h.x * v[0] + h.y * v[1], h.y * v[0] + h.z * v[1]] },
                                    evaluate: { q in Double(Float(f.value(Double(q[0]), Double(q[1])))) })
                }
            } else if let lbfgs = optimizer as? LBFGS {
                // A rule that evaluates again: its closure gives f and the gradient wherever it asks.
                _ = θ.withUnsafeMutableBufferPointer { p in
                    lbfgs.step(p) { q in (Double(Float(f.value(Double(q[0]), Double(q[1])))), gradient(q[0], q[1])) }
                }
            } else {
                optimizer.update(&θ, gradient: gradient(θ[0], θ[1]))
            }
            // The model's point: Schedule-Free's average x, not the point y its gradients are taken at.
            let p = optimizer.modelPoint() ?? θ
            let value = f.value(Double(p[0]), Double(p[1]))
            guard isSane(p[0], p[1], value) else {
                diverged = step
                break
            }
            points.append(Trajectory.Point(step: step, x: p[0], y: p[1], f: value))
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
        var failure: Error?
        trainer.afterStep = { [unowned trainer] step, replicas in
            guard diverged == nil, failure == nil else { return }
            // The model's point: Schedule-Free's average x, not the point y its gradients are taken at.
            let θ: [Float]
            do { θ = try trainer.modelParameters(replicas[0]) } catch { return failure = error }
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
        if let failure { throw failure }
        let losses = trainer.history.filter { $0.kind == .epoch }.compactMap { row in row.trainLoss.map { (row.step, $0) } }
        return Trajectory(label: entry.label, settings: entry.settings, points: points, divergedAt: diverged, epochLosses: losses)
    }
}
