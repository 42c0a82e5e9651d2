// Exact Hessian-vector products against independent Double references (central differences of a Double gradient
// written out here, closed forms), and Lanczos, Hutchinson and stochastic Lanczos quadrature against dense
// eigendecompositions.
import Datasets
import DescentTestSupport
import Foundation
import Models
import Numerics
import Testing
@testable import Config
@testable import Collectives
@testable import Training

/// The MLP's summed loss and gradient, written out independently in Double from the definition (ReLU hidden
/// layers, softmax cross-entropy; weights (inputs, outputs) row-major, then the bias, layer by layer).
struct ReferenceMLP {
    let sizes: [Int]
    let features: [[Double]]
    let labels: [Int]

    init(sizes: [Int], data: Dataset, count: Int) {
        self.sizes = sizes
        var x = [Float](repeating: 0, count: count * sizes[0]), y = [Int32](repeating: 0, count: count)
        let indices = (0..<Int32(count)).map { $0 }
        indices.withUnsafeBufferPointer { data.fill($0, features: &x, labels: &y) }
        features = (0..<count).map { r in (0..<sizes[0]).map { Double(x[r * sizes[0] + $0]) } }
        labels = y.map(Int.init)
    }

    /// Offsets of each layer's weights and bias.
    var offsets: [(weights: Int, bias: Int)] {
        var o = 0
        return zip(sizes, sizes.dropFirst()).map { n, m in defer { o += n * m + m }; return (o, o + n * m) }
    }

    /// Each sample's logits.
    func logits(_ theta: [Double]) -> [[Double]] {
        features.map { x in
            var a = x
            for (l, (n, m)) in zip(sizes, sizes.dropFirst()).enumerated() {
                let (w, b) = offsets[l]
                var z = (0..<m).map { theta[b + $0] }
                for i in 0..<n { for j in 0..<m { z[j] += a[i] * theta[w + i * m + j] } }
                a = l == sizes.count - 2 ? z : z.map { max($0, 0) }
            }
            return a
        }
    }

    /// ∇ of the summed loss, by backpropagation in Double.
    func gradient(_ theta: [Double]) -> [Double] {
        var g = [Double](repeating: 0, count: theta.count)
        let layers = Array(zip(sizes, sizes.dropFirst()))
        for (x, label) in zip(features, labels) {
            var activations = [x]
            for (l, (n, m)) in layers.enumerated() {
                let (w, b) = offsets[l], a = activations.last!
                var z = (0..<m).map { theta[b + $0] }
                for i in 0..<n { for j in 0..<m { z[j] += a[i] * theta[w + i * m + j] } }
                activations.append(l == layers.count - 1 ? z : z.map { max($0, 0) })
            }
            let z = activations.last!, top = z.max()!
            let e = z.map { exp($0 - top) }, sum = e.reduce(0, +)
            var delta = e.map { $0 / sum }
            delta[label] -= 1
            for l in stride(from: layers.count - 1, through: 0, by: -1) {
                let (n, m) = layers[l], (w, b) = offsets[l], a = activations[l]
                for i in 0..<n { for j in 0..<m { g[w + i * m + j] += a[i] * delta[j] } }
                for j in 0..<m { g[b + j] += delta[j] }
                guard l > 0 else { break }
                delta = (0..<n).map { (i: Int) -> Double in
                    guard a[i] > 0 else { return 0 }
                    var sum = 0.0
                    for j in 0..<m { sum += delta[j] * theta[w + i * m + j] }
                    return sum
                }
            }
        }
        return g
    }

    /// H·v by central differences of the Double gradient.
    func hessianProduct(_ theta: [Double], _ v: [Double], h: Double = 1e-5) -> [Double] {
        let plus = gradient(zip(theta, v).map { $0 + h * $1 }), minus = gradient(zip(theta, v).map { $0 - h * $1 })
        return zip(plus, minus).map { ($0 - $1) / (2 * h) }
    }
}

/// The model's H·v (or G·v) over `count` samples of `data` in passes of `capacity`.
func modelProduct(_ model: CurvatureModel, _ theta: [Float], _ v: [Float], _ data: Dataset, count: Int, capacity: Int = 16,
                  gaussNewton: Bool = false) -> [Float] {
    var product = [Float](repeating: 0, count: model.parameterCount)
    let ws = model.makeWorkspace(capacity: capacity)
    let indices = (0..<Int32(count)).map { $0 }
    _ = indices.withUnsafeBufferPointer { idx in
        product.withUnsafeMutableBufferPointer { p in
            model.accumulateHessianVectorProduct(parameters: theta, direction: v, product: p.baseAddress!, dataset: data,
                                                 indices: idx, workspace: ws, overwrite: true, gaussNewton: gaussNewton)
        }
    }
    return product
}

/// max |a − b| / max |b|.
func relativeDifference(_ a: [Float], _ b: [Double]) -> Double {
    zip(a, b).map { abs(Double($0) - $1) }.max()! / max(b.map(abs).max()!, 1e-300)
}

@Suite("Hessian-vector products")
struct HessianProductTests {
    static let data = SyntheticClassification(count: 40, featureCount: 7, classCount: 3, noise: 0.7, seed: 4, test: false)

    /// Parameters with biases away from zero, so that ReLUs are both on and off.
    static func point(_ model: MLP, seed: UInt64) -> [Float] {
        var theta = model.initialParameters(seed: seed)
        for l in model.layers { for j in 0..<l.outputs { theta[l.biasOffset + j] = 0.05 * Float(j % 5) - 0.1 } }
        return theta
    }

    static func direction(_ n: Int, seed: UInt64) -> [Float] {
        var rng = Xoshiro256(seed: seed, stream: 3)
        return (0..<n).map { _ in Float(rng.nextUnit() * 2 - 1) }
    }

    @Test("the MLP's H·v equals central differences of an independent Double gradient (two hidden layers, 40 samples in passes of 16)")
    func mlpAgainstDifferences() {
        for sizes in [[7, 9, 6, 3], [7, 5, 3]] {
            let model = MLP(sizes: sizes), reference = ReferenceMLP(sizes: sizes, data: Self.data, count: 40)
            let theta = Self.point(model, seed: 2), v = Self.direction(model.parameterCount, seed: 5)
            let exact = modelProduct(model, theta, v, Self.data, count: 40)
            let differences = reference.hessianProduct(theta.map(Double.init), v.map(Double.init))
            #expect(relativeDifference(exact, differences) < 1e-4, "\(sizes): \(relativeDifference(exact, differences))")
        }
    }

    @Test("the CNN's H·v (conv, ReLU, pool, conv, dense) equals central differences of the gradient of an independent Double loss")
    func cnnAgainstDifferences() {
        let m = CNNTests.model, reference = CNNTests()
        var theta = m.initialParameters(seed: 5)
        for l in m.layers where l.fanIn > 0 { for j in 0..<l.output.c { theta[l.biasOffset + j] = 0.03 * Float(j % 4) - 0.04 } }
        let v = Self.direction(m.parameterCount, seed: 8), indices = (0..<Int32(40)).map { $0 }
        let t = theta.map(Double.init), d = v.map(Double.init)
        // (∇L(θ + hv) − ∇L(θ − hv)) / 2h, each gradient by central differences of the Double loss.
        let h = 1e-4
        func gradient(_ at: [Double]) -> [Double] {
            at.indices.map { i in
                var plus = at, minus = at
                plus[i] += h
                minus[i] -= h
                return (reference.referenceLoss(plus, indices: indices) - reference.referenceLoss(minus, indices: indices)) / (2 * h)
            }
        }
        let differences = zip(gradient(zip(t, d).map { $0 + h * $1 }), gradient(zip(t, d).map { $0 - h * $1 })).map { ($0 - $1) / (2 * h) }
        for gaussNewton in [false, true] {
            let exact = modelProduct(m, theta, v, CNNTests.data, count: 40, capacity: 40, gaussNewton: gaussNewton)
            if gaussNewton {
                // Jᵀ·H_L·J·v differs from H·v by the terms in the loss's gradient: close, not equal, and vᵀGv ≥ 0.
                #expect(zip(exact, v).reduce(0) { $0 + Double($1.0) * Double($1.1) } > 0)
            } else {
                #expect(relativeDifference(exact, differences) < 1e-3, "\(relativeDifference(exact, differences))")
            }
        }
    }

    @Test("softmax regression's Hessian is Σ (diag p − p·pᵀ) ⊗ x·xᵀ: H·v against the closed form")
    func logisticRegressionClosedForm() {
        let model = MLP(sizes: [7, 3]), reference = ReferenceMLP(sizes: [7, 3], data: Self.data, count: 40)
        let theta = Self.point(model, seed: 3), v = Self.direction(model.parameterCount, seed: 6)
        let t = theta.map(Double.init), d = v.map(Double.init)
        var closed = [Double](repeating: 0, count: model.parameterCount)
        for (x, z) in zip(reference.features, reference.logits(t)) {
            let e = z.map { exp($0 - z.max()!) }, p = e.map { $0 / e.reduce(0, +) }
            // u = J·v: the logits' change along v (weights (7, 3), then the bias).
            var u = [Double](repeating: 0, count: 3)
            for j in 0..<3 {
                u[j] = d[21 + j]
                for i in 0..<7 { u[j] += x[i] * d[i * 3 + j] }
            }
            let pu: Double = p[0] * u[0] + p[1] * u[1] + p[2] * u[2]
            let hu: [Double] = (0..<3).map { p[$0] * (u[$0] - pu) }
            for i in 0..<7 { for j in 0..<3 { closed[i * 3 + j] += x[i] * hu[j] } }
            for j in 0..<3 { closed[21 + j] += hu[j] }
        }
        let exact = modelProduct(model, theta, v, Self.data, count: 40)
        #expect(relativeDifference(exact, closed) < 1e-5)
        // A linear model's Gauss–Newton product is its Hessian.
        #expect(relativeDifference(modelProduct(model, theta, v, Self.data, count: 40, gaussNewton: true), closed) < 1e-5)
    }

    /// The whole matrix, column by column from products with the unit vectors.
    static func matrix(_ n: Int, _ column: ([Float]) -> [Float]) -> [[Double]] {
        (0..<n).map { j in
            var e = [Float](repeating: 0, count: n)
            e[j] = 1
            return column(e).map(Double.init)
        }
    }

    @Test("the whole Hessian of a small MLP, built from H·e_j, is symmetric and equals an independent Double Hessian")
    func wholeHessian() {
        let model = MLP(sizes: [4, 5, 3]), reference = ReferenceMLP(sizes: [4, 5, 3], data: Self.data4, count: 30)
        let theta = Self.point(model, seed: 7), n = model.parameterCount
        let h = Self.matrix(n) { modelProduct(model, theta, $0, Self.data4, count: 30) }
        var asymmetry = 0.0, difference = 0.0, largest = 0.0
        for j in 0..<n {
            var e = [Double](repeating: 0, count: n)
            e[j] = 1
            let column = reference.hessianProduct(theta.map(Double.init), e)
            for i in 0..<n {
                asymmetry = max(asymmetry, abs(h[j][i] - h[i][j]))
                difference = max(difference, abs(h[j][i] - column[i]))
                largest = max(largest, abs(column[i]))
            }
        }
        #expect(asymmetry / largest < 1e-5 && difference / largest < 1e-4, "asymmetry \(asymmetry), difference \(difference) of \(largest)")
        // Not positive definite: a ReLU network's Hessian has negative eigenvalues away from a minimum.
        let values = SymmetricEigen.decompose(h.flatMap { $0 }, n: n).values
        #expect(values.first! < -1e-3 * values.last!, "\(values.first!) … \(values.last!)")
    }

    static let data4 = SyntheticClassification(count: 30, featureCount: 4, classCount: 3, noise: 0.7, seed: 8, test: false)

    @Test("the Gauss–Newton product is Jᵀ·H_L·J (J from central differences of Double logits): symmetric, positive semi-definite")
    func gaussNewton() {
        let model = MLP(sizes: [4, 5, 3]), reference = ReferenceMLP(sizes: [4, 5, 3], data: Self.data4, count: 30)
        let theta = Self.point(model, seed: 7), n = model.parameterCount, t = theta.map(Double.init)
        let g = Self.matrix(n) { modelProduct(model, theta, $0, Self.data4, count: 30, gaussNewton: true) }
        // J[s][c][j] = ∂z_sc/∂θ_j.
        let h = 1e-6
        let columns = (0..<n).map { j -> [[Double]] in
            var plus = t, minus = t
            plus[j] += h
            minus[j] -= h
            return zip(reference.logits(plus), reference.logits(minus)).map { zip($0, $1).map { ($0 - $1) / (2 * h) } }
        }
        let logits = reference.logits(t)
        var worst = 0.0, largest = 0.0
        for i in 0..<n {
            for j in 0..<n {
                var sum = 0.0
                for (s, z) in logits.enumerated() {
                    let e = z.map { exp($0 - z.max()!) }, p = e.map { $0 / e.reduce(0, +) }
                    let a = columns[i][s], b = columns[j][s]
                    let pa = zip(p, a).reduce(0) { $0 + $1.0 * $1.1 }, pb = zip(p, b).reduce(0) { $0 + $1.0 * $1.1 }
                    sum += zip(p, zip(a, b)).reduce(0) { $0 + $1.0 * $1.1.0 * $1.1.1 } - pa * pb
                }
                worst = max(worst, abs(g[j][i] - sum))
                largest = max(largest, abs(sum))
            }
        }
        #expect(worst / largest < 1e-4, "\(worst) of \(largest)")
        let values = SymmetricEigen.decompose(g.flatMap { $0 }, n: n).values
        #expect(values.first! > -1e-5 * values.last!, "\(values.first!)")
    }

    @Test("a 2-parameter least-squares fit has the Hessian mean (x², x; x, 1), at any point; logistic regression's is weighted by p(1 − p)")
    func quadratic() {
        for problem in FiniteSum.allCases {
            let data = problem.data(count: 50, seed: 3)
            for start in [SIMD2<Float>(0.5, -1), SIMD2<Float>(2, 1)] {
                let model = TwoParameterModel(problem, start: start)
                let hessian = problem.meanHessian(Double(start.x), Double(start.y), over: data)
                for v in [[Float(1), 0], [0, 1], [0.3, -2]] {
                    let product = modelProduct(model, [start.x, start.y], v, data, count: 50, capacity: 8).map { Double($0) / 50 }
                    let expected = [hessian.x * Double(v[0]) + hessian.y * Double(v[1]), hessian.y * Double(v[0]) + hessian.z * Double(v[1])]
                    #expect(zip(product, expected).allSatisfy { close($0, $1, relative: 1e-5, floor: 1e-6) }, "\(problem) \(start) \(v): \(product) \(expected)")
                }
            }
        }
    }

    @Test("each 2-D test function's Hessian equals central differences of its gradient")
    func testFunctionHessians() {
        for f in TestFunction.allCases {
            for p in [f.start, SIMD2(0.3, -0.7), SIMD2(1.1, 0.4)] {
                let h = 1e-6, hessian = f.hessian(p.x, p.y)
                let dx = (f.gradient(p.x + h, p.y) - f.gradient(p.x - h, p.y)) / (2 * h)
                let dy = (f.gradient(p.x, p.y + h) - f.gradient(p.x, p.y - h)) / (2 * h)
                for (exact, difference) in [(hessian.x, dx.x), (hessian.y, dx.y), (hessian.y, dy.x), (hessian.z, dy.y)] {
                    #expect(close(exact, difference, relative: 1e-6, floor: 1), "\(f) at \(p): \(hessian) against \(dx), \(dy)")
                }
            }
        }
    }
}

@Suite("spectra from products")
struct SpectrumTests {
    /// A symmetric matrix with the given eigenvalues, in a random orthonormal basis (QR of Gaussian columns).
    static func matrix(eigenvalues: [Double], seed: UInt64) -> [Double] {
        let n = eigenvalues.count
        var rng = Xoshiro256(seed: seed, stream: 9)
        var q: [[Double]] = []
        for _ in 0..<n {
            var v = (0..<n).map { _ in rng.nextGaussian() }
            for _ in 0..<2 { for u in q { let c = Lanczos.dot(v, u); v = zip(v, u).map { $0 - c * $1 } } }
            let norm = Lanczos.norm(v)
            q.append(v.map { $0 / norm })
        }
        var a = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n { for k in 0..<n { a[i * n + j] += q[k][i] * eigenvalues[k] * q[k][j] } } }
        return a
    }

    static func apply(_ a: [Double], _ v: [Double]) -> [Double] {
        let n = v.count
        return (0..<n).map { i in (0..<n).reduce(0) { $0 + a[i * n + $1] * v[$1] } }
    }

    @Test("Lanczos with n iterations finds every eigenvalue; with 20 it finds the top ones and the most negative of a spread spectrum")
    func lanczos() {
        var rng = Xoshiro256(seed: 1, stream: 2)
        let eigenvalues = [-3.0, -0.5] + (0..<56).map { _ in rng.nextUnit() * 2 } + [9.0, 25.0]
        let a = Self.matrix(eigenvalues: eigenvalues, seed: 4)
        let start = Lanczos.rademacher(60, &rng)
        let all = Lanczos.run(start: start, iterations: 60) { Self.apply(a, $0) }
        let sorted = eigenvalues.sorted()
        #expect(all.iterations == 60 && zip(all.values, sorted).allSatisfy { abs($0 - $1) < 1e-9 }, "\(all.values)")
        #expect(abs(all.weights.reduce(0, +) - 1) < 1e-12)
        let twenty = Lanczos.run(start: start, iterations: 20, vectors: true) { Self.apply(a, $0) }
        #expect(abs(twenty.values.last! - 25) < 1e-9 && abs(twenty.values[18] - 9) < 1e-6 && abs(twenty.values.first! + 3) < 1e-4,
                "\(twenty.values)")
        // The top Ritz vector is an eigenvector: ‖A·x − λ·x‖ is as small as its residual bound says.
        let x = twenty.vectors.last!, ax = Self.apply(a, x)
        let residual = Lanczos.norm(zip(ax, x).map { $0 - 25 * $1 })
        #expect(residual < 1e-7 && abs(residual - twenty.residuals.last!) < 1e-7, "\(residual) \(twenty.residuals.last!)")
    }

    @Test("Hutchinson's probes of a diagonal matrix are exact; of a dense one their mean is within 3 standard errors of the trace")
    func hutchinson() {
        let diagonal = (0..<50).map { Double($0) - 10 }
        let exact = Lanczos.traceProbes(dimension: 50, probes: 3, seed: 1) { v in zip(v, diagonal).map { $0 * $1 } }
        #expect(exact.allSatisfy { $0 == diagonal.reduce(0, +) })
        var rng = Xoshiro256(seed: 7, stream: 1)
        let eigenvalues = (0..<40).map { _ in rng.nextUnit() * 4 - 1 }
        let a = Self.matrix(eigenvalues: eigenvalues, seed: 5)
        let samples = Lanczos.traceProbes(dimension: 40, probes: 400, seed: 2) { Self.apply(a, $0) }
        let spread = Spread(samples)!, error = spread.std / 20
        #expect(abs(spread.mean - eigenvalues.reduce(0, +)) < 3 * error, "\(spread.mean) ± \(error), trace \(eigenvalues.reduce(0, +))")
    }

    @Test("stochastic Lanczos quadrature: with n iterations its nodes are the eigenvalues; its weights sum to 1 and imply the trace")
    func quadrature() {
        let eigenvalues = (0..<30).map { Double($0 * $0) / 30 }
        let a = Self.matrix(eigenvalues: eigenvalues, seed: 6)
        let density = Lanczos.density(dimension: 30, probes: 50, iterations: 30, seed: 3) { Self.apply(a, $0) }
        #expect(abs(density.nodes.map(\.weight).reduce(0, +) - 1) < 1e-12)
        #expect(density.nodes.allSatisfy { node in eigenvalues.contains { abs($0 - node.value) < 1e-8 } || node.weight < 1e-20 })
        #expect(close(density.trace, eigenvalues.reduce(0, +), relative: 0.05), "\(density.trace) against \(eigenvalues.reduce(0, +))")
        // The smoothed density integrates to 1 over a grid that covers the spectrum.
        let grid = stride(from: -1.0, through: 31.0, by: 0.001).map { $0 }
        #expect(abs(density.values(at: grid).reduce(0, +) * 0.001 - 1) < 1e-3)
    }
}

@Suite("the spectrum of a run's model")
struct RunSpectrumTests {
    @Test("descent hessian's Lanczos on the trainer's H·v finds the dense Hessian's top eigenvalues, λ_min and trace; deflated Hutchinson with 10 iterations is within 3 standard errors")
    func againstDense() throws {
        let c = try RunConfig.load(yaml: """
            name: h
            seed: 2
            data: {source: synthetic, train_samples: 120, test_samples: 20, features: 6, classes: 3}
            model: {hidden: [5]}
            curvature: {subset: 80}
            """, fileName: "h.yaml")
        let trainer = try Trainer.quiet(c, on: SingleProcessCommunicator(), writeOutput: false)
        let n = trainer.model.parameterCount, samples = trainer.curvatureSamples()
        #expect(samples.count == 80 && Set(samples).count == 80)
        var dense = [Double](repeating: 0, count: n * n)
        for j in 0..<n {
            var e = [Double](repeating: 0, count: n)
            e[j] = 1
            let column = try trainer.hessianProduct(0, at: trainer.parameters, e, samples: samples)
            for i in 0..<n { dense[i * n + j] = column[i] }
        }
        for i in 0..<n {
            for j in 0..<i {
                let mean = (dense[i * n + j] + dense[j * n + i]) / 2
                (dense[i * n + j], dense[j * n + i]) = (mean, mean)
            }
        }
        let values = SymmetricEigen.decompose(dense, n: n).values, trace = values.reduce(0, +)
        var o = SpectrumOptions()
        (o.top, o.iterations, o.traceProbes, o.densityProbes, o.densityIterations) = (3, n, 20, 2, 20)
        let full = try trainer.hessianSpectrum(o)
        let expected = Array(values.reversed().prefix(3))
        #expect(zip(full.top, expected).allSatisfy { close($0, $1, relative: 1e-5, floor: 1e-6) }, "\(full.top) against \(expected)")
        #expect(close(full.lambdaMin, values.first!, relative: 1e-4, floor: 1e-5), "\(full.lambdaMin) against \(values.first!)")
        #expect(close(full.trace, trace, relative: 1e-4, floor: 1e-5), "\(full.trace) against \(trace)")
        #expect(full.topVector.count == n && abs(full.topVector.reduce(0) { $0 + Double($1) * Double($1) } - 1) < 1e-5)
        o.iterations = 10
        let short = try trainer.hessianSpectrum(o)
        #expect(short.deflated < n && abs(short.trace - trace) < 3 * short.traceError, "\(short.trace) ± \(short.traceError) against \(trace)")
        #expect(abs(short.top[0] - expected[0]) < 1e-4 * abs(expected[0]))
        // Without probes the top eigenvalues cost their iterations alone, and the same Lanczos run gives the same bits.
        (o.traceProbes, o.densityProbes) = (0, 0)
        let lean = try trainer.hessianSpectrum(o)
        #expect(short.products == 10 + 20 + 2 * 20 && lean.products == 10, "\(short.products), \(lean.products)")
        #expect(lean.top == short.top && lean.trace.isNaN && lean.density.nodes.isEmpty)
    }

    @Test("Adam's preconditioned sharpness is λ_max of P^(−1/2)·H·P^(−1/2) with P = (1 − β1ᵗ)(√v̂ + ε), dense; its threshold (2 + 2β1)/((1 − β1)η)")
    func preconditioned() throws {
        let c = try RunConfig.load(yaml: """
            name: p
            seed: 4
            data: {source: synthetic, train_samples: 96, test_samples: 16, features: 5, classes: 3}
            model: {hidden: [4]}
            optimizer: {name: adam, lr: 0.01, betas: [0.8, 0.99]}
            training: {batch: 32, steps: 6}
            curvature: {subset: 64, iterations: 39}
            """, fileName: "p.yaml")
        let trainer = try Trainer.quiet(c, on: SingleProcessCommunicator(), writeOutput: false)
        #expect(try trainer.preconditioner(0) == nil)  // before the first step v is zero
        try trainer.run()
        let n = trainer.model.parameterCount, samples = trainer.curvatureSamples()
        let state = trainer.optimizer.state(), v = state.buffers["exp_avg_sq"]!
        let c1 = 1 - pow(0.8, 6.0), c2 = 1 - pow(0.99, 6.0)
        let p = v.map { c1 * ((Double($0) / c2).squareRoot() + 1e-8) }
        let (diagonal, threshold) = try #require(try trainer.preconditioner(0))
        #expect(diagonal == p && abs(threshold - 3.6 / (0.2 * 0.01)) < 1e-9)
        var dense = [Double](repeating: 0, count: n * n)
        for j in 0..<n {
            var e = [Double](repeating: 0, count: n)
            e[j] = 1
            let column = try trainer.hessianProduct(0, at: trainer.parameters, e, samples: samples)
            for i in 0..<n { dense[i * n + j] = column[i] / (p[i] * p[j]).squareRoot() }
        }
        for i in 0..<n {
            for j in 0..<i {
                let mean = (dense[i * n + j] + dense[j * n + i]) / 2
                (dense[i * n + j], dense[j * n + i]) = (mean, mean)
            }
        }
        let top = SymmetricEigen.decompose(dense, n: n).values.last!
        let reading = try trainer.measureCurvature(0, step: 6, samples: samples)
        #expect(n == 39 && close(reading.preconditionedSharpness ?? .nan, top, relative: 1e-5), "\(String(describing: reading.preconditionedSharpness)) against \(top)")
        #expect(reading.preconditionedThreshold == threshold && reading.products == 2 * 39)
    }
}
