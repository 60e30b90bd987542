/* 2-D max / average / min pooling, NHWC, forward and backward (see pool2d.h).
 *
 * The kernels are written once as templates and instantiated here:
 *   pool2d_impl.h        portable scalar rows, the readable definition;
 *   pool2d_simd_impl.h   the same rows vectorised over channels, compiled for
 *                        AVX-512 (F/BW/DQ/VL, masked channel tail) and AVX2
 *                        (scalar channel tail) through GCC target attributes;
 *   pool2d_driver_impl.h the public functions: run-time choice of the code
 *                        path (cf_simd_level) and the OpenMP split.
 * This file is compiled for the baseline ISA; nothing here needs -march. */
#include "pool2d.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cpu_features.h"
#include "runtime.h"

#if CF_HAVE_X86_DISPATCH
#include <immintrin.h>
#endif

/* In-bounds part [lo, hi) of the window of output o along one axis. */
static inline void cf_pool_win(int64_t o, int64_t stride, int64_t pad, int64_t k,
                               int64_t n, int64_t *lo, int64_t *hi)
{
    const int64_t a = o * stride - pad, b = a + k;
    *lo = a < 0 ? 0 : a;
    *hi = b > n ? n : b;
}

/* 2x2 window, stride 2, no padding on any side (every window full). */
static inline int cf_pool_is_2x2(const cf_pool2d_shape *s)
{
    return s->kh == 2 && s->kw == 2 && s->sh == 2 && s->sw == 2 && s->pt == 0 &&
           s->pl == 0 && 2 * s->oh <= s->h && 2 * s->ow <= s->w;
}

/* Whether the 2x2 backward may write dx with non-temporal stores: dx much
 * larger than the caches (a band of the fused drivers never is) and 64-byte
 * aligned (rows are then aligned too when C fills whole vectors). */
#define CF_POOL_STREAM_MIN_BYTES ((int64_t)8 << 20)
#define CF_POOL_STREAM_OK(s, dx)                                                     \
    ((uintptr_t)(dx) % 64 == 0 &&                                                    \
     (s)->n * (s)->h * (s)->w * (s)->c * (int64_t)sizeof(*(dx)) >= CF_POOL_STREAM_MIN_BYTES)

/* Threads for a loop of `tasks` independent tasks touching about `work`
 * elements: below ~64K elements a parallel region costs more than it saves.
 * The split never changes results, only the speed. */
static int cf_pool_threads(int nthreads, int64_t tasks, int64_t work)
{
    if (nthreads < 1 || work < 65536)
        return 1;
    return tasks < nthreads ? (int)tasks : nthreads;
}

/* ---- AVX-512 (F/BW/DQ/VL) ------------------------------------------------ */
#if CF_HAVE_X86_DISPATCH
#define CF_TGT __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
#define CF_ISA avx512
#define CF_MASKED 1
#endif

/* ---- float ---------------------------------------------------------------- */
#define T float
#define SFX f32
#include "pool2d_impl.h"

#if CF_HAVE_X86_DISPATCH
#define VT __m512
#define IT __m512i
#define KT __mmask16
#define VL 16
#define K_TAIL(r) ((r) >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (r)) - 1u))
#define V_LD(p, k) _mm512_maskz_loadu_ps((k), (p))
#define V_ST(p, k, v) _mm512_mask_storeu_ps((p), (k), (v))
#define V_STNT(p, v) _mm512_stream_ps((p), (v))
#define V_SET1(a) _mm512_set1_ps(a)
#define V_ZERO() _mm512_setzero_ps()
#define V_ADD(a, b) _mm512_add_ps((a), (b))
#define V_MUL(a, b) _mm512_mul_ps((a), (b))
#define V_DIV(a, b) _mm512_div_ps((a), (b))
#define V_BLEND(m, a, b) _mm512_mask_blend_ps((m), (a), (b))
#define V_CANON(v) \
    _mm512_mask_blend_ps(_mm512_cmp_ps_mask((v), (v), _CMP_UNORD_Q), (v), _mm512_set1_ps(NAN))
#define V_UPD_MAX(v, b) \
    _mm512_mask_cmp_ps_mask(_mm512_cmp_ps_mask((b), (b), _CMP_ORD_Q), (v), (b), _CMP_NLE_UQ)
#define V_UPD_MIN(v, b) \
    _mm512_mask_cmp_ps_mask(_mm512_cmp_ps_mask((b), (b), _CMP_ORD_Q), (v), (b), _CMP_NGE_UQ)
#define V_MAX(v, b) _mm512_max_ps((v), (b))
#define V_MIN(v, b) _mm512_min_ps((v), (b))
#define V_ANY_NAN4(a, b, c, d) \
    (_mm512_cmp_ps_mask((a), (b), _CMP_UNORD_Q) | _mm512_cmp_ps_mask((c), (d), _CMP_UNORD_Q))
#define I_LD(p, k) _mm512_maskz_loadu_epi32((k), (p))
#define I_ST(p, k, v) _mm512_mask_storeu_epi32((p), (k), (v))
#define I_SET1(a) _mm512_set1_epi32(a)
#define I_BLEND(m, a, b) _mm512_mask_blend_epi32((m), (a), (b))
#define I_EQ(a, b) _mm512_cmpeq_epi32_mask((a), (b))
#define K_NONE() ((__mmask16)0)
#define K_OR(a, b) ((__mmask16)((a) | (b)))
#define K_MISSES(h, k) __builtin_popcount((unsigned)(k) & ~(unsigned)(h) & 0xFFFFu)
#include "pool2d_simd_impl.h"
#undef V_STNT
#endif
#undef T
#undef SFX

/* ---- double --------------------------------------------------------------- */
#define T double
#define SFX f64
#include "pool2d_impl.h"

#if CF_HAVE_X86_DISPATCH
#define VT __m512d
#define IT __m256i
#define KT __mmask8
#define VL 8
#define K_TAIL(r) ((r) >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << (r)) - 1u))
#define V_LD(p, k) _mm512_maskz_loadu_pd((k), (p))
#define V_ST(p, k, v) _mm512_mask_storeu_pd((p), (k), (v))
#define V_SET1(a) _mm512_set1_pd(a)
#define V_ZERO() _mm512_setzero_pd()
#define V_ADD(a, b) _mm512_add_pd((a), (b))
#define V_MUL(a, b) _mm512_mul_pd((a), (b))
#define V_DIV(a, b) _mm512_div_pd((a), (b))
#define V_BLEND(m, a, b) _mm512_mask_blend_pd((m), (a), (b))
#define V_CANON(v) \
    _mm512_mask_blend_pd(_mm512_cmp_pd_mask((v), (v), _CMP_UNORD_Q), (v), _mm512_set1_pd(NAN))
#define V_UPD_MAX(v, b) \
    _mm512_mask_cmp_pd_mask(_mm512_cmp_pd_mask((b), (b), _CMP_ORD_Q), (v), (b), _CMP_NLE_UQ)
#define V_UPD_MIN(v, b) \
    _mm512_mask_cmp_pd_mask(_mm512_cmp_pd_mask((b), (b), _CMP_ORD_Q), (v), (b), _CMP_NGE_UQ)
#define V_MAX(v, b) _mm512_max_pd((v), (b))
#define V_MIN(v, b) _mm512_min_pd((v), (b))
#define V_ANY_NAN4(a, b, c, d) \
    (_mm512_cmp_pd_mask((a), (b), _CMP_UNORD_Q) | _mm512_cmp_pd_mask((c), (d), _CMP_UNORD_Q))
#define I_LD(p, k) _mm256_maskz_loadu_epi32((k), (p))
#define I_ST(p, k, v) _mm256_mask_storeu_epi32((p), (k), (v))
#define I_SET1(a) _mm256_set1_epi32(a)
#define I_BLEND(m, a, b) _mm256_mask_blend_epi32((m), (a), (b))
#define I_EQ(a, b) _mm256_cmpeq_epi32_mask((a), (b))
#define K_NONE() ((__mmask8)0)
#define K_OR(a, b) ((__mmask8)((a) | (b)))
#define K_MISSES(h, k) __builtin_popcount((unsigned)(k) & ~(unsigned)(h) & 0xFFu)
#include "pool2d_simd_impl.h"
#endif
#undef T
#undef SFX

#if CF_HAVE_X86_DISPATCH
#undef CF_TGT
#undef CF_ISA
#undef CF_MASKED

/* ---- AVX2 ------------------------------------------------------------------
 * No lane masks: masks are all-ones / all-zeros vectors, full vectors only,
 * the channel tail goes to the scalar row. The `k` arguments are ignored. */
#define CF_TGT __attribute__((target("avx2,fma")))
#define CF_ISA avx2
#define CF_MASKED 0

#define T float
#define SFX f32
#define VT __m256
#define IT __m256i
#define KT __m256
#define VL 8
#define K_TAIL(r) _mm256_setzero_ps()
#define V_LD(p, k) _mm256_loadu_ps(p)
#define V_ST(p, k, v) _mm256_storeu_ps((p), (v))
#define V_SET1(a) _mm256_set1_ps(a)
#define V_ZERO() _mm256_setzero_ps()
#define V_ADD(a, b) _mm256_add_ps((a), (b))
#define V_MUL(a, b) _mm256_mul_ps((a), (b))
#define V_DIV(a, b) _mm256_div_ps((a), (b))
#define V_BLEND(m, a, b) _mm256_blendv_ps((a), (b), (m))
#define V_CANON(v) \
    _mm256_blendv_ps((v), _mm256_set1_ps(NAN), _mm256_cmp_ps((v), (v), _CMP_UNORD_Q))
#define V_UPD_MAX(v, b) \
    _mm256_and_ps(_mm256_cmp_ps((b), (b), _CMP_ORD_Q), _mm256_cmp_ps((v), (b), _CMP_NLE_UQ))
#define V_UPD_MIN(v, b) \
    _mm256_and_ps(_mm256_cmp_ps((b), (b), _CMP_ORD_Q), _mm256_cmp_ps((v), (b), _CMP_NGE_UQ))
#define V_MAX(v, b) _mm256_max_ps((v), (b))
#define V_MIN(v, b) _mm256_min_ps((v), (b))
#define V_ANY_NAN4(a, b, c, d)                                                 \
    _mm256_movemask_ps(_mm256_or_ps(_mm256_cmp_ps((a), (b), _CMP_UNORD_Q),  \
                                    _mm256_cmp_ps((c), (d), _CMP_UNORD_Q)))
#define I_LD(p, k) _mm256_loadu_si256((const __m256i *)(const void *)(p))
#define I_ST(p, k, v) _mm256_storeu_si256((__m256i *)(void *)(p), (v))
#define I_SET1(a) _mm256_set1_epi32(a)
#define I_BLEND(m, a, b) \
    _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(a), _mm256_castsi256_ps(b), (m)))
#define I_EQ(a, b) _mm256_castsi256_ps(_mm256_cmpeq_epi32((a), (b)))
#define K_NONE() _mm256_setzero_ps()
#define K_OR(a, b) _mm256_or_ps((a), (b))
#define K_MISSES(h, k) (8 - __builtin_popcount((unsigned)_mm256_movemask_ps(h)))
#include "pool2d_simd_impl.h"
#undef T
#undef SFX

#define T double
#define SFX f64
#define VT __m256d
#define IT __m128i
#define KT __m256d
#define VL 4
#define K_TAIL(r) _mm256_setzero_pd()
#define V_LD(p, k) _mm256_loadu_pd(p)
#define V_ST(p, k, v) _mm256_storeu_pd((p), (v))
#define V_SET1(a) _mm256_set1_pd(a)
#define V_ZERO() _mm256_setzero_pd()
#define V_ADD(a, b) _mm256_add_pd((a), (b))
#define V_MUL(a, b) _mm256_mul_pd((a), (b))
#define V_DIV(a, b) _mm256_div_pd((a), (b))
#define V_BLEND(m, a, b) _mm256_blendv_pd((a), (b), (m))
#define V_CANON(v) \
    _mm256_blendv_pd((v), _mm256_set1_pd(NAN), _mm256_cmp_pd((v), (v), _CMP_UNORD_Q))
#define V_UPD_MAX(v, b) \
    _mm256_and_pd(_mm256_cmp_pd((b), (b), _CMP_ORD_Q), _mm256_cmp_pd((v), (b), _CMP_NLE_UQ))
#define V_UPD_MIN(v, b) \
    _mm256_and_pd(_mm256_cmp_pd((b), (b), _CMP_ORD_Q), _mm256_cmp_pd((v), (b), _CMP_NGE_UQ))
#define V_MAX(v, b) _mm256_max_pd((v), (b))
#define V_MIN(v, b) _mm256_min_pd((v), (b))
#define V_ANY_NAN4(a, b, c, d)                                                 \
    _mm256_movemask_pd(_mm256_or_pd(_mm256_cmp_pd((a), (b), _CMP_UNORD_Q),  \
                                    _mm256_cmp_pd((c), (d), _CMP_UNORD_Q)))
#define I_LD(p, k) _mm_loadu_si128((const __m128i *)(const void *)(p))
#define I_ST(p, k, v) _mm_storeu_si128((__m128i *)(void *)(p), (v))
#define I_SET1(a) _mm_set1_epi32(a)
/* The 4 x 64-bit lane mask narrowed to 4 x 32-bit lanes (even dwords). */
#define CF_NARROW_MASK(m)                                                   \
    _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(_mm256_castpd_si256(m), \
                                                       _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7)))
#define I_BLEND(m, a, b) _mm_blendv_epi8((a), (b), CF_NARROW_MASK(m))
#define I_EQ(a, b) _mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm_cmpeq_epi32((a), (b))))
#define K_NONE() _mm256_setzero_pd()
#define K_OR(a, b) _mm256_or_pd((a), (b))
#define K_MISSES(h, k) (4 - __builtin_popcount((unsigned)_mm256_movemask_pd(h)))
#include "pool2d_simd_impl.h"
#undef T
#undef SFX
#undef CF_NARROW_MASK
#undef CF_TGT
#undef CF_ISA
#undef CF_MASKED
#endif

#if CF_HAVE_NEON
#include "pool2d_neon_impl.h"
#endif

/* ---- public entry points ---------------------------------------------------- */
#define T float
#define SFX f32
#include "pool2d_driver_impl.h"
#undef T
#undef SFX

#define T double
#define SFX f64
#include "pool2d_driver_impl.h"
#undef T
#undef SFX

/* Row-wise membership tests, no division: an index v is in its window when
 * v - (ih * w + iw_lo) lies in [0, iw_hi - iw_lo) for one of the window's
 * rows ih. In uint32 arithmetic that test is exact for every int32 v: cells
 * are below 2^31, so v and a cell can only agree mod 2^32 when equal. One
 * output row of windows per call, vectorised over channels; a window with a
 * stray index is then searched for the first. */
#define CF_POOL_STRAY_CHUNK 64
#define CF_STRAY_ROW_BODY                                                             \
    const int64_t C = s->c;                                                           \
    for (int64_t ow = 0; ow < s->ow; ow++) {                                          \
        int64_t iw_lo, iw_hi;                                                         \
        cf_pool_win(ow, s->sw, s->pl, s->kw, s->w, &iw_lo, &iw_hi);                   \
        const uint32_t span = (uint32_t)(iw_hi - iw_lo);                              \
        const uint32_t *v = (const uint32_t *)(a + ow * C);                           \
        for (int64_t c0 = 0; c0 < C; c0 += CF_POOL_STRAY_CHUNK) {                     \
            const int64_t nc = C - c0 < CF_POOL_STRAY_CHUNK ? C - c0 : CF_POOL_STRAY_CHUNK; \
            uint32_t ok[CF_POOL_STRAY_CHUNK];                                         \
            const uint32_t base0 = (uint32_t)(ih_lo * s->w + iw_lo);                  \
            for (int64_t ch = 0; ch < nc; ch++)                                       \
                ok[ch] = (uint32_t)(v[c0 + ch] - base0) < span;                       \
            for (int64_t ih = ih_lo + 1; ih < ih_hi; ih++) {                          \
                const uint32_t base = (uint32_t)(ih * s->w + iw_lo);                  \
                for (int64_t ch = 0; ch < nc; ch++)                                   \
                    ok[ch] |= (uint32_t)(v[c0 + ch] - base) < span;                   \
            }                                                                         \
            uint32_t all = 1;                                                         \
            for (int64_t ch = 0; ch < nc; ch++)                                       \
                all &= ok[ch];                                                        \
            if (!all)                                                                 \
                for (int64_t ch = 0; ch < nc; ch++)                                   \
                    if (!ok[ch])                                                      \
                        return ow * C + c0 + ch;                                      \
        }                                                                             \
    }                                                                                 \
    return -1;

/* The first position in one output row of indices a (ow, c) that is not a
 * cell of its window, whose rows are [ih_lo, ih_hi); or -1. */
static int64_t cf_stray_in_row(const cf_pool2d_shape *s, const int32_t *a, int64_t ih_lo,
                               int64_t ih_hi)
{
    CF_STRAY_ROW_BODY
}

#if CF_HAVE_X86_DISPATCH
__attribute__((target("avx2"))) static int64_t
cf_stray_in_row_avx2(const cf_pool2d_shape *s, const int32_t *a, int64_t ih_lo, int64_t ih_hi)
{
    CF_STRAY_ROW_BODY
}
#endif
#undef CF_STRAY_ROW_BODY

/* Rows of windows are independent; each thread keeps the first stray
 * position of its rows, and the smallest wins, so the answer does not depend
 * on the thread count. */
int64_t cf_pool2d_first_stray_index(const cf_pool2d_shape *s, const int32_t *argmax,
                                    int nthreads)
{
    int64_t (*row)(const cf_pool2d_shape *, const int32_t *, int64_t, int64_t) =
        cf_stray_in_row;
#if CF_HAVE_X86_DISPATCH
    if (cf_simd_level() >= CF_SIMD_AVX2)
        row = cf_stray_in_row_avx2;
#endif
    const int64_t rows = s->n * s->oh, len = s->ow * s->c;
    int64_t first = INT64_MAX;
    const int nt = cf_pool_threads(nthreads, rows, rows * len);
    (void)nt;
    /* integer work only: no floating-point mode to set (runtime.h) */
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) reduction(min : first) if (nt > 1)
#endif
    for (int64_t r = 0; r < rows; r++) {
        if (first < r * len) /* this thread already has an earlier one */
            continue;
        int64_t ih_lo, ih_hi;
        cf_pool_win(r % s->oh, s->sh, s->pt, s->kh, s->h, &ih_lo, &ih_hi);
        const int64_t at = row(s, argmax + r * len, ih_lo, ih_hi);
        if (at >= 0)
            first = r * len + at < first ? r * len + at : first;
    }
    return first == INT64_MAX ? -1 : first;
}
