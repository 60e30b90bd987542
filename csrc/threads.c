/* Thread-count policy: see threads.h. */
#include "threads.h"

#include "runtime.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* 0 = not set by the user. Read without a lock: an int store is atomic on
 * every platform we build for, and a stale read only changes a thread count. */
static volatile int user_threads = 0;
/* OpenMP's own default, remembered before we first change it, so that
 * cf_set_num_threads(0) can restore it. */
static int omp_default = -1;

int cf_get_num_threads(void)
{
#ifdef _OPENMP
    /* A forked child runs every region on the calling thread (runtime.h). */
    if (cf_forked())
        return 1;
    int omp_max = omp_get_max_threads();
    int n = user_threads;
    if (n <= 0)
        return omp_max < 1 ? 1 : omp_max;
    /* threadpoolctl lowers the OpenMP limit temporarily: honour it. */
    if (omp_max >= 1 && omp_max < n)
        n = omp_max;
    return n;
#else
    return 1;
#endif
}

void cf_set_num_threads(int n)
{
#ifdef _OPENMP
    if (omp_default < 0)
        omp_default = omp_get_max_threads();
    omp_set_num_threads(n > 0 ? n : omp_default);
    user_threads = n > 0 ? n : 0;
#else
    (void)n;
#endif
}

int cf_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int cf_openmp_version(void)
{
#ifdef _OPENMP
    return _OPENMP;
#else
    return 0;
#endif
}
