/* GEMM micro-kernels: scalar definition, AVX2+FMA and AVX-512 variants, and
 * the run-time selection. See ukernel.h for the contract. */
#include "ukernel.h"

#include <stddef.h>

#include "cpu_features.h"

#if CF_HAVE_X86_DISPATCH
#include <immintrin.h>
#endif

/* ------------------------------------------------------------------------ */
/* Portable scalar kernels: the readable definition and the fallback.       */

#define SC_MR CF_SCALAR_MR
#define SC_NR CF_SCALAR_NR

#define DEFINE_SCALAR_UKERNEL(NAME, T)                                              \
    static void NAME(int64_t kc, const T *restrict a, int64_t a_ks,                 \
                     const T *restrict b, int64_t b_ks, T *restrict c,              \
                     int64_t ldc, int mr, int nr, int accumulate,                   \
                     const T *restrict bias, int relu)                              \
    {                                                                               \
        T acc[SC_MR][SC_NR] = {{0}};                                                \
        for (int64_t k = 0; k < kc; k++) {                                          \
            T brow[SC_NR] = {0};                                                    \
            for (int j = 0; j < nr; j++)                                            \
                brow[j] = b[k * b_ks + j];                                          \
            for (int i = 0; i < SC_MR; i++) {                                       \
                T ai = a[k * a_ks + i];                                             \
                for (int j = 0; j < SC_NR; j++)                                     \
                    acc[i][j] += ai * brow[j];                                      \
            }                                                                       \
        }                                                                           \
        for (int i = 0; i < mr; i++)                                                \
            for (int j = 0; j < nr; j++) {                                          \
                T r = acc[i][j];                                                    \
                if (accumulate)                                                     \
                    r = c[i * ldc + j] + r;                                         \
                if (bias)                                                           \
                    r += bias[j];                                                   \
                if (relu && r < 0)                                                  \
                    r = 0;                                                          \
                c[i * ldc + j] = r;                                                 \
            }                                                                       \
    }

#define DEFINE_SCALAR_DIRECT(NAME, T)                                               \
    static void NAME(int64_t ntaps, const int64_t *restrict tap_off, int64_t c,     \
                     const T *restrict a, int64_t a_is, const T *restrict b,        \
                     int64_t b_ks, T *restrict y, int64_t ldc, int mr, int nr,      \
                     const T *restrict bias, int relu)                              \
    {                                                                               \
        T acc[SC_MR][SC_NR] = {{0}};                                                \
        for (int64_t t = 0; t < ntaps; t++)                                         \
            for (int64_t cc = 0; cc < c; cc++) {                                    \
                const T *bk = b + (t * c + cc) * b_ks;                              \
                T brow[SC_NR] = {0};                                                \
                for (int j = 0; j < nr; j++)                                        \
                    brow[j] = bk[j];                                                \
                for (int i = 0; i < SC_MR; i++) {                                   \
                    T ai = a[tap_off[t] + i * a_is + cc];                           \
                    for (int j = 0; j < SC_NR; j++)                                 \
                        acc[i][j] += ai * brow[j];                                  \
                }                                                                   \
            }                                                                       \
        for (int i = 0; i < mr; i++)                                                \
            for (int j = 0; j < nr; j++) {                                          \
                T r = acc[i][j];                                                    \
                if (bias)                                                           \
                    r += bias[j];                                                   \
                if (relu && r < 0)                                                  \
                    r = 0;                                                          \
                y[i * ldc + j] = r;                                                 \
            }                                                                       \
    }

#define DEFINE_SCALAR_TAPS(NAME, T)                                                 \
    static void NAME(int64_t nrows, int64_t kc, const int64_t *restrict off,        \
                     const T *restrict a, int64_t a_ks, int64_t a_rs,               \
                     const T *restrict b, int64_t b_ks, T *restrict c, int64_t ldc, \
                     int mr, int nr, int accumulate)                                \
    {                                                                               \
        T acc[SC_MR][SC_NR] = {{0}};                                                \
        const T *bk = b;                                                            \
        for (int64_t row = 0; row < nrows; row++)                                   \
            for (int64_t k = 0; k < kc; k++, bk += b_ks) {                          \
                const T *ak = a + row * a_rs + k * a_ks;                            \
                T brow[SC_NR] = {0};                                                \
                for (int j = 0; j < nr; j++)                                        \
                    brow[j] = bk[j];                                                \
                for (int i = 0; i < SC_MR; i++) {                                   \
                    T ai = ak[off[i]];                                              \
                    for (int j = 0; j < SC_NR; j++)                                 \
                        acc[i][j] += ai * brow[j];                                  \
                }                                                                   \
            }                                                                       \
        for (int i = 0; i < mr; i++)                                                \
            for (int j = 0; j < nr; j++)                                            \
                c[i * ldc + j] = accumulate ? c[i * ldc + j] + acc[i][j] : acc[i][j]; \
    }

/* Column sums (bias gradients), rows added in order per column. */
#define DEFINE_SCALAR_COLSUM(NAME, T)                                             \
    static void NAME(int64_t np, int64_t n, const T *restrict src, int64_t ld,     \
                     T *restrict acc)                                            \
    {                                                                            \
        for (int64_t p = 0; p < np; p++)                                         \
            for (int64_t j = 0; j < n; j++)                                      \
                acc[j] += src[p * ld + j];                                       \
    }

DEFINE_SCALAR_COLSUM(uk_colsum_scalar_f32, float)
DEFINE_SCALAR_COLSUM(uk_colsum_scalar_f64, double)
DEFINE_SCALAR_TAPS(uk_taps_scalar_f32, float)
DEFINE_SCALAR_TAPS(uk_taps_scalar_f64, double)
DEFINE_SCALAR_UKERNEL(uk_gemm_scalar_f32, float)
DEFINE_SCALAR_UKERNEL(uk_gemm_scalar_f64, double)
DEFINE_SCALAR_DIRECT(uk_direct_scalar_f32, float)
DEFINE_SCALAR_DIRECT(uk_direct_scalar_f64, double)

#if CF_HAVE_X86_DISPATCH

/* The reduction loops of the SIMD micro-kernels are unrolled 4 times: less
 * loop overhead between the FMA groups. */
#if defined(__clang__)
#define UK_UNROLL4 _Pragma("clang loop unroll_count(4)")
#elif defined(__GNUC__)
#define UK_UNROLL4 _Pragma("GCC unroll 4")
#else
#define UK_UNROLL4
#endif

/* Compile-time checks that the X-macro row lists below have the lengths
 * blocking.h gives their tiles: UK_COUNT_ROWS(LIST) is the list's length. */
#define UK_COUNT_ONE(i) +1
#define UK_COUNT_ROWS(LIST) (0 LIST(UK_COUNT_ONE))
#define UK_CHECK_ROWS(name, LIST, n) typedef char name[UK_COUNT_ROWS(LIST) == (n) ? 1 : -1];
#define UK_CHECK_ROWS_HERE(LIST, n) (void)sizeof(char[UK_COUNT_ROWS(LIST) == (n) ? 1 : -1])

/* ------------------------------------------------------------------------ */
/* AVX-512: 14 x 32 (f32) / 14 x 16 (f64) tiles: 28 zmm accumulators, two B  */
/* vectors per k step, A broadcast straight from memory.                    */

#define AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,fma")))

/* 16 x 16 kernel-gradient tile (float32): rows = 16 consecutive channels of
 * one tap, so row i is read at a[off[0] + i] (the caller guarantees
 * off[i] == off[0] + i), columns = 16 filters. Each broadcast feeds a single
 * FMA and folds into it as a memory operand ({1to16}): one dy vector per
 * pixel instead of four, at 17 loads per 16 FMAs. Faster than the 6 x 64 /
 * 14 x 32 tiles for 16 or 32 input channels, or fewer than 48 filters; no
 * faster with 64 channels and 64 or more filters (blocking.h's
 * CF_CONV_DW_* thresholds). 32-channel 3 x 3 layers take the kernel-row
 * tile below. */
AVX512_TARGET static void uk_taps_channels_avx512_f32(int64_t nrows, int64_t kc, const int64_t *restrict off,
                                           const float *restrict a, int64_t a_ks, int64_t a_rs,
                                           const float *restrict b, int64_t b_ks,
                                           float *restrict c, int64_t ldc, int mr, int nr,
                                           int accumulate)
{
    const __mmask16 m = nr >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nr) - 1u);
    const float *a0 = a + off[0];
#define CHB_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
#define CHB_DECL(i) __m512 c##i = _mm512_setzero_ps();
    UK_CHECK_ROWS_HERE(CHB_ROWS, CF_UKERNEL_CHANNEL_BLOCK);
    CHB_ROWS(CHB_DECL)
#undef CHB_DECL
#define CHB_STEP(i) c##i = _mm512_fmadd_ps(_mm512_set1_ps(ak[i]), d, c##i);
#define CHB_LOOP(LOAD)                                                         \
    for (int64_t row = 0; row < nrows; row++) {                                \
        const float *ak = a0 + row * a_rs;                                     \
        UK_UNROLL4                                                             \
        for (int64_t k = 0; k < kc; k++, ak += a_ks, bk += b_ks) {             \
            const __m512 d = LOAD;                                             \
            CHB_ROWS(CHB_STEP)                                                 \
        }                                                                      \
    }
    const float *bk = b;
    if (nr == 16) {
        CHB_LOOP(_mm512_loadu_ps(bk))
    } else {
        CHB_LOOP(_mm512_maskz_loadu_ps(m, bk))
    }
#undef CHB_LOOP
#undef CHB_STEP
#define CHB_OUT(i)                                                             \
    if ((i) < mr) {                                                            \
        float *ci = c + (int64_t)(i) * ldc;                                    \
        __m512 r = c##i;                                                       \
        if (accumulate)                                                        \
            r = _mm512_add_ps(_mm512_maskz_loadu_ps(m, ci), r);                \
        _mm512_mask_storeu_ps(ci, m, r);                                       \
    }
    CHB_ROWS(CHB_OUT)
#undef CHB_OUT
#undef CHB_ROWS
}

#define AVX512_MASK16(n) ((n) >= 16 ? (__mmask16)0xFFFF : (n) <= 0 ? (__mmask16)0 : (__mmask16)((1u << (n)) - 1u))

/* Kernel-row tile for kernel gradients (float32), the transpose of the
 * 16 x 16 one: the vector operand is `len` <= 96 contiguous values of the
 * padded image (one kernel row's taps x channels when the column dilation
 * is 1: 3 taps x 32 channels fill the 6 vectors), the broadcast operand 4
 * consecutive dy values (filters), so each pixel costs 6 vector loads and 4
 * broadcasts for 24 FMAs instead of 17 loads for 16. Output transposed,
 * c[f * ldc + e]. Each element is still one FMA chain in pixel order, the
 * same chain as the other taps tiles: same bits. Faster than the 16 x 16
 * tile where a kernel row fills its vectors (3 taps x 32 channels). */
AVX512_TARGET static void uk_taps_krow_avx512_f32(int64_t nrows, int64_t kc, const float *restrict a,
                                          int64_t a_ks, int64_t a_rs, int64_t len,
                                          const float *restrict b, int64_t b_ks,
                                          float *restrict c, int64_t ldc, int nf,
                                          int accumulate)
{
    const __mmask16 m0 = AVX512_MASK16(len), m1 = AVX512_MASK16(len - 16), m2 = AVX512_MASK16(len - 32);
    const __mmask16 m3 = AVX512_MASK16(len - 48), m4 = AVX512_MASK16(len - 64), m5 = AVX512_MASK16(len - 80);
    /* filters past nf repeat the last one (in bounds) and are not stored */
    const int64_t f1 = nf > 1 ? 1 : 0, f2 = nf > 2 ? 2 : nf - 1, f3 = nf > 3 ? 3 : nf - 1;
#define KR_FILTERS(X) X(0) X(1) X(2) X(3)
#define KR_DECL(f)                                                             \
    __m512 c##f##_0 = _mm512_setzero_ps(), c##f##_1 = _mm512_setzero_ps(),     \
           c##f##_2 = _mm512_setzero_ps(), c##f##_3 = _mm512_setzero_ps(),     \
           c##f##_4 = _mm512_setzero_ps(), c##f##_5 = _mm512_setzero_ps();
    UK_CHECK_ROWS_HERE(KR_FILTERS, CF_UKERNEL_KROW_NF);
    KR_FILTERS(KR_DECL)
#undef KR_DECL
    const int64_t fo0 = 0, fo1 = f1, fo2 = f2, fo3 = f3;
#define KR_STEP(f)                                                             \
    {                                                                          \
        const __m512 d = _mm512_set1_ps(bk[fo##f]);                            \
        c##f##_0 = _mm512_fmadd_ps(v0, d, c##f##_0);                           \
        c##f##_1 = _mm512_fmadd_ps(v1, d, c##f##_1);                           \
        c##f##_2 = _mm512_fmadd_ps(v2, d, c##f##_2);                           \
        c##f##_3 = _mm512_fmadd_ps(v3, d, c##f##_3);                           \
        c##f##_4 = _mm512_fmadd_ps(v4, d, c##f##_4);                           \
        c##f##_5 = _mm512_fmadd_ps(v5, d, c##f##_5);                           \
    }
#define KR_LOOP(LD)                                                            \
    for (int64_t row = 0; row < nrows; row++) {                                \
        const float *ak = a + row * a_rs;                                      \
        UK_UNROLL4                                                             \
        for (int64_t k = 0; k < kc; k++, ak += a_ks, bk += b_ks) {             \
            const __m512 v0 = LD(ak, m0), v1 = LD(ak + 16, m1);                \
            const __m512 v2 = LD(ak + 32, m2), v3 = LD(ak + 48, m3);           \
            const __m512 v4 = LD(ak + 64, m4), v5 = LD(ak + 80, m5);           \
            KR_FILTERS(KR_STEP)                                                \
        }                                                                      \
    }
#define KR_LOADF(p, mk) _mm512_loadu_ps(p)
#define KR_LOADM(p, mk) _mm512_maskz_loadu_ps((mk), (p))
    const float *bk = b;
    if (len == CF_UKERNEL_KROW_LEN) {
        KR_LOOP(KR_LOADF)
    } else {
        KR_LOOP(KR_LOADM)
    }
#undef KR_LOOP
#undef KR_LOADF
#undef KR_LOADM
#undef KR_STEP
#define KR_OUT1(f, v)                                                          \
    {                                                                          \
        float *p = cf + 16 * (v);                                              \
        __m512 r = c##f##_##v;                                                 \
        if (accumulate)                                                        \
            r = _mm512_add_ps(_mm512_maskz_loadu_ps(m##v, p), r);              \
        _mm512_mask_storeu_ps(p, m##v, r);                                     \
    }
#define KR_OUT(f)                                                              \
    if ((f) < nf) {                                                            \
        float *cf = c + (int64_t)(f) * ldc;                                    \
        KR_OUT1(f, 0) KR_OUT1(f, 1) KR_OUT1(f, 2)                              \
        KR_OUT1(f, 3) KR_OUT1(f, 4) KR_OUT1(f, 5)                              \
    }
    KR_FILTERS(KR_OUT)
#undef KR_OUT
#undef KR_OUT1
#undef KR_FILTERS
}

/* A float32 pixel tile (the direct_px / direct_wide contract of ukernel.h)
 * from an always-inline body whose last argument, a constant here, says
 * whether its whole aligned output vectors are streamed around the caches:
 * the plain tile and its *_stream variant are the same body twice. */
#define UK_PX_ENTRY(TARGET, NAME, BODY, STREAM)                                         \
    TARGET static void NAME(int64_t ntaps, const int64_t *restrict tap_off, int64_t c,   \
                            const float *restrict a, const int64_t *restrict px_off,     \
                            const float *restrict b, int64_t b_ks, float *restrict y,     \
                            int64_t ldc, int mr, int nr, int accumulate,                  \
                            const float *restrict bias, int relu)                         \
    {                                                                                     \
        BODY(ntaps, tap_off, c, a, px_off, b, b_ks, y, ldc, mr, nr, accumulate, bias,     \
             relu, STREAM);                                                               \
    }

/* 6 pixels x 64 filters forward tile (float32): per (tap, channel) step 4
 * weight vectors and 6 broadcasts feed 24 FMAs (the 14 x 32 tile needs 16
 * loads for 28, and reads every pixel twice for 64 filters). The pixels'
 * offsets live in general registers, so a tile may span image rows: a 14 x
 * 14 image is 33 tiles of 6 with one partial. Faster than the 14 x 32 tile
 * from 48 filters (the forward and the stride-1 input gradient); oneDNN's
 * forward blocks all 64 filters the same way (weights Acdb64a). */
AVX512_TARGET static inline __attribute__((always_inline)) void
uk_direct_wide_body_avx512_f32(int64_t ntaps, const int64_t *restrict tap_off, int64_t c,
                               const float *restrict a, const int64_t *restrict px_off,
                               const float *restrict b, int64_t b_ks, float *restrict y,
                               int64_t ldc, int mr, int nr, int accumulate,
                               const float *restrict bias, int relu, int stream)
{
    const __mmask16 m0 = AVX512_MASK16(nr), m1 = AVX512_MASK16(nr - 16);
    const __mmask16 m2 = AVX512_MASK16(nr - 32), m3 = AVX512_MASK16(nr - 48);
#define DW_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define DW_DECL(i)                                                             \
    __m512 c##i##_0 = _mm512_setzero_ps(), c##i##_1 = _mm512_setzero_ps(),     \
           c##i##_2 = _mm512_setzero_ps(), c##i##_3 = _mm512_setzero_ps();     \
    const int64_t o##i = px_off[i];
    UK_CHECK_ROWS_HERE(DW_ROWS, CF_UKERNEL_WIDE_MR);
    DW_ROWS(DW_DECL)
#undef DW_DECL
    /* the sum goes on from y's values: blocks of a split reduction round
     * exactly as one pass would */
    if (accumulate) {
#define DW_INIT(i)                                                             \
    if ((i) < mr) {                                                            \
        const float *ci = y + (int64_t)(i) * ldc;                              \
        c##i##_0 = _mm512_maskz_loadu_ps(m0, ci);                              \
        c##i##_1 = _mm512_maskz_loadu_ps(m1, ci + 16);                         \
        c##i##_2 = _mm512_maskz_loadu_ps(m2, ci + 32);                         \
        c##i##_3 = _mm512_maskz_loadu_ps(m3, ci + 48);                         \
    }
        DW_ROWS(DW_INIT)
#undef DW_INIT
    }
#define DW_STEP(i)                                                             \
    {                                                                          \
        const __m512 ai = _mm512_set1_ps(p[o##i]);                             \
        c##i##_0 = _mm512_fmadd_ps(ai, b0, c##i##_0);                          \
        c##i##_1 = _mm512_fmadd_ps(ai, b1, c##i##_1);                          \
        c##i##_2 = _mm512_fmadd_ps(ai, b2, c##i##_2);                          \
        c##i##_3 = _mm512_fmadd_ps(ai, b3, c##i##_3);                          \
    }
#define DW_LOOP(L0, L1, L2, L3)                                                \
    for (int64_t t = 0; t < ntaps; t++) {                                      \
        const float *p = a + tap_off[t];                                       \
        const float *bk = b + t * c * b_ks;                                    \
        UK_UNROLL4                                                             \
        for (int64_t cc = 0; cc < c; cc++, p++, bk += b_ks) {                  \
            const __m512 b0 = L0, b1 = L1, b2 = L2, b3 = L3;                   \
            DW_ROWS(DW_STEP)                                                   \
        }                                                                      \
    }
    if (nr == 64) {
        DW_LOOP(_mm512_loadu_ps(bk), _mm512_loadu_ps(bk + 16), _mm512_loadu_ps(bk + 32),
                _mm512_loadu_ps(bk + 48))
    } else {
        DW_LOOP(_mm512_maskz_loadu_ps(m0, bk), _mm512_maskz_loadu_ps(m1, bk + 16),
                _mm512_maskz_loadu_ps(m2, bk + 32), _mm512_maskz_loadu_ps(m3, bk + 48))
    }
#undef DW_LOOP
#undef DW_STEP
    const __m512 zero = _mm512_setzero_ps();
    const __m512 bb0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : zero;
    const __m512 bb1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : zero;
    const __m512 bb2 = bias ? _mm512_maskz_loadu_ps(m2, bias + 32) : zero;
    const __m512 bb3 = bias ? _mm512_maskz_loadu_ps(m3, bias + 48) : zero;
#define DW_OUT(i)                                                              \
    if ((i) < mr) {                                                            \
        float *ci = y + (int64_t)(i) * ldc;                                    \
        __m512 r0 = c##i##_0, r1 = c##i##_1, r2 = c##i##_2, r3 = c##i##_3;     \
        if (bias) {                                                            \
            r0 = _mm512_add_ps(r0, bb0);                                       \
            r1 = _mm512_add_ps(r1, bb1);                                       \
            r2 = _mm512_add_ps(r2, bb2);                                       \
            r3 = _mm512_add_ps(r3, bb3);                                       \
        }                                                                      \
        if (relu) {                                                            \
            r0 = _mm512_max_ps(zero, r0);                                      \
            r1 = _mm512_max_ps(zero, r1);                                      \
            r2 = _mm512_max_ps(zero, r2);                                      \
            r3 = _mm512_max_ps(zero, r3);                                      \
        }                                                                      \
        if (stream && nr == 64 && ((uintptr_t)ci & 63) == 0) {                 \
            _mm512_stream_ps(ci, r0);                                          \
            _mm512_stream_ps(ci + 16, r1);                                     \
            _mm512_stream_ps(ci + 32, r2);                                     \
            _mm512_stream_ps(ci + 48, r3);                                     \
        } else {                                                               \
            _mm512_mask_storeu_ps(ci, m0, r0);                                 \
            _mm512_mask_storeu_ps(ci + 16, m1, r1);                            \
            _mm512_mask_storeu_ps(ci + 32, m2, r2);                            \
            _mm512_mask_storeu_ps(ci + 48, m3, r3);                            \
        }                                                                      \
    }
    DW_ROWS(DW_OUT)
#undef DW_OUT
#undef DW_ROWS
}

UK_PX_ENTRY(AVX512_TARGET, uk_direct_wide_avx512_f32, uk_direct_wide_body_avx512_f32, 0)
UK_PX_ENTRY(AVX512_TARGET, uk_direct_wide_stream_avx512_f32, uk_direct_wide_body_avx512_f32, 1)

/* Transposed 64-column panel of B for uk_direct_wide (see ukernel.h): a scalar loop
 * costs about a quarter of the tile's own time on a Dense layer's input
 * gradient (B = kernel.T, 128 deep); masked gathers, one per 16 columns of a
 * k row, about a twentieth (0.2 cycles per element). */
AVX512_TARGET static void uk_pack_t_avx512_f32(int64_t kc, int64_t nr, const float *restrict src,
                                          int64_t src_js, float *restrict dst)
{
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i idx = _mm512_mullo_epi32(lane, _mm512_set1_epi32((int)src_js));
    for (int64_t g = 0; g < 4; g++) {
        const int64_t left = nr - 16 * g;
        const __mmask16 m = AVX512_MASK16(left);
        const float *col = src + 16 * g * src_js;
        if (left <= 0) {
            for (int64_t k = 0; k < kc; k++)
                _mm512_storeu_ps(dst + k * 64 + 16 * g, _mm512_setzero_ps());
            continue;
        }
        for (int64_t k = 0; k < kc; k++)
            _mm512_storeu_ps(dst + k * 64 + 16 * g,
                             _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, col + k, 4));
    }
}

#define UK_TARGET AVX512_TARGET
#define UK_NAME uk_gemm_avx512_f32
#define UK_T float
#define UK_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13)
UK_CHECK_ROWS(uk_rows_check_avx512, UK_ROWS, CF_AVX512_MR)
#define UK_VW 16
#define UK_V __m512
#define UK_M __mmask16
#define UK_MASK(n) ((n) >= 16 ? (__mmask16)0xFFFF : (n) <= 0 ? (__mmask16)0 : (__mmask16)((1u << (n)) - 1u))
#define UK_ZERO() _mm512_setzero_ps()
#define UK_LOADM(p, mk) _mm512_maskz_loadu_ps((mk), (p))
#define UK_LOADF(p, mk) _mm512_loadu_ps(p)
#define UK_STOREM(p, mk, v) _mm512_mask_storeu_ps((p), (mk), (v))
#define UK_BCAST(p) _mm512_set1_ps(*(p))
#define UK_FMA(x, y, z) _mm512_fmadd_ps((x), (y), (z))
#define UK_ADD(x, y) _mm512_add_ps((x), (y))
#define UK_RELU(x) _mm512_max_ps(_mm512_setzero_ps(), (x))
#include "ukernel_impl.h"
#define UK_TNAME uk_taps_avx512_f32
#include "ukernel_taps_impl.h"
#undef UK_TNAME
/* the 10-row taps tile: first layers with up to 10 (tap, channel) rows
 * (3x3 kernels on 1 channel) would leave 5 of 14 rows idle */
#undef UK_ROWS
#define UK_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9)
UK_CHECK_ROWS(uk_rows_check_avx512_short, UK_ROWS, CF_UKERNEL_SHORT_MR)
#define UK_TNAME uk_taps_short_avx512_f32
#include "ukernel_taps_impl.h"
#undef UK_TNAME
#undef UK_ROWS
#define UK_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13)
#define UK_CSNAME uk_colsum_avx512_f32
#include "ukernel_colsum_impl.h"
#undef UK_CSNAME
#define UK_TWNAME uk_taps_wide_avx512_f32
#include "ukernel_taps_wide_impl.h"
#undef UK_TWNAME
#define UK_RNAME uk_rows_avx512_f32
#include "ukernel_rows_impl.h"
#undef UK_RNAME
#define UK_DNAME uk_direct_avx512_f32
#define UK_AROW(i) (                                                          \
    (i) == 0 ? p0 : (i) == 1 ? p0 + r : (i) == 2 ? p0 + 2 * r : (i) == 3 ? p0 + r3 : \
    (i) == 4 ? p0 + 4 * r : (i) == 5 ? p0 + r5 : (i) == 6 ? p0 + 2 * r3 :           \
    (i) == 7 ? p7 : (i) == 8 ? p7 + r : (i) == 9 ? p7 + 2 * r : (i) == 10 ? p7 + r3 : \
    (i) == 11 ? p7 + 4 * r : (i) == 12 ? p7 + r5 : p7 + 2 * r3)
#include "ukernel_direct_impl.h"
#undef UK_DNAME
/* the same tile with non-temporal stores of whole, aligned vectors (see
 * direct_stream in ukernel.h) */
#undef UK_STOREM
#define UK_STOREM(p, mk, v)                                                    \
    do {                                                                       \
        if ((mk) == (__mmask16)0xFFFF && ((uintptr_t)(p) & 63) == 0)          \
            _mm512_stream_ps((p), (v));                                        \
        else                                                                   \
            _mm512_mask_storeu_ps((p), (mk), (v));                             \
    } while (0)
#define UK_DNAME uk_direct_stream_avx512_f32
#include "ukernel_direct_impl.h"
#undef UK_DNAME
#undef UK_NAME
#undef UK_T
#undef UK_VW
#undef UK_V
#undef UK_M
#undef UK_MASK
#undef UK_ZERO
#undef UK_LOADM
#undef UK_LOADF
#undef UK_STOREM
#undef UK_BCAST
#undef UK_FMA
#undef UK_ADD
#undef UK_RELU

#define UK_NAME uk_gemm_avx512_f64
#define UK_T double
#define UK_VW 8
#define UK_V __m512d
#define UK_M __mmask8
#define UK_MASK(n) ((n) >= 8 ? (__mmask8)0xFF : (n) <= 0 ? (__mmask8)0 : (__mmask8)((1u << (n)) - 1u))
#define UK_ZERO() _mm512_setzero_pd()
#define UK_LOADM(p, mk) _mm512_maskz_loadu_pd((mk), (p))
#define UK_LOADF(p, mk) _mm512_loadu_pd(p)
#define UK_STOREM(p, mk, v) _mm512_mask_storeu_pd((p), (mk), (v))
#define UK_BCAST(p) _mm512_set1_pd(*(p))
#define UK_FMA(x, y, z) _mm512_fmadd_pd((x), (y), (z))
#define UK_ADD(x, y) _mm512_add_pd((x), (y))
#define UK_RELU(x) _mm512_max_pd(_mm512_setzero_pd(), (x))
#include "ukernel_impl.h"
#define UK_TNAME uk_taps_avx512_f64
#include "ukernel_taps_impl.h"
#undef UK_TNAME
/* the 10-row taps tile: first layers with up to 10 (tap, channel) rows
 * (3x3 kernels on 1 channel) would leave 5 of 14 rows idle */
#undef UK_ROWS
#define UK_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9)
#define UK_TNAME uk_taps_short_avx512_f64
#include "ukernel_taps_impl.h"
#undef UK_TNAME
#undef UK_ROWS
#define UK_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13)
#define UK_CSNAME uk_colsum_avx512_f64
#include "ukernel_colsum_impl.h"
#undef UK_CSNAME
#define UK_TWNAME uk_taps_wide_avx512_f64
#include "ukernel_taps_wide_impl.h"
#undef UK_TWNAME
#define UK_RNAME uk_rows_avx512_f64
#include "ukernel_rows_impl.h"
#undef UK_RNAME
#define UK_DNAME uk_direct_avx512_f64
#include "ukernel_direct_impl.h"
#undef UK_DNAME
#undef UK_AROW
#undef UK_TARGET
#undef UK_NAME
#undef UK_T
#undef UK_ROWS
#undef UK_VW
#undef UK_V
#undef UK_M
#undef UK_MASK
#undef UK_ZERO
#undef UK_LOADM
#undef UK_LOADF
#undef UK_STOREM
#undef UK_BCAST
#undef UK_FMA
#undef UK_ADD
#undef UK_RELU


/* ------------------------------------------------------------------------ */
/* AVX-512 narrow-output kernels: 8 pixel rows, vectors over input channels, */
/* a fixed-order horizontal sum at the end.                                 */

#define DEFINE_AVX512_NARROW(NAME, T, V, M, VW, MASKZ_LOAD, LOAD, FMA, ZERO, RED, FULLMASK) \
    AVX512_TARGET static void NAME(int64_t ntaps, const int64_t *restrict tap_off,  \
                                   int64_t c, int64_t cpad, const T *restrict a,    \
                                   int64_t a_is, int np, const T *restrict wt,      \
                                   int64_t wt_js, int64_t f, T *restrict y,         \
                                   int64_t ldy, const T *restrict bias, int relu)   \
    {                                                                               \
        for (int64_t j = 0; j < f; j++) {                                           \
            V acc[CF_NARROW_ROWS];                                                  \
            for (int i = 0; i < CF_NARROW_ROWS; i++)                                \
                acc[i] = ZERO();                                                    \
            for (int64_t t = 0; t < ntaps; t++) {                                   \
                const T *at = a + tap_off[t];                                       \
                const T *w = wt + j * wt_js + t * cpad;                             \
                for (int64_t c0 = 0; c0 < c; c0 += VW) {                            \
                    const int64_t left = c - c0;                                    \
                    const M mk = left >= VW ? (M)FULLMASK : (M)((1u << left) - 1u); \
                    const V wv = LOAD(w + c0);                                      \
                    for (int i = 0; i < CF_NARROW_ROWS; i++)                        \
                        acc[i] = FMA(MASKZ_LOAD(mk, at + i * a_is + c0), wv, acc[i]); \
                }                                                                   \
            }                                                                       \
            for (int i = 0; i < np; i++) {                                          \
                T r = RED(acc[i]);                                                  \
                if (bias)                                                           \
                    r += bias[j];                                                   \
                if (relu && r < 0)                                                  \
                    r = 0;                                                          \
                y[i * ldy + j] = r;                                                 \
            }                                                                       \
        }                                                                           \
    }

DEFINE_AVX512_NARROW(uk_narrow_avx512_f32, float, __m512, __mmask16, 16, _mm512_maskz_loadu_ps,
                     _mm512_loadu_ps, _mm512_fmadd_ps, _mm512_setzero_ps,
                     _mm512_reduce_add_ps, 0xFFFF)
DEFINE_AVX512_NARROW(uk_narrow_avx512_f64, double, __m512d, __mmask8, 8, _mm512_maskz_loadu_pd,
                     _mm512_loadu_pd, _mm512_fmadd_pd, _mm512_setzero_pd,
                     _mm512_reduce_add_pd, 0xFF)

/* ------------------------------------------------------------------------ */
/* AVX2 + FMA: 6 x 16 (f32) / 6 x 8 (f64): 12 ymm accumulators.             */

#define AVX2_TARGET __attribute__((target("avx2,fma")))

static const int32_t avx2_mask_table[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                            0,  0,  0,  0,  0,  0,  0,  0};

AVX2_TARGET static inline __m256i avx2_mask_ps(int n)
{
    n = n < 0 ? 0 : n > 8 ? 8 : n;
    return _mm256_loadu_si256((const __m256i *)(avx2_mask_table + 8 - n));
}

AVX2_TARGET static inline __m256i avx2_mask_pd(int n)
{
    n = n < 0 ? 0 : n > 4 ? 4 : n;
    /* two 32-bit lanes per double */
    return _mm256_loadu_si256((const __m256i *)(avx2_mask_table + 8 - 2 * n));
}

/* AVX2 narrow-output kernels (see DEFINE_AVX512_NARROW): CF_NARROW_ROWS (8)
 * pixel rows, one ymm accumulator each over 8 (float) / 4 (double) input
 * channels, so 8 independent FMA chains fill the two FMA pipes; the channel
 * tail is a masked load. Each row's lanes are then summed by a fixed tree
 * (avx2_reduce_*), so the bits depend on the geometry only. */
AVX2_TARGET static inline float avx2_reduce_ps(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2_TARGET static inline double avx2_reduce_pd(__m256d v)
{
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
}

/* The eight accumulators are named variables, not an array: with an array
 * GCC stores and reloads all of them around every tap. */
#define DEFINE_AVX2_NARROW(NAME, T, V, VW, MASKFN, MASKLOAD, LOAD, FMA, ZERO, RED)\
    AVX2_TARGET static void NAME(int64_t ntaps, const int64_t *restrict tap_off, \
                                 int64_t c, int64_t cpad, const T *restrict a,   \
                                 int64_t a_is, int np, const T *restrict wt,     \
                                 int64_t wt_js, int64_t f, T *restrict y,        \
                                 int64_t ldy, const T *restrict bias, int relu)  \
    {                                                                            \
        const int64_t cfull = c / VW * VW;                                       \
        const __m256i tail = MASKFN((int)(c - cfull));                           \
        for (int64_t j = 0; j < f; j++) {                                        \
            V acc0 = ZERO(), acc1 = ZERO(), acc2 = ZERO(), acc3 = ZERO();        \
            V acc4 = ZERO(), acc5 = ZERO(), acc6 = ZERO(), acc7 = ZERO();        \
            for (int64_t t = 0; t < ntaps; t++) {                                \
                const T *at = a + tap_off[t];                                    \
                const T *w = wt + j * wt_js + t * cpad;                          \
                for (int64_t c0 = 0; c0 < cfull; c0 += VW) {                     \
                    const V wv = LOAD(w + c0);                                   \
                    acc0 = FMA(LOAD(at + 0 * a_is + c0), wv, acc0);              \
                    acc1 = FMA(LOAD(at + 1 * a_is + c0), wv, acc1);              \
                    acc2 = FMA(LOAD(at + 2 * a_is + c0), wv, acc2);              \
                    acc3 = FMA(LOAD(at + 3 * a_is + c0), wv, acc3);              \
                    acc4 = FMA(LOAD(at + 4 * a_is + c0), wv, acc4);              \
                    acc5 = FMA(LOAD(at + 5 * a_is + c0), wv, acc5);              \
                    acc6 = FMA(LOAD(at + 6 * a_is + c0), wv, acc6);              \
                    acc7 = FMA(LOAD(at + 7 * a_is + c0), wv, acc7);              \
                }                                                                \
                if (cfull < c) {                                                 \
                    const V wv = LOAD(w + cfull);                                \
                    acc0 = FMA(MASKLOAD(at + 0 * a_is + cfull, tail), wv, acc0); \
                    acc1 = FMA(MASKLOAD(at + 1 * a_is + cfull, tail), wv, acc1); \
                    acc2 = FMA(MASKLOAD(at + 2 * a_is + cfull, tail), wv, acc2); \
                    acc3 = FMA(MASKLOAD(at + 3 * a_is + cfull, tail), wv, acc3); \
                    acc4 = FMA(MASKLOAD(at + 4 * a_is + cfull, tail), wv, acc4); \
                    acc5 = FMA(MASKLOAD(at + 5 * a_is + cfull, tail), wv, acc5); \
                    acc6 = FMA(MASKLOAD(at + 6 * a_is + cfull, tail), wv, acc6); \
                    acc7 = FMA(MASKLOAD(at + 7 * a_is + cfull, tail), wv, acc7); \
                }                                                                \
            }                                                                    \
            const V accs[8] = {acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7};  \
            for (int i = 0; i < np; i++) {                                       \
                T r = RED(accs[i]);                                              \
                if (bias)                                                        \
                    r += bias[j];                                                \
                if (relu && r < 0)                                               \
                    r = 0;                                                       \
                y[i * ldy + j] = r;                                              \
            }                                                                    \
        }                                                                        \
    }

typedef char uk_narrow_rows_check_avx2[CF_NARROW_ROWS == 8 ? 1 : -1];
DEFINE_AVX2_NARROW(uk_narrow_avx2_f32, float, __m256, 8, avx2_mask_ps, _mm256_maskload_ps,
                   _mm256_loadu_ps, _mm256_fmadd_ps, _mm256_setzero_ps, avx2_reduce_ps)
DEFINE_AVX2_NARROW(uk_narrow_avx2_f64, double, __m256d, 4, avx2_mask_pd, _mm256_maskload_pd,
                   _mm256_loadu_pd, _mm256_fmadd_pd, _mm256_setzero_pd, avx2_reduce_pd)


/* Row-spanning pixel tile (float32): CF_AVX2_PX_MR pixels at arbitrary
 * offsets x 2 vectors of filters, 12 ymm accumulators, 2 weight vectors and
 * one broadcast per (tap, channel) step: AVX2's 16 registers, as the 6 x 16
 * direct tile, but a tile may span image rows, so a 14- or 28-pixel row
 * leaves no partial tile (6 x 16 tiles use 14 of 18 rows on a 14 x 14
 * image). Each output is one FMA chain over (tap, channel) in order from
 * zero (or from y with accumulate), as in the direct tile: the same bits.
 * One input channel (a first layer) runs the taps without the channel loop,
 * whose per-tap set-up otherwise costs about as much as the step itself. */
AVX2_TARGET static inline __attribute__((always_inline)) void
uk_direct_px_body_avx2_f32(int64_t ntaps, const int64_t *restrict tap_off, int64_t c,
                           const float *restrict a, const int64_t *restrict px_off,
                           const float *restrict b, int64_t b_ks, float *restrict y,
                           int64_t ldc, int mr, int nr, int accumulate,
                           const float *restrict bias, int relu, int stream)
{
    const __m256i m0 = avx2_mask_ps(nr), m1 = avx2_mask_ps(nr - 8);
#define PX_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define PX_DECL(i)                                                             \
    __m256 c##i##_0 = _mm256_setzero_ps(), c##i##_1 = _mm256_setzero_ps();     \
    const int64_t o##i = px_off[i];
    UK_CHECK_ROWS_HERE(PX_ROWS, CF_AVX2_PX_MR);
    PX_ROWS(PX_DECL)
#undef PX_DECL
    if (accumulate) {
#define PX_INIT(i)                                                             \
    if ((i) < mr) {                                                            \
        const float *ci = y + (int64_t)(i) * ldc;                              \
        c##i##_0 = _mm256_maskload_ps(ci, m0);                                 \
        c##i##_1 = _mm256_maskload_ps(ci + 8, m1);                             \
    }
        PX_ROWS(PX_INIT)
#undef PX_INIT
    }
#define PX_STEP(i)                                                             \
    {                                                                          \
        const __m256 ai = _mm256_broadcast_ss(p + o##i);                       \
        c##i##_0 = _mm256_fmadd_ps(ai, b0, c##i##_0);                          \
        c##i##_1 = _mm256_fmadd_ps(ai, b1, c##i##_1);                          \
    }
#define PX_LOOP(L0, L1)                                                        \
    if (c == 1) {                                                              \
        const float *bk = b;                                                   \
        for (int64_t t = 0; t < ntaps; t++, bk += b_ks) {                      \
            const float *p = a + tap_off[t];                                   \
            const __m256 b0 = L0, b1 = L1;                                     \
            PX_ROWS(PX_STEP)                                                   \
        }                                                                      \
    } else {                                                                   \
        for (int64_t t = 0; t < ntaps; t++) {                                  \
            const float *p = a + tap_off[t];                                   \
            const float *bk = b + t * c * b_ks;                                \
            UK_UNROLL4                                                         \
            for (int64_t cc = 0; cc < c; cc++, p++, bk += b_ks) {              \
                const __m256 b0 = L0, b1 = L1;                                 \
                PX_ROWS(PX_STEP)                                               \
            }                                                                  \
        }                                                                      \
    }
    /* full-width weight rows (the packed streams): plain loads */
    if (nr == 16) {
        PX_LOOP(_mm256_loadu_ps(bk), _mm256_loadu_ps(bk + 8))
    } else {
        PX_LOOP(_mm256_maskload_ps(bk, m0), _mm256_maskload_ps(bk + 8, m1))
    }
#undef PX_LOOP
#undef PX_STEP
    const __m256 zero = _mm256_setzero_ps();
    const __m256 bb0 = bias ? _mm256_maskload_ps(bias, m0) : zero;
    const __m256 bb1 = bias ? _mm256_maskload_ps(bias + 8, m1) : zero;
#define PX_OUT(i)                                                              \
    if ((i) < mr) {                                                            \
        float *ci = y + (int64_t)(i) * ldc;                                    \
        __m256 r0 = c##i##_0, r1 = c##i##_1;                                   \
        if (bias) {                                                            \
            r0 = _mm256_add_ps(r0, bb0);                                       \
            r1 = _mm256_add_ps(r1, bb1);                                       \
        }                                                                      \
        if (relu) {                                                            \
            r0 = _mm256_max_ps(zero, r0);                                      \
            r1 = _mm256_max_ps(zero, r1);                                      \
        }                                                                      \
        if (nr == 16 && stream && ((uintptr_t)ci & 31) == 0) {                 \
            _mm256_stream_ps(ci, r0);                                          \
            _mm256_stream_ps(ci + 8, r1);                                      \
        } else if (nr == 16) {                                                 \
            _mm256_storeu_ps(ci, r0);                                          \
            _mm256_storeu_ps(ci + 8, r1);                                      \
        } else {                                                               \
            _mm256_maskstore_ps(ci, m0, r0);                                   \
            _mm256_maskstore_ps(ci + 8, m1, r1);                               \
        }                                                                      \
    }
    PX_ROWS(PX_OUT)
#undef PX_OUT
#undef PX_ROWS
}

UK_PX_ENTRY(AVX2_TARGET, uk_direct_px_avx2_f32, uk_direct_px_body_avx2_f32, 0)
UK_PX_ENTRY(AVX2_TARGET, uk_direct_px_stream_avx2_f32, uk_direct_px_body_avx2_f32, 1)
#undef UK_PX_ENTRY

#define UK_TARGET AVX2_TARGET
#define UK_NAME uk_gemm_avx2_f32
#define UK_T float
#define UK_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
UK_CHECK_ROWS(uk_rows_check_avx2, UK_ROWS, CF_AVX2_MR)
#define UK_VW 8
#define UK_V __m256
#define UK_M __m256i
#define UK_MASK(n) avx2_mask_ps(n)
#define UK_ZERO() _mm256_setzero_ps()
#define UK_LOADM(p, mk) _mm256_maskload_ps((p), (mk))
#define UK_LOADF(p, mk) _mm256_loadu_ps(p)
#define UK_STOREM(p, mk, v) _mm256_maskstore_ps((p), (mk), (v))
#define UK_BCAST(p) _mm256_broadcast_ss(p)
#define UK_FMA(x, y, z) _mm256_fmadd_ps((x), (y), (z))
#define UK_ADD(x, y) _mm256_add_ps((x), (y))
#define UK_RELU(x) _mm256_max_ps(_mm256_setzero_ps(), (x))
#include "ukernel_impl.h"
#define UK_TNAME uk_taps_avx2_f32
#include "ukernel_taps_impl.h"
#undef UK_TNAME
#define UK_CSNAME uk_colsum_avx2_f32
#include "ukernel_colsum_impl.h"
#undef UK_CSNAME
#define UK_RNAME uk_rows_avx2_f32
#include "ukernel_rows_impl.h"
#undef UK_RNAME
#define UK_DNAME uk_direct_avx2_f32
#define UK_AROW(i) (                                                          \
    (i) == 0 ? p0 : (i) == 1 ? p0 + r : (i) == 2 ? p0 + 2 * r : (i) == 3 ? p0 + r3 : \
    (i) == 4 ? p0 + 4 * r : p0 + r5)
#include "ukernel_direct_impl.h"
#undef UK_DNAME
#undef UK_NAME
#undef UK_T
#undef UK_VW
#undef UK_V
#undef UK_MASK
#undef UK_ZERO
#undef UK_LOADM
#undef UK_LOADF
#undef UK_STOREM
#undef UK_BCAST
#undef UK_FMA
#undef UK_ADD
#undef UK_RELU

#define UK_NAME uk_gemm_avx2_f64
#define UK_T double
#define UK_VW 4
#define UK_V __m256d
#define UK_MASK(n) avx2_mask_pd(n)
#define UK_ZERO() _mm256_setzero_pd()
#define UK_LOADM(p, mk) _mm256_maskload_pd((p), (mk))
#define UK_LOADF(p, mk) _mm256_loadu_pd(p)
#define UK_STOREM(p, mk, v) _mm256_maskstore_pd((p), (mk), (v))
#define UK_BCAST(p) _mm256_broadcast_sd(p)
#define UK_FMA(x, y, z) _mm256_fmadd_pd((x), (y), (z))
#define UK_ADD(x, y) _mm256_add_pd((x), (y))
#define UK_RELU(x) _mm256_max_pd(_mm256_setzero_pd(), (x))
#include "ukernel_impl.h"
#define UK_TNAME uk_taps_avx2_f64
#include "ukernel_taps_impl.h"
#undef UK_TNAME
#define UK_CSNAME uk_colsum_avx2_f64
#include "ukernel_colsum_impl.h"
#undef UK_CSNAME
#define UK_RNAME uk_rows_avx2_f64
#include "ukernel_rows_impl.h"
#undef UK_RNAME
#define UK_DNAME uk_direct_avx2_f64
#include "ukernel_direct_impl.h"

#endif /* CF_HAVE_X86_DISPATCH */

/* ------------------------------------------------------------------------ */
/* The micro-kernel tables: which kernel of each family runs at each SIMD    */
/* level (NULL: none at that level; the drivers then take another tile).     */
/* Tile sizes come from blocking.h; levels the build cannot produce fall     */
/* back to the highest one it has.                                           */

static const cf_ukernel_f32 uk_table_f32[] = {
    [CF_SIMD_SCALAR] = {.fn = uk_gemm_scalar_f32, .direct = uk_direct_scalar_f32, .narrow = NULL,
                        .taps = uk_taps_scalar_f32, .taps_wide = NULL, .taps_short = NULL,
                        .taps_channels = NULL, .taps_krow = NULL, .colsum = uk_colsum_scalar_f32,
                        .direct_wide = NULL, .pack_t = NULL,
                        .mr = CF_SCALAR_MR, .nr = CF_SCALAR_NR, .vw = CF_SCALAR_VW},
#if CF_HAVE_X86_DISPATCH
    [CF_SIMD_AVX2] = {.fn = uk_gemm_avx2_f32, .rows = uk_rows_avx2_f32, .direct = uk_direct_avx2_f32, .narrow = uk_narrow_avx2_f32,
                      .taps = uk_taps_avx2_f32, .taps_wide = NULL, .taps_short = NULL,
                      .taps_channels = NULL, .taps_krow = NULL, .colsum = uk_colsum_avx2_f32,
                      .direct_wide = NULL, .pack_t = NULL, .direct_px = uk_direct_px_avx2_f32,
                      .direct_px_stream = uk_direct_px_stream_avx2_f32,
                      .px_mr = CF_AVX2_PX_MR, .px_nr = CF_AVX2_NR_F32,
                      .mr = CF_AVX2_MR, .nr = CF_AVX2_NR_F32, .vw = CF_AVX2_VW_F32},
    [CF_SIMD_AVX512] = {.fn = uk_gemm_avx512_f32, .rows = uk_rows_avx512_f32, .direct = uk_direct_avx512_f32, .narrow = uk_narrow_avx512_f32,
                        .taps = uk_taps_avx512_f32, .taps_wide = uk_taps_wide_avx512_f32,
                        .taps_short = uk_taps_short_avx512_f32, .taps_channels = uk_taps_channels_avx512_f32,
                        .taps_krow = uk_taps_krow_avx512_f32, .colsum = uk_colsum_avx512_f32,
                        .direct_wide = uk_direct_wide_avx512_f32, .pack_t = uk_pack_t_avx512_f32,
                        .direct_stream = uk_direct_stream_avx512_f32,
                        .direct_wide_stream = uk_direct_wide_stream_avx512_f32,
                        .mr = CF_AVX512_MR, .nr = CF_AVX512_NR_F32, .vw = CF_AVX512_VW_F32},
#endif
};

static const cf_ukernel_f64 uk_table_f64[] = {
    [CF_SIMD_SCALAR] = {.fn = uk_gemm_scalar_f64, .direct = uk_direct_scalar_f64, .narrow = NULL,
                        .taps = uk_taps_scalar_f64, .taps_wide = NULL, .taps_short = NULL,
                        .taps_channels = NULL, .taps_krow = NULL, .colsum = uk_colsum_scalar_f64,
                        .direct_wide = NULL, .pack_t = NULL,
                        .mr = CF_SCALAR_MR, .nr = CF_SCALAR_NR, .vw = CF_SCALAR_VW},
#if CF_HAVE_X86_DISPATCH
    [CF_SIMD_AVX2] = {.fn = uk_gemm_avx2_f64, .rows = uk_rows_avx2_f64, .direct = uk_direct_avx2_f64, .narrow = uk_narrow_avx2_f64,
                      .taps = uk_taps_avx2_f64, .taps_wide = NULL, .taps_short = NULL,
                      .taps_channels = NULL, .taps_krow = NULL, .colsum = uk_colsum_avx2_f64,
                      .direct_wide = NULL, .pack_t = NULL,
                      .mr = CF_AVX2_MR, .nr = CF_AVX2_NR_F64, .vw = CF_AVX2_VW_F64},
    [CF_SIMD_AVX512] = {.fn = uk_gemm_avx512_f64, .rows = uk_rows_avx512_f64, .direct = uk_direct_avx512_f64, .narrow = uk_narrow_avx512_f64,
                        .taps = uk_taps_avx512_f64, .taps_wide = uk_taps_wide_avx512_f64,
                        .taps_short = uk_taps_short_avx512_f64, .taps_channels = NULL, .taps_krow = NULL,
                        .colsum = uk_colsum_avx512_f64, .direct_wide = NULL, .pack_t = NULL,
                        .mr = CF_AVX512_MR, .nr = CF_AVX512_NR_F64, .vw = CF_AVX512_VW_F64},
#endif
};

#define UK_TABLE_TOP(t) ((int)(sizeof(t) / sizeof((t)[0])) - 1)

void cf_ukernel_stream_fence(void)
{
#if CF_HAVE_X86_DISPATCH
    _mm_sfence();
#endif
}

cf_ukernel_f32 cf_ukernel_select_f32(int level)
{
#if CF_HAVE_NEON
    if (level >= CF_SIMD_NEON)
        return cf_ukernel_neon_f32();
#endif
    const int top = UK_TABLE_TOP(uk_table_f32);
    return uk_table_f32[level < 0 ? 0 : level > top ? top : level];
}

cf_ukernel_f64 cf_ukernel_select_f64(int level)
{
#if CF_HAVE_NEON
    if (level >= CF_SIMD_NEON)
        return cf_ukernel_neon_f64();
#endif
    const int top = UK_TABLE_TOP(uk_table_f64);
    return uk_table_f64[level < 0 ? 0 : level > top ? top : level];
}
