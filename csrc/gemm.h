/* Dense matrix product on the convolution micro-kernels, under cnnfast's
 * OpenMP team (so a model's Dense layers and convolutions share one
 * threading runtime instead of alternating with a BLAS thread pool).
 *
 *   C[i][j] = (accumulate ? C[i][j] : 0) + sum_k A(i, k) * B(k, j)
 *   then, if bias != NULL: C[i][j] += bias[j]; if relu: C[i][j] = max(C[i][j], 0)
 *   A(i, k) = a[i * a_is + k * a_ks], B(k, j) = b[k * b_ks + j * b_js],
 *   C[i][j] = c[i * ldc + j]
 *
 * Any strides (transposed views need no copy by the caller). Rows of C are
 * split over threads and each element is summed over k in one fixed order,
 * so results are bit-identical for any thread count. */
#ifndef CNNFAST_GEMM_H
#define CNNFAST_GEMM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Returns 0, or -1 when scratch memory could not be allocated. */
int cf_gemm_f32(int64_t m, int64_t n, int64_t k, const float *a, int64_t a_is,
                int64_t a_ks, const float *b, int64_t b_ks, int64_t b_js, float *c,
                int64_t ldc, int accumulate, const float *bias, int relu, int nthreads);
int cf_gemm_f64(int64_t m, int64_t n, int64_t k, const double *a, int64_t a_is,
                int64_t a_ks, const double *b, int64_t b_ks, int64_t b_js, double *c,
                int64_t ldc, int accumulate, const double *bias, int relu,
                int nthreads);

#ifdef __cplusplus
}
#endif
#endif
