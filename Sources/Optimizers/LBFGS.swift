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
    private var funcEvals = 0
    /// Quasi-Newton iterations since the start of the run (torch's `n_iter`).
    public private(set) var iterations = 0
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
        let tolGrad = Float(settings.toleranceGrad), tolChange = settings.toleranceChange
        let history = Int(settings.historySize)
        stepCount += 1
        let first = try evaluate(UnsafeBufferPointer(x))
        var (loss, g) = first
        var currentEvals = 1
        funcEvals += 1
        var optimal = Float(Kernels.maxAbs(g)) <= tolGrad
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
                let ys = Float(Kernels.dot(y, s))
                if ys > Float(1e-10) {
                    if oldDirs.count == history {
                        oldDirs.removeFirst()
                        oldStps.removeFirst()
                        ro.removeFirst()
                    }
                    oldDirs.append(y)
                    oldStps.append(s)
                    ro.append(Double(1 / ys))
                    hDiag = Double(ys / Float(Kernels.dot(y, y)))
                }
                // The two-loop recursion: d = −H g (its scalars float32, as torch's 0-dim tensors).
                var q = g.map { -$0 }
                var al = [Float](repeating: 0, count: oldDirs.count)
                for i in oldDirs.indices.reversed() {
                    al[i] = Float(Kernels.dot(oldStps[i], q)) * Float(ro[i])
                    Kernels.addScaled(oldDirs[i], -al[i], to: &q)
                }
                let h = Float(hDiag)
                d = q.map { $0 * h }
                for i in oldDirs.indices {
                    let be = Float(Kernels.dot(oldDirs[i], d)) * Float(ro[i])
                    Kernels.addScaled(oldStps[i], al[i] - be, to: &d)
                }
            }
            prevFlatGrad = g
            prevLoss = loss
            // torch: min(1., 1. / |g|₁) · lr, a float32 tensor when 1/|g|₁ < 1; later iterations the rate itself.
            var step = Scalar(learningRate)
            if iterations == 1 {
                let inverse = Scalar(1) / Scalar(tensor: Kernels.sumAbs(g))
                step = (inverse < Scalar(1) ? inverse : Scalar(1)) * Scalar(learningRate)
            }
            let gtd = Scalar(tensor: Kernels.dot(g, d))
            if gtd > Scalar(-tolChange) { break }
            var evals = 0
            if lineSearch {
                let found = try strongWolfe(x, step, d, loss, g, gtd, maxLineSearch: maxEval - currentEvals, evaluate)
                (loss, g, step, evals) = (found.loss, found.gradient, found.t, found.evaluations)
                Self.move(x, step.value, d)
                optimal = Float(Kernels.maxAbs(g)) <= tolGrad
            } else {
                Self.move(x, step.value, d)
                if n != maxIter {
                    (loss, g) = try evaluate(UnsafeBufferPointer(x))
                    optimal = Float(Kernels.maxAbs(g)) <= tolGrad
                    evals = 1
                }
            }
            t = step.value
            currentEvals += evals
            funcEvals += evals
            if n == maxIter || currentEvals >= maxEval || optimal { break }
            if Float(Kernels.maxAbs(d)) * Float(t) <= Float(tolChange) { break }  // torch: d.mul(t).abs().max()
            if abs(loss - prevLoss) < tolChange { break }
        }
        return first.loss
    }

    /// A scalar as torch's LBFGS holds it: a Python float (Double), or a float32 0-dim tensor (a dot product, a norm,
    /// and whatever arithmetic touches one), whose operations round both operands and the result to Float. The
    /// line search's decisions depend on which: `f + c1·t·gtd` is float32 in torch, so a loss that changes below
    /// float32's resolution counts as no increase there.
    struct Scalar: Comparable {
        var value: Double
        var tensor = false
        init(_ value: Double) { self.value = value }
        init(tensor value: Double) { (self.value, tensor) = (Double(Float(value)), true) }

        private static func combine(_ a: Scalar, _ b: Scalar, _ op: (Double, Double) -> Double, _ op32: (Float, Float) -> Float) -> Scalar {
            a.tensor || b.tensor ? Scalar(tensor: Double(op32(Float(a.value), Float(b.value)))) : Scalar(op(a.value, b.value))
        }
        static func + (a: Scalar, b: Scalar) -> Scalar { combine(a, b, +, +) }
        static func - (a: Scalar, b: Scalar) -> Scalar { combine(a, b, -, -) }
        static func * (a: Scalar, b: Scalar) -> Scalar { combine(a, b, *, *) }
        static func / (a: Scalar, b: Scalar) -> Scalar { combine(a, b, /, /) }
        static prefix func - (a: Scalar) -> Scalar { var r = a; r.value = -a.value; return r }
        static func < (a: Scalar, b: Scalar) -> Bool { a.tensor || b.tensor ? Float(a.value) < Float(b.value) : a.value < b.value }
        static func == (a: Scalar, b: Scalar) -> Bool { a.tensor || b.tensor ? Float(a.value) == Float(b.value) : a.value == b.value }
        var magnitude: Scalar { var r = self; r.value = abs(value); return r }
        /// Python's min and max: the first argument unless the second is strictly beyond it.
        static func pythonMin(_ a: Scalar, _ b: Scalar) -> Scalar { b < a ? b : a }
        static func pythonMax(_ a: Scalar, _ b: Scalar) -> Scalar { b > a ? b : a }
    }

    /// x ← x + t·d (torch's `_add_grad`).
    private static func move(_ x: UnsafeMutableBufferPointer<Float>, _ t: Double, _ d: [Float]) {
        let tf = Float(t)
        for i in x.indices { x[i] += tf * d[i] }
    }

    /// The loss and gradient at x + t·d, x unchanged (torch's `_directional_evaluate`).
    private func evaluate(at x: UnsafeBufferPointer<Float>, _ t: Scalar, _ d: [Float], _ evaluate: Evaluate) rethrows -> Evaluation {
        let tf = Float(t.value)
        let trial = (0..<x.count).map { x[$0] + tf * d[$0] }
        return try trial.withUnsafeBufferPointer { try evaluate($0) }
    }

    /// torch's `_strong_wolfe`: a step t along d satisfying the strong Wolfe conditions (or the best found within
    /// `maxLineSearch` evaluations), with the loss and gradient there. Losses are Python floats, slopes float32.
    private func strongWolfe(_ xm: UnsafeMutableBufferPointer<Float>, _ t0: Scalar, _ d: [Float], _ f0: Double, _ g: [Float],
                             _ gtd: Scalar, maxLineSearch: Int, _ evaluate: Evaluate)
        rethrows -> (loss: Double, gradient: [Float], t: Scalar, evaluations: Int) {
        let (c1, c2, tolChange) = (Scalar(1e-4), Scalar(0.9), Scalar(settings.toleranceChange))
        let x = UnsafeBufferPointer(xm)
        let f = Scalar(f0)
        var t = t0
        let dNorm = Scalar(tensor: Kernels.maxAbs(d))
        var (fNewValue, gNew) = try self.evaluate(at: x, t, d, evaluate)
        var fNew = Scalar(fNewValue)
        var evals = 1
        var gtdNew = Scalar(tensor: Kernels.dot(gNew, d))
        var (tPrev, fPrev, gPrev, gtdPrev) = (Scalar(0), f, g, gtd)
        var done = false
        var iteration = 0
        // The bracket: two points (or one, when done) with their losses, gradients and slopes.
        var bracket: [Scalar] = [], bracketF: [Scalar] = [], bracketG: [[Float]] = [], bracketGtd: [Scalar] = []
        while iteration < maxLineSearch {
            if fNew > f + c1 * t * gtd || (iteration > 1 && fNew >= fPrev) {
                (bracket, bracketF, bracketG, bracketGtd) = ([tPrev, t], [fPrev, fNew], [gPrev, gNew], [gtdPrev, gtdNew])
                break
            }
            if gtdNew.magnitude <= -c2 * gtd {
                (bracket, bracketF, bracketG) = ([t], [fNew], [gNew])
                done = true
                break
            }
            if gtdNew >= Scalar(0) {
                (bracket, bracketF, bracketG, bracketGtd) = ([tPrev, t], [fPrev, fNew], [gPrev, gNew], [gtdPrev, gtdNew])
                break
            }
            let minStep = t + Scalar(0.01) * (t - tPrev), maxStep = t * Scalar(10)
            let previous = t
            t = Self.cubicInterpolate(tPrev, fPrev, gtdPrev, t, fNew, gtdNew, bounds: (minStep, maxStep))
            (tPrev, fPrev, gPrev, gtdPrev) = (previous, fNew, gNew, gtdNew)
            (fNewValue, gNew) = try self.evaluate(at: x, t, d, evaluate)
            fNew = Scalar(fNewValue)
            evals += 1
            gtdNew = Scalar(tensor: Kernels.dot(gNew, d))
            iteration += 1
        }
        if iteration >= maxLineSearch {
            (bracket, bracketF, bracketG) = ([Scalar(0), t], [f, fNew], [g, gNew])
            // torch keeps the slopes of the last bracket it made; with none made the zoom below does not run.
            if bracketGtd.count != 2 { bracketGtd = [gtd, gtdNew] }
        }
        // Zoom: shrink the bracket until a point meets the conditions or it is too small to matter.
        var insufficientProgress = false
        var (low, high) = bracketF[0] <= bracketF[bracketF.count - 1] ? (0, 1) : (1, 0)
        while !done && iteration < maxLineSearch {
            if (bracket[1] - bracket[0]).magnitude * dNorm < tolChange { break }
            t = Self.cubicInterpolate(bracket[0], bracketF[0], bracketGtd[0], bracket[1], bracketF[1], bracketGtd[1])
            let hi = Scalar.pythonMax(bracket[0], bracket[1]), lo = Scalar.pythonMin(bracket[0], bracket[1])
            let eps = Scalar(0.1) * (hi - lo)
            if Scalar.pythonMin(hi - t, t - lo) < eps {
                if insufficientProgress || t >= hi || t <= lo {
                    t = (t - hi).magnitude < (t - lo).magnitude ? hi - eps : lo + eps
                    insufficientProgress = false
                } else {
                    insufficientProgress = true
                }
            } else {
                insufficientProgress = false
            }
            (fNewValue, gNew) = try self.evaluate(at: x, t, d, evaluate)
            fNew = Scalar(fNewValue)
            evals += 1
            gtdNew = Scalar(tensor: Kernels.dot(gNew, d))
            iteration += 1
            if fNew > f + c1 * t * gtd || fNew >= bracketF[low] {
                (bracket[high], bracketF[high], bracketG[high], bracketGtd[high]) = (t, fNew, gNew, gtdNew)
                (low, high) = bracketF[0] <= bracketF[1] ? (0, 1) : (1, 0)
            } else {
                if gtdNew.magnitude <= -c2 * gtd {
                    done = true
                } else if gtdNew * (bracket[high] - bracket[low]) >= Scalar(0) {
                    (bracket[high], bracketF[high], bracketG[high], bracketGtd[high]) =
                        (bracket[low], bracketF[low], bracketG[low], bracketGtd[low])
                }
                (bracket[low], bracketF[low], bracketG[low], bracketGtd[low]) = (t, fNew, gNew, gtdNew)
            }
        }
        return (bracketF[low].value, bracketG[low], bracket[low], evals)
    }

    /// torch's `_cubic_interpolate`: the minimiser of the cubic through (x1, f1, g1) and (x2, f2, g2), clamped to
    /// `bounds` (the interval between the points by default); their midpoint when the cubic has none.
    static func cubicInterpolate(_ x1: Double, _ f1: Double, _ g1: Double, _ x2: Double, _ f2: Double, _ g2: Double,
                                 bounds: (Double, Double)? = nil) -> Double {
        cubicInterpolate(Scalar(x1), Scalar(f1), Scalar(g1), Scalar(x2), Scalar(f2), Scalar(g2),
                         bounds: bounds.map { (Scalar($0.0), Scalar($0.1)) }).value
    }

    static func cubicInterpolate(_ x1: Scalar, _ f1: Scalar, _ g1: Scalar, _ x2: Scalar, _ f2: Scalar, _ g2: Scalar,
                                 bounds: (Scalar, Scalar)? = nil) -> Scalar {
        let (lo, hi) = bounds ?? (x1 <= x2 ? (x1, x2) : (x2, x1))
        let d1 = g1 + g2 - Scalar(3) * (f1 - f2) / (x1 - x2)
        let d2Square = d1 * d1 - g1 * g2
        guard d2Square >= Scalar(0) else { return (lo + hi) / Scalar(2) }
        var d2 = d2Square
        d2.value = d2.tensor ? Double(Float(d2Square.value).squareRoot()) : d2Square.value.squareRoot()
        let minPos = x1 <= x2 ? x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + Scalar(2) * d2))
                              : x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + Scalar(2) * d2))
        return Scalar.pythonMin(Scalar.pythonMax(minPos, lo), hi)
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
