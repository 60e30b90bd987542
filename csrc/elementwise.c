/* Elementwise helpers: see elementwise.h. */
#include "elementwise.h"

#include "cpu_features.h"

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

/* min and max of int32 values in one pass; the AVX2 build of the same loop
 * is picked at run time (baseline x86-64 has no vector int32 min/max). */
#define CF_MINMAX_BODY                                                              \
    int32_t lo = a[0], hi = a[0];                                                   \
    for (int64_t i = 0; i < n; i++) {                                               \
        lo = a[i] < lo ? a[i] : lo;                                                 \
        hi = a[i] > hi ? a[i] : hi;                                                 \
    }                                                                               \
    *mn = lo;                                                                       \
    *mx = hi;

static void cf_minmax_chunk(int64_t n, const int32_t *restrict a, int32_t *mn, int32_t *mx)
{
    CF_MINMAX_BODY
}

#if CF_HAVE_X86_DISPATCH
__attribute__((target("avx2"))) static void cf_minmax_chunk_avx2(int64_t n,
                                                                 const int32_t *restrict a,
                                                                 int32_t *mn, int32_t *mx)
{
    CF_MINMAX_BODY
}
#endif

void cf_minmax_i32(int64_t n, const int32_t *a, int32_t *mn, int32_t *mx, int nthreads)
{
    void (*chunk)(int64_t, const int32_t *, int32_t *, int32_t *) = cf_minmax_chunk;
#if CF_HAVE_X86_DISPATCH
    if (cf_simd_level() >= CF_SIMD_AVX2)
        chunk = cf_minmax_chunk_avx2;
#endif
    const int64_t CH = 65536;
    const int64_t nch = (n + CH - 1) / CH;
    int32_t lo = a[0], hi = a[0];
    int nt = nch < 2 ? 1 : nthreads;
    (void)nt;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) reduction(min : lo) reduction(max : hi) if (nt > 1)
#endif
    for (int64_t c = 0; c < nch; c++) {
        const int64_t m = n - c * CH < CH ? n - c * CH : CH;
        int32_t l, h;
        chunk(m, a + c * CH, &l, &h);
        lo = l < lo ? l : lo;
        hi = h > hi ? h : hi;
    }
    *mn = lo;
    *mx = hi;
}
