/* The kernel-gradient drivers, for one element type: the direct one (tile
 * rows are (tap, channel) pairs read from the padded image, dy streamed
 * across) and the im2col + GEMM one for small batches and odd geometries,
 * both reducing fixed chunks of the batch into per-chunk partials summed in
 * a fixed order (reduce_partials), so the result has the same bits for any
 * thread count.
 *
 * Why a file of its own: the kernel gradient's chunking, partials and tile
 * choice concern no other direction.
 *
 * Instantiated by conv2d.c after conv2d_input_grad_impl.h, with its macros. */

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
    enum { RBLK = CF_CONV_DW_REDUCE_BLOCK };
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
 * chunks, summed in a fixed order. (Tile rows over dy instead would need a
 * transpose at the end, and are no faster.) */
static int CV_FN(backward_kernel_direct)(const cf_conv2d_shape *s, const CV_UK *uk,
                                         const CV_T *x, const CV_FN(dy_source) *src,
                                         CV_T *dkernel, CV_T *dbias, int nthreads)
{
    const int64_t C = s->c, F = s->f;
    const int64_t T = s->kh * s->kw, K = T * C, FK = F * K;
    /* Tiles, in order of preference:
     * - the kernel-row tile (vectors along one kernel row's taps x channels,
     *   contiguous when the column dilation is 1; partials F x K) for at
     *   most 32 channels whose kernel row has more than 64 values (faster
     *   than the 16 x 16 tile there, same bits; slower with 64 channels);
     * - the 16 x 16 tile (one tap's channels x 16 filters) for whole blocks
     *   of 16 channels when there are at most 32 channels or fewer than 48
     *   filters; its rows are consecutive channels of one tap
     *   (C % 16 == 0): its off[i] == off[0] + i, as it requires;
     * - the 6 x 64 tile when at least 48 filters fill it;
     * - the 10 x 32 one when it holds all K rows (a 3x3 kernel on 1
     *   channel); else the 14 x 32 one. */
    const int krow_tile = uk->taps_krow != NULL && s->dw == 1 &&
                          C <= CF_CONV_DW_KROW_MAX_C && s->kw * C > CF_CONV_DW_KROW_MIN_ROW;
    const int64_t rowlen = s->kw * C, nseg = (rowlen + CF_UKERNEL_KROW_LEN - 1) / CF_UKERNEL_KROW_LEN;
    const int channel_tile = !krow_tile && uk->taps_channels != NULL &&
                             C % CF_UKERNEL_CHANNEL_BLOCK == 0 &&
                             (C <= CF_CONV_DW_CHANNEL_BLOCK_MAX_C || F < CF_CONV_DW_WIDE_MIN_F);
    const int wide_tile = !krow_tile && !channel_tile && uk->taps_wide != NULL &&
                          F >= CF_CONV_DW_WIDE_MIN_F;
    const int short_tile = !krow_tile && !channel_tile && !wide_tile && uk->taps_short != NULL &&
                           K <= CF_UKERNEL_SHORT_MR;
    const int64_t MR = channel_tile ? CF_UKERNEL_CHANNEL_BLOCK
                       : wide_tile  ? CF_UKERNEL_WIDE_MR
                       : short_tile ? CF_UKERNEL_SHORT_MR
                                    : uk->mr;
    const int64_t NR = channel_tile ? CF_UKERNEL_CHANNEL_BLOCK : wide_tile ? 2 * uk->nr : uk->nr;
    const CV_CAT(CV_CAT(cf_ukernel_taps, CV_SFX), fn) taps =
        channel_tile ? uk->taps_channels
        : wide_tile  ? uk->taps_wide
        : short_tile ? uk->taps_short
                     : uk->taps;
    /* The bias gradient rides in a spare row of the last block of rows of
     * the 14- or 10-row tile (rows at any offsets), reading a run of ones
     * laid after the padded image: its tile output row is the partial's
     * bias entry: a separate column sum of dy, a chain of dependent adds
     * per column, would cost a large share of a small kernel gradient.
     * Each block's sum runs in pixel order and is added to the
     * chunk's partial, as the kernel entries are: fixed for a shape,
     * whatever the thread count. */
    const int bias_row = !krow_tile && !channel_tile && !wide_tile && K % MR != 0;
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
        (krow_tile ? s->kh * nseg * ((F + CF_UKERNEL_KROW_NF - 1) / CF_UKERNEL_KROW_NF)
              : ((K + MR - 1) / MR) * ((F + NR - 1) / NR));
    int64_t chunk;
    const int64_t per = (CF_CONV_DW_MIN_PIXELS + ohw - 1) / ohw;
    const int64_t nchunks = cf_dw_chunks(s->n, (s->n + per - 1) / per, FK + F, &chunk);
    CV_T *part = (CV_T *)cf_workspace(CF_WS_DW_PARTIALS, (size_t)(nchunks * (FK + F)) * sizeof(CV_T));
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
        CV_T *xp = (CV_T *)cf_workspace_or_flag(CF_WS_PADDED_IMAGE, (size_t)xp_elems * sizeof(CV_T), &failed);
        int zeroed = 0; /* xp holds the zero borders */
        CV_T *blk = NULL;
        void *uscratch = NULL;
        if (src->dy == NULL) {
            blk = (CV_T *)cf_workspace_or_flag(CF_WS_UNPOOLED, (size_t)(RB * s->ow * F) * sizeof(CV_T),
                                               &failed);
            uscratch = cf_workspace_or_flag(CF_WS_UNPOOL_SCRATCH, CV_FN(unpool_scratch_bytes)(src->p), &failed);
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
                 * where an image is small and read by many tile calls.
                 * Larger images would push this one's rows out of L2; with
                 * few calls per image the bursts stall the tile and the
                 * hardware streamers already cover one pass. */
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
                    for (int64_t ky = 0; krow_tile && ky < s->kh; ky++) {
                        const CV_T *xr = xb + ky * s->dh * wp * C;
                        for (int64_t e0 = 0; e0 < rowlen; e0 += CF_UKERNEL_KROW_LEN) {
                            const int64_t len = rowlen - e0 < CF_UKERNEL_KROW_LEN
                                                    ? rowlen - e0 : CF_UKERNEL_KROW_LEN;
                            for (int64_t f0 = 0; f0 < F; f0 += CF_UKERNEL_KROW_NF) {
                                const int64_t nf = F - f0 < CF_UKERNEL_KROW_NF
                                                       ? F - f0 : CF_UKERNEL_KROW_NF;
                                uk->taps_krow(nrow, s->ow, xr + e0, s->sw * C, s->sh * wp * C,
                                         len, dyb + f0, F, pk + f0 * K + ky * rowlen + e0,
                                         K, (int)nf, acc);
                                cf_pf_step(&pf);
                            }
                        }
                    }
                    for (int64_t i0 = 0; !krow_tile && i0 < K; i0 += MR) {
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
            CV_FN(reduce_partials)(part, nchunks, FK, F, krow_tile ? K : 0, dkernel, dbias);
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
    if (s->winograd)
        return CV_FN(cf_winograd_backward_kernel)(s, x, dy, dkernel, dbias, nthreads);
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
    /* Pixels per im2col sub-tile: about 512 KiB of float32 patches, in L2. */
    const int64_t K1 = K + 1; /* im2col rows carry a ones column for dbias */
    int64_t SP = (int64_t)(CF_CONV_DW_IM2COL_ELEMS / K1);
    SP = SP < CF_CONV_DW_IM2COL_MIN_PIXELS   ? CF_CONV_DW_IM2COL_MIN_PIXELS
         : SP > CF_CONV_DW_IM2COL_MAX_PIXELS ? CF_CONV_DW_IM2COL_MAX_PIXELS
                                             : SP;

    CV_T *part = (CV_T *)cf_workspace(CF_WS_DW_PARTIALS, (size_t)(nchunks * (KF + F)) * sizeof(CV_T));
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
        CV_T *col = (CV_T *)cf_workspace_or_flag(CF_WS_IM2COL_TILE, (size_t)(SP * K1 + MR) * sizeof(CV_T), &failed);
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
