// The GEMM roofline of an MLP's training step: the time of the model's own sgemm calls (forward, dW and dA, with
// its shapes and transposes) on the rows one rank computes at once, timed on every rank at the same time so that
// every core is busy. No step can be faster than its GEMMs; `launch/bench` divides the measured samples/s by it.
import Collectives
import Foundation
import Models
import Numerics

public enum Roofline {
    /// One sgemm call of the step: C[m×n] = op(A) · op(B).
    public struct Shape: Equatable, Sendable {
        public var transA: Transpose
        public var transB: Transpose
        public var m: Int, n: Int, k: Int

        public init(transA: Transpose, transB: Transpose, m: Int, n: Int, k: Int) {
            (self.transA, self.transB, self.m, self.n, self.k) = (transA, transB, m, n, k)
        }
    }

    /// The sgemm calls `MLP.accumulateGradient` makes for `rows` rows of a network with layer sizes `sizes`, in
    /// its order: each layer's forward product, then backwards each layer's dW and (but the first) dA. With
    /// `outputsFirst`, the calls the same step would make with each weight matrix stored (outputs, inputs)
    /// instead of (inputs, outputs), for comparing the two layouts.
    public static func shapes(sizes: [Int], rows: Int, outputsFirst: Bool = false) -> [Shape] {
        let layers = Array(zip(sizes, sizes.dropFirst()))
        let forward = layers.map { Shape(transA: .none, transB: outputsFirst ? .transposed : .none, m: rows, n: $0.1, k: $0.0) }
        let backward = layers.indices.reversed().flatMap { l -> [Shape] in
            let (inputs, outputs) = layers[l]
            let dW = outputsFirst ? Shape(transA: .transposed, transB: .none, m: outputs, n: inputs, k: rows)
                : Shape(transA: .transposed, transB: .none, m: inputs, n: outputs, k: rows)
            let dA = Shape(transA: .none, transB: outputsFirst ? .none : .transposed, m: rows, n: inputs, k: outputs)
            return l > 0 ? [dW, dA] : [dW]
        }
        return forward + backward
    }

    /// The sgemm calls `CNN.accumulateGradient` makes for `rows` samples (one sub-batch): each convolution's and
    /// dense layer's forward product, then backwards its dW and (but the first) the product that gives its
    /// input's gradient (im2col's columns for a convolution).
    public static func shapes(cnn: CNN, rows: Int) -> [Shape] {
        var forward: [Shape] = [], backward: [Shape] = []
        for (l, layer) in cnn.layers.enumerated() {
            let positions: Int, outputs: Int
            switch layer.spec {
            case let .conv(f, _): (positions, outputs) = (rows * layer.input.h * layer.input.w, f)
            case let .dense(n): (positions, outputs) = (rows, n)
            default: continue
            }
            forward.append(Shape(transA: .none, transB: .none, m: positions, n: outputs, k: layer.fanIn))
            var back = [Shape(transA: .transposed, transB: .none, m: layer.fanIn, n: outputs, k: positions)]
            if l > 0 { back.append(Shape(transA: .none, transB: .transposed, m: positions, n: layer.fanIn, k: outputs)) }
            backward.insert(contentsOf: back, at: 0)
        }
        return forward + backward
    }

    /// The floating-point operations of `shapes` (2·m·n·k each).
    public static func flops(_ shapes: [Shape]) -> Double { shapes.reduce(0) { $0 + 2 * Double($1.m * $1.n * $1.k) } }

    /// Seconds for one pass over `shapes` on this rank: the median of `repeats` passes, each started together on
    /// every rank (a one-float allreduce before it); the maximum of the ranks' medians, the same on every rank.
    public static func seconds(_ shapes: [Shape], repeats: Int, on communicator: Communicator) throws -> Double {
        let size = shapes.map { max($0.m * $0.k, $0.k * $0.n, $0.m * $0.n) }.max() ?? 1
        var rng = Xoshiro256(seed: 7, stream: 0x600F)
        let a = (0..<size).map { _ in Float(rng.nextGaussian()) }, b = (0..<size).map { _ in Float(rng.nextGaussian()) }
        var c = [Float](repeating: 0, count: size)
        var times: [Double] = []
        var token: [Float] = [0]
        for _ in 0..<(repeats + 1) {
            try communicator.allreduceSum(&token)
            let start = monotonicSeconds()
            a.withUnsafeBufferPointer { a in
                b.withUnsafeBufferPointer { b in
                    c.withUnsafeMutableBufferPointer { c in
                        for s in shapes {
                            gemm(s.transA, s.transB, m: s.m, n: s.n, k: s.k,
                                 a: a.baseAddress!, lda: s.transA == .none ? s.k : s.m,
                                 b: b.baseAddress!, ldb: s.transB == .none ? s.n : s.k,
                                 beta: 0, c: c.baseAddress!, ldc: s.n)
                        }
                    }
                }
            }
            times.append(monotonicSeconds() - start)
        }
        let median = times.dropFirst().sorted()[repeats / 2]  // the first pass warms caches and OpenBLAS
        var slowest = [median]
        try communicator.allreduce(&slowest, .max)
        return slowest[0]
    }
}
