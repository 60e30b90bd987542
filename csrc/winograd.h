/* Winograd convolution for 3x3, stride-1, dilation-1 layers (NHWC, the
 * layouts of conv2d.h): F(m x m, 3 x 3) with output tiles of m = 2 or 4.
 *
 * Per output tile of m x m pixels and an alpha x alpha input tile (alpha =
 * m + 2), the convolution is Y = A^T [(G g G^T) . (B^T d B)] A, so the
 * 9 * m^2 multiply-adds per (channel, filter) pair become alpha^2 products
 * in the transform domain: alpha^2 independent matrix products, one per
 * transform-domain position, of (tiles x C) by (C x F). Those run on the
 * GEMM micro-kernels of ukernel.h (every SIMD level); the transforms are
 * plain loops over channels, compiled per instruction set (winograd.c).
 *
 * The kernel gradient is the adjoint of the same map:
 *   dg = G^T [ sum_tiles (B^T d B) . (A dY A^T) ] G
 * (the transpose of G, not an inverse of it: exact), the sum over tiles being
 * the alpha^2 products V^T W reduced in fixed chunks of tiles, summed in a
 * fixed order, always as F(2x2, 3x3) (F(4x4)'s kernel-gradient error is over
 * the bound its forward keeps). The input gradient is the forward of dy with
 * the flipped, channel-transposed kernel. Every output is computed by one thread, each
 * sum in a fixed order: bit-identical for any thread count.
 *
 * s->winograd holds m; the boundary (geometry.c) has checked that the layer
 * is 3x3, stride 1, dilation 1. A kernel with a non-finite tap runs the
 * direct path instead (a transform would spread the tap's inf or NaN over
 * products with the padding's zeros). */
#ifndef CNNFAST_WINOGRAD_H
#define CNNFAST_WINOGRAD_H

#include <stdint.h>

#include "conv2d.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Return 0, or -1 when scratch memory could not be allocated. Same
 * contracts as the cf_conv2d_* functions of conv2d.h. */
int cf_winograd_forward_f32(const cf_conv2d_shape *s, const float *x, const float *kernel,
                            const float *bias, int relu, float *y, int nthreads);
int cf_winograd_forward_f64(const cf_conv2d_shape *s, const double *x, const double *kernel,
                            const double *bias, int relu, double *y, int nthreads);
/* Convolution then max/min pooling, as cf_conv2d_pool_forward_* (conv2d.h):
 * the output transform writes each work item's rows to per-thread scratch,
 * pooled from there at once; the same bits as cf_winograd_forward then
 * cf_pool2d_forward. */
int cf_winograd_pool_forward_f32(const cf_conv2d_shape *s, const cf_pool2d_shape *p, int mode,
                                 const float *x, const float *kernel, const float *bias,
                                 int relu, float *y, int32_t *argmax, int mark_dead,
                                 int nthreads);
int cf_winograd_pool_forward_f64(const cf_conv2d_shape *s, const cf_pool2d_shape *p, int mode,
                                 const double *x, const double *kernel, const double *bias,
                                 int relu, double *y, int32_t *argmax, int mark_dead,
                                 int nthreads);
int cf_winograd_backward_input_f32(const cf_conv2d_shape *s, const float *dy,
                                   const float *kernel, float *dx, int nthreads);
int cf_winograd_backward_input_f64(const cf_conv2d_shape *s, const double *dy,
                                   const double *kernel, double *dx, int nthreads);
int cf_winograd_backward_kernel_f32(const cf_conv2d_shape *s, const float *x,
                                    const float *dy, float *dkernel, float *dbias,
                                    int nthreads);
int cf_winograd_backward_kernel_f64(const cf_conv2d_shape *s, const double *x,
                                    const double *dy, double *dkernel, double *dbias,
                                    int nthreads);

#ifdef __cplusplus
}
#endif
#endif
