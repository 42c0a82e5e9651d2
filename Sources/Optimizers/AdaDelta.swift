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
public final class AdaDelta: BufferedOptimizer {
    public let name = "adadelta"
    /// The settings it was built from (the fields its rule reads).
    public let settings: OptimizerSettings
    public var learningRate: Double
    public internal(set) var stepCount = 0
    let buffers: StateBuffers

    public init(_ settings: OptimizerSettings, parameterCount: Int) {
        self.settings = settings
        learningRate = settings.learningRate
        buffers = StateBuffers([.squareAvg, .accDelta], count: parameterCount)
    }

    public func update(_ parameters: UnsafeMutableBufferPointer<Float>, gradient: UnsafeBufferPointer<Float>) {
        let (parameters, gradient, count) = flat(parameters, gradient)
        stepCount += 1
        let h = settings
        let γ = Float(learningRate), ρ = Float(h.rho), ε = Float(h.eps), λ = Float(h.weightDecay)
        let cρ = Float(1 - h.rho)  // 1 − ρ rounded once from Double, as torch does
        @inline(__always)  // a local function, not a closure: always inlined into the loop
        func body(_ θ: inout F8, _ g: F8, _ v: inout F8, _ u: inout F8, _: inout F8, _: inout F8) {
            let g = g + λ * θ
            v = ρ * v + cρ * g * g
            let Δ = (u + ε).squareRoot() / (v + ε).squareRoot() * g
            u = ρ * u + cρ * Δ * Δ
            θ = θ - γ * Δ
        }
        forEachLane(count: count, parameters: parameters, gradient: gradient,
                    buffers[.squareAvg], buffers[.accDelta], body: body)
    }
}
