// The spread of a metric over repeated runs (seeds): mean, sample standard deviation, median, quartiles and a
// 95 % confidence interval for the mean (Student's t), the summary every report of seed repeats gives.
import Foundation

public struct Spread: Equatable, Sendable {
    public var count: Int
    public var mean: Double
    /// The sample standard deviation (n − 1 in the denominator); 0 for one value.
    public var std: Double
    public var median: Double
    /// The first and third quartiles, linear between order statistics (numpy's default, R's type 7).
    public var q1: Double, q3: Double
    /// The 95 % interval for the mean, mean ± t(0.975, n − 1) · std / √n; the mean itself for one value.
    public var low: Double, high: Double

    /// nil for no values; non-finite values are left out (a diverged seed has no final loss).
    public init?(_ values: [Double]) {
        let v = values.filter(\.isFinite).sorted()
        guard !v.isEmpty else { return nil }
        count = v.count
        mean = v.reduce(0, +) / Double(v.count)
        let m = mean
        std = v.count > 1 ? (v.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(v.count - 1)).squareRoot() : 0
        median = Self.quantile(v, 0.5)
        q1 = Self.quantile(v, 0.25)
        q3 = Self.quantile(v, 0.75)
        let half = v.count > 1 ? Self.studentT975(degrees: v.count - 1) * std / Double(v.count).squareRoot() : 0
        (low, high) = (mean - half, mean + half)
    }

    /// The `p` quantile of sorted values, linear between the order statistics at (n − 1)·p.
    public static func quantile(_ sorted: [Double], _ p: Double) -> Double {
        precondition(!sorted.isEmpty)
        let h = Double(sorted.count - 1) * p
        let lo = Int(h.rounded(.down)), hi = min(lo + 1, sorted.count - 1)
        return sorted[lo] + (h - Double(lo)) * (sorted[hi] - sorted[lo])
    }

    /// The 0.975 quantile of Student's t with `degrees` degrees of freedom: the t at which the two-sided tail
    /// probability I_{ν/(ν+t²)}(ν/2, 1/2) is 0.05, found by bisection.
    public static func studentT975(degrees: Int) -> Double {
        precondition(degrees >= 1)
        let nu = Double(degrees)
        var (lo, hi) = (0.0, 1000.0)
        for _ in 0..<200 {
            let t = (lo + hi) / 2
            if regularizedBeta(nu / (nu + t * t), nu / 2, 0.5) > 0.05 { lo = t } else { hi = t }
        }
        return (lo + hi) / 2
    }

    /// The regularized incomplete beta function I_x(a, b), by its continued fraction (Lentz's method).
    static func regularizedBeta(_ x: Double, _ a: Double, _ b: Double) -> Double {
        if x <= 0 { return 0 }
        if x >= 1 { return 1 }
        let logGammas: Double = lgamma(a + b) - lgamma(a) - lgamma(b)
        let logPowers: Double = a * log(x) + b * log(1 - x)
        let front = exp(logGammas + logPowers)
        // The fraction converges fast for x < (a + 1) / (a + b + 2); otherwise use I_x(a, b) = 1 − I_{1−x}(b, a).
        if x > (a + 1) / (a + b + 2) { return 1 - regularizedBeta(1 - x, b, a) }
        let tiny = 1e-300
        var c = 1.0, d = 1 - (a + b) * x / (a + 1)
        d = 1 / (abs(d) < tiny ? tiny : d)
        var f = d
        for m in 1...300 {
            let m = Double(m)
            let even: Double = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
            let odd: Double = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
            for numerator in [even, odd] {
                d = 1 + numerator * d
                d = 1 / (abs(d) < tiny ? tiny : d)
                c = 1 + numerator / c
                if abs(c) < tiny { c = tiny }
                f *= c * d
            }
            if abs(c * d - 1) < 1e-15 { break }
        }
        return front * f / a
    }
}
