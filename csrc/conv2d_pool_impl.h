/* Fused convolution + max/min pooling entry points for one element type;
 * see conv2d.h for the contract. Instantiated by conv2d.c after the
 * conv2d_*_impl.h drivers, which do the work, with the same macros.
 *
 * Why: a convolution followed by pooling writes its whole output (12.8 MB
 * for the MNIST model's first layer at batch 128) only for the pooling to read
 * it back, and the backward pass writes the unpooled gradient of the same size
 * only for the kernel gradient to read it back. Here the forward driver
 * (conv2d_forward_impl.h's forward_src with a pool_out) makes the convolution output
 * one pooling band (kh rows) at a time in per-thread scratch and pools it at
 * once; rows in no pooling window are never computed. The backward unpools
 * one block of rows at a time in front of the kernel-gradient micro-kernel
 * and, for stride-1 convolutions, one image at a time as the input
 * gradient's forward convolution pads it (conv2d_common_impl.h's dy_source). */

int CV_FN(cf_conv2d_pool_forward)(const cf_conv2d_shape *s, const cf_pool2d_shape *p,
                                  int mode, const CV_T *x, const CV_T *kernel,
                                  const CV_T *bias, int relu, CV_T *y, int32_t *argmax,
                                  int mark_dead, int nthreads)
{
    CV_FN(pool_out) po;
    po.p = p;
    po.band = *p;
    po.band.n = 1;
    po.band.h = p->kh;
    po.band.oh = 1;
    po.mode = mode;
    po.argmax = argmax;
    po.mark_dead = mark_dead;
    return CV_FN(forward_src)(s, x, NULL, &po, kernel, bias, relu, y, nthreads);
}

/* The input gradient of a pooled-gradient source through a temporary: the
 * whole unpooled dy (ReLU mask included), then cf_conv2d_backward_input. */
static int CV_FN(backward_input_unpooled)(const cf_conv2d_shape *s, const CV_FN(dy_source) *src,
                                          const CV_T *kernel, CV_T *dx, int nthreads)
{
    const size_t elems = (size_t)(s->n * s->oh * s->ow * s->f);
    CV_T *dy = (CV_T *)malloc((elems + 1) * sizeof(CV_T));
    if (dy == NULL)
        return -1;
    int rc = CV_FN(unpool_whole)(src, dy, nthreads);
    if (rc == 0)
        rc = CV_FN(cf_conv2d_backward_input)(s, dy, kernel, dx, nthreads);
    free(dy);
    return rc;
}

int CV_FN(cf_conv2d_pool_backward)(const cf_conv2d_shape *s, const cf_pool2d_shape *p,
                                   int mode, const CV_T *x, const CV_T *dyp,
                                   const CV_T *ymask, const int32_t *argmax,
                                   const CV_T *kernel, CV_T *dx, CV_T *dkernel, CV_T *dbias,
                                   int nthreads)
{
    const CV_UK uk = CV_SELECT(cf_simd_level());
    const CV_FN(dy_source) src = {NULL, p, mode, dyp, argmax, ymask};
    int64_t hp, wp, img, slack;
    /* Winograd takes dy whole: its route below */
    const int direct_dk = !s->winograd && s->n >= CF_CONV_DW_DIRECT_MIN_N &&
                          CV_FN(padded_geometry)(s, uk.mr, &hp, &wp, &img, &slack);
    const int direct_dx = dx == NULL || (s->sh == 1 && s->sw == 1);
    if (direct_dk && direct_dx) {
        if (dx != NULL) {
            /* the input gradient is a forward convolution of dy, which
             * unpools each image into scratch as it pads it; with a
             * non-finite tap, which that would multiply by the padding's
             * zeros, the plain input gradient of dy unpooled whole (it
             * takes col2im then: conv2d_input_grad_impl.h) */
            const int rc = CV_FN(kernel_all_finite)(s, kernel)
                               ? CV_FN(backward_input_stride1)(s, NULL, &src, kernel, dx, nthreads)
                               : CV_FN(backward_input_unpooled)(s, &src, kernel, dx, nthreads);
            if (rc != 0)
                return -1;
        }
        return CV_FN(backward_kernel_direct)(s, &uk, x, &src, dkernel, dbias, nthreads);
    }
    if (s->winograd) {
        /* Winograd reads dy by tiles: unpooled in full into a buffer kept
         * between calls (no page faults of a fresh one per step), then the
         * two Winograd gradients, which never take slot 4 */
        const size_t bytes = (size_t)(s->n * s->oh * s->ow * s->f + 1) * sizeof(CV_T);
        CV_T *dy = (CV_T *)cf_workspace(CF_WS_WINO_UNPOOLED, bytes);
        if (dy == NULL || CV_FN(unpool_whole)(&src, dy, nthreads) != 0)
            return -1;
        if (dx != NULL && CV_FN(cf_conv2d_backward_input)(s, dy, kernel, dx, nthreads) != 0)
            return -1;
        return CV_FN(cf_conv2d_backward_kernel)(s, x, dy, dkernel, dbias, nthreads);
    }
    /* small batches, strided convolutions, odd geometries: unpool in full,
     * then the plain gradients (which pick their own routes) */
    const size_t elems = (size_t)(s->n * s->oh * s->ow * s->f);
    CV_T *dy = (CV_T *)malloc((elems + 1) * sizeof(CV_T));
    if (dy == NULL)
        return -1;
    int rc = CV_FN(unpool_whole)(&src, dy, nthreads);
    if (rc == 0 && dx != NULL)
        rc = CV_FN(cf_conv2d_backward_input)(s, dy, kernel, dx, nthreads);
    if (rc == 0)
        rc = CV_FN(cf_conv2d_backward_kernel)(s, x, dy, dkernel, dbias, nthreads);
    free(dy);
    return rc;
}
