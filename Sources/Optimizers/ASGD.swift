// ASGD exactly as torch.optim.ASGD (reference/frontier.md, "ASGD"; Polyak–Juditsky averaging), and Rprop as
// torch.optim.Rprop (Riedmiller & Braun 1993, torch's iRprop−).
import Foundation
import Numerics

/// torch.optim.ASGD: SGD with a decaying step, a decay term, and the running average of the iterates.
///
/// Legend: θ parameters, g gradient, a the average (`ax`), γ learning rate, λ weight decay, λd the decay term
/// (`lambd`), α the step's power (`alpha`), t0 where averaging starts, η the step (starts at γ), μ the averaging
/// weight (starts at 1), t step (from 1).
/// ```
/// g ← g + λθ;  θ ← θ(1 − λd·η);  θ ← θ − η·g
/// a ← θ if μ = 1, else a + μ(θ − a)
/// η ← γ / (1 + λd·γ·t)^α;  μ ← 1 / max(1, t − t0)
/// ```
/// descent keeps η and μ once for the buffer (torch keeps them per tensor, with the same values).
public struct ASGD: ElementwiseRule {
    let settings: OptimizerSettings
    /// η and μ for the next step; η is 0 until the first step, which starts it at that step's rate (as torch
    /// starts it at the rate its first step sees).
    private var eta = 0.0
    private var mu = 1.0
    public var scalars: [String: Double] {
        get { ["eta": eta, "mu": mu] }
        set { (eta, mu) = (newValue["eta"] ?? eta, newValue["mu"] ?? mu) }
    }

    public init(_ settings: OptimizerSettings) { self.settings = settings }

    public var kept: [(StateBuffer, Float)] { [(.ax, 0)] }

    public mutating func step(_ lanes: Lanes, t: Int, rate: Double) {
        let h = settings
        let η = eta > 0 ? eta : rate
        let λ = Float(h.weightDecay), shrink = Float(1 - h.lambd * η), step = Float(η)
        let μ = Float(mu), copy = mu == 1
        @inline(__always)
        func body(_ θ: inout F8, _ g: F8, _ a: inout F8, _: inout F8, _: inout F8, _: inout F8) {
            let g = g + λ * θ
            θ = θ * shrink
            θ = θ - step * g
            a = copy ? θ : a + (θ - a) * μ
        }
        lanes.run(.ax, body: body)
        let t = Double(t)
        eta = rate / pow(1 + h.lambd * rate * t, h.alpha)
        mu = 1 / max(1, t - h.t0)
    }
}

/// torch.optim.Rprop (iRprop−): a step size per weight, grown where the gradient keeps its sign, shrunk where it
/// flips (and the gradient then counted as zero), and a step of that size against the gradient's sign.
///
/// Legend: θ parameters, g gradient, p the previous (kept) gradient, s the step sizes (start at γ), η− η+
/// (`etas`), [s_min, s_max] (`step_sizes`).
/// ```
/// f ← η+ where g·p > 0, η− where g·p < 0, 1 where g·p = 0;  s ← clamp(s·f, s_min, s_max)
/// g ← 0 where f = η−;  θ ← θ − sign(g)·s;  p ← g
/// ```
public struct Rprop: ElementwiseRule {
    let settings: OptimizerSettings

    public init(_ settings: OptimizerSettings) { self.settings = settings }

    public var kept: [(StateBuffer, Float)] { [(.prev, 0), (.stepSize, Float(settings.learningRate))] }

    public func step(_ lanes: Lanes, t: Int, rate: Double) {
        let h = settings
        let minus = F8(repeating: Float(h.etaMinus)), plus = F8(repeating: Float(h.etaPlus))
        let low = F8(repeating: Float(h.stepSizeMin)), high = F8(repeating: Float(h.stepSizeMax))
        let zero = F8(repeating: 0), one = F8(repeating: 1)
        @inline(__always)
        func body(_ θ: inout F8, _ g: F8, _ p: inout F8, _ s: inout F8, _: inout F8, _: inout F8) {
            let product = g * p
            let factor = one.replacing(with: plus, where: product .> 0).replacing(with: minus, where: product .< 0)
            s = (s * factor).clamped(lowerBound: low, upperBound: high)
            let flipped = factor .== minus
            let kept = g.replacing(with: zero, where: flipped)
            let sign = zero.replacing(with: one, where: kept .> 0).replacing(with: -one, where: kept .< 0)
            θ = θ - sign * s
            p = kept
        }
        lanes.run(.prev, .stepSize, body: body)
    }
}
