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
                remember(y: zip(g, prevFlatGrad).map { $0 - $1 })
                d = direction(g)
            }
            prevFlatGrad = g
            prevLoss = loss
            var step = firstStep(g)
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

    /// Keeps the pair (s, y) of the last iteration, s = t·d, when yᵀs > 1e-10 (the oldest goes when `history_size` are
    /// kept), and H₀'s scale yᵀs/yᵀy.
    private func remember(y: [Float]) {
        let tf = Float(t)
        let s = d.map { $0 * tf }
        let ys = Float(Kernels.dot(y, s))
        guard ys > Float(1e-10) else { return }
        if oldDirs.count == Int(settings.historySize) {
            oldDirs.removeFirst()
            oldStps.removeFirst()
            ro.removeFirst()
        }
        oldDirs.append(y)
        oldStps.append(s)
        ro.append(Double(1 / ys))
        hDiag = Double(ys / Float(Kernels.dot(y, y)))
    }

    /// The two-loop recursion: −H g from the kept pairs (its scalars float32, as torch's 0-dim tensors).
    private func direction(_ g: [Float]) -> [Float] {
        var q = g.map { -$0 }
        var al = [Float](repeating: 0, count: oldDirs.count)
        for i in oldDirs.indices.reversed() {
            al[i] = Float(Kernels.dot(oldStps[i], q)) * Float(ro[i])
            Kernels.addScaled(oldDirs[i], -al[i], to: &q)
        }
        let h = Float(hDiag)
        var r = q.map { $0 * h }
        for i in oldDirs.indices {
            let be = Float(Kernels.dot(oldDirs[i], r)) * Float(ro[i])
            Kernels.addScaled(oldStps[i], al[i] - be, to: &r)
        }
        return r
    }

    /// The iteration's step before any line search: torch's min(1., 1. / |g|₁) · lr on the run's first iteration (a
    /// float32 tensor when 1/|g|₁ < 1), the rate itself after.
    private func firstStep(_ g: [Float]) -> Scalar {
        guard iterations == 1 else { return Scalar(learningRate) }
        let inverse = Scalar(1) / Scalar(tensor: Kernels.sumAbs(g))
        return (inverse < Scalar(1) ? inverse : Scalar(1)) * Scalar(learningRate)
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

    /// A point of the line search: the step t along d, the loss f and gradient g at x + t·d, and the slope gᵀd.
    struct Probe {
        var t: Scalar
        var f: Scalar
        var g: [Float]
        var gtd: Scalar
    }

    /// The probe at x + t·d, x unchanged (torch's `_directional_evaluate`).
    private func probe(_ x: UnsafeBufferPointer<Float>, _ t: Scalar, _ d: [Float], _ evaluate: Evaluate) rethrows -> Probe {
        let tf = Float(t.value)
        let trial = (0..<x.count).map { x[$0] + tf * d[$0] }
        let (f, g) = try trial.withUnsafeBufferPointer { try evaluate($0) }
        return Probe(t: t, f: Scalar(f), g: g, gtd: Scalar(tensor: Kernels.dot(g, d)))
    }

    /// torch's `_strong_wolfe`: a step t along d satisfying the strong Wolfe conditions (or the best found within
    /// `maxLineSearch` evaluations), with the loss and gradient there. Losses are Python floats, slopes float32.
    private func strongWolfe(_ xm: UnsafeMutableBufferPointer<Float>, _ t0: Scalar, _ d: [Float], _ f0: Double, _ g: [Float],
                             _ gtd: Scalar, maxLineSearch: Int, _ evaluate: Evaluate)
        rethrows -> (loss: Double, gradient: [Float], t: Scalar, evaluations: Int) {
        let x = UnsafeBufferPointer(xm)
        let start = Probe(t: Scalar(0), f: Scalar(f0), g: g, gtd: gtd)
        let found = try bracketing(x, t0, d, from: start, limit: maxLineSearch, evaluate)
        var best = found.bracket[0], evaluations = found.evaluations
        if !found.done {
            (best, evaluations) = try zoom(x, d, from: start, found.bracket, after: found.evaluations, limit: maxLineSearch, evaluate)
        }
        return (best.f.value, best.g, best.t, evaluations)
    }

    /// The line search's first phase: grows t (by cubic extrapolation) until the probe meets the conditions (`done`,
    /// one point) or two probes bracket such a step; at the limit, the start and the last probe.
    private func bracketing(_ x: UnsafeBufferPointer<Float>, _ t0: Scalar, _ d: [Float], from start: Probe, limit: Int,
                            _ evaluate: Evaluate) rethrows -> (bracket: [Probe], done: Bool, evaluations: Int) {
        var previous = start
        var new = try probe(x, t0, d, evaluate)
        var iteration = 0
        while iteration < limit {
            if new.f > sufficientDecrease(start, new.t) || (iteration > 1 && new.f >= previous.f) { return ([previous, new], false, iteration + 1) }
            if curvatureMet(start, new) { return ([new], true, iteration + 1) }
            if new.gtd >= Scalar(0) { return ([previous, new], false, iteration + 1) }
            let t = Self.cubicInterpolate(previous.t, previous.f, previous.gtd, new.t, new.f, new.gtd,
                                          bounds: (new.t + Scalar(0.01) * (new.t - previous.t), new.t * Scalar(10)))
            previous = new
            new = try probe(x, t, d, evaluate)
            iteration += 1
        }
        return ([start, new], false, iteration + 1)
    }

    /// The line search's second phase: shrinks the bracket by cubic interpolation (kept 10 % inside it) until a probe
    /// meets the conditions, the bracket is too small to matter, or the limit is reached; the lower end then.
    private func zoom(_ x: UnsafeBufferPointer<Float>, _ d: [Float], from start: Probe, _ initial: [Probe], after evaluations: Int,
                      limit: Int, _ evaluate: Evaluate) rethrows -> (Probe, evaluations: Int) {
        var bracket = initial
        var evals = evaluations, iteration = evaluations - 1
        var insufficientProgress = false
        var (low, high) = bracket[0].f <= bracket[1].f ? (0, 1) : (1, 0)
        let dNorm = Scalar(tensor: Kernels.maxAbs(d))
        while iteration < limit {
            if (bracket[1].t - bracket[0].t).magnitude * dNorm < Scalar(settings.toleranceChange) { break }
            var t = Self.cubicInterpolate(bracket[0].t, bracket[0].f, bracket[0].gtd, bracket[1].t, bracket[1].f, bracket[1].gtd)
            let hi = Scalar.pythonMax(bracket[0].t, bracket[1].t), lo = Scalar.pythonMin(bracket[0].t, bracket[1].t)
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
            let new = try probe(x, t, d, evaluate)
            evals += 1
            iteration += 1
            if new.f > sufficientDecrease(start, new.t) || new.f >= bracket[low].f {
                bracket[high] = new
                (low, high) = bracket[0].f <= bracket[1].f ? (0, 1) : (1, 0)
                continue
            }
            if curvatureMet(start, new) {
                bracket[low] = new
                break
            }
            if new.gtd * (bracket[high].t - bracket[low].t) >= Scalar(0) { bracket[high] = bracket[low] }
            bracket[low] = new
        }
        return (bracket[low], evals)
    }

    /// The Armijo bound f + c1·t·gᵀd (c1 = 1e-4), float32 as in torch.
    private func sufficientDecrease(_ start: Probe, _ t: Scalar) -> Scalar { start.f + Scalar(1e-4) * t * start.gtd }

    /// The strong curvature condition |gᵀd| ≤ −c2·g₀ᵀd (c2 = 0.9).
    private func curvatureMet(_ start: Probe, _ new: Probe) -> Bool { new.gtd.magnitude <= -Scalar(0.9) * start.gtd }

    /// torch's `_cubic_interpolate`: the minimiser of the cubic through (x1, f1, g1) and (x2, f2, g2), clamped to
    /// `bounds` (the interval between the points by default); their midpoint when the cubic has none.
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
