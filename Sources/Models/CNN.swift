// A convolutional network (DeepOBS's 2c2d and its kin): 'same' convolutions with stride 1, ReLU, 2×2 max-pooling
// and dense layers, channels last, every product through OpenBLAS (a convolution is im2col · W).
import Datasets
import Numerics

/// Layers `specs` on images of `input` (height, width, channels), then a dense layer to the classes, with a
/// softmax cross-entropy loss.
///
/// Activations are channels last: a sample is (h, w, c) row-major. A convolution's weights are stored
/// (k, k, c_in, filters) row-major — the rows of W in `im2col · W` — then its bias (filters); a dense layer's are
/// (inputs, outputs) then (outputs), its inputs in channels-last order. Samples are processed in sub-batches of a
/// fixed size, so a chunk's gradient has the same bits however the chunks are spread over ranks.
public final class CNN: Model, Classifier {
    public enum LayerSpec: Equatable, Sendable, CustomStringConvertible {
        case conv(filters: Int, kernel: Int)
        case relu
        case pool
        case dense(Int)

        public var description: String {
            switch self {
            case let .conv(f, k): return "conv \(f) \(k)"
            case .relu: return "relu"
            case .pool: return "pool"
            case let .dense(n): return "dense \(n)"
            }
        }

        /// "conv 32 5", "relu", "pool", "dense 1024".
        public init?(_ text: String) {
            let w = text.split(separator: " ").map(String.init)
            switch (w.first, w.count) {
            case ("conv", 3): guard let f = Int(w[1]), let k = Int(w[2]), f > 0, k > 0 else { return nil }; self = .conv(filters: f, kernel: k)
            case ("relu", 1): self = .relu
            case ("pool", 1): self = .pool
            case ("dense", 2): guard let n = Int(w[1]), n > 0 else { return nil }; self = .dense(n)
            default: return nil
            }
        }
    }

    /// Shapes that do not fit: the layer (index in the list, and its text), what it needs and what it gets.
    public struct ShapeError: Error, CustomStringConvertible, Sendable {
        public var layer: Int
        public var spec: String
        public var expected: String
        public var found: String
        public var description: String { "model.layers[\(layer)] (\(spec)): expected \(expected), found \(found)" }
    }

    public struct Shape: Equatable, Sendable {
        public var h: Int, w: Int, c: Int
        public var count: Int { h * w * c }
        var text: String { "\(h)×\(w)×\(c)" }
    }

    public struct Layer: Sendable {
        public let spec: LayerSpec
        public let input: Shape
        public let output: Shape
        public let weightOffset: Int
        public let biasOffset: Int
        /// Rows of the weight matrix: k·k·c_in for a convolution, the inputs for a dense layer.
        public let fanIn: Int
    }

    public let inputShape: Shape
    public let classes: Int
    public let layers: [Layer]
    public let parameterCount: Int
    public let initialisation: Initialisation
    public let initialStd: Double
    /// Every layer's σ times this (1: the scheme's own).
    public let initialScale: Double
    public let initialBias: Float
    /// Samples per forward and backward pass.
    static let subBatch = 32

    public init(input: [Int], classes: Int, specs: [LayerSpec], initialisation: Initialisation = .he, initialStd: Double = 0.05, initialScale: Double = 1,
                initialBias: Float = 0) throws {
        let start: Shape
        switch input.count {
        case 2: start = Shape(h: input[0], w: input[1], c: 1)
        case 3: start = Shape(h: input[0], w: input[1], c: input[2])
        default:
            throw ShapeError(layer: 0, spec: specs.first?.description ?? "dense \(classes)", expected: "images of height × width (× channels)",
                             found: "samples of shape (" + input.map(String.init).joined(separator: ", ") + ")")
        }
        var layers: [Layer] = [], shape = start, offset = 0, flat = false
        for (i, spec) in (specs + [.dense(classes)]).enumerated() {
            let out: Shape, weights: Int, fanIn: Int
            func fail(_ expected: String) -> ShapeError {
                ShapeError(layer: i, spec: spec.description, expected: expected, found: flat ? "a flat input of \(shape.count)" : "an input of \(shape.text)")
            }
            switch spec {
            case let .conv(f, k):
                guard !flat else { throw fail("an image input (convolutions come before the dense layers)") }
                guard k % 2 == 1, k <= 2 * min(shape.h, shape.w) + 1 else { throw fail("an odd kernel for 'same' padding, at most the image") }
                (out, fanIn) = (Shape(h: shape.h, w: shape.w, c: f), k * k * shape.c)
                weights = fanIn * f + f
            case .relu:
                (out, fanIn, weights) = (shape, 0, 0)
            case .pool:
                guard !flat else { throw fail("an image input (pooling comes before the dense layers)") }
                guard shape.h >= 2, shape.w >= 2 else { throw fail("an input of at least 2×2") }
                (out, fanIn) = (Shape(h: shape.h / 2, w: shape.w / 2, c: shape.c), 0)
                weights = 0
            case let .dense(n):
                (out, fanIn) = (Shape(h: 1, w: 1, c: n), shape.count)
                weights = fanIn * n + n
                flat = true
            }
            layers.append(Layer(spec: spec, input: shape, output: out, weightOffset: offset,
                                biasOffset: offset + weights - (weights > 0 ? out.c : 0), fanIn: fanIn))
            offset += weights
            shape = out
        }
        inputShape = start
        self.classes = classes
        self.layers = layers
        parameterCount = offset
        self.initialisation = initialisation
        (self.initialStd, self.initialScale, self.initialBias) = (initialStd, initialScale, initialBias)
    }

    public var parameterSummary: [String] {
        layers.enumerated().compactMap { i, l -> [String]? in
            switch l.spec {
            case let .conv(f, k): return ["layer\(i + 1).weight (\(k), \(k), \(l.input.c), \(f))", "layer\(i + 1).bias (\(f))"]
            case let .dense(n): return ["layer\(i + 1).weight (\(l.fanIn), \(n))", "layer\(i + 1).bias (\(n))"]
            default: return nil
            }
        }.flatMap { $0 }
    }

    public var shapeText: String {
        "\(inputShape.text) " + layers.map(\.spec.description).joined(separator: ", ")
    }

    /// Weights as `initialisation` draws them, σ from the fan-in (k·k·c_in for a convolution) and fan-out; biases
    /// `initialBias`.
    public func initialParameters(seed: UInt64) -> [Float] {
        var theta = [Float](repeating: 0, count: parameterCount)
        var rng = Xoshiro256(seed: seed, stream: 0xC0_4E17)
        for l in layers where l.fanIn > 0 {
            var fanOut = l.output.c
            if case let .conv(f, k) = l.spec { fanOut = k * k * f }
            initialisation.draw(into: &theta, at: l.weightOffset, count: l.fanIn * l.output.c, inputs: l.fanIn, outputs: fanOut,
                                std: initialStd, scale: initialScale, rng: &rng)
            for j in 0..<l.output.c { theta[l.biasOffset + j] = initialBias }
        }
        return theta
    }

    /// PyTorch's `nn.Sequential`: a module per layer (Conv2d with padding k/2, ReLU, MaxPool2d(2), Linear), and a
    /// Flatten before the first Linear that follows an image. Conv2d stores (filters, c_in, k, k); a Linear after
    /// Flatten reads its inputs channels first (c, h, w), so both are permuted from this buffer's order.
    public var tensorLayout: [TensorLayout] {
        var out: [TensorLayout] = [], module = 0, image = true
        for l in layers {
            switch l.spec {
            case let .conv(f, k):
                let c = l.input.c
                let weight = (0..<(f * c * k * k)).map { t -> Int in
                    let (o, rest) = t.quotientAndRemainder(dividingBy: c * k * k)
                    let (ci, kk) = rest.quotientAndRemainder(dividingBy: k * k)
                    return l.weightOffset + (kk * c + ci) * f + o
                }
                out += [TensorLayout(name: "\(module).weight", shape: [f, c, k, k], indices: weight),
                        TensorLayout(name: "\(module).bias", shape: [f], indices: Array(l.biasOffset..<(l.biasOffset + f)))]
            case let .dense(n):
                if image {
                    module += 1  // the Flatten before the first Linear
                    image = false
                }
                let s = l.input
                let weight = (0..<(n * l.fanIn)).map { t -> Int in
                    let (o, i) = t.quotientAndRemainder(dividingBy: l.fanIn)
                    // torch's input i is (c, y, x) channels first; this buffer's row is (y, x, c).
                    let (ci, yx) = i.quotientAndRemainder(dividingBy: s.h * s.w)
                    return l.weightOffset + (yx * s.c + ci) * n + o
                }
                out += [TensorLayout(name: "\(module).weight", shape: [n, l.fanIn], indices: weight),
                        TensorLayout(name: "\(module).bias", shape: [n], indices: Array(l.biasOffset..<(l.biasOffset + n)))]
            default:
                break
            }
            module += 1
        }
        return out
    }

    /// Scratch memory for `subBatch` samples; the passes hold plain pointers into it.
    public final class Workspace {
        public let capacity: Int
        let input: UnsafeMutablePointer<Float>
        let labels: UnsafeMutablePointer<Int32>
        /// Per layer, its output (a ReLU shares its input's buffer and rectifies it in place).
        let activations: [UnsafeMutablePointer<Float>]
        /// Per pooling layer, the input position each output came from.
        let argmax: [UnsafeMutablePointer<Int32>?]
        /// Per convolution, its input's patches (im2col), kept from forward for backward's weight gradient, then
        /// reused for the gradient with respect to those patches.
        let columns: [UnsafeMutablePointer<Float>?]
        let deltaA: UnsafeMutablePointer<Float>
        let deltaB: UnsafeMutablePointer<Float>

        /// Owns every buffer above.
        private let memory = ScratchMemory()
        private unowned let model: CNN

        /// The R-operator's buffers (`accumulateHessianVectorProduct`), made on first use: per layer R{output}
        /// (shared as `activations` are), per convolution R{input}'s patches, and two for R{δ}.
        private(set) lazy var directional: (activations: [UnsafeMutablePointer<Float>], columns: [UnsafeMutablePointer<Float>?],
                                            deltaA: UnsafeMutablePointer<Float>, deltaB: UnsafeMutablePointer<Float>) = {
            let (activations, columns, widest) = Self.layerBuffers(model, memory)
            return (activations, columns, memory.floats(CNN.subBatch * widest), memory.floats(CNN.subBatch * widest))
        }()

        init(model: CNN, capacity: Int) {
            self.model = model
            let b = CNN.subBatch, memory = self.memory
            self.capacity = capacity
            input = memory.floats(b * model.inputShape.count)
            labels = memory.integers(b)
            let widest: Int
            (activations, columns, widest) = Self.layerBuffers(model, memory)
            argmax = model.layers.map { l in
                guard case .pool = l.spec else { return nil }
                return memory.integers(b * l.output.count)
            }
            deltaA = memory.floats(b * widest)
            deltaB = memory.floats(b * widest)
        }

        /// Per layer an output buffer (a ReLU shares its input's), per convolution one for its input's patches, and
        /// the widest layer (input included) that a backward buffer must hold: for `subBatch` samples.
        private static func layerBuffers(_ model: CNN, _ memory: ScratchMemory)
            -> (outputs: [UnsafeMutablePointer<Float>], patches: [UnsafeMutablePointer<Float>?], widest: Int) {
            let b = CNN.subBatch
            var outputs: [UnsafeMutablePointer<Float>] = []
            for l in model.layers {
                if case .relu = l.spec, let previous = outputs.last {
                    outputs.append(previous)
                } else {
                    outputs.append(memory.floats(b * l.output.count))
                }
            }
            let patches = model.layers.map { $0.spec.isConv ? memory.floats(b * $0.input.h * $0.input.w * $0.fanIn) : nil }
            return (outputs, patches, max(model.inputShape.count, model.layers.map(\.output.count).max() ?? 1))
        }
    }

    public func makeWorkspace(capacity: Int) -> AnyObject { Workspace(model: self, capacity: max(1, capacity)) }

    public func accumulateGradient(
        parameters: UnsafePointer<Float>, gradient: UnsafeMutablePointer<Float>,
        dataset: Dataset, indices: UnsafeBufferPointer<Int32>, workspace: AnyObject, overwrite: Bool
    ) -> LossTotals {
        let ws = unsafeDowncast(workspace, to: Workspace.self)
        var first = overwrite
        return passes(over: indices, ws, dataset, parameters, lossGradient: true) { rows in
            backward(parameters, gradient, rows: rows, ws, overwrite: first)
            first = false
        }
    }

    public func evaluate(parameters: UnsafePointer<Float>, dataset: Dataset, indices: UnsafeBufferPointer<Int32>,
                         workspace: AnyObject) -> LossTotals {
        passes(over: indices, unsafeDowncast(workspace, to: Workspace.self), dataset, parameters, lossGradient: false) { _ in }
    }

    public func classify(parameters: UnsafePointer<Float>, dataset: Dataset, indices: UnsafeBufferPointer<Int32>,
                         workspace: AnyObject) -> (totals: LossTotals, predictions: [(label: Int, predicted: Int)]) {
        let ws = unsafeDowncast(workspace, to: Workspace.self)
        var out: [(Int, Int)] = []
        let totals = passes(over: indices, ws, dataset, parameters, lossGradient: false) { rows in
            let p = ws.activations[layers.count - 1]
            for r in 0..<rows { out.append((Int(ws.labels[r]), Softmax.argmax(p + r * classes, count: classes))) }
        }
        return (totals, out)
    }

    /// Forward passes over `indices` in sub-batches, calling `afterForward(rows)` after each.
    func passes(over indices: UnsafeBufferPointer<Int32>, _ ws: Workspace, _ dataset: Dataset,
                        _ theta: UnsafePointer<Float>, lossGradient: Bool, afterForward: (Int) -> Void) -> LossTotals {
        var totals = LossTotals()
        var start = 0
        while start < indices.count {
            let n = min(Self.subBatch, indices.count - start)
            dataset.fill(UnsafeBufferPointer(rebasing: indices[start..<(start + n)]), features: ws.input, labels: ws.labels)
            forward(theta, rows: n, ws)
            Softmax.crossEntropy(ws.activations[layers.count - 1], labels: ws.labels, rows: n, classes: classes,
                                 lossGradient: lossGradient, totals: &totals)
            afterForward(n)
            start += n
        }
        return totals
    }

    private func forward(_ theta: UnsafePointer<Float>, rows n: Int, _ ws: Workspace) {
        var x = ws.input
        for (l, layer) in layers.enumerated() {
            let out = ws.activations[l]
            let (i, o) = (layer.input, layer.output)
            switch layer.spec {
            case let .conv(f, k):
                im2col(x, rows: n, shape: i, kernel: k, into: ws.columns[l]!)
                gemm(.none, .none, m: n * i.h * i.w, n: f, k: layer.fanIn, a: ws.columns[l]!, lda: layer.fanIn,
                     b: theta + layer.weightOffset, ldb: f, beta: 0, c: out, ldc: f)
                Kernels.addRowVector(theta + layer.biasOffset, to: out, rows: n * i.h * i.w, columns: f)
            case .relu:
                Kernels.relu(out, count: n * o.count)
            case .pool:
                maxPool(x, rows: n, shape: i, into: out, argmax: ws.argmax[l]!)
            case let .dense(m):
                gemm(.none, .none, m: n, n: m, k: layer.fanIn, a: x, lda: layer.fanIn, b: theta + layer.weightOffset, ldb: m,
                     beta: 0, c: out, ldc: m)
                Kernels.addRowVector(theta + layer.biasOffset, to: out, rows: n, columns: m)
            }
            x = out
        }
    }

    /// Adds (or with `overwrite` writes) the gradient of the last forward pass's summed loss; the last activation
    /// holds softmax − one-hot.
    private func backward(_ theta: UnsafePointer<Float>, _ gradient: UnsafeMutablePointer<Float>, rows n: Int, _ ws: Workspace,
                          overwrite: Bool) {
        var delta = ws.activations[layers.count - 1]
        var useA = true
        func next() -> UnsafeMutablePointer<Float> {
            defer { useA.toggle() }
            return useA ? ws.deltaA : ws.deltaB
        }
        for l in stride(from: layers.count - 1, through: 0, by: -1) {
            let layer = layers[l], i = layer.input
            let input = l == 0 ? ws.input : ws.activations[l - 1]
            let beta: Float = overwrite ? 0 : 1
            switch layer.spec {
            case let .dense(m):
                gemm(.transposed, .none, m: layer.fanIn, n: m, k: n, a: input, lda: layer.fanIn, b: delta, ldb: m,
                     beta: beta, c: gradient + layer.weightOffset, ldc: m)
                if overwrite { (gradient + layer.biasOffset).update(repeating: 0, count: m) }
                Kernels.accumulateColumnSums(of: delta, rows: n, columns: m, into: gradient + layer.biasOffset)
                guard l > 0 else { break }
                let d = next()
                gemm(.none, .transposed, m: n, n: layer.fanIn, k: m, a: delta, lda: m, b: theta + layer.weightOffset, ldb: m,
                     beta: 0, c: d, ldc: layer.fanIn)
                delta = d
            case .relu:
                Kernels.reluBackward(delta, activation: ws.activations[l], count: n * i.count)
            case .pool:
                let d = next()
                d.update(repeating: 0, count: n * i.count)
                let argmax = ws.argmax[l]!, outCount = layer.output.count
                for s in 0..<n {
                    for j in 0..<outCount { d[s * i.count + Int(argmax[s * outCount + j])] = delta[s * outCount + j] }
                }
                delta = d
            case let .conv(f, k):
                let positions = n * i.h * i.w, columns = ws.columns[l]!  // the patches of this sub-batch's forward pass
                gemm(.transposed, .none, m: layer.fanIn, n: f, k: positions, a: columns, lda: layer.fanIn, b: delta, ldb: f,
                     beta: beta, c: gradient + layer.weightOffset, ldc: f)
                if overwrite { (gradient + layer.biasOffset).update(repeating: 0, count: f) }
                Kernels.accumulateColumnSums(of: delta, rows: positions, columns: f, into: gradient + layer.biasOffset)
                guard l > 0 else { break }
                gemm(.none, .transposed, m: positions, n: layer.fanIn, k: f, a: delta, lda: f, b: theta + layer.weightOffset, ldb: f,
                     beta: 0, c: columns, ldc: layer.fanIn)
                let d = next()
                col2im(columns, rows: n, shape: i, kernel: k, into: d)
                delta = d
            }
        }
    }

    /// The patches of a 'same' convolution: row (s, y, x), columns (ky, kx, c), zeros outside the image.
    func im2col(_ x: UnsafePointer<Float>, rows n: Int, shape s: Shape, kernel k: Int, into col: UnsafeMutablePointer<Float>) {
        forEachPatchEntry(rows: n, shape: s, kernel: k) { pixel, entry in
            if let pixel { (col + entry).update(from: x + pixel, count: s.c) } else { (col + entry).update(repeating: 0, count: s.c) }
        }
    }

    /// The inverse scatter of `im2col`: each patch entry added back to its pixel, in patch order.
    func col2im(_ col: UnsafePointer<Float>, rows n: Int, shape s: Shape, kernel k: Int, into x: UnsafeMutablePointer<Float>) {
        x.update(repeating: 0, count: n * s.count)
        forEachPatchEntry(rows: n, shape: s, kernel: k) { pixel, entry in
            if let pixel { Kernels.add(x + pixel, col + entry, into: x + pixel, count: s.c) }
        }
    }

    /// Every patch entry of a 'same' convolution in patch order (sample, y, x, ky, kx): `body` gets the offset of the
    /// pixel it reads (nil in the zero padding) and the offset of its `s.c` values in the columns.
    @inline(__always)
    private func forEachPatchEntry(rows n: Int, shape s: Shape, kernel k: Int, _ body: (_ pixel: Int?, _ entry: Int) -> Void) {
        let p = k / 2, width = k * k * s.c
        for b in 0..<n {
            for y in 0..<s.h {
                for xx in 0..<s.w {
                    let row = ((b * s.h + y) * s.w + xx) * width
                    for ky in 0..<k {
                        let sy = y + ky - p
                        for kx in 0..<k {
                            let sx = xx + kx - p
                            let inside = sy >= 0 && sy < s.h && sx >= 0 && sx < s.w
                            body(inside ? b * s.count + (sy * s.w + sx) * s.c : nil, row + (ky * k + kx) * s.c)
                        }
                    }
                }
            }
        }
    }

    /// 2×2 max-pooling with stride 2 (a trailing odd row or column is dropped, as torch's MaxPool2d(2) does); the
    /// first maximum of a window wins.
    private func maxPool(_ x: UnsafePointer<Float>, rows n: Int, shape s: Shape, into out: UnsafeMutablePointer<Float>,
                         argmax: UnsafeMutablePointer<Int32>) {
        let (oh, ow) = (s.h / 2, s.w / 2), outCount = oh * ow * s.c
        for b in 0..<n {
            let image = x + b * s.count
            for y in 0..<oh {
                for xx in 0..<ow {
                    for c in 0..<s.c {
                        var at = (2 * y * s.w + 2 * xx) * s.c + c
                        var best = image[at]
                        for dy in 0..<2 {
                            for dx in 0..<2 where dy + dx > 0 {
                                let i = ((2 * y + dy) * s.w + 2 * xx + dx) * s.c + c
                                if image[i] > best { (best, at) = (image[i], i) }
                            }
                        }
                        let o = b * outCount + (y * ow + xx) * s.c + c
                        out[o] = best
                        argmax[o] = Int32(at)
                    }
                }
            }
        }
    }
}

extension CNN.LayerSpec {
    var isConv: Bool { if case .conv = self { return true } else { return false } }
}
