// descent_sgemm: a blocked matrix product whose bits do not depend on the vector width (see the header).
//
// Blocking follows the usual GotoBLAS/BLIS shape — k in blocks of KC, columns in blocks of NC, rows in blocks of
// MC, then an MR×NR register tile — but the k blocks only *continue* each element's chain (the tile is stored
// after one block and loaded before the next), so the blocking never changes a sum.
// op(A) is read in place; so is op(B) when its rows are contiguous, and it is packed into NR-column panels otherwise.
// Edges are masked loads and stores of the same tiles.
#include "descent_kernels.h"
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

enum { KC = 256, MC = 96, NC = 128 };

static pthread_key_t packed_key;
static pthread_once_t packed_once = PTHREAD_ONCE_INIT;
static void make_packed_key(void) { pthread_key_create(&packed_key, free); }

/// The buffer for a packed block of op(B) (KC × NC) and one of op(A) (MC × KC): one per thread (ranks may be threads in tests), allocated on the
/// thread's first product and freed when it ends; NULL when memory is short (the caller then takes the scalar path).
static float *packed_block(void) {
    pthread_once(&packed_once, make_packed_key);
    float *p = pthread_getspecific(packed_key);
    if (!p && (p = aligned_alloc(64, (KC * NC + KC * MC) * sizeof(float)))) pthread_setspecific(packed_key, p);
    return p;
}

typedef void (*tile_kernel)(long kb, const float *a, long rs, long cs, const float *bp, long bs, float *c, long ldc, int load,
                            long rows, long cols);

static inline float at(const float *x, long ld, int trans, long row, long col) {
    return trans ? x[col * ld + row] : x[row * ld + col];
}

// MARK: the scalar path (also the definition the vector paths must match bit for bit)

static void sgemm_scalar(int ta, int tb, long m, long n, long k, const float *a, long lda, const float *b, long ldb,
                         int accumulate, float *c, long ldc) {
    for (long i = 0; i < m; i++) {
        float *row = c + i * ldc;
        if (!accumulate) memset(row, 0, (size_t)n * sizeof(float));
        for (long p = 0; p < k; p++) {
            const float x = at(a, lda, ta, i, p);
            for (long j = 0; j < n; j++) row[j] = fmaf(x, at(b, ldb, tb, p, j), row[j]);
        }
    }
}

// MARK: register tiles
//
// A tile kernel computes MR rows × NR columns: op(A)[r, p] is a[r·rs + p·cs] (read in place, never packed), row p of
// op(B) starts `bs` floats after row p−1, and the sums start from C (`load`) or zero. Only `rows` rows and `cols`
// columns are read from op(A), B and C and written back (rows past the edge repeat row 0 and are never stored;
// columns are masked loads and stores), so no edge is copied.

#if defined(__x86_64__)
// AVX-512: 8 rows × 32 columns (two zmm per row, 16 accumulators), or × 16 columns (one zmm) at a right edge.
#define FMA512(r, n) c##r##n = _mm512_fmadd_ps(_mm512_set1_ps(ap[o##r]), b##n, c##r##n);
#define LOAD512(r, n, mask)                                                                                            \
    __m512 c##r##n = load && r < rows ? _mm512_maskz_loadu_ps(mask, c + r * ldc + 16 * n) : _mm512_setzero_ps();
#define STORE512(r, n, mask)                                                                                           \
    if (r < rows) _mm512_mask_storeu_ps(c + r * ldc + 16 * n, mask, c##r##n);
#define EACH_ROW8(X, n, m) X(0, n, m) X(1, n, m) X(2, n, m) X(3, n, m) X(4, n, m) X(5, n, m) X(6, n, m) X(7, n, m)
#define FMA_ROWS8(n) FMA512(0, n) FMA512(1, n) FMA512(2, n) FMA512(3, n) FMA512(4, n) FMA512(5, n) FMA512(6, n) FMA512(7, n)

/// A tile's k loop, the one order of its additions: `loads` fetch row p of the op(B) panel into b0 (and b1), and
/// `fmas` add a[i][p] · b[p][:] to every accumulator, for p = 0 ..< kb.
#define K_LOOP(loads, fmas)                                                                                            \
    for (long p = 0; p < kb; p++) {                                                                                    \
        loads fmas ap += cs;                                                                                           \
        bp += bs;                                                                                                      \
    }

/// The offsets of rows 0 ..< count of op(A), rows past `rows` at row 0's.
#define ROW_OFFSETS(count)                                                                                             \
    long o[count];                                                                                                     \
    for (long r = 0; r < count; r++) o[r] = r < rows ? r * rs : 0;

__attribute__((target("avx512f"))) static void tile_avx512(long kb, const float *a, long rs, long cs, const float *bp,
                                                            long bs, float *c, long ldc, int load, long rows, long cols) {
    ROW_OFFSETS(8)
    const long o0 = o[0], o1 = o[1], o2 = o[2], o3 = o[3], o4 = o[4], o5 = o[5], o6 = o[6], o7 = o[7];
    const float *ap = a;
    const __mmask16 m0 = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1);
    if (cols > 16) {
        const __mmask16 m1 = cols >= 32 ? 0xffff : (__mmask16)((1u << (cols - 16)) - 1);
        EACH_ROW8(LOAD512, 0, m0) EACH_ROW8(LOAD512, 1, m1)
        K_LOOP(const __m512 b0 = _mm512_maskz_loadu_ps(m0, bp); const __m512 b1 = _mm512_maskz_loadu_ps(m1, bp + 16);,
               FMA_ROWS8(0) FMA_ROWS8(1))
        EACH_ROW8(STORE512, 0, m0) EACH_ROW8(STORE512, 1, m1)
    } else {
        EACH_ROW8(LOAD512, 0, m0)
        K_LOOP(const __m512 b0 = _mm512_maskz_loadu_ps(m0, bp);, FMA_ROWS8(0))
        EACH_ROW8(STORE512, 0, m0)
    }
}

// AVX2 + FMA: 6 rows × 16 columns (two ymm per row, 12 accumulators), or × 8 columns (one ymm) at a right edge.
#define FMA256(r, n) c##r##n = _mm256_fmadd_ps(_mm256_broadcast_ss(ap + o##r), b##n, c##r##n);
#define LOAD256(r, n, mask)                                                                                            \
    __m256 c##r##n = load && r < rows ? _mm256_maskload_ps(c + r * ldc + 8 * n, mask) : _mm256_setzero_ps();
#define STORE256(r, n, mask)                                                                                           \
    if (r < rows) _mm256_maskstore_ps(c + r * ldc + 8 * n, mask, c##r##n);
// Whole rows of a tile: plain loads and stores (AVX2's masked stores are slow on AMD's CPUs).
#define LOAD256_WHOLE(r, n, unused)                                                                                    \
    __m256 c##r##n = load && r < rows ? _mm256_loadu_ps(c + r * ldc + 8 * n) : _mm256_setzero_ps();
#define STORE256_WHOLE(r, n, unused)                                                                                   \
    if (r < rows) _mm256_storeu_ps(c + r * ldc + 8 * n, c##r##n);
#define EACH_ROW6(X, n, m) X(0, n, m) X(1, n, m) X(2, n, m) X(3, n, m) X(4, n, m) X(5, n, m)
#define FMA_ROWS6(n) FMA256(0, n) FMA256(1, n) FMA256(2, n) FMA256(3, n) FMA256(4, n) FMA256(5, n)
/// Both halves of row r from one broadcast (16 ymm registers hold no more than one live broadcast).
#define FMA256_ROW(r)                                                                                                  \
    {                                                                                                                  \
        const __m256 x = _mm256_broadcast_ss(ap + o##r);                                                               \
        c##r##0 = _mm256_fmadd_ps(x, b0, c##r##0);                                                                     \
        c##r##1 = _mm256_fmadd_ps(x, b1, c##r##1);                                                                     \
    }
#define FMA_BOTH6 FMA256_ROW(0) FMA256_ROW(1) FMA256_ROW(2) FMA256_ROW(3) FMA256_ROW(4) FMA256_ROW(5)

/// Lanes 0 ..< count set (count clamped to 0…8), as AVX2's masked loads and stores want them.
__attribute__((target("avx2,fma"))) static __m256i lanes256(long count) {
    const __m256i index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(count < 0 ? 0 : count > 8 ? 8 : count)), index);
}

/// op(B) comes packed (`pack_all`): whole 16-column panel rows, zero past the matrix, so B is read with plain loads
/// at every edge; only C's edge columns are masked.
__attribute__((target("avx2,fma"))) static void tile_avx2(long kb, const float *a, long rs, long cs, const float *bp,
                                                           long bs, float *c, long ldc, int load, long rows, long cols) {
    ROW_OFFSETS(6)
    const long o0 = o[0], o1 = o[1], o2 = o[2], o3 = o[3], o4 = o[4], o5 = o[5];
    const float *ap = a;
    const __m256i m0 = lanes256(cols);
    if (cols == 16) {
        EACH_ROW6(LOAD256_WHOLE, 0, _) EACH_ROW6(LOAD256_WHOLE, 1, _)
        K_LOOP(const __m256 b0 = _mm256_load_ps(bp); const __m256 b1 = _mm256_load_ps(bp + 8);, FMA_BOTH6)
        EACH_ROW6(STORE256_WHOLE, 0, _) EACH_ROW6(STORE256_WHOLE, 1, _)
    } else if (cols > 8) {
        const __m256i m1 = lanes256(cols - 8);
        EACH_ROW6(LOAD256, 0, m0) EACH_ROW6(LOAD256, 1, m1)
        K_LOOP(const __m256 b0 = _mm256_load_ps(bp); const __m256 b1 = _mm256_load_ps(bp + 8);, FMA_BOTH6)
        EACH_ROW6(STORE256, 0, m0) EACH_ROW6(STORE256, 1, m1)
    } else {
        EACH_ROW6(LOAD256, 0, m0)
        K_LOOP(const __m256 b0 = _mm256_load_ps(bp);, FMA_ROWS6(0))
        EACH_ROW6(STORE256, 0, m0)
    }
}
#endif

// MARK: packing

#if defined(__x86_64__)
/// dst[i][j] = src[j][i] for an 8 × 8 block (row strides lds and ldd).
__attribute__((target("avx"))) static void transpose8(const float *src, long lds, float *dst, long ldd) {
    const __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + lds), r2 = _mm256_loadu_ps(src + 2 * lds),
                 r3 = _mm256_loadu_ps(src + 3 * lds), r4 = _mm256_loadu_ps(src + 4 * lds),
                 r5 = _mm256_loadu_ps(src + 5 * lds), r6 = _mm256_loadu_ps(src + 6 * lds),
                 r7 = _mm256_loadu_ps(src + 7 * lds);
    const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
                 t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
                 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xee),
                 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xee),
                 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xee),
                 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xee);
    _mm256_storeu_ps(dst, _mm256_permute2f128_ps(s0, s4, 0x20));
    _mm256_storeu_ps(dst + ldd, _mm256_permute2f128_ps(s1, s5, 0x20));
    _mm256_storeu_ps(dst + 2 * ldd, _mm256_permute2f128_ps(s2, s6, 0x20));
    _mm256_storeu_ps(dst + 3 * ldd, _mm256_permute2f128_ps(s3, s7, 0x20));
    _mm256_storeu_ps(dst + 4 * ldd, _mm256_permute2f128_ps(s0, s4, 0x31));
    _mm256_storeu_ps(dst + 5 * ldd, _mm256_permute2f128_ps(s1, s5, 0x31));
    _mm256_storeu_ps(dst + 6 * ldd, _mm256_permute2f128_ps(s2, s6, 0x31));
    _mm256_storeu_ps(dst + 7 * ldd, _mm256_permute2f128_ps(s3, s7, 0x31));
}
#endif

/// op(B)[p0 ..< p0+kb, j0 ..< j0+nb] for a transposed B (op(B)[p, j] = b[j, p]) as NR-column panels: element (p, c)
/// of a panel at p·NR + c; columns past the matrix are zeros. Reads B along its rows as stored.
static void pack_b(const float *b, long ldb, long p0, long kb, long j0, long nb, int nr, float *out) {
    for (long q = 0; q < nb; q += nr) {
        const long cols = nb - q < nr ? nb - q : nr;
        long col = 0;
#if defined(__x86_64__)
        // Whole 8 × 8 blocks through registers (the blocked paths run only where AVX is).
        for (; col + 8 <= cols; col += 8) {
            const float *src = b + (j0 + q + col) * ldb + p0;
            long p = 0;
            for (; p + 8 <= kb; p += 8) transpose8(src + p, ldb, out + p * nr + col, nr);
            for (; p < kb; p++) {
                for (long c = 0; c < 8; c++) out[p * nr + col + c] = src[c * ldb + p];
            }
        }
#endif
        for (; col < nr; col++) {
            if (col < cols) {
                const float *src = b + (j0 + q + col) * ldb + p0;
                for (long p = 0; p < kb; p++) out[p * nr + col] = src[p];
            } else {
                for (long p = 0; p < kb; p++) out[p * nr + col] = 0;
            }
        }
        out += kb * nr;
    }
}

/// op(B)[p0 ..< p0+kb, j0 ..< j0+nb] for an untransposed B as NR-column panels, laid out as `pack_b` lays them:
/// one aligned, contiguous stream per panel instead of kb rows ldb apart; columns past the matrix are zeros.
static void pack_b_rows(const float *b, long ldb, long p0, long kb, long j0, long nb, int nr, float *out) {
    // Row by row of B (one sequential read each), out to every panel.
    for (long p = 0; p < kb; p++) {
        const float *src = b + (p0 + p) * ldb + j0;
        for (long q = 0; q < nb; q += nr) {
            const long cols = nb - q < nr ? nb - q : nr;
            float *dst = out + q / nr * kb * nr + p * nr;
            if (cols == 16 && nr == 16) {  // the whole panels of the AVX2 path: one 64-byte row, a few vector moves
                memcpy(dst, src + q, 16 * sizeof(float));
            } else {
                for (long c = 0; c < nr; c++) dst[c] = c < cols ? src[q + c] : 0;
            }
        }
    }
}

/// op(A)[i0 ..< i0+mb, p0 ..< p0+kb] as MR-row panels: element (r, p) of a panel at p·MR + r, so that a tile reads
/// one contiguous stream; rows past the block are zeros (computed, never stored).
static void pack_a(const float *a, long lda, int ta, long i0, long mb, long p0, long kb, int mr, float *out) {
    for (long t = 0; t < mb; t += mr) {
        const long rows = mb - t < mr ? mb - t : mr;
        if (ta) {  // op(A)'s rows are A's columns: each p reads `rows` neighbours
            for (long p = 0; p < kb; p++) {
                const float *src = a + (p0 + p) * lda + i0 + t;
                if (rows == 6 && mr == 6) {
                    memcpy(out + p * 6, src, 6 * sizeof(float));  // the AVX2 path's whole panels, inlined
                } else {
                    for (long r = 0; r < mr; r++) out[p * mr + r] = r < rows ? src[r] : 0;
                }
            }
        } else {  // each row read along k
            for (long r = 0; r < mr; r++) {
                const float *src = a + (i0 + t + r) * lda + p0;
                for (long p = 0; p < kb; p++) out[p * mr + r] = r < rows ? src[p] : 0;
            }
        }
        out += kb * mr;
    }
}

// MARK: the blocked driver

/// `pack_all`: op(B) is packed even when its rows are B's rows (the tiles then read whole, zero-padded panel rows),
/// and op(A) is packed too (a tile's rows as one stream: what a 32 KiB L1 needs for the wide products).
static void sgemm_blocked(tile_kernel kernel, int mr, int nr, int pack_all, int ta, int tb, long m, long n, long k,
                          const float *a, long lda, const float *b, long ldb, int accumulate, float *c, long ldc) {
    const int pack = tb || pack_all;
    float *packed_b = pack ? packed_block() : NULL;
    if (pack && !packed_b) {
        sgemm_scalar(ta, tb, m, n, k, a, lda, b, ldb, accumulate, c, ldc);
        return;
    }
    for (long pc = 0; pc < k; pc += KC) {
        const long kb = k - pc < KC ? k - pc : KC;
        const int load = accumulate || pc > 0;
        for (long jc = 0; jc < n; jc += NC) {
            const long nb = n - jc < NC ? n - jc : NC;
            if (tb) pack_b(b, ldb, pc, kb, jc, nb, nr, packed_b);
            else if (pack) pack_b_rows(b, ldb, pc, kb, jc, nb, nr, packed_b);
            for (long ic = 0; ic < m; ic += MC) {
                const long mb = m - ic < MC ? m - ic : MC;
                float *packed_a = pack_all && ta ? packed_b + KC * NC : NULL;
                if (packed_a) pack_a(a, lda, ta, ic, mb, pc, kb, mr, packed_a);
                for (long jr = 0; jr < nb; jr += nr) {
                    const long cols = nb - jr < nr ? nb - jr : nr;
                    // op(B)'s rows in place when they are B's rows; otherwise the packed panel.
                    const float *bp = pack ? packed_b + jr / nr * kb * nr : b + pc * ldb + jc + jr;
                    const long bs = pack ? nr : ldb;
                    for (long ir = 0; ir < mb; ir += mr) {
                        const long rows = mb - ir < mr ? mb - ir : mr;
                        const long i = ic + ir;
                        if (packed_a) {
                            kernel(kb, packed_a + ir / mr * kb * mr, 1, mr, bp, bs, c + i * ldc + jc + jr, ldc, load, rows, cols);
                            continue;
                        }
                        const float *ap = ta ? a + pc * lda + i : a + i * lda + pc;
                        kernel(kb, ap, ta ? 1 : lda, ta ? lda : 1, bp, bs, c + i * ldc + jc + jr, ldc, load, rows, cols);
                    }
                }
            }
        }
    }
}

void descent_sgemm(int isa, int trans_a, int trans_b, long m, long n, long k, const float *a, long lda, const float *b,
                   long ldb, int accumulate, float *c, long ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        if (!accumulate) {
            for (long i = 0; i < m; i++) memset(c + i * ldc, 0, (size_t)n * sizeof(float));
        }
        return;
    }
    const int best = descent_best_isa();
    if (isa > best) isa = best;
#if defined(__x86_64__)
    if (isa == DESCENT_ISA_AVX512) {
        sgemm_blocked(tile_avx512, 8, 32, 0, trans_a, trans_b, m, n, k, a, lda, b, ldb, accumulate, c, ldc);
        return;
    }
    if (isa == DESCENT_ISA_AVX2) {
        sgemm_blocked(tile_avx2, 6, 16, 1, trans_a, trans_b, m, n, k, a, lda, b, ldb, accumulate, c, ldc);
        return;
    }
#endif
    sgemm_scalar(trans_a, trans_b, m, n, k, a, lda, b, ldb, accumulate, c, ldc);
}
