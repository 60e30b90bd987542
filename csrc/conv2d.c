/* 2-D convolution kernels (NHWC), float32 and float64, and the fused
 * convolution + pooling drivers: see conv2d.h. */
#include "conv2d.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blocking.h"
#include "cpu_features.h"
#include "pool2d.h"
#include "prefetch.h"
#include "runtime.h"
#include "threads.h"
#include "ukernel.h"
#include "winograd.h"
#include "workspace.h"

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
#define CV_PX_FN cf_ukernel_direct_px_f32_fn
#define CV_DIRECT_FN cf_ukernel_direct_f32_fn
#define CF_POOL_FWD cf_pool2d_forward_f32
#define CF_POOL_BWD cf_pool2d_backward_f32
#define CF_POOL_BAND_FWD cf_pool2d_band_forward_f32
#define CF_POOL_ARGMAX_TO_PLANE cf_pool2d_band_argmax_to_plane_f32
#define CF_POOL_BAND_BWD cf_pool2d_band_backward_f32
#include "conv2d_common_impl.h"
#include "conv2d_forward_impl.h"
#include "conv2d_input_grad_impl.h"
#include "conv2d_kernel_grad_impl.h"
#include "conv2d_pool_impl.h"
#undef CF_POOL_FWD
#undef CF_POOL_BWD
#undef CF_POOL_BAND_FWD
#undef CF_POOL_ARGMAX_TO_PLANE
#undef CF_POOL_BAND_BWD
#undef CV_T
#undef CV_SFX
#undef CV_UK
#undef CV_SELECT
#undef CV_PX_FN
#undef CV_DIRECT_FN

#define CV_T double
#define CV_SFX f64
#define CV_UK cf_ukernel_f64
#define CV_SELECT cf_ukernel_select_f64
#define CV_PX_FN cf_ukernel_direct_px_f64_fn
#define CV_DIRECT_FN cf_ukernel_direct_f64_fn
#define CF_POOL_FWD cf_pool2d_forward_f64
#define CF_POOL_BWD cf_pool2d_backward_f64
#define CF_POOL_BAND_FWD cf_pool2d_band_forward_f64
#define CF_POOL_ARGMAX_TO_PLANE cf_pool2d_band_argmax_to_plane_f64
#define CF_POOL_BAND_BWD cf_pool2d_band_backward_f64
#include "conv2d_common_impl.h"
#include "conv2d_forward_impl.h"
#include "conv2d_input_grad_impl.h"
#include "conv2d_kernel_grad_impl.h"
#include "conv2d_pool_impl.h"
#undef CF_POOL_FWD
#undef CF_POOL_BWD
#undef CF_POOL_BAND_FWD
#undef CF_POOL_ARGMAX_TO_PLANE
#undef CF_POOL_BAND_BWD
#undef CV_T
#undef CV_SFX
#undef CV_UK
#undef CV_SELECT
#undef CV_PX_FN
#undef CV_DIRECT_FN

#undef CV_FN
#undef CV_CAT
#undef CV_CAT2
