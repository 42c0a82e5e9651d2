// The CNN's exact Hessian-vector products, by Pearlmutter's R-operator (forward over reverse). A convolution is a
// product of its patches and its weights, so it is differentiated as a dense layer is; a ReLU passes R{·} where its
// input was positive, a max-pool where its maximum was.
import Datasets
import Numerics

extension CNN: CurvatureModel {
    public func accumulateHessianVectorProduct(parameters: UnsafePointer<Float>, direction: UnsafePointer<Float>,
                                               product: UnsafeMutablePointer<Float>, dataset: Dataset,
                                               indices: UnsafeBufferPointer<Int32>, workspace: AnyObject, overwrite: Bool,
                                               gaussNewton: Bool) -> LossTotals {
        let ws = unsafeDowncast(workspace, to: Workspace.self)
        var first = overwrite
        return passes(over: indices, ws, dataset, parameters, lossGradient: true) { rows in
            directionalForward(parameters, direction, rows: rows, ws)
            directionalBackward(parameters, direction, product, rows: rows, ws, overwrite: first, gaussNewton: gaussNewton)
            first = false
        }
    }

    /// The first layer with parameters: R{·} is zero before it.
    private var firstWeighted: Int { layers.firstIndex { $0.fanIn > 0 } ?? layers.count }

    /// R{output} of every layer from R{input} = 0, then R{softmax − one-hot} = (diag p − p·pᵀ)·R{logits}.
    private func directionalForward(_ theta: UnsafePointer<Float>, _ v: UnsafePointer<Float>, rows n: Int, _ ws: Workspace) {
        let r = ws.directional
        for (l, layer) in layers.enumerated() where l >= firstWeighted {
            let out = r.activations[l], (i, o) = (layer.input, layer.output)
            let rInput: UnsafeMutablePointer<Float>? = l > firstWeighted ? r.activations[l - 1] : nil
            switch layer.spec {
            case let .conv(f, k):
                let positions = n * i.h * i.w
                gemm(.none, .none, m: positions, n: f, k: layer.fanIn, a: ws.columns[l]!, lda: layer.fanIn, b: v + layer.weightOffset,
                     ldb: f, beta: 0, c: out, ldc: f)
                if let rInput {
                    im2col(rInput, rows: n, shape: i, kernel: k, into: r.columns[l]!)
                    gemm(.none, .none, m: positions, n: f, k: layer.fanIn, a: r.columns[l]!, lda: layer.fanIn,
                         b: theta + layer.weightOffset, ldb: f, beta: 1, c: out, ldc: f)
                }
                Kernels.addRowVector(v + layer.biasOffset, to: out, rows: positions, columns: f)
            case .relu:
                Kernels.reluBackward(out, activation: ws.activations[l], count: n * o.count)  // `out` is R{input}, shared
            case .pool:
                let argmax = ws.argmax[l]!
                for s in 0..<n {
                    for j in 0..<o.count { out[s * o.count + j] = rInput![s * i.count + Int(argmax[s * o.count + j])] }
                }
            case let .dense(m):
                let input = l == 0 ? ws.input : ws.activations[l - 1]
                gemm(.none, .none, m: n, n: m, k: layer.fanIn, a: input, lda: layer.fanIn, b: v + layer.weightOffset, ldb: m,
                     beta: 0, c: out, ldc: m)
                if let rInput {
                    gemm(.none, .none, m: n, n: m, k: layer.fanIn, a: rInput, lda: layer.fanIn, b: theta + layer.weightOffset, ldb: m,
                         beta: 1, c: out, ldc: m)
                }
                Kernels.addRowVector(v + layer.biasOffset, to: out, rows: n, columns: m)
            }
        }
        Softmax.directionalLossGradient(r.activations[layers.count - 1], lossGradient: ws.activations[layers.count - 1],
                                        labels: ws.labels, rows: n, classes: classes)
    }

    /// The backward pass differentiated along v: R{∂W} = inputᵀ·R{δ} + R{input}ᵀ·δ (patches for a convolution),
    /// R{∂b} = Σ R{δ}, R{δ_in} = R{δ}·Wᵀ + δ·Vᵀ through the same ReLU masks and pooling positions. Gauss–Newton keeps
    /// the terms in R{δ} only, and needs no δ.
    private func directionalBackward(_ theta: UnsafePointer<Float>, _ v: UnsafePointer<Float>, _ product: UnsafeMutablePointer<Float>,
                                     rows n: Int, _ ws: Workspace, overwrite: Bool, gaussNewton: Bool) {
        let r = ws.directional, full = !gaussNewton
        var delta = ws.activations[layers.count - 1], rDelta = r.activations[layers.count - 1]
        var useA = true
        func next() -> (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) {
            defer { useA.toggle() }
            return useA ? (ws.deltaA, r.deltaA) : (ws.deltaB, r.deltaB)
        }
        for l in stride(from: layers.count - 1, through: firstWeighted, by: -1) {
            let layer = layers[l], i = layer.input
            let rInput: UnsafeMutablePointer<Float>? = l > firstWeighted ? r.activations[l - 1] : nil
            let beta: Float = overwrite ? 0 : 1
            switch layer.spec {
            case let .dense(m):
                let input = l == 0 ? ws.input : ws.activations[l - 1]
                gemm(.transposed, .none, m: layer.fanIn, n: m, k: n, a: input, lda: layer.fanIn, b: rDelta, ldb: m,
                     beta: beta, c: product + layer.weightOffset, ldc: m)
                if let rInput, full {
                    gemm(.transposed, .none, m: layer.fanIn, n: m, k: n, a: rInput, lda: layer.fanIn, b: delta, ldb: m,
                         beta: 1, c: product + layer.weightOffset, ldc: m)
                }
                if overwrite { (product + layer.biasOffset).update(repeating: 0, count: m) }
                Kernels.accumulateColumnSums(of: rDelta, rows: n, columns: m, into: product + layer.biasOffset)
                guard rInput != nil else { break }
                let (d, rd) = next()
                gemm(.none, .transposed, m: n, n: layer.fanIn, k: m, a: rDelta, lda: m, b: theta + layer.weightOffset, ldb: m,
                     beta: 0, c: rd, ldc: layer.fanIn)
                if full {
                    gemm(.none, .transposed, m: n, n: layer.fanIn, k: m, a: delta, lda: m, b: v + layer.weightOffset, ldb: m,
                         beta: 1, c: rd, ldc: layer.fanIn)
                    gemm(.none, .transposed, m: n, n: layer.fanIn, k: m, a: delta, lda: m, b: theta + layer.weightOffset, ldb: m,
                         beta: 0, c: d, ldc: layer.fanIn)
                }
                (delta, rDelta) = (d, rd)
            case .relu:
                if full { Kernels.reluBackward(delta, activation: ws.activations[l], count: n * i.count) }
                Kernels.reluBackward(rDelta, activation: ws.activations[l], count: n * i.count)
            case .pool:
                let (d, rd) = next()
                if full { unpool(l, rows: n, delta, into: d, ws) }
                unpool(l, rows: n, rDelta, into: rd, ws)
                (delta, rDelta) = (d, rd)
            case let .conv(f, k):
                let positions = n * i.h * i.w
                gemm(.transposed, .none, m: layer.fanIn, n: f, k: positions, a: ws.columns[l]!, lda: layer.fanIn, b: rDelta, ldb: f,
                     beta: beta, c: product + layer.weightOffset, ldc: f)
                if rInput != nil && full {
                    gemm(.transposed, .none, m: layer.fanIn, n: f, k: positions, a: r.columns[l]!, lda: layer.fanIn, b: delta, ldb: f,
                         beta: 1, c: product + layer.weightOffset, ldc: f)
                }
                if overwrite { (product + layer.biasOffset).update(repeating: 0, count: f) }
                Kernels.accumulateColumnSums(of: rDelta, rows: positions, columns: f, into: product + layer.biasOffset)
                guard rInput != nil else { break }
                let (d, rd) = next()
                convolutionInputs(l, f: f, k: k, rows: n, theta, v, ws, delta: delta, rDelta: rDelta, into: d, rd, full: full)
                (delta, rDelta) = (d, rd)
            }
        }
    }

    /// R{δ} (and δ, unless Gauss–Newton) of convolution `l`'s input: the patches' gradients R{δ}·Wᵀ + δ·Vᵀ (δ·Wᵀ),
    /// scattered back to the pixels; the patch buffers, used up by then, hold them on the way.
    private func convolutionInputs(_ l: Int, f: Int, k: Int, rows n: Int, _ theta: UnsafePointer<Float>, _ v: UnsafePointer<Float>,
                                   _ ws: Workspace, delta: UnsafePointer<Float>, rDelta: UnsafePointer<Float>,
                                   into d: UnsafeMutablePointer<Float>, _ rd: UnsafeMutablePointer<Float>, full: Bool) {
        let layer = layers[l], i = layer.input, positions = n * i.h * i.w
        let columns = ws.columns[l]!, rColumns = ws.directional.columns[l]!
        gemm(.none, .transposed, m: positions, n: layer.fanIn, k: f, a: rDelta, lda: f, b: theta + layer.weightOffset, ldb: f,
             beta: 0, c: rColumns, ldc: layer.fanIn)
        if full {
            gemm(.none, .transposed, m: positions, n: layer.fanIn, k: f, a: delta, lda: f, b: v + layer.weightOffset, ldb: f,
                 beta: 1, c: rColumns, ldc: layer.fanIn)
            gemm(.none, .transposed, m: positions, n: layer.fanIn, k: f, a: delta, lda: f, b: theta + layer.weightOffset, ldb: f,
                 beta: 0, c: columns, ldc: layer.fanIn)
            col2im(columns, rows: n, shape: i, kernel: k, into: d)
        }
        col2im(rColumns, rows: n, shape: i, kernel: k, into: rd)
    }

    /// Pooling layer `l`'s output gradients back to the input positions its maxima came from; zeros elsewhere.
    private func unpool(_ l: Int, rows n: Int, _ from: UnsafePointer<Float>, into to: UnsafeMutablePointer<Float>, _ ws: Workspace) {
        let i = layers[l].input, argmax = ws.argmax[l]!, outCount = layers[l].output.count
        to.update(repeating: 0, count: n * i.count)
        for s in 0..<n {
            for j in 0..<outCount { to[s * i.count + Int(argmax[s * outCount + j])] = from[s * outCount + j] }
        }
    }
}
