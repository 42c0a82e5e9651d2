// Muon as torch.optim.Muon (torch 2.13; Jordan et al. 2024): momentum, then the quintic Newton–Schulz iteration
// that maps the update of each weight matrix to a nearly orthogonal one; the tensors that are not matrices go to an
// element-wise rule named in the config.
import Foundation
import Numerics

/// torch.optim.Muon for the matrices of the parameters, and `settings.others` for the rest.
///
/// Legend: W a weight matrix (shape [A, B]), G its gradient, M the momentum buffer (`momentum_buffer`), μ momentum,
/// γ learning rate, λ weight decay, (a, b, c) = (3.4445, −4.7750, 2.0315), k Newton–Schulz steps (`ns_steps`).
/// ```
/// M ← M + (1 − μ)(G − M);  U ← G + μ(M − G) with Nesterov, else M
/// X ← U (transposed when A > B), X ← X / max(‖X‖_F, ε);  k times: S ← XXᵀ, X ← aX + (bS + cS²)X
/// W ← W(1 − γλ);  W ← W − γ·√max(1, A/B)·X
/// ```
/// torch computes the iteration in bfloat16; descent in single precision, with the process's matrix products.
/// Without a layout (the 2-D lab) the whole buffer is one 1 × n matrix: orthogonalising a row vector scales it to a
/// length the iteration fixes, so each step has the same length in the direction of the momentum.
public final class Muon: Optimizer {
    public let name = OptimizerKind.muon.rawValue
    public let settings: OptimizerSettings
    public var learningRate: Double
    public private(set) var stepCount = 0

    /// A matrix of the buffer: its tensor (shape [A, B], and where its elements lie) and its rate's factor.
    struct Matrix {
        let tensor: TensorShape
        let rateFactor: Double
    }

    let matrices: [Matrix]
    /// The elements of the other tensors, in order, and the element-wise rule over them (its state is theirs only).
    let rest: [Int]
    let others: Optimizer
    let momentum: UnsafeMutableBufferPointer<Float>
    private var restParameters: [Float], restGradient: [Float]

    public init(_ settings: OptimizerSettings, parameterCount: Int, layout: [TensorShape]) {
        self.settings = settings
        learningRate = settings.learningRate
        var matrices: [Matrix] = [], covered = [Bool](repeating: false, count: parameterCount)
        let tensors = layout.isEmpty
            ? [TensorShape(name: "θ", shape: [1, parameterCount], range: 0..<parameterCount)] : layout
        for t in tensors where t.shape.count == 2 && t.whole && t.range.count > 0 {
            matrices.append(Matrix(tensor: t, rateFactor: max(1, Double(t.shape[0]) / Double(t.shape[1])).squareRoot()))
            for k in 0..<t.range.count { covered[t.position(k)] = true }
        }
        self.matrices = matrices
        rest = (0..<parameterCount).filter { !covered[$0] }
        others = settings.othersSettings.makeOptimizer(parameterCount: rest.count)
        momentum = .allocate(capacity: parameterCount)
        momentum.initialize(repeating: 0)
        (restParameters, restGradient) = ([Float](repeating: 0, count: rest.count), [Float](repeating: 0, count: rest.count))
    }

    deinit { momentum.deallocate() }

    public func update(_ parameters: UnsafeMutableBufferPointer<Float>, gradient: UnsafeBufferPointer<Float>) {
        let (p, g, count) = flat(parameters, gradient)
        precondition(count == momentum.count, "muon: \(count) parameters for state of \(momentum.count)")
        stepCount += 1
        for m in matrices { step(m, p, g) }
        guard !rest.isEmpty else { return }
        for (k, i) in rest.enumerated() { (restParameters[k], restGradient[k]) = (p[i], g[i]) }
        // A schedule scales both rules' rates alike.
        others.learningRate = settings.othersLearningRate * learningRate / settings.learningRate
        others.update(&restParameters, gradient: restGradient)
        for (k, i) in rest.enumerated() { p[i] = restParameters[k] }
    }

    /// One matrix, in torch's orientation: momentum, orthogonalisation, decay and step.
    private func step(_ m: Matrix, _ θ: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>) {
        let t = m.tensor, n = t.range.count, μ = Float(settings.momentum), fresh = Float(1 - settings.momentum)
        let buffer = momentum.baseAddress!
        var u = [Float](repeating: 0, count: n)
        for k in 0..<n {
            let i = t.position(k)
            buffer[i] += fresh * (g[i] - buffer[i])
            u[k] = settings.nesterov ? g[i] + μ * (buffer[i] - g[i]) : buffer[i]
        }
        let x = Self.orthogonalised(u, rows: t.shape[0], columns: t.shape[1], steps: Int(settings.nsSteps), eps: Float(settings.eps))
        let shrink = Float(1 - learningRate * settings.weightDecay), rate = Float(learningRate * m.rateFactor)
        for k in 0..<n {
            let i = t.position(k)
            θ[i] *= shrink
            θ[i] -= rate * x[k]
        }
    }

    /// The quintic Newton–Schulz iteration on the rows × columns matrix `u` (row-major), on its transpose when it
    /// has more rows than columns, as torch's `_zeropower_via_newtonschulz` computes it.
    static func orthogonalised(_ u: [Float], rows: Int, columns: Int, steps: Int, eps: Float) -> [Float] {
        let (a, b, c): (Float, Float, Float) = (3.4445, -4.7750, 2.0315)
        let tall = rows > columns
        let (r, k) = tall ? (columns, rows) : (rows, columns)
        var x = tall ? transpose(u, rows: rows, columns: columns) : u
        let norm = Float(x.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot())
        let scale = 1 / max(norm, eps)
        for i in x.indices { x[i] *= scale }
        var gram = [Float](repeating: 0, count: r * r), square = gram, y = x
        for _ in 0..<steps {
            x.withUnsafeBufferPointer { x in
                gemm(.none, .transposed, m: r, n: r, k: k, a: x.baseAddress!, lda: k, b: x.baseAddress!, ldb: k,
                     beta: 0, c: &gram, ldc: r)
            }
            gram.withUnsafeBufferPointer { s in
                gemm(.none, .none, m: r, n: r, k: r, a: s.baseAddress!, lda: r, b: s.baseAddress!, ldb: r, beta: 0, c: &square, ldc: r)
            }
            for i in gram.indices { square[i] = b * gram[i] + c * square[i] }
            square.withUnsafeBufferPointer { s in
                x.withUnsafeBufferPointer { x in
                    gemm(.none, .none, m: r, n: k, k: r, a: s.baseAddress!, lda: r, b: x.baseAddress!, ldb: k, beta: 0, c: &y, ldc: k)
                }
            }
            for i in x.indices { x[i] = a * x[i] + y[i] }
        }
        return tall ? transpose(x, rows: r, columns: k) : x
    }

    static func transpose(_ v: [Float], rows: Int, columns: Int) -> [Float] {
        var t = [Float](repeating: 0, count: v.count)
        for i in 0..<rows { for j in 0..<columns { t[j * rows + i] = v[i * columns + j] } }
        return t
    }

    /// The momentum buffer, and the element-wise rule's buffers under `others/` spread to the parameters' length (zero
    /// on the matrices), so that a checkpoint holds whole buffers as for every rule.
    public func state() -> OptimizerState {
        let inner = others.state()
        var buffers = [StateBuffer.momentumBuffer.rawValue: Array(momentum)]
        for (key, values) in inner.buffers {
            var whole = [Float](repeating: 0, count: momentum.count)
            for (k, i) in rest.enumerated() { whole[i] = values[k] }
            buffers["others/" + key] = whole
        }
        return OptimizerState(name: name, step: stepCount, buffers: buffers,
                              scalars: Dictionary(uniqueKeysWithValues: inner.scalars.map { ("others/" + $0.key, $0.value) }))
    }

    public func restore(_ saved: OptimizerState) throws {
        try checkName(saved, name)
        let expected = Set([StateBuffer.momentumBuffer.rawValue] + others.state().buffers.keys.map { "others/" + $0 })
        guard Set(saved.buffers.keys) == expected else {
            throw OptimizerStateError(detail: "'muon' with \(settings.others.rawValue) keeps buffers [\(expected.sorted().joined(separator: ", "))], "
                                      + "found [\(saved.buffers.keys.sorted().joined(separator: ", "))]")
        }
        for (key, values) in saved.buffers where values.count != momentum.count {
            throw OptimizerStateError(detail: "'muon' buffer '\(key)' must hold \(momentum.count) values, found \(values.count)")
        }
        var inner = OptimizerState(name: settings.others.rawValue, step: saved.step, buffers: [:], scalars: [:])
        for (key, values) in saved.buffers where key.hasPrefix("others/") {
            inner.buffers[String(key.dropFirst("others/".count))] = rest.map { values[$0] }
        }
        for (key, value) in saved.scalars where key.hasPrefix("others/") { inner.scalars[String(key.dropFirst("others/".count))] = value }
        try others.restore(inner)
        _ = momentum.update(fromContentsOf: saved.buffers[StateBuffer.momentumBuffer.rawValue]!)
        stepCount = saved.step
    }
}
