/* The per-call boundary of every kernel, fork handling and the
 * flush-denormal setting.
 *
 * Every kernel call from the Cython layer runs between cf_call_begin() and
 * cf_call_end(). They do two things:
 *   - mark the call as active, so that cf_release_workspaces() (workspace.h)
 *     waits for running calls instead of freeing buffers under them;
 *   - put the calling thread's floating-point control register (MXCSR on
 *     x86, FPCR on aarch64) in the mode cnnfast's kernels use (flush-to-zero
 *     and denormals-are-zero on or off, see cf_set_flush_denormal) and put the
 *     caller's own value back afterwards, so cnnfast never changes how the
 *     caller's other code (NumPy, Python floats) treats subnormals.
 * OpenMP worker threads do the same at the start and end of every parallel
 * region, with CF_REGION_FP_ENTER / CF_REGION_FP_LEAVE.
 *
 * Fork: GNU libgomp's thread pool does not survive fork(), and a parallel
 * region with more than one thread in a forked child waits forever for the
 * parent's workers. cf_runtime_init() registers pthread_atfork handlers; in
 * the child, cf_forked() is 1 and cf_get_num_threads() (threads.h) returns
 * 1, so every region runs on the calling thread alone (a region with one
 * thread never touches the pool). */
#ifndef CNNFAST_RUNTIME_H
#define CNNFAST_RUNTIME_H

#ifdef __cplusplus
extern "C" {
#endif

/* Relaxed atomic int access: a stale value only delays when a setting takes
 * effect, but the access itself must not be a data race. */
#if defined(__GNUC__) || defined(__clang__)
#define CF_LOAD_INT(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define CF_STORE_INT(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#else /* MSVC: aligned int loads and stores are single instructions */
#define CF_LOAD_INT(p) (*(volatile int *)(p))
#define CF_STORE_INT(p, v) (*(volatile int *)(p) = (v))
#endif

/* ---------------------------------------------- floating-point control -- */

#if defined(__x86_64__) || defined(_M_X64) || (defined(__i386__) && defined(__SSE2__))
#include <xmmintrin.h>
#define CF_FP_SUPPORTED 1
typedef unsigned int cf_fpreg;
/* MXCSR bit 15: flush-to-zero (subnormal results become 0); bit 6:
 * denormals-are-zero (subnormal inputs read as 0). Every x86-64 CPU has both. */
#define CF_FP_FLUSH_BITS 0x8040u
static inline cf_fpreg cf_fpreg_get(void) { return _mm_getcsr(); }
static inline void cf_fpreg_set(cf_fpreg v) { _mm_setcsr(v); }
#elif defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__))
#define CF_FP_SUPPORTED 1
typedef unsigned long long cf_fpreg;
/* FPCR bit 24 (FZ): subnormal inputs and results of single and double
 * precision arithmetic are flushed to zero. */
#define CF_FP_FLUSH_BITS (1ull << 24)
static inline cf_fpreg cf_fpreg_get(void)
{
    cf_fpreg v;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(v));
    return v;
}
static inline void cf_fpreg_set(cf_fpreg v) { __asm__ __volatile__("msr fpcr, %0" : : "r"(v)); }
#else
#define CF_FP_SUPPORTED 0
typedef unsigned int cf_fpreg;
#endif

/* 1 when cnnfast's kernels flush subnormals (see cf_set_flush_denormal). */
extern int cf_flush_denormal_flag;

/* The calling thread's control register as it was, and whether it changed. */
typedef struct {
    cf_fpreg saved;
    int changed;
} cf_fpenv;

/* Put this thread in the kernels' subnormal mode; cf_fpenv_leave undoes it.
 * A read of the register, and a write only when the mode differs. */
static inline void cf_fpenv_enter(cf_fpenv *e)
{
#if CF_FP_SUPPORTED
    cf_fpreg cur = cf_fpreg_get();
    cf_fpreg want = CF_LOAD_INT(&cf_flush_denormal_flag) ? (cur | CF_FP_FLUSH_BITS)
                                                         : (cur & ~(cf_fpreg)CF_FP_FLUSH_BITS);
    e->saved = cur;
    e->changed = want != cur;
    if (e->changed)
        cf_fpreg_set(want);
#else
    e->saved = 0;
    e->changed = 0;
#endif
}

static inline void cf_fpenv_leave(const cf_fpenv *e)
{
#if CF_FP_SUPPORTED
    if (e->changed)
        cf_fpreg_set(e->saved);
#else
    (void)e;
#endif
}

/* First and last statements of the structured block of every OpenMP
 * parallel region in the kernels: the worker threads (long-lived, shared
 * with other OpenMP code in the process) take the kernels' mode for the
 * region only. */
#define CF_REGION_FP_ENTER() \
    cf_fpenv cf_region_fpenv_; \
    cf_fpenv_enter(&cf_region_fpenv_)
#define CF_REGION_FP_LEAVE() cf_fpenv_leave(&cf_region_fpenv_)

/* ------------------------------------------------------ call boundary -- */

typedef struct {
    cf_fpenv fp;
} cf_call_state;

/* Around every kernel call (any thread, GIL released); never nested. */
void cf_call_begin(cf_call_state *st);
void cf_call_end(cf_call_state *st);

/* Once, when the extension module loads (before any kernel call): creates
 * the workspace registry's thread-exit hook and registers the fork handlers. */
void cf_runtime_init(void);

/* 1 in a process forked from one that had loaded cnnfast, else 0. */
int cf_forked(void);

/* on != 0: the kernels flush subnormal inputs and results to zero. Returns 1
 * when the platform supports it (the setting is then in effect for the next
 * kernel call), 0 otherwise (the setting stays off). */
int cf_set_flush_denormal(int on);
int cf_get_flush_denormal(void);

#ifdef __cplusplus
}
#endif
#endif
