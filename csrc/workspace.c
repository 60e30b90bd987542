/* Per-thread reusable scratch buffers: see workspace.h. */
#if !defined(_WIN32) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* pthread, sched_yield, nanosleep and malloc_trim under -std=c99 */
#endif
#include "workspace.h"

#include <stdlib.h>

#if defined(_WIN32)
#include <windows.h>
#else
#include <pthread.h>
#include <sched.h>
#include <time.h>
#endif
#if defined(__GLIBC__)
#include <malloc.h>
#endif

/* Buffers come straight from the system (mmap) where it has one, so that a
 * freed workspace really leaves the process: malloc keeps large freed blocks
 * in its arenas (each new thread may get an arena of its own, and glibc's
 * mmap threshold rises after large frees), and a per-thread buffer freed at
 * thread exit or by cf_release_workspaces() would then stay resident. Under
 * AddressSanitizer they come from malloc, whose bounds ASan checks. */
#if !defined(_WIN32) && !defined(__SANITIZE_ADDRESS__)
#include <sys/mman.h>
#if defined(MAP_ANONYMOUS) || defined(MAP_ANON)
#define WS_MMAP 1
#ifndef MAP_ANONYMOUS
#define MAP_ANONYMOUS MAP_ANON
#endif
#endif
#endif
#ifndef WS_MMAP
#define WS_MMAP 0
#endif

#if defined(_MSC_VER)
#define CF_THREAD_LOCAL __declspec(thread)
#else
#define CF_THREAD_LOCAL __thread
#endif

/* ------------------------------------------------------------ atomics -- */

#if defined(__GNUC__) || defined(__clang__)
static inline void at_add(volatile long *p, long v) { __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
static inline long at_load(volatile long *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static inline void at_store(volatile long *p, long v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
static inline int at_cas(volatile long *p, long expect, long want)
{
    return __atomic_compare_exchange_n(p, &expect, want, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
#else /* MSVC: the Interlocked functions are full barriers */
static inline void at_add(volatile long *p, long v) { (void)InterlockedExchangeAdd(p, v); }
static inline long at_load(volatile long *p) { return InterlockedCompareExchange(p, 0, 0); }
static inline void at_store(volatile long *p, long v) { (void)InterlockedExchange(p, v); }
static inline int at_cas(volatile long *p, long expect, long want)
{
    return InterlockedCompareExchange(p, want, expect) == expect;
}
#endif

/* Waiting for a release or for running calls: yield first, then sleep in
 * short steps (a running convolution may take a while). */
static void ws_relax(unsigned i)
{
#if defined(_WIN32)
    Sleep(i < 64 ? 0 : 1);
#else
    if (i < 64) {
        sched_yield();
    } else {
        struct timespec ts = {0, 50000}; /* 50 us */
        nanosleep(&ts, NULL);
    }
#endif
}

/* ----------------------------------------------------- registry lock -- */

#if defined(_WIN32)
static SRWLOCK ws_lock = SRWLOCK_INIT;
static void ws_lock_acquire(void) { AcquireSRWLockExclusive(&ws_lock); }
static void ws_lock_release(void) { ReleaseSRWLockExclusive(&ws_lock); }
#else
static pthread_mutex_t ws_lock = PTHREAD_MUTEX_INITIALIZER;
static void ws_lock_acquire(void) { (void)pthread_mutex_lock(&ws_lock); }
static void ws_lock_release(void) { (void)pthread_mutex_unlock(&ws_lock); }
#endif

/* ------------------------------------------------------------ records -- */

typedef struct ws_record {
    void *raw[CF_WS_SLOTS];     /* as allocated (ws_buffer_alloc) */
    size_t raw_bytes[CF_WS_SLOTS];
    void *aligned[CF_WS_SLOTS]; /* the 64-byte aligned start handed out */
    size_t size[CF_WS_SLOTS];   /* usable bytes from aligned */
    struct ws_record *prev, *next;
    unsigned long gen; /* the fork generation its owner thread lives in */
} ws_record;

static CF_THREAD_LOCAL ws_record *ws_mine; /* the calling thread's record */
static ws_record *ws_list;                 /* every live record, under ws_lock */
static unsigned long ws_gen;               /* incremented in each forked child */
static volatile long ws_stale;             /* records of an older generation may exist */

/* The gate between kernel calls and releases. */
static volatile long ws_active;    /* calls between enter and leave */
static volatile long ws_releasing; /* a release is waiting or freeing */

/* `bytes` of memory, at least 64-byte aligned once rounded up (the +64
 * headroom is the callers'); NULL when exhausted. */
static void *ws_buffer_alloc(size_t bytes)
{
#if WS_MMAP
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
#else
    return malloc(bytes);
#endif
}

static void ws_buffer_free(void *raw, size_t bytes)
{
    if (raw == NULL)
        return;
#if WS_MMAP
    (void)munmap(raw, bytes);
#else
    (void)bytes;
    free(raw);
#endif
}

static void ws_free_slot(ws_record *r, int slot)
{
    ws_buffer_free(r->raw[slot], r->raw_bytes[slot]);
    r->raw[slot] = r->aligned[slot] = NULL;
    r->raw_bytes[slot] = r->size[slot] = 0;
}

static void ws_free_buffers(ws_record *r)
{
    for (int i = 0; i < CF_WS_SLOTS; i++)
        ws_free_slot(r, i);
}

static void ws_link(ws_record *r)
{
    r->prev = NULL;
    r->next = ws_list;
    if (ws_list != NULL)
        ws_list->prev = r;
    ws_list = r;
}

static void ws_unlink(ws_record *r)
{
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        ws_list = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

/* Thread exit: the record leaves the registry, then its memory is freed
 * (after the unlink no release can reach it). */
static void ws_thread_exit(void *p)
{
    ws_record *r = (ws_record *)p;
    if (r == NULL)
        return;
    ws_lock_acquire();
    ws_unlink(r);
    ws_lock_release();
    ws_free_buffers(r);
    free(r);
    if (ws_mine == r)
        ws_mine = NULL;
}

#if defined(_WIN32)
static DWORD ws_fls = FLS_OUT_OF_INDEXES;
static void WINAPI ws_fls_exit(void *p) { ws_thread_exit(p); }
#else
static pthread_key_t ws_key;
static int ws_key_ok;
#endif

void cf_workspace_init(void)
{
#if defined(_WIN32)
    if (ws_fls == FLS_OUT_OF_INDEXES)
        ws_fls = FlsAlloc(ws_fls_exit);
#else
    if (!ws_key_ok)
        ws_key_ok = pthread_key_create(&ws_key, ws_thread_exit) == 0;
#endif
}

static ws_record *ws_record_new(void)
{
    ws_record *r = (ws_record *)calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    ws_lock_acquire();
    r->gen = ws_gen;
    ws_link(r);
    ws_lock_release();
    /* Without the thread-exit hook (no key, or it could not be set) the
     * record stays registered: its buffers are still freed by a release. */
#if defined(_WIN32)
    if (ws_fls != FLS_OUT_OF_INDEXES)
        (void)FlsSetValue(ws_fls, r);
#else
    if (ws_key_ok)
        (void)pthread_setspecific(ws_key, r);
#endif
    ws_mine = r;
    return r;
}

void *cf_workspace(int slot, size_t bytes)
{
    ws_record *r = ws_mine;
    if (r == NULL && (r = ws_record_new()) == NULL)
        return NULL;
    if (bytes <= r->size[slot] && r->aligned[slot] != NULL)
        return r->aligned[slot];
    ws_free_slot(r, slot);
    /* a request this large is an upstream size overflow, never a real need:
     * fail (the caller reports MemoryError) rather than let the growth below
     * wrap to a small buffer */
    if (bytes > ((size_t)-1) / 2)
        return NULL;
    /* grow geometrically so a slowly increasing size does not reallocate
     * on every call */
    size_t want = bytes + bytes / 4 + 4096;
    void *raw = ws_buffer_alloc(want + 64);
    if (raw == NULL)
        return NULL;
    r->raw[slot] = raw;
    r->raw_bytes[slot] = want + 64;
    r->aligned[slot] = (void *)(((size_t)raw + 63) & ~(size_t)63);
    r->size[slot] = want;
    return r->aligned[slot];
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

/* ------------------------------------------------------ call boundary -- */

void cf_workspace_enter(void)
{
    /* Announce the call, then check for a release; a release announces
     * itself, then checks for calls (both sequentially consistent): at least
     * one of the two sees the other, so no call runs while buffers are freed. */
    for (unsigned i = 0;;) {
        at_add(&ws_active, 1);
        if (!at_load(&ws_releasing))
            return;
        at_add(&ws_active, -1);
        while (at_load(&ws_releasing))
            ws_relax(i++);
    }
}

void cf_workspace_leave(void) { at_add(&ws_active, -1); }

/* Frees the records no thread of this process owns (left by a fork).
 * Caller holds ws_lock. */
static void ws_reap_locked(void)
{
    if (!at_load(&ws_stale))
        return;
    ws_record *next;
    for (ws_record *r = ws_list; r != NULL; r = next) {
        next = r->next;
        if (r->gen != ws_gen) {
            ws_unlink(r);
            ws_free_buffers(r);
            free(r);
        }
    }
    at_store(&ws_stale, 0);
}

void cf_workspace_reap_stale(void)
{
    if (!at_load(&ws_stale))
        return;
    ws_lock_acquire();
    ws_reap_locked();
    ws_lock_release();
}

void cf_release_workspaces(void)
{
    for (unsigned i = 0; !at_cas(&ws_releasing, 0, 1); i++)
        ws_relax(i); /* one release at a time */
    for (unsigned i = 0; at_load(&ws_active) != 0; i++)
        ws_relax(i);
    ws_lock_acquire();
    ws_reap_locked();
    /* Owners see size 0 and allocate again on their next call. */
    for (ws_record *r = ws_list; r != NULL; r = r->next)
        ws_free_buffers(r);
    ws_lock_release();
    at_store(&ws_releasing, 0);
#if defined(__GLIBC__) && !WS_MMAP
    /* free() keeps most of this memory in malloc's arenas: give the pages
     * back to the system */
    (void)malloc_trim(0);
#endif
}

/* ------------------------------------------------------------- fork -- */

void cf_workspace_atfork_prepare(void) { ws_lock_acquire(); }

void cf_workspace_atfork_parent(void) { ws_lock_release(); }

void cf_workspace_atfork_child(void)
{
    /* Only the forking thread exists here; it is not inside a kernel call
     * (kernels never call back into Python), so no call is in progress. */
    ws_gen++;
    if (ws_mine != NULL)
        ws_mine->gen = ws_gen;
    at_store(&ws_stale, 1);
    at_store(&ws_active, 0);
    at_store(&ws_releasing, 0);
    ws_lock_release();
}
