/* Memory-safety checks of the geometry structs the Cython boundary fills.
 *
 * cnnfast/_spec.py resolves and checks every geometry for the user, with
 * messages naming the arguments. These checks are the last line before the
 * drivers index memory by the struct's numbers: they refuse a struct the
 * drivers could not run safely (a private caller's mistake, never a user's),
 * and they do the arithmetic in C so the Cython layer derives nothing.
 * Each returns NULL when the struct is safe, else a static message. */
#ifndef CNNFAST_GEOMETRY_H
#define CNNFAST_GEOMETRY_H

#include "conv2d.h"
#include "pool2d.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Sizes, strides and dilations >= 1 (n >= 0), paddings >= 0, each below
 * 2**31, and a padded image of at most
 * CF_MAX_PADDED_ELEMS elements (the drivers' offsets stay within a few
 * multiples of it, far inside int64). */
const char *cf_conv2d_shape_error(const cf_conv2d_shape *s);

/* Every window holds an in-bounds cell (the kernels read each window's first
 * in-bounds cell unconditionally), mode is max/avg/min, the plane fits the
 * int32 indices. */
const char *cf_pool2d_shape_error(const cf_pool2d_shape *p, int mode);

/* p pools the output of s by unpadded windows that do not overlap, by max or
 * min (what the fused kernels take), and its sizes are the ones that output
 * gives. */
const char *cf_conv_pool_shape_error(const cf_conv2d_shape *s, const cf_pool2d_shape *p,
                                     int mode);

#define CF_MAX_PADDED_ELEMS (1LL << 55)
#define CF_MAX_DIM 2147483647LL

#ifdef __cplusplus
}
#endif
#endif
