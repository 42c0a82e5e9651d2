// Axis scales: data values to pixels, linear or logarithmic, with tick positions a reader expects
// (1-2-5 steps; decades on log axes) and short tick labels.
import Foundation

/// How an axis maps values.
public enum ScaleKind: String, Sendable {
    case linear, log

    /// The scale that shows `values`: logarithmic when they are all positive and span two decades or more (curves of
    /// 50 and of 9,375 steps on one chart), linear otherwise.
    public static func fitting(_ values: [Double]) -> ScaleKind {
        let finite = values.filter(\.isFinite)
        guard let lo = finite.min(), let hi = finite.max(), lo > 0 else { return .linear }
        return hi / lo >= 100 ? .log : .linear
    }
}

/// A data interval mapped onto a pixel interval.
public struct Scale: Sendable {
    public var kind: ScaleKind
    public var domain: ClosedRange<Double>
    public var pixels: ClosedRange<Double>
    /// true: the domain's lower end maps to `pixels.upperBound` (y axes grow upwards).
    public var flipped: Bool

    public init(_ kind: ScaleKind, domain: ClosedRange<Double>, pixels: ClosedRange<Double>, flipped: Bool = false) {
        precondition(kind == .linear || domain.lowerBound > 0, "a log scale needs a positive domain")
        self.kind = kind
        self.domain = domain
        self.pixels = pixels
        self.flipped = flipped
    }

    private func transform(_ v: Double) -> Double { kind == .log ? log10(v) : v }

    /// The pixel position of `value` (values outside the domain map outside the pixel range).
    public func pixel(_ value: Double) -> Double {
        let a = transform(domain.lowerBound), b = transform(domain.upperBound)
        let t = b == a ? 0.5 : (transform(value) - a) / (b - a)
        let u = flipped ? 1 - t : t
        return pixels.lowerBound + u * (pixels.upperBound - pixels.lowerBound)
    }

    /// Tick values inside the domain, about `target` of them on a linear axis.
    public func ticks(target: Int = 6) -> [Double] {
        kind == .log ? logTicks(domain) : linearTicks(domain, target: target)
    }
}

/// Values on a 1-2-5 grid covering `domain`, about `target` of them.
public func linearTicks(_ domain: ClosedRange<Double>, target: Int = 6) -> [Double] {
    let span = domain.upperBound - domain.lowerBound
    guard span > 0, span.isFinite else { return [domain.lowerBound] }
    let step = niceStep(span / Double(max(target, 1)))
    let first = (domain.lowerBound / step).rounded(.up)
    let last = (domain.upperBound / step).rounded(.down)
    guard last >= first else { return [] }
    return stride(from: first, through: last, by: 1).map { k in
        let v = k * step
        return abs(v) < step * 1e-9 ? 0 : v
    }
}

/// The smallest of 1, 2, 5 × 10ᵏ that is at least `raw`.
func niceStep(_ raw: Double) -> Double {
    let exponent = floor(log10(raw))
    let base = pow(10, exponent)
    for m in [1.0, 2, 5, 10] where m * base >= raw * (1 - 1e-9) { return m * base }
    return 10 * base
}

/// Decades inside a positive domain; when it spans less than two decades, also 2× and 5× marks.
public func logTicks(_ domain: ClosedRange<Double>) -> [Double] {
    let lo = log10(domain.lowerBound), hi = log10(domain.upperBound)
    var decades = Array(stride(from: ceil(lo - 1e-9), through: floor(hi + 1e-9), by: 1))
    if decades.count > 8 {
        let every = Double(Int(ceil(Double(decades.count) / 8)))
        decades = decades.filter { $0.truncatingRemainder(dividingBy: every) == 0 }
    }
    var ticks = decades.map { pow(10, $0) }
    // Less than two decades: the 1-2-5 grid, then every digit, then a linear grid, the first with two ticks or more
    // (an axis is read from two labels at least).
    if hi - lo < 2 {
        let low = domain.lowerBound * (1 - 1e-9), high = domain.upperBound * (1 + 1e-9)
        func grid(_ multiples: [Double]) -> [Double] {
            var values: [Double] = []
            for d in stride(from: floor(lo), through: ceil(hi), by: 1) {
                for m in multiples where m * pow(10, d) >= low && m * pow(10, d) <= high { values.append(m * pow(10, d)) }
            }
            return values
        }
        ticks = grid([1, 2, 5])
        if ticks.count < 2 { ticks = grid([1, 2, 3, 4, 5, 6, 7, 8, 9]) }
        for target in [3, 5, 8, 12] where ticks.count < 2 { ticks = linearTicks(domain, target: target) }
    }
    return ticks
}

/// A short label: "0", "0.25", "1500", "1e-6", "2.5e+04".
public func tickLabel(_ v: Double) -> String {
    if v == 0 { return "0" }
    let a = abs(v)
    if a >= 1e-3 && a < 1e5 {
        var s = String(format: "%.6g", v)
        if s.contains("e") { s = String(format: "%.6f", v) }
        if s.contains(".") {
            while s.hasSuffix("0") { s.removeLast() }
            if s.hasSuffix(".") { s.removeLast() }
        }
        return s
    }
    let exponent = Int(floor(log10(a)))
    let mantissa = v / pow(10, Double(exponent))
    let m = String(format: "%.6g", mantissa)
    return (m == "1" ? "1" : m == "-1" ? "-1" : m) + "e" + String(exponent)
}

/// A domain padded by `fraction` of its span on both sides (or by 1 when it is a single value).
public func padded(_ domain: ClosedRange<Double>, by fraction: Double = 0.05) -> ClosedRange<Double> {
    let span = domain.upperBound - domain.lowerBound
    let pad = span > 0 ? span * fraction : max(abs(domain.lowerBound) * 0.1, 1)
    return (domain.lowerBound - pad)...(domain.upperBound + pad)
}
