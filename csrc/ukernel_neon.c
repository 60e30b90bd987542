/* NEON micro-kernels (AArch64 Advanced SIMD): the GEMM, few-rows GEMM,
 * direct-convolution, taps (kernel gradient) and column-sum tiles of ukernel.h, from the same
 * templates as the AVX2 and AVX-512 kernels, with 128-bit vectors.
 *
 * Advanced SIMD is part of the AArch64 baseline, so these need no target
 * attribute and no run-time check; cf_ukernel_select_* (ukernel.c) returns
 * them from level CF_SIMD_NEON. Each output is the same chain of fused
 * multiply-adds in the same (tap, channel) order as the x86 kernels'.
 *
 * NEON has no lane-masked loads and stores: the tails (fewer than NR
 * columns) go through a small stack buffer (neon_ld / neon_st), outside the
 * reduction loops except where B itself is a tail. Compiled to nothing off
 * AArch64. */
#include "ukernel.h"

#include "cpu_features.h"

#if CF_HAVE_NEON
#include <arm_neon.h>
#include <stddef.h>

#if defined(__clang__)
#define UK_UNROLL4 _Pragma("clang loop unroll_count(4)")
#else
#define UK_UNROLL4 _Pragma("GCC unroll 4")
/* GCC's scheduling before register allocation hoists the A loads of later k
 * steps and then spills accumulators to make room for them; without it the
 * 24 accumulators stay in registers. */
#pragma GCC optimize("no-schedule-insns")
#endif

#define UK_COUNT_ONE(i) +1
#define UK_CHECK_ROWS(name, LIST, n) typedef char name[(0 LIST(UK_COUNT_ONE)) == (n) ? 1 : -1];

/* The first n (<= 0: none, >= the width: all) lanes from p, the rest zero;
 * stores likewise write only the first n lanes. */
static inline float32x4_t neon_ld_f32(const float *p, int n)
{
    if (n >= 4)
        return vld1q_f32(p);
    float t[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int i = 0; i < n; i++)
        t[i] = p[i];
    return vld1q_f32(t);
}

static inline void neon_st_f32(float *p, int n, float32x4_t v)
{
    if (n >= 4) {
        vst1q_f32(p, v);
        return;
    }
    float t[4];
    vst1q_f32(t, v);
    for (int i = 0; i < n; i++)
        p[i] = t[i];
}

static inline float64x2_t neon_ld_f64(const double *p, int n)
{
    if (n >= 2)
        return vld1q_f64(p);
    return n == 1 ? vsetq_lane_f64(p[0], vdupq_n_f64(0.0), 0) : vdupq_n_f64(0.0);
}

static inline void neon_st_f64(double *p, int n, float64x2_t v)
{
    if (n >= 2)
        vst1q_f64(p, v);
    else if (n == 1)
        p[0] = vgetq_lane_f64(v, 0);
}

/* ReLU as the scalar kernels define it, r < 0 ? 0 : r: -0 and NaN pass
 * through (a max instruction would turn -0 into +0). */
#define NEON_RELU_F32(x) vbslq_f32(vcltzq_f32(x), vdupq_n_f32(0.0f), (x))
#define NEON_RELU_F64(x) vbslq_f64(vcltzq_f64(x), vdupq_n_f64(0.0), (x))

#define UK_TARGET
#define UK_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13)
UK_CHECK_ROWS(uk_rows_check_neon, UK_ROWS, CF_NEON_MR)
/* rows 0-6 from p0, 7-13 from p7 (ukernel_direct_impl.h) */
#define UK_AROW(i) ((i) < 7 ? p0 + (i) * r : p7 + ((i) - 7) * r)
#define UK_M int
#define UK_MASK(n) (n)

/* ---- float32: 14 x 8 ---------------------------------------------------- */
#define UK_NAME uk_gemm_neon_f32
#define UK_T float
#define UK_VW 4
#define UK_V float32x4_t
#define UK_ZERO() vdupq_n_f32(0.0f)
#define UK_LOADM(p, mk) neon_ld_f32((p), (mk))
#define UK_LOADF(p, mk) vld1q_f32(p)
#define UK_STOREM(p, mk, v) neon_st_f32((p), (mk), (v))
#define UK_BCAST(p) vld1q_dup_f32(p)
#define UK_FMA(x, y, z) vfmaq_f32((z), (x), (y))
#define UK_ADD(x, y) vaddq_f32((x), (y))
#define UK_RELU(x) NEON_RELU_F32(x)
#include "ukernel_impl.h"
#define UK_TNAME uk_taps_neon_f32
#include "ukernel_taps_impl.h"
#undef UK_TNAME
#define UK_CSNAME uk_colsum_neon_f32
#include "ukernel_colsum_impl.h"
#undef UK_CSNAME
#define UK_RNAME uk_rows_neon_f32
#include "ukernel_rows_impl.h"
#undef UK_RNAME
#define UK_DNAME uk_direct_neon_f32
#include "ukernel_direct_impl.h"
#undef UK_DNAME
#undef UK_NAME
#undef UK_T
#undef UK_VW
#undef UK_V
#undef UK_ZERO
#undef UK_LOADM
#undef UK_LOADF
#undef UK_STOREM
#undef UK_BCAST
#undef UK_FMA
#undef UK_ADD
#undef UK_RELU

/* ---- float64: 14 x 4 ---------------------------------------------------- */
#define UK_NAME uk_gemm_neon_f64
#define UK_T double
#define UK_VW 2
#define UK_V float64x2_t
#define UK_ZERO() vdupq_n_f64(0.0)
#define UK_LOADM(p, mk) neon_ld_f64((p), (mk))
#define UK_LOADF(p, mk) vld1q_f64(p)
#define UK_STOREM(p, mk, v) neon_st_f64((p), (mk), (v))
#define UK_BCAST(p) vld1q_dup_f64(p)
#define UK_FMA(x, y, z) vfmaq_f64((z), (x), (y))
#define UK_ADD(x, y) vaddq_f64((x), (y))
#define UK_RELU(x) NEON_RELU_F64(x)
#include "ukernel_impl.h"
#define UK_TNAME uk_taps_neon_f64
#include "ukernel_taps_impl.h"
#undef UK_TNAME
#define UK_CSNAME uk_colsum_neon_f64
#include "ukernel_colsum_impl.h"
#undef UK_CSNAME
#define UK_RNAME uk_rows_neon_f64
#include "ukernel_rows_impl.h"
#undef UK_RNAME
#define UK_DNAME uk_direct_neon_f64
#include "ukernel_direct_impl.h"
#undef UK_DNAME

cf_ukernel_f32 cf_ukernel_neon_f32(void)
{
    const cf_ukernel_f32 uk = {
        .fn = uk_gemm_neon_f32, .rows = uk_rows_neon_f32, .direct = uk_direct_neon_f32,
        .narrow = NULL,
        .taps = uk_taps_neon_f32, .taps_wide = NULL, .taps_short = NULL,
        .taps_channels = NULL, .taps_krow = NULL, .colsum = uk_colsum_neon_f32,
        .direct_wide = NULL, .pack_t = NULL,
        .mr = CF_NEON_MR, .nr = CF_NEON_NR_F32, .vw = CF_NEON_VW_F32};
    return uk;
}

cf_ukernel_f64 cf_ukernel_neon_f64(void)
{
    const cf_ukernel_f64 uk = {
        .fn = uk_gemm_neon_f64, .rows = uk_rows_neon_f64, .direct = uk_direct_neon_f64,
        .narrow = NULL,
        .taps = uk_taps_neon_f64, .taps_wide = NULL, .taps_short = NULL,
        .taps_channels = NULL, .taps_krow = NULL, .colsum = uk_colsum_neon_f64,
        .direct_wide = NULL, .pack_t = NULL,
        .mr = CF_NEON_MR, .nr = CF_NEON_NR_F64, .vw = CF_NEON_VW_F64};
    return uk;
}

#else
/* ISO C forbids an empty translation unit */
typedef int cf_ukernel_neon_unused;
#endif
