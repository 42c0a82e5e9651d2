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
    public struct Hyperparameters: Equatable, Sendable {
        public var learningRate = 1.0
        public var rho = 0.9
        public var eps = 1e-6
        public var weightDecay = 0.0
        public init() {}
    }

    public let name = "adadelta"
    public let hyperparameters: Hyperparameters
    public var learningRate: Double
    public internal(set) var stepCount = 0
    let buffers: StateBuffers

    public init(_ hyperparameters: Hyperparameters, parameterCount: Int) {
        self.hyperparameters = hyperparameters
        learningRate = hyperparameters.learningRate
        buffers = StateBuffers(["square_avg", "acc_delta"], count: parameterCount)
    }

    public func update(_ parameters: UnsafeMutableBufferPointer<Float>, gradient: UnsafeBufferPointer<Float>) {
        let (parameters, gradient, count) = flat(parameters, gradient)
        stepCount += 1
        let h = hyperparameters
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
                    buffers["square_avg"], buffers["acc_delta"], body: body)
    }
}
