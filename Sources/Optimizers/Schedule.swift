// Learning-rate schedules (a pure function of the step number) and the rule that scales the learning rate
// with the global batch.
import Foundation

/// γ_t for t = 1, 2, …: an optional linear warmup, then a constant, step, exponential or cosine decay.
///
/// With base rate γ, warmup W steps and s = t − W − 1 the steps since warmup ended:
/// ```
/// t ≤ W:         γ t / W
/// constant:      γ
/// step:          γ · gamma^⌊s / step_size⌋
/// exponential:   γ · gamma^s
/// cosine:        min + (γ − min) (1 + cos(π · min(s, T) / T)) / 2      (T = decay_steps)
/// ```
public struct LearningRateSchedule: Equatable, Sendable {
    public enum Kind: String, CaseIterable, Sendable {
        case constant, step, exponential, cosine
    }

    public var kind: Kind = .constant
    public var warmupSteps = 0
    /// Steps between decays (step).
    public var stepSize = 1000
    /// Decay factor per `stepSize` steps (step) or per step (exponential).
    public var gamma = 0.1
    /// Length of the cosine decay in steps; nil: the rest of the run after warmup.
    public var decaySteps: Int? = nil
    /// The rate the cosine ends at.
    public var minimumRate = 0.0

    public init(kind: Kind = .constant) {
        self.kind = kind
        if kind == .exponential { gamma = 0.999 }
    }

    /// The learning rate for step t (from 1) of a run of `totalSteps`, given base rate `base`.
    public func rate(step t: Int, base γ: Double, totalSteps: Int) -> Double {
        if t <= warmupSteps { return γ * Double(t) / Double(warmupSteps) }
        let s = Double(t - warmupSteps - 1)
        switch kind {
        case .constant:
            return γ
        case .step:
            return γ * pow(gamma, (s / Double(stepSize)).rounded(.down))
        case .exponential:
            return γ * pow(gamma, s)
        case .cosine:
            let T = Double(max(decaySteps ?? (totalSteps - warmupSteps), 1))
            return minimumRate + (γ - minimumRate) * (1 + cos(Double.pi * min(s, T) / T)) / 2
        }
    }
}

/// How the learning rate follows the global batch B relative to the batch it was tuned for, B₀.
public enum BatchScaling: String, CaseIterable, Sendable {
    /// γ unchanged.
    case none
    /// γ · B/B₀ (Goyal et al., 2017).
    case linear
    /// γ · √(B/B₀) (Krizhevsky, 2014; the rule that keeps the update's variance for SGD).
    case sqrt

    public func scale(_ γ: Double, batch: Int, referenceBatch: Int) -> Double {
        let r = Double(batch) / Double(referenceBatch)
        switch self {
        case .none: return γ
        case .linear: return γ * r
        case .sqrt: return γ * r.squareRoot()
        }
    }
}
