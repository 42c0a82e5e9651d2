// The Newton family against Double references on quadratics with known eigenvectors: Newton's one step to the
// stationary point, saddle-free Newton's −Q·|Λ|⁻¹·Qᵀ·g, Newton-CG's solve and its Levenberg–Marquardt damping;
// and the lab's presets doing what their comments say.
import Config
import DescentTestSupport
import Experiments
import Foundation
import Models
import Numerics
import Optimizers
import Testing

@Suite("Newton, saddle-free Newton, Newton-CG")
struct NewtonTests {
    /// A = Q·diag(λ)·Qᵀ with Q a rotation by Householder reflections of the seed.
    static func quadratic(_ eigenvalues: [Double], seed: UInt64) -> (a: [Double], q: [[Double]]) {
        let n = eigenvalues.count
        var rng = Xoshiro256(seed: seed, stream: 5)
        let u = (0..<n).map { _ in rng.nextUnit() - 0.5 }, norm = u.reduce(0) { $0 + $1 * $1 }
        // Q = I − 2uuᵀ/|u|²: its columns are the eigenvectors.
        let q = (0..<n).map { k in (0..<n).map { i in (i == k ? 1 : 0) - 2 * u[i] * u[k] / norm } }
        var a = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n { for k in 0..<n { a[i * n + j] += q[k][i] * eigenvalues[k] * q[k][j] } } }
        return (a, q)
    }

    static func apply(_ a: [Double], _ v: [Double]) -> [Double] {
        let n = v.count
        return (0..<n).map { i in (0..<n).reduce(0) { $0 + a[i * n + $1] * v[$1] } }
    }

    /// One step of `settings` on f(θ) = ½θᵀAθ − bᵀθ from θ; returns θ after it and the optimizer.
    static func step(_ settings: OptimizerSettings, _ a: [Double], _ b: [Double], from start: [Float],
                     lossOffset: Double = 0) throws -> ([Float], Newton) {
        let newton = try #require(settings.makeOptimizer(parameterCount: start.count) as? Newton)
        func f(_ θ: [Double]) -> Double { 0.5 * zip(θ, apply(a, θ)).reduce(0) { $0 + $1.0 * $1.1 } - zip(b, θ).reduce(0) { $0 + $1.0 * $1.1 } }
        let t = start.map(Double.init)
        let g = zip(apply(a, t), b).map { Float($0 - $1) }
        var θ = start
        try θ.withUnsafeMutableBufferPointer { p in
            try newton.step(p, loss: f(t), gradient: g, product: { apply(a, $0) },
                            evaluate: { q in f(q.map(Double.init)) + lossOffset })
        }
        return (θ, newton)
    }

    @Test("Newton lands on the stationary point A⁻¹b in one step: the minimum of a convex quadratic, the saddle of an indefinite one")
    func newtonStep() throws {
        for eigenvalues in [[0.5, 2, 7, 30], [3, -1, 0.7, -4]] {
            let (a, q) = Self.quadratic(eigenvalues, seed: 3)
            let b = [1.0, -2, 0.5, 3]
            // A⁻¹b = Σ q_k (q_kᵀ b) / λ_k, from the known eigenpairs.
            var target = [Double](repeating: 0, count: 4)
            for k in 0..<4 {
                let c = zip(q[k], b).reduce(0) { $0 + $1.0 * $1.1 } / eigenvalues[k]
                for i in 0..<4 { target[i] += c * q[k][i] }
            }
            let (θ, newton) = try Self.step(OptimizerSettings(.newton), a, b, from: [0.3, -0.4, 1, 2])
            #expect(zip(θ, target).allSatisfy { abs(Double($0) - $1) < 1e-5 * max(1, abs($1)) }, "\(θ) against \(target)")
            #expect(newton.products == 4 && newton.evaluations == 0)
        }
    }

    @Test("saddle-free Newton steps by −η·(|A| + λI)⁻¹·g: away from the saddle along negative curvature")
    func saddleFree() throws {
        let eigenvalues = [3.0, -1, 0.7, -4]
        let (a, q) = Self.quadratic(eigenvalues, seed: 8)
        let b = [0.0, 0, 0, 0], start: [Float] = [0.3, -0.4, 1, 2]
        var s = OptimizerSettings(.saddleFreeNewton)
        (s.learningRate, s.damping) = (0.5, 0.2)
        let (θ, _) = try Self.step(s, a, b, from: start)
        let g = Self.apply(a, start.map(Double.init))
        var expected = start.map(Double.init)
        for k in 0..<4 {
            let c = zip(q[k], g).reduce(0) { $0 + $1.0 * $1.1 } / (abs(eigenvalues[k]) + 0.2)
            for i in 0..<4 { expected[i] -= 0.5 * c * q[k][i] }
        }
        #expect(zip(θ, expected).allSatisfy { abs(Double($0) - $1) < 1e-5 }, "\(θ) against \(expected)")
        // f = ½θᵀAθ fell: the step went down the negative curvature instead of up to the saddle.
        let f = { (x: [Double]) in 0.5 * zip(x, Self.apply(a, x)).reduce(0) { $0 + $1.0 * $1.1 } }
        #expect(f(θ.map(Double.init)) < f(start.map(Double.init)))
    }

    @Test("Newton-CG solves (A + λI)p = −g on a convex quadratic; an exact model shrinks λ by 2/3, a loss that rose grows it by 3/2 and rejects the step")
    func newtonCG() throws {
        let (a, _) = Self.quadratic([0.5, 2, 7, 30], seed: 4)
        let b = [1.0, -2, 0.5, 3], start: [Float] = [0.3, -0.4, 1, 2]
        var s = OptimizerSettings(.newtonCG)
        (s.damping, s.cgIterations, s.cgTolerance) = (0.5, 4, 1e-10)
        let (θ, newton) = try Self.step(s, a, b, from: start)
        // The reference: (A + 0.5 I)⁻¹ by its eigenvalues λ_k + 0.5 (the same Q).
        let (_, q) = Self.quadratic([0.5, 2, 7, 30], seed: 4)
        let g = zip(Self.apply(a, start.map(Double.init)), b).map { $0 - $1 }
        var expected = start.map(Double.init)
        for (k, λ) in [0.5, 2, 7, 30].enumerated() {
            let c = zip(q[k], g).reduce(0) { $0 + $1.0 * $1.1 } / (λ + 0.5)
            for i in 0..<4 { expected[i] -= c * q[k][i] }
        }
        #expect(zip(θ, expected).allSatisfy { abs(Double($0) - $1) < 1e-5 }, "\(θ) against \(expected)")
        // The quadratic model of the damped step predicts less than the loss fell: ρ > 1 > 3/4.
        #expect(newton.damping == 0.5 * 2 / 3 && newton.products <= 4 && newton.evaluations == 1 && newton.rejected == 0)
        let (same, rejecting) = try Self.step(s, a, b, from: start, lossOffset: 100)
        #expect(same == start && rejecting.damping == 0.5 * 1.5 && rejecting.rejected == 1)
    }

    @Test("Newton-CG's damping survives a state round trip; a state without it is refused")
    func state() throws {
        let (a, _) = Self.quadratic([0.5, 2, 7, 30], seed: 4)
        let (_, newton) = try Self.step(OptimizerSettings(.newtonCG), a, [1, 0, 0, 0], from: [1, 1, 1, 1])
        let other = try #require(OptimizerSettings(.newtonCG).makeOptimizer(parameterCount: 4) as? Newton)
        try other.restore(newton.state())
        #expect(other.damping == newton.damping && other.stepCount == 1 && other.state() == newton.state())
        var broken = newton.state()
        broken.scalars["damping"] = -1
        #expect(throws: OptimizerStateError.self) { try other.restore(broken) }
    }

    @Test("the lab's Newton presets: Newton ends on the saddle of x² − y² and of the double well; saddle-free Newton and GD leave; Newton solves the bowl in one step")
    func presets() throws {
        func ends(_ preset: String) throws -> [String: Trajectory] {
            let config = try PathConfig.load(yaml: String(contentsOf: packageRoot.appendingPathComponent("configs/path-\(preset).yaml"), encoding: .utf8),
                                             fileName: preset)
            return Dictionary(uniqueKeysWithValues: try PathLab.run(config).map { ($0.label, $0) })
        }
        let saddle = try ends("newton-saddle")
        #expect(saddle["newton"]!.points[1].x == 0 && saddle["newton"]!.last.y == 0)
        #expect(abs(saddle["saddle-free-newton"]!.last.y) > 10 && abs(saddle["sgd"]!.last.y) > 1)
        let well = try ends("newton-double-well")
        #expect(abs(well["newton"]!.last.x - 0.0754) < 1e-3 && well["newton"]!.last.y == 0)
        #expect(abs(well["saddle-free-newton"]!.last.x - 0.9601) < 1e-3 && abs(well["sgd"]!.last.x - 0.9601) < 1e-3)
        let bowl = try ends("newton-bowl")
        #expect(bowl["newton lr 1"]!.points[1].f == 0 && bowl["sgd"]!.last.f > 1e-6)
    }
}
