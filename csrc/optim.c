/* Fused optimizer updates: see optim.h. */
#include "optim.h"

#include <math.h>

#include "runtime.h"

/* below this many parameters a thread team costs more than it saves */
#define CF_OPTIM_PARALLEL_MIN 32768

/* A team of nt threads (none when nt is 1), each in the kernels'
 * floating-point mode (runtime.h), over a statically split loop. */
#ifdef _OPENMP
#define CF_OMP_PARALLEL _Pragma("omp parallel num_threads(nt) if (nt > 1)")
#define CF_OMP_FOR _Pragma("omp for schedule(static) nowait")
#else
#define CF_OMP_PARALLEL
#define CF_OMP_FOR
#endif

#define DEFINE_ADAM(NAME, T, SQRT)                                                  \
    void NAME(int64_t n, T *restrict p, const T *restrict g, T *restrict m,         \
              T *restrict v, T alpha, T omb1, T omb2, T eps, int nthreads)          \
    {                                                                               \
        int nt = n < CF_OPTIM_PARALLEL_MIN ? 1 : nthreads;                          \
        (void)nt;                                                                   \
        CF_OMP_PARALLEL                                                             \
        {                                                                           \
            CF_REGION_FP_ENTER();                                                   \
            CF_OMP_FOR                                                              \
            for (int64_t i = 0; i < n; i++) {                                       \
                const T gi = g[i];                                                  \
                T mi = m[i], vi = v[i];                                             \
                mi += (gi - mi) * omb1;                                             \
                vi += (gi * gi - vi) * omb2;                                        \
                m[i] = mi;                                                          \
                v[i] = vi;                                                          \
                p[i] -= (mi / (SQRT(vi) + eps)) * alpha;                            \
            }                                                                       \
            CF_REGION_FP_LEAVE();                                                   \
        }                                                                           \
    }

DEFINE_ADAM(cf_adam_f32, float, sqrtf)
DEFINE_ADAM(cf_adam_f64, double, sqrt)
