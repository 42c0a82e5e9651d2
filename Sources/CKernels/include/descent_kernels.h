// descent's own matrix product and the CPU facts that choose its code path.
//
// The product has one definition, whatever the code path: for every element of C,
//     s = (accumulate ? C[i,j] : 0);  for p = 0, 1, …, k−1:  s = fma(op(A)[i,p], op(B)[p,j], s);  C[i,j] = s
// — one fused multiply-add per term, in increasing p, with one rounding each. The vector paths spread the
// columns j over the lanes and never split a sum, so AVX2, AVX-512 and the scalar path give the same bits.
#pragma once
#include <stddef.h>

/// The code paths of descent_sgemm, slowest first.
enum descent_isa {
    DESCENT_ISA_SCALAR = 0,   // plain C with fmaf (any CPU)
    DESCENT_ISA_AVX2 = 1,     // 8 lanes, needs AVX2 and FMA (and the OS saving ymm registers)
    DESCENT_ISA_AVX512 = 2,   // 16 lanes, needs AVX-512F (and the OS saving zmm registers)
};

/// The fastest path this CPU and OS can run.
int descent_best_isa(void);

/// The CPU's vector extensions that matter here, as a space-separated list ("sse4.2 avx avx2 fma avx512f …"),
/// written into `out` (at most `capacity` bytes, NUL-terminated).
void descent_cpu_extensions(char *out, size_t capacity);

/// The CPU's brand string ("AMD EPYC 9R45 …") and its vendor, family and model numbers.
void descent_cpu_brand(char *out, size_t capacity);
void descent_cpu_signature(char *vendor, size_t capacity, int *family, int *model);

/// Row-major C[m×n] = op(A)[m×k] · op(B)[k×n] (+ C when `accumulate`), on path `isa` (which the CPU must run;
/// a path it cannot run falls back to the best one it can). lda, ldb, ldc are row strides as stored.
void descent_sgemm(int isa, int trans_a, int trans_b, long m, long n, long k,
                   const float *a, long lda, const float *b, long ldb, int accumulate, float *c, long ldc);
