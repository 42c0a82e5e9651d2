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
public struct SGD: ElementwiseRule {
    let settings: OptimizerSettings

    public init(_ settings: OptimizerSettings) { self.settings = settings }

    public var kept: [(StateBuffer, Float)] { settings.momentum != 0 ? [(.momentumBuffer, 0)] : [] }

    public func step(_ lanes: Lanes, t: Int, rate: Double) {
        let h = settings
        let γ = Float(rate), λ = Float(h.weightDecay), μ = Float(h.momentum)
        let cμ = Float(1 - h.momentum)  // 1 − μ rounded once from Double, as torch does
        let cτ = Float(1 - h.dampening)  // 1 − τ rounded once from Double, as torch does
        let first = t == 1, nesterov = h.nesterov
        guard h.momentum != 0 else {
            @inline(__always)  // a local function, not a closure: always inlined into the loop
            func body(_ θ: inout F8, _ g: F8, _: inout F8, _: inout F8, _: inout F8, _: inout F8) {
                θ = θ - γ * (g + λ * θ)
            }
            return lanes.run(body: body)
        }
        switch h.variant {
        case .sutskever:
            @inline(__always)  // a local function, not a closure: always inlined into the loop
            func body(_ θ: inout F8, _ g: F8, _ v: inout F8, _: inout F8, _: inout F8, _: inout F8) {
                v = μ * v - γ * (g + λ * θ)
                θ = θ + v
            }
            lanes.run(.momentumBuffer, body: body)
        case .ewma:
            @inline(__always)  // a local function, not a closure: always inlined into the loop
            func body(_ θ: inout F8, _ g: F8, _ v: inout F8, _: inout F8, _: inout F8, _: inout F8) {
                v = μ * v + cμ * (g + λ * θ)
                θ = θ - γ * v
            }
            lanes.run(.momentumBuffer, body: body)
        default:  // torch
            @inline(__always)  // a local function, not a closure: always inlined into the loop
            func body(_ θ: inout F8, _ g: F8, _ b: inout F8, _: inout F8, _: inout F8, _: inout F8) {
                let g = g + λ * θ
                b = first ? g : μ * b + cτ * g
                θ = θ - γ * (nesterov ? g + μ * b : b)
            }
            lanes.run(.momentumBuffer, body: body)
        }
    }
}
