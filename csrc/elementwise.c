/* Elementwise helpers: see elementwise.h. */
#include "elementwise.h"

/* below this many elements a thread team costs more than it saves */
#define CF_ELEMENTWISE_PARALLEL_MIN 65536

#ifdef _OPENMP
#define CF_OMP_PARALLEL_FOR _Pragma("omp parallel for num_threads(nt) schedule(static) if (nt > 1)")
#else
#define CF_OMP_PARALLEL_FOR
#endif

#define DEFINE_RELU_MASK(NAME, T)                                                   \
    void NAME(int64_t n, T *restrict dy, const T *restrict y, int nthreads)         \
    {                                                                               \
        int nt = n < CF_ELEMENTWISE_PARALLEL_MIN ? 1 : nthreads;                    \
        (void)nt;                                                                   \
        CF_OMP_PARALLEL_FOR                                                         \
        for (int64_t i = 0; i < n; i++)                                             \
            dy[i] = y[i] > 0 ? dy[i] : (T)0;                                        \
    }

DEFINE_RELU_MASK(cf_relu_mask_f32, float)
DEFINE_RELU_MASK(cf_relu_mask_f64, double)
