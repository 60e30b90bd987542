/* NEON (AArch64 Advanced SIMD) pooling rows: pool2d_simd_impl.h instantiated
 * for 128-bit vectors, float32 (4 lanes) and float64 (2 lanes), included once
 * by pool2d.c after the scalar rows of both types.
 *
 * As for AVX2: no lane masks (full vectors only, the channel tail goes to the
 * scalar row), masks are all-ones / all-zeros vectors, the `k` arguments are
 * ignored. The comparisons reproduce the scalar rows' order and NaN rules
 * bit for bit (pool2d_impl.h). No target attribute: NEON is the AArch64
 * baseline. */
#include <arm_neon.h>

#define CF_TGT
#define CF_ISA neon
#define CF_MASKED 0

#define T float
#define SFX f32
#define VT float32x4_t
#define IT int32x4_t
#define KT uint32x4_t
#define VL 4
#define K_TAIL(r) vdupq_n_u32(0)
#define V_LD(p, k) vld1q_f32(p)
#define V_ST(p, k, v) vst1q_f32((p), (v))
#define V_SET1(a) vdupq_n_f32(a)
#define V_ZERO() vdupq_n_f32(0.0f)
#define V_ADD(a, b) vaddq_f32((a), (b))
#define V_MUL(a, b) vmulq_f32((a), (b))
#define V_DIV(a, b) vdivq_f32((a), (b))
#define V_BLEND(m, a, b) vbslq_f32((m), (b), (a))
#define V_CANON(v) vbslq_f32(vceqq_f32((v), (v)), (v), vdupq_n_f32(NAN))
#define V_UPD_MAX(v, b) vandq_u32(vceqq_f32((b), (b)), vmvnq_u32(vcleq_f32((v), (b))))
#define V_UPD_MIN(v, b) vandq_u32(vceqq_f32((b), (b)), vmvnq_u32(vcgeq_f32((v), (b))))
/* selects, not FMAX/FMIN: those order -0 below +0 and return NaN for a NaN operand */
#define V_MAX(v, b) vbslq_f32(vcgtq_f32((v), (b)), (v), (b))
#define V_MIN(v, b) vbslq_f32(vcltq_f32((v), (b)), (v), (b))
#define V_ANY_NAN4(a, b, c, d)                                                        \
    (vminvq_u32(vandq_u32(vandq_u32(vceqq_f32((a), (a)), vceqq_f32((b), (b))),          \
                          vandq_u32(vceqq_f32((c), (c)), vceqq_f32((d), (d))))) == 0)
#define I_LD(p, k) vld1q_s32(p)
#define I_ST(p, k, v) vst1q_s32((p), (v))
#define I_SET1(a) vdupq_n_s32(a)
#define I_BLEND(m, a, b) vbslq_s32((m), (b), (a))
#define I_EQ(a, b) vceqq_s32((a), (b))
#define K_NONE() vdupq_n_u32(0)
#define K_OR(a, b) vorrq_u32((a), (b))
#define K_MISSES(h, k) (4 - (int)vaddvq_u32(vshrq_n_u32((h), 31)))
#include "pool2d_simd_impl.h"
#undef T
#undef SFX

#define T double
#define SFX f64
#define VT float64x2_t
#define IT int32x2_t
#define KT uint64x2_t
#define VL 2
#define K_TAIL(r) vdupq_n_u64(0)
#define V_LD(p, k) vld1q_f64(p)
#define V_ST(p, k, v) vst1q_f64((p), (v))
#define V_SET1(a) vdupq_n_f64(a)
#define V_ZERO() vdupq_n_f64(0.0)
#define V_ADD(a, b) vaddq_f64((a), (b))
#define V_MUL(a, b) vmulq_f64((a), (b))
#define V_DIV(a, b) vdivq_f64((a), (b))
#define V_BLEND(m, a, b) vbslq_f64((m), (b), (a))
#define V_CANON(v) vbslq_f64(vceqq_f64((v), (v)), (v), vdupq_n_f64(NAN))
#define V_UPD_MAX(v, b) \
    vandq_u64(vceqq_f64((b), (b)), vreinterpretq_u64_u32(vmvnq_u32(vreinterpretq_u32_u64(vcleq_f64((v), (b))))))
#define V_UPD_MIN(v, b) \
    vandq_u64(vceqq_f64((b), (b)), vreinterpretq_u64_u32(vmvnq_u32(vreinterpretq_u32_u64(vcgeq_f64((v), (b))))))
#define V_MAX(v, b) vbslq_f64(vcgtq_f64((v), (b)), (v), (b))
#define V_MIN(v, b) vbslq_f64(vcltq_f64((v), (b)), (v), (b))
#define V_ANY_NAN4(a, b, c, d)                                                               \
    (vminvq_u32(vreinterpretq_u32_u64(vandq_u64(vandq_u64(vceqq_f64((a), (a)), vceqq_f64((b), (b))), \
                                                vandq_u64(vceqq_f64((c), (c)), vceqq_f64((d), (d)))))) == 0)
/* two int32 indices per two doubles: the 64-bit lane masks narrowed, and
 * the 32-bit comparisons sign-extended back to 64-bit lanes */
#define I_LD(p, k) vld1_s32(p)
#define I_ST(p, k, v) vst1_s32((p), (v))
#define I_SET1(a) vdup_n_s32(a)
#define I_BLEND(m, a, b) vbsl_s32(vmovn_u64(m), (b), (a))
#define I_EQ(a, b) vreinterpretq_u64_s64(vmovl_s32(vreinterpret_s32_u32(vceq_s32((a), (b)))))
#define K_NONE() vdupq_n_u64(0)
#define K_OR(a, b) vorrq_u64((a), (b))
#define K_MISSES(h, k) (2 - (int)vaddvq_u64(vshrq_n_u64((h), 63)))
#include "pool2d_simd_impl.h"
#undef T
#undef SFX
#undef CF_TGT
#undef CF_ISA
#undef CF_MASKED
