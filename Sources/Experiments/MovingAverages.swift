// Exponentially weighted averages of a noisy series, with and without bias correction (seed article 003, after
// Andrew Ng's lecture): v_t = β v_{t−1} + (1 − β) θ_t from v_0 = 0, and v_t / (1 − βᵗ). Momentum's buffer, and
// Adam's m and v, are such averages of the gradient.
import Foundation
import Numerics
import Reports

public enum MovingAverages {
    /// A seeded noisy series: a slow seasonal curve (10 + 8 sin(2πt/365)) plus N(0, 3²) noise, t = 1…count,
    /// like the article's daily temperatures.
    public static func series(count: Int, seed: UInt64) -> [Double] {
        var rng = Xoshiro256(seed: seed, stream: 0xE3A)
        return (1...count).map { t in 10 + 8 * sin(2 * Double.pi * Double(t) / 365) + 3 * rng.nextGaussian() }
    }

    /// v_1 … v_n of the average with `beta` from v_0 = 0; with `corrected`, each divided by 1 − βᵗ.
    public static func average(_ x: [Double], beta: Double, corrected: Bool) -> [Double] {
        var v = 0.0
        return x.enumerated().map { k, value in
            v = beta * v + (1 - beta) * value
            return corrected ? v / (1 - pow(beta, Double(k + 1))) : v
        }
    }

    /// The figure: the series as dots, each β's average with bias correction (solid) and without (dashed).
    public static func chart(_ x: [Double], betas: [Double], seed: UInt64) -> Chart {
        var chart = Chart(title: "Exponentially weighted averages, with and without bias correction",
                          subtitle: "v_t = β v_{t−1} + (1 − β) θ_t from v_0 = 0 (dashed); corrected v_t / (1 − βᵗ) (solid); "
                              + "\(x.count) noisy points, seed \(seed)",
                          x: Axis("t"), y: Axis("θ_t, v_t"))
        chart.series = [Series(label: "θ_t", points: x.enumerated().map { SIMD2(Double($0.offset + 1), $0.element) },
                               style: SeriesStyle(colour: "#9a9a9a"), lineWidth: 0, dots: true)]
        for (k, β) in betas.enumerated() {
            let colour = Palette.style(k).colour
            for corrected in [true, false] {
                let v = average(x, beta: β, corrected: corrected)
                chart.series.append(Series(label: "β \(shortNumber(β))" + (corrected ? ", corrected" : ", uncorrected")
                                               + (corrected ? "" : " (starts at 0)"),
                                           points: v.enumerated().map { SIMD2(Double($0.offset + 1), $0.element) },
                                           style: SeriesStyle(colour: colour, dash: corrected ? nil : "6 4"), lineWidth: 1.8))
            }
        }
        chart.sizePlot(width: 720, height: 420)
        return chart
    }

    /// `ewma.csv` (t, x, then one column per β and form) and `ewma.svg`.
    public static func outputs(count: Int, betas: [Double], seed: UInt64) -> [(name: String, text: String)] {
        let x = series(count: count, seed: seed)
        let columns = betas.flatMap { β in [true, false].map { (β, $0, average(x, beta: β, corrected: $0)) } }
        var csv = "t,x," + columns.map { "beta_\(shortNumber($0.0))_\($0.1 ? "corrected" : "uncorrected")" }.joined(separator: ",") + "\n"
        for t in x.indices { csv += "\(t + 1),\(x[t])," + columns.map { "\($0.2[t])" }.joined(separator: ",") + "\n" }
        return [("ewma.csv", csv), ("ewma.svg", chart(x, betas: betas, seed: seed).svg())]
    }
}
