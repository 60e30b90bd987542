/* A model's inference as one C call: a fixed list of kernel calls.
 *
 * The layer API's execution plan (cnnfast/_plan.py) turns a model's
 * inference into a list of steps once per batch size; each step is one call
 * of a kernel of dispatch.h with its geometry resolved and its buffers
 * assigned. Running the list here costs the C time only: no Python between
 * the steps (a one-image predict of the tutorial CNN spent 15-25 us there).
 * Every step is the same call, with the same arguments, as the step-by-step
 * plan makes, so the bits are the same. */
#ifndef CNNFAST_CHAIN_H
#define CNNFAST_CHAIN_H

#include <stdint.h>

#include "conv2d.h"
#include "dispatch.h"
#include "pool2d.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    CF_CHAIN_CONV = 0,      /* conv2d (+ bias) (+ ReLU): in NHWC -> out NHWC */
    CF_CHAIN_CONV_POOL = 1, /* fused conv2d + max/min pooling, no indices */
    CF_CHAIN_POOL = 2,      /* pooling alone, no indices */
    CF_CHAIN_DENSE = 3,     /* (rows x depth) @ (depth x units) (+ bias) (+ ReLU) */
    CF_CHAIN_SOFTMAX = 4    /* softmax of each of rows rows of units values */
} cf_chain_op;

typedef struct {
    int op;                    /* a cf_chain_op */
    cf_conv2d_shape conv;      /* CONV, CONV_POOL */
    cf_pool2d_shape pool;      /* CONV_POOL, POOL */
    int pool_mode;             /* CF_POOL_MAX / AVG / MIN: CONV_POOL, POOL */
    int relu;                  /* CONV, CONV_POOL, DENSE */
    int64_t rows, depth, units; /* DENSE; SOFTMAX: rows x units */
    const void *kernel;        /* CONV*: (kh, kw, c, f); DENSE: (depth, units) */
    const void *bias;          /* (f,) / (units,) or NULL */
    const void *src;           /* C-contiguous, cf_chain_step_in_elems values */
    void *dst;                 /* C-contiguous, cf_chain_step_out_elems values;
                                  SOFTMAX may take dst == src */
} cf_chain_step;

/* NULL when the step's geometry is one its kernel runs safely, else why not
 * (geometry.h's checks; sizes of DENSE and SOFTMAX in range). */
const char *cf_chain_step_error(const cf_chain_step *st);

/* The element counts of the step's input and output (0 for a step with an
 * error). */
int64_t cf_chain_step_in_elems(const cf_chain_step *st);
int64_t cf_chain_step_out_elems(const cf_chain_step *st);

/* The steps in order, with arrays of element type dt; 0, or the first
 * failing kernel's code (-1: a workspace could not be allocated). */
int cf_chain_run_by_dtype(cf_dtype dt, const cf_chain_step *steps, int64_t nsteps,
                          int nthreads);

#ifdef __cplusplus
}
#endif
#endif
