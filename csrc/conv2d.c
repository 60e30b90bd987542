/* 2-D convolution kernels (NHWC), float32 and float64, and the fused
 * convolution + pooling drivers: see conv2d.h. */
#include "conv2d.h"

#include <stdlib.h>
#include <string.h>

#include "cpu_features.h"
#include "pool2d.h"
#include "prefetch.h"
#include "runtime.h"
#include "threads.h"
#include "ukernel.h"
#include "workspace.h"

/* Tunables (measured on a 2-core AVX-512 machine; see the benchmark notes):
 * micro-panels per backward-input tile, kernel-gradient chunking. */
#define CF_CONV_TILE_PANELS 8
#define CF_CONV_NARROW_MAX_F 4
/* filters from which the forward uses the 6 x 64 tile (AVX-512 float32) */
#define CF_CONV_WIDE_MIN_F 48
/* scratch for the convolution rows of a group of pooled rows (fused pooling) */
#define CF_CONV_BAND_BYTES (int64_t)(96 * 1024)
/* elements a padded image copy may exceed 4x the input by before the
 * im2col path is used instead */
#define CF_CONV_PAD_ALLOWANCE (int64_t)(1 << 20)
#define CF_CONV_DW_CHUNK 512
#define CF_CONV_DW_DIRECT_MIN_N 4
#define CF_CONV_DW_BLOCK_PIXELS 512
/* strided input gradients by phases up to this many (sh * sw) */
#define CF_CONV_MAX_PHASES 16
#define CF_CONV_DW_MAX_CHUNKS 32
#define CF_CONV_DW_MAX_PARTIAL (int64_t)(16 * 1024 * 1024)
/* output pixels a kernel-gradient chunk covers at least (whole images): each
 * chunk's partial is written and read back once, so small images make few,
 * larger chunks (conv b: 8 images of 14 x 14, 16 chunks instead of 32, +5%
 * at 2 threads, +7% on one core; d +2-6%) */
#define CF_CONV_DW_MIN_PIXELS 1536
/* Prefetch the next image of a kernel-gradient chunk (prefetch.h) when its
 * inputs take at most this many bytes and each image makes at least this
 * many tile calls to spread the requests over. */
#define CF_CONV_DW_PREFETCH_MAX_BYTES (int64_t)(256 * 1024)
#define CF_CONV_DW_PREFETCH_MIN_CALLS 16

/* Split `items` (images or pixels) into at most `want` chunks (also capped by
 * CF_CONV_DW_MAX_CHUNKS and by the memory of one `partial`-element partial
 * per chunk) of `*chunk` items each; returns the number of chunks. Depends on
 * the problem only, never on the thread count: that is what makes the
 * kernel gradient bit-identical for any number of threads. */
static int64_t cf_dw_chunks(int64_t items, int64_t want, int64_t partial, int64_t *chunk)
{
    int64_t n = want < CF_CONV_DW_MAX_CHUNKS ? want : CF_CONV_DW_MAX_CHUNKS;
    if (n < 1)
        n = 1;
    while (n > 1 && n * partial > CF_CONV_DW_MAX_PARTIAL)
        n--;
    *chunk = (items + n - 1) / n;
    return (items + *chunk - 1) / *chunk;
}

/* The drivers, one instantiation per element type: conv2d_common_impl.h
 * (padding, im2col, unpooling), then the forward, the input gradient, the
 * kernel gradient and the fused convolution + pooling entry points, each
 * using the ones before it. CV_FN(name) is name_f32 / name_f64. */
#define CV_CAT2(a, b) a##_##b
#define CV_CAT(a, b) CV_CAT2(a, b)
#define CV_FN(name) CV_CAT(name, CV_SFX)

#define CV_T float
#define CV_SFX f32
#define CV_UK cf_ukernel_f32
#define CV_SELECT cf_ukernel_select_f32
#define CF_POOL_FWD cf_pool2d_forward_f32
#define CF_POOL_BWD cf_pool2d_backward_f32
#define CF_POOL_BAND_FWD cf_pool2d_band_forward_f32
#define CF_POOL_BAND_BWD cf_pool2d_band_backward_f32
#include "conv2d_common_impl.h"
#include "conv2d_forward_impl.h"
#include "conv2d_input_grad_impl.h"
#include "conv2d_kernel_grad_impl.h"
#include "conv2d_pool_impl.h"
#undef CF_POOL_FWD
#undef CF_POOL_BWD
#undef CF_POOL_BAND_FWD
#undef CF_POOL_BAND_BWD
#undef CV_T
#undef CV_SFX
#undef CV_UK
#undef CV_SELECT

#define CV_T double
#define CV_SFX f64
#define CV_UK cf_ukernel_f64
#define CV_SELECT cf_ukernel_select_f64
#define CF_POOL_FWD cf_pool2d_forward_f64
#define CF_POOL_BWD cf_pool2d_backward_f64
#define CF_POOL_BAND_FWD cf_pool2d_band_forward_f64
#define CF_POOL_BAND_BWD cf_pool2d_band_backward_f64
#include "conv2d_common_impl.h"
#include "conv2d_forward_impl.h"
#include "conv2d_input_grad_impl.h"
#include "conv2d_kernel_grad_impl.h"
#include "conv2d_pool_impl.h"
#undef CF_POOL_FWD
#undef CF_POOL_BWD
#undef CF_POOL_BAND_FWD
#undef CF_POOL_BAND_BWD
#undef CV_T
#undef CV_SFX
#undef CV_UK
#undef CV_SELECT

#undef CV_FN
#undef CV_CAT
#undef CV_CAT2
