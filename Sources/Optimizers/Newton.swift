// Second-order steps from Hessian-vector products: Newton's method and saddle-free Newton (Dauphin et al. 2014) on
// the dense Hessian of a small model, and Hessian-free Newton-CG with Levenberg–Marquardt damping (Martens 2010)
// for networks. A step asks for products H·v (or Gauss–Newton products) and losses at its own points through
// closures: in training each is one data-parallel pass over the step's batch.
import Numerics

/// `newton`: θ ← θ − η·(H + λI)⁻¹·g; `saddle-free-newton`: θ ← θ − η·(|H| + λI)⁻¹·g, |H| = Q·|Λ|·Qᵀ, so that each
/// eigendirection is scaled by 1/|λ| and negative curvature is descended instead of climbed; both form H from n
/// products with the unit vectors and decompose it (descent's own symmetric eigendecomposition, in Double).
/// `newton-cg`: truncated conjugate gradients on (B + λI)·p = −g (B the Hessian, or the Gauss–Newton matrix with
/// `gauss_newton`) for at most `cg_iterations`, stopping at a relative residual of `cg_tolerance` or at a direction
/// of non-positive curvature; then the loss at θ + η·p against the quadratic model's prediction,
/// ρ = (L(θ + ηp) − L(θ)) / (ηgᵀp + ½η²pᵀBp): λ ← 3λ/2 when ρ < 1/4, 2λ/3 when ρ > 3/4, and the step is taken only
/// when the loss fell. The damping λ is its state (`damping`).
public final class Newton: Optimizer {
    public let name: String
    public let settings: OptimizerSettings
    public var learningRate: Double
    public private(set) var stepCount = 0
    /// The damping λ: `damping` for newton and saddle-free newton, adapted by newton-cg.
    public private(set) var damping: Double
    /// Products and loss evaluations since the start of the run, and newton-cg's rejected steps.
    public private(set) var products = 0, evaluations = 0, rejected = 0
    let count: Int

    /// H·v (or G·v) at the step's point, over the step's samples.
    public typealias Product = (_ v: [Double]) throws -> [Double]
    /// The loss at a point, over the step's samples.
    public typealias Loss = (_ point: UnsafeBufferPointer<Float>) throws -> Double

    /// The largest model the dense rules accept: they take one product per parameter each step.
    public static let denseLimit = 2000

    public init(_ settings: OptimizerSettings, parameterCount: Int) {
        (self.settings, count, name) = (settings, parameterCount, settings.kind.rawValue)
        learningRate = settings.learningRate
        damping = settings.damping
    }

    /// A rule that needs products cannot step from a gradient alone.
    public func update(_ parameters: UnsafeMutableBufferPointer<Float>, gradient: UnsafeBufferPointer<Float>) {
        preconditionFailure("\(name) steps with Hessian-vector products (`step(_:loss:gradient:product:evaluate:)`)")
    }

    /// One step from θ, whose loss and gradient over the step's samples are given.
    public func step(_ θ: UnsafeMutableBufferPointer<Float>, loss: Double, gradient: [Float], product: Product, evaluate: Loss) throws {
        stepCount += 1
        let g = gradient.map(Double.init)
        let counted: Product = { v in self.products += 1; return try product(v) }
        let p: [Double]
        if settings.kind == .newtonCG {
            p = try truncatedNewton(θ, loss: loss, g, counted, evaluate)
        } else {
            p = try denseStep(g, counted)
        }
        for i in 0..<count { θ[i] += Float(learningRate * p[i]) }
    }

    /// −(H + λI)⁻¹·g or −(|H| + λI)⁻¹·g through the eigendecomposition of H, built column by column.
    func denseStep(_ g: [Double], _ product: Product) throws -> [Double] {
        let n = count
        var h = [Double](repeating: 0, count: n * n)
        for j in 0..<n {
            var e = [Double](repeating: 0, count: n)
            e[j] = 1
            let column = try product(e)
            for i in 0..<n { h[i * n + j] = column[i] }
        }
        for i in 0..<n {
            for j in 0..<i {
                let mean = (h[i * n + j] + h[j * n + i]) / 2
                (h[i * n + j], h[j * n + i]) = (mean, mean)
            }
        }
        let (values, q) = SymmetricEigen.decompose(h, n: n)
        var p = [Double](repeating: 0, count: n)
        for k in 0..<n {
            let curvature = (settings.kind == .saddleFreeNewton ? abs(values[k]) : values[k]) + damping
            var c = 0.0
            for i in 0..<n { c += q[k * n + i] * g[i] }
            for i in 0..<n { p[i] -= q[k * n + i] * c / curvature }
        }
        return p
    }

    /// Truncated CG for (B + λI)·p = −g, then the damping's update by the reduction ratio; a step whose loss did
    /// not fall comes back as zeros.
    func truncatedNewton(_ θ: UnsafeMutableBufferPointer<Float>, loss: Double, _ g: [Double], _ product: Product,
                         _ evaluate: Loss) throws -> [Double] {
        let n = count, λ = damping
        var p = [Double](repeating: 0, count: n), ap = p
        var r = g.map { -$0 }, d = r
        var rr = Lanczos.dot(r, r)
        let stop = settings.cgTolerance * settings.cgTolerance * rr
        var iterations = 0
        while iterations < Int(settings.cgIterations) && rr > stop {
            iterations += 1
            let bd = try product(d)
            var ad = bd
            for i in 0..<n { ad[i] += λ * d[i] }
            let curvature = Lanczos.dot(d, ad)
            guard curvature > 0 else { break }
            let α = rr / curvature
            for i in 0..<n { p[i] += α * d[i]; ap[i] += α * ad[i]; r[i] -= α * ad[i] }
            let next = Lanczos.dot(r, r)
            for i in 0..<n { d[i] = r[i] + next / rr * d[i] }
            rr = next
        }
        // The model's prediction for θ + ηp with the undamped B: pᵀBp = pᵀ(B + λI)p − λpᵀp.
        let η = learningRate
        let predicted = η * Lanczos.dot(g, p) + 0.5 * η * η * (Lanczos.dot(p, ap) - λ * Lanczos.dot(p, p))
        var trial = Array(θ)
        for i in 0..<n { trial[i] += Float(η * p[i]) }
        evaluations += 1
        let after = try trial.withUnsafeBufferPointer { try evaluate($0) }
        let ρ = predicted < 0 ? (after - loss) / predicted : 0
        if ρ < 0.25 { damping = λ * 1.5 } else if ρ > 0.75 { damping = λ * 2 / 3 }
        guard after < loss else {
            rejected += 1
            return [Double](repeating: 0, count: n)
        }
        return p
    }

    public func state() -> OptimizerState {
        OptimizerState(name: name, step: stepCount, buffers: [:],
                       scalars: ["damping": damping, "products": Double(products), "evaluations": Double(evaluations),
                                 "rejected": Double(rejected)])
    }

    public func restore(_ saved: OptimizerState) throws {
        try checkName(saved, name)
        guard let λ = saved.scalars["damping"], λ >= 0, λ.isFinite, saved.buffers.isEmpty else {
            throw OptimizerStateError(detail: "'\(name)' state needs a finite damping ≥ 0 and no buffers")
        }
        func whole(_ key: String) -> Int {
            let x = saved.scalars[key] ?? 0
            return x >= 0 && x < 1e15 && x == x.rounded() ? Int(x) : 0
        }
        (stepCount, damping, products, evaluations, rejected) = (saved.step, λ, whole("products"), whole("evaluations"), whole("rejected"))
    }
}
