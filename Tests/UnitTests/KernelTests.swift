// descent's matrix kernels against their definition and an independent Double reference, on the shapes descent's
// models multiply: every portable path gives the definition's bits (one fused multiply-add per term, in k order),
// and both the portable and the native kernels stay within the rounding bound of the exact product.
import Numerics
import Testing
import Training

/// (op(A), op(B), m, n, k): the products of the default MLP (chunks of 64 and of 1024 rows), of the
/// 784-1000-500-100-10 MLP, of a 2c2d convolution as im2col, and edges (one element, odd sizes, k past one block).
let kernelShapes: [(Transpose, Transpose, Int, Int, Int)] = [
    (.none, .none, 64, 100, 784), (.transposed, .none, 784, 100, 64), (.none, .transposed, 64, 784, 100),
    (.none, .none, 64, 10, 100), (.transposed, .none, 100, 10, 64), (.none, .transposed, 64, 100, 10),
    (.none, .none, 64, 1000, 784), (.none, .transposed, 64, 1000, 500), (.transposed, .none, 1000, 500, 64),
    (.none, .none, 1024, 100, 784), (.transposed, .none, 784, 100, 1024),
    (.none, .none, 4 * 28 * 28, 32, 25), (.transposed, .none, 25, 32, 4 * 28 * 28), (.none, .transposed, 4 * 14 * 14, 800, 64),
    (.none, .none, 1, 1, 1), (.none, .none, 7, 33, 300), (.transposed, .transposed, 13, 17, 513), (.none, .transposed, 3, 5, 0),
]

/// Random operands for one shape, stored as the transposes say, and a random starting C.
struct Operands {
    let transA: Transpose, transB: Transpose, m: Int, n: Int, k: Int
    let a: [Float], b: [Float], c0: [Float]
    var lda: Int { transA == .none ? k : m }
    var ldb: Int { transB == .none ? n : k }

    init(_ shape: (Transpose, Transpose, Int, Int, Int), seed: UInt64) {
        (transA, transB, m, n, k) = shape
        var rng = Xoshiro256(seed: seed, stream: 0x6E33)
        a = (0..<max(m * k, 1)).map { _ in Float(rng.nextGaussian()) }
        b = (0..<max(k * n, 1)).map { _ in Float(rng.nextGaussian()) }
        c0 = (0..<(m * n)).map { _ in Float(rng.nextGaussian()) }
    }

    func opA(_ i: Int, _ p: Int) -> Float { transA == .none ? a[i * lda + p] : a[p * lda + i] }
    func opB(_ p: Int, _ j: Int) -> Float { transB == .none ? b[p * ldb + j] : b[j * ldb + p] }

    /// The portable product on `path`.
    func portable(_ path: PortablePath, accumulate: Bool) -> [Float] {
        var c = c0
        a.withUnsafeBufferPointer { a in b.withUnsafeBufferPointer { b in c.withUnsafeMutableBufferPointer { c in
            portableGEMM(transA, transB, m: m, n: n, k: k, a: a.baseAddress!, lda: lda, b: b.baseAddress!, ldb: ldb,
                         accumulate: accumulate, c: c.baseAddress!, ldc: n, path: path)
        } } }
        return c
    }

    /// The definition, written out: s = (C or 0); s = fma(op(A)[i,p], op(B)[p,j], s) for p = 0, 1, …
    func definition(_ i: Int, _ j: Int, accumulate: Bool) -> Float {
        var s: Float = accumulate ? c0[i * n + j] : 0
        for p in 0..<k { s = s.addingProduct(opA(i, p), opB(p, j)) }
        return s
    }

    /// The exact product in Double, and the rounding bound of a k-term float sum: (k + 1)·u·(|C| + Σ|a||b|).
    func reference(_ i: Int, _ j: Int, accumulate: Bool) -> (value: Double, bound: Double) {
        var s = accumulate ? Double(c0[i * n + j]) : 0, size = abs(s)
        for p in 0..<k {
            let t = Double(opA(i, p)) * Double(opB(p, j))
            s += t
            size += abs(t)
        }
        return (s, Double(k + 1) * 0x1p-24 * size + 1e-30)
    }

    /// Up to `count` (i, j) spread over C, corners included.
    func samples(_ count: Int) -> [(Int, Int)] {
        var rng = Xoshiro256(seed: UInt64(m * 7919 + n * 31 + k), stream: 5)
        return [(0, 0), (m - 1, n - 1), (0, n - 1), (m - 1, 0)]
            + (0..<count).map { _ in (Int(rng.next() % UInt64(m)), Int(rng.next() % UInt64(n))) }
    }
}

@Suite("Matrix kernels")
struct KernelTests {
    @Test("every portable path this CPU runs gives the definition's bits (one fma per term, in k order) on descent's shapes",
          arguments: [false, true])
    func pathsGiveTheDefinition(_ accumulate: Bool) {
        let paths = PortablePath.allCases.filter { $0 <= PortablePath.best }
        for (s, shape) in kernelShapes.enumerated() {
            let x = Operands(shape, seed: UInt64(s))
            let results = paths.map { x.portable($0, accumulate: accumulate) }
            for (path, c) in zip(paths, results).dropFirst() {
                #expect(c.map(\.bitPattern) == results[0].map(\.bitPattern), "\(path.name) differs from scalar on \(shape)")
            }
            for (i, j) in x.samples(64) {
                let want = x.definition(i, j, accumulate: accumulate), got = results.last![i * x.n + j]
                #expect(got.bitPattern == want.bitPattern, "\(shape) C[\(i),\(j)] = \(got), the definition gives \(want)")
            }
        }
    }

    @Test("the portable product is within the rounding bound of the exact product (Double) on descent's shapes")
    func portableMatchesDouble() {
        for (s, shape) in kernelShapes.enumerated() {
            let x = Operands(shape, seed: 100 + UInt64(s))
            for accumulate in [false, true] {
                let c = x.portable(.best, accumulate: accumulate)
                for (i, j) in x.samples(64) {
                    let r = x.reference(i, j, accumulate: accumulate)
                    #expect(abs(Double(c[i * x.n + j]) - r.value) <= r.bound, "\(shape) C[\(i),\(j)] = \(c[i * x.n + j]), exact \(r.value)")
                }
            }
        }
    }

    @Test("the native kernels (OpenBLAS, the family descent chooses for this CPU) are within the same bound",
          .enabled(if: (try? MatrixKernels.nativeGEMM(.none, .none, m: 0, n: 0, k: 0, a: [0], lda: 1, b: [0], ldb: 1,
                                                      beta: 0, c: UnsafeMutablePointer.allocate(capacity: 1), ldc: 1)) != nil,
                   "OpenBLAS (libopenblas.so.0) cannot be loaded"))
    func nativeMatchesDouble() throws {
        for (s, shape) in kernelShapes.enumerated() where shape.4 > 0 {
            let x = Operands(shape, seed: 200 + UInt64(s))
            for beta: Float in [0, 1] {
                var c = x.c0
                let choice = try c.withUnsafeMutableBufferPointer { c in
                    try MatrixKernels.nativeGEMM(x.transA, x.transB, m: x.m, n: x.n, k: x.k, a: x.a, lda: x.lda, b: x.b,
                                                 ldb: x.ldb, beta: beta, c: c.baseAddress!, ldc: x.n)
                }
                for (i, j) in x.samples(64) {
                    let r = x.reference(i, j, accumulate: beta == 1)
                    #expect(abs(Double(c[i * x.n + j]) - r.value) <= r.bound,
                            "\(choice.description): \(shape) C[\(i),\(j)] = \(c[i * x.n + j]), exact \(r.value)")
                }
            }
        }
    }

    @Test("native mode asks OpenBLAS for SkylakeX kernels on AVX-512, Haswell on AVX2 and FMA, and honours OPENBLAS_CORETYPE")
    func nativeFamilies() {
        func cpu(_ extensions: String) -> CPUDescription {
            CPUDescription(brand: "test", vendor: "GenuineIntel", family: 6, model: 207, extensions: extensions.split(separator: " ").map(String.init))
        }
        let avx512 = cpu("sse4.2 avx fma avx2 avx512f avx512dq avx512cd avx512bw avx512vl amx"), avx2 = cpu("sse4.2 avx fma avx2")
        #expect(MatrixKernels.nativeFamily(for: avx512, environment: nil).name == "SkylakeX")
        #expect(MatrixKernels.nativeFamily(for: avx2, environment: "").name == "Haswell")
        #expect(MatrixKernels.nativeFamily(for: cpu("sse4.2 avx"), environment: nil).name == nil)
        #expect(MatrixKernels.nativeFamily(for: avx512, environment: "Zen").name == "Zen")
    }

    @Test("ranks on different portable paths agree; native kernels of two kinds get one message naming the ranks, hosts and kernels")
    func conflicts() throws {
        func rank(_ r: Int, _ host: String, _ choice: KernelChoice) -> RankKernels {
            var k = RankKernels(choice, rank: r)
            k.host = host
            return k
        }
        let portable = [rank(0, "a", KernelChoice(mode: .portable, library: MatrixKernels.portableLibrary, kernels: "avx512", reason: "")),
                        rank(1, "b", KernelChoice(mode: .portable, library: MatrixKernels.portableLibrary, kernels: "avx2", reason: ""))]
        #expect(RankKernels.conflict(portable) == nil)
        let haswell = KernelChoice(mode: .native, library: "OpenBLAS 0.3.21", kernels: "Haswell", reason: "chosen from the CPU's AVX2 and FMA")
        let skylake = KernelChoice(mode: .native, library: "OpenBLAS 0.3.21", kernels: "SkylakeX", reason: "chosen from the CPU's AVX-512")
        let mixed = [rank(0, "n1", skylake), rank(1, "n1", skylake), rank(2, "n2", haswell)]
        #expect(RankKernels.conflict(Array(mixed.prefix(2))) == nil)
        let message = try #require(RankKernels.conflict(mixed))
        #expect(message.contains("ranks 0, 1 on n1: native: OpenBLAS 0.3.21, SkylakeX kernels"), "\(message)")
        #expect(message.contains("rank 2 on n2: native: OpenBLAS 0.3.21, Haswell kernels"), "\(message)")
        #expect(message.contains("runtime.kernels: portable"))
    }
}
