/* A model's inference as one C call: see chain.h. */
#include "chain.h"

#include <stddef.h>

#include "geometry.h"

/* the per-array bound the geometry checks keep (geometry.h) */
static int dense_sizes_ok(int64_t rows, int64_t depth, int64_t units, int need_depth)
{
    if (rows < 0 || units < 1 || (need_depth && depth < 1))
        return 0;
    if (rows > CF_MAX_DIM || depth > CF_MAX_DIM || units > CF_MAX_DIM)
        return 0;
    return rows * units <= CF_MAX_PADDED_ELEMS && rows * depth <= CF_MAX_PADDED_ELEMS &&
           depth * units <= CF_MAX_PADDED_ELEMS;
}

const char *cf_chain_step_error(const cf_chain_step *st)
{
    switch (st->op) {
    case CF_CHAIN_CONV:
        return cf_conv2d_shape_error(&st->conv);
    case CF_CHAIN_CONV_POOL:
        return cf_conv_pool_shape_error(&st->conv, &st->pool, st->pool_mode);
    case CF_CHAIN_POOL:
        return cf_pool2d_shape_error(&st->pool, st->pool_mode);
    case CF_CHAIN_DENSE:
        return dense_sizes_ok(st->rows, st->depth, st->units, 1)
                   ? NULL : "dense sizes out of range (rows >= 0, depth and units >= 1)";
    case CF_CHAIN_SOFTMAX:
        return dense_sizes_ok(st->rows, 0, st->units, 0)
                   ? NULL : "softmax sizes out of range (rows >= 0, units >= 1)";
    default:
        return "unknown step";
    }
}

int64_t cf_chain_step_in_elems(const cf_chain_step *st)
{
    if (cf_chain_step_error(st) != NULL)
        return 0;
    switch (st->op) {
    case CF_CHAIN_CONV:
    case CF_CHAIN_CONV_POOL:
        return st->conv.n * st->conv.h * st->conv.w * st->conv.c;
    case CF_CHAIN_POOL:
        return st->pool.n * st->pool.h * st->pool.w * st->pool.c;
    case CF_CHAIN_DENSE:
        return st->rows * st->depth;
    default: /* CF_CHAIN_SOFTMAX */
        return st->rows * st->units;
    }
}

int64_t cf_chain_step_out_elems(const cf_chain_step *st)
{
    if (cf_chain_step_error(st) != NULL)
        return 0;
    switch (st->op) {
    case CF_CHAIN_CONV:
        return st->conv.n * st->conv.oh * st->conv.ow * st->conv.f;
    case CF_CHAIN_CONV_POOL:
    case CF_CHAIN_POOL:
        return st->pool.n * st->pool.oh * st->pool.ow * st->pool.c;
    default: /* CF_CHAIN_DENSE, CF_CHAIN_SOFTMAX */
        return st->rows * st->units;
    }
}

int cf_chain_run_by_dtype(cf_dtype dt, const cf_chain_step *steps, int64_t nsteps,
                          int nthreads)
{
    for (int64_t i = 0; i < nsteps; i++) {
        const cf_chain_step *st = &steps[i];
        int rc = 0;
        switch (st->op) {
        case CF_CHAIN_CONV:
            rc = cf_conv2d_forward_by_dtype(dt, &st->conv, st->src, st->kernel, st->bias,
                                            st->relu, st->dst, nthreads);
            break;
        case CF_CHAIN_CONV_POOL:
            rc = cf_conv2d_pool_forward_by_dtype(dt, &st->conv, &st->pool, st->pool_mode,
                                                 st->src, st->kernel, st->bias, st->relu,
                                                 st->dst, NULL, 0, nthreads);
            break;
        case CF_CHAIN_POOL:
            cf_pool2d_forward_by_dtype(dt, &st->pool, st->pool_mode, st->src, st->dst, NULL,
                                       nthreads);
            break;
        case CF_CHAIN_DENSE:
            /* row-major operands: a (rows x depth), b (depth x units) */
            rc = cf_gemm_by_dtype(dt, st->rows, st->units, st->depth, st->src, st->depth, 1,
                                  st->kernel, st->units, 1, st->dst, st->units, 0, st->bias,
                                  st->relu, nthreads);
            break;
        case CF_CHAIN_SOFTMAX:
            cf_softmax_rows_by_dtype(dt, st->rows, st->units, st->src, st->dst);
            break;
        default:
            return -2;
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}
