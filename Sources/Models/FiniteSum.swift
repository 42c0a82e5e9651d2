// The 2-D lab's finite sums: a loss over N samples (x, t) with two parameters θ = (w, b), trained by the real
// trainer (mini-batches, the exchange, the epoch plan), drawn on the contours of the full-data loss.
import Datasets
import Foundation
import Numerics

/// A problem of two parameters: the mean of a per-sample loss ℓ(w, b; x, t) over a seeded synthetic set.
public enum FiniteSum: String, CaseIterable, Sendable {
    /// ℓ = ½ (w·x + b − t)², with x ~ N(1, 1) and t = 2x − 1 + N(0, 0.5²): fitting a line, minimum near (2, −1).
    case leastSquares = "least-squares"
    /// ℓ = log(1 + e^z) − t·z with z = w·x + b, x ~ N(0, 2²) and t ~ Bernoulli(σ(1.5x + 0.5)): a 2-parameter
    /// logistic regression, minimum near (1.5, 0.5).
    case logistic

    /// The per-sample loss as people write it.
    public var formula: String {
        switch self {
        case .leastSquares: return "mean ½ (w·x + b − t)²"
        case .logistic: return "mean log(1 + e^z) − t·z, z = w·x + b"
        }
    }

    public var title: String { self == .leastSquares ? "Least squares" : "Logistic regression" }

    /// Where paths start, and the region pictures show.
    public var start: SIMD2<Double> { self == .leastSquares ? SIMD2(-1, 3) : SIMD2(-2, -2.5) }
    public var window: (x: ClosedRange<Double>, y: ClosedRange<Double>) {
        self == .leastSquares ? (-2...4, -3...4) : (-3...4, -3.5...3)
    }

    /// The samples: `count` of them from `seed` (the test set from another stream).
    public func data(count: Int, seed: UInt64, test: Bool = false) -> PointSet {
        var rng = Xoshiro256(seed: seed, stream: test ? 0x2D7E : 0x2D7A)
        var xs: [Float] = [], ts: [Float] = []
        for _ in 0..<count {
            switch self {
            case .leastSquares:
                let x = 1 + rng.nextGaussian()
                xs.append(Float(x))
                ts.append(Float(2 * x - 1 + 0.5 * rng.nextGaussian()))
            case .logistic:
                let x = 2 * rng.nextGaussian()
                let p = 1 / (1 + exp(-(1.5 * x + 0.5)))
                xs.append(Float(x))
                ts.append(rng.nextUnit() < p ? 1 : 0)
            }
        }
        return PointSet(xs: xs, targets: ts, summary: "\(rawValue) \(test ? "test" : "train") (\(count) points)")
    }

    /// ℓ for one sample, in Double.
    public func loss(_ w: Double, _ b: Double, x: Double, t: Double) -> Double {
        let z = w * x + b
        switch self {
        case .leastSquares: return 0.5 * (z - t) * (z - t)
        case .logistic: return softplus(z) - t * z
        }
    }

    /// The mean loss over `data` at (w, b), in Double: the surface the paths are drawn on.
    public func meanLoss(_ w: Double, _ b: Double, over data: PointSet) -> Double {
        var sum = 0.0
        for i in 0..<data.count { sum += loss(w, b, x: Double(data.xs[i]), t: Double(data.targets[i])) }
        return sum / Double(data.count)
    }

    /// ∇ of the mean loss over `data` at (w, b), in Double.
    public func meanGradient(_ w: Double, _ b: Double, over data: PointSet) -> SIMD2<Double> {
        var sum = SIMD2<Double>()
        for i in 0..<data.count {
            let x = Double(data.xs[i]), t = Double(data.targets[i]), z = w * x + b
            let r = self == .leastSquares ? z - t : 1 / (1 + exp(-z)) - t
            sum += SIMD2(r * x, r)
        }
        return sum / Double(data.count)
    }
}

extension FiniteSum {
    /// The Hessian of the mean loss over `data` at (w, b), in Double: (a, b, c) of [[a, b], [b, c]].
    public func meanHessian(_ w: Double, _ b: Double, over data: PointSet) -> SIMD3<Double> {
        var sum = SIMD3<Double>()
        for i in 0..<data.count {
            let x = Double(data.xs[i])
            let p = self == .leastSquares ? 1 : { let s = 1 / (1 + exp(-(w * x + b))); return s * (1 - s) }()
            sum += p * SIMD3(x * x, x, 1)
        }
        return sum / Double(data.count)
    }

    /// The minimiser of the mean loss over `data`, by Newton's method from (0, 0) (one step for least squares).
    public func minimum(over data: PointSet) -> SIMD2<Double> {
        var θ = SIMD2<Double>(0, 0)
        for _ in 0..<50 {
            let g = meanGradient(θ.x, θ.y, over: data), h = meanHessian(θ.x, θ.y, over: data)
            let det = h.x * h.z - h.y * h.y
            let step = SIMD2(h.z * g.x - h.y * g.y, h.x * g.y - h.y * g.x) / det
            θ -= step
            if abs(step.x) + abs(step.y) < 1e-15 * (1 + abs(θ.x) + abs(θ.y)) { break }
        }
        return θ
    }
}

/// log(1 + eᶻ) without overflow.
func softplus(_ z: Double) -> Double { z > 0 ? z + log1p(exp(-z)) : log1p(exp(z)) }

/// The model of a finite sum: θ = (w, b), starting at a given point; its loss and gradient in Float, summed over
/// the rows in order.
public final class TwoParameterModel: Model {
    public let problem: FiniteSum
    public let start: SIMD2<Float>
    public var parameterCount: Int { 2 }
    public var parameterSummary: [String] { ["w (1)", "b (1)"] }
    public var shapeText: String { "\(problem.rawValue) (w, b)" }

    public init(_ problem: FiniteSum, start: SIMD2<Float>) {
        self.problem = problem
        self.start = start
    }

    public func initialParameters(seed: UInt64) -> [Float] { [start.x, start.y] }

    /// Rows of [x, t], as the dataset fills them.
    final class Rows {
        let capacity: Int
        var features: [Float]
        var labels: [Int32]
        init(capacity: Int) {
            self.capacity = capacity
            features = [Float](repeating: 0, count: 2 * capacity)
            labels = [Int32](repeating: 0, count: capacity)
        }
    }

    public func makeWorkspace(capacity: Int) -> AnyObject { Rows(capacity: max(1, capacity)) }

    public func accumulateGradient(parameters: UnsafePointer<Float>, gradient: UnsafeMutablePointer<Float>, dataset: Dataset,
                                   indices: UnsafeBufferPointer<Int32>, workspace: AnyObject, overwrite: Bool) -> LossTotals {
        var g = overwrite ? SIMD2<Float>() : SIMD2(gradient[0], gradient[1])
        let totals = passes(parameters, dataset, indices, workspace) { r, x, _ in g += SIMD2(r * x, r) }
        if overwrite && indices.isEmpty { return totals }
        (gradient[0], gradient[1]) = (g.x, g.y)
        return totals
    }

    public func evaluate(parameters: UnsafePointer<Float>, dataset: Dataset, indices: UnsafeBufferPointer<Int32>,
                         workspace: AnyObject) -> LossTotals {
        passes(parameters, dataset, indices, workspace) { _, _, _ in }
    }

    /// Every row's loss into the totals, and its residual r = ∂ℓ/∂z, its x and its curvature ∂²ℓ/∂z² to `each`.
    private func passes(_ theta: UnsafePointer<Float>, _ dataset: Dataset, _ indices: UnsafeBufferPointer<Int32>,
                        _ workspace: AnyObject, each: (Float, Float, Float) -> Void) -> LossTotals {
        let rows = unsafeDowncast(workspace, to: Rows.self)
        let w = theta[0], b = theta[1]
        var totals = LossTotals()
        var start = 0
        while start < indices.count {
            let n = min(rows.capacity, indices.count - start)
            rows.features.withUnsafeMutableBufferPointer { f in
                rows.labels.withUnsafeMutableBufferPointer { l in
                    dataset.fill(UnsafeBufferPointer(rebasing: indices[start..<(start + n)]), features: f.baseAddress!, labels: l.baseAddress!)
                }
            }
            for row in 0..<n {
                let x = rows.features[2 * row], t = rows.features[2 * row + 1], z = w * x + b
                switch problem {
                case .leastSquares:
                    let r = z - t
                    totals.lossSum += Double(0.5 * r * r)
                    each(r, x, 1)
                case .logistic:
                    let p = 1 / (1 + expf(-z))
                    totals.lossSum += Double((z > 0 ? z + log1pf(expf(-z)) : log1pf(expf(z))) - t * z)
                    if (z > 0) == (t == 1) { totals.correct += 1 }
                    each(p - t, x, p * (1 - p))
                }
            }
            totals.count += n
            start += n
        }
        return totals
    }
}

extension TwoParameterModel: CurvatureModel {
    /// ℓ(w·x + b) has the Hessian ℓ''(z)·(x, 1)(x, 1)ᵀ, so H·v = ℓ''(z)·(x·v_w + v_b)·(x, 1): the model is linear in
    /// θ, and the Gauss–Newton product is the same.
    public func accumulateHessianVectorProduct(parameters: UnsafePointer<Float>, direction: UnsafePointer<Float>,
                                               product: UnsafeMutablePointer<Float>, dataset: Dataset,
                                               indices: UnsafeBufferPointer<Int32>, workspace: AnyObject, overwrite: Bool,
                                               gaussNewton: Bool) -> LossTotals {
        var h = overwrite ? SIMD2<Float>() : SIMD2(product[0], product[1])
        let (vw, vb) = (direction[0], direction[1])
        let totals = passes(parameters, dataset, indices, workspace) { _, x, c in h += c * (x * vw + vb) * SIMD2(x, 1) }
        if overwrite && indices.isEmpty { return totals }
        (product[0], product[1]) = (h.x, h.y)
        return totals
    }
}
