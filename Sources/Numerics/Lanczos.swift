// Spectra of a symmetric operator known only through its products (the Hessian-vector product): Lanczos with full
// reorthogonalisation, Hutchinson's trace estimate and stochastic Lanczos quadrature. In Double, in one fixed order
// of operations, with probe vectors of signs from a seeded generator: every rank that applies the operator to the
// same vectors and gets the same products computes the same bits.
import Foundation

/// What k Lanczos iterations found: the Ritz values of the tridiagonal T_k and what goes with them.
public struct LanczosResult: Sendable {
    /// Ritz values, ascending.
    public var values: [Double]
    /// Unit Ritz vectors in the operator's space, in the order of `values` (empty unless asked for).
    public var vectors: [[Double]]
    /// |β_k · y_k[last]| per Ritz pair: the norm of A·x − θ·x, small once the pair has converged.
    public var residuals: [Double]
    /// The squared first components of T_k's eigenvectors: the Gauss quadrature weights of the start vector's
    /// spectral measure (they sum to 1).
    public var weights: [Double]
    /// Iterations taken (fewer than asked when an invariant subspace was found).
    public var iterations: Int
    /// α₁ = qᵀ·A·q for the normalised start q: for a start of n signs, vᵀ·A·v / n, a probe of the trace over n.
    public var firstRayleighQuotient: Double
}

public enum Lanczos {
    /// k iterations of Lanczos on the symmetric operator `apply` from `start` (normalised here), each new vector
    /// orthogonalised twice against all the previous ones (classical Gram–Schmidt, twice), so that the Ritz values
    /// do not repeat. Stops early when the next vector's norm falls below 1e-10 of the operator's scale.
    public static func run(start: [Double], iterations k: Int, vectors wanted: Bool = false,
                           apply: ([Double]) throws -> [Double]) rethrows -> LanczosResult {
        precondition(k >= 1 && !start.isEmpty)
        var basis = [scaled(start, 1 / norm(start))]
        var alphas: [Double] = [], betas: [Double] = []
        var scale = 0.0
        for j in 0..<k {
            var w = try apply(basis[j])
            let alpha = dot(w, basis[j])
            alphas.append(alpha)
            for _ in 0..<2 { for q in basis { subtract(dot(w, q), q, from: &w) } }
            let beta = norm(w)
            scale = max(scale, abs(alpha), beta)
            betas.append(beta)
            if j == k - 1 || !(beta > 1e-10 * scale) { break }
            basis.append(scaled(w, 1 / beta))
        }
        let m = alphas.count
        var t = [Double](repeating: 0, count: m * m)
        for i in 0..<m {
            t[i * m + i] = alphas[i]
            if i + 1 < m { (t[i * m + i + 1], t[(i + 1) * m + i]) = (betas[i], betas[i]) }
        }
        let (values, y) = SymmetricEigen.decompose(t, n: m)
        let last = betas[m - 1]
        var ritz: [[Double]] = []
        if wanted {
            for r in 0..<m {
                var x = [Double](repeating: 0, count: start.count)
                for j in 0..<m { subtract(-y[r * m + j], basis[j], from: &x) }
                ritz.append(scaled(x, 1 / norm(x)))
            }
        }
        return LanczosResult(values: values, vectors: ritz, residuals: (0..<m).map { abs(last * y[$0 * m + m - 1]) },
                             weights: (0..<m).map { y[$0 * m] * y[$0 * m] }, iterations: m,
                             firstRayleighQuotient: alphas[0])
    }

    /// Hutchinson's probes of the trace: vᵀ·A·v for `probes` Rademacher vectors v (entries ±1) from `seed`; their
    /// mean estimates the trace.
    public static func traceProbes(dimension n: Int, probes: Int, seed: UInt64,
                                   apply: ([Double]) throws -> [Double]) rethrows -> [Double] {
        var rng = Xoshiro256(seed: seed, stream: 0x7ACE)
        var samples: [Double] = []
        for _ in 0..<probes {
            let v = rademacher(n, &rng)
            samples.append(dot(v, try apply(v)))
        }
        return samples
    }

    /// Stochastic Lanczos quadrature (Ghorbani, Krishnan and Xiao 2019): `probes` Lanczos runs of `iterations`
    /// from Rademacher start vectors of `seed`; each gives nodes (Ritz values) and weights that sum to 1. The
    /// spectral density is their mean of Gaussians around the nodes (`SpectralDensity`).
    public static func density(dimension n: Int, probes: Int, iterations: Int, seed: UInt64,
                               apply: ([Double]) throws -> [Double]) rethrows -> SpectralDensity {
        var rng = Xoshiro256(seed: seed, stream: 0x5D05)
        var nodes: [(value: Double, weight: Double)] = []
        for _ in 0..<probes {
            let run = try Self.run(start: rademacher(n, &rng), iterations: iterations, apply: apply)
            nodes += zip(run.values, run.weights).map { ($0, $1 / Double(probes)) }
        }
        return SpectralDensity(nodes: nodes, dimension: n)
    }

    /// n entries ±1, one bit each.
    public static func rademacher(_ n: Int, _ rng: inout Xoshiro256) -> [Double] {
        var v = [Double](repeating: 0, count: n)
        var bits: UInt64 = 0
        for i in 0..<n {
            if i % 64 == 0 { bits = rng.next() }
            v[i] = bits & 1 == 0 ? 1 : -1
            bits >>= 1
        }
        return v
    }

    /// Σ a_i·b_i in four interleaved partial sums, added in a fixed order.
    public static func dot(_ a: [Double], _ b: [Double]) -> Double {
        precondition(a.count == b.count)
        var s = (0.0, 0.0, 0.0, 0.0)
        let n4 = a.count / 4 * 4
        a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                var i = 0
                while i < n4 {
                    s.0 += a[i] * b[i]
                    s.1 += a[i + 1] * b[i + 1]
                    s.2 += a[i + 2] * b[i + 2]
                    s.3 += a[i + 3] * b[i + 3]
                    i += 4
                }
                for j in n4..<a.count { s.0 += a[j] * b[j] }
            }
        }
        return (s.0 + s.1) + (s.2 + s.3)
    }

    public static func norm(_ a: [Double]) -> Double { dot(a, a).squareRoot() }

    static func scaled(_ a: [Double], _ c: Double) -> [Double] { a.map { $0 * c } }

    /// w ← w − c·q.
    public static func subtract(_ c: Double, _ q: [Double], from w: inout [Double]) {
        q.withUnsafeBufferPointer { q in
            w.withUnsafeMutableBufferPointer { w in
                for i in 0..<w.count { w[i] -= c * q[i] }
            }
        }
    }
}

/// A spectral density from stochastic Lanczos quadrature: weighted nodes, smoothed by Gaussians of one width.
public struct SpectralDensity: Sendable {
    /// Ritz values and their weights (divided by the number of probes, so that all of them sum to 1).
    public var nodes: [(value: Double, weight: Double)]
    /// The operator's dimension: the density times it counts eigenvalues.
    public var dimension: Int

    public init(nodes: [(value: Double, weight: Double)], dimension: Int) {
        (self.nodes, self.dimension) = (nodes, dimension)
    }

    /// The smallest and largest node.
    public var range: ClosedRange<Double> {
        let values = nodes.map(\.value)
        return (values.min() ?? 0)...(values.max() ?? 0)
    }

    /// PyHessian's width: σ² = 10⁻⁵·max(1, λ_max − λ_min).
    public var sigma: Double { (1e-5 * max(1, range.upperBound - range.lowerBound)).squareRoot() }

    /// The density at `points`: Σ w·N(t; node, σ²).
    public func values(at points: [Double]) -> [Double] {
        let s = sigma, norm = 1 / (s * (2 * Double.pi).squareRoot())
        return points.map { t in nodes.reduce(0) { $0 + $1.weight * norm * gaussianKernel((t - $1.value) / s) } }
    }

    /// Σ w·node·dimension: the trace that the quadrature implies.
    public var trace: Double { nodes.reduce(0) { $0 + $1.weight * $1.value } * Double(dimension) }
}

/// e^(−x²/2).
private func gaussianKernel(_ x: Double) -> Double { exp(-0.5 * x * x) }
