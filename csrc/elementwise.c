/* Elementwise helpers: see elementwise.h. */
#include "elementwise.h"

#include "cpu_features.h"
#include "runtime.h"

/* below this many elements a thread team costs more than it saves */
#define CF_ELEMENTWISE_PARALLEL_MIN 65536

/* A team of nt threads (none when nt is 1), each in the kernels'
 * floating-point mode (runtime.h), over a statically split loop. */
#ifdef _OPENMP
#define CF_OMP_PARALLEL _Pragma("omp parallel num_threads(nt) if (nt > 1)")
#define CF_OMP_FOR _Pragma("omp for schedule(static) nowait")
#else
#define CF_OMP_PARALLEL
#define CF_OMP_FOR
#endif

#define DEFINE_RELU_MASK(NAME, T)                                                   \
    void NAME(int64_t n, T *restrict dy, const T *restrict y, int nthreads)         \
    {                                                                               \
        int nt = n < CF_ELEMENTWISE_PARALLEL_MIN ? 1 : nthreads;                    \
        (void)nt;                                                                   \
        CF_OMP_PARALLEL                                                             \
        {                                                                           \
            CF_REGION_FP_ENTER();                                                   \
            CF_OMP_FOR                                                              \
            for (int64_t i = 0; i < n; i++)                                         \
                dy[i] = y[i] > 0 ? dy[i] : (T)0;                                    \
            CF_REGION_FP_LEAVE();                                                   \
        }                                                                           \
    }

DEFINE_RELU_MASK(cf_relu_mask_f32, float)
DEFINE_RELU_MASK(cf_relu_mask_f64, double)

/* Dropout: element i's draw is SplitMix64's output offset + i for the seed
 * `key` (Steele, Lea & Flood 2014), a counter-based stream, so chunks need no
 * shared state, and a call on a slice of a batch (offset: the slice's first
 * element index in the batch) draws exactly that slice of the batch's mask. Replaces NumPy's Generator.random plus three array passes
 * (about 65 us for the MNIST model's 128 x 128 activations, serial). The
 * 64-bit multiplies vectorise with AVX-512DQ; AVX2 and the baseline build
 * run the same loop. */
#define CF_DROPOUT_CHUNK(NAME, T, ATTR)                                                  \
    ATTR static void NAME(int64_t i0, int64_t n, uint64_t key, uint64_t keep_from, T scale, \
                          const T *restrict x, T *restrict y, T *restrict mask)          \
    {                                                                                    \
        for (int64_t i = 0; i < n; i++) {                                                \
            uint64_t z = key + (uint64_t)(i0 + i + 1) * 0x9E3779B97F4A7C15ull;           \
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;                                 \
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;                                 \
            z ^= z >> 31;                                                                \
            const T m = (z >> 11) >= keep_from ? scale : (T)0;                           \
            mask[i] = m;                                                                 \
            y[i] = x[i] * m;                                                             \
        }                                                                                \
    }

CF_DROPOUT_CHUNK(cf_dropout_chunk_f32, float, )
CF_DROPOUT_CHUNK(cf_dropout_chunk_f64, double, )
#if CF_HAVE_X86_DISPATCH
CF_DROPOUT_CHUNK(cf_dropout_chunk_avx2_f32, float, __attribute__((target("avx2"))))
CF_DROPOUT_CHUNK(cf_dropout_chunk_avx2_f64, double, __attribute__((target("avx2"))))
CF_DROPOUT_CHUNK(cf_dropout_chunk_avx512_f32, float,
                 __attribute__((target("avx512f,avx512dq,avx512vl"))))
CF_DROPOUT_CHUNK(cf_dropout_chunk_avx512_f64, double,
                 __attribute__((target("avx512f,avx512dq,avx512vl"))))
#endif

/* u = k / 2^53 >= rate  <=>  k >= ceil(rate * 2^53) (the product is exact) */
static uint64_t cf_dropout_keep_from(double rate)
{
    const double t = rate * 9007199254740992.0;
    uint64_t k = (uint64_t)t;
    return (double)k < t ? k + 1 : k;
}

#define DEFINE_DROPOUT(NAME, T, SFX)                                                     \
    void NAME(int64_t n, uint64_t key, int64_t offset, double rate, T scale, const T *x,  \
              T *y, T *mask, int nthreads)                                               \
    {                                                                                    \
        void (*chunk)(int64_t, int64_t, uint64_t, uint64_t, T, const T *, T *, T *) =    \
            cf_dropout_chunk_##SFX;                                                      \
        CF_DROPOUT_DISPATCH(SFX)                                                         \
        const uint64_t keep_from = cf_dropout_keep_from(rate);                           \
        const int64_t CH = 16384;                                                        \
        const int64_t nch = (n + CH - 1) / CH;                                           \
        int nt = n < CF_ELEMENTWISE_PARALLEL_MIN ? 1 : nthreads;                         \
        (void)nt;                                                                        \
        CF_OMP_PARALLEL                                                                  \
        {                                                                                \
            CF_REGION_FP_ENTER();                                                        \
            CF_OMP_FOR                                                                   \
            for (int64_t c = 0; c < nch; c++) {                                          \
                const int64_t i0 = c * CH, m = n - i0 < CH ? n - i0 : CH;                \
                chunk(offset + i0, m, key, keep_from, scale, x + i0, y + i0, mask + i0); \
            }                                                                            \
            CF_REGION_FP_LEAVE();                                                        \
        }                                                                                \
    }

#if CF_HAVE_X86_DISPATCH
#define CF_DROPOUT_DISPATCH(SFX)                                                         \
    if (cf_simd_level() >= CF_SIMD_AVX512)                                               \
        chunk = cf_dropout_chunk_avx512_##SFX;                                           \
    else if (cf_simd_level() >= CF_SIMD_AVX2)                                            \
        chunk = cf_dropout_chunk_avx2_##SFX;
#else
#define CF_DROPOUT_DISPATCH(SFX)
#endif

DEFINE_DROPOUT(cf_dropout_f32, float, f32)
DEFINE_DROPOUT(cf_dropout_f64, double, f64)
