/* Software prefetch of the next work item's inputs, spread over the current
 * item's micro-kernel calls.
 *
 * A driver that walks images one after another (the kernel gradient, per
 * chunk of images) takes the cache misses of each new image's first pass
 * at once: the hardware prefetchers start only after the misses begin. A
 * prefetcher is given up to CF_PF_MAX_REGIONS byte ranges of the next item
 * and a number of steps; each step requests the next few cache lines into
 * L2, so the lines arrive while the current item computes and none of them
 * pushes the current item's rows out of L1. */
#ifndef CNNFAST_PREFETCH_H
#define CNNFAST_PREFETCH_H

#include <stdint.h>

#define CF_PF_MAX_REGIONS 4
#define CF_PF_LINE 64

typedef struct {
    const char *base[CF_PF_MAX_REGIONS];
    int64_t lines[CF_PF_MAX_REGIONS];
    int nregions;
    int region;          /* the region being walked */
    int64_t line;        /* the next line of that region */
    int64_t per_step;    /* lines requested per step */
} cf_prefetcher;

/* Start an empty plan (no regions: every step does nothing). */
static inline void cf_pf_reset(cf_prefetcher *pf)
{
    pf->nregions = 0;
    pf->region = 0;
    pf->line = 0;
    pf->per_step = 0;
}

/* Add `bytes` bytes from `p` (ignored once CF_PF_MAX_REGIONS are held). */
static inline void cf_pf_add(cf_prefetcher *pf, const void *p, int64_t bytes)
{
    if (p == NULL || bytes <= 0 || pf->nregions == CF_PF_MAX_REGIONS)
        return;
    pf->base[pf->nregions] = (const char *)p;
    pf->lines[pf->nregions] = (bytes + CF_PF_LINE - 1) / CF_PF_LINE;
    pf->nregions++;
}

/* Cache lines the regions hold in all. */
static inline int64_t cf_pf_lines(const cf_prefetcher *pf)
{
    int64_t total = 0;
    for (int r = 0; r < pf->nregions; r++)
        total += pf->lines[r];
    return total;
}

/* Spread the regions' lines over `steps` calls of cf_pf_step. */
static inline void cf_pf_plan(cf_prefetcher *pf, int64_t steps)
{
    const int64_t total = cf_pf_lines(pf);
    pf->per_step = steps > 0 ? (total + steps - 1) / steps : total;
}

/* Request the next per_step lines (read, into L2). */
static inline void cf_pf_step(cf_prefetcher *pf)
{
    for (int64_t q = 0; q < pf->per_step && pf->region < pf->nregions; q++) {
#if defined(__GNUC__) || defined(__clang__)
        __builtin_prefetch(pf->base[pf->region] + pf->line * CF_PF_LINE, 0, 2);
#endif
        if (++pf->line == pf->lines[pf->region]) {
            pf->region++;
            pf->line = 0;
        }
    }
}

#endif
