/* 2-D convolution (cross-correlation, as in every DL framework), NHWC layout,
 * forward and the three gradients.
 *
 * Layout (all C-contiguous):
 *   x  (n, h, w, c)        kernel (kh, kw, c, f)  -- Keras order
 *   y  (n, oh, ow, f)      bias (f)
 * Output pixel (oh_i, ow_i) reads input rows ih = oh_i*sh - pt + kh_i*dh and
 * columns iw = ow_i*sw - pl + kw_i*dw; outside [0,h) x [0,w) is zero padding.
 * pt/pl may be any value the boundary resolved (>= 0 for user padding); the
 * backward-input path also uses negative values internally.
 *
 * Method: implicit GEMM. Output pixels are the GEMM rows, filters the columns,
 * (kh, kw, c) the reduction: y[p, :] = patch(p) . kernel[K, f]. Each thread
 * im2col-packs a tile of pixels into an MR-interleaved panel in its own
 * reusable workspace and runs the register-blocked micro-kernel (ukernel.h).
 * The kernel gradient reduces over pixels in fixed chunks summed in a fixed
 * order, so every result is bit-identical for any thread count.
 *
 * The boundary (cnnfast/_kernels.pyx + cnnfast/ops.py) validated everything:
 * sizes >= 1 (n >= 0), oh/ow consistent with the padding, no overflow. */
#ifndef CNNFAST_CONV2D_H
#define CNNFAST_CONV2D_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int64_t n, h, w, c;  /* input */
    int64_t oh, ow, f;   /* output */
    int64_t kh, kw;      /* kernel window */
    int64_t sh, sw;      /* strides */
    int64_t dh, dw;      /* dilation */
    int64_t pt, pl;      /* top / left padding */
} cf_conv2d_shape;

/* Return 0 on success, -1 if scratch memory could not be allocated (the
 * boundary turns that into MemoryError). */

/* y = conv(x, kernel) (+ bias) (then relu if relu != 0). bias may be NULL. */
int cf_conv2d_forward_f32(const cf_conv2d_shape *s, const float *x,
                          const float *kernel, const float *bias, int relu,
                          float *y, int nthreads);
int cf_conv2d_forward_f64(const cf_conv2d_shape *s, const double *x,
                          const double *kernel, const double *bias, int relu,
                          double *y, int nthreads);

/* dx = d conv / d x applied to dy (dx fully overwritten). */
int cf_conv2d_backward_input_f32(const cf_conv2d_shape *s, const float *dy,
                                 const float *kernel, float *dx, int nthreads);
int cf_conv2d_backward_input_f64(const cf_conv2d_shape *s, const double *dy,
                                 const double *kernel, double *dx, int nthreads);

/* dkernel (kh, kw, c, f) and dbias (f, may be NULL), fully overwritten. */
int cf_conv2d_backward_kernel_f32(const cf_conv2d_shape *s, const float *x,
                                  const float *dy, float *dkernel, float *dbias,
                                  int nthreads);
int cf_conv2d_backward_kernel_f64(const cf_conv2d_shape *s, const double *x,
                                  const double *dy, double *dkernel,
                                  double *dbias, int nthreads);

#ifdef __cplusplus
}
#endif
#endif
