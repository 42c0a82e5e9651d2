// NAdam exactly as torch.optim.NAdam (reference/optimizers.md, "NAdam"): Adam with Nesterov momentum and
// Dozat's momentum-decay schedule.
import Foundation
import Numerics

/// torch.optim.NAdam.
///
/// Legend: θ parameters, g gradient, m first moment, v second moment, γ learning rate, β1 β2, ψ momentum
/// decay, λ weight decay, ε, t step (from 1), Π_t = μ_1 ⋯ μ_t (kept as a running product, as torch does).
/// ```
/// g ← g + λθ;  μ_t ← β1 (1 − ½·0.96^{tψ});  μ_{t+1} ← β1 (1 − ½·0.96^{(t+1)ψ})
/// m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²;  d ← √(v / (1 − β2ᵗ)) + ε
/// θ ← θ − γ(1 − μ_t)/(1 − Π_t) · g/d − γ μ_{t+1}/(1 − Π_{t+1}) · m/d
/// ```
public struct NAdam: ElementwiseRule {
    let settings: OptimizerSettings
    /// Π_t, the product of every μ so far.
    private var muProduct = 1.0
    public var scalars: [String: Double] {
        get { ["mu_product": muProduct] }
        set { muProduct = newValue["mu_product"] ?? muProduct }
    }

    public init(_ settings: OptimizerSettings) { self.settings = settings }

    public var kept: [(StateBuffer, Float)] { [(.expAvg, 0), (.expAvgSq, 0)] }

    public mutating func step(_ lanes: Lanes, t: Int, rate: Double) {
        let h = settings, t = Double(t)
        let μt = h.beta1 * (1 - 0.5 * pow(0.96, t * h.momentumDecay))
        let μnext = h.beta1 * (1 - 0.5 * pow(0.96, (t + 1) * h.momentumDecay))
        muProduct *= μt
        let gradientWeight = Float(rate * (1 - μt) / (1 - muProduct))
        let momentWeight = Float(rate * μnext / (1 - muProduct * μnext))
        let c2 = Float(1 - pow(h.beta2, t))
        let β1 = Float(h.beta1), β2 = Float(h.beta2), ε = Float(h.eps), λ = Float(h.weightDecay)
        let cβ2 = Float(1 - h.beta2)  // 1 − β2 rounded once from Double, as torch does
        let cβ1 = Float(1 - h.beta1)  // 1 − β1 rounded once from Double, as torch does
        @inline(__always)  // a local function, not a closure: always inlined into the loop
        func body(_ θ: inout F8, _ g: F8, _ m: inout F8, _ v: inout F8, _: inout F8, _: inout F8) {
            let g = g + λ * θ
            m = β1 * m + cβ1 * g
            v = β2 * v + cβ2 * g * g
            let d = (v / c2).squareRoot() + ε
            θ = θ - gradientWeight * g / d - momentWeight * m / d
        }
        lanes.run(.expAvg, .expAvgSq, body: body)
    }
}
