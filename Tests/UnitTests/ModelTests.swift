// The MLP's gradient against finite differences of its own loss, and its bookkeeping.
import Config
import Datasets
import DescentTestSupport
import Experiments
import Models
import Testing

@Suite("MLP")
struct MLPTests {
    /// A small problem whose layers are not multiples of the SIMD width, so vector tails are exercised too.
    static let data = SyntheticClassification(count: 40, featureCount: 11, classCount: 3, noise: 0.7, seed: 9, test: false)
    static let model = MLP(sizes: [11, 13, 9, 3])

    func loss(_ theta: [Float], indices: [Int32]) -> Double {
        let ws = Self.model.makeWorkspace(capacity: 16)
        return indices.withUnsafeBufferPointer { idx in
            theta.withUnsafeBufferPointer {
                Self.model.evaluate(parameters: $0.baseAddress!, dataset: Self.data, indices: idx, workspace: ws).lossSum
            }
        }
    }

    @Test("parameter layout: weights (in, out) then bias, layer by layer")
    func layout() {
        let m = Self.model
        #expect(m.parameterCount == 11 * 13 + 13 + 13 * 9 + 9 + 9 * 3 + 3)
        #expect(m.layers.map(\.weightOffset) == [0, 156, 282])
        #expect(m.layers.map(\.biasOffset) == [143, 273, 309])
        #expect(MLP(sizes: [784, 100, 100, 100, 100, 10]).parameterCount == 109_810)
    }

    @Test("Xavier initialisation: weight spread √(2/(inputs + outputs)); zeros: every parameter 0")
    func otherInits() {
        let m = MLP(sizes: [400, 300, 10], initialisation: .xavier)
        let w = m.initialParameters(seed: 3)[0..<(400 * 300)].map(Double.init)
        let std = (w.map { $0 * $0 }.reduce(0, +) / Double(w.count)).squareRoot()
        #expect(abs(std / (2.0 / 700).squareRoot() - 1) < 0.01)
        #expect(MLP(sizes: [400, 300, 10], initialisation: .zeros).initialParameters(seed: 3).allSatisfy { $0 == 0 })
    }

    @Test("from zero weights every hidden unit of a layer stays equal to the others while training")
    func zeroInitialisationStaysSymmetric() {
        let m = MLP(sizes: [11, 13, 9, 3], initialisation: .zeros)
        var theta = m.initialParameters(seed: 1)
        let ws = m.makeWorkspace(capacity: 40)
        var gradient = [Float](repeating: 0, count: m.parameterCount)
        let indices = (0..<Int32(40)).map { $0 }
        for _ in 0..<20 {
            indices.withUnsafeBufferPointer { idx in
                theta.withUnsafeBufferPointer { t in
                    gradient.withUnsafeMutableBufferPointer { g in
                        _ = m.accumulateGradient(parameters: t.baseAddress!, gradient: g.baseAddress!, dataset: Self.data,
                                                 indices: idx, workspace: ws, overwrite: true)
                    }
                }
            }
            for i in theta.indices { theta[i] -= 0.5 * gradient[i] / 40 }
        }
        // The output bias learns the class frequencies; each hidden layer's units (columns) stay identical.
        let out = m.layers[2]
        #expect(theta[out.biasOffset..<(out.biasOffset + 3)].contains { $0 != 0 })
        for l in m.layers.dropLast() {
            for row in 0..<l.inputs {
                let unit = theta[(l.weightOffset + row * l.outputs)..<(l.weightOffset + (row + 1) * l.outputs)]
                #expect(Set(unit).count == 1, "layer with \(l.outputs) units: row \(row) holds \(Set(unit).count) values")
            }
            #expect(Set(theta[l.biasOffset..<(l.biasOffset + l.outputs)]).count == 1)
        }
    }

    @Test("truncated-normal initialisation: weights within ±2σ with the truncated spread 0.8796σ, biases the given constant")
    func truncatedNormal() {
        let m = MLP(sizes: [400, 300, 3], initialisation: .truncatedNormal, initialStd: 0.05, initialBias: 0.1)
        let theta = m.initialParameters(seed: 3)
        let w = theta[0..<(400 * 300)].map(Double.init)
        let std = (w.map { $0 * $0 }.reduce(0, +) / Double(w.count)).squareRoot()
        // A standard normal cut at ±2 has variance 1 − 4φ(2)/(2Φ(2) − 1) = 0.7737, so σ √0.7737 = 0.8796 σ.
        #expect(w.allSatisfy { abs($0) <= 0.1 + 1e-7 } && abs(std / (0.05 * 0.8796) - 1) < 0.02, "spread \(std)")
        #expect(m.layers.allSatisfy { l in (0..<l.outputs).allSatisfy { theta[l.biasOffset + $0] == 0.1 } })
        #expect(MLP(sizes: [400, 300, 3]).initialParameters(seed: 3) != theta)
    }

    @Test("model.init_scale multiplies every weight's σ: He × 0.25 and × 4 are the same draws scaled, biases untouched, for the MLP and the CNN")
    func initScale() throws {
        let he = MLP(sizes: [40, 30, 3]).initialParameters(seed: 5)
        for scale in [0.25, 4.0] {
            let scaled = MLP(sizes: [40, 30, 3], initialScale: scale).initialParameters(seed: 5)
            #expect(zip(he, scaled).allSatisfy { $1 == Float(scale) * $0 }, "scale \(scale)")
        }
        let specs = [CNN.LayerSpec("conv 4 3")!, CNN.LayerSpec("relu")!, CNN.LayerSpec("pool")!, CNN.LayerSpec("dense 8")!]
        let cnn = try CNN(input: [6, 6, 1], classes: 3, specs: specs, initialisation: .xavier, initialBias: 0.05).initialParameters(seed: 2)
        let twice = try CNN(input: [6, 6, 1], classes: 3, specs: specs, initialisation: .xavier, initialScale: 2, initialBias: 0.05)
            .initialParameters(seed: 2)
        #expect(zip(cnn, twice).allSatisfy { $1 == ($0 == 0.05 ? 0.05 : 2 * $0) })
        let config = try RunConfig.load(yaml: "model: {init_scale: 0.5}\n", fileName: "c.yaml")
        #expect(config.model.initScale == 0.5 && config.resolvedYAML.contains("init_scale: 0.5"))
        #expect(throws: ConfigError.self) { try RunConfig.load(yaml: "model: {init_scale: 0}\n", fileName: "c.yaml") }
    }

    @Test("He initialisation: weight spread √(2/inputs), zero biases")
    func heInit() {
        let m = MLP(sizes: [400, 300, 10])
        let theta = m.initialParameters(seed: 3)
        let w = theta[0..<(400 * 300)].map(Double.init)
        let mean = w.reduce(0, +) / Double(w.count)
        let std = (w.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(w.count)).squareRoot()
        #expect(abs(mean) < 0.002)
        #expect(abs(std / (2.0 / 400).squareRoot() - 1) < 0.01)
        #expect(theta[(400 * 300)..<(400 * 300 + 300)].allSatisfy { $0 == 0 })
        #expect(m.initialParameters(seed: 3) == theta && m.initialParameters(seed: 4) != theta)
    }

    /// The summed softmax cross-entropy of the MLP, written out independently in Double from the definition.
    func referenceLoss(_ theta: [Double], indices: [Int32]) -> Double {
        let m = Self.model
        var features = [Float](repeating: 0, count: indices.count * 11), labels = [Int32](repeating: 0, count: indices.count)
        indices.withUnsafeBufferPointer { Self.data.fill($0, features: &features, labels: &labels) }
        var total = 0.0
        for (row, _) in indices.enumerated() {
            var a = (0..<11).map { Double(features[row * 11 + $0]) }
            for (l, layer) in m.layers.enumerated() {
                var z = (0..<layer.outputs).map { theta[layer.biasOffset + $0] }
                for i in 0..<layer.inputs { for j in 0..<layer.outputs { z[j] += a[i] * theta[layer.weightOffset + i * layer.outputs + j] } }
                a = l == m.layers.count - 1 ? z : z.map { max($0, 0) }
            }
            let top = a.max()!
            let logSum = top + log(a.map { exp($0 - top) }.reduce(0, +))
            total += logSum - a[Int(labels[row])]
        }
        return total
    }

    @Test("backpropagation matches central finite differences of an independent Double loss")
    func finiteDifferences() {
        let m = Self.model
        var theta = m.initialParameters(seed: 2)
        for l in m.layers { for j in 0..<l.outputs { theta[l.biasOffset + j] = 0.05 * Float(j % 5) - 0.1 } }
        let indices: [Int32] = (0..<40).map { Int32($0) }
        var gradient = [Float](repeating: 0, count: m.parameterCount)
        let ws = m.makeWorkspace(capacity: 16)  // 40 samples in chunks of 16: accumulation across chunks is tested too
        let totals = indices.withUnsafeBufferPointer { idx in
            theta.withUnsafeBufferPointer { t in
                gradient.withUnsafeMutableBufferPointer { g in
                    m.accumulateGradient(parameters: t.baseAddress!, gradient: g.baseAddress!, dataset: Self.data,
                                         indices: idx, workspace: ws)
                }
            }
        }
        let thetaD = theta.map(Double.init)
        #expect(totals.count == 40)
        #expect(abs(totals.lossSum - referenceLoss(thetaD, indices: indices)) < 1e-4)
        #expect(abs(loss(theta, indices: indices) - totals.lossSum) < 1e-4)
        let worst = worstFiniteDifference(thetaD, gradient) { referenceLoss($0, indices: indices) }
        #expect(worst.error < 1e-4, "largest relative difference \(worst.error) at θ[\(worst.index)]")
    }

    @Test("evaluation counts correct predictions: a model that always says class 2 is right exactly on class-2 samples")
    func accuracyCounting() {
        let m = MLP(sizes: [11, 3])
        var theta = [Float](repeating: 0, count: m.parameterCount)
        theta[m.layers[0].biasOffset + 2] = 5
        let indices: [Int32] = (0..<40).map { Int32($0) }
        let ws = m.makeWorkspace(capacity: 7)
        let t = indices.withUnsafeBufferPointer { idx in
            theta.withUnsafeBufferPointer { m.evaluate(parameters: $0.baseAddress!, dataset: Self.data, indices: idx, workspace: ws) }
        }
        let expected = indices.filter { Self.data.label(of: Int($0)) == 2 }.count
        #expect(t.correct == expected && t.count == 40)
        // Loss of a constant prediction: −log softmax, computed by hand.
        let pRight = exp(5.0) / (exp(5.0) + 2), pWrong = 1 / (exp(5.0) + 2)
        let reference = Double(expected) * -log(pRight) + Double(40 - expected) * -log(pWrong)
        #expect(abs(t.lossSum - reference) < 1e-4 * reference)
    }

    @Test("a confidently wrong prediction has a large finite loss, not infinity (exp of the label's logit underflows)")
    func confidentlyWrong() {
        let m = MLP(sizes: [11, 3])
        var theta = [Float](repeating: 0, count: m.parameterCount)
        theta[m.layers[0].biasOffset + 2] = 200  // class 2's logit is 200 above the others: e^−200 underflows in Float
        let indices: [Int32] = (0..<40).map { Int32($0) }
        let ws = m.makeWorkspace(capacity: 7)
        let t = indices.withUnsafeBufferPointer { idx in
            theta.withUnsafeBufferPointer { m.evaluate(parameters: $0.baseAddress!, dataset: Self.data, indices: idx, workspace: ws) }
        }
        let wrong = indices.filter { Self.data.label(of: Int($0)) != 2 }.count
        // −log softmax = log(e^200 + 2) − 0 ≈ 200 for a wrong sample, log(1 + 2e^−200) ≈ 0 for a right one.
        #expect(wrong > 0 && t.lossSum.isFinite)
        #expect(abs(t.lossSum - 200 * Double(wrong)) < 1e-3 * 200 * Double(wrong))
    }
}

#if canImport(Glibc)
import Glibc
#endif

@Suite("GEMM roofline")
struct RooflineTests {
    @Test("the roofline's shapes are the MLP's products written out: forward per layer, dW per layer, dA but for the first")
    func shapes() {
        let sizes = [11, 13, 9, 3], rows = 5
        let s = Roofline.shapes(sizes: sizes, rows: rows)
        #expect(s.count == 3 + 3 + 2)
        #expect(s[0] == Roofline.Shape(transA: .none, transB: .none, m: 5, n: 13, k: 11))
        #expect(s[3] == Roofline.Shape(transA: .transposed, transB: .none, m: 9, n: 3, k: 5))
        #expect(s[4] == Roofline.Shape(transA: .none, transB: .transposed, m: 5, n: 9, k: 3))
        #expect(s.last == Roofline.Shape(transA: .transposed, transB: .none, m: 11, n: 13, k: 5))
        // 2·rows·(in·out) per product: three per layer, but no dA for the first.
        let products = zip(sizes, sizes.dropFirst()).map { Double($0 * $1) }
        #expect(Roofline.flops(s) == 2 * Double(rows) * (3 * products.reduce(0, +) - products[0]))
    }
}
