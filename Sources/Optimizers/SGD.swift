// Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight decay, exactly as
// torch.optim.SGD (reference/optimizers.md, "SGD"), plus the two momentum forms the seeds teach.
// Plain GD is this rule fed a full-batch gradient.
import Numerics

/// torch.optim.SGD, and the textbook momentum forms as variants.
///
/// Legend: θ parameters, g gradient, b / v momentum buffer, γ learning rate, μ momentum, τ dampening,
/// λ weight decay, t step (from 1).
/// ```
/// g ← g + λθ                                  (every form, if λ ≠ 0)
/// torch:      b ← g (t = 1), μb + (1−τ)g (t > 1);  θ ← θ − γ(g + μb) if Nesterov, else θ − γb
/// sutskever:  v ← μv − γg;  θ ← θ + v            (seed 001; equals torch while γ is constant)
/// ewma:       v ← μv + (1−μ)g;  θ ← θ − γv       (seed 003, Andrew Ng's form; μ is his β)
/// ```
/// With μ = 0 every form is θ ← θ − γg and keeps no buffer.
public final class SGD: BufferedOptimizer {
    public enum Form: String, Sendable, CaseIterable {
        case torch, sutskever, ewma
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
        buffers = StateBuffers(settings.momentum != 0 ? [.momentumBuffer] : [], count: parameterCount)
    }

    public func update(_ parameters: UnsafeMutableBufferPointer<Float>, gradient: UnsafeBufferPointer<Float>) {
        let (parameters, gradient, count) = flat(parameters, gradient)
        stepCount += 1
        let h = settings
        let γ = Float(learningRate), λ = Float(h.weightDecay), μ = Float(h.momentum)
        let cμ = Float(1 - h.momentum)  // 1 − μ rounded once from Double, as torch does
        let cτ = Float(1 - h.dampening)  // 1 − τ rounded once from Double, as torch does
        let first = stepCount == 1, nesterov = h.nesterov
        guard let buffer = buffers[.momentumBuffer] else {
            @inline(__always)  // a local function, not a closure: always inlined into the loop
            func body(_ θ: inout F8, _ g: F8, _: inout F8, _: inout F8, _: inout F8, _: inout F8) {
                θ = θ - γ * (g + λ * θ)
            }
            forEachLane(count: count, parameters: parameters, gradient: gradient, body: body)
            return
        }
        switch form {
        case .torch:
            @inline(__always)  // a local function, not a closure: always inlined into the loop
            func body(_ θ: inout F8, _ g: F8, _ b: inout F8, _: inout F8, _: inout F8, _: inout F8) {
                let g = g + λ * θ
                b = first ? g : μ * b + cτ * g
                θ = θ - γ * (nesterov ? g + μ * b : b)
            }
            forEachLane(count: count, parameters: parameters, gradient: gradient, buffer, body: body)
        case .sutskever:
            @inline(__always)  // a local function, not a closure: always inlined into the loop
            func body(_ θ: inout F8, _ g: F8, _ v: inout F8, _: inout F8, _: inout F8, _: inout F8) {
                v = μ * v - γ * (g + λ * θ)
                θ = θ + v
            }
            forEachLane(count: count, parameters: parameters, gradient: gradient, buffer, body: body)
        case .ewma:
            @inline(__always)  // a local function, not a closure: always inlined into the loop
            func body(_ θ: inout F8, _ g: F8, _ v: inout F8, _: inout F8, _: inout F8, _: inout F8) {
                v = μ * v + cμ * (g + λ * θ)
                θ = θ - γ * v
            }
            forEachLane(count: count, parameters: parameters, gradient: gradient, buffer, body: body)
        }
    }
}
