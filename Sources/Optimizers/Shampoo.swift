// Shampoo as Distributed Shampoo runs it (Gupta et al. 2018; Shi et al. 2023, facebookresearch/optimizers): a
// Kronecker-factored preconditioner per block of each tensor, its inverse roots refreshed every few steps, the step's
// length grafted from a diagonal rule.
import Foundation
import Numerics

/// Distributed Shampoo for every tensor of the parameters.
///
/// Legend: G a block of the gradient (a tensor's dimensions merged while their product stays ≤
/// `max_preconditioner_dim`, then split into blocks of at most that many along each), o its order, F_k the factor of
/// dimension k, V the grafting rule's second moment, m the filtered gradient, M the momentum, t the step from 1.
/// ```
/// G ← G + λθ (coupled decay);  F_k ← β2·F_k + (1 − β2)·G_(k)·G_(k)ᵀ (G_(k): G unfolded along k);  V as the grafting rule
/// every `precondition_frequency` steps from `start_preconditioning_step`: X_k ← (F_k/(1 − β2ᵗ) + shift + ε)^(−1/2o)
/// m ← m + (1 − β1)(G − m);  Ḡ = m/(1 − β1ᵗ)   (Ḡ = G when β1 = 0)
/// P = graft(Ḡ) before the start; after it P = S·‖graft(Ḡ)‖/(‖S‖ + 1e−16) with S = Ḡ ×_0 X_0 ⋯ ×_(o−1) X_(o−1)
/// P ← P + λθ (decoupled decay);  M ← μM + P, P = P + μM (Nesterov) or M;  θ ← θ − γP
/// ```
/// The inverse roots start at zero, as the reference's do: without grafting nothing moves before the start. The
/// eigendecompositions are descent's own, in Double (`SymmetricEigen`), so they have the same bits on every CPU;
/// the factors, their products with the gradient and the preconditioning run in single precision on the run's matrix
/// kernels, as the reference keeps them in float32.
public final class Shampoo: Optimizer {
    public let name = OptimizerKind.shampoo.rawValue
    public let settings: OptimizerSettings
    public var learningRate: Double
    public private(set) var stepCount = 0

    /// The rules a step's length can be grafted from.
    public static let graftings = ["none", "sgd", "adagrad", "rmsprop", "adam"]

    /// One block: its tensor, its place among the tensor's blocks, where its elements lie (row-major over `dims`),
    /// and its factors and their inverse roots, d × d each.
    struct Block {
        let tensor: String
        let index: Int
        let positions: [Int]
        let dims: [Int]
        var factors: [[Float]]
        var inverses: [[Float]]
        var root: Int { 2 * dims.count }
        /// The names of its factors and inverse roots in a saved state.
        var names: [(factor: String, inverse: String)] { dims.indices.map { Shampoo.names(tensor, index, $0) } }
    }

    var blocks: [Block]
    let count: Int
    /// The filtered gradient m, the momentum M and the grafting rule's V, each as long as the parameters.
    var filtered: [Float], momentum: [Float], grafting: [Float]

    public init(_ settings: OptimizerSettings, parameterCount: Int, layout: [TensorShape]) {
        self.settings = settings
        learningRate = settings.learningRate
        count = parameterCount
        let tensors = layout.isEmpty ? [TensorShape(name: "θ", shape: [parameterCount], range: 0..<parameterCount)] : layout
        blocks = []
        for t in tensors where t.whole && t.range.count > 0 {
            for (k, block) in Self.blocks(of: t.shape, maxDim: Int(settings.maxPreconditionerDim)).enumerated() {
                blocks.append(Block(tensor: t.name, index: k, positions: block.elements.map(t.position), dims: block.dims,
                                    factors: block.dims.map { [Float](repeating: 0, count: $0 * $0) },
                                    inverses: block.dims.map { [Float](repeating: 0, count: $0 * $0) }))
            }
        }
        (filtered, momentum, grafting) = ([Float](repeating: 0, count: parameterCount), [Float](repeating: 0, count: parameterCount),
                                          [Float](repeating: 0, count: parameterCount))
    }

    /// The reference's `merge_small_dims`: dimensions of 1 dropped, then neighbours merged while their product is
    /// at most `maxDim`.
    public static func mergedDims(_ shape: [Int], maxDim: Int) -> [Int] {
        let squeezed = shape.filter { $0 != 1 }
        var merged = [squeezed.first ?? 1]
        for d in squeezed.dropFirst() {
            if merged[merged.count - 1] * d <= maxDim { merged[merged.count - 1] *= d } else { merged.append(d) }
        }
        return merged
    }

    /// A tensor's blocks, as the reference's `multi_dim_split` cuts its merged shape (the first dimension outermost):
    /// each block's dimensions and its elements' row-major indices in the tensor.
    public static func blocks(of shape: [Int], maxDim: Int) -> [(dims: [Int], elements: [Int])] {
        let merged = mergedDims(shape, maxDim: maxDim)
        var ranges: [[Range<Int>]] = [[]]
        for d in merged {
            let pieces = stride(from: 0, to: d, by: maxDim).map { $0..<min($0 + maxDim, d) }
            ranges = ranges.flatMap { r in pieces.map { r + [$0] } }
        }
        let strides = merged.indices.map { merged[($0 + 1)...].reduce(1, *) }
        return ranges.map { r in
            var elements: [Int] = [0]
            for (k, range) in r.enumerated() {
                elements = elements.flatMap { base in range.map { base + $0 * strides[k] } }
            }
            return (r.map(\.count), elements)
        }
    }

    /// The saved names of block `block`'s factor and inverse root along dimension `dim` of tensor `tensor`.
    static func names(_ tensor: String, _ block: Int, _ dim: Int) -> (factor: String, inverse: String) {
        ("\(tensor)/\(block)/factor_matrix_\(dim)", "\(tensor)/\(block)/inv_factor_matrix_\(dim)")
    }

    /// The factors' and inverse roots' names and sizes for a tensor of `shape` named `name`, in state order.
    public static func tensorBuffers(name: String, shape: [Int], maxDim: Int) -> [(name: String, count: Int)] {
        blocks(of: shape, maxDim: maxDim).enumerated().flatMap { k, b in
            b.dims.indices.flatMap { j in
                let n = names(name, k, j), size = b.dims[j] * b.dims[j]
                return [(n.factor, size), (n.inverse, size)]
            }
        }
    }

    /// The step the preconditioner starts at (`start_preconditioning_step`, −1: the frequency).
    var start: Int { settings.startPreconditioningStep < 0 ? Int(settings.preconditionFrequency) : Int(settings.startPreconditioningStep) }

    public func update(_ parameters: UnsafeMutableBufferPointer<Float>, gradient: UnsafeBufferPointer<Float>) {
        precondition(parameters.count == count, "shampoo: \(parameters.count) parameters for state of \(count)")
        stepCount += 1
        let t = stepCount, frequency = Int(settings.preconditionFrequency)
        let refresh = (t % frequency == 0 && t > start) || t == start
        for b in blocks.indices { step(b, parameters.baseAddress!, gradient.baseAddress!, t: t, refresh: refresh) }
    }

    /// One block's step.
    private func step(_ b: Int, _ θ: UnsafeMutablePointer<Float>, _ gradient: UnsafePointer<Float>, t: Int, refresh: Bool) {
        let s = settings, at = blocks[b].positions, λ = Float(s.weightDecay)
        var g = at.map { gradient[$0] }
        if !s.decoupledWeightDecay && λ != 0 { for (k, i) in at.enumerated() { g[k] += λ * θ[i] } }
        updateFactors(b, g)
        updateGrafting(at, g)
        if refresh { refreshInverses(b, t: t) }
        let filtered = filter(at, g, t: t)
        var p: [Float]
        if t < start && s.grafting != "none" {
            p = graft(at, filtered, t: t)
        } else {
            p = preconditioned(b, filtered)
            if s.grafting != "none" {
                let direction = graft(at, filtered, t: t)
                let scale = Float(Kernels.dot(direction, direction).squareRoot() / (Kernels.dot(p, p).squareRoot() + 1e-16))
                for k in p.indices { p[k] *= scale }
            }
        }
        if s.decoupledWeightDecay && λ != 0 { for (k, i) in at.enumerated() { p[k] += λ * θ[i] } }
        let μ = Float(s.momentum), rate = Float(learningRate)
        for (k, i) in at.enumerated() {
            if μ != 0 {
                momentum[i] = μ * momentum[i] + p[k]
                p[k] = s.nesterov ? p[k] + μ * momentum[i] : momentum[i]
            }
            θ[i] -= rate * p[k]
        }
    }

    /// F_k ← β2·F_k + (1 − β2)·G_(k)·G_(k)ᵀ for every dimension k of the block.
    private func updateFactors(_ b: Int, _ g: [Float]) {
        let dims = blocks[b].dims, β2 = Float(settings.beta2), fresh = Float(1 - settings.beta2)
        for k in dims.indices {
            let d = dims[k], rest = g.count / d
            let unfolded = Self.unfold(g, dims: dims, along: k)
            var outer = [Float](repeating: 0, count: d * d)
            unfolded.withUnsafeBufferPointer { u in
                gemm(.none, .transposed, m: d, n: d, k: rest, a: u.baseAddress!, lda: rest, b: u.baseAddress!, ldb: rest,
                     beta: 0, c: &outer, ldc: d)
            }
            for e in outer.indices { blocks[b].factors[k][e] = β2 * blocks[b].factors[k][e] + fresh * outer[e] }
        }
    }

    /// G unfolded along dimension k: a d_k × (n/d_k) matrix whose row i holds the elements with index i along k,
    /// the other dimensions in row-major order.
    static func unfold(_ g: [Float], dims: [Int], along k: Int) -> [Float] {
        let inner = dims[(k + 1)...].reduce(1, *), d = dims[k], outer = g.count / (d * inner)
        guard outer > 1 else { return g }
        var u = [Float](repeating: 0, count: g.count)
        let rest = outer * inner
        for o in 0..<outer {
            for i in 0..<d {
                for j in 0..<inner { u[i * rest + o * inner + j] = g[(o * d + i) * inner + j] }
            }
        }
        return u
    }

    /// The grafting rule's second moment.
    private func updateGrafting(_ at: [Int], _ g: [Float]) {
        let β2 = Float(settings.graftingBeta2), fresh = Float(1 - settings.graftingBeta2)
        switch settings.grafting {
        case "adagrad": for (k, i) in at.enumerated() { grafting[i] += g[k] * g[k] }
        case "rmsprop", "adam": for (k, i) in at.enumerated() { grafting[i] = β2 * grafting[i] + fresh * g[k] * g[k] }
        default: break
        }
    }

    /// X_k ← (F_k/(1 − β2ᵗ))^(−1/2o), in Double.
    private func refreshInverses(_ b: Int, t: Int) {
        let correction = 1 - pow(settings.beta2, Double(t))
        for (k, d) in blocks[b].dims.enumerated() {
            let a = blocks[b].factors[k].map { Double($0) / correction }
            blocks[b].inverses[k] = SymmetricEigen.inverseRoot(a, n: d, root: blocks[b].root, epsilon: settings.epsilon).map { Float($0) }
        }
    }

    /// The bias-corrected filtered gradient (the gradient itself when β1 = 0).
    private func filter(_ at: [Int], _ g: [Float], t: Int) -> [Float] {
        let β1 = settings.beta1
        guard β1 != 0 else { return g }
        let weight = Float(1 - β1), correction = Float(1 - pow(β1, Double(t)))
        return at.enumerated().map { k, i in
            filtered[i] += weight * (g[k] - filtered[i])
            return filtered[i] / correction
        }
    }

    /// The grafting rule's direction for the filtered gradient.
    private func graft(_ at: [Int], _ g: [Float], t: Int) -> [Float] {
        let ε = Float(settings.graftingEpsilon)
        switch settings.grafting {
        case "adagrad", "rmsprop": return at.enumerated().map { k, i in g[k] / (grafting[i].squareRoot() + ε) }
        case "adam":
            let correction = Float(1 - pow(settings.graftingBeta2, Double(t)))
            return at.enumerated().map { k, i in g[k] / ((grafting[i] / correction).squareRoot() + ε) }
        default: return g
        }
    }

    /// Ḡ ×_0 X_0 ⋯ ×_(o−1) X_(o−1), as the reference's chain of tensordots: each product contracts the first
    /// dimension and puts the new one last, so after o products the dimensions are back in order.
    private func preconditioned(_ b: Int, _ g: [Float]) -> [Float] {
        var p = g, dims = blocks[b].dims
        for k in dims.indices {
            let d = dims[0], rest = p.count / d
            var y = [Float](repeating: 0, count: p.count)
            blocks[b].inverses[k].withUnsafeBufferPointer { x in
                p.withUnsafeBufferPointer { p in
                    gemm(.none, .none, m: d, n: rest, k: d, a: x.baseAddress!, lda: d, b: p.baseAddress!, ldb: rest, beta: 0, c: &y, ldc: rest)
                }
            }
            for i in 0..<d { for j in 0..<rest { p[j * d + i] = y[i * rest + j] } }
            dims = Array(dims.dropFirst()) + [d]
        }
        return p
    }

    public func state() -> OptimizerState {
        var buffers = [StateBuffer.filteredGrad.rawValue: filtered, StateBuffer.momentumBuffer.rawValue: momentum,
                       StateBuffer.grafting.rawValue: grafting]
        for b in blocks {
            for (k, names) in b.names.enumerated() {
                buffers[names.factor] = b.factors[k]
                buffers[names.inverse] = b.inverses[k]
            }
        }
        return OptimizerState(name: name, step: stepCount, buffers: buffers)
    }

    public func restore(_ saved: OptimizerState) throws {
        try checkName(saved, name)
        let expected = state().buffers.mapValues(\.count)
        guard Set(saved.buffers.keys) == Set(expected.keys) else {
            throw OptimizerStateError(detail: "'shampoo' keeps buffers [\(expected.keys.sorted().joined(separator: ", "))], "
                                      + "found [\(saved.buffers.keys.sorted().joined(separator: ", "))]")
        }
        for (key, values) in saved.buffers where values.count != expected[key] {
            throw OptimizerStateError(detail: "'shampoo' buffer '\(key)' must hold \(expected[key]!) values, found \(values.count)")
        }
        filtered = saved.buffers[StateBuffer.filteredGrad.rawValue]!
        momentum = saved.buffers[StateBuffer.momentumBuffer.rawValue]!
        grafting = saved.buffers[StateBuffer.grafting.rawValue]!
        for b in blocks.indices {
            for (k, names) in blocks[b].names.enumerated() {
                blocks[b].factors[k] = saved.buffers[names.factor]!
                blocks[b].inverses[k] = saved.buffers[names.inverse]!
            }
        }
        stepCount = saved.step
    }
}
