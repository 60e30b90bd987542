/* Convolution drivers for one element type; see conv2d.h for the contract.
 *
 * Instantiated by conv2d.c with CV_T (element type), CV_SFX (f32/f64),
 * CV_UK (micro-kernel struct type) and CV_SELECT (its selector). */

#define CV_CAT2(a, b) a##_##b
#define CV_CAT(a, b) CV_CAT2(a, b)
#define CV_FN(name) CV_CAT(name, CV_SFX)

/* Copy `c` contiguous elements; constant sizes for the small channel counts
 * of first layers (grayscale, RGB) so the compiler emits plain moves instead
 * of a memcpy call per tap. */
static inline void CV_FN(copy_channels)(CV_T *restrict d, const CV_T *restrict src,
                                        int64_t c)
{
    switch (c) {
    case 1: d[0] = src[0]; break;
    case 2: memcpy(d, src, 2 * sizeof(CV_T)); break;
    case 3: memcpy(d, src, 3 * sizeof(CV_T)); break;
    case 4: memcpy(d, src, 4 * sizeof(CV_T)); break;
    default: memcpy(d, src, (size_t)c * sizeof(CV_T)); break;
    }
}

/* Full im2col rows of `np` consecutive pixels, dst[i * (K + 1) + k], with a
 * final column of ones: the kernel-gradient GEMM then yields the bias
 * gradient as its last row, in the micro-kernel's otherwise idle rows. */
static void CV_FN(im2col_rows)(const cf_conv2d_shape *s, const CV_T *restrict x,
                               int64_t p0, int64_t np, CV_T *restrict dst)
{
    const int64_t C = s->c, K = s->kh * s->kw * s->c + 1;
    const int64_t ohw = s->oh * s->ow;
    const int64_t eff_h = (s->kh - 1) * s->dh, eff_w = (s->kw - 1) * s->dw;
    int64_t n = p0 / ohw, r = p0 % ohw;
    int64_t oh = r / s->ow, ow = r % s->ow;
    for (int64_t i = 0; i < np; i++) {
        const int64_t ih0 = oh * s->sh - s->pt, iw0 = ow * s->sw - s->pl;
        const CV_T *xn = x + n * s->h * s->w * C;
        CV_T *d = dst + i * K;
        d[K - 1] = 1;
        if (C == 1 && ih0 >= 0 && ih0 + eff_h < s->h && iw0 >= 0 && iw0 + eff_w < s->w) {
            for (int64_t khi = 0; khi < s->kh; khi++) {
                const CV_T *srow = xn + (ih0 + khi * s->dh) * s->w + iw0;
                for (int64_t kwi = 0; kwi < s->kw; kwi++)
                    *d++ = srow[kwi * s->dw];
            }
        } else if (ih0 >= 0 && ih0 + eff_h < s->h && iw0 >= 0 && iw0 + eff_w < s->w) {
            /* interior pixel: no bounds checks */
            for (int64_t khi = 0; khi < s->kh; khi++) {
                const CV_T *srow = xn + ((ih0 + khi * s->dh) * s->w + iw0) * C;
                for (int64_t kwi = 0; kwi < s->kw; kwi++, d += C)
                    CV_FN(copy_channels)(d, srow + kwi * s->dw * C, C);
            }
        } else {
            for (int64_t khi = 0; khi < s->kh; khi++) {
                const int64_t ih = ih0 + khi * s->dh;
                for (int64_t kwi = 0; kwi < s->kw; kwi++, d += C) {
                    const int64_t iw = iw0 + kwi * s->dw;
                    if (ih >= 0 && ih < s->h && iw >= 0 && iw < s->w)
                        CV_FN(copy_channels)(d, xn + (ih * s->w + iw) * C, C);
                    else
                        for (int64_t c = 0; c < C; c++)
                            d[c] = 0;
                }
            }
        }
        if (++ow == s->ow) {
            ow = 0;
            if (++oh == s->oh) {
                oh = 0;
                n++;
            }
        }
    }
}

/* Where a gradient dy of a convolution output comes from: a plain
 * (n, oh, ow, f) array, or (fused convolution + pooling, conv2d_pool_impl.h)
 * the gradient of the pooled output and the forward's argmax, unpooled a
 * block of rows at a time into per-thread scratch so the full dy never
 * exists. The kernel gradient reads it by blocks of rows; the stride-1 input
 * gradient (a forward convolution of dy) by whole images. */
typedef struct {
    const CV_T *dy;           /* plain dy, or NULL */
    const cf_pool2d_shape *p; /* pooling of the convolution output */
    int mode;
    const CV_T *dyp;          /* (n, p->oh, p->ow, f) */
    const int32_t *argmax;    /* (n, p->oh, p->ow, f), flat plane indices */
    const CV_T *ymask;        /* the pooled forward output: dyp counts only
                               * where ymask > 0 (ReLU), or NULL */
} CV_FN(dy_source);

/* unpool_rows' per-thread scratch: one pooled row's relative indices, then,
 * at this 64-byte aligned offset, its ReLU-masked gradient. */
static size_t CV_FN(unpool_mask_offset)(const cf_pool2d_shape *p)
{
    return ((size_t)(p->ow * p->c) * sizeof(int32_t) + 63) / 64 * 64;
}

static size_t CV_FN(unpool_scratch_bytes)(const cf_pool2d_shape *p)
{
    return CV_FN(unpool_mask_offset)(p) + (size_t)(p->ow * p->c) * sizeof(CV_T);
}

/* out = d where y > 0, else 0 (ReLU backward of pooled gradients). d[i] is
 * loaded unconditionally so that GCC vectorises the select (a load under
 * the condition is not if-converted). */
static void CV_FN(relu_masked_row)(int64_t n, const CV_T *restrict d, const CV_T *restrict y,
                                   CV_T *restrict out)
{
    for (int64_t i = 0; i < n; i++) {
        const CV_T v = d[i];
        out[i] = y[i] > 0 ? v : (CV_T)0;
    }
}

/* dy rows [r0, r0 + nrow) of image n into blk (nrow x p->w x p->c), r0 a
 * multiple of the pooling stride; scratch: unpool_scratch_bytes(p). The
 * ReLU mask is applied here, to the pooled row in L1, instead of in a
 * separate pass over the whole pooled gradient. */
static void CV_FN(unpool_rows)(const CV_FN(dy_source) *src, int64_t n, int64_t r0,
                               int64_t nrow, CV_T *restrict blk, void *scratch)
{
    const cf_pool2d_shape *p = src->p;
    const int64_t rowlen = p->w * p->c, prow = p->ow * p->c;
    int32_t *restrict am_rel = (int32_t *)scratch;
    CV_T *masked = (CV_T *)((char *)scratch + CV_FN(unpool_mask_offset)(p));
    cf_pool2d_shape band = *p;
    band.n = 1;
    band.h = p->kh;
    band.oh = 1;
    for (int64_t r = 0; r < nrow; r++) {
        /* rows in no window (between windows, or below the last) */
        const int64_t rr = r0 + r, po = rr / p->sh;
        if (po >= p->oh || rr - po * p->sh >= p->kh)
            memset(blk + r * rowlen, 0, (size_t)rowlen * sizeof(CV_T));
    }
    for (int64_t po = r0 / p->sh; po < p->oh && po * p->sh < r0 + nrow; po++) {
        const int64_t off = (n * p->oh + po) * prow;
        /* in 64 bits: the indices may come from the caller (private wrappers
         * included), and one outside the band becomes -1, which matches no cell */
        const int64_t shift = po * p->sh * p->w;
        for (int64_t i = 0; i < prow; i++) {
            const int64_t rel = (int64_t)src->argmax[off + i] - shift;
            am_rel[i] = rel >= 0 && rel <= INT32_MAX ? (int32_t)rel : -1;
        }
        const CV_T *drow = src->dyp + off;
        if (src->ymask != NULL) {
            CV_FN(relu_masked_row)(prow, drow, src->ymask + off, masked);
            drow = masked;
        }
        CF_POOL_BAND_BWD(&band, src->mode, drow, am_rel, blk + (po * p->sh - r0) * rowlen);
    }
}

/* Copy the receptive field of image `xn` into a zero-padded buffer of
 * hp x wp pixels: xp[r][q] = x[r - pt][q - pl] (0 outside the image).
 * borders_zero: xp already holds this geometry's zeros (a per-thread buffer
 * reused for the next image), so only the pixels are copied: for few
 * channels the zero runs are a few bytes each, and a libc call apiece for
 * every row of every image cost more than the copy itself. */
static void CV_FN(pad_image)(const cf_conv2d_shape *s, const CV_T *restrict xn,
                             int64_t hp, int64_t wp, CV_T *restrict xp, int borders_zero)
{
    const int64_t C = s->c;
    int64_t q_lo = s->pl, q_hi = s->pl + s->w; /* columns that hold pixels */
    if (q_lo < 0)
        q_lo = 0;
    if (q_hi > wp)
        q_hi = wp;
    for (int64_t r = 0; r < hp; r++) {
        CV_T *row = xp + r * wp * C;
        const int64_t ih = r - s->pt;
        if (ih < 0 || ih >= s->h || q_lo >= q_hi) {
            if (!borders_zero)
                memset(row, 0, (size_t)(wp * C) * sizeof(CV_T));
            continue;
        }
        if (q_lo > 0 && !borders_zero)
            memset(row, 0, (size_t)(q_lo * C) * sizeof(CV_T));
        memcpy(row + q_lo * C, xn + (ih * s->w + (q_lo - s->pl)) * C,
               (size_t)((q_hi - q_lo) * C) * sizeof(CV_T));
        if (q_hi < wp && !borders_zero)
            memset(row + q_hi * C, 0, (size_t)((wp - q_hi) * C) * sizeof(CV_T));
    }
}

/* How output pixels are computed: the direct micro-kernel (MR pixels of a
 * row x NR filters), the wide one (CF_UKERNEL_WIDE_MR pixels anywhere x 4
 * vectors of filters), or for very few filters the narrow one (vectors over
 * channels). */
typedef struct {
    const CV_UK *uk;
    const int64_t *tap_off;
    const CV_T *wt; /* narrow only: per-filter taps, channels padded to cpad */
    int64_t cpad;
    const CV_T *wpk; /* direct and wide: weights as [F/PN][K][PN] contiguous streams */
    int64_t pn;      /* their panel width: NR, or 4 vectors for the wide kernel */
    int wide;
} CV_FN(row_plan);

/* Output pixels [q0, q0 + np) of one image, numbered row-major (q = oh * ow
 * + ow), with the wide kernel: tiles of CF_UKERNEL_WIDE_MR pixels may span
 * rows, so a 14-pixel row costs no partial tile of its own. y: pixel q0's
 * output (pixels are F apart). */
static void CV_FN(wide_pixels)(const cf_conv2d_shape *s, const CV_FN(row_plan) *pl,
                               const CV_T *xp, int64_t wp, int64_t q0, int64_t np,
                               const CV_T *bias, int relu, CV_T *y)
{
    const int64_t WR = CF_UKERNEL_WIDE_MR, PN = pl->pn, C = s->c, F = s->f;
    const int64_t ntaps = s->kh * s->kw, K = ntaps * C;
    for (int64_t i0 = 0; i0 < np; i0 += WR) {
        const int64_t mr = np - i0 < WR ? np - i0 : WR;
        int64_t px[CF_UKERNEL_WIDE_MR];
        for (int64_t i = 0; i < WR; i++) {
            /* spare rows read the tile's first pixel */
            const int64_t q = q0 + i0 + (i < mr ? i : 0);
            px[i] = ((q / s->ow) * s->sh * wp + (q % s->ow) * s->sw) * C;
        }
        for (int64_t j0 = 0; j0 < F; j0 += PN) {
            const int64_t nr = F - j0 < PN ? F - j0 : PN;
            pl->uk->direct_wide(ntaps, pl->tap_off, C, xp, px, pl->wpk + j0 * K, PN,
                                y + i0 * F + j0, F, (int)mr, (int)nr, 0,
                                bias ? bias + j0 : NULL, relu);
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
            uk->direct(ntaps, pl->tap_off, C, a, s->sw * C, pl->wpk + j0 * ntaps * C, NR,
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
        CV_T *col = (CV_T *)cf_workspace_or_flag(0, (size_t)((MT + MR) * K1) * sizeof(CV_T), &failed);
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

/* The padded copy of one image's receptive field: hp x wp pixels, plus
 * slack so that the micro-kernel's reads of rows past the end of the last
 * tile stay inside the buffer. Returns 0 when the copy would be much larger
 * than the input (huge strides, dilations or paddings): im2col then. */
static int CV_FN(padded_geometry)(const cf_conv2d_shape *s, int64_t MR, int64_t *hp,
                                  int64_t *wp, int64_t *img, int64_t *slack)
{
    *hp = (s->oh - 1) * s->sh + (s->kh - 1) * s->dh + 1;
    *wp = (s->ow - 1) * s->sw + (s->kw - 1) * s->dw + 1;
    *img = *hp * *wp * s->c;
    *slack = (MR + 1) * s->sw * s->c + s->c;
    return *img + *slack <= 4 * s->h * s->w * s->c + CF_CONV_PAD_ALLOWANCE;
}

/* Whether the padded copy of an image would be the image's own first hp
 * rows as they are (no top or left padding, and the last output column's
 * receptive field ends on the image's last column, so wp == w): the tiles
 * can then read x in place. */
static int CV_FN(pads_nothing)(const cf_conv2d_shape *s, int64_t hp, int64_t wp)
{
    return s->pt == 0 && s->pl == 0 && wp == s->w && hp <= s->h;
}

/* Everything direct_row needs that depends on the kernel only: tap offsets
 * into the padded image (slot 2) and the weights in the chosen micro-kernel's
 * order (slot 4 or 5), in the calling thread's workspace. */
static int CV_FN(forward_plan)(const cf_conv2d_shape *s, const CV_UK *uk, int64_t wp,
                               const CV_T *kernel, CV_FN(row_plan) *plan)
{
    const int64_t C = s->c, F = s->f, ntaps = s->kh * s->kw;
    int64_t *tap_off = (int64_t *)cf_workspace(2, (size_t)ntaps * sizeof(int64_t));
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
    plan->pn = uk->nr;
    plan->wide = 0;
    /* Few filters leave most of the NR-wide micro-kernel idle: use the
     * narrow kernel when there are enough channels to fill its vectors. */
    if (uk->narrow != NULL && F <= CF_CONV_NARROW_MAX_F && 2 * C >= uk->vw) {
        const int64_t cpad = (C + uk->vw - 1) / uk->vw * uk->vw;
        CV_T *wt = (CV_T *)cf_workspace(4, (size_t)(F * ntaps * cpad) * sizeof(CV_T));
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
     * of at a stride of F (measured ~10% faster). */
    /* The wide kernel when there are filters to fill most of its 4 vectors. */
    plan->wide = uk->direct_wide != NULL && F >= CF_CONV_WIDE_MIN_F;
    const int64_t NR = plan->wide ? 4 * uk->vw : uk->nr;
    const int64_t K = ntaps * C, npan = (F + NR - 1) / NR;
    CV_T *wpk = (CV_T *)cf_workspace(5, (size_t)(npan * K * NR) * sizeof(CV_T));
    if (wpk == NULL)
        return -1;
    for (int64_t jp = 0; jp < npan; jp++)
        for (int64_t k = 0; k < K; k++)
            for (int64_t j = 0; j < NR; j++) {
                const int64_t f = jp * NR + j;
                wpk[(jp * K + k) * NR + j] = f < F ? kernel[k * F + f] : 0;
            }
    plan->wpk = wpk;
    plan->pn = NR;
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

/* argmax[e] + shift, or -1 where y[e] is not > 0: the index then matches no
 * cell, so the backward passes no gradient there, which is the ReLU mask. */
static void CV_FN(mark_dead_windows)(int64_t n, const CV_T *restrict y, int64_t shift,
                                     int32_t *restrict am)
{
    for (int64_t e = 0; e < n; e++)
        am[e] = y[e] > 0 ? (int32_t)(am[e] + shift) : -1;
}

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
        if (am != NULL) {
            /* the sum is a cell of the output plane, which the boundary keeps
             * below 2**31; the arithmetic is 64-bit all the same */
            const int64_t shift = (po + i) * psh * s->ow;
            if (mark_dead) {
                CV_FN(mark_dead_windows)(prow, yrow + i * prow, shift, am);
            } else {
                for (int64_t e = 0; e < prow; e++)
                    am[e] = (int32_t)(am[e] + shift);
            }
        }
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

/* The whole unpooled gradient of a pooled-gradient source into `full`
 * (n, p->h, p->w, p->c), its ReLU mask applied, for the geometries the
 * direct paths do not take. Returns 0, or -1 when scratch memory could not
 * be allocated. */
static int CV_FN(unpool_whole)(const CV_FN(dy_source) *src, CV_T *full, int nthreads)
{
    const cf_pool2d_shape *p = src->p;
    const size_t pel = (size_t)(p->n * p->oh * p->ow * p->c);
    const CV_T *d = src->dyp;
    CV_T *masked = NULL;
    if (src->ymask != NULL) {
        masked = (CV_T *)malloc((pel ? pel : 1) * sizeof(CV_T));
        if (masked == NULL)
            return -1;
        CV_FN(relu_masked_row)((int64_t)pel, d, src->ymask, masked);
        d = masked;
    }
    (void)CF_POOL_BWD(p, src->mode, d, NULL, src->argmax, full, 0, nthreads);
    free(masked);
    return 0;
}

/* A pooled-gradient source on a geometry the direct path does not take:
 * unpool it whole into a temporary (ReLU mask included: it was once left
 * out here, and dx came out wrong), then the plain forward. */
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
            CV_FN(mark_dead_windows)(p->n * p->oh * p->ow * p->c, y, 0, argmax);
    }
    free(z);
    return rc;
}

/* The forward convolution, of x or (src != NULL: no bias, no relu) of an
 * unpooled gradient, into y or (po != NULL) pooled into y. src and po are
 * never both given: per thread, workspace slot 6 holds the unpooled image
 * (src) or the pooling band (po), slot 7 unpool_rows' scratch. */
static int CV_FN(forward_src)(const cf_conv2d_shape *s, const CV_T *x,
                              const CV_FN(dy_source) *src, const CV_FN(pool_out) *po,
                              const CV_T *kernel, const CV_T *bias, int relu, CV_T *y,
                              int nthreads)
{
    const CV_UK uk = CV_SELECT(cf_simd_level());
    const int64_t C = s->c, F = s->f;
    if (s->n == 0)
        return 0;
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
    CV_FN(row_plan) plan;
    if (CV_FN(forward_plan)(s, &uk, wp, kernel, &plan) != 0)
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
    /* slot 6: the unpooled image (src) or the pooling band (po) */
    const size_t s6_bytes = src ? (size_t)(s->h * s->w * C) * sizeof(CV_T)
                            : po ? (size_t)(grp * po->p->kh * s->ow * F) * sizeof(CV_T)
                                 : 0;
    const size_t am_bytes = src ? CV_FN(unpool_scratch_bytes)(src->p) : 0;

    /* Geometries that pad nothing: the tiles read x in place. Measured
     * against the copy (conv c, d, b shapes with "valid" padding, 2
     * threads): 1.03-1.09x. The 6 x 64 tile reads no pixel past a tile; the
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
            CV_T *xp = (CV_T *)cf_workspace_or_flag(0, (size_t)(img + slack) * sizeof(CV_T), &failed);
            CV_T *s6 = s6_bytes ? (CV_T *)cf_workspace_or_flag(6, s6_bytes, &failed) : NULL;
            void *uscratch = src ? cf_workspace_or_flag(7, am_bytes, &failed) : NULL;
            if (xp != NULL) {
                memset(xp + img, 0, (size_t)slack * sizeof(CV_T));
            }
            int zeroed = 0; /* this thread's xp holds the zero borders */
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
            for (int64_t n = 0; n < s->n; n++) {
                if (xp == NULL || (s6_bytes && s6 == NULL) || (src != NULL && uscratch == NULL))
                    continue;
                const CV_T *xn = xp;
                if (in_place && (plan.wide || (s->n - 1 - n) * xs >= slack)) {
                    xn = x + n * xs;
                } else {
                    CV_FN(fill_padded)(s, x, src, n, hp, wp, xp, zeroed, s6, uscratch);
                    zeroed = 1;
                }
                for (int64_t r = 0; r < orows; r += grp)
                    CV_FN(emit_rows)(s, &plan, po, xn, wp, n, r,
                                     orows - r < grp ? orows - r : grp, bias, relu, y, s6);
            }
            CF_REGION_FP_LEAVE();
        }
        return failed ? -1 : 0;
    }

    /* Few images: pad them all into one shared buffer, then split the rows. */
    CV_T *xp = (CV_T *)cf_workspace(1, (size_t)(s->n * img + slack) * sizeof(CV_T));
    if (xp == NULL)
        return -1;
    memset(xp + s->n * img, 0, (size_t)slack * sizeof(CV_T));
    const int64_t rows = s->n * orows;
    int nt = cf_team_size(nthreads, rows);
    (void)nt;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        CF_REGION_FP_ENTER();
        CV_T *s6 = s6_bytes ? (CV_T *)cf_workspace_or_flag(6, s6_bytes, &failed) : NULL;
        void *uscratch = src ? cf_workspace_or_flag(7, am_bytes, &failed) : NULL;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t n = 0; n < s->n; n++)
            if (src == NULL || (s6 != NULL && uscratch != NULL))
                CV_FN(fill_padded)(s, x, src, n, hp, wp, xp + n * img, 0, s6, uscratch);
#ifdef _OPENMP
#pragma omp for schedule(guided)
#endif
        for (int64_t r = 0; r < rows; r++) {
            if (failed)
                continue;
            const int64_t n = r / orows;
            CV_FN(emit_rows)(s, &plan, po, xp + n * img, wp, n, r % orows, 1, bias, relu, y,
                             s6);
        }
        CF_REGION_FP_LEAVE();
    }
    return failed ? -1 : 0;
}

/* Stride 1: the input gradient is a stride-1 convolution of dy with the
 * spatially flipped kernel whose channel axes are swapped, padded by
 * (k-1)*d - p (negative values crop). It runs on the forward path. */
static int CV_FN(backward_input_stride1)(const cf_conv2d_shape *s, const CV_T *dy,
                                         const CV_FN(dy_source) *src, const CV_T *kernel,
                                         CV_T *dx, int nthreads)
{
    const int64_t KH = s->kh, KW = s->kw, C = s->c, F = s->f;
    CV_T *wf = (CV_T *)cf_workspace(3, (size_t)(KH * KW * C * F) * sizeof(CV_T));
    if (wf == NULL)
        return -1;
    /* wf[kh', kw', f, c] = kernel[KH-1-kh', KW-1-kw', c, f] */
    for (int64_t a = 0; a < KH; a++)
        for (int64_t b = 0; b < KW; b++) {
            const CV_T *src = kernel + ((KH - 1 - a) * KW + (KW - 1 - b)) * C * F;
            CV_T *dst = wf + (a * KW + b) * F * C;
            for (int64_t c = 0; c < C; c++)
                for (int64_t f = 0; f < F; f++)
                    dst[f * C + c] = src[c * F + f];
        }
    cf_conv2d_shape t;
    t.n = s->n;
    t.h = s->oh;
    t.w = s->ow;
    t.c = F;
    t.oh = s->h;
    t.ow = s->w;
    t.f = C;
    t.kh = KH;
    t.kw = KW;
    t.sh = 1;
    t.sw = 1;
    t.dh = s->dh;
    t.dw = s->dw;
    t.pt = (KH - 1) * s->dh - s->pt;
    t.pl = (KW - 1) * s->dw - s->pl;
    return CV_FN(forward_src)(&t, dy, src, NULL, wf, NULL, 0, dx, nthreads);
}

/* Any stride: per image, dcol = dy . kernel^T by the micro-kernel, then
 * col2im scatter-add. Each image belongs to one thread, so the additions
 * happen in a fixed order. */
static int CV_FN(backward_input_col2im)(const cf_conv2d_shape *s, const CV_T *dy,
                                        const CV_T *kernel, CV_T *dx, int nthreads)
{
    const CV_UK uk = CV_SELECT(cf_simd_level());
    const int64_t MR = uk.mr, NR = uk.nr;
    const int64_t C = s->c, F = s->f, K = s->kh * s->kw * s->c;
    const int64_t ohw = s->oh * s->ow, hwc = s->h * s->w * C;
    const int64_t MT = MR * CF_CONV_TILE_PANELS;
    CV_T *wt = (CV_T *)cf_workspace(1, (size_t)(K * F) * sizeof(CV_T));
    if (wt == NULL)
        return -1;
    for (int64_t k = 0; k < K; k++)
        for (int64_t f = 0; f < F; f++)
            wt[f * K + k] = kernel[k * F + f];
    int nt = cf_team_size(nthreads, s->n);
    int failed = 0;
    (void)nt;

#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        CF_REGION_FP_ENTER();
        CV_T *panel = (CV_T *)cf_workspace_or_flag(0, (size_t)(MT * F) * sizeof(CV_T), &failed);
        CV_T *dcol = (CV_T *)cf_workspace_or_flag(2, (size_t)(MT * K) * sizeof(CV_T), &failed);
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t n = 0; n < s->n; n++) {
            if (panel == NULL || dcol == NULL)
                continue;
            CV_T *dxn = dx + n * hwc;
            memset(dxn, 0, (size_t)hwc * sizeof(CV_T));
            const CV_T *dyn = dy + n * ohw * F;
            for (int64_t p0 = 0; p0 < ohw; p0 += MT) {
                const int64_t mt = ohw - p0 < MT ? ohw - p0 : MT;
                for (int64_t ip = 0; ip < mt; ip += MR) {
                    const int64_t np = mt - ip < MR ? mt - ip : MR;
                    CV_T *a = panel + ip * F;
                    for (int64_t f = 0; f < F; f++)
                        for (int64_t i = 0; i < MR; i++)
                            a[f * MR + i] = i < np ? dyn[(p0 + ip + i) * F + f] : 0;
                    for (int64_t j0 = 0; j0 < K; j0 += NR) {
                        const int64_t nr = K - j0 < NR ? K - j0 : NR;
                        uk.fn(F, a, MR, wt + j0, K, dcol + ip * K + j0, K, (int)np,
                              (int)nr, 0, NULL, 0);
                    }
                }
                for (int64_t i = 0; i < mt; i++) {
                    const int64_t p = p0 + i;
                    const int64_t oh = p / s->ow, ow = p % s->ow;
                    const CV_T *src = dcol + i * K;
                    for (int64_t khi = 0; khi < s->kh; khi++) {
                        const int64_t ih = oh * s->sh - s->pt + khi * s->dh;
                        for (int64_t kwi = 0; kwi < s->kw; kwi++, src += C) {
                            const int64_t iw = ow * s->sw - s->pl + kwi * s->dw;
                            if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w)
                                continue;
                            CV_T *d = dxn + (ih * s->w + iw) * C;
                            for (int64_t c = 0; c < C; c++)
                                d[c] += src[c];
                        }
                    }
                }
            }
        }
        CF_REGION_FP_LEAVE();
    }
    return failed ? -1 : 0;
}

/* Strided input gradient by phases. dx pixel (ih, iw) = (a*sh + ph, b*sw + pw)
 * receives dy only through the taps with (ph + pt - kh*dh) divisible by sh
 * (and likewise for the columns), at dy offset q = (ph + pt - kh*dh) / sh:
 *
 *   dx[a*sh+ph][b*sw+pw][c] = sum_{taps of the phase} sum_f
 *                             dy[a + q_kh][b + q_kw][f] * W[kh][kw][c][f]
 *
 * i.e. for each of the sh*sw phases a stride-1 direct convolution of a
 * zero-padded dy with a sub-kernel, written with a pixel stride of sw*C.
 * Every dx pixel is written once by one thread: no scatter, no dcol buffer,
 * no fixed-order concern. Images are split over the threads. */
static int CV_FN(backward_input_phases)(const cf_conv2d_shape *s, const CV_T *dy,
                                        const CV_T *kernel, CV_T *dx, int nthreads)
{
    const CV_UK uk = CV_SELECT(cf_simd_level());
    const int64_t MR = uk.mr, NR = uk.nr, C = s->c, F = s->f;
    const int64_t nph = s->sh * s->sw, T = s->kh * s->kw;
    const int64_t npan = (C + NR - 1) / NR;
    /* dy offsets of every tap of every phase, to size the zero padding */
    int64_t qh_min = 0, qh_max = 0, qw_min = 0, qw_max = 0;
    for (int64_t ph = 0; ph < s->sh; ph++)
        for (int64_t kh = 0; kh < s->kh; kh++) {
            const int64_t num = ph + s->pt - kh * s->dh;
            if (((num % s->sh) + s->sh) % s->sh != 0)
                continue;
            const int64_t q = (num - ((num % s->sh) + s->sh) % s->sh) / s->sh;
            const int64_t rows = (s->h - ph + s->sh - 1) / s->sh;
            if (q < qh_min) qh_min = q;
            if (q + rows - 1 > qh_max) qh_max = q + rows - 1;
        }
    for (int64_t pw = 0; pw < s->sw; pw++)
        for (int64_t kw = 0; kw < s->kw; kw++) {
            const int64_t num = pw + s->pl - kw * s->dw;
            if (((num % s->sw) + s->sw) % s->sw != 0)
                continue;
            const int64_t q = (num - ((num % s->sw) + s->sw) % s->sw) / s->sw;
            const int64_t cols = (s->w - pw + s->sw - 1) / s->sw;
            if (q < qw_min) qw_min = q;
            if (q + cols - 1 > qw_max) qw_max = q + cols - 1;
        }
    const int64_t ptop = -qh_min, pleft = -qw_min;
    const int64_t hp = (qh_max > s->oh - 1 ? qh_max : s->oh - 1) + 1 + ptop;
    const int64_t wp = (qw_max > s->ow - 1 ? qw_max : s->ow - 1) + 1 + pleft;
    const int64_t img = hp * wp * F, slack = (MR + 1) * F;
    if (img > 4 * s->oh * s->ow * F + CF_CONV_PAD_ALLOWANCE)
        return CV_FN(backward_input_col2im)(s, dy, kernel, dx, nthreads);

    /* per phase: its taps' dy offsets and its sub-kernel packed as
     * [C/NR][taps*F][NR] (zero past C); phase ph*sw+pw owns slots
     * [phase*T, phase*T + ntap[phase]) */
    int64_t *meta = (int64_t *)cf_workspace(2, (size_t)(nph * (T + 1)) * sizeof(int64_t));
    CV_T *wpk = (CV_T *)cf_workspace(5, (size_t)(npan * T * F * NR) * sizeof(CV_T));
    if (meta == NULL || wpk == NULL)
        return -1;
    int64_t *ntap = meta, *toff = meta + nph;
    int64_t woff = 0;
    int64_t *wbase = (int64_t *)cf_workspace(3, (size_t)nph * sizeof(int64_t));
    if (wbase == NULL)
        return -1;
    for (int64_t ph = 0; ph < s->sh; ph++)
        for (int64_t pw = 0; pw < s->sw; pw++) {
            const int64_t phase = ph * s->sw + pw;
            int64_t nt = 0;
            wbase[phase] = woff;
            for (int64_t kh = 0; kh < s->kh; kh++) {
                const int64_t nh = ph + s->pt - kh * s->dh;
                if (((nh % s->sh) + s->sh) % s->sh != 0)
                    continue;
                const int64_t qh = (nh - ((nh % s->sh) + s->sh) % s->sh) / s->sh;
                for (int64_t kw = 0; kw < s->kw; kw++) {
                    const int64_t nw = pw + s->pl - kw * s->dw;
                    if (((nw % s->sw) + s->sw) % s->sw != 0)
                        continue;
                    const int64_t qw = (nw - ((nw % s->sw) + s->sw) % s->sw) / s->sw;
                    toff[phase * T + nt] = ((qh + ptop) * wp + (qw + pleft)) * F;
                    /* this tap's weights, W[kh][kw][c][f], as [f][c] rows */
                    for (int64_t jp = 0; jp < npan; jp++)
                        for (int64_t f = 0; f < F; f++)
                            for (int64_t j = 0; j < NR; j++) {
                                const int64_t c = jp * NR + j;
                                wpk[jp * T * F * NR + (woff + nt * F + f) * NR + j] =
                                    c < C ? kernel[((kh * s->kw + kw) * C + c) * F + f] : 0;
                            }
                    nt++;
                }
            }
            ntap[phase] = nt;
            woff += nt * F;
        }

    int nt_ = cf_team_size(nthreads, s->n);
    int failed = 0;
    (void)nt_;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt_)
#endif
    {
        CF_REGION_FP_ENTER();
        CV_T *yp = (CV_T *)cf_workspace_or_flag(0, (size_t)(img + slack) * sizeof(CV_T), &failed);
        if (yp != NULL)
            memset(yp + img, 0, (size_t)slack * sizeof(CV_T));
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t n = 0; n < s->n; n++) {
            if (yp == NULL)
                continue;
            /* dy of this image, zero-padded by (ptop, pleft) */
            const CV_T *dyn = dy + n * s->oh * s->ow * F;
            memset(yp, 0, (size_t)img * sizeof(CV_T));
            for (int64_t r = 0; r < s->oh; r++)
                memcpy(yp + ((r + ptop) * wp + pleft) * F, dyn + r * s->ow * F,
                       (size_t)(s->ow * F) * sizeof(CV_T));
            CV_T *dxn = dx + n * s->h * s->w * C;
            for (int64_t ph = 0; ph < s->sh; ph++)
                for (int64_t pw = 0; pw < s->sw; pw++) {
                    const int64_t phase = ph * s->sw + pw;
                    const int64_t rows = (s->h - ph + s->sh - 1) / s->sh;
                    const int64_t cols = (s->w - pw + s->sw - 1) / s->sw;
                    for (int64_t a = 0; a < rows; a++) {
                        CV_T *drow = dxn + ((a * s->sh + ph) * s->w + pw) * C;
                        if (ntap[phase] == 0) {
                            for (int64_t b = 0; b < cols; b++)
                                memset(drow + b * s->sw * C, 0, (size_t)C * sizeof(CV_T));
                            continue;
                        }
                        for (int64_t b0 = 0; b0 < cols; b0 += MR) {
                            const int64_t mr = cols - b0 < MR ? cols - b0 : MR;
                            const CV_T *abase = yp + (a * wp + b0) * F;
                            for (int64_t jp = 0; jp < npan; jp++) {
                                const int64_t j0 = jp * NR;
                                const int64_t nr = C - j0 < NR ? C - j0 : NR;
                                uk.direct(ntap[phase], toff + phase * T, F, abase, F,
                                          wpk + jp * T * F * NR + wbase[phase] * NR, NR,
                                          drow + b0 * s->sw * C + j0, s->sw * C, (int)mr,
                                          (int)nr, NULL, 0);
                            }
                        }
                    }
                }
        }
        CF_REGION_FP_LEAVE();
    }
    return failed ? -1 : 0;
}

int CV_FN(cf_conv2d_backward_input)(const cf_conv2d_shape *s, const CV_T *dy,
                                    const CV_T *kernel, CV_T *dx, int nthreads)
{
    if (s->n == 0)
        return 0;
    if (s->sh == 1 && s->sw == 1)
        return CV_FN(backward_input_stride1)(s, dy, NULL, kernel, dx, nthreads);
    /* the phase tables grow with sh*sw: very large strides use col2im */
    if (s->sh * s->sw <= CF_CONV_MAX_PHASES)
        return CV_FN(backward_input_phases)(s, dy, kernel, dx, nthreads);
    return CV_FN(backward_input_col2im)(s, dy, kernel, dx, nthreads);
}

/* Inside a parallel region (an orphaned worksharing loop): sum the nchunks
 * partials of (K + 1) x F elements, chunk 0 first, into dkernel (the first
 * K*F) and dbias (the last F, when wanted). The order depends on the chunking
 * only, never on the thread count. trans_k > 0: the K*F part of each partial
 * is F x K (k = trans_k fastest), transposed into dkernel here. */
static void CV_FN(reduce_partials)(const CV_T *part, int64_t nchunks, int64_t kf,
                                   int64_t f, int64_t trans_k, CV_T *dkernel, CV_T *dbias)
{
    /* Blocks of elements, each summed over the chunks in chunk order (the
     * same order, hence the same bits, for any thread count): one contiguous
     * pass per chunk instead of a strided gather per element. */
    enum { RBLK = 512 };
    const int64_t total = kf + f, nblk = (total + RBLK - 1) / RBLK;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
    for (int64_t blk = 0; blk < nblk; blk++) {
        const int64_t e0 = blk * RBLK;
        const int64_t ne = total - e0 < RBLK ? total - e0 : RBLK;
        CV_T acc[RBLK];
        for (int64_t e = 0; e < ne; e++)
            acc[e] = part[e0 + e];
        for (int64_t ch = 1; ch < nchunks; ch++) {
            const CV_T *pc = part + ch * total + e0;
            for (int64_t e = 0; e < ne; e++)
                acc[e] += pc[e];
        }
        for (int64_t e = 0; e < ne; e++) {
            const int64_t g = e0 + e;
            if (g < kf)
                dkernel[trans_k > 0 ? (g % trans_k) * f + g / trans_k : g] = acc[e];
            else if (dbias)
                dbias[g - kf] = acc[e];
        }
    }
}

/* Kernel gradient without im2col: per image,
 *   dW[t][c][f] += sum_p xpad[p + off_t][c] * dy[p][f]
 * The micro-kernel's tile rows are (tap, channel) pairs, read at their
 * offsets straight from the zero-padded image (so a tile packs across taps:
 * ~98% of its rows are used for 3x3 layers of 32 or 64 channels), the dy
 * rows stream across; a block of output rows per call keeps the accumulators
 * in registers and the touched rows in L2. Images are reduced in fixed
 * chunks, summed in a fixed order. (Measured against dy-as-rows with a
 * transpose at the end: as fast or faster on every shape tried.) */
static int CV_FN(backward_kernel_direct)(const cf_conv2d_shape *s, const CV_UK *uk,
                                         const CV_T *x, const CV_FN(dy_source) *src,
                                         CV_T *dkernel, CV_T *dbias, int nthreads)
{
    const int64_t C = s->c, F = s->f;
    const int64_t T = s->kh * s->kw, K = T * C, FK = F * K;
    /* Tiles, in order of preference:
     * - the kernel-row tile (vectors along one kernel row's taps x channels,
     *   contiguous when the column dilation is 1; partials F x K) for at
     *   most 32 channels whose kernel row has more than 64 values (conv b:
     *   +3-10% over the 16 x 16 tile, same bits; with 64 channels it lost,
     *   c 0.98x, d 0.92x);
     * - the 16 x 16 tile (one tap's channels x 16 filters) for whole blocks
     *   of 16 channels when there are at most 32 channels or fewer than 48
     *   filters; its rows are consecutive channels of one tap
     *   (C % 16 == 0): its off[i] == off[0] + i, as it requires;
     * - the 6 x 64 tile when at least 48 filters fill it;
     * - the 10 x 32 one when it holds all K rows (a 3x3 kernel on 1
     *   channel); else the 14 x 32 one. */
    const int krow = uk->krow != NULL && s->dw == 1 && C <= 32 &&
                     s->kw * C > 64;
    const int64_t rowlen = s->kw * C, nseg = (rowlen + CF_UKERNEL_KROW_LEN - 1) / CF_UKERNEL_KROW_LEN;
    const int t16 = !krow && uk->taps16 != NULL && C % CF_UKERNEL_T16 == 0 && (C <= 32 || F < 48);
    const int wide = !krow && !t16 && uk->taps_wide != NULL && F >= 48;
    const int shrt = !krow && !t16 && !wide && uk->taps_short != NULL && K <= CF_UKERNEL_SHORT_MR;
    const int64_t MR = t16    ? CF_UKERNEL_T16
                       : wide ? CF_UKERNEL_WIDE_MR
                       : shrt ? CF_UKERNEL_SHORT_MR
                              : uk->mr;
    const int64_t NR = t16 ? CF_UKERNEL_T16 : wide ? 2 * uk->nr : uk->nr;
    const CV_CAT(CV_CAT(cf_ukernel_taps, CV_SFX), fn) taps =
        t16 ? uk->taps16 : wide ? uk->taps_wide : shrt ? uk->taps_short : uk->taps;
    /* The bias gradient rides in a spare row of the last block of rows of
     * the 14- or 10-row tile (rows at any offsets), reading a run of ones
     * laid after the padded image: its tile output row is the partial's
     * bias entry. A separate column sum of dy, a chain of dependent adds
     * per column, cost 13-15% of conv e's kernel gradient and 19-23% of
     * a's. Each block's sum runs in pixel order and is added to the
     * chunk's partial, as the kernel entries are: fixed for a shape,
     * whatever the thread count. */
    const int bias_row = !krow && !t16 && !wide && K % MR != 0;
    const int64_t hp = (s->oh - 1) * s->sh + (s->kh - 1) * s->dh + 1;
    const int64_t wp = (s->ow - 1) * s->sw + (s->kw - 1) * s->dw + 1;
    const int64_t img = hp * wp * C, ohw = s->oh * s->ow;
    const int64_t xp_elems = bias_row ? 2 * img : img;
    /* "valid" geometries read x in place, as the forward does (the tiles
     * read only valid tap offsets); not with the ones run, which must follow
     * the image */
    const int in_place = !bias_row && CV_FN(pads_nothing)(s, hp, wp);
    const int64_t xs = s->h * s->w * C; /* one image of x */
    /* output rows per block: about CF_CONV_DW_BLOCK_PIXELS pixels, whole
     * pooling windows when dy is unpooled */
    int64_t RB = CF_CONV_DW_BLOCK_PIXELS / s->ow;
    if (src->dy == NULL)
        RB -= RB % src->p->sh;
    if (RB < 1)
        RB = src->dy == NULL ? src->p->sh : 1;
    const int64_t calls_per_image =
        ((s->oh + RB - 1) / RB) *
        (krow ? s->kh * nseg * ((F + CF_UKERNEL_KROW_NF - 1) / CF_UKERNEL_KROW_NF)
              : ((K + MR - 1) / MR) * ((F + NR - 1) / NR));
    int64_t chunk;
    const int64_t per = (CF_CONV_DW_MIN_PIXELS + ohw - 1) / ohw;
    const int64_t nchunks = cf_dw_chunks(s->n, (s->n + per - 1) / per, FK + F, &chunk);
    CV_T *part = (CV_T *)cf_workspace(1, (size_t)(nchunks * (FK + F)) * sizeof(CV_T));
    if (part == NULL)
        return -1;
    int nt = cf_team_size(nthreads, nchunks);
    int failed = 0;
    (void)nt;

#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        CF_REGION_FP_ENTER();
        /* the padded image; the taps kernel reads dy only through masked
         * loads and the image only at valid tap offsets: no slack needed */
        CV_T *xp = (CV_T *)cf_workspace_or_flag(0, (size_t)xp_elems * sizeof(CV_T), &failed);
        int zeroed = 0; /* xp holds the zero borders */
        CV_T *blk = NULL;
        void *uscratch = NULL;
        if (src->dy == NULL) {
            blk = (CV_T *)cf_workspace_or_flag(6, (size_t)(RB * s->ow * F) * sizeof(CV_T),
                                               &failed);
            uscratch = cf_workspace_or_flag(7, CV_FN(unpool_scratch_bytes)(src->p), &failed);
        }
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t ch = 0; ch < nchunks; ch++) {
            if (xp == NULL || (src->dy == NULL && (blk == NULL || uscratch == NULL)))
                continue;
            CV_T *pk = part + ch * (FK + F);
            CV_T *pb = pk + FK;
            const int64_t n0 = ch * chunk;
            const int64_t n1 = n0 + chunk < s->n ? n0 + chunk : s->n;
            for (int64_t f = 0; f < F; f++)
                pb[f] = 0;
            for (int64_t n = n0; n < n1; n++) {
                if (bias_row && !zeroed)
                    for (int64_t e = img; e < xp_elems; e++)
                        xp[e] = 1;
                const CV_T *xn = xp;
                if (in_place) {
                    xn = x + n * xs;
                } else {
                    CV_FN(pad_image)(s, x + n * xs, hp, wp, xp, zeroed);
                    zeroed = 1;
                }
                /* The next image's inputs come in while this one computes:
                 * where an image is small and read by many tile calls
                 * (measured on b: +2-6%). Larger images would push this
                 * one's rows out of L2 (c, d: 0.95-1.0x); with few calls
                 * per image the bursts stall the tile (a, e: 0.8-0.9x) and
                 * the hardware streamers already cover one pass. */
                cf_prefetcher pf;
                cf_pf_reset(&pf);
                if (n + 1 < n1 && calls_per_image >= CF_CONV_DW_PREFETCH_MIN_CALLS) {
                    cf_pf_add(&pf, x + (n + 1) * xs, xs * (int64_t)sizeof(CV_T));
                    if (src->dy != NULL) {
                        cf_pf_add(&pf, src->dy + (n + 1) * ohw * F, ohw * F * (int64_t)sizeof(CV_T));
                    } else {
                        const int64_t ps = src->p->oh * src->p->ow * src->p->c;
                        cf_pf_add(&pf, src->dyp + (n + 1) * ps, ps * (int64_t)sizeof(CV_T));
                        cf_pf_add(&pf, src->argmax + (n + 1) * ps, ps * (int64_t)sizeof(int32_t));
                        if (src->ymask != NULL)
                            cf_pf_add(&pf, src->ymask + (n + 1) * ps, ps * (int64_t)sizeof(CV_T));
                    }
                    if (cf_pf_lines(&pf) * CF_PF_LINE <= CF_CONV_DW_PREFETCH_MAX_BYTES)
                        cf_pf_plan(&pf, calls_per_image);
                    else
                        cf_pf_reset(&pf);
                }
                /* Blocks of output rows keep the dy rows and padded input
                 * rows they touch in L2 across all taps and panels. */
                for (int64_t r0 = 0; r0 < s->oh; r0 += RB) {
                    const int64_t nrow = s->oh - r0 < RB ? s->oh - r0 : RB;
                    const int acc = n > n0 || r0 > 0;
                    const CV_T *dyb;
                    if (src->dy != NULL) {
                        dyb = src->dy + (n * ohw + r0 * s->ow) * F;
                    } else {
                        CV_FN(unpool_rows)(src, n, r0, nrow, blk, uscratch);
                        dyb = blk;
                    }
                    const CV_T *xb = xn + r0 * s->sh * wp * C;
                    for (int64_t ky = 0; krow && ky < s->kh; ky++) {
                        const CV_T *xr = xb + ky * s->dh * wp * C;
                        for (int64_t e0 = 0; e0 < rowlen; e0 += CF_UKERNEL_KROW_LEN) {
                            const int64_t len = rowlen - e0 < CF_UKERNEL_KROW_LEN
                                                    ? rowlen - e0 : CF_UKERNEL_KROW_LEN;
                            for (int64_t f0 = 0; f0 < F; f0 += CF_UKERNEL_KROW_NF) {
                                const int64_t nf = F - f0 < CF_UKERNEL_KROW_NF
                                                       ? F - f0 : CF_UKERNEL_KROW_NF;
                                uk->krow(nrow, s->ow, xr + e0, s->sw * C, s->sh * wp * C,
                                         len, dyb + f0, F, pk + f0 * K + ky * rowlen + e0,
                                         K, (int)nf, acc);
                                cf_pf_step(&pf);
                            }
                        }
                    }
                    for (int64_t i0 = 0; !krow && i0 < K; i0 += MR) {
                        const int64_t mr = K - i0 < MR ? K - i0 : MR;
                        const int64_t ones = bias_row && mr < MR; /* 1: row mr is the bias */
                        int64_t off[CF_UKERNEL_MAX_MR];
                        for (int64_t i = 0; i < MR; i++) {
                            /* spare rows read any valid cell */
                            const int64_t r = i < mr ? i0 + i : 0;
                            const int64_t t = r / C, c = r % C;
                            off[i] = ((t / s->kw) * s->dh * wp + (t % s->kw) * s->dw) * C + c;
                        }
                        /* the ones run, at the block's pixel positions;
                         * its output row, K, is pb */
                        if (ones)
                            off[mr] = img - r0 * s->sh * wp * C;
                        for (int64_t j0 = 0; j0 < F; j0 += NR) {
                            const int64_t nr = F - j0 < NR ? F - j0 : NR;
                            taps(nrow, s->ow, off, xb, s->sw * C, s->sh * wp * C,
                                     dyb + j0, F, pk + i0 * F + j0, F, (int)(mr + ones),
                                     (int)nr, acc);
                            cf_pf_step(&pf);
                        }
                    }
                    /* pixel order, as one pass over the image would add them */
                    if (!bias_row)
                        uk->colsum(nrow * s->ow, F, dyb, F, pb);
                }
            }
        }
        if (!failed)
            CV_FN(reduce_partials)(part, nchunks, FK, F, krow ? K : 0, dkernel, dbias);
        CF_REGION_FP_LEAVE();
    }
    return failed ? -1 : 0;
}

int CV_FN(cf_conv2d_backward_kernel)(const cf_conv2d_shape *s, const CV_T *x,
                                     const CV_T *dy, CV_T *dkernel, CV_T *dbias,
                                     int nthreads)
{
    const CV_UK uk = CV_SELECT(cf_simd_level());
    const int64_t MR = uk.mr, NR = uk.nr;
    const int64_t K = s->kh * s->kw * s->c, F = s->f;
    const int64_t P = s->n * s->oh * s->ow;
    const int64_t KF = K * F;
    if (P == 0) {
        memset(dkernel, 0, (size_t)KF * sizeof(CV_T));
        if (dbias)
            memset(dbias, 0, (size_t)F * sizeof(CV_T));
        return 0;
    }
    {
        const int64_t hp = (s->oh - 1) * s->sh + (s->kh - 1) * s->dh + 1;
        const int64_t wp = (s->ow - 1) * s->sw + (s->kw - 1) * s->dw + 1;
        /* direct path: enough images to make chunks of and a reasonably
         * sized padded copy. The
         * choice must not depend on the thread count: the two paths round
         * differently, and results are bit-identical for any thread count. */
        if (s->n >= CF_CONV_DW_DIRECT_MIN_N &&
            hp * wp * s->c <= 4 * s->h * s->w * s->c + CF_CONV_PAD_ALLOWANCE)
        {
            const CV_FN(dy_source) src = {dy, NULL, 0, NULL, NULL, NULL};
            return CV_FN(backward_kernel_direct)(s, &uk, x, &src, dkernel, dbias, nthreads);
        }
    }
    /* The chunking depends on the problem only, never on the thread count:
     * that is what makes the sum bit-identical for any number of threads. */
    int64_t chunk;
    const int64_t nchunks = cf_dw_chunks(P, (P + CF_CONV_DW_CHUNK - 1) / CF_CONV_DW_CHUNK,
                                         KF + F, &chunk);
    /* Pixels per im2col sub-tile: about 512 KiB of patches, in L2. */
    const int64_t K1 = K + 1; /* im2col rows carry a ones column for dbias */
    int64_t SP = (int64_t)(131072 / K1);
    SP = SP < 32 ? 32 : SP > 512 ? 512 : SP;

    CV_T *part = (CV_T *)cf_workspace(1, (size_t)(nchunks * (KF + F)) * sizeof(CV_T));
    if (part == NULL)
        return -1;
    int nt = cf_team_size(nthreads, nchunks);
    int failed = 0;
    (void)nt;

#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        CF_REGION_FP_ENTER();
        CV_T *col = (CV_T *)cf_workspace_or_flag(0, (size_t)(SP * K1 + MR) * sizeof(CV_T), &failed);
        if (col != NULL) {
            /* the micro-kernel reads up to MR-1 values past the last row */
            memset(col + SP * K1, 0, (size_t)MR * sizeof(CV_T));
        }
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t ch = 0; ch < nchunks; ch++) {
            if (col == NULL)
                continue;
            CV_T *pk = part + ch * (KF + F); /* (K + 1) x F: dkernel rows, then dbias */
            const int64_t c0 = ch * chunk;
            const int64_t c1 = c0 + chunk < P ? c0 + chunk : P;
            for (int64_t p0 = c0; p0 < c1; p0 += SP) {
                const int64_t sp = c1 - p0 < SP ? c1 - p0 : SP;
                CV_FN(im2col_rows)(s, x, p0, sp, col);
                if (sp < SP)
                    memset(col + sp * K1, 0, (size_t)MR * sizeof(CV_T));
                const CV_T *dyp = dy + p0 * F;
                for (int64_t i0 = 0; i0 < K1; i0 += MR) {
                    const int64_t mr = K1 - i0 < MR ? K1 - i0 : MR;
                    for (int64_t j0 = 0; j0 < F; j0 += NR) {
                        const int64_t nr = F - j0 < NR ? F - j0 : NR;
                        uk.fn(sp, col + i0, K1, dyp + j0, F, pk + i0 * F + j0, F,
                              (int)mr, (int)nr, p0 > c0, NULL, 0);
                    }
                }
            }
        }
        if (!failed)
            CV_FN(reduce_partials)(part, nchunks, KF, F, 0, dkernel, dbias);
        CF_REGION_FP_LEAVE();
    }
    return failed ? -1 : 0;
}

#undef CV_FN
#undef CV_CAT
#undef CV_CAT2
