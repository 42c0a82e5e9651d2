// Adam and AdamW exactly as torch.optim.Adam / AdamW (reference/optimizers.md, "Adam", "AdamW"), AMSGrad as
// PyTorch's code does it, and the textbook forms (seeds 003 and 004, the Adam paper) as variants.
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
/// eps-inside-sqrt:     θ ← θ − (γ/c1) m / √(v̄/c2 + ε)             (seed 004: η m̂ / √(v̂ + ε))
/// eps-inside-sqrt-no-bias-correction:
///                      θ ← θ − γ m / √(v̄ + ε)                      (seed 003: V / √(S + ε))
/// ```
/// Each form runs its own specialised loop (`Denominator`), so the forms cost nothing in each other's loop.
/// The forms are `optimizer.variant`'s values (`OptimizerVariant`).
public struct Adam: ElementwiseRule {
    let settings: OptimizerSettings

    public init(_ settings: OptimizerSettings) { self.settings = settings }

    public var kept: [(StateBuffer, Float)] { [(.expAvg, 0), (.expAvgSq, 0)] + (settings.amsgrad ? [(.maxExpAvgSq, 0)] : []) }

    public func step(_ lanes: Lanes, t: Int, rate lr: Double) {
        let h = settings, t = Double(t)
        let c1 = 1 - pow(h.beta1, t), c2 = 1 - pow(h.beta2, t)
        // θ ← θ − a·m / d(v̄): with b = 1/√c2 (torch), 1/c2 (ε inside, corrected) or 1 (the others).
        switch h.variant {
        case .noBiasCorrection: run(Root.self, a: Float(lr), b: 1, lanes, rate: lr)
        case .kingmaBa: run(Root.self, a: Float(lr * c2.squareRoot() / c1), b: 1, lanes, rate: lr)
        case .epsInsideSqrt: run(RootOfSum.self, a: Float(lr / c1), b: Float(1 / c2), lanes, rate: lr)
        case .epsInsideSqrtNoBiasCorrection: run(RootOfSum.self, a: Float(lr), b: 1, lanes, rate: lr)
        default: run(ScaledRoot.self, a: Float(lr / c1), b: Float(1 / c2.squareRoot()), lanes, rate: lr)  // torch
        }
    }

    /// One pass of the update with the denominator `D`: a separate specialisation per form.
    private func run<D: Denominator>(_: D.Type, a: Float, b: Float, _ lanes: Lanes, rate: Double) {
        let h = settings
        let β1 = Float(h.beta1), β2 = Float(h.beta2), ε = Float(h.eps)
        let cβ2 = Float(1 - h.beta2)  // 1 − β2 rounded once from Double, as torch does
        let cβ1 = Float(1 - h.beta1)  // 1 − β1 rounded once from Double, as torch does
        let decoupled = h.kind == .adamw
        let coupled = decoupled ? 0 : Float(h.weightDecay)
        let shrink = decoupled ? Float(1 - rate * h.weightDecay) : 1
        let amsgrad = h.amsgrad
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
            θ = θ - a * m / D.of(v̄, b, ε)
        }
        lanes.run(.expAvg, .expAvgSq, .maxExpAvgSq, body: body)
    }
}

/// The denominator of Adam's step, from v̄, a scale b and ε.
protocol Denominator {
    static func of(_ v̄: F8, _ b: Float, _ ε: Float) -> F8
}

/// √v̄·b + ε (torch).
enum ScaledRoot: Denominator {
    @inline(__always) static func of(_ v̄: F8, _ b: Float, _ ε: Float) -> F8 { v̄.squareRoot() * b + ε }
}

/// √v̄ + ε (no bias correction, kingma-ba; b is 1 and unused).
enum Root: Denominator {
    @inline(__always) static func of(_ v̄: F8, _: Float, _ ε: Float) -> F8 { v̄.squareRoot() + ε }
}

/// √(v̄·b + ε) (ε inside the root).
enum RootOfSum: Denominator {
    @inline(__always) static func of(_ v̄: F8, _ b: Float, _ ε: Float) -> F8 { (v̄ * b + ε).squareRoot() }
}
