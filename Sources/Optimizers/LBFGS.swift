// L-BFGS as torch.optim.LBFGS (torch 2.13; Nocedal 1980, Liu & Nocedal 1989; torch's port of minFunc): a step
// re-evaluates the loss and gradient as often as its iterations and line search ask, through a closure.
import Numerics

/// torch.optim.LBFGS: up to `max_iter` quasi-Newton iterations per step, with the two-loop recursion over the last
/// `history_size` pairs (s, y), and either a fixed step (`lr`, the first iteration of a run scaled by
/// min(1, 1/‖g‖₁)) or torch's strong-Wolfe line search (cubic interpolation, c1 = 1e-4, c2 = 0.9, at most
/// `max_eval` evaluations in a step).
///
/// Vectors are Float as torch's float32 tensors; the scalars (dot products, step sizes, losses) are Double, and
/// the dot products add in one fixed order (`Kernels.dot`), so every rank holding the same vectors takes the same
/// decisions and the bits depend on neither the rank count nor the CPU.
///
/// State, by torch's names: `d` (the last direction), `t` (its step), `old_dirs` and `old_stps` (the pairs y and s),
/// `ro` (1/yᵀs), `H_diag`, `prev_flat_grad`, `prev_loss`, `n_iter` and `func_evals`.
public final class LBFGS: Optimizer {
    public let name = OptimizerKind.lbfgs.rawValue
    public let settings: OptimizerSettings
    public var learningRate: Double
    public private(set) var stepCount = 0
    let count: Int

    /// A loss and gradient at a point: a function evaluation (one data-parallel pass in training).
    public typealias Evaluation = (loss: Double, gradient: [Float])
    public typealias Evaluate = (_ point: UnsafeBufferPointer<Float>) throws -> Evaluation

    // torch's state
    private(set) var funcEvals = 0
    private(set) var iterations = 0
    private var d: [Float] = []
    private var t = 0.0
    private var oldDirs: [[Float]] = []
    private var oldStps: [[Float]] = []
    private var ro: [Double] = []
    private var hDiag = 1.0
    private var prevFlatGrad: [Float] = []
    private var prevLoss = 0.0

    public init(_ settings: OptimizerSettings, parameterCount: Int) {
        self.settings = settings
        learningRate = settings.learningRate
        count = parameterCount
    }

    /// The evaluations a step may make: `max_eval`, or torch's default max_iter × 5 / 4 when it is 0.
    public var maxEval: Int {
        settings.maxEval > 0 ? Int(settings.maxEval) : Int(settings.maxIter) * 5 / 4
    }

    /// Function evaluations since the start of the run (torch's `func_evals`).
    public var evaluations: Int { funcEvals }

    /// One step with a single gradient and no loss: the step torch takes with `max_iter: 1` and no line search,
    /// whatever the settings say (a caller that cannot evaluate again). Callers that can, call `step(_:evaluate:)`.
    public func update(_ parameters: UnsafeMutableBufferPointer<Float>, gradient: UnsafeBufferPointer<Float>) {
        let g = Array(gradient)
        var given = false
        _ = step(parameters, maxIter: 1, lineSearch: false) { _ in
            precondition(!given, "a single-gradient L-BFGS step evaluates once")
            given = true
            return (.nan, g)
        }
    }

    /// torch's `step(closure)`: evaluates at `parameters`, then iterates; returns the loss at the starting point.
    @discardableResult
    public func step(_ parameters: UnsafeMutableBufferPointer<Float>, evaluate: Evaluate) rethrows -> Double {
        try step(parameters, maxIter: Int(settings.maxIter), lineSearch: settings.lineSearchFn == LBFGS.strongWolfe, evaluate: evaluate)
    }

    /// torch's name of the line search.
    public static let strongWolfe = "strong_wolfe"

    private func step(_ x: UnsafeMutableBufferPointer<Float>, maxIter: Int, lineSearch: Bool, evaluate: Evaluate) rethrows -> Double {
        precondition(x.count == count, "lbfgs: \(x.count) parameters for state of \(count)")
        let tolGrad = settings.toleranceGrad, tolChange = settings.toleranceChange
        let history = Int(settings.historySize), lr = learningRate
        stepCount += 1
        let first = try evaluate(UnsafeBufferPointer(x))
        var (loss, g) = first
        var currentEvals = 1
        funcEvals += 1
        var optimal = Kernels.maxAbs(g) <= tolGrad
        if optimal { return first.loss }
        var n = 0
        while n < maxIter {
            n += 1
            iterations += 1
            if iterations == 1 {
                d = g.map { -$0 }
                (oldDirs, oldStps, ro, hDiag) = ([], [], [], 1)
            } else {
                let y = zip(g, prevFlatGrad).map { $0 - $1 }
                let tf = Float(t)
                let s = d.map { $0 * tf }
                let ys = Kernels.dot(y, s)
                if ys > 1e-10 {
                    if oldDirs.count == history {
                        oldDirs.removeFirst()
                        oldStps.removeFirst()
                        ro.removeFirst()
                    }
                    oldDirs.append(y)
                    oldStps.append(s)
                    ro.append(1 / ys)
                    hDiag = ys / Kernels.dot(y, y)
                }
                // The two-loop recursion: d = −H g.
                var q = g.map { -$0 }
                var al = [Double](repeating: 0, count: oldDirs.count)
                for i in oldDirs.indices.reversed() {
                    al[i] = Kernels.dot(oldStps[i], q) * ro[i]
                    Kernels.addScaled(oldDirs[i], Float(-al[i]), to: &q)
                }
                let h = Float(hDiag)
                d = q.map { $0 * h }
                for i in oldDirs.indices {
                    let be = Kernels.dot(oldDirs[i], d) * ro[i]
                    Kernels.addScaled(oldStps[i], Float(al[i] - be), to: &d)
                }
            }
            prevFlatGrad = g
            prevLoss = loss
            t = iterations == 1 ? min(1, 1 / Kernels.sumAbs(g)) * lr : lr
            let gtd = Kernels.dot(g, d)
            if gtd > -tolChange { break }
            var evals = 0
            if lineSearch {
                let found = try strongWolfe(x, t, d, loss, g, gtd, maxLineSearch: maxEval - currentEvals, evaluate)
                (loss, g, t, evals) = (found.loss, found.gradient, found.t, found.evaluations)
                Self.move(x, t, d)
                optimal = Kernels.maxAbs(g) <= tolGrad
            } else {
                Self.move(x, t, d)
                if n != maxIter {
                    (loss, g) = try evaluate(UnsafeBufferPointer(x))
                    optimal = Kernels.maxAbs(g) <= tolGrad
                    evals = 1
                }
            }
            currentEvals += evals
            funcEvals += evals
            if n == maxIter || currentEvals >= maxEval || optimal { break }
            if Kernels.maxAbs(d) * abs(Double(Float(t))) <= tolChange { break }  // torch: d.mul(t).abs().max()
            if abs(loss - prevLoss) < tolChange { break }
        }
        return first.loss
    }

    /// x ← x + t·d (torch's `_add_grad`).
    private static func move(_ x: UnsafeMutableBufferPointer<Float>, _ t: Double, _ d: [Float]) {
        let tf = Float(t)
        for i in x.indices { x[i] += tf * d[i] }
    }

    /// The loss and gradient at x + t·d, x unchanged (torch's `_directional_evaluate`).
    private func evaluate(at x: UnsafeBufferPointer<Float>, _ t: Double, _ d: [Float], _ evaluate: Evaluate) rethrows -> Evaluation {
        let tf = Float(t)
        let trial = (0..<x.count).map { x[$0] + tf * d[$0] }
        return try trial.withUnsafeBufferPointer { try evaluate($0) }
    }

    /// torch's `_strong_wolfe`: a step t along d satisfying the strong Wolfe conditions (or the best found within
    /// `maxLineSearch` evaluations), with the loss and gradient there.
    private func strongWolfe(_ xm: UnsafeMutableBufferPointer<Float>, _ t0: Double, _ d: [Float], _ f: Double, _ g: [Float],
                             _ gtd: Double, maxLineSearch: Int, _ evaluate: Evaluate)
        rethrows -> (loss: Double, gradient: [Float], t: Double, evaluations: Int) {
        let (c1, c2, tolChange) = (1e-4, 0.9, settings.toleranceChange)
        let x = UnsafeBufferPointer(xm)
        var t = t0
        let dNorm = Kernels.maxAbs(d)
        var (fNew, gNew) = try self.evaluate(at: x, t, d, evaluate)
        var evals = 1
        var gtdNew = Kernels.dot(gNew, d)
        var (tPrev, fPrev, gPrev, gtdPrev) = (0.0, f, g, gtd)
        var done = false
        var iteration = 0
        // The bracket: two points (or one, when done) with their losses, gradients and slopes.
        var bracket: [Double] = [], bracketF: [Double] = [], bracketG: [[Float]] = [], bracketGtd: [Double] = []
        while iteration < maxLineSearch {
            if fNew > f + c1 * t * gtd || (iteration > 1 && fNew >= fPrev) {
                (bracket, bracketF, bracketG, bracketGtd) = ([tPrev, t], [fPrev, fNew], [gPrev, gNew], [gtdPrev, gtdNew])
                break
            }
            if abs(gtdNew) <= -c2 * gtd {
                (bracket, bracketF, bracketG) = ([t], [fNew], [gNew])
                done = true
                break
            }
            if gtdNew >= 0 {
                (bracket, bracketF, bracketG, bracketGtd) = ([tPrev, t], [fPrev, fNew], [gPrev, gNew], [gtdPrev, gtdNew])
                break
            }
            let minStep = t + 0.01 * (t - tPrev), maxStep = t * 10
            let previous = t
            t = Self.cubicInterpolate(tPrev, fPrev, gtdPrev, t, fNew, gtdNew, bounds: (minStep, maxStep))
            (tPrev, fPrev, gPrev, gtdPrev) = (previous, fNew, gNew, gtdNew)
            (fNew, gNew) = try self.evaluate(at: x, t, d, evaluate)
            evals += 1
            gtdNew = Kernels.dot(gNew, d)
            iteration += 1
        }
        if iteration >= maxLineSearch {
            (bracket, bracketF, bracketG) = ([0, t], [f, fNew], [g, gNew])
            // torch keeps the slopes of the last bracket it made (none when it made none: then the zoom below
            // does not run, as maxLineSearch evaluations are spent).
            if bracketGtd.count != 2 { bracketGtd = [gtd, gtdNew] }
        }
        // Zoom: shrink the bracket until a point meets the conditions or it is too small to matter.
        var insufficientProgress = false
        var (low, high) = bracketF[0] <= bracketF[bracketF.count - 1] ? (0, 1) : (1, 0)
        while !done && iteration < maxLineSearch {
            if abs(bracket[1] - bracket[0]) * dNorm < tolChange { break }
            t = Self.cubicInterpolate(bracket[0], bracketF[0], bracketGtd[0], bracket[1], bracketF[1], bracketGtd[1])
            let hi = max(bracket[0], bracket[1]), lo = min(bracket[0], bracket[1])
            let eps = 0.1 * (hi - lo)
            if min(hi - t, t - lo) < eps {
                if insufficientProgress || t >= hi || t <= lo {
                    t = abs(t - hi) < abs(t - lo) ? hi - eps : lo + eps
                    insufficientProgress = false
                } else {
                    insufficientProgress = true
                }
            } else {
                insufficientProgress = false
            }
            (fNew, gNew) = try self.evaluate(at: x, t, d, evaluate)
            evals += 1
            gtdNew = Kernels.dot(gNew, d)
            iteration += 1
            if fNew > f + c1 * t * gtd || fNew >= bracketF[low] {
                (bracket[high], bracketF[high], bracketG[high], bracketGtd[high]) = (t, fNew, gNew, gtdNew)
                (low, high) = bracketF[0] <= bracketF[1] ? (0, 1) : (1, 0)
            } else {
                if abs(gtdNew) <= -c2 * gtd {
                    done = true
                } else if gtdNew * (bracket[high] - bracket[low]) >= 0 {
                    (bracket[high], bracketF[high], bracketG[high], bracketGtd[high]) =
                        (bracket[low], bracketF[low], bracketG[low], bracketGtd[low])
                }
                (bracket[low], bracketF[low], bracketG[low], bracketGtd[low]) = (t, fNew, gNew, gtdNew)
            }
        }
        return (bracketF[low], bracketG[low], bracket[low], evals)
    }

    /// torch's `_cubic_interpolate`: the minimiser of the cubic through (x1, f1, g1) and (x2, f2, g2), clamped to
    /// `bounds` (the interval between the points by default); their midpoint when the cubic has none.
    static func cubicInterpolate(_ x1: Double, _ f1: Double, _ g1: Double, _ x2: Double, _ f2: Double, _ g2: Double,
                                 bounds: (Double, Double)? = nil) -> Double {
        let (lo, hi) = bounds ?? (x1 <= x2 ? (x1, x2) : (x2, x1))
        let d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
        let d2Square = d1 * d1 - g1 * g2
        guard d2Square >= 0 else { return (lo + hi) / 2 }
        let d2 = d2Square.squareRoot()
        let minPos = x1 <= x2 ? x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
                              : x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(minPos, lo), hi)
    }

    // MARK: state

    public func state() -> OptimizerState {
        var buffers: [String: [Float]] = [:]
        var scalars: [String: Double] = ["func_evals": Double(funcEvals), "n_iter": Double(iterations)]
        if iterations > 0 {
            buffers["d"] = d
            buffers["prev_flat_grad"] = prevFlatGrad
            for (i, (y, s)) in zip(oldDirs, oldStps).enumerated() {
                buffers["old_dirs/\(i)"] = y
                buffers["old_stps/\(i)"] = s
                scalars["ro/\(i)"] = ro[i]
            }
            scalars["t"] = t
            scalars["H_diag"] = hDiag
            scalars["prev_loss"] = prevLoss
        }
        return OptimizerState(name: name, step: stepCount, buffers: buffers, scalars: scalars)
    }

    public func restore(_ saved: OptimizerState) throws {
        try checkName(saved, name)
        func fail(_ detail: String) -> OptimizerStateError { OptimizerStateError(detail: "'lbfgs' \(detail)") }
        func whole(_ x: Double?) -> Int? { x.flatMap { $0 >= 0 && $0 == $0.rounded() && $0 < 1e15 ? Int($0) : nil } }
        guard let evals = whole(saved.scalars["func_evals"]), let iterations = whole(saved.scalars["n_iter"]) else {
            throw fail("state needs the whole numbers 'func_evals' and 'n_iter'")
        }
        let pairs = saved.buffers.keys.filter { $0.hasPrefix("old_dirs/") }.count
        var expected = Set<String>()
        if iterations > 0 {
            expected = ["d", "prev_flat_grad"]
            for i in 0..<pairs { expected.formUnion(["old_dirs/\(i)", "old_stps/\(i)"]) }
        }
        guard Set(saved.buffers.keys) == expected, pairs <= Int(settings.historySize) else {
            throw fail("keeps buffers [\(expected.sorted().joined(separator: ", "))] (at most \(Int(settings.historySize)) pairs), "
                       + "found [\(saved.buffers.keys.sorted().joined(separator: ", "))]")
        }
        for (key, values) in saved.buffers where values.count != count {
            throw fail("buffer '\(key)' must hold \(count) values, found \(values.count)")
        }
        var ro: [Double] = []
        for i in 0..<pairs {
            guard let r = saved.scalars["ro/\(i)"], r.isFinite else { throw fail("state needs the scalar 'ro/\(i)'") }
            ro.append(r)
        }
        if iterations > 0 {
            for key in ["t", "H_diag", "prev_loss"] where saved.scalars[key] == nil {
                throw fail("state needs the scalar '\(key)'")
            }
            d = saved.buffers["d"]!
            prevFlatGrad = saved.buffers["prev_flat_grad"]!
            oldDirs = (0..<pairs).map { saved.buffers["old_dirs/\($0)"]! }
            oldStps = (0..<pairs).map { saved.buffers["old_stps/\($0)"]! }
            (t, hDiag, prevLoss) = (saved.scalars["t"]!, saved.scalars["H_diag"]!, saved.scalars["prev_loss"]!)
        } else {
            (d, prevFlatGrad, oldDirs, oldStps, t, hDiag, prevLoss) = ([], [], [], [], 0, 1, 0)
        }
        self.ro = ro
        (funcEvals, self.iterations, stepCount) = (evals, iterations, saved.step)
    }
}
