/* Softmax cross-entropy from logits, and the softmax: see softmax_xent.h.
 * Serial: a batch's logits are a few thousand values, far below what a
 * thread team pays for itself on. */
#include "softmax_xent.h"

#include <math.h>

#define DEFINE_SOFTMAX_XENT(NAME, T, EXP, LOG)                                        \
    double NAME(int64_t n, int64_t k, const T *z, const T *y, const T *probs, T *grad) \
    {                                                                                 \
        if (n == 0)                                                                   \
            return 0.0;                                                               \
        int all_one = 1;                                                              \
        for (int64_t r = 0; r < n && all_one; r++) {                                  \
            T ys = 0;                                                                 \
            for (int64_t j = 0; j < k; j++)                                           \
                ys += y[r * k + j];                                                   \
            all_one = ys == (T)1;                                                     \
        }                                                                             \
        const T inv_n = (T)(1.0 / (double)n);                                         \
        double loss = 0.0;                                                            \
        for (int64_t r = 0; r < n; r++) {                                             \
            const T *zr = z + r * k, *yr = y + r * k;                                 \
            T *gr = grad + r * k;                                                     \
            T m = zr[0];                                                              \
            for (int64_t j = 1; j < k; j++)                                           \
                m = zr[j] > m ? zr[j] : m;                                            \
            T s = 0, ys = 0, yz = 0;                                                  \
            for (int64_t j = 0; j < k; j++) {                                         \
                const T zs = zr[j] - m;                                               \
                s += EXP(zs);                                                         \
                ys += yr[j];                                                          \
                yz += yr[j] * zs;                                                     \
            }                                                                         \
            const T lse = LOG(s);                                                     \
            loss += (double)(ys * lse) - (double)yz;                                  \
            for (int64_t j = 0; j < k; j++) {                                         \
                const T p = probs ? probs[r * k + j] : EXP((zr[j] - m) - lse);        \
                T g = all_one ? p : p * ys;                                           \
                g -= yr[j];                                                           \
                gr[j] = g * inv_n;                                                    \
            }                                                                         \
        }                                                                             \
        return loss / (double)n;                                                      \
    }

DEFINE_SOFTMAX_XENT(cf_softmax_xent_f32, float, expf, logf)
DEFINE_SOFTMAX_XENT(cf_softmax_xent_f64, double, exp, log)

/* The maximum propagates a NaN (z[j] > m is false for one), as NumPy's does:
 * the row is then NaN throughout. */
#define DEFINE_SOFTMAX_ROWS(NAME, T, EXP)                                             \
    void NAME(int64_t n, int64_t k, const T *z, T *out)                               \
    {                                                                                 \
        for (int64_t r = 0; r < n; r++) {                                             \
            const T *zr = z + r * k;                                                  \
            T *o = out + r * k;                                                       \
            T m = zr[0];                                                              \
            for (int64_t j = 1; j < k; j++)                                           \
                m = zr[j] > m || zr[j] != zr[j] ? zr[j] : m;                          \
            T s = 0;                                                                  \
            for (int64_t j = 0; j < k; j++) {                                         \
                o[j] = EXP(zr[j] - m);                                                \
                s += o[j];                                                            \
            }                                                                         \
            for (int64_t j = 0; j < k; j++)                                           \
                o[j] /= s;                                                            \
        }                                                                             \
    }

DEFINE_SOFTMAX_ROWS(cf_softmax_rows_f32, float, expf)
DEFINE_SOFTMAX_ROWS(cf_softmax_rows_f64, double, exp)
