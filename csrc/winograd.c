/* Winograd convolution, float32 and float64: see winograd.h.
 *
 * winograd_transform_impl.h holds the tile transforms, instantiated here for
 * each instruction set (scalar, AVX2 + FMA, AVX-512 through GCC target
 * attributes: the compiler vectorises their loops over channels) and type,
 * and picked at run time by cf_simd_level(); winograd_impl.h holds the
 * drivers, one per type, whose products run on the GEMM micro-kernels. */
#include "winograd.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blocking.h"
#include "cpu_features.h"
#include "pool2d.h"
#include "runtime.h"
#include "threads.h"
#include "ukernel.h"
#include "workspace.h"

/* The lane loops of the tile transforms store to several planes of one
 * buffer, `plane` elements apart: distinct for any plane >= the lanes, which
 * the drivers guarantee, but not provably so to the compiler, which would
 * otherwise keep them scalar (or version them on more alias checks than it
 * allows). */
#if defined(__clang__)
#define WT_LANES _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define WT_LANES _Pragma("GCC ivdep")
#else
#define WT_LANES
#endif

#define WT_CAT2(a, b) a##_##b
#define WT_CAT(a, b) WT_CAT2(a, b)

/* The transforms of one (instruction set, type), as a table. */
#define WG_TF_TYPE(T, SFX)                                                                 \
    typedef struct {                                                                       \
        void (*input)(int, const T *, int64_t, int64_t, T *, int64_t, int64_t, T *);       \
        void (*output)(int, const T *, int64_t, int64_t, const T *, int, T *, int64_t,     \
                       int64_t, int, int, T *);                                            \
        void (*dy)(int, const T *, int64_t, int64_t, T *, int64_t, int64_t, T *);          \
        void (*add_row)(T *, const T *, int64_t);                                          \
    } WT_CAT(wg_tf, SFX);
WG_TF_TYPE(float, f32)
WG_TF_TYPE(double, f64)

#define WT_TABLE(ISA, SFX)                                                                 \
    static WT_CAT(wg_tf, SFX) WT_CAT(wg_table, WT_CAT(ISA, SFX))(void)                     \
    {                                                                                      \
        WT_CAT(wg_tf, SFX) t;                                                              \
        t.input = WT_CAT(WT_CAT(wt_input_tile, ISA), SFX);                                 \
        t.output = WT_CAT(WT_CAT(wt_output_tile, ISA), SFX);                               \
        t.dy = WT_CAT(WT_CAT(wt_dy_tile, ISA), SFX);                                       \
        t.add_row = WT_CAT(WT_CAT(wt_add_row, ISA), SFX);                                  \
        return t;                                                                          \
    }

/* scalar: the readable definition, the fallback */
#define WT_TGT
#define WT_T float
#define WT_FN(name) WT_CAT(WT_CAT(name, scalar), f32)
#include "winograd_transform_impl.h"
#undef WT_T
#undef WT_FN
#define WT_T double
#define WT_FN(name) WT_CAT(WT_CAT(name, scalar), f64)
#include "winograd_transform_impl.h"
#undef WT_T
#undef WT_FN
#undef WT_TGT
WT_TABLE(scalar, f32)
WT_TABLE(scalar, f64)

#if defined(__x86_64__) || defined(_M_X64)
#define CF_WINO_X86 1
#define WT_TGT __attribute__((target("avx2,fma")))
#define WT_T float
#define WT_FN(name) WT_CAT(WT_CAT(name, avx2), f32)
#include "winograd_transform_impl.h"
#undef WT_T
#undef WT_FN
#define WT_T double
#define WT_FN(name) WT_CAT(WT_CAT(name, avx2), f64)
#include "winograd_transform_impl.h"
#undef WT_T
#undef WT_FN
#undef WT_TGT
WT_TABLE(avx2, f32)
WT_TABLE(avx2, f64)

#define WT_TGT __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
#define WT_T float
#define WT_FN(name) WT_CAT(WT_CAT(name, avx512), f32)
#include "winograd_transform_impl.h"
#undef WT_T
#undef WT_FN
#define WT_T double
#define WT_FN(name) WT_CAT(WT_CAT(name, avx512), f64)
#include "winograd_transform_impl.h"
#undef WT_T
#undef WT_FN
#undef WT_TGT
WT_TABLE(avx512, f32)
WT_TABLE(avx512, f64)
#endif

static wg_tf_f32 wg_transforms_f32(int level)
{
#ifdef CF_WINO_X86
    if (level >= CF_SIMD_AVX512)
        return wg_table_avx512_f32();
    if (level >= CF_SIMD_AVX2)
        return wg_table_avx2_f32();
#endif
    (void)level;
    return wg_table_scalar_f32();
}

static wg_tf_f64 wg_transforms_f64(int level)
{
#ifdef CF_WINO_X86
    if (level >= CF_SIMD_AVX512)
        return wg_table_avx512_f64();
    if (level >= CF_SIMD_AVX2)
        return wg_table_avx2_f64();
#endif
    (void)level;
    return wg_table_scalar_f64();
}

#define WG_CAT2(a, b) a##_##b
#define WG_CAT(a, b) WG_CAT2(a, b)
#define WG_FN(name) WG_CAT(name, WG_SFX)

#define WG_T float
#define WG_SFX f32
#define WG_UK cf_ukernel_f32
#define WG_SELECT cf_ukernel_select_f32
#define WG_TF wg_tf_f32
#define WG_POOL_BAND_FWD cf_pool2d_band_forward_f32
#define WG_POOL_ARGMAX_TO_PLANE cf_pool2d_band_argmax_to_plane_f32
#include "winograd_impl.h"
#undef WG_POOL_BAND_FWD
#undef WG_POOL_ARGMAX_TO_PLANE
#undef WG_T
#undef WG_SFX
#undef WG_UK
#undef WG_SELECT
#undef WG_TF

#define WG_T double
#define WG_SFX f64
#define WG_UK cf_ukernel_f64
#define WG_SELECT cf_ukernel_select_f64
#define WG_TF wg_tf_f64
#define WG_POOL_BAND_FWD cf_pool2d_band_forward_f64
#define WG_POOL_ARGMAX_TO_PLANE cf_pool2d_band_argmax_to_plane_f64
#include "winograd_impl.h"
#undef WG_POOL_BAND_FWD
#undef WG_POOL_ARGMAX_TO_PLANE
#undef WG_T
#undef WG_SFX
#undef WG_UK
#undef WG_SELECT
#undef WG_TF
