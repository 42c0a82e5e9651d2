// L-BFGS against torch 2.13's LBFGS, recomputed here in Double: the two-loop recursion (Nocedal & Wright 2006,
// Algorithm 7.4), torch's first step min(1, 1/‖g‖₁)·lr, its strong-Wolfe line search (minFunc's, with cubic
// interpolation), and its stopping rules.
import DescentTestSupport
import Foundation
import Optimizers
import Testing

@Suite("L-BFGS against torch 2.13's algorithm")
struct LBFGSTests {
    /// A convex quadratic in 37 parameters, f(x) = ½ Σ a_i e_i² + ¼ Σ (e_i − e_{i+1})² with e = x − c, curvatures a_i
    /// from 0.5 to 20: minimum 0 at c, so that a float32 loss keeps its resolution down to the minimum.
    static let n = 37
    static func value(_ x: [Double]) -> Double {
        var f = 0.0
        for i in 0..<n { f += 0.5 * (0.5 + Double(i % 8) * 2.7) * pow(x[i] - sin(Double(i)), 2) }
        for i in 0..<(n - 1) { f += 0.25 * pow(x[i] - sin(Double(i)) - x[i + 1] + sin(Double(i + 1)), 2) }
        return f
    }
    static func gradient(_ x: [Double]) -> [Double] {
        var g = (0..<n).map { i in (0.5 + Double(i % 8) * 2.7) * (x[i] - sin(Double(i))) }
        for i in 0..<(n - 1) {
            let e = x[i] - sin(Double(i)) - x[i + 1] + sin(Double(i + 1))
            g[i] += 0.5 * e
            g[i + 1] -= 0.5 * e
        }
        return g
    }
    static let start = (0..<n).map { Double(cos(Double($0) * 1.7)) * 2 }

    /// The reference's state between steps (torch's names).
    struct State {
        var iterations = 0, evaluations = 0
        var d: [Double] = [], t = 0.0, s: [[Double]] = [], y: [[Double]] = [], ro: [Double] = [], h = 1.0
        var previousGradient: [Double] = [], previousLoss = 0.0
    }

    static func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }
    static func maxAbs(_ a: [Double]) -> Double { a.reduce(0) { max($0, abs($1)) } }

    /// The minimiser of the cubic through (x1, f1, f′1) and (x2, f2, f′2), clamped to [lo, hi] (Nocedal & Wright
    /// (3.59); the midpoint of the bounds when the cubic has no minimum).
    static func cubic(_ x1: Double, _ f1: Double, _ g1: Double, _ x2: Double, _ f2: Double, _ g2: Double,
                      _ lo: Double, _ hi: Double) -> Double {
        let d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
        let square = d1 * d1 - g1 * g2
        guard square >= 0 else { return (lo + hi) / 2 }
        let d2 = (x2 > x1 ? 1.0 : -1.0) * square.squareRoot()
        let m = x2 - (x2 - x1) * (g2 + d2 - d1) / (g2 - g1 + 2 * d2)
        return min(max(m, lo), hi)
    }

    /// A step along d from x meeting the strong Wolfe conditions (c1 1e-4, c2 0.9): bracketing, then zoom, as
    /// torch's `_strong_wolfe` does it, at most `budget` evaluations. Returns (f, g, t, evaluations).
    static func lineSearch(_ x: [Double], _ t0: Double, _ d: [Double], _ f: Double, _ g: [Double], _ gtd: Double,
                           budget: Int, tolChange: Double, _ fg: ([Double]) -> (Double, [Double]))
        -> (Double, [Double], Double, Int) {
        func at(_ t: Double) -> (Double, [Double], Double) {
            let (fv, gv) = fg(zip(x, d).map { $0 + t * $1 })
            return (fv, gv, dot(gv, d))
        }
        var t = t0
        var (fn, gn, sn) = at(t)
        var evals = 1, k = 0
        var (tp, fp, gp, sp) = (0.0, f, g, gtd)
        var br: [(t: Double, f: Double, g: [Double], s: Double)] = []
        var done = false
        while k < budget {
            if fn > f + 1e-4 * t * gtd || (k > 1 && fn >= fp) { br = [(tp, fp, gp, sp), (t, fn, gn, sn)]; break }
            if abs(sn) <= -0.9 * gtd { br = [(t, fn, gn, sn)]; done = true; break }
            if sn >= 0 { br = [(tp, fp, gp, sp), (t, fn, gn, sn)]; break }
            let next = cubic(tp, fp, sp, t, fn, sn, t + 0.01 * (t - tp), 10 * t)
            (tp, fp, gp, sp) = (t, fn, gn, sn)
            t = next
            (fn, gn, sn) = at(t)
            evals += 1
            k += 1
        }
        if k >= budget { br = [(0, f, g, gtd), (t, fn, gn, sn)] }
        var stuck = false
        var low = br[0].f <= br[br.count - 1].f ? 0 : 1
        while !done && k < budget {
            if abs(br[1].t - br[0].t) * maxAbs(d) < tolChange { break }
            let lo = min(br[0].t, br[1].t), hi = max(br[0].t, br[1].t)
            t = cubic(br[0].t, br[0].f, br[0].s, br[1].t, br[1].f, br[1].s, lo, hi)
            let eps = 0.1 * (hi - lo)
            if min(hi - t, t - lo) < eps {
                if stuck || t >= hi || t <= lo {
                    t = abs(t - hi) < abs(t - lo) ? hi - eps : lo + eps
                    stuck = false
                } else {
                    stuck = true
                }
            } else {
                stuck = false
            }
            (fn, gn, sn) = at(t)
            evals += 1
            k += 1
            let high = 1 - low
            if fn > f + 1e-4 * t * gtd || fn >= br[low].f {
                br[high] = (t, fn, gn, sn)
                low = br[0].f <= br[1].f ? 0 : 1
            } else {
                if abs(sn) <= -0.9 * gtd {
                    done = true
                } else if sn * (br[high].t - br[low].t) >= 0 {
                    br[high] = br[low]
                }
                br[low] = (t, fn, gn, sn)
            }
        }
        return (br[low].f, br[low].g, br[low].t, evals)
    }

    /// One torch LBFGS step in Double from x with state `st`.
    static func referenceStep(_ s: OptimizerSettings, _ x: inout [Double], _ st: inout State,
                              maxIter: Int? = nil, lineSearch: Bool? = nil, _ fg: ([Double]) -> (Double, [Double])) {
        let maxIter = maxIter ?? Int(s.maxIter), wolfe = lineSearch ?? (s.lineSearchFn == "strong_wolfe")
        let maxEval = s.maxEval > 0 ? Int(s.maxEval) : Int(s.maxIter) * 5 / 4
        var (f, g) = fg(x)
        var used = 1
        st.evaluations += 1
        if maxAbs(g) <= s.toleranceGrad { return }
        var n = 0
        while n < maxIter {
            n += 1
            st.iterations += 1
            if st.iterations == 1 {
                st.d = g.map { -$0 }
                (st.s, st.y, st.ro, st.h) = ([], [], [], 1)
            } else {
                let y = zip(g, st.previousGradient).map { $0 - $1 }, step = st.d.map { $0 * st.t }
                let ys = dot(y, step)
                if ys > 1e-10 {
                    if st.y.count == Int(s.historySize) { st.y.removeFirst(); st.s.removeFirst(); st.ro.removeFirst() }
                    st.y.append(y); st.s.append(step); st.ro.append(1 / ys)
                    st.h = ys / dot(y, y)
                }
                // Algorithm 7.4: q ← −g; newest to oldest α_i = ρ_i s_iᵀq, q ← q − α_i y_i; r ← H₀q; oldest to newest
                // β = ρ_i y_iᵀr, r ← r + s_i(α_i − β).
                var q = g.map { -$0 }
                var alpha = [Double](repeating: 0, count: st.y.count)
                for i in st.y.indices.reversed() {
                    alpha[i] = st.ro[i] * dot(st.s[i], q)
                    for j in q.indices { q[j] -= alpha[i] * st.y[i][j] }
                }
                var r = q.map { $0 * st.h }
                for i in st.y.indices {
                    let beta = st.ro[i] * dot(st.y[i], r)
                    for j in r.indices { r[j] += st.s[i][j] * (alpha[i] - beta) }
                }
                st.d = r
            }
            st.previousGradient = g
            st.previousLoss = f
            st.t = st.iterations == 1 ? min(1, 1 / g.reduce(0) { $0 + abs($1) }) * s.learningRate : s.learningRate
            let gtd = dot(g, st.d)
            if gtd > -s.toleranceChange { break }
            var evals = 0
            var optimal = false
            if wolfe {
                let found = Self.lineSearch(x, st.t, st.d, f, g, gtd, budget: maxEval - used, tolChange: s.toleranceChange, fg)
                (f, g, st.t, evals) = found
                for j in x.indices { x[j] += st.t * st.d[j] }
                optimal = maxAbs(g) <= s.toleranceGrad
            } else {
                for j in x.indices { x[j] += st.t * st.d[j] }
                if n != maxIter {
                    (f, g) = fg(x)
                    optimal = maxAbs(g) <= s.toleranceGrad
                    evals = 1
                }
            }
            used += evals
            st.evaluations += evals
            if n == maxIter || used >= maxEval || optimal { break }
            if maxAbs(st.d) * abs(st.t) <= s.toleranceChange || abs(f - st.previousLoss) < s.toleranceChange { break }
        }
    }

    /// What `update` takes with one gradient: torch's step with max_iter 1 and no line search.
    static func singleGradientReference(_ s: OptimizerSettings) -> ReferenceStep {
        var st = State()
        return { θ, g, _, _ in referenceStep(s, &θ, &st, maxIter: 1, lineSearch: false) { _ in (.nan, g) } }
    }

    static let cases = [
        OptimizerCase(.lbfgs, "strong Wolfe, max_iter 3") { $0.lineSearchFn = "strong_wolfe"; $0.maxIter = 3 },
        OptimizerCase(.lbfgs, "strong Wolfe, max_iter 1, max_eval 10, history 3") {
            $0.lineSearchFn = "strong_wolfe"; $0.maxIter = 1; $0.maxEval = 10; $0.historySize = 3
        },
        OptimizerCase(.lbfgs, "fixed step lr 0.05, max_iter 2, history 5") { $0.learningRate = 0.05; $0.maxIter = 2; $0.historySize = 5 },
        OptimizerCase(.lbfgs, "high rate 1.5, max_iter 1, history 2") { $0.learningRate = 1.5; $0.maxIter = 1; $0.historySize = 2 },
    ]

    /// The Float rule on the quadratic (evaluated in Double at its Float points, as training rounds its sums).
    static func floatEvaluation(_ p: UnsafeBufferPointer<Float>) -> LBFGS.Evaluation {
        let x = p.map(Double.init)
        return (Double(Float(value(x))), gradient(x).map(Float.init))
    }

    @Test("1 and 25 steps on a quadratic match the Double reference (relative 1e-5)", arguments: cases)
    func matchesReference(_ c: OptimizerCase) throws {
        #expect(c.settings.validate() == nil)
        let lbfgs = try #require(c.settings.makeOptimizer(parameterCount: Self.n) as? LBFGS)
        var theta = Self.start.map(Float.init)
        var reference = theta.map(Double.init)
        var st = State()
        for t in 1...25 {
            _ = theta.withUnsafeMutableBufferPointer { lbfgs.step($0, evaluate: Self.floatEvaluation) }
            Self.referenceStep(c.settings, &reference, &st) { (Self.value($0), Self.gradient($0)) }
            if t == 1 || t == 25 {
                for i in 0..<Self.n {
                    #expect(close(Double(theta[i]), reference[i], relative: 1e-5, floor: 1), "\(c.label) step \(t) θ[\(i)]: \(theta[i]) vs \(reference[i])")
                }
            }
            // The same line-search decisions while the loss is far above float32's resolution (at the minimum a
            // float32 loss may cost the Float rule an evaluation more).
            if t == 1 || t == 8 {
                #expect(lbfgs.evaluations == st.evaluations, "\(c.label) step \(t): evaluations \(lbfgs.evaluations) vs \(st.evaluations)")
            }
        }
        #expect(lbfgs.stepCount == 25)
    }

    @Test("with the line search it reaches the quadratic's minimum, where the gradient vanishes")
    func converges() throws {
        var s = OptimizerSettings(.lbfgs)
        s.lineSearchFn = "strong_wolfe"
        let lbfgs = try #require(s.makeOptimizer(parameterCount: Self.n) as? LBFGS)
        var theta = Self.start.map(Float.init)
        for _ in 0..<5 { _ = theta.withUnsafeMutableBufferPointer { lbfgs.step($0, evaluate: Self.floatEvaluation) } }
        #expect(Self.maxAbs(Self.gradient(theta.map(Double.init))) < 1e-4)
    }

    @Test("the cubic interpolation finds a cubic's minimum exactly, and the midpoint when there is none")
    func cubicInterpolation() {
        // f(x) = x³ − 3x: f(0) = 0, f′(0) = −3, f(2) = 2, f′(2) = 9, minimum at 1.
        #expect(abs(Self.cubic(0, 0, -3, 2, 2, 9, 0, 2) - 1) < 1e-12)
        #expect(abs(Self.cubic(2, 2, 9, 0, 0, -3, 0, 2) - 1) < 1e-12)
        // Slopes 3 at both ends of a rise of 2 over [0, 1]: the cubic through them has no turning point.
        #expect(Self.cubic(0, 0, 3, 1, 2, 3, 0, 1) == 0.5)
    }

    @Test("saved state restores into a fresh L-BFGS that continues identically", arguments: cases)
    func stateRoundTrip(_ c: OptimizerCase) throws {
        let a = try #require(c.settings.makeOptimizer(parameterCount: Self.n) as? LBFGS)
        var theta = Self.start.map(Float.init)
        for _ in 0..<4 { _ = theta.withUnsafeMutableBufferPointer { a.step($0, evaluate: Self.floatEvaluation) } }
        let b = try #require(c.settings.makeOptimizer(parameterCount: Self.n) as? LBFGS)
        try b.restore(a.state())
        #expect(b.state() == a.state())
        var other = theta
        for _ in 0..<3 {
            _ = theta.withUnsafeMutableBufferPointer { a.step($0, evaluate: Self.floatEvaluation) }
            _ = other.withUnsafeMutableBufferPointer { b.step($0, evaluate: Self.floatEvaluation) }
        }
        #expect(theta == other)
        var broken = a.state()
        broken.buffers["old_dirs/0"] = [1, 2]
        #expect(throws: OptimizerStateError.self) { try b.restore(broken) }
    }
}
