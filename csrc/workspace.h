/* Per-OS-thread scratch memory that outlives a kernel call.
 *
 * OpenMP worker threads persist between parallel regions, so a buffer kept
 * in thread-local storage is allocated once and reused by every later call
 * (no malloc/free or page faults in the hot path). Each OS thread has its own
 * slots, so concurrent calls from several Python threads never share one. */
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

#ifdef __cplusplus
}
#endif
#endif
