// Curve smoothing with the window of 'Deep Learning from Scratch' (common/util.py, smooth_curve): a Kaiser window
// of 11 points (β = 2). Near the ends the window narrows symmetrically instead of mirroring the series, so a smoothed
// curve starts at the first value and ends at the last: replicas that start from the same loss are drawn so.
import Foundation

/// The series convolved with a normalised Kaiser window of `window` points (odd) and shape `beta`; within half a
/// window of an end, with the widest window centred on the point that fits (at the ends, the point itself). The
/// result has the same length as `values`.
public func smoothed(_ values: [Double], window: Int = 11, beta: Double = 2) -> [Double] {
    let n = values.count, half = window / 2
    guard half > 0 else { return values }
    // Kaiser windows of 2h + 1 points, normalised: w_k = I0(β √(1 − (2k/(M−1) − 1)²)) / I0(β).
    let windows = (0...half).map { h -> [Double] in
        guard h > 0 else { return [1] }
        let w = (0...(2 * h)).map { k -> Double in
            let r = 2 * Double(k) / Double(2 * h) - 1
            return besselI0(beta * (1 - r * r).squareRoot()) / besselI0(beta)
        }
        let total = w.reduce(0, +)
        return w.map { $0 / total }
    }
    return (0..<n).map { i in
        let h = min(half, i, n - 1 - i)
        var s = 0.0
        for (k, w) in windows[h].enumerated() { s += w * values[i - h + k] }
        return s
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
