// Matrix products, on kernels descent chooses: its own portable ones (the same bits on every x86-64 CPU with AVX2
// and FMA, at any vector width) or OpenBLAS's fastest for this CPU (native), never a library's generic fallback.
// The choice is made once per process (`runtime.kernels`), and what a rank computes with is a value the ranks
// compare before step 0.
import CKernels
#if canImport(Glibc)
import Glibc
#endif

/// Whether a matrix operand is used as stored or transposed.
public enum Transpose: Sendable {
    case none, transposed
}

/// Which kernels compute the matrix products (`runtime.kernels`).
public enum KernelMode: String, CaseIterable, Sendable, Codable {
    /// descent's own product: one fused multiply-add per term in a fixed order, whatever the vector width.
    case portable
    /// OpenBLAS, with the fastest kernel family this CPU runs; its bits belong to that family.
    case native
}

/// A code path of descent's portable product; every path gives the same bits.
public enum PortablePath: Int32, CaseIterable, Sendable {
    case scalar = 0, avx2 = 1, avx512 = 2

    public var name: String { ["scalar", "avx2", "avx512"][Int(rawValue)] }

    /// The fastest path this CPU and OS run.
    public static let best = PortablePath(rawValue: descent_best_isa()) ?? .scalar

    /// `DESCENT_PORTABLE_PATH` (scalar, avx2, avx512): a slower path than the best, to see that every path gives the
    /// same bits on this machine; nil when unset.
    public static func forced() throws -> PortablePath? {
        guard let text = getenv("DESCENT_PORTABLE_PATH").map({ String(cString: $0) }), !text.isEmpty else { return nil }
        guard let path = allCases.first(where: { $0.name == text }) else {
            throw KernelError(description: "DESCENT_PORTABLE_PATH: expected one of "
                              + allCases.map(\.name).joined(separator: ", ") + ", found '\(text)'")
        }
        return path
    }
}

/// The CPU this process runs on, as CPUID tells it.
public struct CPUDescription: Sendable, Equatable {
    public var brand: String
    public var vendor: String
    public var family: Int
    public var model: Int
    /// The vector extensions that the CPU has and the OS enables ("avx2", "fma", "avx512f", …).
    public var extensions: [String]

    public static let current: CPUDescription = {
        var text = [CChar](repeating: 0, count: 512), vendor = [CChar](repeating: 0, count: 32)
        var family: Int32 = 0, model: Int32 = 0
        descent_cpu_brand(&text, text.count)
        let brand = String(cString: text)
        descent_cpu_extensions(&text, text.count)
        let extensions = String(cString: text).split(separator: " ").map(String.init)
        descent_cpu_signature(&vendor, vendor.count, &family, &model)
        return CPUDescription(brand: brand, vendor: String(cString: vendor), family: Int(family), model: Int(model),
                              extensions: extensions)
    }()

    /// "AMD EPYC 9R45 (AuthenticAMD family 26 model 2)"
    public var description: String { "\(brand) (\(vendor) family \(family) model \(model))" }

    public init(brand: String, vendor: String, family: Int, model: Int, extensions: [String]) {
        (self.brand, self.vendor, self.family, self.model, self.extensions) = (brand, vendor, family, model, extensions)
    }

    public func has(_ names: String...) -> Bool { names.allSatisfy(extensions.contains) }
}

/// What one process computes its matrix products with.
public struct KernelChoice: Sendable, Equatable, Codable {
    public init(mode: KernelMode, library: String, kernels: String, reason: String) {
        (self.mode, self.library, self.kernels, self.reason) = (mode, library, kernels, reason)
    }


    public var mode: KernelMode
    /// The library and its version: "descent gemm 1" or "OpenBLAS 0.3.21".
    public var library: String
    /// The kernel family in use: the portable path (avx512, avx2, scalar) or OpenBLAS's core name (SkylakeX, …).
    public var kernels: String
    /// How the kernels were chosen.
    public var reason: String

    /// What the bits of a product depend on: processes with equal `bits` compute equal products. Every portable path
    /// gives the same bits; a native product's belong to its library and kernel family.
    public var bits: String { mode == .portable ? "portable (\(MatrixKernels.portableLibrary))" : "native \(library) \(kernels)" }

    /// "portable: descent gemm 1, avx512 path" or "native: OpenBLAS 0.3.21, SkylakeX kernels (chosen from the CPU's AVX-512)"
    public var description: String {
        mode == .portable ? "portable: \(library), \(kernels) path" : "native: \(library), \(kernels) kernels (\(reason))"
    }
}

/// A kernel choice that cannot be honoured (no OpenBLAS to load, for instance).
public struct KernelError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// The process's matrix kernels: chosen once, before any product, by `use(_:)`; portable until then.
public enum MatrixKernels {
    /// The portable product's name and version: the version changes only with its definition (and so its bits).
    public static let portableLibrary = "descent gemm 1"

    nonisolated(unsafe) static var openBLAS: OpenBLAS?
    nonisolated(unsafe) static var path = PortablePath.best
    nonisolated(unsafe) public private(set) static var choice = portableChoice(PortablePath.best)

    static func portableChoice(_ path: PortablePath) -> KernelChoice {
        KernelChoice(mode: .portable, library: portableLibrary, kernels: path.name,
                     reason: path == PortablePath.best ? "the fastest path of this CPU" : "DESCENT_PORTABLE_PATH=\(path.name)")
    }

    /// Makes `mode` the process's kernels and returns what it chose. Native loads OpenBLAS once (the library picks
    /// its kernels when it loads, so a later call cannot change them); portable takes `path` or the fastest one.
    @discardableResult
    public static func use(_ mode: KernelMode, portablePath: PortablePath? = nil) throws -> KernelChoice {
        // One process is one rank, but tests run several ranks as threads of one process, each choosing the same
        // kernels: the choice is made under a lock, and written only when it changes.
        pthread_mutex_lock(&choosing)
        defer { pthread_mutex_unlock(&choosing) }
        switch mode {
        case .portable:
            let chosen = min(try portablePath ?? PortablePath.forced() ?? .best, .best)
            if openBLAS != nil || path != chosen || choice.mode != .portable {
                (openBLAS, path, choice) = (nil, chosen, portableChoice(chosen))
            }
        case .native:
            let blas = try OpenBLAS.shared()
            if openBLAS == nil || choice.mode != .native {
                openBLAS = blas
                choice = KernelChoice(mode: .native, library: blas.version, kernels: blas.coreName, reason: blas.reason)
            }
        }
        return choice
    }

    nonisolated(unsafe) private static var choosing = pthread_mutex_t()

    /// Worker threads per product: OpenBLAS's pool in native mode; the portable product runs on the calling thread.
    public static var threads: Int {
        get { openBLAS.map { Int($0.getThreads()) } ?? 1 }
        set { openBLAS?.setThreads(Int32(max(1, newValue))) }
    }
}

extension PortablePath: Comparable {
    public static func < (a: PortablePath, b: PortablePath) -> Bool { a.rawValue < b.rawValue }
}

/// Row-major C[m×n] = op(A)[m×k] · op(B)[k×n] (β 0), or C + op(A) · op(B) (β 1), on the process's kernels.
///
/// `lda`, `ldb`, `ldc` are the row strides of the matrices as stored.
@inline(__always)
public func gemm(
    _ transA: Transpose, _ transB: Transpose,
    m: Int, n: Int, k: Int,
    a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int,
    beta: Float,
    c: UnsafeMutablePointer<Float>, ldc: Int
) {
    guard m > 0, n > 0 else { return }
    if let blas = MatrixKernels.openBLAS {
        blas.sgemm(101, transA == .none ? 111 : 112, transB == .none ? 111 : 112, Int32(m), Int32(n), Int32(k), 1,
                   a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    } else {
        portableGEMM(transA, transB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, accumulate: beta != 0,
                     c: c, ldc: ldc, path: MatrixKernels.path)
    }
}

/// descent's portable product on a given path (tests compare the paths bit for bit): every element of C is
/// `fma(op(A)[i,k−1], op(B)[k−1,j], … fma(op(A)[i,0], op(B)[0,j], C₀))`, C₀ = C with `accumulate`, else 0.
@inline(__always)
public func portableGEMM(
    _ transA: Transpose, _ transB: Transpose, m: Int, n: Int, k: Int,
    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    accumulate: Bool, c: UnsafeMutablePointer<Float>, ldc: Int, path: PortablePath
) {
    descent_sgemm(path.rawValue, transA == .none ? 0 : 1, transB == .none ? 0 : 1, m, n, k, a, lda, b, ldb,
                  accumulate ? 1 : 0, c, ldc)
}

extension MatrixKernels {
    /// The OpenBLAS kernel family native mode asks for on `cpu` (nil: the library's own choice), and why.
    public static func nativeFamily(for cpu: CPUDescription, environment: String?) -> (name: String?, reason: String) {
        OpenBLAS.family(for: cpu, environment: environment)
    }

    /// OpenBLAS's product as native mode loads it, without making it the process's kernels (tests hold it against a
    /// reference); C = op(A) · op(B) + β · C.
    /// Loads OpenBLAS now (when it can be), so that its one change of the environment is over before this process
    /// starts other programs from other threads.
    public static func loadNative() { _ = try? OpenBLAS.shared() }

    public static func nativeGEMM(
        _ transA: Transpose, _ transB: Transpose, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) throws -> KernelChoice {
        let blas = try OpenBLAS.shared()
        blas.sgemm(101, transA == .none ? 111 : 112, transB == .none ? 111 : 112, Int32(m), Int32(n), Int32(k), 1,
                   a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        return KernelChoice(mode: .native, library: blas.version, kernels: blas.coreName, reason: blas.reason)
    }
}

extension MatrixKernels {
    /// The process's kernels held against the exact product (Double) on the default MLP's products (chunks of 64):
    /// the largest error as a fraction of the rounding bound (k + 1)·u·Σ|a·b| over sampled elements. Above 1 the
    /// kernels compute wrongly on this CPU.
    public static func checkAgainstDouble() -> Double {
        let shapes: [(Transpose, Transpose, Int, Int, Int)] = [(.none, .none, 64, 100, 784), (.transposed, .none, 784, 100, 64),
                                                               (.none, .transposed, 64, 784, 100), (.none, .none, 64, 10, 100)]
        var rng = Xoshiro256(seed: 3, stream: 0xD0C)
        var worst = 0.0
        for (ta, tb, m, n, k) in shapes {
            let a = (0..<(m * k)).map { _ in Float(rng.nextGaussian()) }, b = (0..<(k * n)).map { _ in Float(rng.nextGaussian()) }
            let lda = ta == .none ? k : m, ldb = tb == .none ? n : k
            var c = [Float](repeating: 0, count: m * n)
            c.withUnsafeMutableBufferPointer { gemm(ta, tb, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, beta: 0, c: $0.baseAddress!, ldc: n) }
            for _ in 0..<256 {
                let i = Int(rng.next() % UInt64(m)), j = Int(rng.next() % UInt64(n))
                var exact = 0.0, size = 0.0
                for p in 0..<k {
                    let t = Double(ta == .none ? a[i * lda + p] : a[p * lda + i]) * Double(tb == .none ? b[p * ldb + j] : b[j * ldb + p])
                    exact += t
                    size += abs(t)
                }
                worst = max(worst, abs(Double(c[i * n + j]) - exact) / (Double(k + 1) * 0x1p-24 * size + 1e-30))
            }
        }
        return worst
    }
}

/// OpenBLAS, loaded at run time (so that descent, not the library's CPU detection, decides its kernel family).
struct OpenBLAS: @unchecked Sendable {
    typealias SGEMM = @convention(c) (Int32, Int32, Int32, Int32, Int32, Int32, Float, UnsafePointer<Float>?, Int32,
                                      UnsafePointer<Float>?, Int32, Float, UnsafeMutablePointer<Float>?, Int32) -> Void
    let sgemm: SGEMM
    let setThreads: @convention(c) (Int32) -> Void
    let getThreads: @convention(c) () -> Int32
    let version: String
    let coreName: String
    let reason: String

    /// The library's file name: Debian's libopenblas-dev and libopenblas0 provide it.
    static let file = "libopenblas.so.0"

    /// The kernel family to ask for on `cpu`: the fastest one that runs correctly on it, whether the library knows
    /// the CPU or not; OPENBLAS_CORETYPE, when set, is honoured (the ranks still compare what they got).
    static func family(for cpu: CPUDescription, environment: String?) -> (name: String?, reason: String) {
        if let environment, !environment.isEmpty { return (environment, "OPENBLAS_CORETYPE=\(environment)") }
        if cpu.has("avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl") { return ("SkylakeX", "chosen from the CPU's AVX-512") }
        if cpu.has("avx2", "fma") { return ("Haswell", "chosen from the CPU's AVX2 and FMA") }
        return (nil, "the library's own choice: the CPU has no AVX2")
    }

    /// The one load of this process, or why it failed (the library picks its kernels once, when it loads).
    nonisolated(unsafe) private static var loaded: Result<OpenBLAS, Error>?
    nonisolated(unsafe) private static var loading: pthread_mutex_t = {
        var m = pthread_mutex_t()
        pthread_mutex_init(&m, nil)
        return m
    }()

    /// The library, loaded on first use. The load sets OPENBLAS_CORETYPE, and changing the environment races with
    /// any thread that reads it (a process being spawned): a process that spawns others loads it first.
    static func shared() throws -> OpenBLAS {
        pthread_mutex_lock(&loading)
        defer { pthread_mutex_unlock(&loading) }
        if loaded == nil { loaded = Result { try load() } }
        return try loaded!.get()
    }

    private static func load() throws -> OpenBLAS {
        let environment = getenv("OPENBLAS_CORETYPE").map { String(cString: $0) }
        let (family, reason) = Self.family(for: .current, environment: environment)
        if let family { setenv("OPENBLAS_CORETYPE", family, 1) }
        guard let handle = dlopen(file, RTLD_NOW | RTLD_LOCAL) else {
            let why = dlerror().map { String(cString: $0) } ?? "unknown"
            throw KernelError(description: "runtime.kernels: native needs OpenBLAS (\(file), Debian's libopenblas0): \(why); "
                              + "use runtime.kernels: portable, or install libopenblas-dev")
        }
        func symbol<T>(_ name: String, as type: T.Type) throws -> T {
            guard let p = dlsym(handle, name) else {
                throw KernelError(description: "runtime.kernels: native: \(file) has no \(name)")
            }
            return unsafeBitCast(p, to: type)
        }
        typealias Text = @convention(c) () -> UnsafePointer<CChar>?
        let config = try symbol("openblas_get_config", as: Text.self)().map { String(cString: $0) } ?? "OpenBLAS"
        let core = try symbol("openblas_get_corename", as: Text.self)().map { String(cString: $0) } ?? "unknown"
        // "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH …" → "OpenBLAS 0.3.21"
        let version = config.split(separator: " ").prefix(2).joined(separator: " ")
        return OpenBLAS(sgemm: try symbol("cblas_sgemm", as: SGEMM.self),
                        setThreads: try symbol("openblas_set_num_threads", as: (@convention(c) (Int32) -> Void).self),
                        getThreads: try symbol("openblas_get_num_threads", as: (@convention(c) () -> Int32).self),
                        version: version, coreName: core, reason: reason)
    }
}
