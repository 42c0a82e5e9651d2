// AdaDelta exactly as torch.optim.Adadelta (reference/optimizers.md, "Adadelta"); seed 004 writes the same
// rule with γ = 1.
import Numerics

/// torch.optim.Adadelta.
///
/// Legend: θ parameters, g gradient, v mean square gradient, u mean square update, Δ update, γ learning rate,
/// ρ decay, λ weight decay, ε.
/// ```
/// g ← g + λθ;  v ← ρv + (1−ρ)g²;  Δ ← √(u + ε) / √(v + ε) · g;  u ← ρu + (1−ρ)Δ²;  θ ← θ − γΔ
/// ```
public struct AdaDelta: ElementwiseRule {
    let settings: OptimizerSettings

    public init(_ settings: OptimizerSettings) { self.settings = settings }

    public var kept: [(StateBuffer, Float)] { [(.squareAvg, 0), (.accDelta, 0)] }

    public func step(_ lanes: Lanes, t: Int, rate: Double) {
        let h = settings
        let γ = Float(rate), ρ = Float(h.rho), ε = Float(h.eps), λ = Float(h.weightDecay)
        let cρ = Float(1 - h.rho)  // 1 − ρ rounded once from Double, as torch does
        @inline(__always)  // a local function, not a closure: always inlined into the loop
        func body(_ θ: inout F8, _ g: F8, _ v: inout F8, _ u: inout F8, _: inout F8, _: inout F8) {
            let g = g + λ * θ
            v = ρ * v + cρ * g * g
            let Δ = (u + ε).squareRoot() / (v + ε).squareRoot() * g
            u = ρ * u + cρ * Δ * Δ
            θ = θ - γ * Δ
        }
        lanes.run(.squareAvg, .accDelta, body: body)
    }
}
