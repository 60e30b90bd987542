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

/* The slots, named for what they hold. Several names share a slot number:
 * those uses belong to different drivers (or different phases of one) that
 * never hold the slot at the same time on the same thread.
 *
 * The rule that keeps them apart: a driver takes its "calling thread" slots
 * before its parallel region and reads them inside it; the region's threads
 * (the calling thread is thread 0 of the team) take only "per thread"
 * slots, never one of the caller's. The stride-1 input gradient holds
 * CF_WS_FLIPPED_KERNEL (3) while it runs the forward driver, which takes
 * every other slot but 3. */
enum cf_ws_slot {
    /* 0, per thread, inside a parallel region: the thread's input tile */
    CF_WS_PADDED_IMAGE = 0, /* one zero-padded image (forward, direct kernel
                             * gradient) or image of dy (strided input
                             * gradient by phases) */
    CF_WS_IM2COL_TILE = 0,  /* im2col rows of a tile of pixels (im2col
                             * forward and kernel gradient) */
    CF_WS_DY_PANEL = 0,     /* col2im input gradient: packed dy micro-panels */
    CF_WS_GEMM_A_PANEL = 0, /* GEMM: a zero-padded or packed block of A */
    CF_WS_WINO_INPUT = 0,   /* Winograd: an item's transformed input tiles */

    /* 1 */
    CF_WS_PADDED_BATCH = 1,      /* calling thread: every image padded (forward
                                  * with fewer images than threads) */
    CF_WS_DW_PARTIALS = 1,       /* calling thread: the kernel gradient's
                                  * per-chunk partials */
    CF_WS_TRANSPOSED_KERNEL = 1, /* calling thread: col2im's kernel as F x K */
    CF_WS_GEMM_B_PANEL = 1,      /* per thread: GEMM's packed panel of B */

    /* 2 */
    CF_WS_TAP_OFFSETS = 2, /* calling thread: the taps' offsets into the padded
                            * image (forward), or each phase's tap count and
                            * offsets (input gradient by phases) */
    CF_WS_DCOL = 2,        /* per thread: col2im's dy . kernel^T rows */
    CF_WS_WINO_PRODUCTS = 2, /* per thread: Winograd's transform-domain
                              * products, or transformed dy tiles */

    /* 3, calling thread */
    CF_WS_FLIPPED_KERNEL = 3,   /* stride-1 input gradient: the kernel flipped,
                                 * channel axes swapped */
    CF_WS_PHASE_WEIGHTS_AT = 3, /* input gradient by phases: where each phase's
                                 * sub-kernel starts in CF_WS_PACKED_KERNEL */
    CF_WS_GEMM_B_COPY = 3,      /* GEMM: B copied with contiguous columns */

    /* 4, calling thread */
    CF_WS_NARROW_KERNEL = 4,  /* forward: per-filter taps for the narrow kernel */
    CF_WS_GEMM_A_PACKED = 4,  /* GEMM: A^T's panels packed */
    CF_WS_WINO_UNPOOLED = 4,  /* fused backward with Winograd: the whole
                               * unpooled dy (the Winograd gradients it then
                               * runs, non-finite-kernel fallback included,
                               * take no slot 4) */

    /* 5, calling thread */
    CF_WS_PACKED_KERNEL = 5, /* the kernel as contiguous panels of NR filters
                              * (forward) or channels (input gradient by
                              * phases) */
    CF_WS_WINO_KERNEL = 5,   /* Winograd: the transformed kernel */

    /* 6 */
    CF_WS_UNPOOLED = 6,       /* per thread: an unpooled image of dy (fused
                               * input gradient) or block of dy rows (fused
                               * kernel gradient) */
    CF_WS_POOL_BAND = 6,      /* per thread: the convolution rows of a group of
                               * pooled rows (fused forward) */
    CF_WS_GEMM_B_PACKED = 6,  /* calling thread: GEMM's B packed in NR panels */

    /* 7, per thread */
    CF_WS_UNPOOL_SCRATCH = 7 /* unpool_rows' indices and masked row */
};

/* A 64-byte aligned buffer of at least `bytes` bytes in slot `slot` of the
 * calling thread (an enum cf_ws_slot), grown (never shrunk) as needed; contents are not kept when
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
