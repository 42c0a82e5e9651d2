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
public final class AdaGrad: BufferedOptimizer {
    public let name = "adagrad"
    /// The settings it was built from (the fields its rule reads).
    public let settings: OptimizerSettings
    public var learningRate: Double
    public internal(set) var stepCount = 0
    let buffers: StateBuffers

    public init(_ settings: OptimizerSettings, parameterCount: Int) {
        self.settings = settings
        learningRate = settings.learningRate
        buffers = StateBuffers([.sum], count: parameterCount)
        buffers.fill(.sum, with: Float(settings.initialAccumulatorValue))
    }

    public func update(_ parameters: UnsafeMutableBufferPointer<Float>, gradient: UnsafeBufferPointer<Float>) {
        let (parameters, gradient, count) = flat(parameters, gradient)
        stepCount += 1
        let h = settings
        let γ̃ = Float(learningRate / (1 + Double(stepCount - 1) * h.learningRateDecay))
        let λ = Float(h.weightDecay), ε = Float(h.eps), inside = h.epsInsideSquareRoot
        @inline(__always)  // a local function, not a closure: always inlined into the loop
        func body(_ θ: inout F8, _ g: F8, _ s: inout F8, _: inout F8, _: inout F8, _: inout F8) {
            let g = g + λ * θ
            s = s + g * g
            θ = θ - γ̃ * g / (inside ? (s + ε).squareRoot() : s.squareRoot() + ε)
        }
        forEachLane(count: count, parameters: parameters, gradient: gradient, buffers[.sum], body: body)
    }
}
