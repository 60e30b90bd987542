/* Call boundary, fork handling, flush-denormal setting: see runtime.h. */
#if !defined(_WIN32) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* pthread_atfork under -std=c99 */
#endif
#include "runtime.h"

#include "workspace.h"

#if !defined(_WIN32)
#include <pthread.h>
#endif

int cf_flush_denormal_flag = 0;

/* Set once, in a forked child, by its only thread. */
static int runtime_forked = 0;

void cf_call_begin(cf_call_state *st)
{
    cf_workspace_enter();
    cf_fpenv_enter(&st->fp);
}

void cf_call_end(cf_call_state *st)
{
    cf_fpenv_leave(&st->fp);
    cf_workspace_leave();
}

#if !defined(_WIN32)
static void runtime_atfork_prepare(void) { cf_workspace_atfork_prepare(); }

static void runtime_atfork_parent(void) { cf_workspace_atfork_parent(); }

static void runtime_atfork_child(void)
{
    CF_STORE_INT(&runtime_forked, 1);
    cf_workspace_atfork_child();
}
#endif

void cf_runtime_init(void)
{
    static int done = 0;
    if (done)
        return;
    done = 1;
    cf_workspace_init();
#if !defined(_WIN32)
    /* On failure (ENOMEM) cnnfast works as before, minus fork safety. */
    (void)pthread_atfork(runtime_atfork_prepare, runtime_atfork_parent, runtime_atfork_child);
#endif
}

int cf_forked(void) { return CF_LOAD_INT(&runtime_forked); }

int cf_set_flush_denormal(int on)
{
#if CF_FP_SUPPORTED
    CF_STORE_INT(&cf_flush_denormal_flag, on ? 1 : 0);
    return 1;
#else
    (void)on;
    CF_STORE_INT(&cf_flush_denormal_flag, 0);
    return 0;
#endif
}

int cf_get_flush_denormal(void) { return CF_LOAD_INT(&cf_flush_denormal_flag); }
