// The simple gradient noise scale B_simple = tr(Σ) / |G|² (McCandlish et al. 2018, 'An Empirical Model of
// Large-Batch Training', appendix A), estimated from what a data-parallel step already has: each rank's local
// mean gradient over its b_i samples and the global mean over all B.
import Config

/// Unbiased estimates of |G|² and tr(Σ) from one step, and their running sums over a window of steps.
public struct NoiseScale: Codable, Sendable {
    /// One step's estimates.
    ///
    /// With E|g_i|² = |G|² + tr(Σ)/b_i for a rank's mean over b_i samples and E|ḡ|² = |G|² + tr(Σ)/B for the
    /// global mean, averaging the P ranks that hold samples gives
    ///     tr(Σ) ≈ (mean_i |g_i|² − |ḡ|²) / (mean_i 1/b_i − 1/B),     |G|² ≈ |ḡ|² − tr(Σ)/B,
    /// both unbiased (the paper's two-batch-size estimator, with the small batches being the ranks' shards, of
    /// any sizes). Needs at least two ranks with samples; returns nil otherwise.
    ///
    /// - Parameters:
    ///   - localSquaredNormSum: Σ_i |g_i|² over the ranks with samples.
    ///   - localCounts: every rank's b_i (ranks with 0 are left out).
    ///   - globalSquaredNorm: |ḡ|² of the global mean gradient.
    public static func estimate(localSquaredNormSum: Double, localCounts: [Int], globalSquaredNorm: Double)
        -> (gradientSquaredNorm: Double, trace: Double)? {
        // (a loop, not filter and map: this runs inside a training step, which allocates nothing)
        var (nonEmpty, total, inverseSum) = (0, 0.0, 0.0)
        for c in localCounts where c > 0 {
            nonEmpty += 1
            total += Double(c)
            inverseSum += 1 / Double(c)
        }
        guard nonEmpty >= 2 else { return nil }
        let p = Double(nonEmpty)
        let meanInverse = inverseSum / p
        let denominator = meanInverse - 1 / total
        guard denominator > 0 else { return nil }
        let trace = (localSquaredNormSum / p - globalSquaredNorm) / denominator
        return (globalSquaredNorm - trace / total, trace)
    }

    public private(set) var gradientSquaredNormSum = 0.0
    public private(set) var traceSum = 0.0
    public private(set) var steps = 0

    public init() {}

    public mutating func add(_ e: (gradientSquaredNorm: Double, trace: Double)) {
        gradientSquaredNormSum += e.gradientSquaredNorm
        traceSum += e.trace
        steps += 1
    }

    /// B_simple over the window: the ratio of the mean estimates (the paper averages numerator and denominator
    /// separately, since each is unbiased but their per-step ratio is not). nil without steps or when the
    /// |G|² estimate is not positive (the window is too short for the noise).
    public var value: Double? {
        guard steps > 0, gradientSquaredNormSum > 0 else { return nil }
        return traceSum / gradientSquaredNormSum
    }
}
