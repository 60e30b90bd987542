/* Elementwise helpers of the layer API that would otherwise cost NumPy
 * several passes and a temporary. */
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

#ifdef __cplusplus
}
#endif
#endif
