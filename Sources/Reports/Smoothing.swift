// Curve smoothing as 'Deep Learning from Scratch' does it (common/util.py, smooth_curve): a Kaiser window of
// 11 points (β = 2), the series mirrored at both ends, so the smoothed curve keeps the series' length.
import Foundation

/// The series convolved with a normalised Kaiser window of `window` points (odd) and shape `beta`; the ends
/// are reflected so the result has the same length as `values`. Series shorter than the window are returned
/// unchanged.
public func smoothed(_ values: [Double], window: Int = 11, beta: Double = 2) -> [Double] {
    let n = values.count
    guard window > 1, n >= window else { return values }
    let half = window / 2
    // Kaiser window: w_k = I0(β √(1 − (2k/(M−1) − 1)²)) / I0(β).
    let weights = (0..<window).map { k -> Double in
        let r = 2 * Double(k) / Double(window - 1) - 1
        return besselI0(beta * (1 - r * r).squareRoot()) / besselI0(beta)
    }
    let total = weights.reduce(0, +)
    func at(_ i: Int) -> Double {
        // Reflection without repeating the end point: x[-1] = x[1], x[n] = x[n-2].
        if i < 0 { return values[-i] }
        if i >= n { return values[2 * (n - 1) - i] }
        return values[i]
    }
    return (0..<n).map { i in
        var s = 0.0
        for k in 0..<window { s += weights[k] * at(i - half + k) }
        return s / total
    }
}

/// The modified Bessel function of the first kind, order 0 (power series; exact to double precision for x ≤ 20).
func besselI0(_ x: Double) -> Double {
    var sum = 1.0, term = 1.0
    let q = x * x / 4
    for k in 1..<60 {
        term *= q / Double(k * k)
        sum += term
        if term < sum * 1e-17 { break }
    }
    return sum
}
