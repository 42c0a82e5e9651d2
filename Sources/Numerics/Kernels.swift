// Element-wise kernels over raw Float pointers, written with SIMD8 so that they are vector code in every
// release build (the auto-vectoriser leaves plain pointer loops scalar here).

/// Eight floats from `p + i` (no alignment needed).
@inlinable @inline(__always)
public func load8(_ p: UnsafePointer<Float>, _ i: Int) -> SIMD8<Float> {
    UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
}

@inlinable @inline(__always)
public func load8(_ p: UnsafeMutablePointer<Float>, _ i: Int) -> SIMD8<Float> {
    UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
}

/// Stores eight floats at `p + i` (no alignment needed).
@inlinable @inline(__always)
public func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>, _ i: Int) {
    UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: SIMD8<Float>.self)
}

/// Applies `vector` to each full block of eight indices in 0..<count and `scalar` to the remainder; both
/// must compute the same per-element arithmetic so that results do not depend on an element's position.
@inlinable @inline(__always)
public func forEachBlock(count: Int, vector: (Int) -> Void, scalar: (Int) -> Void) {
    var i = 0
    while i + 8 <= count {
        vector(i)
        i += 8
    }
    while i < count {
        scalar(i)
        i += 1
    }
}

/// A buffer of `count` zeros (at least one), for a model's workspace; its owner deallocates it.
public func zeroedFloats(_ count: Int) -> UnsafeMutablePointer<Float> {
    let p = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
    p.initialize(repeating: 0, count: max(count, 1))
    return p
}

/// The product of `factors` when every one is ≥ 0 and the product stays within `limit` (checked after each factor,
/// so nothing overflows); nil otherwise. How a file's announced shape is checked against the bytes it holds.
public func boundedProduct(_ factors: [Int], limit: Int) -> Int? {
    var product = 1
    for f in factors {
        let (next, overflow) = product.multipliedReportingOverflow(by: max(f, 0))
        guard f >= 0, !overflow, next <= limit else { return nil }
        product = next
    }
    return product
}

/// The buffers of one workspace: zeroed floats and integers allocated once, never moved, all freed with it.
public final class ScratchMemory {
    private var floatBuffers: [UnsafeMutablePointer<Float>] = []
    private var integerBuffers: [UnsafeMutablePointer<Int32>] = []

    public init() {}

    deinit {
        floatBuffers.forEach { $0.deallocate() }
        integerBuffers.forEach { $0.deallocate() }
    }

    public func floats(_ count: Int) -> UnsafeMutablePointer<Float> {
        let p = zeroedFloats(count)
        floatBuffers.append(p)
        return p
    }

    public func integers(_ count: Int) -> UnsafeMutablePointer<Int32> {
        let p = UnsafeMutablePointer<Int32>.allocate(capacity: max(count, 1))
        p.initialize(repeating: 0, count: max(count, 1))
        integerBuffers.append(p)
        return p
    }
}

public enum Kernels {
    /// out ← a + b (element-wise; `out` may be `a` or `b`)
    @inlinable
    public static func add(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int) {
        forEachBlock(count: count, vector: { i in store8(load8(a, i) + load8(b, i), out, i) },
                     scalar: { i in out[i] = a[i] + b[i] })
    }

    /// out ← (a + b)·α, the sum rounded before the product (`out` may be `a` or `b`)
    @inlinable
    public static func addThenScale(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>,
                                     count: Int, by alpha: Float) {
        forEachBlock(count: count, vector: { i in store8((load8(a, i) + load8(b, i)) * alpha, out, i) },
                     scalar: { i in out[i] = (a[i] + b[i]) * alpha })
    }

    /// Scales `x` so that its L2 norm is at most `maxNorm`, as torch's clip_grad_norm_ does
    /// (x ← x · maxNorm / (‖x‖ + 1e-6) when that factor is below 1). Returns ‖x‖ before clipping.
    @discardableResult
    public static func clip(_ x: UnsafeMutablePointer<Float>, count: Int, toNorm maxNorm: Double) -> Double {
        let norm = sumOfSquares(x, count: count).squareRoot()
        let factor = maxNorm / (norm + 1e-6)
        if factor < 1 { scale(x, count: count, by: Float(factor)) }
        return norm
    }

    /// x ← α·x
    @inlinable
    public static func scale(_ x: UnsafeMutablePointer<Float>, count: Int, by alpha: Float) {
        forEachBlock(count: count, vector: { i in store8(load8(x, i) * alpha, x, i) },
                     scalar: { i in x[i] *= alpha })
    }

    /// Each of `rows` rows of `out` (length `columns`) gets `bias` added.
    @inlinable
    public static func addRowVector(
        _ bias: UnsafePointer<Float>, to out: UnsafeMutablePointer<Float>, rows: Int, columns: Int
    ) {
        for r in 0..<rows {
            let row = out + r * columns
            forEachBlock(count: columns, vector: { i in store8(load8(row, i) + load8(bias, i), row, i) },
                         scalar: { i in row[i] += bias[i] })
        }
    }

    /// Each row of `out` gets `bias` added and then max(·, 0), in one pass (as addRowVector then relu would).
    @inlinable
    public static func addRowVectorThenReLU(
        _ bias: UnsafePointer<Float>, to out: UnsafeMutablePointer<Float>, rows: Int, columns: Int
    ) {
        for r in 0..<rows {
            let row = out + r * columns
            forEachBlock(count: columns, vector: { i in
                let v = load8(row, i) + load8(bias, i)
                store8(v.replacing(with: 0, where: v .<= 0), row, i)
            }, scalar: { i in let v = row[i] + bias[i]; row[i] = v > 0 ? v : 0 })
        }
    }

    /// sums[c] += Σ_r m[r, c]  (column sums of a row-major rows×columns matrix, accumulated row by row)
    @inlinable
    public static func accumulateColumnSums(
        of m: UnsafePointer<Float>, rows: Int, columns: Int, into sums: UnsafeMutablePointer<Float>
    ) {
        for r in 0..<rows {
            let row = m + r * columns
            forEachBlock(count: columns, vector: { i in store8(load8(sums, i) + load8(row, i), sums, i) },
                         scalar: { i in sums[i] += row[i] })
        }
    }

    /// x ← max(x, 0)
    @inlinable
    public static func relu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        // (the generic pointwiseMax is not specialised across modules; replacing(with:where:) is)
        forEachBlock(count: count, vector: { i in let v = load8(x, i); store8(v.replacing(with: 0, where: v .<= 0), x, i) },
                     scalar: { i in x[i] = x[i] > 0 ? x[i] : 0 })
    }

    /// g ← g where a > 0, else 0 (the ReLU derivative applied to an upstream gradient, using the activation)
    @inlinable
    public static func reluBackward(_ g: UnsafeMutablePointer<Float>, activation a: UnsafePointer<Float>, count: Int) {
        forEachBlock(count: count,
                     vector: { i in store8(load8(g, i).replacing(with: 0, where: load8(a, i) .<= 0), g, i) },
                     scalar: { i in g[i] = a[i] > 0 ? g[i] : 0 })
    }

    /// Bytes scaled to floats: out[i] = Float(bytes[i]) · scale.
    @inlinable
    public static func convert(_ bytes: UnsafePointer<UInt8>, count: Int, scale: Float, into out: UnsafeMutablePointer<Float>) {
        forEachBlock(count: count, vector: { i in
            let b = UnsafeRawPointer(bytes + i).loadUnaligned(as: SIMD8<UInt8>.self)
            store8(SIMD8<Float>(SIMD8<Int32>(truncatingIfNeeded: b)) * scale, out, i)
        }, scalar: { i in out[i] = Float(bytes[i]) * scale })
    }

    /// True when every value is finite (no NaN, no ±∞): x·0 is 0 for finite x and NaN otherwise, so one
    /// multiply-add per element decides it, in vector code.
    @inlinable
    public static func allFinite(_ x: UnsafePointer<Float>, count: Int) -> Bool {
        var acc = SIMD8<Float>(repeating: 0)
        var tail: Float = 0
        forEachBlock(count: count, vector: { i in acc += load8(x, i) * 0 }, scalar: { i in tail += x[i] * 0 })
        return acc.sum() + tail == 0
    }
}
