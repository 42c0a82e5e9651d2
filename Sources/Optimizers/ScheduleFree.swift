// Schedule-Free SGD and AdamW (Defazio et al. 2024, "The Road Less Scheduled"), as the authors' reference code
// (facebookresearch/schedule_free 1.4.1, SGDScheduleFreeReference and AdamWScheduleFreeReference) writes them: the
// base sequence z, the average x and the gradient point y, all kept.
import Foundation
import Numerics

/// The averaging weight both Schedule-Free rules share: linear warmup of the rate, and the weight of step t in the
/// average x, c_t = w_t / Σ w with w_t = t^r · (max rate so far)^power.
struct ScheduleFreeAverage {
    let warmupSteps: Double, r: Double, power: Double
    /// The largest rate so far (−1 before the first step) and the sum of the weights: the reference's `lr_max` and
    /// `weight_sum`, saved with the state.
    var maxRate = -1.0, weightSum = 0.0

    init(_ settings: OptimizerSettings) { (warmupSteps, r, power) = (settings.warmupSteps, settings.r, settings.weightLRPower) }

    var scalars: [String: Double] {
        get { ["lr_max": maxRate, "weight_sum": weightSum] }
        set { (maxRate, weightSum) = (newValue["lr_max"] ?? maxRate, newValue["weight_sum"] ?? weightSum) }
    }

    /// The warmed-up rate of step t (from 1) and the weight c_t.
    mutating func next(rate: Double, t: Int) -> (rate: Double, c: Double) {
        let k = Double(t - 1)
        let rate = rate * (k < warmupSteps ? (k + 1) / warmupSteps : 1)
        maxRate = max(rate, maxRate)
        let weight = pow(k + 1, r) * pow(maxRate, power)
        weightSum += weight
        return (rate, weightSum == 0 ? 0 : weight / weightSum)
    }
}

/// A Schedule-Free rule: its average's scalars are its state besides the buffers, and its model is x.
protocol ScheduleFreeRule: ElementwiseRule {
    var average: ScheduleFreeAverage { get set }
}

extension ScheduleFreeRule {
    public var scalars: [String: Double] {
        get { average.scalars }
        set { average.scalars = newValue }
    }

    public static var model: StateBuffer? { .x }
}

/// Schedule-Free SGD.
///
/// Legend: θ the parameters, which hold y (the point the gradient is taken at), z the base sequence, x the average
/// (the model: what a run evaluates, hashes and exports), g gradient, γ_t the warmed-up rate, c_t the averaging
/// weight, β momentum (`momentum`), λ weight decay. z and x start at θ.
/// ```
/// g ← g + λy;  z ← z − γ_t·g;  x ← (1 − c_t)·x + c_t·z;  y ← β·x + (1 − β)·z
/// ```
public struct ScheduleFreeSGD: ScheduleFreeRule {
    let settings: OptimizerSettings
    var average: ScheduleFreeAverage

    public init(_ settings: OptimizerSettings) { (self.settings, average) = (settings, ScheduleFreeAverage(settings)) }

    public var kept: [(StateBuffer, Float)] { [(.z, 0), (.x, 0)] }

    public mutating func step(_ lanes: Lanes, t: Int, rate: Double) {
        let (γ, c) = average.next(rate: rate, t: t)
        let λ = Float(settings.weightDecay), step = Float(γ), keep = Float(1 - c), take = Float(c)
        let β = Float(settings.momentum), rest = Float(1 - settings.momentum), first = t == 1
        @inline(__always)
        func body(_ θ: inout F8, _ g: F8, _ z: inout F8, _ x: inout F8, _: inout F8, _: inout F8) {
            if first { (z, x) = (θ, θ) }
            let g = g + λ * θ
            z = z - step * g
            x = x * keep + z * take
            θ = x * β + z * rest
        }
        lanes.run(.z, .x, body: body)
    }
}

/// Schedule-Free AdamW.
///
/// Legend as for Schedule-Free SGD, with v the second moment (`exp_avg_sq`), β1 β2 (`betas`), ε, t the step (from
/// 1); the decay is decoupled, taken at y.
/// ```
/// z ← z − γ_t·λ·y;  v ← β2·v + (1 − β2)·g²;  z ← z − γ_t·g / (√(v / (1 − β2^t)) + ε)
/// x ← (1 − c_t)·x + c_t·z;  y ← β1·x + (1 − β1)·z
/// ```
public struct ScheduleFreeAdamW: ScheduleFreeRule {
    let settings: OptimizerSettings
    var average: ScheduleFreeAverage

    public init(_ settings: OptimizerSettings) { (self.settings, average) = (settings, ScheduleFreeAverage(settings)) }

    public var kept: [(StateBuffer, Float)] { [(.z, 0), (.x, 0), (.expAvgSq, 0)] }

    public mutating func step(_ lanes: Lanes, t: Int, rate: Double) {
        let h = settings
        let (γ, c) = average.next(rate: rate, t: t)
        let correction = Float(1 - pow(h.beta2, Double(t)))
        let decay = Float(γ * h.weightDecay), step = Float(γ), keep = Float(1 - c), take = Float(c)
        let β1 = Float(h.beta1), rest = Float(1 - h.beta1), β2 = Float(h.beta2), fresh = Float(1 - h.beta2)
        let ε = Float(h.eps), first = t == 1
        @inline(__always)
        func body(_ θ: inout F8, _ g: F8, _ z: inout F8, _ x: inout F8, _ v: inout F8, _: inout F8) {
            if first { (z, x) = (θ, θ) }
            v = v * β2 + fresh * (g * g)
            let d = (v / correction).squareRoot() + ε
            z = z - decay * θ
            z = z - step * (g / d)
            x = x * keep + z * take
            θ = x * β1 + z * rest
        }
        lanes.run(.z, .x, .expAvgSq, body: body)
    }
}
