/* pad_rows: the zero-padded copy of an image's rows, for one element type.
 * The direct convolution (conv2d_common_impl.h) pads whole images or the rows
 * a work item reads; Winograd (winograd_impl.h) pads an item's band of rows.
 * Included with PR_T (the element type) and PR_FN(name) (the instance's
 * name) defined; needs string.h and conv2d.h's cf_conv2d_shape. */

/* Copy rows [r0, r1) of the receptive field of image `xn` into a
 * zero-padded buffer of hp x wp pixels: xp[r][q] = x[r - pt][q - pl] (0
 * outside the image); pad_image copies all hp rows.
 * borders_zero: xp already holds this geometry's zeros (a per-thread buffer
 * reused for the next image), so only the pixels are copied: for few
 * channels the zero runs are a few bytes each, and a libc call apiece for
 * every row of every image cost more than the copy itself. */
static void PR_FN(pad_rows)(const cf_conv2d_shape *s, const PR_T *restrict xn, int64_t r0,
                            int64_t r1, int64_t wp, PR_T *restrict xp, int borders_zero)
{
    const int64_t C = s->c;
    int64_t q_lo = s->pl, q_hi = s->pl + s->w; /* columns that hold pixels */
    if (q_lo < 0)
        q_lo = 0;
    if (q_hi > wp)
        q_hi = wp;
    for (int64_t r = r0; r < r1; r++) {
        PR_T *row = xp + r * wp * C;
        const int64_t ih = r - s->pt;
        if (ih < 0 || ih >= s->h || q_lo >= q_hi) {
            if (!borders_zero)
                memset(row, 0, (size_t)(wp * C) * sizeof(PR_T));
            continue;
        }
        if (q_lo > 0 && !borders_zero)
            memset(row, 0, (size_t)(q_lo * C) * sizeof(PR_T));
        memcpy(row + q_lo * C, xn + (ih * s->w + (q_lo - s->pl)) * C,
               (size_t)((q_hi - q_lo) * C) * sizeof(PR_T));
        if (q_hi < wp && !borders_zero)
            memset(row + q_hi * C, 0, (size_t)((wp - q_hi) * C) * sizeof(PR_T));
    }
}
