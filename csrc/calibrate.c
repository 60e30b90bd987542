/* FMA-throughput calibration loop: see calibrate.h. */
#include "calibrate.h"

#include "cpu_features.h"

#ifdef _OPENMP
#include <omp.h>
#endif
#if CF_HAVE_X86_DISPATCH
#include <immintrin.h>
#endif
#if CF_HAVE_NEON
#include <arm_neon.h>
#endif

/* As many independent chains as the register file holds with the two
 * constants beside them, so the loop never spills: 30 of AVX-512's 32 zmm,
 * 14 of AVX2's 16 ymm (and of the 16 xmm the scalar loop uses). With 4 cycles
 * of FMA latency and 2 FMA units, 8 chains keep a core busy; the rest hides
 * a slower FMA unit or clock. The chain counts are in the FLOP count. */
#define CF_CHAINS_AVX512 30
#define CF_CHAINS_AVX2 14
#define CF_CHAINS_NEON 30 /* of 32 q registers */
#define CF_CHAINS_SCALAR 14

/* Each step: c[i] = c[i] * m + a, which stays finite (m just above 1, a
 * tiny) for any step count a benchmark runs; the sum returned keeps the
 * compiler from dropping the loop. */
static float fma_scalar(int64_t iters)
{
    float c[CF_CHAINS_SCALAR];
    for (int i = 0; i < CF_CHAINS_SCALAR; i++)
        c[i] = (float)i;
    for (int64_t k = 0; k < iters; k++)
        for (int i = 0; i < CF_CHAINS_SCALAR; i++)
            c[i] = c[i] * 1.0000001f + 1e-9f;
    float s = 0;
    for (int i = 0; i < CF_CHAINS_SCALAR; i++)
        s += c[i];
    return s;
}

#if CF_HAVE_X86_DISPATCH || CF_HAVE_NEON
#define FMA_LOOP(NAME, TARGET, CHAINS, V, SET1, FMADD, ADD, STORE, LANES)         \
    TARGET static float NAME(int64_t iters)                                        \
    {                                                                              \
        V c[CHAINS];                                                               \
        const V m = SET1(1.0000001f), a = SET1(1e-9f);                             \
        for (int i = 0; i < CHAINS; i++)                                           \
            c[i] = SET1((float)i);                                                 \
        for (int64_t k = 0; k < iters; k++) {                                      \
            _Pragma("GCC unroll 32") for (int i = 0; i < CHAINS; i++)              \
                c[i] = FMADD(c[i], m, a);                                          \
        }                                                                          \
        V s = c[0];                                                                \
        for (int i = 1; i < CHAINS; i++)                                           \
            s = ADD(s, c[i]);                                                      \
        float out[LANES], t = 0;                                                   \
        STORE(out, s);                                                             \
        for (int i = 0; i < LANES; i++)                                            \
            t += out[i];                                                           \
        return t;                                                                  \
    }
#endif

#if CF_HAVE_X86_DISPATCH
FMA_LOOP(fma_avx2, __attribute__((target("avx2,fma"))), CF_CHAINS_AVX2, __m256,
         _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, _mm256_storeu_ps, 8)
FMA_LOOP(fma_avx512, __attribute__((target("avx512f"))), CF_CHAINS_AVX512, __m512,
         _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, _mm512_storeu_ps, 16)
#endif
#if CF_HAVE_NEON
/* Named chains, not FMA_LOOP's array: with the array GCC 12 stores every
 * chain to the stack each step on AArch64. fmla overwrites its addend, so
 * the chain is the addend: c + m * a (finite for any step count), where
 * c * m + a would cost a move per FMA. */
#define NEON_CHAINS(X)                                                                    \
    X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14)   \
    X(15) X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23) X(24) X(25) X(26) X(27)     \
    X(28) X(29)
static float fma_neon(int64_t iters)
{
    const float32x4_t m = vdupq_n_f32(1.0000001f), a = vdupq_n_f32(1e-9f);
#define NEON_DECL(i) float32x4_t c##i = vdupq_n_f32((float)(i));
#define NEON_STEP(i) c##i = vfmaq_f32(c##i, m, a);
#define NEON_SUM(i) s = vaddq_f32(s, c##i);
    (void)sizeof(char[(0 NEON_CHAINS(+1 + 0 *)) == CF_CHAINS_NEON ? 1 : -1]);
    NEON_CHAINS(NEON_DECL)
    for (int64_t k = 0; k < iters; k++) {
        NEON_CHAINS(NEON_STEP)
    }
    float32x4_t s = vdupq_n_f32(0.0f);
    NEON_CHAINS(NEON_SUM)
    return vaddvq_f32(s);
#undef NEON_DECL
#undef NEON_STEP
#undef NEON_SUM
}
#endif

double cf_fma_ceiling(int64_t iters, int nthreads)
{
    const int level = cf_simd_level();
    int lanes = 1, chains = CF_CHAINS_SCALAR;
    float (*fn)(int64_t) = fma_scalar;
#if CF_HAVE_X86_DISPATCH
    if (level >= CF_SIMD_AVX512) {
        fn = fma_avx512;
        lanes = 16;
        chains = CF_CHAINS_AVX512;
    } else if (level >= CF_SIMD_AVX2) {
        fn = fma_avx2;
        lanes = 8;
        chains = CF_CHAINS_AVX2;
    }
#elif CF_HAVE_NEON
    if (level >= CF_SIMD_NEON) {
        fn = fma_neon;
        lanes = 4;
        chains = CF_CHAINS_NEON;
    }
#else
    (void)level;
#endif
    volatile float sink = 0;
    int team = 1;
    (void)nthreads;
    /* FMAs on normal values only: the subnormal mode (runtime.h) is moot */
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads)
#endif
    {
        const float s = fn(iters);
#ifdef _OPENMP
#pragma omp critical(cf_fma_ceiling)
#endif
        sink += s;
#ifdef _OPENMP
#pragma omp single
        team = omp_get_num_threads();
#endif
    }
    (void)sink;
    return 2.0 * chains * lanes * (double)iters * team;
}
