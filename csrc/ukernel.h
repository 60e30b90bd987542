/* Register-blocked GEMM micro-kernels shared by every convolution direction.
 *
 * A micro-kernel computes one MR x NR tile of C:
 *
 *     C[i][j] = (accumulate ? C[i][j] : 0) + sum_{k < kc} A(i, k) * B(k, j)
 *     then, if bias != NULL: C[i][j] += bias[j]; if relu: C[i][j] = max(C[i][j], 0)
 *
 * for i < mr <= MR and j < nr <= NR, where
 *
 *     A(i, k) = a[k * a_ks + i]   -- the MR values of one k step are contiguous
 *                                    (a packed panel, or a row of an im2col matrix)
 *     B(k, j) = b[k * b_ks + j]   -- one row of B per k step, contiguous in j
 *     C[i][j] = c[i * ldc + j]
 *
 * A is read for all MR rows even when mr < MR (the caller makes those reads
 * valid: zero-padded panels or slack after a buffer); those rows are computed
 * and dropped. B and C are never touched beyond nr columns (masked access).
 * The epilogue (bias, relu) is applied by the caller only on the last k block.
 *
 * Variants: portable scalar (the readable definition), AVX2+FMA, AVX-512;
 * chosen at run time through cf_ukernel_select_*(). */
#ifndef CNNFAST_UKERNEL_H
#define CNNFAST_UKERNEL_H

#include <stdint.h>

#include "blocking.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*cf_ukernel_f32_fn)(int64_t kc, const float *a, int64_t a_ks,
                                  const float *b, int64_t b_ks, float *c,
                                  int64_t ldc, int mr, int nr, int accumulate,
                                  const float *bias, int relu);
typedef void (*cf_ukernel_f64_fn)(int64_t kc, const double *a, int64_t a_ks,
                                  const double *b, int64_t b_ks, double *c,
                                  int64_t ldc, int mr, int nr, int accumulate,
                                  const double *bias, int relu);

/* Direct-convolution variant (ukernel_direct_impl.h): the same MR x NR tile,
 * reduced over `ntaps` taps of `c` channels read straight from pixel rows:
 *   Y[i][j] = sum_t sum_cc a[tap_off[t] + i*a_is + cc] * b[(t*c + cc)*b_ks + j]
 * then + bias[j], relu, stored to y[i*ldc + j] for i < mr, j < nr. All MR
 * rows are read (the caller keeps them in bounds). */
typedef void (*cf_ukernel_direct_f32_fn)(int64_t ntaps, const int64_t *tap_off,
                                         int64_t c, const float *a, int64_t a_is,
                                         const float *b, int64_t b_ks, float *y,
                                         int64_t ldc, int mr, int nr,
                                         const float *bias, int relu);
typedef void (*cf_ukernel_direct_f64_fn)(int64_t ntaps, const int64_t *tap_off,
                                         int64_t c, const double *a, int64_t a_is,
                                         const double *b, int64_t b_ks, double *y,
                                         int64_t ldc, int mr, int nr,
                                         const double *bias, int relu);

/* Wide direct variant (AVX-512 float32 only; NULL elsewhere): CF_UKERNEL_WIDE_MR output
 * pixels at arbitrary offsets (a tile may span image rows) x up to 4 vectors
 * of filters:
 *   Y[i][j] = (accumulate ? y[i*ldc + j] : 0)
 *             + sum_t sum_cc a[px_off[i] + tap_off[t] + cc] * b[(t * c + cc) * b_ks + j]
 * then + bias[j], relu, stored to y[i*ldc + j] for i < mr, j < nr. Each
 * output is summed in the same (tap, channel) order as the direct kernel, so
 * both give the same bits; with accumulate the sum continues from y's value
 * (it is the starting accumulator), so a reduction split into consecutive
 * blocks gives the same bits as one pass. All CF_UKERNEL_WIDE_MR offsets are
 * read. */
typedef void (*cf_ukernel_direct_px_f32_fn)(int64_t ntaps, const int64_t *tap_off,
                                            int64_t c, const float *a,
                                            const int64_t *px_off, const float *b,
                                            int64_t b_ks, float *y, int64_t ldc, int mr,
                                            int nr, int accumulate, const float *bias,
                                            int relu);
typedef void (*cf_ukernel_direct_px_f64_fn)(int64_t ntaps, const int64_t *tap_off,
                                            int64_t c, const double *a,
                                            const int64_t *px_off, const double *b,
                                            int64_t b_ks, double *y, int64_t ldc, int mr,
                                            int nr, int accumulate, const double *bias,
                                            int relu);

/* Transposing panel packer for the wide tile's B operand (AVX-512 float32
 * only; NULL elsewhere): dst[k * 64 + j] = src[j * src_js + k] for k < kc,
 * j < nr <= 64, and zero for nr <= j < 64. Each 16-column group of a k row
 * is one masked gather (src_js * 64 bytes must fit an int32 index). */
typedef void (*cf_ukernel_pack_t_f32_fn)(int64_t kc, int64_t nr, const float *src,
                                         int64_t src_js, float *dst);
typedef void (*cf_ukernel_pack_t_f64_fn)(int64_t kc, int64_t nr, const double *src,
                                         int64_t src_js, double *dst);

/* Narrow-output variant, for convolutions with very few output channels
 * (e.g. the input gradient of a grayscale first layer), vectorised over the
 * input channels instead of the outputs: for i < np <= CF_NARROW_ROWS, j < f
 *   y[i*ldy + j] = sum_t sum_cc a[tap_off[t] + i*a_is + cc] * wt[j*wt_js + t*cpad + cc]
 * then + bias[j], relu. wt holds each output channel's taps with the channel
 * axis zero-padded to cpad (a multiple of the vector width). All
 * CF_NARROW_ROWS rows of `a` are read (kept in bounds by the caller).
 * Summation order: lane l of a row's vector sums channels cc = l (mod vw) in
 * (tap, channel) order, then the lanes are added by a fixed tree (AVX-512:
 * _mm512_reduce_add, AVX2: halves, then pairs); so the bits differ from the
 * direct tile's and between the levels, but depend on nothing else (not the
 * thread count, nor fused against unfused pooling). AVX-512 and AVX2. */
typedef void (*cf_ukernel_narrow_f32_fn)(int64_t ntaps, const int64_t *tap_off,
                                         int64_t c, int64_t cpad, const float *a,
                                         int64_t a_is, int np, const float *wt,
                                         int64_t wt_js, int64_t f, float *y,
                                         int64_t ldy, const float *bias, int relu);
typedef void (*cf_ukernel_narrow_f64_fn)(int64_t ntaps, const int64_t *tap_off,
                                         int64_t c, int64_t cpad, const double *a,
                                         int64_t a_is, int np, const double *wt,
                                         int64_t wt_js, int64_t f, double *y,
                                         int64_t ldy, const double *bias, int relu);

/* "Taps" variant (ukernel_taps_impl.h), for kernel gradients with few input
 * channels: tile rows are (tap, channel) pairs at arbitrary offsets,
 *   C[i][j] (+)= sum_r sum_k a[r*a_rs + k*a_ks + off[i]] * b[(r*kc + k)*b_ks + j]
 * off has MR entries (all read); no bias/relu epilogue. */
typedef void (*cf_ukernel_taps_f32_fn)(int64_t nrows, int64_t kc, const int64_t *off,
                                       const float *a, int64_t a_ks, int64_t a_rs,
                                       const float *b, int64_t b_ks, float *c,
                                       int64_t ldc, int mr, int nr, int accumulate);
typedef void (*cf_ukernel_taps_f64_fn)(int64_t nrows, int64_t kc, const int64_t *off,
                                       const double *a, int64_t a_ks, int64_t a_rs,
                                       const double *b, int64_t b_ks, double *c,
                                       int64_t ldc, int mr, int nr, int accumulate);

/* "Kernel-row" variant of the taps tile (AVX-512 float32 only; NULL
 * elsewhere), vectorised over `len` <= CF_UKERNEL_KROW_LEN contiguous values
 * of a (a kernel row's taps x channels) with nf <= CF_UKERNEL_KROW_NF
 * columns of b broadcast, written transposed:
 *   C[f][e] (+)= sum_r sum_k a[r*a_rs + k*a_ks + e] * b[(r*kc + k)*b_ks + f]
 * for e < len, f < nf. */
typedef void (*cf_ukernel_krow_f32_fn)(int64_t nrows, int64_t kc, const float *a,
                                       int64_t a_ks, int64_t a_rs, int64_t len,
                                       const float *b, int64_t b_ks, float *c,
                                       int64_t ldc, int nf, int accumulate);
typedef void (*cf_ukernel_krow_f64_fn)(int64_t nrows, int64_t kc, const double *a,
                                       int64_t a_ks, int64_t a_rs, int64_t len,
                                       const double *b, int64_t b_ks, double *c,
                                       int64_t ldc, int nf, int accumulate);

/* Few-rows variant (ukernel_rows_impl.h), for products of one to
 * CF_GEMM_ROWS_MAX_MR rows (a Dense layer on one sample): rows of A read in
 * place, one block of up to 4 vectors of columns,
 *   C[i][j] = (accumulate ? C[i][j] : 0) + sum_{k < kc} a[i * a_is + k] * b[k * b_ks + j]
 *   then + bias[j], relu
 * for i < mr, j < nr (the operations of `fn`); only the mr rows asked for
 * are computed. NULL where no SIMD variant exists. */
typedef void (*cf_ukernel_rows_f32_fn)(int64_t mr, int64_t nr, int64_t kc, const float *a,
                                       int64_t a_is, const float *b, int64_t b_ks, float *c,
                                       int64_t ldc, int accumulate, const float *bias,
                                       int relu);
typedef void (*cf_ukernel_rows_f64_fn)(int64_t mr, int64_t nr, int64_t kc, const double *a,
                                       int64_t a_is, const double *b, int64_t b_ks, double *c,
                                       int64_t ldc, int accumulate, const double *bias,
                                       int relu);

/* Column sums, acc[j] += sum_{p < np} src[p * ld + j] for j < n, each
 * column added in row order (bit-identical at every SIMD level). */
typedef void (*cf_ukernel_colsum_f32_fn)(int64_t np, int64_t n, const float *src,
                                         int64_t ld, float *acc);
typedef void (*cf_ukernel_colsum_f64_fn)(int64_t np, int64_t n, const double *src,
                                         int64_t ld, double *acc);

typedef struct {
    cf_ukernel_f32_fn fn;
    cf_ukernel_direct_f32_fn direct;
    cf_ukernel_narrow_f32_fn narrow; /* NULL where no SIMD variant exists */
    cf_ukernel_taps_f32_fn taps;
    cf_ukernel_taps_f32_fn taps_wide; /* 6 x 4 vectors; NULL where none */
    cf_ukernel_taps_f32_fn taps_short; /* CF_UKERNEL_SHORT_MR x 2 vectors; or NULL */
    cf_ukernel_taps_f32_fn taps_channels; /* 16 x 16, one tap's channels; or NULL */
    cf_ukernel_krow_f32_fn taps_krow;     /* kernel rows x 4 filters; or NULL */
    cf_ukernel_colsum_f32_fn colsum;
    cf_ukernel_direct_px_f32_fn direct_wide; /* 6 pixels x 4 vectors; or NULL */
    cf_ukernel_pack_t_f32_fn pack_t;         /* B panels for direct_wide; or NULL */
    cf_ukernel_rows_f32_fn rows;             /* 1-4 rows x 4 vectors; or NULL */
    /* Row-spanning pixel tile of the forward (AVX2 float32; NULL elsewhere):
     * the direct_wide contract with px_mr pixels (all px_mr offsets read) x
     * up to px_nr filters, weights packed in px_nr-wide streams. Each output
     * is summed in the direct tile's order: the same bits. */
    cf_ukernel_direct_px_f32_fn direct_px;
    /* direct, direct_px and direct_wide with non-temporal stores of their
     * whole, aligned output vectors (the rest stored plainly): for outputs far larger than
     * the caches, whose lines a plain store would first read from memory.
     * Same values. A thread calls cf_ukernel_stream_fence after its last
     * call, before the output is read elsewhere. NULL where none. */
    cf_ukernel_direct_f32_fn direct_stream;
    cf_ukernel_direct_px_f32_fn direct_px_stream;
    cf_ukernel_direct_px_f32_fn direct_wide_stream;
    int px_mr, px_nr;
    int mr, nr, vw;                  /* vw: lanes of narrow's vectors */
} cf_ukernel_f32;

typedef struct {
    cf_ukernel_f64_fn fn;
    cf_ukernel_direct_f64_fn direct;
    cf_ukernel_narrow_f64_fn narrow;
    cf_ukernel_taps_f64_fn taps;
    cf_ukernel_taps_f64_fn taps_wide;
    cf_ukernel_taps_f64_fn taps_short;
    cf_ukernel_taps_f64_fn taps_channels;
    cf_ukernel_krow_f64_fn taps_krow;     /* none for float64: always NULL */
    cf_ukernel_colsum_f64_fn colsum;
    cf_ukernel_direct_px_f64_fn direct_wide; /* none for float64: always NULL */
    cf_ukernel_pack_t_f64_fn pack_t;         /* always NULL */
    cf_ukernel_rows_f64_fn rows;             /* 1-4 rows x 4 vectors; or NULL */
    cf_ukernel_direct_px_f64_fn direct_px;   /* none for float64: always NULL */
    cf_ukernel_direct_f64_fn direct_stream;     /* always NULL */
    cf_ukernel_direct_px_f64_fn direct_px_stream; /* always NULL */
    cf_ukernel_direct_px_f64_fn direct_wide_stream; /* always NULL */
    int px_mr, px_nr;
    int mr, nr, vw;
} cf_ukernel_f64;

/* The micro-kernel for a SIMD level (cpu_features.h); a level the build
 * cannot produce falls back to the next lower one. */
/* Orders this thread's non-temporal stores (the *_stream kernels) before its
 * later stores: call after the last streaming call, before the
 * end of the parallel region whose threads then read the output. */
void cf_ukernel_stream_fence(void);

cf_ukernel_f32 cf_ukernel_select_f32(int simd_level);
cf_ukernel_f64 cf_ukernel_select_f64(int simd_level);

/* The NEON tables (ukernel_neon.c; defined on AArch64 only, where
 * cf_ukernel_select_* returns them from level CF_SIMD_NEON). */
cf_ukernel_f32 cf_ukernel_neon_f32(void);
cf_ukernel_f64 cf_ukernel_neon_f64(void);

#ifdef __cplusplus
}
#endif
#endif
