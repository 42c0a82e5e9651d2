// Optimizers against the update rules of reference/optimizers.md, recomputed here independently in Double.
import DescentTestSupport
import Foundation
import Optimizers
import Testing

/// One reference step in Double: (θ, g, t, state) with t from 1; the state holds named buffers.
typealias ReferenceStep = (inout [Double], [Double], Int, inout [String: [Double]]) -> Void

/// The specification's equations for the optimizer `s` describes, in Double, written from
/// reference/optimizers.md (and, for AngularGrad, from the authors' code applied per element).
func referenceStep(_ s: OptimizerSettings) -> ReferenceStep {
    let γ = s.learningRate, λ = s.weightDecay, ε = s.eps, β1 = s.beta1, β2 = s.beta2
    func zeros(_ n: Int) -> [Double] { [Double](repeating: 0, count: n) }
    switch s.kind {
    case .sgd, .momentum, .nesterov:
        let μ = s.momentum, τ = s.dampening
        return { θ, gradient, t, state in
            let g = gradient.indices.map { gradient[$0] + λ * θ[$0] }
            if μ == 0 {
                for i in θ.indices { θ[i] -= γ * g[i] }
                return
            }
            var b = state["b"] ?? zeros(θ.count)
            for i in θ.indices {
                switch s.variant.rawValue {
                case "sutskever":
                    b[i] = μ * b[i] - γ * g[i]
                    θ[i] += b[i]
                case "ewma":
                    b[i] = μ * b[i] + (1 - μ) * g[i]
                    θ[i] -= γ * b[i]
                default:
                    b[i] = t == 1 ? g[i] : μ * b[i] + (1 - τ) * g[i]
                    θ[i] -= γ * (s.nesterov ? g[i] + μ * b[i] : b[i])
                }
            }
            state["b"] = b
        }
    case .adagrad:
        return { θ, gradient, t, state in
            let γ̃ = γ / (1 + Double(t - 1) * s.learningRateDecay)
            var sum = state["s"] ?? [Double](repeating: s.initialAccumulatorValue, count: θ.count)
            for i in θ.indices {
                let g = gradient[i] + λ * θ[i]
                sum[i] += g * g
                let d = s.variant == .epsInsideSqrt ? (sum[i] + ε).squareRoot() : sum[i].squareRoot() + ε
                θ[i] -= γ̃ * g / d
            }
            state["s"] = sum
        }
    case .rmsprop:
        let α = s.alpha, μ = s.momentum
        return { θ, gradient, _, state in
            var v = state["v"] ?? zeros(θ.count), ḡ = state["gbar"] ?? zeros(θ.count), b = state["b"] ?? zeros(θ.count)
            for i in θ.indices {
                let g = gradient[i] + λ * θ[i]
                v[i] = α * v[i] + (1 - α) * g * g
                var ṽ = v[i]
                if s.centered {
                    ḡ[i] = α * ḡ[i] + (1 - α) * g
                    ṽ -= ḡ[i] * ḡ[i]
                }
                let d = s.variant == .epsInsideSqrt ? (ṽ + ε).squareRoot() : ṽ.squareRoot() + ε
                if μ > 0 {
                    b[i] = μ * b[i] + g / d
                    θ[i] -= γ * b[i]
                } else {
                    θ[i] -= γ * g / d
                }
            }
            state["v"] = v; state["gbar"] = ḡ; state["b"] = b
        }
    case .adadelta:
        let ρ = s.rho
        return { θ, gradient, _, state in
            var v = state["v"] ?? zeros(θ.count), u = state["u"] ?? zeros(θ.count)
            for i in θ.indices {
                let g = gradient[i] + λ * θ[i]
                v[i] = ρ * v[i] + (1 - ρ) * g * g
                let Δ = (u[i] + ε).squareRoot() / (v[i] + ε).squareRoot() * g
                u[i] = ρ * u[i] + (1 - ρ) * Δ * Δ
                θ[i] -= γ * Δ
            }
            state["v"] = v; state["u"] = u
        }
    case .adam, .adamw:
        return { θ, gradient, t, state in
            var m = state["m"] ?? zeros(θ.count), v = state["v"] ?? zeros(θ.count), vmax = state["vmax"] ?? zeros(θ.count)
            let c1 = 1 - pow(β1, Double(t)), c2 = 1 - pow(β2, Double(t))
            for i in θ.indices {
                var g = gradient[i]
                if s.kind == .adamw { θ[i] *= 1 - γ * λ } else { g += λ * θ[i] }
                m[i] = β1 * m[i] + (1 - β1) * g
                v[i] = β2 * v[i] + (1 - β2) * g * g
                vmax[i] = max(vmax[i], v[i])
                let v̄ = s.amsgrad ? vmax[i] : v[i]
                switch s.variant.rawValue {
                case "no-bias-correction": θ[i] -= γ * m[i] / (v̄.squareRoot() + ε)
                case "kingma-ba": θ[i] -= γ * c2.squareRoot() / c1 * m[i] / (v̄.squareRoot() + ε)
                case "eps-inside-sqrt": θ[i] -= γ * (m[i] / c1) / (v̄ / c2 + ε).squareRoot()
                case "eps-inside-sqrt-no-bias-correction": θ[i] -= γ * m[i] / (v̄ + ε).squareRoot()
                default: θ[i] -= γ * (m[i] / c1) / (v̄.squareRoot() / c2.squareRoot() + ε)
                }
            }
            state["m"] = m; state["v"] = v; state["vmax"] = vmax
        }
    case .nadam:
        let ψ = s.momentumDecay
        func μ(_ k: Int) -> Double { β1 * (1 - 0.5 * pow(0.96, Double(k) * ψ)) }
        func product(_ k: Int) -> Double { (1...k).reduce(1.0) { $0 * μ($1) } }  // recomputed, not carried
        return { θ, gradient, t, state in
            var m = state["m"] ?? zeros(θ.count), v = state["v"] ?? zeros(θ.count)
            for i in θ.indices {
                let g = gradient[i] + λ * θ[i]
                m[i] = β1 * m[i] + (1 - β1) * g
                v[i] = β2 * v[i] + (1 - β2) * g * g
                let m̂ = μ(t + 1) * m[i] / (1 - product(t + 1)) + (1 - μ(t)) * g / (1 - product(t))
                θ[i] -= γ * m̂ / ((v[i] / (1 - pow(β2, Double(t)))).squareRoot() + ε)
            }
            state["m"] = m; state["v"] = v
        }
    case .radam:
        // Liu et al.'s rectified Adam as torch writes it (frontier.md): ρ∞, ρt and r recomputed from t each step.
        return { θ, gradient, t, state in
            var m = state["m"] ?? zeros(θ.count), v = state["v"] ?? zeros(θ.count)
            let c1 = 1 - pow(β1, Double(t)), c2 = 1 - pow(β2, Double(t))
            let ρInf = 2 / (1 - β2) - 1, ρt = ρInf - 2 * Double(t) * pow(β2, Double(t)) / c2
            for i in θ.indices {
                if s.decoupledWeightDecay { θ[i] *= 1 - γ * λ }
                let g = gradient[i] + (s.decoupledWeightDecay ? 0 : λ * θ[i])
                m[i] = β1 * m[i] + (1 - β1) * g
                v[i] = β2 * v[i] + (1 - β2) * g * g
                if ρt > 5 {
                    let r = ((ρt - 4) * (ρt - 2) * ρInf / ((ρInf - 4) * (ρInf - 2) * ρt)).squareRoot()
                    θ[i] -= γ * (m[i] / c1) * r * c2.squareRoot() / (v[i].squareRoot() + ε)
                } else {
                    θ[i] -= γ * m[i] / c1
                }
            }
            state["m"] = m; state["v"] = v
        }
    case .adamax:
        return { θ, gradient, t, state in
            var m = state["m"] ?? zeros(θ.count), u = state["u"] ?? zeros(θ.count)
            for i in θ.indices {
                let g = gradient[i] + λ * θ[i]
                m[i] = β1 * m[i] + (1 - β1) * g
                u[i] = max(β2 * u[i], abs(g) + ε)
                θ[i] -= γ / (1 - pow(β1, Double(t))) * m[i] / u[i]
            }
            state["m"] = m; state["u"] = u
        }
    case .lion:
        return { θ, gradient, _, state in
            var m = state["m"] ?? zeros(θ.count)
            for i in θ.indices {
                let c = β1 * m[i] + (1 - β1) * gradient[i]
                θ[i] = θ[i] * (1 - γ * λ) - γ * (c > 0 ? 1 : c < 0 ? -1 : 0)
                m[i] = β2 * m[i] + (1 - β2) * gradient[i]
            }
            state["m"] = m
        }
    case .asgd:
        // torch's ASGD: η starts at γ and μ at 1; both follow the step count after each update.
        return { θ, gradient, t, state in
            var a = state["ax"] ?? zeros(θ.count)
            let η = state["eta"]?[0] ?? γ, μ = state["mu"]?[0] ?? 1
            for i in θ.indices {
                let g = gradient[i] + λ * θ[i]
                θ[i] *= 1 - s.lambd * η
                θ[i] -= η * g
                a[i] = μ == 1 ? θ[i] : a[i] + μ * (θ[i] - a[i])
            }
            state["ax"] = a
            state["eta"] = [γ / pow(1 + s.lambd * γ * Double(t), s.alpha)]
            state["mu"] = [1 / max(1, Double(t) - s.t0)]
        }
    case .rprop:
        // torch's iRprop−: step sizes from γ, grown or shrunk by the sign of g·p, a flipped gradient counted as 0.
        return { θ, gradient, _, state in
            var p = state["prev"] ?? zeros(θ.count), size = state["size"] ?? [Double](repeating: γ, count: θ.count)
            for i in θ.indices {
                let product = gradient[i] * p[i]
                let f = product > 0 ? s.etaPlus : product < 0 ? s.etaMinus : 1
                size[i] = min(max(size[i] * f, s.stepSizeMin), s.stepSizeMax)
                let g = f == s.etaMinus ? 0 : gradient[i]
                θ[i] -= (g > 0 ? 1 : g < 0 ? -1 : 0) * size[i]
                p[i] = g
            }
            state["prev"] = p; state["size"] = size
        }
    case .muon:
        // Muon works per matrix: its reference needs the tensors, and holds for `MuonTests.layout`.
        return MuonTests.reference(s)
    case .adafactor:
        return AdafactorTests.reference(s)  // for `AdafactorTests.layout`
    case .lbfgs:
        return LBFGSTests.singleGradientReference(s)
    case .shampoo:
        return ShampooTests.reference(s)  // for `ShampooTests.layout`
    case .newton, .saddleFreeNewton, .newtonCG:
        preconditionFailure("\(s.kind) steps with Hessian-vector products: NewtonTests checks it")
    case .scheduleFreeSGD, .scheduleFreeAdamW:
        // The authors' reference implementations (SGDScheduleFreeReference, AdamWScheduleFreeReference): z, x and
        // y kept, z and x from θ at the first step; the rate warmed up, AdamW's second moment bias-corrected, and
        // the average's weight c = t^r·(max rate)^power / Σ.
        let adam = s.kind == .scheduleFreeAdamW, β = adam ? β1 : s.momentum
        return { θ, gradient, t, state in
            var z = state["z"] ?? θ, x = state["x"] ?? θ, v = state["v"] ?? zeros(θ.count)
            let k = Double(t - 1)
            let rate = γ * (k < s.warmupSteps ? (k + 1) / s.warmupSteps : 1)
            let maxRate = max(rate, state["max"]?[0] ?? -1)
            let weight = pow(k + 1, s.r) * pow(maxRate, s.weightLRPower)
            let sum = (state["sum"]?[0] ?? 0) + weight
            let c = weight / sum
            for i in θ.indices {
                if adam {
                    v[i] = β2 * v[i] + (1 - β2) * gradient[i] * gradient[i]
                    z[i] -= rate * λ * θ[i]
                    z[i] -= rate * gradient[i] / ((v[i] / (1 - pow(β2, k + 1))).squareRoot() + ε)
                } else {
                    z[i] -= rate * (gradient[i] + λ * θ[i])
                }
                x[i] = (1 - c) * x[i] + c * z[i]
                θ[i] = β * x[i] + (1 - β) * z[i]
            }
            state["z"] = z; state["x"] = x; state["v"] = v; state["max"] = [maxRate]; state["sum"] = [sum]
        }
    case .angulargrad where s.variant.rawValue.hasPrefix("paper"):
        // The paper's description, element by element: the running minimum of the real angles, in radians.
        return { θ, gradient, t, state in
            var m = state["m"] ?? zeros(θ.count), v = state["v"] ?? zeros(θ.count), p = state["p"] ?? zeros(θ.count)
            var minimum = state["min"] ?? [Double](repeating: .infinity, count: θ.count)
            let stepSize = γ * (1 - pow(β2, Double(t))).squareRoot() / (1 - pow(β1, Double(t)))
            for i in θ.indices {
                let g = gradient[i] + λ * θ[i]
                m[i] = β1 * m[i] + (1 - β1) * g
                v[i] = β2 * v[i] + (1 - β2) * g * g
                minimum[i] = min(minimum[i], atan(abs((p[i] - g) / (1 + p[i] * g))))
                let term = s.variant == .paperTan ? tan(minimum[i]) : cos(minimum[i])
                let coefficient = tanh(abs(term)) * 0.5 + 0.5
                p[i] = g
                θ[i] -= stepSize * m[i] * coefficient / (v[i].squareRoot() + ε)
            }
            state["m"] = m; state["v"] = v; state["p"] = p; state["min"] = minimum
        }
    case .angulargrad:
        // The authors' update, element by element, with their running minimum and stored term.
        return { θ, gradient, t, state in
            var m = state["m"] ?? zeros(θ.count), v = state["v"] ?? zeros(θ.count), p = state["p"] ?? zeros(θ.count)
            var minimum = state["min"] ?? zeros(θ.count), final = state["final"] ?? zeros(θ.count)
            let stepSize = γ * (1 - pow(β2, Double(t))).squareRoot() / (1 - pow(β1, Double(t)))
            for i in θ.indices {
                let g = gradient[i] + λ * θ[i]
                m[i] = β1 * m[i] + (1 - β1) * g
                v[i] = β2 * v[i] + (1 - β2) * g * g
                let tanθ = abs((p[i] - g) / (1 + p[i] * g))
                let cosθ = 1 / (1 + tanθ * tanθ).squareRoot()
                let angle = atan(tanθ) * 180 / Double.pi
                if !(angle > minimum[i]) {
                    minimum[i] = angle
                    final[i] = s.variant == .tan ? tanθ : cosθ
                }
                let coefficient = tanh(abs(final[i])) * 0.5 + 0.5
                p[i] = g
                θ[i] -= stepSize * m[i] * coefficient / (v[i].squareRoot() + ε)
            }
            state["m"] = m; state["v"] = v; state["p"] = p; state["min"] = minimum; state["final"] = final
        }
    }
}

/// A named optimizer setting.
struct OptimizerCase: CustomTestStringConvertible, Sendable {
    var settings: OptimizerSettings
    var label: String
    var testDescription: String { label }

    init(_ kind: OptimizerKind, _ details: String = "", _ change: (inout OptimizerSettings) -> Void = { _ in }) {
        var s = OptimizerSettings(kind)
        change(&s)
        settings = s
        label = kind.rawValue + (s.variant == kind.variants[0] ? "" : " \(s.variant.rawValue)") + (details.isEmpty ? "" : " " + details)
    }
}

/// Every optimizer and variant, with defaults and with the options that change its arithmetic.
let optimizerCases: [OptimizerCase] = [
    OptimizerCase(.sgd, "lr 0.1") { $0.learningRate = 0.1 },
    OptimizerCase(.sgd, "weight decay 0.01") { $0.learningRate = 0.05; $0.weightDecay = 0.01 },
    OptimizerCase(.momentum),
    OptimizerCase(.momentum, "0.8 dampening 0.3 weight decay 0.1") {
        $0.learningRate = 0.02; $0.momentum = 0.8; $0.dampening = 0.3; $0.weightDecay = 0.1
    },
    OptimizerCase(.momentum, "0.5 large lr 3") { $0.learningRate = 3; $0.momentum = 0.5 },
    OptimizerCase(.momentum, "μ 0.9") { $0.variant = .sutskever },
    OptimizerCase(.momentum, "weight decay 0.1") { $0.variant = .sutskever; $0.weightDecay = 0.1 },
    OptimizerCase(.momentum, "β 0.9 lr 0.1") { $0.variant = .ewma; $0.learningRate = 0.1 },
    OptimizerCase(.sgd, "nesterov via flag, weight decay 0.01") { $0.momentum = 0.7; $0.nesterov = true; $0.weightDecay = 0.01 },
    OptimizerCase(.nesterov),
    OptimizerCase(.adagrad),
    OptimizerCase(.adagrad, "lr decay 0.1, accumulator 0.5, weight decay 0.01, lr 2") {
        $0.learningRateDecay = 0.1; $0.initialAccumulatorValue = 0.5; $0.weightDecay = 0.01; $0.learningRate = 2
    },
    OptimizerCase(.adagrad, "ε 1e-10") { $0.variant = .epsInsideSqrt },
    OptimizerCase(.rmsprop),
    OptimizerCase(.rmsprop, "centered") { $0.centered = true },
    OptimizerCase(.rmsprop, "momentum 0.5") { $0.momentum = 0.5 },
    OptimizerCase(.rmsprop, "centered, momentum 0.9, weight decay 0.1, α 0.9") {
        $0.centered = true; $0.momentum = 0.9; $0.weightDecay = 0.1; $0.alpha = 0.9
    },
    OptimizerCase(.rmsprop, "ε 1e-4") { $0.variant = .epsInsideSqrt; $0.eps = 1e-4 },
    OptimizerCase(.adadelta),
    OptimizerCase(.adadelta, "lr 0.5 ρ 0.95 weight decay 0.1") { $0.learningRate = 0.5; $0.rho = 0.95; $0.weightDecay = 0.1 },
    OptimizerCase(.adam),
    OptimizerCase(.adam, "amsgrad") { $0.amsgrad = true },
    OptimizerCase(.adam, "weight decay 0.1, β (0.8, 0.99)") { $0.weightDecay = 0.1; $0.beta1 = 0.8; $0.beta2 = 0.99 },
    OptimizerCase(.adam, "large lr 0.5") { $0.learningRate = 0.5 },
    OptimizerCase(.adam) { $0.variant = .noBiasCorrection },
    OptimizerCase(.adam) { $0.variant = .kingmaBa },
    OptimizerCase(.adam, "amsgrad") { $0.variant = .kingmaBa; $0.amsgrad = true },
    OptimizerCase(.adam, "ε 1e-4") { $0.variant = .epsInsideSqrt; $0.eps = 1e-4 },
    OptimizerCase(.adam, "amsgrad, weight decay 0.1") { $0.variant = .epsInsideSqrt; $0.amsgrad = true; $0.weightDecay = 0.1 },
    OptimizerCase(.adam, "ε 1e-4") { $0.variant = .epsInsideSqrtNoBiasCorrection; $0.eps = 1e-4 },
    OptimizerCase(.adam) { $0.variant = .epsInsideSqrtNoBiasCorrection },
    OptimizerCase(.adamw),
    OptimizerCase(.adamw, "amsgrad, weight decay 0.5, lr 0.1") { $0.amsgrad = true; $0.weightDecay = 0.5; $0.learningRate = 0.1 },
    OptimizerCase(.adamw) { $0.variant = .noBiasCorrection },
    OptimizerCase(.adamw, "weight decay 0.5") { $0.variant = .epsInsideSqrt; $0.weightDecay = 0.5 },
    OptimizerCase(.adamw) { $0.variant = .epsInsideSqrtNoBiasCorrection },
    OptimizerCase(.nadam),
    OptimizerCase(.nadam, "momentum decay 0.05, weight decay 0.1, lr 0.02") {
        $0.momentumDecay = 0.05; $0.weightDecay = 0.1; $0.learningRate = 0.02
    },
    OptimizerCase(.angulargrad),
    OptimizerCase(.angulargrad) { $0.variant = .tan },
    OptimizerCase(.angulargrad, "weight decay 0.1, lr 0.05") { $0.weightDecay = 0.1; $0.learningRate = 0.05 },
    OptimizerCase(.angulargrad) { $0.variant = .paperCos },
    OptimizerCase(.angulargrad) { $0.variant = .paperTan },
    OptimizerCase(.angulargrad, "weight decay 0.1, lr 0.05") { $0.variant = .paperCos; $0.weightDecay = 0.1; $0.learningRate = 0.05 },
    OptimizerCase(.radam),
    OptimizerCase(.radam, "weight decay 0.1, β (0.8, 0.9)") { $0.weightDecay = 0.1; $0.beta1 = 0.8; $0.beta2 = 0.9 },
    OptimizerCase(.radam, "decoupled weight decay 0.1, lr 0.05") { $0.decoupledWeightDecay = true; $0.weightDecay = 0.1; $0.learningRate = 0.05 },
    OptimizerCase(.radam, "large lr 0.5, β2 0.99") { $0.learningRate = 0.5; $0.beta2 = 0.99 },
    OptimizerCase(.adamax),
    OptimizerCase(.adamax, "weight decay 0.1, lr 0.05, ε 1e-4") { $0.weightDecay = 0.1; $0.learningRate = 0.05; $0.eps = 1e-4 },
    OptimizerCase(.asgd),
    OptimizerCase(.asgd, "averaging from step 10, λd 0.05, α 0.5, weight decay 0.1, lr 0.1") {
        $0.t0 = 10; $0.lambd = 0.05; $0.alpha = 0.5; $0.weightDecay = 0.1; $0.learningRate = 0.1
    },
    OptimizerCase(.rprop),
    OptimizerCase(.rprop, "η (0.3, 1.5), step sizes [0.001, 0.05], lr 0.02") {
        $0.etaMinus = 0.3; $0.etaPlus = 1.5; $0.stepSizeMin = 0.001; $0.stepSizeMax = 0.05; $0.learningRate = 0.02
    },
    OptimizerCase(.lion),
    OptimizerCase(.lion, "weight decay 0.5, lr 0.01, β (0.95, 0.98)") { $0.weightDecay = 0.5; $0.learningRate = 0.01; $0.beta1 = 0.95; $0.beta2 = 0.98 },
    OptimizerCase(.scheduleFreeSGD, "lr 0.1") { $0.learningRate = 0.1 },
    OptimizerCase(.scheduleFreeSGD, "warmup 5, r 1, weight-lr power 1, weight decay 0.1, lr 0.05") {
        $0.warmupSteps = 5; $0.r = 1; $0.weightLRPower = 1; $0.weightDecay = 0.1; $0.learningRate = 0.05
    },
    OptimizerCase(.scheduleFreeSGD, "momentum 0.5, large lr 3") { $0.momentum = 0.5; $0.learningRate = 3 },
    OptimizerCase(.scheduleFreeAdamW),
    OptimizerCase(.scheduleFreeAdamW, "weight decay 0.1, warmup 10, r 0.5") { $0.weightDecay = 0.1; $0.warmupSteps = 10; $0.r = 0.5 },
    OptimizerCase(.scheduleFreeAdamW, "β (0.95, 0.99), weight-lr power 0, large lr 0.5") {
        $0.beta1 = 0.95; $0.beta2 = 0.99; $0.weightLRPower = 0; $0.learningRate = 0.5
    },
]

/// Gradient t for parameter i: a smooth pattern with scales from 1e-6 to 1e3 (tiny and huge gradients),
/// plus elements whose gradient repeats from step to step and elements whose gradient is zero.
func fixedGradient(step t: Int, count n: Int) -> [Double] {
    let scales = [1e-6, 1e-2, 1, 1e3]
    return (0..<n).map { i in
        if i % 11 == 10 { return 0 }
        if i % 7 == 5 { return 0.3 * scales[i % scales.count] }
        return sin(Double(i) * 0.7 + Double(t) * 1.3) * scales[i % scales.count]
    }
}

/// Runs `optimizer` and the Double reference `step` side by side over 25 gradients, from θᵢ = cos i, and expects
/// them equal after steps 1 and 25 to 1e-5 of each element's scale. Float rounding accumulates in proportion to the
/// values an element passes through, so the scale is the largest |θ| on its reference path (at least 0.1).
/// Returns the reference's state and the scales.
@discardableResult
func expectMatchesReference(_ optimizer: Optimizer, _ step: ReferenceStep, label: String, count n: Int,
                            gradient: (Int) -> [Double]) -> (state: [String: [Double]], scale: [Double]) {
    var theta = (0..<n).map { Float(cos(Double($0))) }, reference = theta.map(Double.init)
    var state: [String: [Double]] = [:], scale = reference.map { max(abs($0), 0.1) }
    for t in 1...25 {
        let g = gradient(t).map(Float.init)
        optimizer.update(&theta, gradient: g)
        step(&reference, g.map(Double.init), t, &state)
        for i in 0..<n { scale[i] = max(scale[i], abs(reference[i])) }
        if t == 1 || t == 25 {
            for i in 0..<n {
                #expect(close(Double(theta[i]), reference[i], relative: 1e-5, floor: scale[i]),
                        "\(label) step \(t) θ[\(i)]: \(theta[i]) vs \(reference[i])")
            }
        }
    }
    return (state, scale)
}

@Suite("Optimizers against the reference equations")
struct OptimizerReferenceTests {
    /// 37 parameters: four SIMD blocks and a tail of five.
    static let n = 37

    @Test("1 and 25 steps on a fixed gradient sequence match the Double reference (relative 1e-5)",
          arguments: optimizerCases)
    func matchesReference(_ c: OptimizerCase) {
        #expect(c.settings.validate() == nil)
        let optimizer = c.settings.makeOptimizer(parameterCount: Self.n)
        let (state, scale) = expectMatchesReference(optimizer, referenceStep(c.settings), label: c.label, count: Self.n) {
            fixedGradient(step: $0, count: Self.n)
        }
        #expect(optimizer.stepCount == 25)
        #expect(optimizer.name == c.settings.kind.rawValue)
        // ASGD's point is its average, and Schedule-Free's model is its x: they must follow the reference too.
        for name in ["ax", "x"] {
            guard let average = state[name] else { continue }
            let kept = optimizer.state().buffers[name] ?? []
            #expect(kept.count == Self.n, "\(c.label) keeps no '\(name)'")
            for i in kept.indices {
                #expect(close(Double(kept[i]), average[i], relative: 1e-5, floor: scale[i]), "\(c.label) \(name)[\(i)]: \(kept[i]) vs \(average[i])")
            }
        }
        // The model is x where the rule keeps one, else the parameters.
        #expect(optimizer.modelPoint() == (state["x"] == nil ? nil : optimizer.state().buffers["x"]))
    }

    @Test("saved state restores into a fresh optimizer that continues identically", arguments: optimizerCases)
    func stateRoundTrip(_ c: OptimizerCase) throws {
        let a = c.settings.makeOptimizer(parameterCount: Self.n), b = c.settings.makeOptimizer(parameterCount: Self.n)
        var thetaA = (0..<Self.n).map { Float($0) / 10 }
        for t in 1...5 { a.update(&thetaA, gradient: fixedGradient(step: t, count: Self.n).map(Float.init)) }
        // Through JSON, as a checkpoint would hold it.
        let saved = try JSONDecoder().decode(OptimizerState.self, from: JSONEncoder().encode(a.state()))
        try b.restore(saved)
        var thetaB = thetaA
        for t in 6...9 {
            let g = fixedGradient(step: t, count: Self.n).map(Float.init)
            a.update(&thetaA, gradient: g)
            b.update(&thetaB, gradient: g)
        }
        #expect(thetaA == thetaB)
        #expect(b.stepCount == 9)
    }

    @Test("a state from another optimizer or of another size is refused")
    func stateMismatch() {
        let adam = OptimizerSettings(.adam).makeOptimizer(parameterCount: 4)
        #expect(throws: OptimizerStateError.self) { try adam.restore(OptimizerSettings(.nadam).makeOptimizer(parameterCount: 4).state()) }
        #expect(throws: OptimizerStateError.self) { try adam.restore(OptimizerSettings(.adam).makeOptimizer(parameterCount: 5).state()) }
        var amsgrad = OptimizerSettings(.adam)
        amsgrad.amsgrad = true
        #expect(throws: OptimizerStateError.self) { try adam.restore(amsgrad.makeOptimizer(parameterCount: 4).state()) }
    }

    @Test("state holds only the buffers the rule needs", arguments: [
        (OptimizerCase(.sgd), [String]()),
        (OptimizerCase(.momentum), ["momentum_buffer"]),
        (OptimizerCase(.momentum) { $0.variant = .ewma }, ["momentum_buffer"]),
        (OptimizerCase(.nesterov), ["momentum_buffer"]),
        (OptimizerCase(.adagrad), ["sum"]),
        (OptimizerCase(.rmsprop), ["square_avg"]),
        (OptimizerCase(.rmsprop, "centered momentum") { $0.centered = true; $0.momentum = 0.9 },
         ["square_avg", "grad_avg", "momentum_buffer"]),
        (OptimizerCase(.adadelta), ["square_avg", "acc_delta"]),
        (OptimizerCase(.adam), ["exp_avg", "exp_avg_sq"]),
        (OptimizerCase(.adam, "amsgrad") { $0.amsgrad = true }, ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]),
        (OptimizerCase(.adamw), ["exp_avg", "exp_avg_sq"]),
        (OptimizerCase(.nadam), ["exp_avg", "exp_avg_sq"]),
        (OptimizerCase(.angulargrad), ["exp_avg", "exp_avg_sq", "previous_grad", "angular_coeff"]),
        (OptimizerCase(.angulargrad) { $0.variant = .paperTan }, ["exp_avg", "exp_avg_sq", "previous_grad", "minimum_tangent"]),
        (OptimizerCase(.scheduleFreeSGD), ["z", "x"]),
        (OptimizerCase(.scheduleFreeAdamW), ["z", "x", "exp_avg_sq"]),
    ])
    func stateSize(_ c: OptimizerCase, _ buffers: [String]) {
        let state = c.settings.makeOptimizer(parameterCount: 10).state()
        #expect(state.buffers.keys.sorted() == buffers.sorted())
        #expect(state.buffers.values.allSatisfy { $0.count == 10 })
    }
}

@Suite("Equivalences the specification states")
struct OptimizerEquivalenceTests {
    /// ∇f for f(θ) = ½ Σ a_i θ_i² with curvatures a_i from 0.5 to 4.
    static let curvature: [Double] = [0.5, 1, 2, 4, 0.75]
    static func gradient(_ θ: [Float]) -> [Float] { θ.indices.map { Float(curvature[$0]) * θ[$0] } }

    @Test("torch Nesterov equals the look-ahead form at constant lr: θ_torch = θ + μv, and 0.81 after one step on x²/2")
    func nesterovLookAhead() {
        var s = OptimizerSettings(.nesterov)
        s.learningRate = 0.1
        let torch = s.makeOptimizer(parameterCount: 5)
        var θtorch: [Float] = [1, -2, 0.5, 3, -1]
        var θ = θtorch.map(Double.init), v = [Double](repeating: 0, count: 5)  // v ← μv − γ∇f(θ + μv); θ ← θ + v
        for step in 1...30 {
            torch.update(&θtorch, gradient: Self.gradient(θtorch))
            for i in 0..<5 {
                v[i] = 0.9 * v[i] - 0.1 * Self.curvature[i] * (θ[i] + 0.9 * v[i])
                θ[i] += v[i]
            }
            if step == 1 { #expect(abs(Double(θtorch[1]) / -2 - 0.81) < 1e-6) }  // a = 1: the spec's 0.81
            for i in 0..<5 {
                // relative to the starting scale (|θ₀| ≥ 0.5): the iterates shrink towards 0
                #expect(close(Double(θtorch[i]), θ[i] + 0.9 * v[i], relative: 1e-5, floor: 0.5), "step \(step) θ[\(i)]")
            }
        }
    }

    @Test("Sutskever momentum equals torch momentum at constant lr (seed 001's form)")
    func sutskeverEqualsTorch() {
        var torchSettings = OptimizerSettings(.momentum)
        torchSettings.learningRate = 0.1
        var sutskeverSettings = torchSettings
        sutskeverSettings.variant = .sutskever
        let torch = torchSettings.makeOptimizer(parameterCount: 5), sutskever = sutskeverSettings.makeOptimizer(parameterCount: 5)
        var a: [Float] = [1, -2, 0.5, 3, -1], b = a
        for step in 1...40 {
            torch.update(&a, gradient: Self.gradient(a))
            sutskever.update(&b, gradient: Self.gradient(b))
            for i in 0..<5 { #expect(close(Double(a[i]), Double(b[i]), relative: 1e-5, floor: 0.5), "step \(step) θ[\(i)]") }
        }
        // A changing learning rate separates them (the reason torch is the default and this a variant).
        torch.learningRate = 0.3
        sutskever.learningRate = 0.3
        torch.update(&a, gradient: Self.gradient(a))
        sutskever.update(&b, gradient: Self.gradient(b))
        #expect(zip(a, b).contains { !close(Double($0), Double($1), relative: 1e-3, floor: 1e-3) })
    }

    @Test("AdamW with λ = 0 equals Adam, bit for bit", arguments: [false, true])
    func adamWithoutDecay(amsgrad: Bool) {
        var adam = OptimizerSettings(.adam), adamw = OptimizerSettings(.adamw)
        adam.amsgrad = amsgrad
        adamw.amsgrad = amsgrad
        adamw.weightDecay = 0
        let x = adam.makeOptimizer(parameterCount: 37), y = adamw.makeOptimizer(parameterCount: 37)
        var a = (0..<37).map { Float(cos(Double($0))) }, b = a
        for t in 1...25 {
            let g = fixedGradient(step: t, count: 37).map(Float.init)
            x.update(&a, gradient: g)
            y.update(&b, gradient: g)
        }
        #expect(a == b)
        #expect(a != (0..<37).map { Float(cos(Double($0))) })
    }
}

@Suite("Learning-rate schedules and batch scaling")
struct ScheduleTests {
    static func rates(_ s: LearningRateSchedule, _ steps: ClosedRange<Int>, total: Int = 100) -> [Double] {
        steps.map { s.rate(step: $0, base: 1, totalSteps: total) }
    }

    @Test("each schedule follows its formula")
    func formulas() {
        #expect(Self.rates(LearningRateSchedule(), 1...3) == [1, 1, 1])
        var step = LearningRateSchedule(kind: .step)
        step.stepSize = 3
        step.gamma = 0.5
        #expect(Self.rates(step, 1...7) == [1, 1, 1, 0.5, 0.5, 0.5, 0.25])
        var exponential = LearningRateSchedule(kind: .exponential)
        exponential.gamma = 0.9
        #expect(zip(Self.rates(exponential, 1...3), [1, 0.9, 0.81]).allSatisfy { close($0, $1, relative: 1e-12) })
        var cosine = LearningRateSchedule(kind: .cosine)
        cosine.decaySteps = 10
        let c = Self.rates(cosine, 1...12)
        #expect(c[0] == 1 && close(c[5], 0.5, relative: 1e-12) && abs(c[10]) < 1e-12 && abs(c[11]) < 1e-12)
        cosine.minimumRate = 0.1
        #expect(close(cosine.rate(step: 6, base: 1, totalSteps: 0), 0.55, relative: 1e-12))
        // Without decay_steps the cosine spans the run after warmup.
        cosine.decaySteps = nil
        cosine.minimumRate = 0
        cosine.warmupSteps = 4
        #expect(Self.rates(cosine, 1...5, total: 24) == [0.25, 0.5, 0.75, 1, 1])
        #expect(close(cosine.rate(step: 15, base: 1, totalSteps: 24), 0.5, relative: 1e-12))
        #expect(abs(cosine.rate(step: 25, base: 1, totalSteps: 24)) < 1e-12)
    }

    @Test("batch scaling: none, linear, sqrt")
    func batchScaling() {
        #expect(BatchScaling.none.scale(0.1, batch: 512, referenceBatch: 128) == 0.1)
        #expect(close(BatchScaling.linear.scale(0.1, batch: 512, referenceBatch: 128), 0.4, relative: 1e-12))
        #expect(close(BatchScaling.sqrt.scale(0.1, batch: 512, referenceBatch: 128), 0.2, relative: 1e-12))
    }
}

@Suite("Muon against torch 2.13's equations")
struct MuonTests {
    /// Two matrices, one kept row-major ([3, 5]) and one stored as its transpose ([6, 4] held as 4 × 6, as the MLP
    /// keeps its weights), each with a bias.
    static let layout = [
        TensorShape(name: "w1", shape: [3, 5], range: 0..<15), TensorShape(name: "b1", shape: [3], range: 15..<18),
        // Element (i, j) of w2 at 18 + 6j + i.
        TensorShape(name: "w2", shape: [6, 4], range: 18..<42, positions: (0..<24).map { 18 + ($0 % 4) * 6 + $0 / 4 }),
        TensorShape(name: "b2", shape: [4], range: 42..<46),
    ]
    static let n = 46

    /// `fixedGradient` with its scales 1e-6 … 1e3 narrowed to 0.1 … 10 (and its zeros and repeats kept). The
    /// iteration multiplies a weak direction by up to a⁵ ≈ 490, rounding included: with nine decades inside one
    /// matrix, single precision ends 1.6e-6 from Double after 25 steps at lr 0.02 (1.6e-5 of the 0.1 floor).
    static func gradient(step t: Int) -> [Double] {
        fixedGradient(step: t, count: n).enumerated().map { i, g in g / [1e-6, 1e-2, 1, 1e3][i % 4] * [0.1, 1, 10, 3][i % 4] }
    }

    /// torch's `_zeropower_via_newtonschulz` in Double, on an A × B matrix (row-major).
    static func newtonSchulz(_ g: [[Double]], steps: Int, eps: Double) -> [[Double]] {
        let (a, b, c) = (3.4445, -4.7750, 2.0315)
        func product(_ p: [[Double]], _ q: [[Double]]) -> [[Double]] {
            p.map { row in q[0].indices.map { j in row.indices.reduce(0.0) { $0 + row[$1] * q[$1][j] } } }
        }
        func transpose(_ m: [[Double]]) -> [[Double]] { m[0].indices.map { j in m.map { $0[j] } } }
        let tall = g.count > g[0].count
        var x = tall ? transpose(g) : g
        let norm = x.joined().reduce(0) { $0 + $1 * $1 }.squareRoot()
        x = x.map { $0.map { $0 / max(norm, eps) } }
        for _ in 0..<steps {
            let s = product(x, transpose(x)), s2 = product(s, s)
            let update = s.indices.map { i in s[i].indices.map { j in b * s[i][j] + c * s2[i][j] } }
            let ux = product(update, x)
            x = x.indices.map { i in x[i].indices.map { j in a * x[i][j] + ux[i][j] } }
        }
        return tall ? transpose(x) : x
    }

    /// torch.optim.Muon's step on each matrix (in its torch shape), and `others` by its own Double reference on the
    /// biases, over the flat buffer of `layout`.
    static func reference(_ s: OptimizerSettings) -> ReferenceStep {
        let others = referenceStep(s.othersSettings)
        let biases = layout.filter { $0.shape.count == 1 }.flatMap { Array($0.range) }
        return { θ, g, t, state in
            var buffer = state["M"] ?? [Double](repeating: 0, count: θ.count)
            for w in layout where w.shape.count == 2 {
                let (rows, cols) = (w.shape[0], w.shape[1])
                // Element (i, j) of the torch-shaped matrix in the flat buffer.
                func at(_ i: Int, _ j: Int) -> Int { w.name == "w2" ? 18 + j * rows + i : w.range.lowerBound + i * cols + j }
                var u = [[Double]](repeating: [Double](repeating: 0, count: cols), count: rows)
                for i in 0..<rows {
                    for j in 0..<cols {
                        let k = at(i, j)
                        buffer[k] += (1 - s.momentum) * (g[k] - buffer[k])
                        u[i][j] = s.nesterov ? g[k] + s.momentum * (buffer[k] - g[k]) : buffer[k]
                    }
                }
                let x = newtonSchulz(u, steps: Int(s.nsSteps), eps: s.eps)
                let rate = s.learningRate * max(1, Double(rows) / Double(cols)).squareRoot()
                for i in 0..<rows {
                    for j in 0..<cols {
                        θ[at(i, j)] = θ[at(i, j)] * (1 - s.learningRate * s.weightDecay) - rate * x[i][j]
                    }
                }
            }
            state["M"] = buffer
            var restState = state.filter { $0.key != "M" }
            var b = biases.map { θ[$0] }
            others(&b, biases.map { g[$0] }, t, &restState)
            for (k, i) in biases.enumerated() { θ[i] = b[k] }
            state.merge(restState) { $1 }
        }
    }

    static let cases: [OptimizerCase] = [
        OptimizerCase(.muon, "lr 0.02") { $0.learningRate = 0.02 },
        OptimizerCase(.muon, "without Nesterov, weight decay 0.5, lr 0.05") { $0.nesterov = false; $0.weightDecay = 0.5; $0.learningRate = 0.05 },
        OptimizerCase(.muon, "large lr 0.3, 3 Newton–Schulz steps, momentum 0.5") { $0.learningRate = 0.3; $0.nsSteps = 3; $0.momentum = 0.5 },
        OptimizerCase(.muon, "biases by sgd + momentum at lr 0.1") { $0.learningRate = 0.02; $0.others = .momentum; $0.othersLearningRate = 0.1 },
    ]

    @Test("1 and 25 steps on a fixed gradient sequence match the Double reference (relative 1e-5)", arguments: cases)
    func matchesReference(_ c: OptimizerCase) {
        #expect(c.settings.validate() == nil)
        let optimizer = c.settings.makeOptimizer(parameterCount: Self.n, layout: Self.layout)
        expectMatchesReference(optimizer, Self.reference(c.settings), label: c.label, count: Self.n) { Self.gradient(step: $0) }
        #expect(optimizer.stepCount == 25 && optimizer.name == "muon")
    }

    @Test("saved state restores into a fresh Muon that continues identically; another rule's state is refused", arguments: cases)
    func stateRoundTrip(_ c: OptimizerCase) throws {
        let a = c.settings.makeOptimizer(parameterCount: Self.n, layout: Self.layout)
        let b = c.settings.makeOptimizer(parameterCount: Self.n, layout: Self.layout)
        var thetaA = (0..<Self.n).map { Float($0) / 10 }
        for t in 1...5 { a.update(&thetaA, gradient: fixedGradient(step: t, count: Self.n).map(Float.init)) }
        let saved = try JSONDecoder().decode(OptimizerState.self, from: JSONEncoder().encode(a.state()))
        #expect(saved.buffers.values.allSatisfy { $0.count == Self.n })
        try b.restore(saved)
        var thetaB = thetaA
        for t in 6...9 {
            let g = fixedGradient(step: t, count: Self.n).map(Float.init)
            a.update(&thetaA, gradient: g)
            b.update(&thetaB, gradient: g)
        }
        #expect(thetaA == thetaB)
        var other = c.settings
        other.others = other.others == .adamw ? .sgd : .adamw
        #expect(throws: OptimizerStateError.self) { try other.makeOptimizer(parameterCount: Self.n, layout: Self.layout).restore(saved) }
    }

    @Test("on a point of the 2-D lab (one 1 × 2 matrix) a step goes against the momentum by lr × p⁵(1), p(s) = as + bs³ + cs⁵")
    func rowVector() {
        var s = OptimizerSettings(.muon)
        (s.learningRate, s.momentum, s.nesterov, s.weightDecay) = (0.1, 0, false, 0)
        let muon = s.makeOptimizer(parameterCount: 2)
        var θ: [Float] = [1, 2]
        muon.update(&θ, gradient: [3, -4])
        var length = 1.0
        for _ in 0..<5 { length = 3.4445 * length - 4.7750 * pow(length, 3) + 2.0315 * pow(length, 5) }
        #expect(close(Double(θ[0]), 1 - 0.1 * length * 0.6, relative: 1e-6))
        #expect(close(Double(θ[1]), 2 + 0.1 * length * 0.8, relative: 1e-6))
    }
}

@Suite("Adafactor against torch 2.13's equations")
struct AdafactorTests {
    /// A matrix row-major, a matrix stored transposed, a bias, and a 2 × 3 × 2 tensor (a batch of two 3 × 2 matrices).
    static let layout = MuonTests.layout + [TensorShape(name: "k", shape: [2, 3, 2], range: 46..<58)]
    static let n = 58

    /// torch's `_single_tensor_adafactor` in Double, tensor by tensor (each a list of elements in row-major order).
    static func reference(_ s: OptimizerSettings) -> ReferenceStep {
        { θ, g, t, state in
            let t = Double(t), fresh = pow(t, s.beta2Decay), ρ = min(s.learningRate, 1 / t.squareRoot())
            for (u, w) in layout.enumerated() {
                let at = (0..<w.range.count).map(w.position), n = Double(at.count)
                let α = max(s.eps2, (at.reduce(0) { $0 + θ[$1] * θ[$1] } / n).squareRoot()) * ρ
                for i in at { θ[i] *= 1 - s.learningRate * s.weightDecay }
                var update = [Double](repeating: 0, count: at.count)
                if w.shape.count >= 2 {
                    let (rows, cols) = (w.shape[w.shape.count - 2], w.shape[w.shape.count - 1])
                    var r = state["r\(u)"] ?? [Double](repeating: 0, count: at.count / cols)
                    var c = state["c\(u)"] ?? [Double](repeating: 0, count: at.count / rows)
                    for b in 0..<(at.count / (rows * cols)) {
                        func gg(_ i: Int, _ j: Int) -> Double { g[at[b * rows * cols + i * cols + j]] }
                        for i in 0..<rows { r[b * rows + i] += fresh * ((0..<cols).reduce(0) { $0 + gg(i, $1) * gg(i, $1) } / Double(cols) - r[b * rows + i]) }
                        for j in 0..<cols { c[b * cols + j] += fresh * ((0..<rows).reduce(0) { $0 + gg($1, j) * gg($1, j) } / Double(rows) - c[b * cols + j]) }
                        let mean = max((0..<rows).reduce(0) { $0 + r[b * rows + $1] } / Double(rows), s.eps1)
                        for i in 0..<rows {
                            for j in 0..<cols {
                                update[b * rows * cols + i * cols + j] = gg(i, j) / max(r[b * rows + i] * c[b * cols + j] / mean, s.eps1 * s.eps1).squareRoot()
                            }
                        }
                    }
                    state["r\(u)"] = r; state["c\(u)"] = c
                } else {
                    var v = state["v\(u)"] ?? [Double](repeating: 0, count: at.count)
                    for (k, i) in at.enumerated() {
                        v[k] += fresh * (g[i] * g[i] - v[k])
                        update[k] = g[i] / max(v[k], s.eps1 * s.eps1).squareRoot()
                    }
                    state["v\(u)"] = v
                }
                let norm = update.reduce(0) { $0 + $1 * $1 }.squareRoot()
                let step = α / max(1, norm / (n.squareRoot() * s.d))
                for (k, i) in at.enumerated() { θ[i] -= step * update[k] }
            }
        }
    }

    static let cases: [OptimizerCase] = [
        OptimizerCase(.adafactor),
        OptimizerCase(.adafactor, "weight decay 0.1, lr 0.05, β2 decay −0.5") { $0.weightDecay = 0.1; $0.learningRate = 0.05; $0.beta2Decay = -0.5 },
        OptimizerCase(.adafactor, "d 0.5, ε2 0.1, large lr 1") { $0.d = 0.5; $0.eps2 = 0.1; $0.learningRate = 1 },
    ]

    @Test("1 and 25 steps on a fixed gradient sequence match the Double reference (relative 1e-5)", arguments: cases)
    func matchesReference(_ c: OptimizerCase) {
        #expect(c.settings.validate() == nil)
        let optimizer = c.settings.makeOptimizer(parameterCount: Self.n, layout: Self.layout)
        expectMatchesReference(optimizer, Self.reference(c.settings), label: c.label, count: Self.n) { fixedGradient(step: $0, count: Self.n) }
        // The factors are kept, not the whole second moment: 3 + 4 + 6 + 4 row averages of the matrices' rows.
        let kept = optimizer.state().buffers
        #expect(kept.keys.sorted() == ["col_var", "row_var", "variance"] && kept.values.allSatisfy { $0.count == Self.n })
        #expect(kept["row_var"]!.filter { $0 != 0 }.count <= 3 + 6 + 6)
    }

    @Test("saved state restores into a fresh Adafactor that continues identically", arguments: cases)
    func stateRoundTrip(_ c: OptimizerCase) throws {
        let a = c.settings.makeOptimizer(parameterCount: Self.n, layout: Self.layout)
        let b = c.settings.makeOptimizer(parameterCount: Self.n, layout: Self.layout)
        var thetaA = (0..<Self.n).map { Float($0) / 10 }
        for t in 1...5 { a.update(&thetaA, gradient: fixedGradient(step: t, count: Self.n).map(Float.init)) }
        try b.restore(try JSONDecoder().decode(OptimizerState.self, from: JSONEncoder().encode(a.state())))
        var thetaB = thetaA
        for t in 6...9 {
            let g = fixedGradient(step: t, count: Self.n).map(Float.init)
            a.update(&thetaA, gradient: g)
            b.update(&thetaB, gradient: g)
        }
        #expect(thetaA == thetaB && b.stepCount == 9)
    }
}
