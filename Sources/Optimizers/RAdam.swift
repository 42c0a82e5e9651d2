// RAdam exactly as torch.optim.RAdam (reference/frontier.md, "RAdam"; Liu et al. 2020), and Adamax as
// torch.optim.Adamax (Kingma & Ba 2015, §7.1).
import Foundation
import Numerics

/// torch.optim.RAdam: Adam whose adaptive step is rectified once the variance estimate is tractable.
///
/// Legend: θ parameters, g gradient, m first moment, v second moment, γ learning rate, β1 β2, λ weight decay, ε,
/// t step (from 1), c1 = 1 − β1ᵗ, c2 = 1 − β2ᵗ, ρ∞ = 2/(1 − β2) − 1, ρt = ρ∞ − 2t·β2ᵗ/c2.
/// ```
/// g ← g + λθ,  or with decoupled_weight_decay  θ ← θ(1 − γλ)
/// m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²
/// ρt > 5:  r ← √((ρt−4)(ρt−2)ρ∞ / ((ρ∞−4)(ρ∞−2)ρt));  θ ← θ − (γ/c1)·r·m·√c2/(√v + ε)
/// else:    θ ← θ − (γ/c1)·m                                  (SGD with momentum while the variance is not yet known)
/// ```
public struct RAdam: ElementwiseRule {
    let settings: OptimizerSettings

    public init(_ settings: OptimizerSettings) { self.settings = settings }

    public var kept: [(StateBuffer, Float)] { [(.expAvg, 0), (.expAvgSq, 0)] }

    /// The rectification r_t, or nil while ρt ≤ 5.
    static func rectification(t: Double, beta2: Double) -> Double? {
        let c2 = 1 - pow(beta2, t), ρInf = 2 / (1 - beta2) - 1
        let ρt = ρInf - 2 * t * pow(beta2, t) / c2
        guard ρt > 5 else { return nil }
        return ((ρt - 4) * (ρt - 2) * ρInf / ((ρInf - 4) * (ρInf - 2) * ρt)).squareRoot()
    }

    public func step(_ lanes: Lanes, t: Int, rate: Double) {
        let h = settings, t = Double(t)
        let c1 = 1 - pow(h.beta1, t), c2 = 1 - pow(h.beta2, t)
        let rect = Self.rectification(t: t, beta2: h.beta2)
        let β1 = Float(h.beta1), β2 = Float(h.beta2), ε = Float(h.eps)
        let cβ1 = Float(1 - h.beta1), cβ2 = Float(1 - h.beta2)  // rounded once from Double, as torch does
        let coupled = h.decoupledWeightDecay ? 0 : Float(h.weightDecay)
        let shrink = h.decoupledWeightDecay ? Float(1 - rate * h.weightDecay) : 1
        let a = Float(rate / c1 * (rect ?? 1)), rootC2 = Float(c2.squareRoot()), adaptive = rect != nil
        @inline(__always)  // a local function, not a closure: always inlined into the loop
        func body(_ θ: inout F8, _ g: F8, _ m: inout F8, _ v: inout F8, _: inout F8, _: inout F8) {
            θ = θ * shrink
            let g = g + coupled * θ
            m = β1 * m + cβ1 * g
            v = β2 * v + cβ2 * g * g
            θ = adaptive ? θ - a * m * rootC2 / (v.squareRoot() + ε) : θ - a * m
        }
        lanes.run(.expAvg, .expAvgSq, body: body)
    }
}

/// torch.optim.Adamax: Adam with the infinity norm in place of the second moment.
///
/// Legend: as Adam; u the exponentially weighted infinity norm.
/// ```
/// g ← g + λθ;  m ← β1 m + (1−β1) g;  u ← max(β2 u, |g| + ε);  θ ← θ − (γ/c1)·m/u
/// ```
public struct Adamax: ElementwiseRule {
    let settings: OptimizerSettings

    public init(_ settings: OptimizerSettings) { self.settings = settings }

    public var kept: [(StateBuffer, Float)] { [(.expAvg, 0), (.expInf, 0)] }

    public func step(_ lanes: Lanes, t: Int, rate: Double) {
        let h = settings
        let a = Float(rate / (1 - pow(h.beta1, Double(t))))
        let β1 = Float(h.beta1), β2 = Float(h.beta2), ε = Float(h.eps), λ = Float(h.weightDecay)
        let cβ1 = Float(1 - h.beta1)
        @inline(__always)
        func body(_ θ: inout F8, _ g: F8, _ m: inout F8, _ u: inout F8, _: inout F8, _: inout F8) {
            let g = g + λ * θ
            m = β1 * m + cβ1 * g
            let decayed = β2 * u, size = g.replacing(with: -g, where: g .< 0) + ε  // |g| + ε
            u = decayed.replacing(with: size, where: size .> decayed)
            θ = θ - a * m / u
        }
        lanes.run(.expAvg, .expInf, body: body)
    }
}

/// Lion (Chen et al. 2023; lucidrains/lion-pytorch): the sign of an interpolated momentum, decoupled decay.
///
/// Legend: θ parameters, g gradient, m momentum, γ learning rate, β1 β2, λ weight decay.
/// ```
/// θ ← θ(1 − γλ);  θ ← θ − γ·sign(β1 m + (1−β1) g);  m ← β2 m + (1−β2) g
/// ```
public struct Lion: ElementwiseRule {
    let settings: OptimizerSettings

    public init(_ settings: OptimizerSettings) { self.settings = settings }

    public var kept: [(StateBuffer, Float)] { [(.expAvg, 0)] }

    public func step(_ lanes: Lanes, t: Int, rate: Double) {
        let h = settings
        let γ = Float(rate), shrink = Float(1 - rate * h.weightDecay)
        let β1 = Float(h.beta1), β2 = Float(h.beta2), cβ1 = Float(1 - h.beta1), cβ2 = Float(1 - h.beta2)
        let zero = F8(repeating: 0), one = F8(repeating: 1)
        @inline(__always)
        func body(_ θ: inout F8, _ g: F8, _ m: inout F8, _: inout F8, _: inout F8, _: inout F8) {
            let c = β1 * m + cβ1 * g
            // sign(c): 1, −1, or 0 where c is 0
            let sign = zero.replacing(with: one, where: c .> 0).replacing(with: -one, where: c .< 0)
            θ = θ * shrink - γ * sign
            m = β2 * m + cβ2 * g
        }
        lanes.run(.expAvg, body: body)
    }
}
