// Stochastic gradient descent with optional momentum, dampening, Nesterov momentum and L2 weight decay,
// exactly as torch.optim.SGD (reference/optimizers.md, "SGD"). Plain GD is this rule fed a full-batch gradient.
import Numerics

/// torch.optim.SGD.
///
/// Legend: θ parameters, g gradient, b momentum buffer, γ learning rate, μ momentum, τ dampening,
/// λ weight decay, t step (from 1).
/// ```
/// g ← g + λθ                         (if λ ≠ 0)
/// b ← g  (t = 1),  μb + (1−τ)g  (t > 1)   (if μ ≠ 0)
/// g ← g + μb  (Nesterov)  or  b
/// θ ← θ − γg
/// ```
public final class SGD: Optimizer {
    public struct Hyperparameters: Equatable, Sendable {
        public var learningRate: Double
        public var momentum: Double = 0
        public var dampening: Double = 0
        public var nesterov: Bool = false
        public var weightDecay: Double = 0

        public init(learningRate: Double, momentum: Double = 0, dampening: Double = 0,
                    nesterov: Bool = false, weightDecay: Double = 0) {
            self.learningRate = learningRate
            self.momentum = momentum
            self.dampening = dampening
            self.nesterov = nesterov
            self.weightDecay = weightDecay
        }
    }

    public let name: String
    public let hyperparameters: Hyperparameters
    public var learningRate: Double
    public private(set) var stepCount = 0
    /// The momentum buffer b; allocated only when μ ≠ 0.
    private var buffer: [Float]

    public init(_ hyperparameters: Hyperparameters, parameterCount: Int, name: String = "sgd") {
        self.hyperparameters = hyperparameters
        self.name = name
        learningRate = hyperparameters.learningRate
        buffer = hyperparameters.momentum != 0 ? [Float](repeating: 0, count: parameterCount) : []
    }

    public func update(_ parameters: UnsafeMutableBufferPointer<Float>, gradient: UnsafeBufferPointer<Float>) {
        precondition(parameters.count == gradient.count)
        stepCount += 1
        let n = parameters.count
        let θ = parameters.baseAddress!, grad = gradient.baseAddress!
        let γ = Float(learningRate), λ = Float(hyperparameters.weightDecay)
        let μ = Float(hyperparameters.momentum), τ = Float(hyperparameters.dampening)
        guard μ != 0 else {
            forEachBlock(count: n, vector: { i in
                store8(load8(θ, i) - γ * (load8(grad, i) + λ * load8(θ, i)), θ, i)
            }, scalar: { i in
                θ[i] = θ[i] - γ * (grad[i] + λ * θ[i])
            })
            return
        }
        precondition(buffer.count == n, "momentum buffer and parameters differ in length")
        let first = stepCount == 1, nesterov = hyperparameters.nesterov
        buffer.withUnsafeMutableBufferPointer { bp in
            let b = bp.baseAddress!
            forEachBlock(count: n, vector: { i in
                let g = load8(grad, i) + λ * load8(θ, i)
                let bi = first ? g : μ * load8(b, i) + (1 - τ) * g
                store8(bi, b, i)
                store8(load8(θ, i) - γ * (nesterov ? g + μ * bi : bi), θ, i)
            }, scalar: { i in
                let g = grad[i] + λ * θ[i]
                let bi = first ? g : μ * b[i] + (1 - τ) * g
                b[i] = bi
                θ[i] = θ[i] - γ * (nesterov ? g + μ * bi : bi)
            })
        }
    }

    public func state() -> OptimizerState {
        OptimizerState(name: name, step: stepCount, buffers: buffer.isEmpty ? [:] : ["momentum": buffer])
    }

    public func restore(_ state: OptimizerState) throws {
        guard state.name == name else {
            throw OptimizerStateError(detail: "expected state of '\(name)', found '\(state.name)'")
        }
        if !buffer.isEmpty {
            guard let b = state.buffers["momentum"], b.count == buffer.count else {
                throw OptimizerStateError(detail: "expected a momentum buffer of \(buffer.count) values")
            }
            buffer = b
        }
        stepCount = state.step
    }
}
