// What the CPU and the OS let descent run: CPUID's feature bits, checked against the register state the OS saves.
#include "descent_kernels.h"
#include <stdio.h>
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>

static void cpuid(unsigned leaf, unsigned sub, unsigned r[4]) {
    r[0] = r[1] = r[2] = r[3] = 0;
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
}

static unsigned max_leaf(void) {
    unsigned r[4];
    cpuid(0, 0, r);
    return r[0];
}

/// XCR0: which register files the OS saves on a context switch (0 when XGETBV is not enabled).
static unsigned long long xcr0(void) {
    unsigned r[4];
    cpuid(1, 0, r);
    if (!(r[2] & (1u << 27))) return 0;  // OSXSAVE
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

struct features {
    int sse3, ssse3, sse41, sse42, avx, f16c, fma, avx2, avx512f, avx512dq, avx512cd, avx512bw, avx512vl, avx512vnni,
        avx512bf16, amx;
};

static struct features detect(void) {
    struct features f;
    memset(&f, 0, sizeof f);
    unsigned r[4];
    cpuid(1, 0, r);
    const unsigned long long x = xcr0();
    const int ymm = (x & 0x6) == 0x6, zmm = ymm && (x & 0xe0) == 0xe0;
    f.sse3 = r[2] & 1;
    f.ssse3 = (r[2] >> 9) & 1;
    f.sse41 = (r[2] >> 19) & 1;
    f.sse42 = (r[2] >> 20) & 1;
    f.avx = ymm && ((r[2] >> 28) & 1);
    f.f16c = f.avx && ((r[2] >> 29) & 1);
    f.fma = f.avx && ((r[2] >> 12) & 1);
    if (max_leaf() >= 7) {
        cpuid(7, 0, r);
        f.avx2 = f.avx && ((r[1] >> 5) & 1);
        f.avx512f = zmm && ((r[1] >> 16) & 1);
        f.avx512dq = f.avx512f && ((r[1] >> 17) & 1);
        f.avx512cd = f.avx512f && ((r[1] >> 28) & 1);
        f.avx512bw = f.avx512f && ((r[1] >> 30) & 1);
        f.avx512vl = f.avx512f && ((r[1] >> 31) & 1);
        f.avx512vnni = f.avx512f && ((r[2] >> 11) & 1);
        f.amx = (r[3] >> 24) & 1;
        unsigned s[4];
        cpuid(7, 1, s);
        f.avx512bf16 = f.avx512f && ((s[0] >> 5) & 1);
    }
    return f;
}

int descent_best_isa(void) {
    static int best = -1;
    if (best < 0) {
        const struct features f = detect();
        best = f.avx512f ? DESCENT_ISA_AVX512 : (f.avx2 && f.fma) ? DESCENT_ISA_AVX2 : DESCENT_ISA_SCALAR;
    }
    return best;
}

void descent_cpu_extensions(char *out, size_t capacity) {
    const struct features f = detect();
    const struct { int on; const char *name; } list[] = {
        {f.sse3, "sse3"}, {f.ssse3, "ssse3"}, {f.sse41, "sse4.1"}, {f.sse42, "sse4.2"}, {f.avx, "avx"},
        {f.f16c, "f16c"}, {f.fma, "fma"}, {f.avx2, "avx2"}, {f.avx512f, "avx512f"}, {f.avx512dq, "avx512dq"},
        {f.avx512cd, "avx512cd"}, {f.avx512bw, "avx512bw"}, {f.avx512vl, "avx512vl"}, {f.avx512vnni, "avx512vnni"},
        {f.avx512bf16, "avx512bf16"}, {f.amx, "amx"},
    };
    size_t used = 0;
    if (capacity) out[0] = 0;
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++) {
        if (!list[i].on) continue;
        const int w = snprintf(out + used, capacity - used, "%s%s", used ? " " : "", list[i].name);
        if (w < 0 || (size_t)w >= capacity - used) break;
        used += (size_t)w;
    }
}

void descent_cpu_brand(char *out, size_t capacity) {
    unsigned r[4];
    char brand[49];
    memset(brand, 0, sizeof brand);
    cpuid(0x80000000u, 0, r);
    if (r[0] >= 0x80000004u) {
        for (unsigned i = 0; i < 3; i++) {
            cpuid(0x80000002u + i, 0, r);
            memcpy(brand + 16 * i, r, 16);
        }
    }
    const char *s = brand;
    while (*s == ' ') s++;
    snprintf(out, capacity, "%s", *s ? s : "unknown x86-64");
    // Trailing blanks, which some brand strings carry.
    for (size_t n = strlen(out); n > 0 && out[n - 1] == ' '; n--) out[n - 1] = 0;
}

void descent_cpu_signature(char *vendor, size_t capacity, int *family, int *model) {
    unsigned r[4];
    cpuid(0, 0, r);
    char v[13];
    memcpy(v, &r[1], 4);
    memcpy(v + 4, &r[3], 4);
    memcpy(v + 8, &r[2], 4);
    v[12] = 0;
    snprintf(vendor, capacity, "%s", v);
    cpuid(1, 0, r);
    const int base = (r[0] >> 8) & 0xf, ext = (r[0] >> 20) & 0xff;
    *family = base == 0xf ? base + ext : base;
    const int m = (r[0] >> 4) & 0xf, extm = (r[0] >> 16) & 0xf;
    *model = (base == 0x6 || base == 0xf) ? (extm << 4) | m : m;
}
#else
// Other architectures: the scalar path (fmaf), which gives the same bits by definition.
int descent_best_isa(void) { return DESCENT_ISA_SCALAR; }
void descent_cpu_extensions(char *out, size_t capacity) { snprintf(out, capacity, "%s", ""); }
void descent_cpu_brand(char *out, size_t capacity) { snprintf(out, capacity, "%s", "unknown (not x86-64)"); }
void descent_cpu_signature(char *vendor, size_t capacity, int *family, int *model) {
    snprintf(vendor, capacity, "%s", "unknown");
    *family = 0;
    *model = 0;
}
#endif
