// One pass over a parameter buffer, its gradient and up to three state buffers, eight lanes at a time: the
// driver every element-wise optimizer runs its update body through.

/// Eight Float lanes: what an optimizer's update body computes on.
public typealias F8 = SIMD8<Float>

/// A missing state buffer: its lanes read as zero and are not written.
public typealias OptionalBuffer = UnsafeMutablePointer<Float>?

/// Calls `body(&θ, g, &a, &b, &c, &d)` on eight lanes at a time for indices 0..<count, reading and writing
/// back θ and the state buffers a, b, c, d (absent ones are zero and discarded).
///
/// The last count % 8 elements go through the same SIMD body on zero-padded lanes, so every element gets
/// exactly the same arithmetic wherever it sits in the buffer.
@inlinable @inline(__always)
public func forEachLane(
    count n: Int, parameters θ: UnsafeMutablePointer<Float>, gradient g: UnsafePointer<Float>,
    _ a: OptionalBuffer = nil, _ b: OptionalBuffer = nil, _ c: OptionalBuffer = nil, _ d: OptionalBuffer = nil,
    body: (inout SIMD8<Float>, SIMD8<Float>, inout SIMD8<Float>, inout SIMD8<Float>, inout SIMD8<Float>,
           inout SIMD8<Float>) -> Void
) {
    // One call site for `body`, so that the compiler inlines it into the loop.
    let zero = SIMD8<Float>()
    var i = 0
    while i < n {
        var p = zero, gr = zero, sa = zero, sb = zero, sc = zero, sd = zero
        let full = i + 8 <= n
        if full {
            p = load8(θ, i)
            gr = load8(g, i)
            if let a { sa = load8(a, i) }
            if let b { sb = load8(b, i) }
            if let c { sc = load8(c, i) }
            if let d { sd = load8(d, i) }
        } else {
            for k in 0..<(n - i) {
                p[k] = θ[i + k]
                gr[k] = g[i + k]
                if let a { sa[k] = a[i + k] }
                if let b { sb[k] = b[i + k] }
                if let c { sc[k] = c[i + k] }
                if let d { sd[k] = d[i + k] }
            }
        }
        body(&p, gr, &sa, &sb, &sc, &sd)
        if full {
            store8(p, θ, i)
            if let a { store8(sa, a, i) }
            if let b { store8(sb, b, i) }
            if let c { store8(sc, c, i) }
            if let d { store8(sd, d, i) }
        } else {
            for k in 0..<(n - i) {
                θ[i + k] = p[k]
                if let a { a[i + k] = sa[k] }
                if let b { b[i + k] = sb[k] }
                if let c { c[i + k] = sc[k] }
                if let d { d[i + k] = sd[k] }
            }
        }
        i += 8
    }
}

extension Kernels {
    /// Σ x[i]² accumulated in Double (eight partial sums, then added in a fixed order).
    @inlinable
    public static func sumOfSquares(_ x: UnsafePointer<Float>, count: Int) -> Double { dot(x, x, count: count) }

    /// Σ x[i]·y[i] accumulated in Double in one fixed order (eight partial sums, then added in order; the tail after
    /// them), so that every rank and every CPU gets the same bits.
    @inlinable
    public static func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, count: Int) -> Double {
        var acc = SIMD8<Double>()
        var i = 0
        while i + 8 <= count {
            acc += SIMD8<Double>(load8(x, i)) * SIMD8<Double>(load8(y, i))
            i += 8
        }
        var total = acc.sum()
        while i < count {
            total += Double(x[i]) * Double(y[i])
            i += 1
        }
        return total
    }
}

extension Kernels {
    /// Σ a[i]·b[i] in Double (`dot` over their storage).
    public static func dot(_ a: [Float], _ b: [Float]) -> Double {
        precondition(a.count == b.count, "dot of vectors of different lengths")
        return a.withUnsafeBufferPointer { x in
            b.withUnsafeBufferPointer { y in
                guard let xb = x.baseAddress, let yb = y.baseAddress else { return 0 }
                return dot(xb, yb, count: x.count)
            }
        }
    }

    /// max |x[i]| (0 for an empty vector; NaN when any element is NaN).
    public static func maxAbs(_ x: [Float]) -> Double {
        var m: Float = 0
        for v in x {
            if v.isNaN { return .nan }
            m = max(m, abs(v))
        }
        return Double(m)
    }

    /// Σ |x[i]| in Double, in index order.
    public static func sumAbs(_ x: [Float]) -> Double {
        var s = 0.0
        for v in x { s += Double(abs(v)) }
        return s
    }

    /// y ← y + a·x, element by element in Float (torch's `y.add_(x, alpha=a)`).
    public static func addScaled(_ x: [Float], _ a: Float, to y: inout [Float]) {
        precondition(x.count == y.count, "addScaled of vectors of different lengths")
        let n = x.count
        x.withUnsafeBufferPointer { xs in
            y.withUnsafeMutableBufferPointer { ys in
                forEachBlock(count: n, vector: { i in
                    store8(load8(ys.baseAddress!, i) + a * load8(xs.baseAddress!, i), ys.baseAddress!, i)
                }, scalar: { i in ys[i] += a * xs[i] })
            }
        }
    }
}
