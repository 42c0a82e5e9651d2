// The eigendecomposition of a real symmetric matrix in Double: Householder reduction to tridiagonal form, then the
// implicit QL iteration (the EISPACK routines tred2 and tql2). Only additions, products, quotients and square
// roots, each rounded once, in one fixed order: the same bits on every CPU, unlike a LAPACK whose kernels are the
// CPU's.
import Foundation

public enum SymmetricEigen {
    /// The eigenvalues of the symmetric n × n matrix `a` (row-major; only its values matter, both triangles are
    /// read) in ascending order, and the eigenvectors: `vectors[k * n + i]` is component i of the k-th.
    public static func decompose(_ a: [Double], n: Int) -> (values: [Double], vectors: [Double]) {
        precondition(a.count == n * n, "a symmetric matrix of \(n) × \(n)")
        guard n > 0 else { return ([], []) }
        var v = a, d = [Double](repeating: 0, count: n), e = d
        tridiagonalise(&v, &d, &e, n)
        // The QL iteration rotates columns of V: on its transpose they are rows.
        var w = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n { w[j * n + i] = v[i * n + j] } }
        diagonalise(&w, &d, &e, n)
        let order = d.indices.sorted { d[$0] < d[$1] || (d[$0] == d[$1] && $0 < $1) }
        var vectors = [Double](repeating: 0, count: n * n)
        for (k, j) in order.enumerated() { for i in 0..<n { vectors[k * n + i] = w[j * n + i] } }
        return (order.map { d[$0] }, vectors)
    }

    /// A^(−1/root) as Distributed Shampoo computes it: eigenvalues shifted up by −λ_min when it is negative, then by
    /// `epsilon`; X = Q·diag(λ^(−1/root))·Qᵀ, exactly symmetric. A root that is a power of two takes square roots
    /// only (the same bits everywhere); any other takes `pow`.
    public static func inverseRoot(_ a: [Double], n: Int, root: Int, epsilon: Double) -> [Double] {
        let (values, q) = decompose(a, n: n)
        let shift = -min(values.first ?? 0, 0) + epsilon
        let scaled = values.map { power($0 + shift, root: root) }
        var x = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in i..<n {
                var s = 0.0
                for k in 0..<n { s += q[k * n + i] * scaled[k] * q[k * n + j] }
                x[i * n + j] = s
                x[j * n + i] = s
            }
        }
        return x
    }

    /// λ^(−1/root).
    static func power(_ λ: Double, root: Int) -> Double {
        guard root > 0, root & (root - 1) == 0 else { return Foundation.pow(λ, -1 / Double(root)) }
        var r = λ, k = root
        while k > 1 { r = r.squareRoot(); k /= 2 }
        return 1 / r
    }

    /// √(a² + b²) without overflow, in one fixed sequence of operations.
    static func hypotenuse(_ a: Double, _ b: Double) -> Double {
        let (x, y) = (abs(a), abs(b))
        let big = max(x, y), small = min(x, y)
        guard big > 0 else { return 0 }
        let q = small / big
        return big * (1 + q * q).squareRoot()
    }

    /// tred2: V ← the orthogonal transformation, d the diagonal, e the subdiagonal (e[0] = 0).
    static func tridiagonalise(_ v: inout [Double], _ d: inout [Double], _ e: inout [Double], _ n: Int) {
        for j in 0..<n { d[j] = v[(n - 1) * n + j] }
        for i in stride(from: n - 1, to: 0, by: -1) {
            var scale = 0.0, h = 0.0
            for k in 0..<i { scale += abs(d[k]) }
            if scale == 0 {
                e[i] = d[i - 1]
                for j in 0..<i {
                    d[j] = v[(i - 1) * n + j]
                    v[i * n + j] = 0
                    v[j * n + i] = 0
                }
            } else {
                householder(&v, &d, &e, n, i: i, scale: scale, h: &h)
            }
            d[i] = h
        }
        accumulate(&v, &d, n)
        for j in 0..<n {
            d[j] = v[(n - 1) * n + j]
            v[(n - 1) * n + j] = 0
        }
        v[(n - 1) * n + (n - 1)] = 1
        e[0] = 0
    }

    /// One Householder reflection of tred2, for row i.
    private static func householder(_ v: inout [Double], _ d: inout [Double], _ e: inout [Double], _ n: Int, i: Int, scale: Double, h: inout Double) {
        for k in 0..<i {
            d[k] /= scale
            h += d[k] * d[k]
        }
        var f = d[i - 1]
        var g = h.squareRoot()
        if f > 0 { g = -g }
        e[i] = scale * g
        h -= f * g
        d[i - 1] = f - g
        for j in 0..<i { e[j] = 0 }
        for j in 0..<i {
            f = d[j]
            v[j * n + i] = f
            g = e[j] + v[j * n + j] * f
            for k in stride(from: j + 1, to: i, by: 1) {
                g += v[k * n + j] * d[k]
                e[k] += v[k * n + j] * f
            }
            e[j] = g
        }
        f = 0
        for j in 0..<i {
            e[j] /= h
            f += e[j] * d[j]
        }
        let hh = f / (h + h)
        for j in 0..<i { e[j] -= hh * d[j] }
        for j in 0..<i {
            f = d[j]
            g = e[j]
            for k in j..<i { v[k * n + j] -= f * e[k] + g * d[k] }
            d[j] = v[(i - 1) * n + j]
            v[i * n + j] = 0
        }
    }

    /// tred2's accumulation of the reflections into V.
    private static func accumulate(_ v: inout [Double], _ d: inout [Double], _ n: Int) {
        for i in 0..<(n - 1) {
            v[(n - 1) * n + i] = v[i * n + i]
            v[i * n + i] = 1
            let h = d[i + 1]
            if h != 0 {
                for k in 0...i { d[k] = v[k * n + i + 1] / h }
                for j in 0...i {
                    var g = 0.0
                    for k in 0...i { g += v[k * n + i + 1] * v[k * n + j] }
                    for k in 0...i { v[k * n + j] -= g * d[k] }
                }
            }
            for k in 0...i { v[k * n + i + 1] = 0 }
        }
    }

    /// tql2 on W = Vᵀ (row j of W is column j of V): d becomes the eigenvalues, W's rows the eigenvectors.
    static func diagonalise(_ w: inout [Double], _ d: inout [Double], _ e: inout [Double], _ n: Int) {
        for i in 1..<max(n, 1) { e[i - 1] = e[i] }
        e[n - 1] = 0
        var f = 0.0, largest = 0.0
        let eps = 0x1p-52
        for l in 0..<n {
            largest = max(largest, abs(d[l]) + abs(e[l]))
            var m = l
            while m < n - 1 && abs(e[m]) > eps * largest { m += 1 }
            var iterations = 0
            while m > l && abs(e[l]) > eps * largest && iterations < 64 {
                iterations += 1
                f += shiftAndSweep(&w, &d, &e, n, l: l, m: m)
            }
            d[l] += f
            e[l] = 0
        }
    }

    /// One implicit QL step of tql2 on rows l…m; returns the shift it took out of d.
    private static func shiftAndSweep(_ w: inout [Double], _ d: inout [Double], _ e: inout [Double], _ n: Int, l: Int, m: Int) -> Double {
        var g = d[l]
        var p = (d[l + 1] - g) / (2 * e[l])
        var r = hypotenuse(p, 1)
        if p < 0 { r = -r }
        d[l] = e[l] / (p + r)
        d[l + 1] = e[l] * (p + r)
        let dl1 = d[l + 1]
        var h = g - d[l]
        for i in stride(from: l + 2, to: n, by: 1) { d[i] -= h }
        let shift = h
        p = d[m]
        var c = 1.0, c2 = 1.0, c3 = 1.0, s = 0.0, s2 = 0.0
        let el1 = e[l + 1]
        for i in stride(from: m - 1, through: l, by: -1) {
            c3 = c2
            c2 = c
            s2 = s
            g = c * e[i]
            h = c * p
            r = hypotenuse(p, e[i])
            e[i + 1] = s * r
            s = e[i] / r
            c = p / r
            p = c * d[i] - s * g
            d[i + 1] = h + s * (c * g + s * d[i])
            w.withUnsafeMutableBufferPointer { w in
                let a = w.baseAddress! + i * n, b = a + n
                for k in 0..<n {
                    let t = b[k]
                    b[k] = s * a[k] + c * t
                    a[k] = c * a[k] - s * t
                }
            }
        }
        p = -s * s2 * c3 * el1 * e[l] / dl1
        e[l] = s * p
        d[l] = c * p
        return shift
    }
}
