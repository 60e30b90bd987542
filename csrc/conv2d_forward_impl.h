/* The forward convolution driver, for one element type: a padded copy of
 * each image (or x in place) read by the direct, wide or narrow
 * micro-kernel, or im2col tiles for geometries whose padded copy would be
 * too large. The same driver (forward_src) runs the stride-1 input gradient
 * (a forward convolution of dy, conv2d_input_grad_impl.h) and the fused
 * convolution + pooling forward (a pool_out, conv2d_pool_impl.h).
 *
 * Why a file of its own: the forward is the largest driver, and the one the
 * other directions reuse; keeping it apart keeps each direction readable.
 *
 * Instantiated by conv2d.c after conv2d_common_impl.h, with its macros. */

/* How output pixels are computed: the direct micro-kernel (MR pixels of a
 * row x NR filters), the wide one (CF_UKERNEL_WIDE_MR pixels anywhere x 4
 * vectors of filters), or for very few filters the narrow one (vectors over
 * channels). */
typedef struct {
    const CV_UK *uk;
    const int64_t *tap_off;
    const CV_T *wt; /* narrow only: per-filter taps, channels padded to cpad */
    int64_t cpad;
    const CV_T *wpk; /* direct and wide: the weights of filter 0, then of filter j at
                      * wpk + j * wjs, rows (taps x channels) wks apart: packed
                      * [F/PN][K][PN] streams (wjs = K, wks = PN) or the kernel
                      * itself (wjs = 1, wks = F) */
    int64_t wjs, wks;
    int64_t pn;      /* the panel width: NR, or the wide / pixel tile's */
    CV_DIRECT_FN direct; /* uk->direct, or its streaming variant */
    int wide;        /* tiles of `wr` pixels anywhere (may span rows) by `px` */
    int64_t wr;
    CV_PX_FN px;     /* direct_wide, or the level's row-spanning direct_px */
} CV_FN(row_plan);

/* Output pixels [q0, q0 + np) of one image, numbered row-major (q = oh * ow
 * + ow), with the wide or pixel kernel: tiles of pl->wr pixels may span
 * rows, so a 14-pixel row costs no partial tile of its own. y: pixel q0's
 * output (pixels are F apart). */
static void CV_FN(wide_pixels)(const cf_conv2d_shape *s, const CV_FN(row_plan) *pl,
                               const CV_T *xp, int64_t wp, int64_t q0, int64_t np,
                               const CV_T *bias, int relu, CV_T *y)
{
    const int64_t WR = pl->wr, PN = pl->pn, C = s->c, F = s->f;
    const int64_t ntaps = s->kh * s->kw;
    /* the next pixel's row and column, stepped instead of divided per pixel:
     * with one input channel the tile's divisions cost more than its FMAs */
    int64_t row = q0 / s->ow, col = q0 % s->ow;
    for (int64_t i0 = 0; i0 < np; i0 += WR) {
        const int64_t mr = np - i0 < WR ? np - i0 : WR;
        int64_t px[CF_UKERNEL_MAX_MR];
        for (int64_t i = 0; i < mr; i++) {
            px[i] = (row * s->sh * wp + col * s->sw) * C;
            if (++col == s->ow) {
                col = 0;
                row++;
            }
        }
        for (int64_t i = mr; i < WR; i++)
            px[i] = px[0]; /* spare rows read the tile's first pixel */
        for (int64_t j0 = 0; j0 < F; j0 += PN) {
            const int64_t nr = F - j0 < PN ? F - j0 : PN;
            pl->px(ntaps, pl->tap_off, C, xp, px, pl->wpk + j0 * pl->wjs, pl->wks,
                   y + i0 * F + j0, F,
                   (int)mr, (int)nr, 0, bias ? bias + j0 : NULL, relu);
        }
    }
}

static void CV_FN(direct_row)(const cf_conv2d_shape *s, const CV_FN(row_plan) *pl,
                              const CV_T *xp, int64_t wp, int64_t oh, const CV_T *bias,
                              int relu, CV_T *yrow)
{
    const CV_UK *uk = pl->uk;
    const int64_t MR = uk->mr, NR = uk->nr, C = s->c, F = s->f;
    const int64_t ntaps = s->kh * s->kw;
    if (pl->wt != NULL) {
        for (int64_t ow0 = 0; ow0 < s->ow; ow0 += CF_NARROW_ROWS) {
            const int64_t np = s->ow - ow0 < CF_NARROW_ROWS ? s->ow - ow0 : CF_NARROW_ROWS;
            uk->narrow(ntaps, pl->tap_off, C, pl->cpad,
                       xp + (oh * s->sh * wp + ow0 * s->sw) * C, s->sw * C, (int)np,
                       pl->wt, ntaps * pl->cpad, F, yrow + ow0 * F, F, bias, relu);
        }
        return;
    }
    for (int64_t ow0 = 0; ow0 < s->ow; ow0 += MR) {
        const int64_t mr = s->ow - ow0 < MR ? s->ow - ow0 : MR;
        const CV_T *a = xp + (oh * s->sh * wp + ow0 * s->sw) * C;
        for (int64_t j0 = 0; j0 < F; j0 += NR) {
            const int64_t nr = F - j0 < NR ? F - j0 : NR;
            pl->direct(ntaps, pl->tap_off, C, a, s->sw * C, pl->wpk + j0 * pl->wjs, pl->wks,
                       yrow + ow0 * F + j0, F, (int)mr, (int)nr,
                       bias ? bias + j0 : NULL, relu);
        }
    }
}

/* Convolution rows [r0, r0 + nrows) of one image into y (contiguous rows):
 * with the wide kernel as one pixel range (tiles run across rows), else row
 * by row. */
static void CV_FN(conv_rows)(const cf_conv2d_shape *s, const CV_FN(row_plan) *pl,
                             const CV_T *xp, int64_t wp, int64_t r0, int64_t nrows,
                             const CV_T *bias, int relu, CV_T *y)
{
    if (pl->wide) {
        CV_FN(wide_pixels)(s, pl, xp, wp, r0 * s->ow, nrows * s->ow, bias, relu, y);
        return;
    }
    for (int64_t r = 0; r < nrows; r++)
        CV_FN(direct_row)(s, pl, xp, wp, r0 + r, bias, relu, y + r * s->ow * s->f);
}

/* Forward for geometries where a padded copy of the receptive field would be
 * much larger than the input (huge strides, dilations or paddings): im2col
 * rows of a tile of pixels, then the direct micro-kernel with one "tap"
 * spanning the whole reduction. Memory stays O(tile x K). */
static int CV_FN(forward_im2col)(const cf_conv2d_shape *s, const CV_UK *uk,
                                 const CV_T *x, const CV_T *kernel, const CV_T *bias,
                                 int relu, CV_T *y, int nthreads)
{
    const int64_t MR = uk->mr, NR = uk->nr, F = s->f;
    const int64_t K1 = s->kh * s->kw * s->c + 1; /* rows carry a ones column */
    const int64_t P = s->n * s->oh * s->ow;
    const int64_t MT = MR * CF_CONV_TILE_PANELS;
    const int64_t ntiles = (P + MT - 1) / MT;
    static const int64_t zero_off[1] = {0};
    int nt = cf_team_size(nthreads, ntiles);
    int failed = 0;
    (void)nt;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        CF_REGION_FP_ENTER();
        CV_T *col = (CV_T *)cf_workspace_or_flag(CF_WS_IM2COL_TILE, (size_t)((MT + MR) * K1) * sizeof(CV_T), &failed);
#ifdef _OPENMP
#pragma omp for schedule(guided)
#endif
        for (int64_t t = 0; t < ntiles; t++) {
            if (col == NULL)
                continue;
            const int64_t p0 = t * MT;
            const int64_t mt = P - p0 < MT ? P - p0 : MT;
            CV_FN(im2col_rows)(s, x, p0, mt, col);
            /* rows read past the tile by the last micro-panel */
            memset(col + mt * K1, 0, (size_t)(MR * K1) * sizeof(CV_T));
            for (int64_t ip = 0; ip < mt; ip += MR) {
                const int64_t mr = mt - ip < MR ? mt - ip : MR;
                for (int64_t j0 = 0; j0 < F; j0 += NR) {
                    const int64_t nr = F - j0 < NR ? F - j0 : NR;
                    uk->direct(1, zero_off, K1 - 1, col + ip * K1, K1, kernel + j0, F,
                               y + (p0 + ip) * F + j0, F, (int)mr, (int)nr,
                               bias ? bias + j0 : NULL, relu);
                }
            }
        }
        CF_REGION_FP_LEAVE();
    }
    return failed ? -1 : 0;
}

/* Everything direct_row needs that depends on the kernel only: tap offsets
 * into the padded image (CF_WS_TAP_OFFSETS) and the weights in the chosen
 * micro-kernel's order (CF_WS_NARROW_KERNEL or CF_WS_PACKED_KERNEL), in the
 * calling thread's workspace. stream: the tiles' streaming variants where
 * the level has them (the caller fences). */
static int CV_FN(forward_plan)(const cf_conv2d_shape *s, const CV_UK *uk, int64_t wp,
                               const CV_T *kernel, int stream, CV_FN(row_plan) *plan)
{
    const int64_t C = s->c, F = s->f, ntaps = s->kh * s->kw;
    int64_t *tap_off = (int64_t *)cf_workspace(CF_WS_TAP_OFFSETS, (size_t)ntaps * sizeof(int64_t));
    if (tap_off == NULL)
        return -1;
    for (int64_t a = 0; a < s->kh; a++)
        for (int64_t b = 0; b < s->kw; b++)
            tap_off[a * s->kw + b] = (a * s->dh * wp + b * s->dw) * C;
    plan->uk = uk;
    plan->tap_off = tap_off;
    plan->wt = NULL;
    plan->cpad = 0;
    plan->wpk = NULL;
    plan->wjs = plan->wks = 0;
    plan->pn = uk->nr;
    plan->direct = stream && uk->direct_stream != NULL ? uk->direct_stream : uk->direct;
    plan->wide = 0;
    plan->wr = 0;
    plan->px = NULL;
    /* Few filters leave most of the NR-wide micro-kernel idle: use the
     * narrow kernel when there are enough channels to fill its vectors. */
    if (uk->narrow != NULL && F <= CF_CONV_NARROW_MAX_F && 2 * C >= uk->vw) {
        const int64_t cpad = (C + uk->vw - 1) / uk->vw * uk->vw;
        CV_T *wt = (CV_T *)cf_workspace(CF_WS_NARROW_KERNEL, (size_t)(F * ntaps * cpad) * sizeof(CV_T));
        if (wt == NULL)
            return -1;
        for (int64_t j = 0; j < F; j++)
            for (int64_t t = 0; t < ntaps; t++)
                for (int64_t c = 0; c < cpad; c++)
                    wt[(j * ntaps + t) * cpad + c] = c < C ? kernel[(t * C + c) * F + j] : 0;
        plan->wt = wt;
        plan->cpad = cpad;
        return 0;
    }
    /* The weights as one contiguous [K][NR] stream per panel of NR filters
     * (zero past F): the micro-kernel then reads them sequentially instead
     * of at a stride of F, which is faster. */
    /* The wide kernel when there are filters to fill most of its 4 vectors;
     * else the level's row-spanning pixel tile where it has one (AVX2). */
    int64_t NR = uk->nr;
    if (uk->direct_wide != NULL && F >= CF_CONV_WIDE_MIN_F) {
        plan->wide = 1;
        plan->wr = CF_UKERNEL_WIDE_MR;
        plan->px = stream && uk->direct_wide_stream != NULL ? uk->direct_wide_stream
                                                             : uk->direct_wide;
        NR = 4 * uk->vw;
    } else if (uk->direct_px != NULL) {
        plan->wide = 1;
        plan->wr = uk->px_mr;
        plan->px = stream && uk->direct_px_stream != NULL ? uk->direct_px_stream : uk->direct_px;
        NR = uk->px_nr;
    }
    const int64_t K = ntaps * C, npan = (F + NR - 1) / NR;
    plan->pn = NR;
    if ((F == NR && (uintptr_t)kernel % 64 == 0) || s->n * s->oh * s->ow <= CF_CONV_PACK_MIN_PIXELS) {
        /* the kernel read in place: one panel as wide as the filters is its
         * own stream, and a few pixels would spend more on the copy (a tenth
         * of a one-image forward) than its streams save */
        plan->wpk = kernel;
        plan->wjs = 1;
        plan->wks = F;
        return 0;
    }
    CV_T *wpk = (CV_T *)cf_workspace(CF_WS_PACKED_KERNEL, (size_t)(npan * K * NR) * sizeof(CV_T));
    if (wpk == NULL)
        return -1;
    for (int64_t jp = 0; jp < npan; jp++) {
        const int64_t f0 = jp * NR, nf = F - f0 < NR ? F - f0 : NR;
        /* rows of at most 64 values: plain loops, which vectorise, where a
         * libc call per row costs more than its copy */
        for (int64_t k = 0; k < K; k++) {
            CV_T *restrict row = wpk + (jp * K + k) * NR;
            const CV_T *restrict src = kernel + k * F + f0;
            for (int64_t j = 0; j < nf; j++)
                row[j] = src[j];
            for (int64_t j = nf; j < NR; j++)
                row[j] = 0;
        }
    }
    plan->wpk = wpk;
    plan->wjs = K;
    plan->wks = NR;
    return 0;
}

/* Where the forward writes: convolution rows into y, or (p != NULL, the
 * fused convolution + pooling of conv2d_pool_impl.h) pooled rows: each
 * pooled row's window of convolution rows is made in per-thread scratch and
 * pooled from there at once, so the convolution output is never stored. */
typedef struct {
    const cf_pool2d_shape *p; /* pooling of the convolution output */
    cf_pool2d_shape band;     /* one pooled row: n = 1, h = kh, oh = 1 */
    int mode;
    int32_t *argmax;          /* (n, p->oh, p->ow, f) or NULL */
    int mark_dead;            /* argmax = -1 where the pooled value is not > 0 */
} CV_FN(pool_out);

/* Pooled rows [po, po + g) of one image: the convolution rows of their
 * windows into bandbuf, then the pooling of each window; argmax made
 * relative to the whole plane. g > 1 only when the windows tile the rows
 * (pooling stride == window height): the convolution rows are then one
 * contiguous range, which the wide kernel covers with tiles across rows. */
static void CV_FN(conv_pool_rows)(const cf_conv2d_shape *s, const cf_pool2d_shape *band,
                                  int64_t po, int64_t g, int64_t psh, int mode,
                                  const CV_FN(row_plan) *plan, const CV_T *xp, int64_t wp,
                                  const CV_T *bias, int relu, int mark_dead,
                                  CV_T *restrict bandbuf, CV_T *yrow, int32_t *restrict amrow)
{
    const int64_t rowlen = s->ow * s->f, prow = band->ow * band->c;
    CV_FN(conv_rows)(s, plan, xp, wp, po * psh, g * band->kh, bias, relu, bandbuf);
    for (int64_t i = 0; i < g; i++) {
        int32_t *am = amrow != NULL ? amrow + i * prow : NULL;
        CF_POOL_BAND_FWD(band, mode, bandbuf + i * band->kh * rowlen, yrow + i * prow, am);
        if (am != NULL)
            CF_POOL_ARGMAX_TO_PLANE(prow, yrow + i * prow, (po + i) * psh * s->ow, mark_dead, am);
    }
}

/* Output rows [r, r + g) of image n (its padded copy in xp): convolution
 * rows, or with po pooled rows (bandbuf: g * po->p->kh convolution rows of
 * scratch; g > 1 only as conv_pool_rows allows). */
static void CV_FN(emit_rows)(const cf_conv2d_shape *s, const CV_FN(row_plan) *plan,
                             const CV_FN(pool_out) *po, const CV_T *xp, int64_t wp,
                             int64_t n, int64_t r, int64_t g, const CV_T *bias, int relu,
                             CV_T *y, CV_T *bandbuf)
{
    if (po == NULL) {
        CV_FN(conv_rows)(s, plan, xp, wp, r, g, bias, relu, y + (n * s->oh + r) * s->ow * s->f);
        return;
    }
    const int64_t off = (n * po->p->oh + r) * po->p->ow * s->f;
    CV_FN(conv_pool_rows)(s, &po->band, r, g, po->p->sh, po->mode, plan, xp, wp, bias, relu,
                          po->mark_dead, bandbuf, y + off, po->argmax ? po->argmax + off : NULL);
}

/* Image n of the forward's input into the padded buffer: from x, or, for a
 * pooled-gradient source (the fused input gradient), unpooled into `tmp`
 * (h x w x c) first. */
static void CV_FN(fill_padded)(const cf_conv2d_shape *s, const CV_T *x,
                               const CV_FN(dy_source) *src, int64_t n, int64_t hp,
                               int64_t wp, CV_T *xp, int borders_zero, CV_T *tmp,
                               void *scratch)
{
    if (src == NULL) {
        CV_FN(pad_image)(s, x + n * s->h * s->w * s->c, hp, wp, xp, borders_zero);
        return;
    }
    CV_FN(unpool_rows)(src, n, 0, s->h, tmp, scratch);
    CV_FN(pad_image)(s, tmp, hp, wp, xp, borders_zero);
}

static int CV_FN(forward_src)(const cf_conv2d_shape *s, const CV_T *x,
                              const CV_FN(dy_source) *src, const CV_FN(pool_out) *po,
                              const CV_T *kernel, const CV_T *bias, int relu, CV_T *y,
                              int nthreads);

/* A pooled-gradient source on a geometry the direct path does not take:
 * unpool it whole into a temporary (ReLU mask included, as unpool_rows
 * applies it: dx must not count the gradient of dead windows), then the
 * plain forward. */
static int CV_FN(forward_unpooled)(const cf_conv2d_shape *s, const CV_FN(dy_source) *src,
                                   const CV_T *kernel, int nthreads, CV_T *y)
{
    const size_t elems = (size_t)(s->n * s->h * s->w * s->c);
    CV_T *full = (CV_T *)malloc((elems ? elems : 1) * sizeof(CV_T));
    if (full == NULL)
        return -1;
    int rc = CV_FN(unpool_whole)(src, full, nthreads);
    if (rc == 0)
        rc = CV_FN(forward_src)(s, full, NULL, NULL, kernel, NULL, 0, y, nthreads);
    free(full);
    return rc;
}

int CV_FN(cf_conv2d_forward)(const cf_conv2d_shape *s, const CV_T *x,
                             const CV_T *kernel, const CV_T *bias, int relu,
                             CV_T *y, int nthreads)
{
    return CV_FN(forward_src)(s, x, NULL, NULL, kernel, bias, relu, y, nthreads);
}

/* Reference route for the geometries the direct path does not take: the full
 * intermediate in a temporary, then the unfused kernels. */
static int CV_FN(conv_pool_forward_unfused)(const cf_conv2d_shape *s,
                                            const cf_pool2d_shape *p, int mode,
                                            const CV_T *x, const CV_T *kernel,
                                            const CV_T *bias, int relu, CV_T *y,
                                            int32_t *argmax, int mark_dead, int nthreads)
{
    CV_T *z = (CV_T *)malloc((size_t)(s->n * s->oh * s->ow * s->f) * sizeof(CV_T));
    if (z == NULL)
        return -1;
    int rc = CV_FN(cf_conv2d_forward)(s, x, kernel, bias, relu, z, nthreads);
    if (rc == 0) {
        CF_POOL_FWD(p, mode, z, y, argmax, nthreads);
        if (argmax != NULL && mark_dead)
            CF_POOL_ARGMAX_TO_PLANE(p->n * p->oh * p->ow * p->c, y, 0, 1, argmax);
    }
    free(z);
    return rc;
}

/* The forward convolution, of x or (src != NULL: no bias, no relu) of an
 * unpooled gradient, into y or (po != NULL) pooled into y. src and po are
 * never both given: per thread, CF_WS_UNPOOLED holds the unpooled image
 * (src) or CF_WS_POOL_BAND the pooling band (po), one slot, and
 * CF_WS_UNPOOL_SCRATCH unpool_rows' scratch. */
static int CV_FN(forward_src)(const cf_conv2d_shape *s, const CV_T *x,
                              const CV_FN(dy_source) *src, const CV_FN(pool_out) *po,
                              const CV_T *kernel, const CV_T *bias, int relu, CV_T *y,
                              int nthreads)
{
    const CV_UK uk = CV_SELECT(cf_simd_level());
    const int64_t C = s->c, F = s->f;
    if (s->n == 0)
        return 0;
    if (s->winograd) {
        /* a pooled-gradient source is unpooled whole first */
        if (src != NULL)
            return CV_FN(forward_unpooled)(s, src, kernel, nthreads, y);
        if (po != NULL)
            return CV_FN(cf_winograd_pool_forward)(s, po->p, po->mode, x, kernel, bias, relu, y,
                                                   po->argmax, po->mark_dead, nthreads);
        return CV_FN(cf_winograd_forward)(s, x, kernel, bias, relu, y, nthreads);
    }
    int64_t hp, wp, img, slack;
    if (!CV_FN(padded_geometry)(s, uk.mr, &hp, &wp, &img, &slack)) {
        if (src != NULL)
            return CV_FN(forward_unpooled)(s, src, kernel, nthreads, y);
        if (po != NULL)
            return CV_FN(conv_pool_forward_unfused)(s, po->p, po->mode, x, kernel, bias,
                                                    relu, y, po->argmax, po->mark_dead,
                                                    nthreads);
        return CV_FN(forward_im2col)(s, &uk, x, kernel, bias, relu, y, nthreads);
    }
    const int64_t orows = po ? po->p->oh : s->oh; /* output rows per image */
    int failed = 0;
    /* An output far larger than the caches is stored around them (the
     * tiles' streaming variants): a plain store would first read each of its
     * lines from memory, doubling the traffic of a forward bound by it (a
     * first layer's 12.8 MB output: 1.0 ms plain from cold, 0.4 streamed) */
    const int stream = src == NULL && po == NULL &&
                       s->n * s->oh * s->ow * F * (int64_t)sizeof(CV_T) >= CF_CONV_STREAM_MIN_BYTES;
    CV_FN(row_plan) plan;
    if (CV_FN(forward_plan)(s, &uk, wp, kernel, stream, &plan) != 0)
        return -1;
    /* Output rows per call with the wide kernel: whole images, or as many
     * pooled rows as keep their convolution rows within CF_CONV_BAND_BYTES
     * of scratch (tiles across rows waste nothing at row ends). */
    int64_t grp = 1;
    if (plan.wide && po == NULL)
        grp = orows;
    else if (plan.wide && po->p->sh == po->p->kh) {
        const int64_t per = po->p->kh * s->ow * F * (int64_t)sizeof(CV_T);
        grp = CF_CONV_BAND_BYTES / per;
        grp = grp < 1 ? 1 : grp > orows ? orows : grp;
    }
    /* per thread, the staging rows: the unpooled image (src) or the
     * pooling band (po), one slot */
    const int stage_slot = src ? CF_WS_UNPOOLED : CF_WS_POOL_BAND;
    const size_t stage_bytes = src ? (size_t)(s->h * s->w * C) * sizeof(CV_T)
                            : po ? (size_t)(grp * po->p->kh * s->ow * F) * sizeof(CV_T)
                                 : 0;
    const size_t am_bytes = src ? CV_FN(unpool_scratch_bytes)(src->p) : 0;

    /* Geometries that pad nothing: the tiles read x in place, which saves
     * the copy. The 6 x 64 tile reads no pixel past a tile; the
     * others may read up to `slack` values past an image's end, which must
     * then still be inside x. */
    const int in_place = src == NULL && CV_FN(pads_nothing)(s, hp, wp);
    const int64_t xs = s->h * s->w * C; /* one image of x */
    if (s->n >= nthreads) {
        /* Whole images per thread: the padded copy stays in this core's cache. */
        int nt = cf_team_size(nthreads, s->n);
        (void)nt;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
        {
            CF_REGION_FP_ENTER();
            CV_T *xp = (CV_T *)cf_workspace_or_flag(CF_WS_PADDED_IMAGE, (size_t)(img + slack) * sizeof(CV_T), &failed);
            CV_T *stage = stage_bytes
                              ? (CV_T *)cf_workspace_or_flag(stage_slot, stage_bytes, &failed)
                              : NULL;
            void *uscratch = src ? cf_workspace_or_flag(CF_WS_UNPOOL_SCRATCH, am_bytes, &failed) : NULL;
            if (xp != NULL) {
                memset(xp + img, 0, (size_t)slack * sizeof(CV_T));
            }
            int zeroed = 0; /* this thread's xp holds the zero borders */
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
            for (int64_t n = 0; n < s->n; n++) {
                if (xp == NULL || (stage_bytes && stage == NULL) || (src != NULL && uscratch == NULL))
                    continue;
                const CV_T *xn = xp;
                if (in_place && (plan.wide || (s->n - 1 - n) * xs >= slack)) {
                    xn = x + n * xs;
                } else {
                    CV_FN(fill_padded)(s, x, src, n, hp, wp, xp, zeroed, stage, uscratch);
                    zeroed = 1;
                }
                for (int64_t r = 0; r < orows; r += grp)
                    CV_FN(emit_rows)(s, &plan, po, xn, wp, n, r,
                                     orows - r < grp ? orows - r : grp, bias, relu, y, stage);
            }
            if (stream)
                cf_ukernel_stream_fence();
            CF_REGION_FP_LEAVE();
        }
        return failed ? -1 : 0;
    }

    /* Few images: split the rows. With the wide kernel, whose tiles span
     * rows, each thread takes one block of about orows / nthreads rows of an
     * image (up to grp) in one call: one row per call would leave a partial
     * tile at every row's end and hand out single rows one by one. The tiles
     * compute each output pixel as the direct kernel does, so the split
     * changes no bits.
     * An input x is read in place where that pads nothing, else each item
     * copies the padded rows it reads into its thread's own buffer: no pass
     * by one thread while the others wait, and no copy made on one core for
     * another (a one-image layer lost 6 us of 27 to those). A pooled-gradient
     * source is unpooled whole, once per image, into one shared buffer. */
    const int own_rows = src == NULL;
    CV_T *xp = NULL;
    if (!own_rows) {
        xp = (CV_T *)cf_workspace(CF_WS_PADDED_BATCH, (size_t)(s->n * img + slack) * sizeof(CV_T));
        if (xp == NULL)
            return -1;
        memset(xp + s->n * img, 0, (size_t)slack * sizeof(CV_T));
    }
    int64_t blk = 1; /* output rows per work item */
    if (plan.wide) {
        const int64_t per_image = (nthreads + s->n - 1) / s->n; /* blocks per image */
        blk = (orows + per_image - 1) / per_image;
        blk = blk > grp ? grp : blk < 1 ? 1 : blk;
    }
    const int64_t blocks_per_image = (orows + blk - 1) / blk;
    const int64_t rows = s->n * blocks_per_image;
    int nt = cf_team_size(nthreads, rows);
    (void)nt;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        CF_REGION_FP_ENTER();
        CV_T *stage = stage_bytes
                          ? (CV_T *)cf_workspace_or_flag(stage_slot, stage_bytes, &failed)
                          : NULL;
        void *uscratch = src ? cf_workspace_or_flag(CF_WS_UNPOOL_SCRATCH, am_bytes, &failed) : NULL;
        CV_T *mine = own_rows ? (CV_T *)cf_workspace_or_flag(CF_WS_PADDED_IMAGE, (size_t)(img + slack) * sizeof(CV_T), &failed)
                              : NULL;
        if (mine != NULL)
            memset(mine + img, 0, (size_t)slack * sizeof(CV_T));
        if (!own_rows) {
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (int64_t n = 0; n < s->n; n++)
                if (stage != NULL && uscratch != NULL)
                    CV_FN(fill_padded)(s, x, src, n, hp, wp, xp + n * img, 0, stage, uscratch);
        }
#ifdef _OPENMP
#pragma omp for schedule(guided)
#endif
        for (int64_t item = 0; item < rows; item++) {
            if (failed)
                continue;
            const int64_t n = item / blocks_per_image, r = item % blocks_per_image * blk;
            const int64_t g = orows - r < blk ? orows - r : blk;
            const CV_T *xn = own_rows ? mine : xp + n * img;
            if (own_rows && in_place && (plan.wide || (s->n - 1 - n) * xs >= slack)) {
                xn = x + n * xs;
            } else if (own_rows) {
                /* the padded rows the item's convolution rows [c0, c1) read,
                 * and those a partial tile at the last row's end reads into
                 * (up to MR pixels on, into lanes it discards; past the
                 * image's last row, the slack) */
                const int64_t c0 = po ? r * po->p->sh : r;
                const int64_t c1 = po ? (r + g - 1) * po->p->sh + po->p->kh : r + g;
                const int64_t spill = (uk.mr * s->sw + wp - 1) / wp;
                const int64_t p1 = (c1 - 1) * s->sh + (s->kh - 1) * s->dh + 1 + spill;
                CV_FN(pad_rows)(s, x + n * xs, c0 * s->sh, p1 < hp ? p1 : hp, wp, mine, 0);
            }
            CV_FN(emit_rows)(s, &plan, po, xn, wp, n, r, g, bias, relu, y, stage);
        }
        if (stream)
            cf_ukernel_stream_fence();
        CF_REGION_FP_LEAVE();
    }
    return failed ? -1 : 0;
}
