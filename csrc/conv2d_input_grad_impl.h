/* The input-gradient drivers, for one element type: stride 1 as a forward
 * convolution of dy with the flipped kernel, strided convolutions by phases
 * (one stride-1 convolution per phase of the stride), and GEMM + col2im for
 * very large strides or padded copies, plus the entry point that picks one.
 *
 * Why a file of its own: the three drivers share the choice and its rules
 * (thread-count independent, same bits for any thread count) and nothing else
 * with the forward or the kernel gradient.
 *
 * Instantiated by conv2d.c after conv2d_forward_impl.h, with its macros. */

/* Stride 1: the input gradient is a stride-1 convolution of dy with the
 * spatially flipped kernel whose channel axes are swapped, padded by
 * (k-1)*d - p (negative values crop). It runs on the forward path. */
static int CV_FN(backward_input_stride1)(const cf_conv2d_shape *s, const CV_T *dy,
                                         const CV_FN(dy_source) *src, const CV_T *kernel,
                                         CV_T *dx, int nthreads)
{
    const int64_t KH = s->kh, KW = s->kw, C = s->c, F = s->f;
    CV_T *wf = (CV_T *)cf_workspace(CF_WS_FLIPPED_KERNEL, (size_t)(KH * KW * C * F) * sizeof(CV_T));
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
    t.winograd = 0;
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
    CV_T *wt = (CV_T *)cf_workspace(CF_WS_TRANSPOSED_KERNEL, (size_t)(K * F) * sizeof(CV_T));
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
        CV_T *panel = (CV_T *)cf_workspace_or_flag(CF_WS_DY_PANEL, (size_t)(MT * F) * sizeof(CV_T), &failed);
        CV_T *dcol = (CV_T *)cf_workspace_or_flag(CF_WS_DCOL, (size_t)(MT * K) * sizeof(CV_T), &failed);
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
    int64_t *meta = (int64_t *)cf_workspace(CF_WS_TAP_OFFSETS, (size_t)(nph * (T + 1)) * sizeof(int64_t));
    CV_T *wpk = (CV_T *)cf_workspace(CF_WS_PACKED_KERNEL, (size_t)(npan * T * F * NR) * sizeof(CV_T));
    if (meta == NULL || wpk == NULL)
        return -1;
    int64_t *ntap = meta, *toff = meta + nph;
    int64_t woff = 0;
    int64_t *wbase = (int64_t *)cf_workspace(CF_WS_PHASE_WEIGHTS_AT, (size_t)nph * sizeof(int64_t));
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

    /* A phase's columns seldom fill whole MR-pixel tiles (28 = 4 x 6 + 4),
     * and a partial tile costs a whole one. Where the row-spanning pixel
     * tile takes this tile's weight panels (AVX2 float32: the same 6 x 16
     * shape and packing, the same sums in the same order, so the same bits),
     * each row runs whole tiles only and the pixels left at the rows' ends
     * run together, MR at a time, through a small output block that is then
     * copied to their cells. */
    const int spill_px = uk.direct_px != NULL && uk.px_mr == MR && uk.px_nr == NR &&
                         MR * NR <= CF_AVX2_PX_MR * CF_AVX2_NR_F32;
    int nt_ = cf_team_size(nthreads, s->n);
    int failed = 0;
    (void)nt_;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt_)
#endif
    {
        CF_REGION_FP_ENTER();
        CV_T block[CF_AVX2_PX_MR * CF_AVX2_NR_F32]; /* the pixel tile's outputs */
        CV_T *yp = (CV_T *)cf_workspace_or_flag(CF_WS_PADDED_IMAGE, (size_t)(img + slack) * sizeof(CV_T), &failed);
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
                    /* columns [0, whole) in tiles of each row, the rest spilled */
                    const int64_t whole = spill_px && ntap[phase] > 0 ? cols / MR * MR : cols;
                    for (int64_t a = 0; a < rows; a++) {
                        CV_T *drow = dxn + ((a * s->sh + ph) * s->w + pw) * C;
                        if (ntap[phase] == 0) {
                            for (int64_t b = 0; b < cols; b++)
                                memset(drow + b * s->sw * C, 0, (size_t)C * sizeof(CV_T));
                            continue;
                        }
                        for (int64_t b0 = 0; b0 < whole; b0 += MR) {
                            const int64_t mr = whole - b0 < MR ? whole - b0 : MR;
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
                    const int64_t left = cols - whole, spilled = rows * left;
                    for (int64_t i0 = 0; i0 < spilled; i0 += MR) {
                        const int64_t mr = spilled - i0 < MR ? spilled - i0 : MR;
                        int64_t px[CF_UKERNEL_MAX_MR];
                        CV_T *cell[CF_UKERNEL_MAX_MR];
                        for (int64_t i = 0; i < MR; i++) { /* spare rows repeat the last */
                            const int64_t p = i0 + (i < mr ? i : mr - 1);
                            const int64_t a = p / left, b = whole + p % left;
                            px[i] = (a * wp + b) * F;
                            cell[i] = dxn + ((a * s->sh + ph) * s->w + b * s->sw + pw) * C;
                        }
                        for (int64_t jp = 0; jp < npan; jp++) {
                            const int64_t j0 = jp * NR;
                            const int64_t nr = C - j0 < NR ? C - j0 : NR;
                            uk.direct_px(ntap[phase], toff + phase * T, F, yp, px,
                                         wpk + jp * T * F * NR + wbase[phase] * NR, NR, block,
                                         NR, (int)mr, (int)nr, 0, NULL, 0);
                            for (int64_t i = 0; i < mr; i++)
                                memcpy(cell[i] + j0, block + i * NR, (size_t)nr * sizeof(CV_T));
                        }
                    }
                }
        }
        CF_REGION_FP_LEAVE();
    }
    return failed ? -1 : 0;
}

/* Whether every kernel value is finite. The stride-1 and phase drivers
 * multiply every tap by a zero padding of dy as well as by dy itself: a NaN
 * or infinite tap then makes 0 * tap = NaN in dx cells that the tap never
 * reaches, where the definition (cnnfast.reference: each (output pixel,
 * tap) pair adds its product to the cell it reaches) has only real products.
 * One pass over kh * kw * c * f values, next to the convolution's
 * n * oh * ow times as many multiply-adds. */
static int CV_FN(kernel_all_finite)(const cf_conv2d_shape *s, const CV_T *kernel)
{
    const int64_t n = s->kh * s->kw * s->c * s->f;
    int bad = 0;
    for (int64_t i = 0; i < n; i++)
        bad |= !isfinite(kernel[i]);
    return !bad;
}

int CV_FN(cf_conv2d_backward_input)(const cf_conv2d_shape *s, const CV_T *dy,
                                    const CV_T *kernel, CV_T *dx, int nthreads)
{
    if (s->n == 0)
        return 0;
    if (s->winograd)
        return CV_FN(cf_winograd_backward_input)(s, dy, kernel, dx, nthreads);
    /* a non-finite tap: col2im, which adds only the products of real
     * (output pixel, tap) pairs to the cells they reach */
    if (!CV_FN(kernel_all_finite)(s, kernel))
        return CV_FN(backward_input_col2im)(s, dy, kernel, dx, nthreads);
    if (s->sh == 1 && s->sw == 1)
        return CV_FN(backward_input_stride1)(s, dy, NULL, kernel, dx, nthreads);
    /* the phase tables grow with sh*sw: very large strides use col2im */
    if (s->sh * s->sw <= CF_CONV_MAX_PHASES)
        return CV_FN(backward_input_phases)(s, dy, kernel, dx, nthreads);
    return CV_FN(backward_input_col2im)(s, dy, kernel, dx, nthreads);
}
