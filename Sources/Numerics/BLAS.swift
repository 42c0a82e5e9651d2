// Matrix products through OpenBLAS's cblas_sgemm, and control of OpenBLAS's thread pool.
import CBLAS

/// Whether a matrix operand is used as stored or transposed.
public enum Transpose: Sendable {
    case none, transposed

    var cblas: CBLAS_TRANSPOSE { self == .none ? CblasNoTrans : CblasTrans }
}

/// Row-major C[m×n] = α · op(A)[m×k] · op(B)[k×n] + β · C, computed by OpenBLAS.
///
/// `lda`, `ldb`, `ldc` are the row strides of the matrices as stored.
@inline(__always)
public func gemm(
    _ transA: Transpose, _ transB: Transpose,
    m: Int, n: Int, k: Int,
    alpha: Float = 1,
    a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int,
    beta: Float,
    c: UnsafeMutablePointer<Float>, ldc: Int
) {
    guard m > 0, n > 0 else { return }
    cblas_sgemm(
        CblasRowMajor, transA.cblas, transB.cblas,
        Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc)
    )
}

/// OpenBLAS's worker-thread count for this process.
public enum BLASThreads {
    public static var count: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(max(1, newValue))) }
    }

    /// OpenBLAS's build description (version, architecture), for run reports.
    public static var configuration: String { String(cString: openblas_get_config()) }
}
