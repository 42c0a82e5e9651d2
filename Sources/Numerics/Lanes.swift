// One pass over a parameter buffer, its gradient and up to three state buffers, eight lanes at a time: the
// driver every element-wise optimizer runs its update body through.

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
    let zero = SIMD8<Float>()
    var i = 0
    while i + 8 <= n {
        var p = load8(θ, i)
        var sa = a.map { load8($0, i) } ?? zero
        var sb = b.map { load8($0, i) } ?? zero
        var sc = c.map { load8($0, i) } ?? zero
        var sd = d.map { load8($0, i) } ?? zero
        body(&p, load8(g, i), &sa, &sb, &sc, &sd)
        store8(p, θ, i)
        if let a { store8(sa, a, i) }
        if let b { store8(sb, b, i) }
        if let c { store8(sc, c, i) }
        if let d { store8(sd, d, i) }
        i += 8
    }
    guard i < n else { return }
    let r = n - i
    var p = zero, gr = zero, sa = zero, sb = zero, sc = zero, sd = zero
    for k in 0..<r {
        p[k] = θ[i + k]
        gr[k] = g[i + k]
        if let a { sa[k] = a[i + k] }
        if let b { sb[k] = b[i + k] }
        if let c { sc[k] = c[i + k] }
        if let d { sd[k] = d[i + k] }
    }
    body(&p, gr, &sa, &sb, &sc, &sd)
    for k in 0..<r {
        θ[i + k] = p[k]
        if let a { a[i + k] = sa[k] }
        if let b { b[i + k] = sb[k] }
        if let c { c[i + k] = sc[k] }
        if let d { d[i + k] = sd[k] }
    }
}

extension Kernels {
    /// Σ x[i]² accumulated in Double (eight partial sums, then added in a fixed order).
    @inlinable
    public static func sumOfSquares(_ x: UnsafePointer<Float>, count: Int) -> Double {
        var acc = SIMD8<Double>()
        var i = 0
        while i + 8 <= count {
            let v = SIMD8<Double>(load8(x, i))
            acc += v * v
            i += 8
        }
        var total = acc.sum()
        while i < count {
            total += Double(x[i]) * Double(x[i])
            i += 1
        }
        return total
    }
}
