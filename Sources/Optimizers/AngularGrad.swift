// AngularGrad (Roy et al., 2021), the cos and tan forms of the authors' code (mhaut/AngularGrad) and of the
// paper's description, applied per element (reference/optimizers.md, "AngularGrad").
import Foundation
import Numerics

/// AngularGrad, cos and tan forms, **per element**.
///
/// The authors' code decides per tensor, by a majority vote over the tensor's elements, whether to replace its
/// stored angle; with all parameters in one flat buffer that vote is ill-defined, so here every element
/// decides for itself (replace when its new angle is not greater than its stored minimum).
///
/// Legend: θ parameters, g gradient, p previous gradient (starts at 0), m v moments, φ angular coefficient,
/// γ learning rate, β1 β2, λ weight decay, ε, t step (from 1), c1 = 1 − β1ᵗ, c2 = 1 − β2ᵗ.
/// ```
/// g ← g + λθ;  m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²
/// tan A ← |(p − g) / (1 + p·g)|;  A ← atan(tan A) in degrees;  term ← cos A (cos form) or tan A (tan form)
/// if not (A > A_min):  A_min ← A;  φ ← tanh(|term|)/2 + 1/2        (A_min starts at 0, φ at tanh(0)/2 + 1/2)
/// p ← g;  θ ← θ − (γ√c2/c1) · φ m / (√v + ε)
/// ```
/// As in the authors' code the stored minimum starts at 0 and angles are never negative, so A_min stays 0
/// and φ changes only where two consecutive gradients are exactly equal (A = 0): there the cos form's φ
/// becomes tanh(1)/2 + 1/2 ≈ 0.881 and the tan form's stays 1/2. Because A ≤ 0 exactly when tan A ≤ 0,
/// this keeps φ instead of A_min and the stored term: four buffers (m, v, p, φ) instead of the code's six.
/// (The two differ only after a gradient has already turned NaN.) So the authors' code runs as Adam at half the
/// rate (φ = 1/2) wherever consecutive gradients differ.
///
/// The paper's description (variants `paper-cos`, `paper-tan`) takes the minimum over the real angles between
/// successive gradients: A_min ← min(A_min, A) with A_min starting at +∞ (so after step 1 it is step 1's angle),
/// and φ ← tanh(|cos A_min|)/2 + 1/2 or tanh(|tan A_min|)/2 + 1/2 with the angle in radians. Since A = atan τ
/// with τ = |(p − g)/(1 + p·g)| ≥ 0 and atan is increasing, the state is τ_min = tan A_min, and
/// cos A_min = 1/√(1 + τ_min²): buffers m, v, p and τ_min.
public struct AngularGrad: ElementwiseRule {
    let settings: OptimizerSettings
    /// The paper's description (`paper-cos`, `paper-tan`) rather than the authors' code (`cos`, `tan`).
    let paper: Bool

    public init(_ settings: OptimizerSettings) {
        self.settings = settings
        paper = settings.variant == .paperCos || settings.variant == .paperTan
    }

    public var kept: [(StateBuffer, Float)] {
        [(.expAvg, 0), (.expAvgSq, 0), (.previousGrad, 0)]
            + (paper ? [(.minimumTangent, .infinity)] : [(.angularCoeff, Self.coefficient(0))])
    }

    /// φ = tanh(|term|)/2 + 1/2
    static func coefficient(_ term: Float) -> Float { Foundation.tanh(abs(term)) * 0.5 + 0.5 }

    public func step(_ lanes: Lanes, t: Int, rate: Double) {
        let h = settings, t = Double(t)
        let stepSize = Float(rate * (1 - pow(h.beta2, t)).squareRoot() / (1 - pow(h.beta1, t)))
        if paper {
            paperUpdate(stepSize, lanes)
        } else {
            authorsUpdate(stepSize, lanes)
        }
    }

    /// β1, β2, ε, λ as Float, and 1 − β1, 1 − β2 rounded once from Double, as torch does.
    private var constants: (Float, Float, Float, Float, Float, Float) {
        let h = settings
        return (Float(h.beta1), Float(h.beta2), Float(h.eps), Float(h.weightDecay), Float(1 - h.beta1), Float(1 - h.beta2))
    }

    /// The authors' code: φ replaced only where A ≤ A_min = 0.
    private func authorsUpdate(_ stepSize: Float, _ lanes: Lanes) {
        let (β1, β2, ε, λ, cβ1, cβ2) = constants
        let replaced = Self.coefficient(settings.variant == .cos ? 1 : 0)  // φ where A = 0: tanh(|cos 0|) or tanh(|tan 0|)
        @inline(__always)  // a local function, not a closure: always inlined into the loop
        func body(_ θ: inout F8, _ g: F8, _ m: inout F8, _ v: inout F8, _ p: inout F8, _ φ: inout F8) {
            let g = g + λ * θ
            m = β1 * m + cβ1 * g
            v = β2 * v + cβ2 * g * g
            // tan A = |q|, and A = atan(tan A)·180/π is > 0 exactly when tan A is. Where it is not, q is ±0
            // (so the term is cos 0 = 1 or tan 0 = 0 and φ a constant) or NaN (and φ becomes NaN, as tanh(NaN)).
            let q = (p - g) / (1 + p * g)
            φ = φ.replacing(with: replaced, where: q .== 0)
            φ = φ.replacing(with: q, where: q .!= q)
            p = g
            θ = θ - stepSize * (m * φ) / (v.squareRoot() + ε)
        }
        lanes.run(.expAvg, .expAvgSq, .previousGrad, .angularCoeff, body: body)
    }

    /// The paper's description: the running minimum of the real angles.
    private func paperUpdate(_ stepSize: Float, _ lanes: Lanes) {
        let (β1, β2, ε, λ, cβ1, cβ2) = constants
        let cosine = settings.variant == .paperCos
        @inline(__always)
        func body(_ θ: inout F8, _ g: F8, _ m: inout F8, _ v: inout F8, _ p: inout F8, _ τmin: inout F8) {
            let g = g + λ * θ
            m = β1 * m + cβ1 * g
            v = β2 * v + cβ2 * g * g
            let q = (p - g) / (1 + p * g)
            let τ = q.replacing(with: -q, where: q .< 0)
            τmin = τmin.replacing(with: τ, where: τ .< τmin)
            let term = cosine ? 1 / (1 + τmin * τmin).squareRoot() : τmin
            var φ = F8()
            for k in 0..<8 { φ[k] = Self.coefficient(term[k]) }
            p = g
            θ = θ - stepSize * (m * φ) / (v.squareRoot() + ε)
        }
        lanes.run(.expAvg, .expAvgSq, .previousGrad, .minimumTangent, body: body)
    }
}
