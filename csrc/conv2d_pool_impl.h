/* Fused convolution + max/min pooling drivers for one element type; see
 * conv2d.h for the contract. Instantiated by conv2d.c after conv2d_impl.h
 * (whose static helpers it uses) with the same macros, plus CF_POOL_FWD /
 * CF_POOL_BWD / CF_POOL_BAND_FWD / CF_POOL_BAND_BWD (pool2d.h's entry points
 * for the type).
 *
 * Why: a convolution followed by pooling writes its whole output (12.8 MB
 * for the MNIST model's first layer at batch 128) only for the pooling to read
 * it back, and the backward pass writes the unpooled gradient of the same size
 * only for the kernel gradient to read it back. Here the convolution output
 * is made one pooling band (kh rows) at a time in per-thread scratch and
 * pooled at once; the backward unpools one block of rows at a time in front
 * of the kernel-gradient micro-kernel and, for stride-1 convolutions, one
 * image at a time as the input gradient's forward convolution pads it
 * (conv2d_impl.h's dy_source). Rows that lie in no pooling window are never
 * computed. Workspace slots: 0 (padded image), 1 (shared padded batch or
 * kernel-gradient partials), 6 (band / block / unpooled image), 7 (relative
 * indices). */

#define CV_CAT2(a, b) a##_##b
#define CV_CAT(a, b) CV_CAT2(a, b)
#define CV_FN(name) CV_CAT(name, CV_SFX)

/* Reference route for the geometries the direct path does not take: the full
 * intermediate in a temporary, then the unfused kernels. */
static int CV_FN(conv_pool_forward_unfused)(const cf_conv2d_shape *s,
                                            const cf_pool2d_shape *p, int mode,
                                            const CV_T *x, const CV_T *kernel,
                                            const CV_T *bias, int relu, CV_T *y,
                                            int32_t *argmax, int nthreads)
{
    CV_T *z = (CV_T *)malloc((size_t)(s->n * s->oh * s->ow * s->f) * sizeof(CV_T));
    if (z == NULL)
        return -1;
    int rc = CV_FN(cf_conv2d_forward)(s, x, kernel, bias, relu, z, nthreads);
    if (rc == 0)
        CF_POOL_FWD(p, mode, z, y, argmax, nthreads);
    free(z);
    return rc;
}

/* Pooled row po of one image: the convolution rows of its window into band,
 * then the pooling of band; argmax made relative to the whole plane. */
static void CV_FN(conv_pool_row)(const cf_conv2d_shape *s, const cf_pool2d_shape *band,
                                 int64_t po, int64_t psh, int mode,
                                 const CV_FN(row_plan) *plan, const CV_T *xp, int64_t wp,
                                 const CV_T *bias, int relu, CV_T *restrict bandbuf,
                                 CV_T *yrow, int32_t *restrict amrow)
{
    const int64_t rowlen = s->ow * s->f;
    for (int64_t r = 0; r < band->kh; r++)
        CV_FN(direct_row)(s, plan, xp, wp, po * psh + r, bias, relu, bandbuf + r * rowlen);
    CF_POOL_BAND_FWD(band, mode, bandbuf, yrow, amrow);
    if (amrow != NULL) {
        const int32_t shift = (int32_t)(po * psh * s->ow);
        const int64_t m = band->ow * band->c;
        for (int64_t i = 0; i < m; i++)
            amrow[i] += shift;
    }
}

int CV_FN(cf_conv2d_pool_forward)(const cf_conv2d_shape *s, const cf_pool2d_shape *p,
                                  int mode, const CV_T *x, const CV_T *kernel,
                                  const CV_T *bias, int relu, CV_T *y, int32_t *argmax,
                                  int nthreads)
{
    const CV_UK uk = CV_SELECT(cf_simd_level());
    const int64_t C = s->c, F = s->f;
    if (s->n == 0)
        return 0;
    int64_t hp, wp, img, slack;
    if (!CV_FN(padded_geometry)(s, uk.mr, &hp, &wp, &img, &slack))
        return CV_FN(conv_pool_forward_unfused)(s, p, mode, x, kernel, bias, relu, y,
                                                argmax, nthreads);
    CV_FN(row_plan) plan;
    if (CV_FN(forward_plan)(s, &uk, wp, kernel, &plan) != 0)
        return -1;
    cf_pool2d_shape band = *p;
    band.n = 1;
    band.h = p->kh;
    band.oh = 1;
    const size_t band_bytes = (size_t)(p->kh * s->ow * F) * sizeof(CV_T);
    const int64_t prow = p->ow * F, pimg = p->oh * prow;
    int failed = 0;

    if (s->n >= nthreads) {
        /* whole images per thread, as in the plain forward */
        int nt = cf_team_size(nthreads, s->n);
        (void)nt;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
        {
            CV_T *xp = (CV_T *)cf_workspace_or_flag(0, (size_t)(img + slack) * sizeof(CV_T), &failed);
            CV_T *bandbuf = (CV_T *)cf_workspace_or_flag(6, band_bytes, &failed);
            if (xp != NULL)
                memset(xp + img, 0, (size_t)slack * sizeof(CV_T));
            int zeroed = 0; /* xp holds the zero borders */
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
            for (int64_t n = 0; n < s->n; n++) {
                if (xp == NULL || bandbuf == NULL)
                    continue;
                CV_FN(pad_image)(s, x + n * s->h * s->w * C, hp, wp, xp, zeroed);
                zeroed = 1;
                for (int64_t po = 0; po < p->oh; po++)
                    CV_FN(conv_pool_row)(s, &band, po, p->sh, mode, &plan, xp, wp, bias, relu,
                                         bandbuf, y + n * pimg + po * prow,
                                         argmax ? argmax + n * pimg + po * prow : NULL);
            }
        }
        return failed ? -1 : 0;
    }

    /* Few images: pad them all into one shared buffer, then split the
     * pooled rows. */
    CV_T *xps = (CV_T *)cf_workspace(1, (size_t)(s->n * img + slack) * sizeof(CV_T));
    if (xps == NULL)
        return -1;
    memset(xps + s->n * img, 0, (size_t)slack * sizeof(CV_T));
    const int64_t rows = s->n * p->oh;
    int nt = cf_team_size(nthreads, rows);
    (void)nt;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        CV_T *bandbuf = (CV_T *)cf_workspace_or_flag(6, band_bytes, &failed);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t n = 0; n < s->n; n++)
            CV_FN(pad_image)(s, x + n * s->h * s->w * C, hp, wp, xps + n * img, 0);
#ifdef _OPENMP
#pragma omp for schedule(guided)
#endif
        for (int64_t r = 0; r < rows; r++) {
            if (bandbuf == NULL)
                continue;
            const int64_t n = r / p->oh, po = r % p->oh;
            CV_FN(conv_pool_row)(s, &band, po, p->sh, mode, &plan, xps + n * img, wp, bias,
                                 relu, bandbuf, y + n * pimg + po * prow,
                                 argmax ? argmax + n * pimg + po * prow : NULL);
        }
    }
    return failed ? -1 : 0;
}

int CV_FN(cf_conv2d_pool_backward)(const cf_conv2d_shape *s, const cf_pool2d_shape *p,
                                   int mode, const CV_T *x, const CV_T *dyp,
                                   const int32_t *argmax, const CV_T *kernel, CV_T *dx,
                                   CV_T *dkernel, CV_T *dbias, int nthreads)
{
    const CV_UK uk = CV_SELECT(cf_simd_level());
    const CV_FN(dy_source) src = {NULL, p, mode, dyp, argmax};
    int64_t hp, wp, img, slack;
    const int direct_dk = s->n >= CF_CONV_DW_DIRECT_MIN_N &&
                          CV_FN(padded_geometry)(s, uk.mr, &hp, &wp, &img, &slack);
    const int direct_dx = dx == NULL || (s->sh == 1 && s->sw == 1);
    if (direct_dk && direct_dx) {
        /* the input gradient is a forward convolution of dy, which unpools
         * each image into scratch as it pads it */
        if (dx != NULL && CV_FN(backward_input_stride1)(s, NULL, &src, kernel, dx, nthreads) != 0)
            return -1;
        return CV_FN(backward_kernel_direct)(s, &uk, x, &src, dkernel, dbias, nthreads);
    }
    /* small batches, strided convolutions, odd geometries: unpool in full,
     * then the plain gradients (which pick their own routes) */
    const size_t elems = (size_t)(s->n * s->oh * s->ow * s->f);
    CV_T *dy = (CV_T *)malloc((elems ? elems : 1) * sizeof(CV_T));
    if (dy == NULL)
        return -1;
    CF_POOL_BWD(p, mode, dyp, NULL, argmax, dy, nthreads);
    int rc = 0;
    if (dx != NULL)
        rc = CV_FN(cf_conv2d_backward_input)(s, dy, kernel, dx, nthreads);
    if (rc == 0)
        rc = CV_FN(cf_conv2d_backward_kernel)(s, x, dy, dkernel, dbias, nthreads);
    free(dy);
    return rc;
}

#undef CV_FN
#undef CV_CAT
#undef CV_CAT2
