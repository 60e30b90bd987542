/* Fused optimizer updates: one pass over the parameters instead of the
 * half-dozen temporaries an elementwise NumPy formulation makes. */
#ifndef CNNFAST_OPTIM_H
#define CNNFAST_OPTIM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Adam (Keras form, bias correction folded into alpha by the caller):
 *   m += (g - m) * (1 - b1);  v += (g*g - v) * (1 - b2);
 *   p -= alpha * m / (sqrt(v) + eps)
 * The same operations in the same order as the NumPy version, each rounded
 * to T, so both give identical results. Elementwise: any thread count gives
 * the same bits. */
void cf_adam_f32(int64_t n, float *p, const float *g, float *m, float *v, float alpha,
                 float one_minus_b1, float one_minus_b2, float eps, int nthreads);
void cf_adam_f64(int64_t n, double *p, const double *g, double *m, double *v,
                 double alpha, double one_minus_b1, double one_minus_b2, double eps,
                 int nthreads);

#ifdef __cplusplus
}
#endif
#endif
