/* The Winograd drivers for one element type (see winograd.h). Instantiated
 * by winograd.c with WG_T, WG_SFX, WG_UK, WG_SELECT and WG_TF (the
 * transforms' table type); WG_FN(name) is name_f32 / name_f64.
 *
 * Work is split into items of R whole tile rows of one image (R fixed by
 * the geometry: about CF_WINO_BLOCK_TILES tiles): an item's input tiles are
 * transformed into alpha^2 planes (tiles x C) in per-thread scratch, each
 * plane multiplied by the kernel's plane (C x F) on the GEMM micro-kernel,
 * and the products' tiles transformed back into the output. Every output
 * pixel belongs to one item, and its sum over channels runs in the
 * micro-kernel's fixed order: the same bits for any thread count. */

/* G (alpha x 3), the kernel's transform, for m = 2 and m = 4 (the points of
 * winograd_transform_impl.h). */
static const double WG_FN(wg_g2)[4][3] = {
    {1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
static const double WG_FN(wg_g4)[6][3] = {
    {1, 0, 0},
    {1.0 / 3, 1.0 / 3, 1.0 / 3},
    {-1.0 / 3, 1.0 / 3, -1.0 / 3},
    {-16.0 / 15, -8.0 / 15, -4.0 / 15},
    {1.0 / 15, -2.0 / 15, 4.0 / 15},
    {0, 0, 1}};

static double WG_FN(wg_gval)(int m, int a, int i)
{
    return m == 2 ? WG_FN(wg_g2)[a][i] : WG_FN(wg_g4)[a][i];
}

/* The split into items: tiles per row and column, tile rows per item (R),
 * items per image, and the rows of one plane of scratch (R * tw rounded up
 * to the micro-kernel's MR: it reads MR rows per tile). */
typedef struct {
    int m, al;
    int64_t th, tw, R, bands, items, ptiles, prow;
} WG_FN(wg_split);

/* rmul: R is a multiple of it (or all the tile rows), so that an item's
 * first output row is a multiple of a pooling stride. */
static void WG_FN(wg_make_split)(const cf_conv2d_shape *s, int64_t MR, int64_t rmul,
                                 WG_FN(wg_split) *sp)
{
    sp->m = (int)s->winograd;
    sp->al = sp->m + 2;
    sp->th = (s->oh + sp->m - 1) / sp->m;
    sp->tw = (s->ow + sp->m - 1) / sp->m;
    int64_t R = (CF_WINO_BLOCK_TILES + sp->tw - 1) / sp->tw;
    R = (R + rmul - 1) / rmul * rmul;
    sp->R = R < 1 ? 1 : R > sp->th ? sp->th : R;
    sp->bands = (sp->th + sp->R - 1) / sp->R;
    sp->items = s->n * sp->bands;
    sp->ptiles = sp->R * sp->tw;
    sp->prow = (sp->ptiles + MR - 1) / MR * MR;
}

/* The values of an item's padded band (pad_rows): its input rows, with the
 * padding's zero rows and columns, as one image. */
static int64_t WG_FN(wg_band_elems)(const cf_conv2d_shape *s, const WG_FN(wg_split) *sp)
{
    return (sp->R * sp->m + 2) * (sp->tw * sp->m + 2) * s->c;
}

/* Where the band starts in an item's input scratch: after its transformed
 * tiles and the micro-kernel's MR values of slack, at a multiple of 16 values. */
static int64_t WG_FN(wg_band_offset)(const cf_conv2d_shape *s, const WG_FN(wg_split) *sp,
                                     int64_t MR)
{
    return ((int64_t)sp->al * sp->al * sp->prow * s->c + MR + 15) / 16 * 16;
}

/* Whether copying the item's rows into a padded band costs fewer values than
 * its border tiles' patches (alpha^2 pixels each): on small images, where
 * half the tiles touch the padding. */
static int WG_FN(wg_band_pays)(const cf_conv2d_shape *s, const WG_FN(wg_split) *sp,
                               int64_t ty0, int64_t rows)
{
    const int m = sp->m, al = sp->al;
    int64_t in_rows = 0, in_cols = 0;
    for (int64_t ty = ty0; ty < ty0 + rows; ty++)
        in_rows += ty * m - s->pt >= 0 && ty * m - s->pt + al <= s->h;
    for (int64_t tx = 0; tx < sp->tw; tx++)
        in_cols += tx * m - s->pl >= 0 && tx * m - s->pl + al <= s->w;
    const int64_t border = rows * sp->tw - in_rows * in_cols;
    return (rows * m + 2) * (sp->tw * m + 2) <= border * al * al;
}

#define PR_T WG_T
#define PR_FN WG_FN
#include "pad_rows_impl.h"
#undef PR_T
#undef PR_FN

/* The input tiles of item `it` (image n, tile rows from ty0) into v:
 * alpha^2 planes of prow rows x C, one row per tile; rows past the item's
 * tiles zeroed (the micro-kernel reads them). Out-of-image pixels read as
 * zeros (the padding): tiles over the border read them from a patch of the
 * tile, or, where that costs less (wg_band_pays), every tile reads the
 * item's padded band (band: wg_band_elems values, or NULL for patches
 * always). The same values either way. Returns the item's tile count. */
static int64_t WG_FN(wg_input_item)(const cf_conv2d_shape *s, const WG_FN(wg_split) *sp,
                                    const WG_TF *tf, const WG_T *x, int64_t it, WG_T *v,
                                    WG_T *band, WG_T *patch, WG_T *tmp)
{
    const int m = sp->m, al = sp->al;
    const int64_t C = s->c;
    int64_t H = s->h, W = s->w;
    const int64_t n = it / sp->bands, ty0 = (it % sp->bands) * sp->R;
    const int64_t rows = sp->th - ty0 < sp->R ? sp->th - ty0 : sp->R;
    const int64_t ntile = rows * sp->tw, plane = sp->prow * C;
    /* the tiles read img, H x W pixels, tile (0, 0)'s first pixel at (y0, x0):
     * the image itself, or the band, where every tile is inside */
    const WG_T *img = x + n * H * W * C;
    int64_t y0 = ty0 * m - s->pt, x0 = -s->pl;
    if (band != NULL && WG_FN(wg_band_pays)(s, sp, ty0, rows)) {
        cf_conv2d_shape at_band = *s; /* band row 0 is the item's first input row */
        at_band.pt = s->pt - ty0 * m;
        H = rows * m + 2;
        W = sp->tw * m + 2;
        WG_FN(pad_rows)(&at_band, img, 0, H, W, band, 0);
        img = band;
        y0 = x0 = 0;
    }
    for (int64_t t = 0; t < ntile; t++) {
        const int64_t iy0 = y0 + (t / sp->tw) * m, ix0 = x0 + (t % sp->tw) * m;
        const int inside = iy0 >= 0 && ix0 >= 0 && iy0 + al <= H && ix0 + al <= W;
        for (int64_t c0 = 0; c0 < C; c0 += CF_WINO_LANES) {
            const int64_t nc = C - c0 < CF_WINO_LANES ? C - c0 : CF_WINO_LANES;
            WG_T *out = v + t * C + c0;
            if (inside) {
                tf->input(m, img + (iy0 * W + ix0) * C + c0, W * C, C, out, plane, nc, tmp);
                continue;
            }
            /* the tile's pixels inside the image: columns [j0, j1) of rows in range */
            const int j0 = ix0 < 0 ? (int)-ix0 : 0;
            const int j1 = ix0 + al > W ? (int)(W - ix0) : al;
            for (int i = 0; i < al; i++) {
                const int64_t iy = iy0 + i;
                WG_T *d = patch + i * al * nc;
                if (iy < 0 || iy >= H || j0 >= j1) {
                    memset(d, 0, (size_t)(al * nc) * sizeof(WG_T));
                    continue;
                }
                memset(d, 0, (size_t)(j0 * nc) * sizeof(WG_T));
                const WG_T *src = img + (iy * W + ix0 + j0) * C + c0;
                if (nc == C) /* whole pixels: one run */
                    memcpy(d + j0 * nc, src, (size_t)((j1 - j0) * nc) * sizeof(WG_T));
                else
                    for (int j = j0; j < j1; j++)
                        memcpy(d + j * nc, src + (j - j0) * C, (size_t)nc * sizeof(WG_T));
                memset(d + j1 * nc, 0, (size_t)((al - j1) * nc) * sizeof(WG_T));
            }
            tf->input(m, patch, al * nc, nc, out, plane, nc, tmp);
        }
    }
    for (int e = 0; e < al * al; e++)
        memset(v + e * plane + ntile * C, 0, (size_t)((sp->prow - ntile) * C) * sizeof(WG_T));
    return ntile;
}

/* The products of one item: mt[e] (ntile x F) = v[e] (ntile x C) . u[e] (C x F)
 * for each of the alpha^2 planes e, on the direct micro-kernel (the 6 x 64
 * wide one where it exists and F fills it, as the GEMM picks). A last tile of
 * at most CF_GEMM_ROWS_MAX_MR rows goes to the few-rows kernel, which computes
 * only those rows (a 14 x 14 image's 49 tiles would otherwise compute 54 rows);
 * it sums each output as the tiles do, one FMA chain over the channels from
 * zero: the same bits. */
static void WG_FN(wg_products)(const WG_UK *uk, const WG_FN(wg_split) *sp, int64_t C, int64_t F,
                               int64_t ntile, const WG_T *v, const WG_T *u, WG_T *mt)
{
    static const int64_t zero_off[1] = {0};
    const int64_t MR = uk->mr, NR = uk->nr, al2 = (int64_t)sp->al * sp->al;
    const int wide = uk->direct_wide != NULL && F >= CF_GEMM_WIDE_MIN_N;
    for (int64_t e = 0; e < al2; e++) {
        const WG_T *ve = v + e * sp->prow * C, *ue = u + e * C * F;
        WG_T *me = mt + e * sp->prow * F;
        if (wide) {
            const int64_t WR = CF_UKERNEL_WIDE_MR, WN = 4 * (int64_t)uk->vw;
            for (int64_t j0 = 0; j0 < F; j0 += WN) {
                const int64_t nr = F - j0 < WN ? F - j0 : WN;
                for (int64_t i0 = 0; i0 < ntile; i0 += WR) {
                    const int64_t mr = ntile - i0 < WR ? ntile - i0 : WR;
                    if (mr <= CF_GEMM_ROWS_MAX_MR && uk->rows != NULL) { /* nr <= WN: 4 vectors */
                        uk->rows(mr, nr, C, ve + i0 * C, C, ue + j0, F, me + i0 * F + j0, F, 0,
                                 NULL, 0);
                        continue;
                    }
                    int64_t px[CF_UKERNEL_WIDE_MR];
                    for (int64_t i = 0; i < WR; i++)
                        px[i] = (i0 + (i < mr ? i : 0)) * C;
                    uk->direct_wide(1, zero_off, C, ve, px, ue + j0, F, me + i0 * F + j0, F,
                                    (int)mr, (int)nr, 0, NULL, 0);
                }
            }
            continue;
        }
        for (int64_t j0 = 0; j0 < F; j0 += NR) {
            const int64_t nr = F - j0 < NR ? F - j0 : NR;
            for (int64_t i0 = 0; i0 < ntile; i0 += MR) {
                const int64_t mr = ntile - i0 < MR ? ntile - i0 : MR;
                if (mr <= CF_GEMM_ROWS_MAX_MR && uk->rows != NULL && nr <= 4 * uk->vw) {
                    uk->rows(mr, nr, C, ve + i0 * C, C, ue + j0, F, me + i0 * F + j0, F, 0,
                             NULL, 0);
                    continue;
                }
                uk->direct(1, zero_off, C, ve + i0 * C, C, ue + j0, F, me + i0 * F + j0, F,
                           (int)mr, (int)nr, NULL, 0);
            }
        }
    }
}

/* The output tiles of item `it` from its products mt, + bias, ReLU, into
 * dst: the output rows from row0 on of the item's image (OW x F each). */
static void WG_FN(wg_output_item)(const cf_conv2d_shape *s, const WG_FN(wg_split) *sp,
                                  const WG_TF *tf, int64_t it, int64_t ntile, const WG_T *mt,
                                  const WG_T *bias, int relu, WG_T *dst, int64_t row0,
                                  WG_T *tmp)
{
    const int m = sp->m;
    const int64_t F = s->f, OH = s->oh, OW = s->ow, plane = sp->prow * F;
    const int64_t ty0 = (it % sp->bands) * sp->R;
    for (int64_t t = 0; t < ntile; t++) {
        const int64_t oy = (ty0 + t / sp->tw) * m, ox = (t % sp->tw) * m;
        const int rows = OH - oy < m ? (int)(OH - oy) : m;
        const int cols = OW - ox < m ? (int)(OW - ox) : m;
        for (int64_t f0 = 0; f0 < F; f0 += CF_WINO_LANES) {
            const int64_t nf = F - f0 < CF_WINO_LANES ? F - f0 : CF_WINO_LANES;
            tf->output(m, mt + t * F + f0, plane, nf, bias ? bias + f0 : NULL, relu,
                       dst + ((oy - row0) * OW + ox) * F + f0, OW * F, F, rows, cols, tmp);
        }
    }
}

/* F(2x2, 3x3)'s u[e][c][f] = (G g G^T)[e] for channel c, with G's entries
 * (0, 1, +-1/2) written out, blocks of WG_KT_FB filters at a time: the 16
 * planes of u lie C * F values apart, so writing one value to each per filter
 * thrashes the cache's sets, while a block writes a run of each. The
 * transform is paid on every call (at batch 1 the generic loop below cost
 * more than the products). In double, scaling by 1/2 is exact, so these are
 * wg_kernel_rows' values (up to the sign of a zero, where that adds G's zero
 * terms). */
#ifndef WG_KT_FB
#define WG_KT_FB 16
#endif
static void WG_FN(wg_kernel_rows_f2)(int64_t C, int64_t F, const WG_T *restrict kernel,
                                     int64_t c, WG_T *restrict u)
{
    for (int64_t f0 = 0; f0 < F; f0 += WG_KT_FB) {
        const int64_t nf = F - f0 < WG_KT_FB ? F - f0 : WG_KT_FB;
        double t[4][3][WG_KT_FB];
        for (int j = 0; j < 3; j++) {
            const WG_T *k0 = kernel + ((int64_t)j * C + c) * F + f0;
            const WG_T *k1 = kernel + ((int64_t)(3 + j) * C + c) * F + f0;
            const WG_T *k2 = kernel + ((int64_t)(6 + j) * C + c) * F + f0;
            for (int64_t f = 0; f < nf; f++) {
                const double g0 = (double)k0[f], g1 = (double)k1[f], g2 = (double)k2[f];
                t[0][j][f] = g0;
                t[1][j][f] = 0.5 * g0 + 0.5 * g1 + 0.5 * g2;
                t[2][j][f] = 0.5 * g0 + -0.5 * g1 + 0.5 * g2;
                t[3][j][f] = g2;
            }
        }
        for (int a = 0; a < 4; a++) {
            WG_T *o0 = u + ((int64_t)(a * 4 + 0) * C + c) * F + f0;
            WG_T *o1 = u + ((int64_t)(a * 4 + 1) * C + c) * F + f0;
            WG_T *o2 = u + ((int64_t)(a * 4 + 2) * C + c) * F + f0;
            WG_T *o3 = u + ((int64_t)(a * 4 + 3) * C + c) * F + f0;
            for (int64_t f = 0; f < nf; f++)
                o0[f] = (WG_T)t[a][0][f];
            for (int64_t f = 0; f < nf; f++)
                o1[f] = (WG_T)(0.5 * t[a][0][f] + 0.5 * t[a][1][f] + 0.5 * t[a][2][f]);
            for (int64_t f = 0; f < nf; f++)
                o2[f] = (WG_T)(0.5 * t[a][0][f] + -0.5 * t[a][1][f] + 0.5 * t[a][2][f]);
            for (int64_t f = 0; f < nf; f++)
                o3[f] = (WG_T)t[a][2][f];
        }
    }
}

/* u[e][c][f] = (G g G^T)[e] for channels [c0, c1), computed in double. */
static void WG_FN(wg_kernel_rows)(int m, int64_t C, int64_t F, const WG_T *kernel, int64_t c0,
                                  int64_t c1, WG_T *u)
{
    if (m == 2) {
        for (int64_t c = c0; c < c1; c++)
            WG_FN(wg_kernel_rows_f2)(C, F, kernel, c, u);
        return;
    }
    const int al = m + 2;
    for (int64_t c = c0; c < c1; c++)
        for (int64_t f = 0; f < F; f++) {
            double g[3][3], t[6][3];
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 3; j++)
                    g[i][j] = (double)kernel[((i * 3 + j) * C + c) * F + f];
            for (int a = 0; a < al; a++)
                for (int j = 0; j < 3; j++)
                    t[a][j] = WG_FN(wg_gval)(m, a, 0) * g[0][j] +
                              WG_FN(wg_gval)(m, a, 1) * g[1][j] +
                              WG_FN(wg_gval)(m, a, 2) * g[2][j];
            for (int a = 0; a < al; a++)
                for (int b = 0; b < al; b++)
                    u[((int64_t)(a * al + b) * C + c) * F + f] =
                        (WG_T)(t[a][0] * WG_FN(wg_gval)(m, b, 0) +
                               t[a][1] * WG_FN(wg_gval)(m, b, 1) +
                               t[a][2] * WG_FN(wg_gval)(m, b, 2));
        }
}

static int WG_FN(wg_kernel_finite)(const cf_conv2d_shape *s, const WG_T *kernel)
{
    const int64_t n = 9 * s->c * s->f;
    int bad = 0;
    for (int64_t i = 0; i < n; i++)
        bad |= !isfinite(kernel[i]);
    return !bad;
}

/* Per-thread scratch of the transforms: a padded input tile and the 1-D
 * passes' temporaries (6 x 6 x lanes each). */
#define WG_TILE_SCRATCH (2 * 36 * CF_WINO_LANES)

/* Pooling of the forward's output (the fused convolution + pooling of
 * conv2d.h): each item's output rows go to per-thread scratch, and the
 * pooled rows whose windows they hold are pooled from there at once. */
typedef struct {
    const cf_pool2d_shape *p; /* unpadded windows that do not overlap */
    int mode, mark_dead;
    int32_t *argmax; /* or NULL */
} WG_FN(wg_pool);

/* The pooled rows of item `it` from its output rows in band (rows from r0). */
static void WG_FN(wg_pool_item)(const cf_conv2d_shape *s, const WG_FN(wg_split) *sp,
                                const WG_FN(wg_pool) *po, int64_t it, const WG_T *band,
                                WG_T *y)
{
    const cf_pool2d_shape *p = po->p;
    const int64_t n = it / sp->bands, r0 = (it % sp->bands) * sp->R * sp->m;
    const int64_t r1 = r0 + sp->R * sp->m, rowlen = s->ow * s->f, prow = p->ow * p->c;
    cf_pool2d_shape one = *p;
    one.n = 1;
    one.h = p->kh;
    one.oh = 1;
    for (int64_t q = r0 / p->sh; q < p->oh && q * p->sh < r1; q++) {
        const int64_t off = (n * p->oh + q) * prow;
        int32_t *am = po->argmax != NULL ? po->argmax + off : NULL;
        WG_POOL_BAND_FWD(&one, po->mode, band + (q * p->sh - r0) * rowlen, y + off, am);
        if (am != NULL)
            WG_POOL_ARGMAX_TO_PLANE(prow, y + off, q * p->sh * s->ow, po->mark_dead, am);
    }
}

static int WG_FN(wg_forward)(const cf_conv2d_shape *s, const WG_T *x, const WG_T *kernel,
                             const WG_T *bias, int relu, WG_T *y, const WG_FN(wg_pool) *po,
                             int nthreads)
{
    /* with pooling, items of whole pooling strides of rows */
    int64_t rmul = 1;
    if (po != NULL) {
        int64_t a = po->p->sh, b = s->winograd;
        while (b != 0) {
            const int64_t r = a % b;
            a = b;
            b = r;
        }
        rmul = po->p->sh / a;
    }
    const WG_UK uk = WG_SELECT(cf_simd_level());
    const WG_TF tf = WG_FN(wg_transforms)(cf_simd_level());
    const int64_t C = s->c, F = s->f;
    WG_FN(wg_split) sp;
    WG_FN(wg_make_split)(s, uk.mr, rmul, &sp);
    const int64_t al2 = (int64_t)sp.al * sp.al;
    WG_T *u = (WG_T *)cf_workspace(CF_WS_WINO_KERNEL, (size_t)(al2 * C * F) * sizeof(WG_T));
    if (u == NULL)
        return -1;
    int nt = cf_team_size(nthreads, sp.items);
    int failed = 0;
    (void)nt;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        CF_REGION_FP_ENTER();
        /* the transformed tiles, the micro-kernel's slack, then the padded band */
        const int64_t vpad = WG_FN(wg_band_offset)(s, &sp, uk.mr);
        WG_T *v = (WG_T *)cf_workspace_or_flag(CF_WS_WINO_INPUT, (size_t)(vpad + WG_FN(wg_band_elems)(s, &sp)) * sizeof(WG_T), &failed);
        WG_T *mt = (WG_T *)cf_workspace_or_flag(CF_WS_WINO_PRODUCTS, (size_t)(al2 * sp.prow * F) * sizeof(WG_T), &failed);
        WG_T *band = po != NULL ? (WG_T *)cf_workspace_or_flag(CF_WS_POOL_BAND, (size_t)(sp.R * sp.m * s->ow * F) * sizeof(WG_T), &failed)
                                : NULL;
        WG_T scratch[WG_TILE_SCRATCH];
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t c = 0; c < C; c++)
            WG_FN(wg_kernel_rows)(sp.m, C, F, kernel, c, c + 1, u);
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t it = 0; it < sp.items; it++) {
            if (v == NULL || mt == NULL || (po != NULL && band == NULL))
                continue;
            const int64_t ntile = WG_FN(wg_input_item)(s, &sp, &tf, x, it, v, v + vpad, scratch,
                                                       scratch + 36 * CF_WINO_LANES);
            WG_FN(wg_products)(&uk, &sp, C, F, ntile, v, u, mt);
            const int64_t n = it / sp.bands, r0 = (it % sp.bands) * sp.R * sp.m;
            if (po == NULL) {
                WG_FN(wg_output_item)(s, &sp, &tf, it, ntile, mt, bias, relu,
                                      y + (n * s->oh + r0) * s->ow * F, r0, scratch);
            } else {
                WG_FN(wg_output_item)(s, &sp, &tf, it, ntile, mt, bias, relu, band, r0,
                                      scratch);
                WG_FN(wg_pool_item)(s, &sp, po, it, band, y);
            }
        }
        CF_REGION_FP_LEAVE();
    }
    return failed ? -1 : 0;
}

int WG_FN(cf_winograd_forward)(const cf_conv2d_shape *s, const WG_T *x, const WG_T *kernel,
                               const WG_T *bias, int relu, WG_T *y, int nthreads)
{
    if (s->n == 0)
        return 0;
    if (!WG_FN(wg_kernel_finite)(s, kernel)) {
        cf_conv2d_shape d = *s;
        d.winograd = 0;
        return WG_FN(cf_conv2d_forward)(&d, x, kernel, bias, relu, y, nthreads);
    }
    return WG_FN(wg_forward)(s, x, kernel, bias, relu, y, NULL, nthreads);
}

int WG_FN(cf_winograd_pool_forward)(const cf_conv2d_shape *s, const cf_pool2d_shape *p,
                                    int mode, const WG_T *x, const WG_T *kernel,
                                    const WG_T *bias, int relu, WG_T *y, int32_t *argmax,
                                    int mark_dead, int nthreads)
{
    if (s->n == 0)
        return 0;
    if (!WG_FN(wg_kernel_finite)(s, kernel)) {
        cf_conv2d_shape d = *s;
        d.winograd = 0;
        return WG_FN(cf_conv2d_pool_forward)(&d, p, mode, x, kernel, bias, relu, y, argmax,
                                             mark_dead, nthreads);
    }
    const WG_FN(wg_pool) po = {p, mode, mark_dead, argmax};
    return WG_FN(wg_forward)(s, x, kernel, bias, relu, y, &po, nthreads);
}

int WG_FN(cf_winograd_backward_input)(const cf_conv2d_shape *s, const WG_T *dy,
                                      const WG_T *kernel, WG_T *dx, int nthreads)
{
    if (s->n == 0)
        return 0;
    const int64_t C = s->c, F = s->f;
    if (!WG_FN(wg_kernel_finite)(s, kernel)) {
        cf_conv2d_shape d = *s;
        d.winograd = 0;
        return WG_FN(cf_conv2d_backward_input)(&d, dy, kernel, dx, nthreads);
    }
    WG_T *wf = (WG_T *)cf_workspace(CF_WS_FLIPPED_KERNEL, (size_t)(9 * C * F) * sizeof(WG_T));
    if (wf == NULL)
        return -1;
    /* wf[a][b][f][c] = kernel[2-a][2-b][c][f] */
    for (int64_t a = 0; a < 3; a++)
        for (int64_t b = 0; b < 3; b++) {
            const WG_T *src = kernel + ((2 - a) * 3 + (2 - b)) * C * F;
            WG_T *dst = wf + (a * 3 + b) * F * C;
            for (int64_t c = 0; c < C; c++)
                for (int64_t f = 0; f < F; f++)
                    dst[f * C + c] = src[c * F + f];
        }
    cf_conv2d_shape t = *s;
    t.h = s->oh;
    t.w = s->ow;
    t.c = F;
    t.oh = s->h;
    t.ow = s->w;
    t.f = C;
    t.pt = 2 - s->pt;
    t.pl = 2 - s->pl;
    return WG_FN(cf_winograd_forward)(&t, dy, wf, NULL, 0, dx, nthreads);
}

/* The dy tiles of item `it` into w (alpha^2 planes of prow rows x F, rows
 * past the item's tiles not written). Returns the item's tile count. */
static int64_t WG_FN(wg_dy_item)(const cf_conv2d_shape *s, const WG_FN(wg_split) *sp,
                                 const WG_TF *tf, const WG_T *dy, int64_t it, WG_T *w,
                                 WG_T *patch, WG_T *tmp)
{
    const int m = sp->m;
    const int64_t F = s->f, OH = s->oh, OW = s->ow, plane = sp->prow * F;
    const int64_t n = it / sp->bands, ty0 = (it % sp->bands) * sp->R;
    const int64_t rows = sp->th - ty0 < sp->R ? sp->th - ty0 : sp->R;
    const int64_t ntile = rows * sp->tw;
    const WG_T *dyn = dy + n * OH * OW * F;
    for (int64_t t = 0; t < ntile; t++) {
        const int64_t oy = (ty0 + t / sp->tw) * m, ox = (t % sp->tw) * m;
        const int inside = oy + m <= OH && ox + m <= OW;
        for (int64_t f0 = 0; f0 < F; f0 += CF_WINO_LANES) {
            const int64_t nf = F - f0 < CF_WINO_LANES ? F - f0 : CF_WINO_LANES;
            WG_T *out = w + t * F + f0;
            if (inside) {
                tf->dy(m, dyn + (oy * OW + ox) * F + f0, OW * F, F, out, plane, nf, tmp);
                continue;
            }
            for (int i = 0; i < m; i++)
                for (int j = 0; j < m; j++) {
                    const int64_t iy = oy + i, ix = ox + j;
                    WG_T *d = patch + (i * m + j) * nf;
                    if (iy < OH && ix < OW)
                        memcpy(d, dyn + (iy * OW + ix) * F + f0, (size_t)nf * sizeof(WG_T));
                    else
                        memset(d, 0, (size_t)nf * sizeof(WG_T));
                }
            tf->dy(m, patch, m * nf, nf, out, plane, nf, tmp);
        }
    }
    return ntile;
}

int WG_FN(cf_winograd_backward_kernel)(const cf_conv2d_shape *s_in, const WG_T *x,
                                       const WG_T *dy, WG_T *dkernel, WG_T *dbias,
                                       int nthreads)
{
    /* F(2x2) whatever the layer's tile: F(4x4)'s kernel gradient sums the
     * tiles' products through A's entries up to 8 and G^T's down to 1/15,
     * and its error on a 56 x 56, 64-channel layer was 6x the direct
     * path's, over the bound the forward's 2-3x keeps (notes/winograd.md) */
    cf_conv2d_shape s2 = *s_in;
    s2.winograd = 2;
    const cf_conv2d_shape *s = &s2;
    const int64_t C = s->c, F = s->f;
    if (s->n == 0) {
        memset(dkernel, 0, (size_t)(9 * C * F) * sizeof(WG_T));
        if (dbias)
            memset(dbias, 0, (size_t)F * sizeof(WG_T));
        return 0;
    }
    const WG_UK uk = WG_SELECT(cf_simd_level());
    const WG_TF tf = WG_FN(wg_transforms)(cf_simd_level());
    const int64_t MR = uk.mr, NR = uk.nr;
    WG_FN(wg_split) sp;
    WG_FN(wg_make_split)(s, MR, 1, &sp);
    const int64_t al2 = (int64_t)sp.al * sp.al, UF = al2 * C * F, PE = UF + F;
    /* The partials' rows are the channels (C x F) or, when that fills the
     * micro-kernel's MR x NR tiles better, the filters (F x C, tr). */
    const int64_t tiles_cf = ((C + MR - 1) / MR) * ((F + NR - 1) / NR);
    const int64_t tiles_fc = ((F + MR - 1) / MR) * ((C + NR - 1) / NR);
    const int tr = tiles_fc < tiles_cf;
    const int64_t RD = tr ? F : C, QD = tr ? C : F;
    /* fixed chunks of items (never the thread count), each summed into its
     * own partial: the partials are then added in chunk order */
    int64_t chunk;
    const int64_t nch = cf_dw_chunks(sp.items, sp.items, PE, &chunk);
    WG_T *part = (WG_T *)cf_workspace(CF_WS_DW_PARTIALS, (size_t)(nch * PE) * sizeof(WG_T));
    if (part == NULL)
        return -1;
    int nt = cf_team_size(nthreads, nch);
    int failed = 0;
    (void)nt;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        CF_REGION_FP_ENTER();
        /* MR values of slack: the micro-kernel reads MR rows from the last */
        const int64_t vpad = WG_FN(wg_band_offset)(s, &sp, MR);
        WG_T *v = (WG_T *)cf_workspace_or_flag(CF_WS_WINO_INPUT, (size_t)(vpad + WG_FN(wg_band_elems)(s, &sp)) * sizeof(WG_T), &failed);
        WG_T *w = (WG_T *)cf_workspace_or_flag(CF_WS_WINO_PRODUCTS, (size_t)(al2 * sp.prow * F + MR) * sizeof(WG_T), &failed);
        WG_T scratch[WG_TILE_SCRATCH];
        if (v != NULL && w != NULL) {
            memset(v + al2 * sp.prow * C, 0, (size_t)MR * sizeof(WG_T));
            memset(w + al2 * sp.prow * F, 0, (size_t)MR * sizeof(WG_T));
        }
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t ch = 0; ch < nch; ch++) {
            if (v == NULL || w == NULL)
                continue;
            WG_T *pk = part + ch * PE, *db = pk + UF;
            memset(db, 0, (size_t)F * sizeof(WG_T));
            const int64_t i1 = (ch + 1) * chunk < sp.items ? (ch + 1) * chunk : sp.items;
            for (int64_t it = ch * chunk; it < i1; it++) {
                const int64_t ntile = WG_FN(wg_input_item)(s, &sp, &tf, x, it, v, v + vpad,
                                                           scratch, scratch + 36 * CF_WINO_LANES);
                WG_FN(wg_dy_item)(s, &sp, &tf, dy, it, w, scratch, scratch + 36 * CF_WINO_LANES);
                /* the bias gradient: the sum of each dy tile is its transform's
                 * entry (1, 1) (A's row 1 is all ones) */
                uk.colsum(ntile, F, w + (sp.al + 1) * sp.prow * F, F, db);
                /* pk[e] (R x Q) (+)= a[e]^T b[e], rows A(r, t) = a[e][t * R + r]:
                 * (C x F) from v^T w, or (F x C) from w^T v */
                for (int64_t e = 0; e < al2; e++) {
                    const WG_T *ae = (tr ? w : v) + e * sp.prow * RD;
                    const WG_T *be = (tr ? v : w) + e * sp.prow * QD;
                    WG_T *pe = pk + e * C * F;
                    for (int64_t r0 = 0; r0 < RD; r0 += MR) {
                        const int64_t mr = RD - r0 < MR ? RD - r0 : MR;
                        for (int64_t q0 = 0; q0 < QD; q0 += NR) {
                            const int64_t nr = QD - q0 < NR ? QD - q0 : NR;
                            uk.fn(ntile, ae + r0, RD, be + q0, QD, pe + r0 * QD + q0, QD,
                                  (int)mr, (int)nr, it > ch * chunk, NULL, 0);
                        }
                    }
                }
            }
        }
        if (!failed) {
            /* chunk partials summed in chunk order into chunk 0's */
            enum { RBLK = CF_CONV_DW_REDUCE_BLOCK };
            const int64_t nblk = (PE + RBLK - 1) / RBLK;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (int64_t blk = 0; blk < nblk; blk++) {
                const int64_t e0 = blk * RBLK, ne = PE - e0 < RBLK ? PE - e0 : RBLK;
                for (int64_t ch = 1; ch < nch; ch++)
                    tf.add_row(part + e0, part + ch * PE + e0, ne);
            }
            /* dW = G^T T G per (channel, filter), in double */
            const int al = sp.al;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (int64_t c = 0; c < C; c++)
                for (int64_t f = 0; f < F; f++) {
                    double t[6][3];
                    for (int a = 0; a < al; a++)
                        for (int j = 0; j < 3; j++) {
                            double acc = 0;
                            for (int b = 0; b < al; b++) {
                                const int64_t e = a * al + b;
                                acc += (double)part[tr ? (e * F + f) * C + c : (e * C + c) * F + f] *
                                       WG_FN(wg_gval)(sp.m, b, j);
                            }
                            t[a][j] = acc;
                        }
                    for (int i = 0; i < 3; i++)
                        for (int j = 0; j < 3; j++) {
                            double acc = 0;
                            for (int a = 0; a < al; a++)
                                acc += WG_FN(wg_gval)(sp.m, a, i) * t[a][j];
                            dkernel[((i * 3 + j) * C + c) * F + f] = (WG_T)acc;
                        }
                }
            if (dbias != NULL) {
#ifdef _OPENMP
#pragma omp single
#endif
                memcpy(dbias, part + UF, (size_t)F * sizeof(WG_T));
            }
        }
        CF_REGION_FP_LEAVE();
    }
    return failed ? -1 : 0;
}

#undef WG_TILE_SCRATCH
