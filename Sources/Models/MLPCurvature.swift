// The MLP's exact Hessian-vector products, by Pearlmutter's R-operator (forward over reverse): the forward pass
// carries R{·} = d/dε (·)(θ + εv) beside the activations, and the backward pass differentiates each of its
// products once more.
import Datasets
import Numerics

extension MLP: CurvatureModel {
    public func accumulateHessianVectorProduct(parameters: UnsafePointer<Float>, direction: UnsafePointer<Float>,
                                               product: UnsafeMutablePointer<Float>, dataset: Dataset,
                                               indices: UnsafeBufferPointer<Int32>, workspace: AnyObject, overwrite: Bool,
                                               gaussNewton: Bool) -> LossTotals {
        let ws = unsafeDowncast(workspace, to: Workspace.self)
        var first = overwrite
        return passes(over: indices, workspace: ws, dataset: dataset, parameters: parameters, lossGradient: true) { rows in
            directionalForward(parameters, direction, rows: rows, ws)
            directionalBackward(parameters, direction, product, rows: rows, ws, overwrite: first, gaussNewton: gaussNewton)
            first = false
        }
    }

    /// R{z_l} = R{a_{l−1}}·W_l + a_{l−1}·V_l + v_b (R{a_0} = 0), R{a_l} = R{z_l} where a_l > 0; for the last layer
    /// then R{softmax − one-hot} = (diag p − p·pᵀ)·R{z}, row by row.
    private func directionalForward(_ theta: UnsafePointer<Float>, _ v: UnsafePointer<Float>, rows: Int, _ ws: Workspace) {
        let r = ws.directional.activations
        for (l, layer) in layers.enumerated() {
            let input = l == 0 ? ws.input : ws.activations[l - 1]
            gemm(.none, .none, m: rows, n: layer.outputs, k: layer.inputs, a: input, lda: layer.inputs,
                 b: v + layer.weightOffset, ldb: layer.outputs, beta: 0, c: r[l], ldc: layer.outputs)
            if l > 0 {
                gemm(.none, .none, m: rows, n: layer.outputs, k: layer.inputs, a: r[l - 1], lda: layer.inputs,
                     b: theta + layer.weightOffset, ldb: layer.outputs, beta: 1, c: r[l], ldc: layer.outputs)
            }
            Kernels.addRowVector(v + layer.biasOffset, to: r[l], rows: rows, columns: layer.outputs)
            if l < layers.count - 1 { Kernels.reluBackward(r[l], activation: ws.activations[l], count: rows * layer.outputs) }
        }
        Softmax.directionalLossGradient(r[layers.count - 1], lossGradient: ws.activations[layers.count - 1], labels: ws.labels,
                                        rows: rows, classes: sizes.last!)
    }

    /// The backward pass differentiated along v: R{∂W_l} = a_{l−1}ᵀ·R{δ_l} + R{a_{l−1}}ᵀ·δ_l, R{∂b_l} = Σ R{δ_l},
    /// R{δ_{l−1}} = (R{δ_l}·W_lᵀ + δ_l·V_lᵀ) ⊙ 1[a_{l−1} > 0] (the ReLU's second derivative is zero). Gauss–Newton
    /// keeps only the terms in R{δ}: Jᵀ applied to H_L·J·v.
    private func directionalBackward(_ theta: UnsafePointer<Float>, _ v: UnsafePointer<Float>, _ product: UnsafeMutablePointer<Float>,
                                     rows: Int, _ ws: Workspace, overwrite: Bool, gaussNewton: Bool) {
        let r = ws.directional
        var delta = ws.activations[layers.count - 1], rDelta = r.activations[layers.count - 1]
        var useA = true
        for l in stride(from: layers.count - 1, through: 0, by: -1) {
            let layer = layers[l]
            let input = l == 0 ? ws.input : ws.activations[l - 1]
            gemm(.transposed, .none, m: layer.inputs, n: layer.outputs, k: rows, a: input, lda: layer.inputs, b: rDelta,
                 ldb: layer.outputs, beta: overwrite ? 0 : 1, c: product + layer.weightOffset, ldc: layer.outputs)
            if l > 0 && !gaussNewton {
                gemm(.transposed, .none, m: layer.inputs, n: layer.outputs, k: rows, a: r.activations[l - 1], lda: layer.inputs,
                     b: delta, ldb: layer.outputs, beta: 1, c: product + layer.weightOffset, ldc: layer.outputs)
            }
            if overwrite { (product + layer.biasOffset).update(repeating: 0, count: layer.outputs) }
            Kernels.accumulateColumnSums(of: rDelta, rows: rows, columns: layer.outputs, into: product + layer.biasOffset)
            guard l > 0 else { break }
            let (nextDelta, nextR) = useA ? (ws.deltaA, r.deltaA) : (ws.deltaB, r.deltaB)
            gemm(.none, .transposed, m: rows, n: layer.inputs, k: layer.outputs, a: rDelta, lda: layer.outputs,
                 b: theta + layer.weightOffset, ldb: layer.outputs, beta: 0, c: nextR, ldc: layer.inputs)
            if !gaussNewton {
                gemm(.none, .transposed, m: rows, n: layer.inputs, k: layer.outputs, a: delta, lda: layer.outputs,
                     b: v + layer.weightOffset, ldb: layer.outputs, beta: 1, c: nextR, ldc: layer.inputs)
                gemm(.none, .transposed, m: rows, n: layer.inputs, k: layer.outputs, a: delta, lda: layer.outputs,
                     b: theta + layer.weightOffset, ldb: layer.outputs, beta: 0, c: nextDelta, ldc: layer.inputs)
                Kernels.reluBackward(nextDelta, activation: input, count: rows * layer.inputs)
            }
            Kernels.reluBackward(nextR, activation: input, count: rows * layer.inputs)
            (delta, rDelta) = (nextDelta, nextR)
            useA.toggle()
        }
    }
}
