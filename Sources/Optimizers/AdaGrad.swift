// AdaGrad exactly as torch.optim.Adagrad (reference/optimizers.md, "Adagrad"), with ε inside the square root
// as the variant seeds 000 and 004 write.
import Numerics

/// torch.optim.Adagrad.
///
/// Legend: θ parameters, g gradient, s sum of squared gradients (starts at the initial accumulator value),
/// γ learning rate, δ learning-rate decay, λ weight decay, ε, t step (from 1).
/// ```
/// γ̃ ← γ / (1 + (t−1)δ);  g ← g + λθ;  s ← s + g²
/// torch:            θ ← θ − γ̃ g / (√s + ε)
/// eps-inside-sqrt:  θ ← θ − γ̃ g / √(s + ε)
/// ```
public struct AdaGrad: ElementwiseRule {
    let settings: OptimizerSettings

    public init(_ settings: OptimizerSettings) { self.settings = settings }

    public var kept: [(StateBuffer, Float)] { [(.sum, Float(settings.initialAccumulatorValue))] }

    public func step(_ lanes: Lanes, t: Int, rate: Double) {
        let h = settings
        let γ̃ = Float(rate / (1 + Double(t - 1) * h.learningRateDecay))
        let λ = Float(h.weightDecay), ε = Float(h.eps), inside = h.variant == .epsInsideSqrt
        @inline(__always)  // a local function, not a closure: always inlined into the loop
        func body(_ θ: inout F8, _ g: F8, _ s: inout F8, _: inout F8, _: inout F8, _: inout F8) {
            let g = g + λ * θ
            s = s + g * g
            θ = θ - γ̃ * g / (inside ? (s + ε).squareRoot() : s.squareRoot() + ε)
        }
        lanes.run(.sum, body: body)
    }
}
