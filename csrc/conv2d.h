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
 * Method: direct convolution. The forward (and the stride-1 input gradient,
 * a forward convolution of dy with the flipped kernel) runs register-blocked
 * micro-kernels (ukernel.h) that read a tile of output pixels straight from a
 * zero-padded copy of each image in a per-thread workspace, the accumulators
 * in registers, bias and ReLU applied in the store; im2col panels remain for
 * small batches and odd geometries. Strided input gradients are stride-1
 * convolutions per output phase (GEMM + col2im beyond 16 phases, and for a
 * kernel with a NaN or inf tap, whose products with the padding would not be
 * the gradient's). The kernel gradient reduces over pixels in fixed chunks
 * summed in a fixed order, so every result is bit-identical for any thread
 * count. The drivers are in conv2d_forward_impl.h, conv2d_input_grad_impl.h
 * and conv2d_kernel_grad_impl.h; tile and block sizes in blocking.h.
 *
 * The boundary (cnnfast/_spec.py resolves the geometry; the Cython wrappers
 * copy it into cf_conv2d_shape and csrc/geometry.c checks the struct) has
 * validated everything: sizes >= 1 (n >= 0), oh/ow consistent with the
 * padding, no overflow. */
#ifndef CNNFAST_CONV2D_H
#define CNNFAST_CONV2D_H

#include <stdint.h>

#include "pool2d.h"

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
    int64_t winograd;    /* 0: direct; 2 or 4: Winograd F(m x m, 3 x 3) with
                          * m = this (3x3, stride 1, dilation 1 only;
                          * winograd.h) */
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

/* Convolution, then max or min pooling (mode CF_POOL_MAX / CF_POOL_MIN) of
 * its output, in one pass: the convolution output is made one pooling band
 * at a time in per-thread scratch and never stored whole. `p` describes the
 * pooling of the convolution output: p->n = s->n, p->h = s->oh, p->w = s->ow,
 * p->c = s->f, no padding, non-overlapping windows (sh >= kh, sw >= kw).
 * relu applies before the pooling. y (n, p->oh, p->ow, f) gets the pooled
 * values, argmax (same shape, may be NULL) the winners as flat indices into
 * the convolution output's (oh, ow) plane, exactly as pool2d.h. Results are
 * bit-identical to cf_conv2d_forward followed by cf_pool2d_forward. With
 * mark_dead, argmax is -1 wherever the pooled value is not > 0 (a window
 * that ReLU zeroed): the backward then needs no ymask, for the index
 * matches no cell and passes no gradient, which is what the mask does. */
int cf_conv2d_pool_forward_f32(const cf_conv2d_shape *s, const cf_pool2d_shape *p,
                               int mode, const float *x, const float *kernel,
                               const float *bias, int relu, float *y, int32_t *argmax,
                               int mark_dead, int nthreads);
int cf_conv2d_pool_forward_f64(const cf_conv2d_shape *s, const cf_pool2d_shape *p,
                               int mode, const double *x, const double *kernel,
                               const double *bias, int relu, double *y, int32_t *argmax,
                               int mark_dead, int nthreads);

/* Gradients of that pair from dyp, the gradient of the pooled output, and
 * the forward's argmax. With ymask (the pooled forward output of a pair with
 * ReLU; NULL without) dyp counts only where ymask > 0: for max/min pooling
 * that is the ReLU mask, applied as each pooled row is unpooled. dx (may be NULL: not
 * computed), dkernel and dbias (may be NULL). The same as cf_pool2d_backward
 * into a full dy, then cf_conv2d_backward_input and _kernel, without the
 * full dy: each image (input gradient, stride-1 convolutions) or block of
 * rows (kernel gradient) is unpooled into per-thread scratch when it is
 * needed. argmax must come from cf_conv2d_pool_forward on the same shapes;
 * any value is memory-safe (a gradient only lands inside its own window). */
int cf_conv2d_pool_backward_f32(const cf_conv2d_shape *s, const cf_pool2d_shape *p, int mode,
                                const float *x, const float *dyp, const float *ymask,
                                const int32_t *argmax, const float *kernel, float *dx,
                                float *dkernel, float *dbias, int nthreads);
int cf_conv2d_pool_backward_f64(const cf_conv2d_shape *s, const cf_pool2d_shape *p, int mode,
                                const double *x, const double *dyp, const double *ymask,
                                const int32_t *argmax, const double *kernel, double *dx,
                                double *dkernel, double *dbias, int nthreads);

#ifdef __cplusplus
}
#endif
#endif
