// Adafactor as torch.optim.Adafactor (torch 2.13; Shazeer & Stern 2018): second moments factored into a row and a
// column average per matrix, a relative step size, and the update clipped by its own root mean square.
import Foundation
import Numerics

/// torch.optim.Adafactor, one tensor at a time.
///
/// Legend: θ a tensor (n elements), g its gradient, t the step (from 1), γ learning rate, λ weight decay, β̂ =
/// t^`beta2_decay`, ε1 ε2 (`eps1`, `eps2`), d (`d`). For a tensor of two or more dimensions, R × C its last two
/// (the ones before count as a batch), r and c the row and column averages of g² (`row_var`, `col_var`); for a
/// vector, v (`variance`).
/// ```
/// ρ = min(γ, 1/√t);  α = max(ε2, ‖θ‖/√n)·ρ;  θ ← θ(1 − γλ)
/// matrix: r ← r + β̂(mean_c g² − r);  c ← c + β̂(mean_r g² − c);  V = r cᵀ / max(mean(r), ε1)
/// vector: v ← v + β̂(g² − v);  V = v
/// u = g / √max(V, ε1²);  θ ← θ − α/max(1, ‖u‖/(√n·d))·u
/// ```
/// The factors live in buffers as long as the parameters, each tensor's at the start of its own elements, so that
/// checkpoints hold whole buffers as for every rule. Without a layout the buffer is one vector.
public final class Adafactor: Optimizer {
    public let name = OptimizerKind.adafactor.rawValue
    public let settings: OptimizerSettings
    public var learningRate: Double
    public private(set) var stepCount = 0

    /// A tensor: its shape and where its elements lie (row-major in the shape).
    struct Unit {
        let shape: [Int]
        let positions: [Int]
    }

    let units: [Unit]
    let buffers: StateBuffers

    public init(_ settings: OptimizerSettings, parameterCount: Int, layout: [TensorShape]) {
        self.settings = settings
        learningRate = settings.learningRate
        var units: [Unit] = [], covered = [Bool](repeating: false, count: parameterCount)
        for t in layout where t.whole && t.range.count > 0 {
            let positions = (0..<t.range.count).map(t.position)
            units.append(Unit(shape: t.shape, positions: positions))
            for i in positions { covered[i] = true }
        }
        let rest = (0..<parameterCount).filter { !covered[$0] }
        if !rest.isEmpty { units.append(Unit(shape: [rest.count], positions: rest)) }
        self.units = units
        buffers = StateBuffers([.rowVar, .colVar, .variance], count: parameterCount)
    }

    public func update(_ parameters: UnsafeMutableBufferPointer<Float>, gradient: UnsafeBufferPointer<Float>) {
        let (p, g, count) = flat(parameters, gradient)
        precondition(count == buffers.count, "adafactor: \(count) parameters for state of \(buffers.count)")
        stepCount += 1
        for u in units { step(u, p, g) }
    }

    private func step(_ u: Unit, _ θ: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>) {
        let h = settings, t = Double(stepCount), n = u.positions.count
        let fresh = Float(pow(t, h.beta2Decay))
        let ρ = min(learningRate, 1 / t.squareRoot())
        let rms = (u.positions.reduce(0.0) { $0 + Double(θ[$1]) * Double(θ[$1]) } / Double(n)).squareRoot()
        let α = max(h.eps2, rms) * ρ
        let shrink = Float(1 - learningRate * h.weightDecay)
        for i in u.positions { θ[i] *= shrink }
        var update = [Float](repeating: 0, count: n)
        let floor = Float(h.eps1 * h.eps1)
        if u.shape.count >= 2 {
            let rows = u.shape[u.shape.count - 2], columns = u.shape[u.shape.count - 1], batches = n / (rows * columns)
            let r = buffers[.rowVar]!, c = buffers[.colVar]!
            for b in 0..<batches {
                let base = b * rows * columns
                func grad(_ i: Int, _ j: Int) -> Float { g[u.positions[base + i * columns + j]] }
                for i in 0..<rows {
                    var sum: Float = 0
                    for j in 0..<columns { sum += grad(i, j) * grad(i, j) }
                    let at = u.positions[b * rows + i]
                    r[at] += fresh * (sum / Float(columns) - r[at])
                }
                for j in 0..<columns {
                    var sum: Float = 0
                    for i in 0..<rows { sum += grad(i, j) * grad(i, j) }
                    let at = u.positions[b * columns + j]
                    c[at] += fresh * (sum / Float(rows) - c[at])
                }
                var mean: Float = 0
                for i in 0..<rows { mean += r[u.positions[b * rows + i]] }
                let scale = max(mean / Float(rows), Float(h.eps1))
                for i in 0..<rows {
                    for j in 0..<columns {
                        let v = r[u.positions[b * rows + i]] * c[u.positions[b * columns + j]] / scale
                        update[base + i * columns + j] = grad(i, j) / max(v, floor).squareRoot()
                    }
                }
            }
        } else {
            let v = buffers[.variance]!
            for (k, i) in u.positions.enumerated() {
                v[i] += fresh * (g[i] * g[i] - v[i])
                update[k] = g[i] / max(v[i], floor).squareRoot()
            }
        }
        let norm = update.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        let step = Float(α / max(1, norm / (Double(n).squareRoot() * h.d)))
        for (k, i) in u.positions.enumerated() { θ[i] -= step * update[k] }
    }

    public func state() -> OptimizerState { OptimizerState(name: name, step: stepCount, buffers: buffers.export()) }

    public func restore(_ saved: OptimizerState) throws {
        try checkName(saved, name)
        try buffers.load(saved.buffers, optimizer: name)
        stepCount = saved.step
    }
}
