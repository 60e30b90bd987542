/* Softmax cross-entropy from logits in one pass per row: the loss value and
 * its gradient with respect to the logits, which NumPy computes in about
 * fifteen small array operations (each a call, a temporary and a pass over
 * the batch); and the softmax itself (a model's output layer), which NumPy
 * takes five calls for. */
#ifndef CNNFAST_SOFTMAX_XENT_H
#define CNNFAST_SOFTMAX_XENT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* For n rows of k logits z and targets y (row-major, contiguous):
 *   lse_r = log(sum_j exp(z_rj - max_j z_rj)),  zs_rj = z_rj - max_j z_rj
 *   returns sum_r (ysum_r * lse_r - sum_j y_rj * zs_rj) / n   (accumulated in double)
 *   grad_rj = (p_rj - y_rj) / n          when every ysum_r == 1 (one-hot rows),
 *             (p_rj * ysum_r - y_rj) / n otherwise,
 * with p = probs when given (the forward's softmax), else exp(zs - lse).
 * grad follows the NumPy formulation of losses.py operation by operation,
 * each rounded to T (1/n rounded to T first), so with one-hot targets and
 * given probs both give the same bits. k >= 1; n == 0 returns 0. */
double cf_softmax_xent_f32(int64_t n, int64_t k, const float *z, const float *y,
                           const float *probs, float *grad);
double cf_softmax_xent_f64(int64_t n, int64_t k, const double *z, const double *y,
                           const double *probs, double *grad);

/* out = the softmax of each of n rows of k values (row-major, contiguous):
 * exp(z - max) / sum, the sum in index order; out may be z itself. A NaN
 * in a row makes the whole row NaN. k >= 1. */
void cf_softmax_rows_f32(int64_t n, int64_t k, const float *z, float *out);
void cf_softmax_rows_f64(int64_t n, int64_t k, const double *z, double *out);

#ifdef __cplusplus
}
#endif
#endif
