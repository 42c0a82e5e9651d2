// The CNN's gradient against finite differences of an independent Double implementation of the same network
// (naive loops, zero padding, 2×2 max-pooling), its shapes and messages, and its PyTorch layout.
import Datasets
import DescentTestSupport
import Foundation
import Models
import Testing

@Suite("CNN")
struct CNNTests {
    /// Images of 6×5 with 2 channels (channels last), 3 classes; odd sizes exercise the pool's dropped column.
    static let data = SyntheticClassification(count: 40, featureCount: 60, classCount: 3, noise: 0.8, seed: 4, test: false)
    static let specs: [CNN.LayerSpec] = [.conv(filters: 3, kernel: 3), .relu, .pool, .conv(filters: 4, kernel: 3), .relu, .dense(5), .relu]
    static let model = try! CNN(input: [6, 5, 2], classes: 3, specs: specs)

    /// The summed loss over `indices`, computed in Double from the flat parameters, layer by layer.
    func referenceLoss(_ theta: [Double], indices: [Int32]) -> Double {
        let m = Self.model
        var total = 0.0
        for index in indices {
            var features = [Float](repeating: 0, count: 60), label: [Int32] = [0]
            [index].withUnsafeBufferPointer { Self.data.fill($0, features: &features, labels: &label) }
            var x = features.map(Double.init), shape = (h: 6, w: 5, c: 2)
            for l in m.layers {
                switch l.spec {
                case let .conv(f, k):
                    var y = [Double](repeating: 0, count: shape.h * shape.w * f)
                    for yy in 0..<shape.h { for xx in 0..<shape.w { for o in 0..<f {
                        var s = theta[l.biasOffset + o]
                        for ky in 0..<k { for kx in 0..<k { for c in 0..<shape.c {
                            let sy = yy + ky - k / 2, sx = xx + kx - k / 2
                            guard sy >= 0, sy < shape.h, sx >= 0, sx < shape.w else { continue }
                            s += x[(sy * shape.w + sx) * shape.c + c] * theta[l.weightOffset + ((ky * k + kx) * shape.c + c) * f + o]
                        } } }
                        y[(yy * shape.w + xx) * f + o] = s
                    } } }
                    (x, shape) = (y, (shape.h, shape.w, f))
                case .relu:
                    x = x.map { max($0, 0) }
                case .pool:
                    let (oh, ow) = (shape.h / 2, shape.w / 2)
                    var y = [Double](repeating: 0, count: oh * ow * shape.c)
                    for yy in 0..<oh { for xx in 0..<ow { for c in 0..<shape.c {
                        y[(yy * ow + xx) * shape.c + c] = [(0, 0), (0, 1), (1, 0), (1, 1)].map { x[((2 * yy + $0.0) * shape.w + 2 * xx + $0.1) * shape.c + c] }.max()!
                    } } }
                    (x, shape) = (y, (oh, ow, shape.c))
                case let .dense(n):
                    x = (0..<n).map { o in theta[l.biasOffset + o] + x.indices.reduce(0.0) { $0 + x[$1] * theta[l.weightOffset + $1 * n + o] } }
                    shape = (1, 1, n)
                }
            }
            let maximum = x.max()!
            total += log(x.map { exp($0 - maximum) }.reduce(0, +)) - (x[Int(label[0])] - maximum)
        }
        return total
    }

    @Test("backpropagation matches central finite differences of an independent Double loss")
    func finiteDifferences() {
        let m = Self.model
        var theta = m.initialParameters(seed: 5)
        for l in m.layers where l.fanIn > 0 { for j in 0..<l.output.c { theta[l.biasOffset + j] = 0.03 * Float(j % 4) - 0.04 } }
        let indices: [Int32] = (0..<40).map { Int32($0) }  // two sub-batches of 32 and 8: accumulation is tested too
        var gradient = [Float](repeating: 0, count: m.parameterCount)
        let ws = m.makeWorkspace(capacity: 40)
        let totals = indices.withUnsafeBufferPointer { idx in
            theta.withUnsafeBufferPointer { t in
                gradient.withUnsafeMutableBufferPointer { g in
                    m.accumulateGradient(parameters: t.baseAddress!, gradient: g.baseAddress!, dataset: Self.data, indices: idx,
                                         workspace: ws, overwrite: true)
                }
            }
        }
        let thetaD = theta.map(Double.init)
        #expect(totals.count == 40 && abs(totals.lossSum - referenceLoss(thetaD, indices: indices)) < 1e-4)
        let worst = worstFiniteDifference(thetaD, gradient) { referenceLoss($0, indices: indices) }
        #expect(worst.error < 1e-3, "largest relative difference \(worst.error) at θ[\(worst.index)]")
    }

    @Test("DeepOBS's 2c2d on 28×28: 3,274,634 parameters, and torch's names and shapes (Flatten at module 6)")
    func twoC2D() throws {
        let m = try CNN(input: [28, 28], classes: 10, specs: [.conv(filters: 32, kernel: 5), .relu, .pool, .conv(filters: 64, kernel: 5), .relu,
                                                               .pool, .dense(1024), .relu])
        #expect(m.parameterCount == (25 * 32 + 32) + (25 * 32 * 64 + 64) + (7 * 7 * 64 * 1024 + 1024) + (1024 * 10 + 10))
        #expect(m.parameterCount == 3_274_634)
        #expect(m.tensorLayout.map { "\($0.name) \($0.shape)" } == ["0.weight [32, 1, 5, 5]", "0.bias [32]", "3.weight [64, 32, 5, 5]",
                                                                    "3.bias [64]", "7.weight [1024, 3136]", "7.bias [1024]",
                                                                    "9.weight [10, 1024]", "9.bias [10]"])
        // Every parameter appears in exactly one tensor.
        #expect(m.tensorLayout.flatMap(\.indices).sorted() == Array(0..<m.parameterCount))
    }

    @Test("shapes that do not fit are refused naming the layer and the shapes")
    func shapes() {
        func message(_ input: [Int], _ specs: [CNN.LayerSpec]) -> String {
            do { _ = try CNN(input: input, classes: 10, specs: specs); return "accepted" } catch { return "\(error)" }
        }
        #expect(message([4, 4], [.pool, .pool, .pool]) == "model.layers[2] (pool): expected an input of at least 2×2, found an input of 1×1×1")
        #expect(message([8, 8], [.conv(filters: 4, kernel: 4)]) == "model.layers[0] (conv 4 4): expected an odd kernel for 'same' padding, at most the image, found an input of 8×8×1")
        #expect(message([8, 8], [.dense(5), .conv(filters: 2, kernel: 3)])
                == "model.layers[1] (conv 2 3): expected an image input (convolutions come before the dense layers), found a flat input of 5")
        #expect(message([784], [.pool]).hasPrefix("model.layers[0] (pool): expected images of height × width"))
    }
}
