// RMSProp exactly as torch.optim.RMSprop (reference/optimizers.md, "RMSprop"), with ε inside the square root
// (TensorFlow's and Optax's placement, seed 003's formula) as a variant.
import Numerics

/// torch.optim.RMSprop.
///
/// Legend: θ parameters, g gradient, v mean square, ḡ mean gradient (centered), b momentum buffer,
/// γ learning rate, α smoothing constant, μ momentum, λ weight decay, ε.
/// ```
/// g ← g + λθ;  v ← αv + (1−α)g²;  ṽ ← v
/// centered:  ḡ ← αḡ + (1−α)g;  ṽ ← v − ḡ²
/// d ← √ṽ + ε   (eps-inside-sqrt: d ← √(ṽ + ε))
/// μ > 0:  b ← μb + g/d;  θ ← θ − γb        else  θ ← θ − γ g/d
/// ```
public struct RMSProp: ElementwiseRule {
    let settings: OptimizerSettings

    public init(_ settings: OptimizerSettings) { self.settings = settings }

    public var kept: [(StateBuffer, Float)] {
        [(.squareAvg, 0)] + (settings.centered ? [(.gradAvg, 0)] : []) + (settings.momentum > 0 ? [(.momentumBuffer, 0)] : [])
    }

    public func step(_ lanes: Lanes, t: Int, rate: Double) {
        let h = settings
        let γ = Float(rate), α = Float(h.alpha), μ = Float(h.momentum), λ = Float(h.weightDecay)
        let cα = Float(1 - h.alpha)  // 1 − α rounded once from Double, as torch does
        let ε = Float(h.eps), inside = h.variant == .epsInsideSqrt, centered = h.centered, withMomentum = h.momentum > 0
        @inline(__always)  // a local function, not a closure: always inlined into the loop
        func body(_ θ: inout F8, _ g: F8, _ v: inout F8, _ ḡ: inout F8, _ b: inout F8, _: inout F8) {
            let g = g + λ * θ
            v = α * v + cα * g * g
            var ṽ = v
            if centered {
                ḡ = α * ḡ + cα * g
                ṽ = v - ḡ * ḡ
            }
            let d = inside ? (ṽ + ε).squareRoot() : ṽ.squareRoot() + ε
            if withMomentum {
                b = μ * b + g / d
                θ = θ - γ * b
            } else {
                θ = θ - γ * g / d
            }
        }
        lanes.run(.squareAvg, .gradAvg, .momentumBuffer, body: body)
    }
}
