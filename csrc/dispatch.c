/* The element-type choice of every kernel, in one place: see dispatch.h. */
#include "dispatch.h"

#include "elementwise.h"
#include "gemm.h"
#include "optim.h"
#include "softmax_xent.h"

int cf_conv2d_forward_by_dtype(cf_dtype dt, const cf_conv2d_shape *s, const void *x,
                               const void *kernel, const void *bias, int relu, void *y,
                               int nthreads)
{
    if (dt == CF_FLOAT32)
        return cf_conv2d_forward_f32(s, x, kernel, bias, relu, y, nthreads);
    return cf_conv2d_forward_f64(s, x, kernel, bias, relu, y, nthreads);
}

int cf_conv2d_backward_input_by_dtype(cf_dtype dt, const cf_conv2d_shape *s, const void *dy,
                                      const void *kernel, void *dx, int nthreads)
{
    if (dt == CF_FLOAT32)
        return cf_conv2d_backward_input_f32(s, dy, kernel, dx, nthreads);
    return cf_conv2d_backward_input_f64(s, dy, kernel, dx, nthreads);
}

int cf_conv2d_backward_kernel_by_dtype(cf_dtype dt, const cf_conv2d_shape *s, const void *x,
                                       const void *dy, void *dkernel, void *dbias,
                                       int nthreads)
{
    if (dt == CF_FLOAT32)
        return cf_conv2d_backward_kernel_f32(s, x, dy, dkernel, dbias, nthreads);
    return cf_conv2d_backward_kernel_f64(s, x, dy, dkernel, dbias, nthreads);
}

int cf_conv2d_pool_forward_by_dtype(cf_dtype dt, const cf_conv2d_shape *s,
                                    const cf_pool2d_shape *p, int mode, const void *x,
                                    const void *kernel, const void *bias, int relu, void *y,
                                    int32_t *argmax, int mark_dead, int nthreads)
{
    if (dt == CF_FLOAT32)
        return cf_conv2d_pool_forward_f32(s, p, mode, x, kernel, bias, relu, y, argmax,
                                          mark_dead, nthreads);
    return cf_conv2d_pool_forward_f64(s, p, mode, x, kernel, bias, relu, y, argmax, mark_dead,
                                      nthreads);
}

int cf_conv2d_pool_backward_by_dtype(cf_dtype dt, const cf_conv2d_shape *s,
                                     const cf_pool2d_shape *p, int mode, const void *x,
                                     const void *dyp, const void *ymask, const int32_t *argmax,
                                     const void *kernel, void *dx, void *dkernel, void *dbias,
                                     int nthreads)
{
    if (dt == CF_FLOAT32)
        return cf_conv2d_pool_backward_f32(s, p, mode, x, dyp, ymask, argmax, kernel, dx,
                                           dkernel, dbias, nthreads);
    return cf_conv2d_pool_backward_f64(s, p, mode, x, dyp, ymask, argmax, kernel, dx, dkernel,
                                       dbias, nthreads);
}

void cf_pool2d_forward_by_dtype(cf_dtype dt, const cf_pool2d_shape *s, int mode,
                                const void *x, void *y, int32_t *argmax, int nthreads)
{
    if (dt == CF_FLOAT32)
        cf_pool2d_forward_f32(s, mode, x, y, argmax, nthreads);
    else
        cf_pool2d_forward_f64(s, mode, x, y, argmax, nthreads);
}

int64_t cf_pool2d_backward_by_dtype(cf_dtype dt, const cf_pool2d_shape *s, int mode,
                                    const void *dy, const void *x, const int32_t *argmax,
                                    void *dx, int count_strays, int nthreads)
{
    if (dt == CF_FLOAT32)
        return cf_pool2d_backward_f32(s, mode, dy, x, argmax, dx, count_strays, nthreads);
    return cf_pool2d_backward_f64(s, mode, dy, x, argmax, dx, count_strays, nthreads);
}

int cf_gemm_by_dtype(cf_dtype dt, int64_t m, int64_t n, int64_t k, const void *a, int64_t a_is,
                     int64_t a_ks, const void *b, int64_t b_ks, int64_t b_js, void *c,
                     int64_t ldc, int accumulate, const void *bias, int relu, int nthreads)
{
    if (dt == CF_FLOAT32)
        return cf_gemm_f32(m, n, k, a, a_is, a_ks, b, b_ks, b_js, c, ldc, accumulate, bias,
                           relu, nthreads);
    return cf_gemm_f64(m, n, k, a, a_is, a_ks, b, b_ks, b_js, c, ldc, accumulate, bias, relu,
                       nthreads);
}

void cf_relu_mask_by_dtype(cf_dtype dt, int64_t n, void *dy, const void *y, int nthreads)
{
    if (dt == CF_FLOAT32)
        cf_relu_mask_f32(n, dy, y, nthreads);
    else
        cf_relu_mask_f64(n, dy, y, nthreads);
}

void cf_dropout_by_dtype(cf_dtype dt, int64_t n, uint64_t key, int64_t offset, double rate,
                         const void *x, void *y, void *mask, int nthreads)
{
    if (dt == CF_FLOAT32)
        cf_dropout_f32(n, key, offset, rate, (float)(1.0 / (1.0 - rate)), x, y, mask,
                       nthreads);
    else
        cf_dropout_f64(n, key, offset, rate, 1.0 / (1.0 - rate), x, y, mask, nthreads);
}

double cf_softmax_xent_by_dtype(cf_dtype dt, int64_t n, int64_t k, const void *z,
                                const void *y, const void *probs, void *grad)
{
    if (dt == CF_FLOAT32)
        return cf_softmax_xent_f32(n, k, z, y, probs, grad);
    return cf_softmax_xent_f64(n, k, z, y, probs, grad);
}

void cf_softmax_rows_by_dtype(cf_dtype dt, int64_t n, int64_t k, const void *z, void *out)
{
    if (dt == CF_FLOAT32)
        cf_softmax_rows_f32(n, k, z, out);
    else
        cf_softmax_rows_f64(n, k, z, out);
}

void cf_adam_by_dtype(cf_dtype dt, int64_t n, void *p, const void *g, void *m, void *v,
                      double alpha, double one_minus_b1, double one_minus_b2, double eps,
                      int nthreads)
{
    if (dt == CF_FLOAT32)
        cf_adam_f32(n, p, g, m, v, (float)alpha, (float)one_minus_b1, (float)one_minus_b2,
                    (float)eps, nthreads);
    else
        cf_adam_f64(n, p, g, m, v, alpha, one_minus_b1, one_minus_b2, eps, nthreads);
}
