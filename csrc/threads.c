/* Thread-count policy: see threads.h. */
/* dladdr and Dl_info are GNU/BSD extensions, hidden by -std=c99 without this. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE
#endif
#include "threads.h"

#include "runtime.h"

#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#if defined(__linux__) || defined(__APPLE__)
#include <dlfcn.h>
#define CF_HAVE_DLADDR 1
#endif
#endif

/* 0 = not set by the user. Read without a lock: an int store is atomic on
 * every platform we build for, and a stale read only changes a thread count. */
static volatile int user_threads = 0;
#ifdef _OPENMP
/* OpenMP's own default, remembered before we first change it, so that
 * cf_set_num_threads(0) can restore it. */
static int omp_default = -1;
#endif

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

const char *cf_openmp_library(void)
{
#if defined(_OPENMP) && defined(CF_HAVE_DLADDR)
    /* The address of an OpenMP entry point as this library's own references
     * resolve it: where the dynamic linker bound the kernels' OpenMP calls,
     * which is not necessarily the file our DT_NEEDED names (a runtime loaded
     * earlier into the global scope, e.g. by PyTorch, interposes). */
    Dl_info info;
    int (*probe)(void) = omp_get_num_threads;
    void *addr;
    /* ISO C has no function-to-object pointer conversion; POSIX guarantees it. */
    memcpy(&addr, &probe, sizeof addr);
    if (dladdr(addr, &info) != 0 && info.dli_fname != NULL)
        return info.dli_fname;
#endif
    return "";
}
