/* One entry point per kernel that takes the element type as an argument.
 *
 * Every kernel exists as a float32 and a float64 function (the _f32 / _f64
 * pairs of conv2d.h, pool2d.h, gemm.h, elementwise.h, softmax_xent.h,
 * optim.h). The Cython boundary calls these instead, passing the arrays'
 * element type: the choice between the two is made here, once per kernel,
 * and not repeated in every wrapper. Arrays are passed as untyped pointers of
 * the given element type; scalars in double precision are rounded to float
 * for the float32 kernels, as the float32 kernels compute in float. */
#ifndef CNNFAST_DISPATCH_H
#define CNNFAST_DISPATCH_H

#include <stdint.h>

#include "conv2d.h"
#include "pool2d.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { CF_FLOAT32 = 0, CF_FLOAT64 = 1 } cf_dtype;

int cf_conv2d_forward_by_dtype(cf_dtype dt, const cf_conv2d_shape *s, const void *x,
                               const void *kernel, const void *bias, int relu, void *y,
                               int nthreads);
int cf_conv2d_backward_input_by_dtype(cf_dtype dt, const cf_conv2d_shape *s, const void *dy,
                                      const void *kernel, void *dx, int nthreads);
int cf_conv2d_backward_kernel_by_dtype(cf_dtype dt, const cf_conv2d_shape *s, const void *x,
                                       const void *dy, void *dkernel, void *dbias,
                                       int nthreads);
int cf_conv2d_pool_forward_by_dtype(cf_dtype dt, const cf_conv2d_shape *s,
                                    const cf_pool2d_shape *p, int mode, const void *x,
                                    const void *kernel, const void *bias, int relu, void *y,
                                    int32_t *argmax, int mark_dead, int nthreads);
int cf_conv2d_pool_backward_by_dtype(cf_dtype dt, const cf_conv2d_shape *s,
                                     const cf_pool2d_shape *p, int mode, const void *x,
                                     const void *dyp, const void *ymask, const int32_t *argmax,
                                     const void *kernel, void *dx, void *dkernel, void *dbias,
                                     int nthreads);
void cf_pool2d_forward_by_dtype(cf_dtype dt, const cf_pool2d_shape *s, int mode,
                                const void *x, void *y, int32_t *argmax, int nthreads);
int64_t cf_pool2d_backward_by_dtype(cf_dtype dt, const cf_pool2d_shape *s, int mode,
                                    const void *dy, const void *x, const int32_t *argmax,
                                    void *dx, int count_strays, int nthreads);
int cf_gemm_by_dtype(cf_dtype dt, int64_t m, int64_t n, int64_t k, const void *a, int64_t a_is,
                     int64_t a_ks, const void *b, int64_t b_ks, int64_t b_js, void *c,
                     int64_t ldc, int accumulate, const void *bias, int relu, int nthreads);
void cf_relu_mask_by_dtype(cf_dtype dt, int64_t n, void *dy, const void *y, int nthreads);
/* scale = 1 / (1 - rate), in the element type; offset: elementwise.h */
void cf_dropout_by_dtype(cf_dtype dt, int64_t n, uint64_t key, int64_t offset, double rate,
                         const void *x, void *y, void *mask, int nthreads);
double cf_softmax_xent_by_dtype(cf_dtype dt, int64_t n, int64_t k, const void *z,
                                const void *y, const void *probs, void *grad);
void cf_softmax_rows_by_dtype(cf_dtype dt, int64_t n, int64_t k, const void *z, void *out);
void cf_adam_by_dtype(cf_dtype dt, int64_t n, void *p, const void *g, void *m, void *v,
                      double alpha, double one_minus_b1, double one_minus_b2, double eps,
                      int nthreads);

#ifdef __cplusplus
}
#endif
#endif
