// Optimizers against the update rules of reference/optimizers.md, recomputed here independently in Double.
import Optimizers
import Testing

/// A named optimizer setting and its reference implementation.
struct OptimizerCase: CustomTestStringConvertible, Sendable {
    var label: String
    var make: @Sendable (Int) -> Optimizer
    /// One reference step in Double: (θ, g, state, t) → θ'.
    var reference: @Sendable (inout [Double], [Double], inout [String: [Double]], Int) -> Void
    var testDescription: String { label }
}

/// torch.optim.SGD as the specification writes it.
func referenceSGD(lr: Double, momentum μ: Double = 0, dampening τ: Double = 0, nesterov: Bool = false,
                  weightDecay λ: Double = 0) -> @Sendable (inout [Double], [Double], inout [String: [Double]], Int) -> Void {
    return { θ, gradient, state, t in
        var g = gradient
        if λ != 0 { for i in g.indices { g[i] += λ * θ[i] } }
        if μ != 0 {
            var b = state["b"] ?? []
            if t == 1 { b = g } else { for i in g.indices { b[i] = μ * b[i] + (1 - τ) * g[i] } }
            state["b"] = b
            for i in g.indices { g[i] = nesterov ? g[i] + μ * b[i] : b[i] }
        }
        for i in θ.indices { θ[i] -= lr * g[i] }
    }
}

let optimizerCases: [OptimizerCase] = [
    OptimizerCase(label: "sgd lr 0.1", make: { SGD(.init(learningRate: 0.1), parameterCount: $0) },
                  reference: referenceSGD(lr: 0.1)),
    OptimizerCase(label: "sgd lr 0.05 weight decay 0.01",
                  make: { SGD(.init(learningRate: 0.05, weightDecay: 0.01), parameterCount: $0) },
                  reference: referenceSGD(lr: 0.05, weightDecay: 0.01)),
    OptimizerCase(label: "momentum 0.9 lr 0.01",
                  make: { SGD(.init(learningRate: 0.01, momentum: 0.9), parameterCount: $0, name: "momentum") },
                  reference: referenceSGD(lr: 0.01, momentum: 0.9)),
    OptimizerCase(label: "momentum 0.8 dampening 0.3 weight decay 0.1",
                  make: { SGD(.init(learningRate: 0.02, momentum: 0.8, dampening: 0.3, weightDecay: 0.1), parameterCount: $0) },
                  reference: referenceSGD(lr: 0.02, momentum: 0.8, dampening: 0.3, weightDecay: 0.1)),
    OptimizerCase(label: "nesterov 0.9 lr 0.01",
                  make: { SGD(.init(learningRate: 0.01, momentum: 0.9, nesterov: true), parameterCount: $0) },
                  reference: referenceSGD(lr: 0.01, momentum: 0.9, nesterov: true)),
    OptimizerCase(label: "momentum 0.5 large lr 3",
                  make: { SGD(.init(learningRate: 3, momentum: 0.5), parameterCount: $0) },
                  reference: referenceSGD(lr: 3, momentum: 0.5)),
]

/// Gradient t for parameter i: a smooth pattern with scales from 1e-6 to 1e3, so tiny and huge gradients occur.
func fixedGradient(step t: Int, count n: Int) -> [Double] {
    let scales = [1e-6, 1e-2, 1, 1e3]
    return (0..<n).map { i in sin(Double(i) * 0.7 + Double(t) * 1.3) * scales[i % scales.count] }
}

@Suite("Optimizers against the reference equations")
struct OptimizerReferenceTests {
    /// 37 parameters: four SIMD blocks and a scalar tail.
    static let n = 37

    @Test("1 and 25 steps on a fixed gradient sequence match the Double reference (relative 1e-5)",
          arguments: optimizerCases)
    func matchesReference(_ c: OptimizerCase) {
        let optimizer = c.make(Self.n)
        var theta = (0..<Self.n).map { Float(cos(Double($0))) }
        var reference = theta.map(Double.init)
        var state: [String: [Double]] = [:]
        for t in 1...25 {
            let g = fixedGradient(step: t, count: Self.n)
            optimizer.update(&theta, gradient: g.map(Float.init))
            c.reference(&reference, g.map { Double(Float($0)) }, &state, t)
            if t == 1 || t == 25 {
                for i in 0..<Self.n {
                    #expect(close(Double(theta[i]), reference[i], relative: 1e-5), "\(c.label) step \(t) θ[\(i)]")
                }
            }
        }
        #expect(optimizer.stepCount == 25)
    }

    @Test("saved state restores into a fresh optimizer that continues identically", arguments: optimizerCases)
    func stateRoundTrip(_ c: OptimizerCase) throws {
        let a = c.make(Self.n), b = c.make(Self.n)
        var thetaA = (0..<Self.n).map { Float($0) / 10 }
        for t in 1...5 { a.update(&thetaA, gradient: fixedGradient(step: t, count: Self.n).map(Float.init)) }
        try b.restore(a.state())
        var thetaB = thetaA
        for t in 6...9 {
            let g = fixedGradient(step: t, count: Self.n).map(Float.init)
            a.update(&thetaA, gradient: g)
            b.update(&thetaB, gradient: g)
        }
        #expect(thetaA == thetaB)
        #expect(b.stepCount == 9)
    }

    @Test("state holds only the buffers the rule needs")
    func stateSize() {
        #expect(SGD(.init(learningRate: 0.1), parameterCount: 10).state().buffers.isEmpty)
        #expect(SGD(.init(learningRate: 0.1, momentum: 0.9), parameterCount: 10).state().buffers.mapValues(\.count) == ["momentum": 10])
    }

    @Test("Sutskever's and torch's momentum agree while the learning rate is constant (seed 001's form)")
    func sutskeverEquivalence() {
        // v ← μv − γg; θ ← θ + v  versus torch's b ← μb + g; θ ← θ − γb.
        let sgd = SGD(.init(learningRate: 0.1, momentum: 0.9), parameterCount: 1)
        var theta: [Float] = [1], x = 1.0, v = 0.0
        for _ in 0..<20 {
            sgd.update(&theta, gradient: [theta[0]])  // f = x²/2, so g = x
            v = 0.9 * v - 0.1 * x
            x += v
            #expect(close(Double(theta[0]), x, relative: 1e-5, floor: 1e-3))
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
