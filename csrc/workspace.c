/* Per-thread reusable scratch buffers: see workspace.h. */
#include "workspace.h"

#include <stdlib.h>

#if defined(_MSC_VER)
#define CF_THREAD_LOCAL __declspec(thread)
#else
#define CF_THREAD_LOCAL __thread
#endif

static CF_THREAD_LOCAL void *ws_raw[CF_WS_SLOTS];
static CF_THREAD_LOCAL void *ws_aligned[CF_WS_SLOTS];
static CF_THREAD_LOCAL size_t ws_size[CF_WS_SLOTS];

void *cf_workspace(int slot, size_t bytes)
{
    if (bytes <= ws_size[slot] && ws_aligned[slot] != NULL)
        return ws_aligned[slot];
    free(ws_raw[slot]);
    ws_raw[slot] = ws_aligned[slot] = NULL;
    ws_size[slot] = 0;
    /* a request this large is an upstream size overflow, never a real need:
     * fail (the caller reports MemoryError) rather than let the growth below
     * wrap to a small buffer */
    if (bytes > ((size_t)-1) / 2)
        return NULL;
    /* grow geometrically so a slowly increasing size does not reallocate
     * on every call */
    size_t want = bytes + bytes / 4 + 4096;
    void *raw = malloc(want + 64);
    if (raw == NULL)
        return NULL;
    ws_raw[slot] = raw;
    ws_aligned[slot] = (void *)(((size_t)raw + 63) & ~(size_t)63);
    ws_size[slot] = want;
    return ws_aligned[slot];
}

void *cf_workspace_or_flag(int slot, size_t bytes, int *failed)
{
    void *p = cf_workspace(slot, bytes);
    if (p == NULL) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
        *failed = 1;
    }
    return p;
}
