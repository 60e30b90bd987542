/* Per-OS-thread scratch memory that outlives a kernel call.
 *
 * OpenMP worker threads persist between parallel regions, so a buffer kept
 * per thread is allocated once and reused by every later call (no
 * malloc/free or page faults in the hot path). Each OS thread has its own
 * slots, so concurrent calls from several Python threads never share one.
 *
 * Each thread's slots live in a heap record, registered in a process-wide
 * list: the record's buffers are freed when its thread exits (short-lived
 * Python threads, and the OpenMP workers of each one's thread pool, would
 * otherwise leave them behind), and cf_release_workspaces() frees every
 * registered thread's buffers on demand. Kernels use workspaces only between
 * cf_workspace_enter() and cf_workspace_leave() (runtime.h's call boundary);
 * a release waits until no call is in that window. */
#ifndef CNNFAST_WORKSPACE_H
#define CNNFAST_WORKSPACE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { CF_WS_SLOTS = 8 };

/* A 64-byte aligned buffer of at least `bytes` bytes in slot `slot` of the
 * calling thread, grown (never shrunk) as needed; contents are not kept when
 * it grows. Returns NULL if memory is exhausted. */
void *cf_workspace(int slot, size_t bytes);

/* The same, for use by each thread inside a parallel region: on failure the
 * shared *failed flag is set (atomically) and NULL returned, so the thread
 * can skip its iterations and the caller report the failure afterwards. */
void *cf_workspace_or_flag(int slot, size_t bytes, int *failed);

/* Once, before any other function here (the extension's module init). */
void cf_workspace_init(void);

/* A kernel call starts / ends using workspaces (any thread; not nested). */
void cf_workspace_enter(void);
void cf_workspace_leave(void);

/* Frees every thread's cached buffers (idle OpenMP workers' included): waits
 * for the kernel calls in progress, holds new ones back meanwhile, and
 * returns the freed memory to the operating system (the buffers are mmap'd
 * where the system has mmap). Must not be called from inside a kernel call. */
void cf_release_workspaces(void);

/* pthread_atfork handlers (registered by runtime.c). The child's keeps only
 * async-signal-safe work: it forgets the parent's calls in progress and marks
 * the other threads' records, which no thread of the child owns, as stale. */
void cf_workspace_atfork_prepare(void);
void cf_workspace_atfork_parent(void);
void cf_workspace_atfork_child(void);

/* Frees the stale records left by a fork (a no-op otherwise): called by the
 * extension right after fork in the child, and by every release. */
void cf_workspace_reap_stale(void);

#ifdef __cplusplus
}
#endif
#endif
