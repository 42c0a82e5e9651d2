// The hyperparameters of a study's trials — a log grid or a scrambled Halton sequence — and McCandlish et al.'s
// fit of steps against batch size.
import Config
import Foundation
import Numerics

/// Points of a search: each trial's learning rate and, when searched, its momentum (or β1).
public enum SearchPlan {
    public struct Point: Equatable, Sendable {
        public var learningRate: Double
        public var momentum: Double?
        /// The value of each key of `study.search_space`, in its order.
        public var values: [Double] = []
    }

    /// The Halton bases of the search_space keys: the primes after the rate's 2 and the momentum's 3.
    static let bases = [5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43]

    /// `count` points in `rates` (log-uniform) and `momentum` (1 − β log-uniform): a grid (rates evenly spaced
    /// in log, ends included; with momentum, the rates cycle through the grid as momentum steps along its own) or
    /// the first `count` points of a Halton sequence in bases 2 and 3, scrambled by `seed`.
    public static func points(_ search: StudyConfig.Search, count: Int, rates: SearchRange, momentum: SearchRange?,
                              space: [StudyConfig.Dimension] = [], seed: UInt64) -> [Point] {
        let unit: [(Double, Double)]
        switch search {
        case .grid:
            func spaced(_ k: Int, _ n: Int) -> Double { n == 1 ? 0.5 : Double(k) / Double(n - 1) }
            if momentum == nil {
                unit = (0..<count).map { (spaced($0, count), 0.5) }
            } else {
                // As square a grid as the budget allows: rates × momenta.
                let m = max(1, Int(Double(count).squareRoot().rounded(.down)))
                let r = (count + m - 1) / m
                unit = (0..<count).map { (spaced($0 % r, r), spaced($0 / r, m)) }
            }
        case .quasirandom:
            let h2 = ScrambledHalton(base: 2, seed: seed), h3 = ScrambledHalton(base: 3, seed: seed)
            unit = (0..<count).map { (h2[$0], h3[$0]) }
        }
        // Further keys only with the quasirandom search (the config refuses them on a grid).
        let more = space.indices.map { ScrambledHalton(base: bases[$0], seed: seed) }
        return unit.enumerated().map { k, u in
            Point(learningRate: logUniform(u.0, rates),
                  momentum: momentum.map { 1 - logUniform(1 - u.1, SearchRange(1 - $0.high, 1 - $0.low)) },
                  values: zip(space, more).map { d, h in d.value(at: h[k]) })
        }
    }

    /// The value at `u` ∈ [0, 1] of a log-uniform range, rounded to 4 significant digits.
    static func logUniform(_ u: Double, _ r: SearchRange) -> Double {
        rounded(exp(log(r.low) + u * (log(r.high) - log(r.low))))
    }

    /// A searched value rounded to 4 significant digits, so that it prints and reads back exactly.
    static func rounded(_ v: Double) -> Double { Double(String(format: "%.4g", v))! }
}

/// A Halton sequence in one base with its digits scrambled: digit position j is mapped through its own random
/// permutation of 0..<base, drawn from the seed (Owen-style scrambling restricted to one permutation per digit
/// position). The first point of the unscrambled sequence, 0, moves too.
public struct ScrambledHalton: Sendable {
    public let base: Int
    let permutations: [[Int]]
    static let digits = 24

    public init(base: Int, seed: UInt64) {
        self.base = base
        var rng = Xoshiro256(seed: seed, stream: 0x4A17_0000 &+ UInt64(base))
        permutations = (0..<Self.digits).map { _ in (0..<base).shuffled(using: &rng) }
    }

    /// The `index`-th point, in [0, 1).
    public subscript(index: Int) -> Double {
        var n = index, value = 0.0, scale = 1.0 / Double(base)
        for j in 0..<Self.digits {
            value += Double(permutations[j][n % base]) * scale
            n /= base
            scale /= Double(base)
        }
        return value
    }
}

/// McCandlish et al. (2018): S = S_min (1 + B_noise / B) steps and E = B·S examples to a target, linear in 1/B.
public struct CriticalBatchFit: Equatable, Sendable {
    public var minimumSteps: Double
    public var minimumExamples: Double
    /// B_crit = E_min / S_min.
    public var criticalBatch: Double { minimumExamples / minimumSteps }

    public func steps(batch b: Double) -> Double { minimumSteps + minimumExamples / b }
    public func examples(batch b: Double) -> Double { b * steps(batch: b) }

    /// The least-squares line S = S_min + E_min · (1/B) through (batch, steps) points, each weighted by 1/S² (so
    /// that every point counts by its relative error, whatever its scale); nil with fewer than two distinct
    /// batches, or when the line does not give S_min > 0 and E_min > 0.
    public static func fit(_ points: [(batch: Double, steps: Double)]) -> CriticalBatchFit? {
        guard Set(points.map(\.batch)).count >= 2 else { return nil }
        var (sw, sx, sy, sxx, sxy) = (0.0, 0.0, 0.0, 0.0, 0.0)
        for p in points {
            let w = 1 / (p.steps * p.steps), x = 1 / p.batch
            sw += w; sx += w * x; sy += w * p.steps; sxx += w * x * x; sxy += w * x * p.steps
        }
        let det = sw * sxx - sx * sx
        guard det > 0 else { return nil }
        let slope = (sw * sxy - sx * sy) / det
        let intercept = (sy - slope * sx) / sw
        guard intercept > 0, slope > 0 else { return nil }
        return CriticalBatchFit(minimumSteps: intercept, minimumExamples: slope)
    }
}
