// The gradient noise scale estimator on a synthetic problem whose gradient mean and covariance are known.
import DescentTestSupport
import Numerics
import Testing
@testable import Config
@testable import Experiments
@testable import Training

@Suite struct NoiseScaleTests {
    @Test("tr(Σ) and |G|² estimates are unbiased for uneven shards (within 4 standard errors over 20 000 steps)")
    func unbiased() throws {
        // Per-sample gradients g = G + σ ⊙ z, z ~ N(0, I): tr(Σ) = Σ σ², |G|² known.
        let G: [Double] = [0.5, -0.2, 0.1], sigma: [Double] = [1.0, 0.5, 2.0]
        let trueTrace = sigma.map { $0 * $0 }.reduce(0, +)            // 5.25
        let trueNorm = G.map { $0 * $0 }.reduce(0, +)                  // 0.30
        let shards = [5, 9, 14, 0]                                    // an empty rank is left out
        var rng = Xoshiro256(seed: 7)
        var traces: [Double] = [], norms: [Double] = []
        for _ in 0..<20_000 {
            var total = [Double](repeating: 0, count: 3), localSquares = 0.0
            for b in shards where b > 0 {
                var local = [Double](repeating: 0, count: 3)
                for _ in 0..<b {
                    for d in 0..<3 { local[d] += G[d] + sigma[d] * rng.nextGaussian() }
                }
                localSquares += local.map { ($0 / Double(b)) * ($0 / Double(b)) }.reduce(0, +)
                for d in 0..<3 { total[d] += local[d] }
            }
            let n = Double(shards.reduce(0, +))
            let global = total.map { ($0 / n) * ($0 / n) }.reduce(0, +)
            let e = try #require(NoiseScale.estimate(localSquaredNormSum: localSquares, localCounts: shards, globalSquaredNorm: global))
            traces.append(e.trace)
            norms.append(e.gradientSquaredNorm)
        }
        func meanAndError(_ x: [Double]) -> (Double, Double) {
            let m = x.reduce(0, +) / Double(x.count)
            let v = x.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(x.count - 1)
            return (m, (v / Double(x.count)).squareRoot())
        }
        let (trace, traceError) = meanAndError(traces), (norm, normError) = meanAndError(norms)
        #expect(abs(trace - trueTrace) < 4 * traceError, "tr(Σ): \(trace) ± \(traceError), true \(trueTrace)")
        #expect(abs(norm - trueNorm) < 4 * normError, "|G|²: \(norm) ± \(normError), true \(trueNorm)")
        // The naive |ḡ|² is biased by tr(Σ)/B = 0.1875: the test can tell the difference.
        #expect(abs((norm + trace / 28) - trueNorm) > 4 * normError)
        var window = NoiseScale()
        for k in traces.indices { window.add((norms[k], traces[k])) }
        #expect(abs(window.value! - trueTrace / trueNorm) < 0.05 * trueTrace / trueNorm)
    }

    @Test("one rank with samples gives no estimate")
    func needsTwoRanks() {
        #expect(NoiseScale.estimate(localSquaredNormSum: 1, localCounts: [32], globalSquaredNorm: 1) == nil)
        #expect(NoiseScale.estimate(localSquaredNormSum: 1, localCounts: [32, 0], globalSquaredNorm: 1) == nil)
        #expect(NoiseScale().value == nil)
    }
}
