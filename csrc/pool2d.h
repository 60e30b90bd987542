/* 2-D max / average / min pooling, forward and backward, NHWC layout.
 *
 * Layout: x is (n, h, w, c) C-contiguous, y/dy are (n, oh, ow, c) C-contiguous.
 * Window of output (oh_i, ow_i) covers input rows ih = oh_i*sh - pt + [0, kh)
 * and columns iw = ow_i*sw - pl + [0, kw); cells outside [0,h) x [0,w) are
 * padding: they never win a max/min and are not counted by avg (the divisor is
 * the number of in-bounds cells). The boundary guarantees 0 <= pt, pl < kh, kw
 * and that every window holds at least one in-bounds cell, and that all sizes
 * are >= 1 except n (n may be 0).
 *
 * Max/min ties go to the first cell in row-major window order; a NaN in a
 * window makes the result NaN, and the first NaN is the "winner" that gets
 * the gradient.
 *
 * argmax (optional, may be NULL): for max/min, the winning cell of each output
 * element as a flat index ih*w + iw within its (h, w) plane (like PyTorch's
 * return_indices), same shape as y.
 *
 * Threads: `nthreads` OpenMP threads (ignored without OpenMP). Results are
 * bit-identical for any thread count: every output element is written by one
 * thread, and overlapping-window backward accumulates in a fixed order. */
#ifndef CNNFAST_POOL2D_H
#define CNNFAST_POOL2D_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum cf_pool_mode { CF_POOL_MAX = 0, CF_POOL_AVG = 1, CF_POOL_MIN = 2 };

typedef struct {
    int64_t n, h, w, c;  /* input sizes */
    int64_t oh, ow;      /* output sizes */
    int64_t kh, kw;      /* window */
    int64_t sh, sw;      /* strides */
    int64_t pt, pl;      /* top / left padding (bottom/right implied by oh, ow) */
} cf_pool2d_shape;

/* y = pool(x). argmax may be NULL (and is ignored for avg). */
void cf_pool2d_forward_f32(const cf_pool2d_shape *s, int mode, const float *x,
                           float *y, int32_t *argmax, int nthreads);
void cf_pool2d_forward_f64(const cf_pool2d_shape *s, int mode, const double *x,
                           double *y, int32_t *argmax, int nthreads);

/* dx = d pool / dx applied to dy. dx is fully overwritten (zeros where no
 * gradient lands). For max/min, if argmax != NULL it must come from the forward
 * of the same x, and x is not read; otherwise the winners are found again from x.
 * For avg, x and argmax are not read (either may be NULL). With count_strays
 * (and argmax), returns the number of argmax entries that are not a cell of
 * their own window, whose gradient was dropped; counted on the way, so a
 * caller can refuse indices it did not make without a second pass over them.
 * Otherwise returns 0. */
int64_t cf_pool2d_backward_f32(const cf_pool2d_shape *s, int mode, const float *dy,
                               const float *x, const int32_t *argmax, float *dx,
                               int count_strays, int nthreads);
int64_t cf_pool2d_backward_f64(const cf_pool2d_shape *s, int mode, const double *dy,
                               const double *x, const int32_t *argmax, double *dx,
                               int count_strays, int nthreads);

/* The position, in argmax's (n, oh, ow, c) order, of the first index that is
 * not a cell of its own window (ih * w + iw with the cell inside the window
 * and the plane), or -1 when every index is one. The backward drops a
 * gradient whose index is not in its window; the boundary runs this pass to
 * name the first such index once the backward has counted some, and before
 * the fused convolution + pooling backward, which does not count them.
 * argmax's shape is (s->n, s->oh, s->ow, s->c). */
int64_t cf_pool2d_first_stray_index(const cf_pool2d_shape *s, const int32_t *argmax,
                                    int nthreads);

/* One output row from one band of input rows, for the fused convolution +
 * pooling drivers (conv2d.h). `band` has n = 1, oh = 1, h = kh, no padding
 * and sh >= kh, sw >= kw; argmax indices are relative to the band
 * (ih * w + iw with ih < kh). The backward overwrites the whole band, zeros
 * where no gradient lands. Single-threaded; max/min only for the backward. */
void cf_pool2d_band_forward_f32(const cf_pool2d_shape *band, int mode, const float *x,
                                float *y, int32_t *argmax);
void cf_pool2d_band_forward_f64(const cf_pool2d_shape *band, int mode, const double *x,
                                double *y, int32_t *argmax);
/* A band's argmax (n indices) made relative to the whole plane: + shift
 * (the band's first row times w), or -1 with mark_dead where the pooled
 * value y is not > 0: that index matches no cell, so the backward passes no
 * gradient there (the ReLU mask of a fused ReLU + pooling). */
void cf_pool2d_band_argmax_to_plane_f32(int64_t n, const float *y, int64_t shift,
                                        int mark_dead, int32_t *argmax);
void cf_pool2d_band_argmax_to_plane_f64(int64_t n, const double *y, int64_t shift,
                                        int mark_dead, int32_t *argmax);
void cf_pool2d_band_backward_f32(const cf_pool2d_shape *band, int mode, const float *dy,
                                 const int32_t *argmax, float *dx);
void cf_pool2d_band_backward_f64(const cf_pool2d_shape *band, int mode, const double *dy,
                                 const int32_t *argmax, double *dx);

#ifdef __cplusplus
}
#endif
#endif
