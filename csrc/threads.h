/* Thread-count policy shared by every kernel of cnnfast.
 *
 * One place decides how many OpenMP threads a kernel may use, so that
 * cnnfast.set_num_threads(), OMP_NUM_THREADS and threadpoolctl (which calls
 * omp_set_num_threads on the calling thread) all act on every kernel alike.
 * Builds without OpenMP report 1 thread and run the same code sequentially. */
#ifndef CNNFAST_THREADS_H
#define CNNFAST_THREADS_H

#ifdef __cplusplus
extern "C" {
#endif

/* Number of threads the next kernel call from this OS thread will use:
 * the user's cnnfast.set_num_threads() value if one was set, capped by the
 * OpenMP limit of the calling thread (OMP_NUM_THREADS, threadpoolctl);
 * always 1 in a forked child (see runtime.h). Every parallel region of the
 * kernels takes its num_threads from this value (through cf_team_size). */
int cf_get_num_threads(void);

/* n >= 1 sets a process-wide count (and the calling thread's OpenMP limit);
 * n == 0 returns to the OpenMP default. The boundary validates n. */
void cf_set_num_threads(int n);

/* Threads for a loop of `work_items` independent items: nthreads, but never
 * more than there are items and never fewer than 1. */
static inline int cf_team_size(int nthreads, long long work_items)
{
    if (work_items < nthreads)
        nthreads = (int)work_items;
    return nthreads < 1 ? 1 : nthreads;
}

/* 1 when compiled with OpenMP, else 0. */
int cf_openmp_enabled(void);

/* The _OPENMP macro (yyyymm) of the build, 0 without OpenMP. */
int cf_openmp_version(void);

/* Path of the shared library that the kernels' OpenMP calls are bound to
 * (dladdr of omp_get_num_threads), "" without OpenMP or where the platform
 * cannot say. Static storage owned by the dynamic linker: do not free. */
const char *cf_openmp_library(void);

#ifdef __cplusplus
}
#endif
#endif
