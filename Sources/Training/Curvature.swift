// Curvature measured while training: the sharpness (the Hessian's largest eigenvalue), its smallest eigenvalue and
// its trace, for the mean loss over a fixed, seeded subset of the training set. Every Hessian-vector product is one
// data-parallel pass whose chunk sums travel through the gradient exchange, so H·v, the Lanczos iterations that use
// it and the results have the same bits at any number of ranks.
import Collectives
import Config
import Datasets
import Foundation
import Models
import Numerics
import Optimizers

/// One measurement of the Hessian of a replica's mean loss over the curvature subset.
public struct CurvatureReading: Sendable {
    /// The largest eigenvalues, largest first (`curvature.top_k` of them, fewer when Lanczos stopped early).
    public var top: [Double]
    /// The smallest Ritz value: the most negative eigenvalue once Lanczos has converged at that end.
    public var lambdaMin: Double
    /// Hutchinson's estimate of the trace, and its standard error with two probes or more.
    public var trace: Double
    public var traceError: Double?
    /// ‖H·x − λ·x‖ of each top pair, as Lanczos bounds it.
    public var residuals: [Double]
    /// For Adam, AdamW and RMSProp: λ_max(P⁻¹H) with the rule's current preconditioner P, and the threshold it
    /// must stay below for the rule to be stable (Cohen et al. 2022).
    public var preconditionedSharpness: Double?
    public var preconditionedThreshold: Double?
    /// Hessian-vector products taken, and the seconds they and the iterations took.
    public var products: Int
    public var seconds: Double

    public var sharpness: Double { top.first ?? .nan }
}

extension Trainer {
    /// The curvature subset: `curvature.subset` training samples drawn without replacement from the seed, in
    /// ascending order (all of them when the set has no more).
    func curvatureSamples() -> [Int32] {
        SubsetDataset.sampleIndices(min(config.curvature.subset, trainSet.count), of: trainSet.count, seed: config.seed, stream: 0xC0A7)
    }

    /// H·v for the mean loss over `samples` at `point` (replica `r`'s slot of the exchange; the others add
    /// nothing): one pass over the samples in the exchange's chunks.
    func hessianProduct(_ r: Int, at point: [Float], _ v: [Double], samples: [Int32], gaussNewton: Bool = false) throws -> [Double] {
        guard let model = model as? CurvatureModel else { preconditionFailure("the setup checks that the model has Hessian-vector products") }
        let direction = v.map(Float.init)
        try samples.withUnsafeBufferPointer { order in
            _ = try exchange.exchange(count: samples.count, measureNoise: false, requestStop: false, wholeGradient: true,
                                      over: communicator) { rr, positions, product in
                guard rr == r, !positions.isEmpty else {
                    product.update(repeating: 0, count: model.parameterCount)
                    return 0
                }
                return point.withUnsafeBufferPointer { θ in
                    direction.withUnsafeBufferPointer { v in
                        model.accumulateHessianVectorProduct(
                            parameters: θ.baseAddress!, direction: v.baseAddress!, product: product, dataset: trainSet,
                            indices: UnsafeBufferPointer(rebasing: order[positions]), workspace: workspace, overwrite: true,
                            gaussNewton: gaussNewton).lossSum
                    }
                }
            }
        }
        return exchange.withGradient(replica: r) { $0.map(Double.init) }
    }

    /// Lanczos from a Rademacher start (its first Rayleigh quotient is a Hutchinson probe of the trace) and
    /// `curvature.trace_probes` more probes, at replica `r`'s model parameters; the probes come from the seed and
    /// the step, so every rank draws the same.
    func measureCurvature(_ r: Int, step: Int, samples: [Int32]) throws -> CurvatureReading {
        let start = monotonicSeconds()
        let point = try modelParameters(replicas[r])
        let n = point.count, c = config.curvature
        var products = 0
        let apply = { (v: [Double]) throws -> [Double] in
            products += 1
            return try self.hessianProduct(r, at: point, v, samples: samples)
        }
        var rng = Xoshiro256(seed: config.seed &+ UInt64(step), stream: 0x1A2C)
        let lanczos = try Lanczos.run(start: Lanczos.rademacher(n, &rng), iterations: c.iterations, apply: apply)
        let k = min(c.topK, lanczos.values.count)
        let top = Array(lanczos.values.reversed().prefix(k)), residuals = Array(lanczos.residuals.reversed().prefix(k))
        // The first Lanczos vector is v/√n, so vᵀHv = n·α₁: the start is a Hutchinson probe too.
        let probes = [lanczos.firstRayleighQuotient * Double(n)]
            + (try Lanczos.traceProbes(dimension: n, probes: c.traceProbes, seed: config.seed &+ UInt64(step), apply: apply))
        let spread = Spread(probes)
        // λ_max(P⁻¹H) = λ_max(P^(−1/2)·H·P^(−1/2)): Lanczos on the symmetric form, from the same start.
        var preconditioned: (sharpness: Double, threshold: Double)?
        if c.preconditioned, let p = try preconditioner(r) {
            let s = p.diagonal.map { 1 / $0.squareRoot() }
            rng = Xoshiro256(seed: config.seed &+ UInt64(step), stream: 0x1A2C)
            let run = try Lanczos.run(start: Lanczos.rademacher(n, &rng), iterations: c.iterations) { v in
                zip(try apply(zip(v, s).map { $0 * $1 }), s).map { $0 * $1 }
            }
            preconditioned = (run.values.last ?? .nan, p.threshold)
        }
        return CurvatureReading(top: top, lambdaMin: lanczos.values.first ?? .nan, trace: spread?.mean ?? .nan,
                                traceError: probes.count > 1 ? spread.map { $0.std / Double(probes.count).squareRoot() } : nil,
                                residuals: residuals, preconditionedSharpness: preconditioned?.sharpness,
                                preconditionedThreshold: preconditioned?.threshold, products: products, seconds: monotonicSeconds() - start)
    }
}

extension Trainer {
    /// The diagonal preconditioner P of replica `r`'s adaptive rule in its current state, written so that its update
    /// is θ ← θ − η·P⁻¹·m (Cohen et al. 2022), and the threshold λ_max(P⁻¹H) must stay below: for Adam and AdamW
    /// (torch's form) P = (1 − β1ᵗ)·(√(v/(1 − β2ᵗ)) + ε) and (2 + 2β1) / ((1 − β1)·η); for RMSProp without momentum
    /// P = √v + ε and 2/η. nil for other rules, and before the first step (v is still zero). Gathers a sharded v
    /// (a collective).
    func preconditioner(_ r: Int) throws -> (diagonal: [Double], threshold: Double)? {
        let replica = replicas[r], h = replica.config.optimizer, t = replica.optimizer.stepCount
        guard t > 0, h.variant == .torch else { return nil }
        let rate = rates.rate(replica: r, step: t)
        switch h.kind {
        case .adam, .adamw:
            let v = try wholeOptimizerState(replica).buffers[(h.amsgrad ? StateBuffer.maxExpAvgSq : .expAvgSq).rawValue] ?? []
            let c1 = 1 - pow(h.beta1, Double(t)), c2 = 1 - pow(h.beta2, Double(t))
            return (v.map { c1 * ((Double($0) / c2).squareRoot() + h.eps) }, (2 + 2 * h.beta1) / ((1 - h.beta1) * rate))
        case .rmsprop where h.momentum == 0 && !h.centered:
            let v = try wholeOptimizerState(replica).buffers[StateBuffer.squareAvg.rawValue] ?? []
            return (v.map { Double($0).squareRoot() + h.eps }, 2 / rate)
        default:
            return nil
        }
    }

    /// A curvature row per replica still training, with its console line; the time counts as evaluation (`eval_s`).
    func writeCurvatureRows(_ position: inout RunPosition) throws {
        communicator.setContext(step: position.step, phase: "curvature")
        let start = monotonicSeconds()
        defer { position.evaluation += monotonicSeconds() - start }
        let samples = curvatureSamples()
        for (r, replica) in replicas.enumerated() where replica.end == nil {
            let reading = try measureCurvature(r, step: position.step, samples: samples)
            let rate = rates.rate(replica: r, step: max(position.step, 1))  // before step 1: the first step's
            try replica.write(MetricsRow(
                kind: .curvature, step: position.step, epoch: Double(position.samples) / Double(trainSet.count),
                samples: position.samples, wallSeconds: wallSeconds(), learningRate: rate,
                evaluationSeconds: position.evaluation + monotonicSeconds() - start, sharpness: reading.sharpness,
                lambdaMin: reading.lambdaMin, hessianTrace: reading.trace, topEigenvalues: reading.top,
                preconditionedSharpness: reading.preconditionedSharpness, preconditionedThreshold: reading.preconditionedThreshold))
            console.note((replicas.count > 1 ? "\(replica.label): " : "") + "step \(position.step): sharpness "
                         + reading.top.map { significant($0, 4) }.joined(separator: ", ") + " (2/lr \(significant(2 / rate, 4))), "
                         + "λ_min \(significant(reading.lambdaMin, 3)), trace \(significant(reading.trace, 3)) "
                         + (reading.preconditionedSharpness.map { "λ_max(P⁻¹H) \(significant($0, 4)) (threshold \(significant(reading.preconditionedThreshold!, 4))) " } ?? "")
                         + "(\(reading.products) Hessian-vector products over \(samples.count) samples, \(fixed(reading.seconds, 2)) s)")
        }
    }
}

/// Where a run's sharpness stands against gradient descent's stability threshold 2/η (Cohen et al. 2021): the first
/// measurement at or above 0.9 × 2/η, and the median of sharpness × η/2 from there on.
public struct StabilityEdge: Equatable, Sendable {
    /// The step of the first curvature row with sharpness ≥ 0.9 × 2/η (nil: never).
    public var firstStep: Int?
    /// The median of sharpness / (2/η) over the rows from `firstStep` on, and how many there were.
    public var medianRatio: Double?
    public var rows: Int

    public init(_ history: [MetricsRow]) {
        let ratios = history.filter { $0.kind == .curvature }.compactMap { r in r.sharpness.map { (r.step, $0 * r.learningRate / 2) } }
        let first = ratios.firstIndex { $0.1 >= 0.9 }
        firstStep = first.map { ratios[$0].0 }
        let after = first.map { ratios[$0...].map(\.1) } ?? []
        medianRatio = Spread(after)?.median
        rows = after.count
    }

    /// "reached 0.9 × 2/η at step 150; median sharpness since then 1.07 × 2/η (12 measurements)".
    public var text: String {
        guard let firstStep, let medianRatio else { return "sharpness stayed below 0.9 × 2/η" }
        return "reached 0.9 × 2/η at step \(firstStep); median sharpness since then \(fixed(medianRatio, 2)) × 2/η (\(rows) measurements)"
    }
}
