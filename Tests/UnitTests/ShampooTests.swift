import Foundation
import Numerics
@testable import Optimizers
import Testing
import DescentTestSupport

@Suite("Symmetric eigendecomposition in Double")
struct SymmetricEigenTests {
    /// A seeded symmetric matrix with eigenvalues spread over `decades` decades (Q·diag·Qᵀ from a Householder Q).
    static func matrix(_ n: Int, decades: Double, seed: Double) -> (a: [Double], values: [Double]) {
        let v = (0..<n).map { sin(Double($0) * 1.7 + seed) }
        let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let u = v.map { $0 / norm }
        let values = (0..<n).map { pow(10, decades * Double($0) / Double(max(n - 1, 1))) * (1 + 0.1 * cos(Double($0) + seed)) }
        var a = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0..<n {
                var s = 0.0
                for k in 0..<n {
                    let qik = (i == k ? 1 : 0) - 2 * u[i] * u[k], qjk = (j == k ? 1 : 0) - 2 * u[j] * u[k]
                    s += qik * values[k] * qjk
                }
                a[i * n + j] = s
            }
        }
        return (a, values.sorted())
    }

    @Test("eigenvalues of a known spectrum, orthonormal eigenvectors, A·v = λ·v", arguments: [1, 2, 7, 40, 130])
    func knownSpectrum(_ n: Int) {
        let (a, values) = Self.matrix(n, decades: 6, seed: Double(n))
        let (λ, q) = SymmetricEigen.decompose(a, n: n)
        for k in 0..<n { #expect(abs(λ[k] - values[k]) <= 1e-12 * values[n - 1], "λ[\(k)] \(λ[k]) vs \(values[k])") }
        var worst = 0.0, orthogonality = 0.0
        for k in 0..<n {
            for i in 0..<n {
                var av = 0.0
                for j in 0..<n { av += a[i * n + j] * q[k * n + j] }
                worst = max(worst, abs(av - λ[k] * q[k * n + i]))
            }
            for l in 0..<n {
                let dot = (0..<n).reduce(0.0) { $0 + q[k * n + $1] * q[l * n + $1] }
                orthogonality = max(orthogonality, abs(dot - (k == l ? 1 : 0)))
            }
        }
        #expect(worst <= 1e-11 * values[n - 1] && orthogonality <= 1e-12, "residual \(worst), orthogonality \(orthogonality)")
    }

    @Test("the inverse fourth root: X⁴·(A + εI) = I, for a singular A shifted by ε")
    func inverseRoot() {
        let n = 9
        var (a, _) = Self.matrix(n, decades: 3, seed: 0.3)
        // Make it singular: remove its smallest direction.
        let (λ, q) = SymmetricEigen.decompose(a, n: n)
        for i in 0..<n { for j in 0..<n { a[i * n + j] -= λ[0] * q[i] * q[j] } }
        let ε = 1e-3
        let x = SymmetricEigen.inverseRoot(a, n: n, root: 4, epsilon: ε)
        func product(_ p: [Double], _ r: [Double]) -> [Double] {
            (0..<(n * n)).map { e in (0..<n).reduce(0.0) { $0 + p[e / n * n + $1] * r[$1 * n + e % n] } }
        }
        let x2 = product(x, x), x4 = product(x2, x2)
        var ridge = a
        for i in 0..<n { ridge[i * n + i] += ε }
        let identity = product(x4, ridge)
        for e in 0..<(n * n) { #expect(abs(identity[e] - (e / n == e % n ? 1 : 0)) < 1e-9, "\(e): \(identity[e])") }
        #expect(x == (0..<(n * n)).map { x[$0 % n * n + $0 / n] }, "exactly symmetric")
    }
}

@Suite("Shampoo against Distributed Shampoo's equations")
struct ShampooTests {
    /// Muon's two matrices and biases, and a 2 × 3 × 2 tensor.
    static let layout = AdafactorTests.layout
    static let n = AdafactorTests.n

    /// The gradient of step t, at the scales 0.1 … 10 (Muon's test narrows them so too).
    static func gradient(step t: Int) -> [Double] {
        fixedGradient(step: t, count: n).enumerated().map { i, g in g / [1e-6, 1e-2, 1, 1e3][i % 4] * [0.1, 1, 10, 3][i % 4] }
    }

    /// Cyclic Jacobi in Double (another algorithm than descent's): eigenvalues and eigenvectors (`vectors[k]`).
    static func jacobi(_ m: [[Double]]) -> (values: [Double], vectors: [[Double]]) {
        var a = m, v = m.indices.map { i in m.indices.map { $0 == i ? 1.0 : 0 } }
        let n = m.count
        for _ in 0..<100 {
            let off = (0..<n).reduce(0.0) { s, i in (0..<n).reduce(s) { $1 == i ? $0 : $0 + a[i][$1] * a[i][$1] } }
            if off < 1e-30 * max(1, a.joined().reduce(0) { $0 + $1 * $1 }) { break }
            for p in 0..<n {
                for q in (p + 1)..<max(n, p + 1) where a[p][q] != 0 {
                    let θ = (a[q][q] - a[p][p]) / (2 * a[p][q])
                    let t = (θ >= 0 ? 1 : -1) / (abs(θ) + (θ * θ + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot(), s = t * c
                    for k in 0..<n {
                        let (akp, akq) = (a[k][p], a[k][q])
                        a[k][p] = c * akp - s * akq
                        a[k][q] = s * akp + c * akq
                    }
                    for k in 0..<n {
                        let (apk, aqk) = (a[p][k], a[q][k])
                        a[p][k] = c * apk - s * aqk
                        a[q][k] = s * apk + c * aqk
                    }
                    for k in 0..<n {
                        let (vkp, vkq) = (v[k][p], v[k][q])
                        v[k][p] = c * vkp - s * vkq
                        v[k][q] = s * vkp + c * vkq
                    }
                }
            }
        }
        return ((0..<n).map { a[$0][$0] }, (0..<n).map { k in (0..<n).map { v[$0][k] } })
    }

    /// A^(−1/root) with the reference's shift (−λ_min when negative) and ε.
    static func inverseRoot(_ a: [[Double]], root: Int, epsilon: Double) -> [[Double]] {
        let (λ, q) = jacobi(a)
        let shift = -min(λ.min()!, 0) + epsilon
        return a.indices.map { i in a.indices.map { j in λ.indices.reduce(0.0) { $0 + q[$1][i] * pow(λ[$1] + shift, -1 / Double(root)) * q[$1][j] } } }
    }

    /// Distributed Shampoo's step in Double, block by block, from its documented equations.
    static func reference(_ s: OptimizerSettings) -> ReferenceStep {
        { θ, g, t, state in
            let maxDim = Int(s.maxPreconditionerDim), frequency = Int(s.preconditionFrequency)
            let start = s.startPreconditioningStep < 0 ? frequency : Int(s.startPreconditioningStep)
            let refresh = (t % frequency == 0 && t > start) || t == start
            for (u, w) in layout.enumerated() {
                var merged: [Int] = []
                for d in w.shape where d != 1 {
                    if let last = merged.last, last * d <= maxDim { merged[merged.count - 1] = last * d } else { merged.append(d) }
                }
                if merged.isEmpty { merged = [1] }
                var blocks: [[Range<Int>]] = [[]]
                for d in merged { blocks = blocks.flatMap { b in stride(from: 0, to: d, by: maxDim).map { b + [$0..<min($0 + maxDim, d)] } } }
                for (index, ranges) in blocks.enumerated() {
                    step(s, w: w, merged: merged, ranges: ranges, key: "\(u)/\(index)", θ: &θ, g: g, t: t, refresh: refresh, start: start, state: &state)
                }
            }
        }
    }

    /// One block of the reference step.
    static func step(_ s: OptimizerSettings, w: TensorShape, merged: [Int], ranges: [Range<Int>], key: String, θ: inout [Double],
                     g: [Double], t: Int, refresh: Bool, start: Int, state: inout [String: [Double]]) {
        let dims = ranges.map(\.count), count = dims.reduce(1, *)
        let tensorStrides = merged.indices.map { merged[($0 + 1)...].reduce(1, *) }
        let strides = dims.indices.map { dims[($0 + 1)...].reduce(1, *) }
        func index(_ e: Int) -> [Int] { dims.indices.map { e / strides[$0] % dims[$0] } }
        func element(_ i: [Int]) -> Int { i.indices.reduce(0) { $0 + i[$1] * strides[$1] } }
        let at = (0..<count).map { e in w.position(index(e).enumerated().reduce(0) { $0 + (ranges[$1.offset].lowerBound + $1.element) * tensorStrides[$1.offset] }) }
        let λ = s.weightDecay
        let G = at.map { g[$0] + (s.decoupledWeightDecay ? 0 : λ * θ[$0]) }
        // Factors: F_k[i][j] = Σ over the other indices of G[.., i, ..]·G[.., j, ..].
        for (k, d) in dims.enumerated() {
            var f = state["\(key)/F\(k)"] ?? [Double](repeating: 0, count: d * d)
            var outer = [Double](repeating: 0, count: d * d)
            for e in 0..<count {
                var other = index(e)
                let i = other[k]
                for j in 0..<d {
                    other[k] = j
                    outer[i * d + j] += G[e] * G[element(other)]
                }
            }
            for e in f.indices { f[e] = s.beta2 * f[e] + (1 - s.beta2) * outer[e] }
            state["\(key)/F\(k)"] = f
            if refresh {
                let a = (0..<d).map { i in (0..<d).map { j in f[i * d + j] / (1 - pow(s.beta2, Double(t))) } }
                state["\(key)/X\(k)"] = Array(inverseRoot(a, root: 2 * dims.count, epsilon: s.epsilon).joined())
            }
        }
        var v = state["\(key)/V"] ?? [Double](repeating: 0, count: count)
        for e in 0..<count {
            switch s.grafting {
            case "adagrad": v[e] += G[e] * G[e]
            case "rmsprop", "adam": v[e] = s.graftingBeta2 * v[e] + (1 - s.graftingBeta2) * G[e] * G[e]
            default: break
            }
        }
        state["\(key)/V"] = v
        var m = state["\(key)/m"] ?? [Double](repeating: 0, count: count)
        for e in 0..<count { m[e] = s.beta1 * m[e] + (1 - s.beta1) * G[e] }
        state["\(key)/m"] = m
        let filtered = s.beta1 == 0 ? G : m.map { $0 / (1 - pow(s.beta1, Double(t))) }
        let graft: [Double] = (0..<count).map { e in
            switch s.grafting {
            case "adagrad", "rmsprop": return filtered[e] / (v[e].squareRoot() + s.graftingEpsilon)
            case "adam": return filtered[e] / ((v[e] / (1 - pow(s.graftingBeta2, Double(t)))).squareRoot() + s.graftingEpsilon)
            default: return filtered[e]
            }
        }
        var p: [Double]
        if t < start && s.grafting != "none" {
            p = graft
        } else {
            // S = Ḡ ×_k X_k for every k: S[.., i, ..] = Σ_a X_k[i][a]·S[.., a, ..].
            p = filtered
            for (k, d) in dims.enumerated() {
                let x = state["\(key)/X\(k)"] ?? [Double](repeating: 0, count: d * d)
                p = (0..<count).map { e in
                    var other = index(e)
                    let i = other[k]
                    return (0..<d).reduce(0.0) { sum, a in other[k] = a; return sum + x[i * d + a] * p[element(other)] }
                }
            }
            if s.grafting != "none" {
                let scale = graft.reduce(0) { $0 + $1 * $1 }.squareRoot() / (p.reduce(0) { $0 + $1 * $1 }.squareRoot() + 1e-16)
                p = p.map { $0 * scale }
            }
        }
        var momentum = state["\(key)/M"] ?? [Double](repeating: 0, count: count)
        for e in 0..<count {
            if s.decoupledWeightDecay { p[e] += λ * θ[at[e]] }
            if s.momentum != 0 {
                momentum[e] = s.momentum * momentum[e] + p[e]
                p[e] = s.nesterov ? p[e] + s.momentum * momentum[e] : momentum[e]
            }
            θ[at[e]] -= s.learningRate * p[e]
        }
        state["\(key)/M"] = momentum
    }

    static let cases: [OptimizerCase] = [
        OptimizerCase(.shampoo, "refreshed every 3 steps, ε 1e-3") { $0.preconditionFrequency = 3; $0.epsilon = 1e-3 },
        OptimizerCase(.shampoo, "blocks of 4, Nesterov 0.9, coupled decay 0.01, RMSProp grafting, every 2 from 0") {
            $0.maxPreconditionerDim = 4; $0.momentum = 0.9; $0.nesterov = true; $0.weightDecay = 0.01; $0.decoupledWeightDecay = false
            $0.grafting = "rmsprop"; $0.preconditionFrequency = 2; $0.startPreconditioningStep = 0; $0.epsilon = 1e-4
        },
        OptimizerCase(.shampoo, "β1 0, no grafting, decoupled decay 0.1, blocks of 8, every step, lr 0.01") {
            $0.beta1 = 0; $0.grafting = "none"; $0.weightDecay = 0.1; $0.maxPreconditionerDim = 8; $0.preconditionFrequency = 1
            $0.learningRate = 0.01; $0.epsilon = 1e-4
        },
        OptimizerCase(.shampoo, "AdaGrad grafting, momentum 0.5, lr 0.05, ε 1e-2, every 5 from 7") {
            $0.grafting = "adagrad"; $0.momentum = 0.5; $0.learningRate = 0.05; $0.preconditionFrequency = 5; $0.startPreconditioningStep = 7
            $0.epsilon = 1e-2
        },
        OptimizerCase(.shampoo, "SGD grafting, β2 0.9, blocks of 3") {
            $0.grafting = "sgd"; $0.beta2 = 0.9; $0.maxPreconditionerDim = 3; $0.preconditionFrequency = 2; $0.epsilon = 1e-4
        },
    ]

    /// The factors are single precision, as the reference keeps them, and their smallest eigenvalues meet ε: the
    /// rounding of a factor moves (λ + ε)^(−1/2o) most where λ ≪ ε. At lr 0.5 with ε 1e-4 the run ends 1e-4 from
    /// Double after 25 steps; these settings stay within 1e-5.
    @Test("1 and 25 steps on a fixed gradient sequence match the Double reference (relative 1e-5)", arguments: cases)
    func matchesReference(_ c: OptimizerCase) {
        #expect(c.settings.validate() == nil)
        let optimizer = c.settings.makeOptimizer(parameterCount: Self.n, layout: Self.layout)
        expectMatchesReference(optimizer, Self.reference(c.settings), label: c.label, count: Self.n) { Self.gradient(step: $0) }
    }

    @Test("blocks: dimensions of 1 dropped, neighbours merged up to the limit, then cut along each dimension")
    func blocks() {
        #expect(Shampoo.mergedDims([100, 10], maxDim: 1024) == [1000])
        #expect(Shampoo.mergedDims([64, 32, 5, 5], maxDim: 1024) == [64, 800])
        #expect(Shampoo.mergedDims([1, 1], maxDim: 4) == [1])
        let b = Shampoo.blocks(of: [3, 5], maxDim: 4)
        #expect(b.map(\.dims) == [[3, 4], [3, 1]])
        #expect(b[1].elements == [4, 9, 14])
        #expect(Shampoo.tensorBuffers(name: "w", shape: [3, 5], maxDim: 4).map(\.count) == [9, 9, 16, 16, 9, 9, 1, 1])
    }

    @Test("saved state restores into a fresh Shampoo that continues identically; a state of other blocks is refused")
    func stateRoundTrip() throws {
        let c = Self.cases[1]
        let a = c.settings.makeOptimizer(parameterCount: Self.n, layout: Self.layout)
        var thetaA = (0..<Self.n).map { Float($0) / 10 }
        for t in 1...5 { a.update(&thetaA, gradient: Self.gradient(step: t).map(Float.init)) }
        let saved = a.state()
        let b = c.settings.makeOptimizer(parameterCount: Self.n, layout: Self.layout)
        try b.restore(saved)
        var thetaB = thetaA
        for t in 6...9 {
            a.update(&thetaA, gradient: Self.gradient(step: t).map(Float.init))
            b.update(&thetaB, gradient: Self.gradient(step: t).map(Float.init))
        }
        #expect(thetaA == thetaB)
        var other = c.settings
        other.maxPreconditionerDim = 8
        #expect(throws: OptimizerStateError.self) { try other.makeOptimizer(parameterCount: Self.n, layout: Self.layout).restore(saved) }
    }
}
