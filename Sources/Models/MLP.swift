// A multilayer perceptron (ReLU hidden layers, softmax cross-entropy) whose parameters and gradient are each
// one flat Float buffer; every matrix product goes through OpenBLAS.
import Datasets
import Numerics
#if canImport(Glibc)
import Glibc
#endif

/// A fully connected network `sizes[0] → sizes[1] → … → sizes.last` with ReLU between layers and a softmax
/// cross-entropy loss on the last layer's outputs.
///
/// Parameter layout in the flat buffer, layer by layer: weights `(inputs, outputs)` row-major, then bias
/// `(outputs)`. The model owns no parameters; callers pass the flat buffers in, so the allreduce, the
/// optimizer, the hash check and the checkpoint each see one array.
public final class MLP: Model, Classifier {
    /// One layer's named view into the flat buffers.
    public struct Layer: Sendable {
        public let inputs: Int
        public let outputs: Int
        /// Offset of the weights `(inputs, outputs)`.
        public let weightOffset: Int
        /// Offset of the bias `(outputs)`.
        public let biasOffset: Int
    }

    public let sizes: [Int]
    public let layers: [Layer]
    public let parameterCount: Int

    /// How `initialParameters` draws the weights; σ for `truncatedNormal`; the biases' starting value.
    public let initialisation: Initialisation
    public let initialStd: Double
    /// Every layer's σ times this (1: the scheme's own).
    public let initialScale: Double
    public let initialBias: Float

    public init(sizes: [Int], initialisation: Initialisation = .he, initialStd: Double = 0.05, initialScale: Double = 1, initialBias: Float = 0) {
        precondition(sizes.count >= 2 && sizes.allSatisfy { $0 > 0 })
        self.sizes = sizes
        self.initialisation = initialisation
        (self.initialStd, self.initialScale, self.initialBias) = (initialStd, initialScale, initialBias)
        var offset = 0
        var layers: [Layer] = []
        for (n, m) in zip(sizes, sizes.dropFirst()) {
            layers.append(Layer(inputs: n, outputs: m, weightOffset: offset, biasOffset: offset + n * m))
            offset += n * m + m
        }
        self.layers = layers
        parameterCount = offset
    }

    /// Names and shapes of the parameter tensors, in buffer order ("layer1.weight (784, 100)").
    public var parameterSummary: [String] {
        layers.enumerated().flatMap { i, l in
            ["layer\(i + 1).weight (\(l.inputs), \(l.outputs))", "layer\(i + 1).bias (\(l.outputs))"]
        }
    }

    public var shapeText: String { sizes.map(String.init).joined(separator: "-") }

    /// PyTorch's `nn.Sequential(Linear, ReLU, Linear, …, Linear)`: layer l is module 2l, its weight stored
    /// (outputs, inputs), the transpose of this buffer's (inputs, outputs).
    public var tensorLayout: [TensorLayout] {
        layers.enumerated().flatMap { l, layer -> [TensorLayout] in
            let weight = (0..<(layer.outputs * layer.inputs)).map { k in
                layer.weightOffset + (k % layer.inputs) * layer.outputs + k / layer.inputs
            }
            return [TensorLayout(name: "\(2 * l).weight", shape: [layer.outputs, layer.inputs], indices: weight),
                    TensorLayout(name: "\(2 * l).bias", shape: [layer.outputs], indices: Array(layer.biasOffset..<(layer.biasOffset + layer.outputs)))]
        }
    }

    /// Weights as `initialisation` draws them (all zero for `zeros`), biases `initialBias`, from a seeded generator.
    public func initialParameters(seed: UInt64) -> [Float] {
        var theta = [Float](repeating: 0, count: parameterCount)
        var rng = Xoshiro256(seed: seed, stream: 0x4E17)
        for l in layers {
            initialisation.draw(into: &theta, at: l.weightOffset, count: l.inputs * l.outputs, inputs: l.inputs, outputs: l.outputs,
                                std: initialStd, scale: initialScale, rng: &rng)
            for j in 0..<l.outputs { theta[l.biasOffset + j] = initialBias }
        }
        return theta
    }

    /// For each hidden layer, how many of its units differ: a unit is its column of incoming weights and its bias.
    /// From zero (or any constant) weights every unit of a layer stays equal to the others, and this is 1.
    public func distinctUnits(_ theta: [Float]) -> [Int] {
        layers.dropLast().map { l in
            Set((0..<l.outputs).map { j in
                (0..<l.inputs).map { theta[l.weightOffset + $0 * l.outputs + j].bitPattern } + [theta[l.biasOffset + j].bitPattern]
            }).count
        }
    }

    /// Scratch memory for forward and backward passes over at most `capacity` samples at a time. Its buffers
    /// are allocated once and never move, so the passes can hold plain pointers into them.
    public final class Workspace {
        public let capacity: Int
        let input: UnsafeMutablePointer<Float>          // (capacity, sizes[0])
        let labels: UnsafeMutablePointer<Int32>         // (capacity)
        let activations: [UnsafeMutablePointer<Float>]  // per layer (capacity, outputs); the last: probabilities
        let deltaA: UnsafeMutablePointer<Float>         // (capacity, widest hidden layer)
        let deltaB: UnsafeMutablePointer<Float>

        /// Owns every buffer above.
        private let memory = ScratchMemory()
        private let outputs: [Int], widest: Int

        /// The R-operator's buffers (`accumulateHessianVectorProduct`), made on first use: per layer R{z} (then
        /// R{a}, and for the last layer R{softmax − one-hot}), and two for R{δ}.
        private(set) lazy var directional: (activations: [UnsafeMutablePointer<Float>], deltaA: UnsafeMutablePointer<Float>,
                                            deltaB: UnsafeMutablePointer<Float>) = { [memory, capacity, outputs, widest] in
            (outputs.map { memory.floats(capacity * $0) }, memory.floats(capacity * widest), memory.floats(capacity * widest))
        }()

        init(model: MLP, capacity: Int) {
            self.capacity = capacity
            outputs = model.sizes.dropFirst().map { $0 }
            input = memory.floats(capacity * model.sizes[0])
            labels = memory.integers(capacity)
            activations = model.layers.map { [memory] in memory.floats(capacity * $0.outputs) }
            widest = model.sizes.dropFirst().dropLast().max() ?? 1
            deltaA = memory.floats(capacity * widest)
            deltaB = memory.floats(capacity * widest)
        }
    }

    public func makeWorkspace(capacity: Int) -> AnyObject { Workspace(model: self, capacity: max(1, capacity)) }

    public typealias Totals = LossTotals

    /// Adds the gradient of the summed loss over `indices` to `gradient` and returns the loss and accuracy
    /// totals. Processes the samples in passes of the workspace's capacity, so memory does not grow with the
    /// number of samples.
    ///
    /// - Parameter overwrite: the first pass writes `gradient` instead of adding to it (no need to zero it
    ///   first; the result is bit-identical to adding to zeros). With no samples nothing is written.
    @discardableResult
    public func accumulateGradient(
        parameters: UnsafePointer<Float>, gradient: UnsafeMutablePointer<Float>,
        dataset: Dataset, indices: UnsafeBufferPointer<Int32>, workspace: AnyObject, overwrite: Bool = false
    ) -> Totals {
        let workspace = unsafeDowncast(workspace, to: Workspace.self)
        var first = overwrite
        return passes(over: indices, workspace: workspace, dataset: dataset, parameters: parameters, lossGradient: true) { rows in
            backward(parameters: parameters, gradient: gradient, rows: rows, workspace: workspace, overwrite: first)
            first = false
        }
    }

    /// Loss sum and number of correct predictions over `indices` (forward passes only).
    public func evaluate(
        parameters: UnsafePointer<Float>, dataset: Dataset, indices: UnsafeBufferPointer<Int32>, workspace: AnyObject
    ) -> Totals {
        let workspace = unsafeDowncast(workspace, to: Workspace.self)
        return passes(over: indices, workspace: workspace, dataset: dataset, parameters: parameters, lossGradient: false) { _ in }
    }

    /// Each sample's (label, predicted class) over `indices`: the argmax of the outputs, the lowest class on a tie;
    /// and the loss totals.
    public func classify(
        parameters: UnsafePointer<Float>, dataset: Dataset, indices: UnsafeBufferPointer<Int32>, workspace: AnyObject
    ) -> (totals: Totals, predictions: [(label: Int, predicted: Int)]) {
        let workspace = unsafeDowncast(workspace, to: Workspace.self), classes = sizes.last!
        var out: [(Int, Int)] = []
        let totals = passes(over: indices, workspace: workspace, dataset: dataset, parameters: parameters, lossGradient: false) { rows in
            let p = workspace.activations[layers.count - 1]
            for r in 0..<rows { out.append((Int(workspace.labels[r]), Softmax.argmax(p + r * classes, count: classes))) }
        }
        return (totals, out)
    }

    /// Forward passes over `indices` in chunks of the workspace's capacity, calling `afterForward(rows)` after each;
    /// `lossGradient` leaves the loss's gradient (softmax − one-hot) in the last activation instead of the softmax.
    func passes(
        over indices: UnsafeBufferPointer<Int32>, workspace: Workspace, dataset: Dataset,
        parameters: UnsafePointer<Float>, lossGradient: Bool, afterForward: (Int) -> Void
    ) -> Totals {
        var totals = Totals()
        var start = 0
        while start < indices.count {
            let n = min(workspace.capacity, indices.count - start)
            let chunk = UnsafeBufferPointer(rebasing: indices[start..<(start + n)])
            forward(parameters: parameters, dataset: dataset, indices: chunk, workspace: workspace, lossGradient: lossGradient,
                    totals: &totals)
            afterForward(n)
            start += n
        }
        return totals
    }

    /// Fills the workspace's activations for `indices` (at most `capacity` of them) and adds their loss and
    /// correct predictions to `totals`. Leaves softmax probabilities in the last activation, or with `lossGradient`
    /// the loss's gradient with respect to the logits (softmax − one-hot), in the same pass over each row.
    private func forward(
        parameters theta: UnsafePointer<Float>, dataset: Dataset, indices: UnsafeBufferPointer<Int32>,
        workspace ws: Workspace, lossGradient: Bool, totals: inout Totals
    ) {
        let rows = indices.count
        dataset.fill(indices, features: ws.input, labels: ws.labels)
        for (l, layer) in layers.enumerated() {
            let out = ws.activations[l]
            let previous = l == 0 ? ws.input : ws.activations[l - 1]
            // (rows, outputs) = (rows, inputs) · (inputs, outputs)
            gemm(.none, .none, m: rows, n: layer.outputs, k: layer.inputs,
                 a: previous, lda: layer.inputs, b: theta + layer.weightOffset, ldb: layer.outputs,
                 beta: 0, c: out, ldc: layer.outputs)
            if l < layers.count - 1 {
                Kernels.addRowVectorThenReLU(theta + layer.biasOffset, to: out, rows: rows, columns: layer.outputs)
            } else {
                Kernels.addRowVector(theta + layer.biasOffset, to: out, rows: rows, columns: layer.outputs)
            }
        }
        Softmax.crossEntropy(ws.activations[layers.count - 1], labels: ws.labels, rows: rows, classes: sizes.last!,
                             lossGradient: lossGradient, totals: &totals)
    }

    /// Adds ∂(summed loss)/∂θ for the rows of the last forward pass to `gradient`, or writes it there when
    /// `overwrite` is set.
    private func backward(
        parameters theta: UnsafePointer<Float>, gradient: UnsafeMutablePointer<Float>, rows: Int, workspace ws: Workspace,
        overwrite: Bool
    ) {
        // dZ of the last layer = softmax − onehot, which the forward pass left in the last activation.
        var delta = ws.activations[layers.count - 1]
        var useA = true
        for l in stride(from: layers.count - 1, through: 0, by: -1) {
            let layer = layers[l]
            let input = l == 0 ? ws.input : ws.activations[l - 1]
            // dW (inputs, outputs) += inputᵀ (inputs, rows) · dZ (rows, outputs)
            gemm(.transposed, .none, m: layer.inputs, n: layer.outputs, k: rows,
                 a: input, lda: layer.inputs, b: delta, ldb: layer.outputs,
                 beta: overwrite ? 0 : 1, c: gradient + layer.weightOffset, ldc: layer.outputs)
            if overwrite { (gradient + layer.biasOffset).update(repeating: 0, count: layer.outputs) }
            Kernels.accumulateColumnSums(of: delta, rows: rows, columns: layer.outputs, into: gradient + layer.biasOffset)
            guard l > 0 else { break }
            // dA (rows, inputs) = dZ (rows, outputs) · Wᵀ (outputs, inputs); then through the ReLU.
            let next = useA ? ws.deltaA : ws.deltaB
            gemm(.none, .transposed, m: rows, n: layer.inputs, k: layer.outputs,
                 a: delta, lda: layer.outputs, b: theta + layer.weightOffset, ldb: layer.outputs,
                 beta: 0, c: next, ldc: layer.inputs)
            Kernels.reluBackward(next, activation: input, count: rows * layer.inputs)
            delta = next
            useA.toggle()
        }
    }
}
