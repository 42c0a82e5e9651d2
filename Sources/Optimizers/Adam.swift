// Adam and AdamW exactly as torch.optim.Adam / AdamW (reference/optimizers.md, "Adam", "AdamW"), AMSGrad as
// PyTorch's code does it, and the two textbook forms of seeds 003 and 004 as variants.
import Foundation
import Numerics

/// torch.optim.Adam (coupled L2 decay) and torch.optim.AdamW (decoupled decay).
///
/// Legend: θ parameters, g gradient, m first moment, v second moment, v̄ the v used in the denominator,
/// γ learning rate, β1 β2, λ weight decay, ε, t step (from 1), c1 = 1 − β1ᵗ, c2 = 1 − β2ᵗ.
/// ```
/// Adam: g ← g + λθ          AdamW: θ ← θ(1 − γλ)
/// m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²
/// v̄ ← v, or with AMSGrad  v̂max ← max(v̂max, v);  v̄ ← v̂max   (the max of the UNcorrected v, as torch does)
/// torch:               θ ← θ − (γ/c1) m / (√v̄/√c2 + ε)
/// no-bias-correction:  θ ← θ − γ m / (√v̄ + ε)                     (MLX's default; seed 003 shows both)
/// kingma-ba:           θ ← θ − (γ√c2/c1) m / (√v̄ + ε)             (the paper's step-size form, as the
///                                                                   'Deep Learning from Scratch' code does it)
/// ```
public final class Adam: BufferedOptimizer {
    public enum Form: String, Sendable, CaseIterable {
        case torch
        case noBiasCorrection = "no-bias-correction"
        case kingmaBa = "kingma-ba"
    }

    public let name: String
    /// The settings it was built from (the fields its rule reads).
    public let settings: OptimizerSettings
    let form: Form
    public var learningRate: Double
    public internal(set) var stepCount = 0
    let buffers: StateBuffers

    public init(_ settings: OptimizerSettings, parameterCount: Int) {
        self.settings = settings
        form = Form(rawValue: settings.variant)!
        name = settings.kind.rawValue
        learningRate = settings.learningRate
        buffers = StateBuffers([.expAvg, .expAvgSq] + (settings.amsgrad ? [.maxExpAvgSq] : []),
                               count: parameterCount)
    }

    public func update(_ parameters: UnsafeMutableBufferPointer<Float>, gradient: UnsafeBufferPointer<Float>) {
        let (parameters, gradient, count) = flat(parameters, gradient)
        stepCount += 1
        let h = settings, t = Double(stepCount)
        let c1 = 1 - pow(h.beta1, t), c2 = 1 - pow(h.beta2, t)
        // θ ← θ − a·m / (√v̄·b + ε) covers all three forms.
        let a: Float, b: Float
        switch form {
        case .torch: (a, b) = (Float(learningRate / c1), Float(1 / c2.squareRoot()))
        case .noBiasCorrection: (a, b) = (Float(learningRate), 1)
        case .kingmaBa: (a, b) = (Float(learningRate * c2.squareRoot() / c1), 1)
        }
        let β1 = Float(h.beta1), β2 = Float(h.beta2), ε = Float(h.eps)
        let cβ2 = Float(1 - h.beta2)  // 1 − β2 rounded once from Double, as torch does
        let cβ1 = Float(1 - h.beta1)  // 1 − β1 rounded once from Double, as torch does
        let coupled = h.decoupledWeightDecay ? 0 : Float(h.weightDecay)
        let shrink = h.decoupledWeightDecay ? Float(1 - learningRate * h.weightDecay) : 1
        let amsgrad = h.amsgrad, torchForm = form == .torch
        @inline(__always)  // a local function, not a closure: always inlined into the loop
        func body(_ θ: inout F8, _ g: F8, _ m: inout F8, _ v: inout F8, _ vmax: inout F8, _: inout F8) {
            θ = θ * shrink
            let g = g + coupled * θ
            m = β1 * m + cβ1 * g
            v = β2 * v + cβ2 * g * g
            var v̄ = v
            if amsgrad {
                vmax = vmax.replacing(with: v, where: v .> vmax)
                v̄ = vmax
            }
            let d = torchForm ? v̄.squareRoot() * b + ε : v̄.squareRoot() + ε
            θ = θ - a * m / d
        }
        forEachLane(count: count, parameters: parameters, gradient: gradient,
                    buffers[.expAvg], buffers[.expAvgSq], buffers[.maxExpAvgSq], body: body)
    }
}
