/* Elementwise helpers of the layer API and the boundary that would otherwise
 * cost NumPy several passes and a temporary. */
#ifndef CNNFAST_ELEMENTWISE_H
#define CNNFAST_ELEMENTWISE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ReLU backward in place: dy[i] = y[i] > 0 ? dy[i] : 0 (a NaN y masks, as
 * np.greater does). Elementwise: the same bits for any thread count. */
void cf_relu_mask_f32(int64_t n, float *dy, const float *y, int nthreads);
void cf_relu_mask_f64(int64_t n, double *dy, const double *y, int nthreads);

/* Inverted dropout, forward: mask[i] = u_i >= rate ? scale : 0 and
 * y[i] = x[i] * mask[i], with u_i uniform in [0, 1) on a 2^-53 grid: the
 * top 53 bits of output offset + i of the SplitMix64 sequence seeded with
 * `key`. Each draw depends on (key, offset + i) only: the same bits for any
 * thread count and SIMD level, and for both element types; a call on
 * elements [lo, hi) of an array with offset lo draws that slice of the
 * array's mask (a data-parallel rank's share of the global batch).
 * 0 <= rate < 1, offset >= 0. */
void cf_dropout_f32(int64_t n, uint64_t key, int64_t offset, double rate, float scale,
                    const float *x, float *y, float *mask, int nthreads);
void cf_dropout_f64(int64_t n, uint64_t key, int64_t offset, double rate, double scale,
                    const double *x, double *y, double *mask, int nthreads);

#ifdef __cplusplus
}
#endif
#endif
