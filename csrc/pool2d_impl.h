/* Portable scalar pooling rows: the readable definition of every mode.
 *
 * Template header, included by pool2d.c once per element type with
 *   T    the element type (float / double)
 *   SFX  the name suffix (f32 / f64)
 * defined. It must not have an include guard.
 *
 * A "row" is one output row (image ni, output row oi). Every function here
 * handles the channel range [c0, c1) so the SIMD rows can hand their channel
 * tail to it and get the same semantics by construction.
 *
 * The order of operations is part of the contract, because the SIMD rows must
 * reproduce it bit for bit:
 *   - max/min: start from the first in-bounds cell, visit the rest in row-major
 *     window order, replace the best when the new value is strictly better or
 *     is the first NaN (so ties keep the first cell, the first NaN wins);
 *   - avg: start from the first in-bounds cell, add the others in row-major
 *     order, divide by the in-bounds count;
 *   - backward: dx starts at +0 and every window, visited in row-major output
 *     order, adds its share (avg: dy / count to each in-bounds cell; max/min:
 *     dy to the winning cell only).
 * NaN payloads: max/min select, so the winning NaN comes out bit for bit. A
 * sum of two NaNs, however, returns one of the two payloads depending on the
 * operand order, which the compiler may swap (addition commutes), so every
 * NaN that comes out of an addition (avg forward, all backward sums) is
 * replaced by the default quiet NaN. That keeps all code paths bit-identical
 * whatever the compiler does. */

#define CF_CAT_(a, b) a##b
#define CF_CAT(a, b) CF_CAT_(a, b)
#define CF_FN(name) CF_CAT(name, SFX)

/* NaN results of additions -> the default quiet NaN (see above). */
static inline T CF_FN(cf_canon_)(T v)
{
    return v != v ? (T)NAN : v;
}

/* One window cell against the running best of channels [0, nc): best/idx
 * are updated where the cell wins. Branch-free so the compiler can vectorise
 * it; called with constant is_max / idx == NULL so each use specialises. */
static inline void CF_FN(cf_pool_upd_)(int is_max, const T *xc, T *best, int32_t *idx,
                                       int32_t cell, int64_t nc)
{
    if (idx) {
        for (int64_t ch = 0; ch < nc; ch++) {
            const T v = xc[ch], b = best[ch];
            const int u = is_max ? ((v > b) | ((v != v) & (b == b)))
                                 : ((v < b) | ((v != v) & (b == b)));
            best[ch] = u ? v : b;
            idx[ch] = u ? cell : idx[ch];
        }
    } else {
        for (int64_t ch = 0; ch < nc; ch++) {
            const T v = xc[ch], b = best[ch];
            const int u = is_max ? ((v > b) | ((v != v) & (b == b)))
                                 : ((v < b) | ((v != v) & (b == b)));
            best[ch] = u ? v : b;
        }
    }
}

/* Winners of channels [0, nc) over one window (x already offset to the first
 * channel): best and, when idx != NULL, flat plane indices. */
static inline void CF_FN(cf_pool_search_)(int mode, const T *x, int64_t W, int64_t C,
                                          int64_t ih_lo, int64_t ih_hi, int64_t iw_lo,
                                          int64_t iw_hi, T *best, int32_t *idx,
                                          int64_t nc)
{
    const T *first = x + (ih_lo * W + iw_lo) * C;
    for (int64_t ch = 0; ch < nc; ch++)
        best[ch] = first[ch];
    if (idx)
        for (int64_t ch = 0; ch < nc; ch++)
            idx[ch] = (int32_t)(ih_lo * W + iw_lo);
    for (int64_t ih = ih_lo; ih < ih_hi; ih++)
        for (int64_t iw = (ih == ih_lo ? iw_lo + 1 : iw_lo); iw < iw_hi; iw++) {
            const T *xc = x + (ih * W + iw) * C;
            const int32_t cell = (int32_t)(ih * W + iw);
            if (mode == CF_POOL_MAX) {
                if (idx)
                    CF_FN(cf_pool_upd_)(1, xc, best, idx, cell, nc);
                else
                    CF_FN(cf_pool_upd_)(1, xc, best, NULL, cell, nc);
            } else {
                if (idx)
                    CF_FN(cf_pool_upd_)(0, xc, best, idx, cell, nc);
                else
                    CF_FN(cf_pool_upd_)(0, xc, best, NULL, cell, nc);
            }
        }
}

/* Forward, one output row, channels [c0, c1). y (and argmax) double as the
 * running best, so no scratch memory is needed. */
static void CF_FN(cf_pool_fwd_row_scalar_)(const cf_pool2d_shape *s, int mode,
                                           const T *x, T *y, int32_t *am,
                                           int64_t ni, int64_t oi, int64_t c0,
                                           int64_t c1)
{
    const int64_t H = s->h, W = s->w, C = s->c, OW = s->ow, nc = c1 - c0;
    const T *xp = x + ni * H * W * C + c0;
    T *yr = y + (ni * s->oh + oi) * OW * C + c0;
    int32_t *ar = am ? am + (ni * s->oh + oi) * OW * C + c0 : NULL;
    int64_t ih_lo, ih_hi;
    cf_pool_win(oi, s->sh, s->pt, s->kh, H, &ih_lo, &ih_hi);
    for (int64_t ow = 0; ow < OW; ow++) {
        int64_t iw_lo, iw_hi;
        cf_pool_win(ow, s->sw, s->pl, s->kw, W, &iw_lo, &iw_hi);
        T *yo = yr + ow * C;
        if (mode != CF_POOL_AVG) {
            CF_FN(cf_pool_search_)(mode, xp, W, C, ih_lo, ih_hi, iw_lo, iw_hi, yo,
                                   ar ? ar + ow * C : NULL, nc);
            continue;
        }
        const T *first = xp + (ih_lo * W + iw_lo) * C;
        for (int64_t ch = 0; ch < nc; ch++)
            yo[ch] = first[ch];
        for (int64_t ih = ih_lo; ih < ih_hi; ih++)
            for (int64_t iw = (ih == ih_lo ? iw_lo + 1 : iw_lo); iw < iw_hi; iw++) {
                const T *xc = xp + (ih * W + iw) * C;
                for (int64_t ch = 0; ch < nc; ch++)
                    yo[ch] += xc[ch];
            }
        const T cnt = (T)((ih_hi - ih_lo) * (iw_hi - iw_lo));
        for (int64_t ch = 0; ch < nc; ch++)
            yo[ch] = CF_FN(cf_canon_)(yo[ch] / cnt);
    }
}

/* Channels per pass of the scalar backward: its per-channel winners and
 * shares live on the stack (no heap allocation in the kernels). */
#define CF_POOL_CHUNK 64

/* Backward, one output row, channels [c0, c1): adds this row's windows'
 * gradients into dx (which the caller has zeroed). A gradient lands only on a
 * cell of its own window, so a corrupt argmax can lose gradient but never
 * write out of bounds. With count (and argmax), returns how many of the
 * row's argmax entries are not a cell of their window, else 0: the boundary
 * refuses such indices, and counting here costs no second pass over them. */
static int64_t CF_FN(cf_pool_bwd_row_scalar_)(const cf_pool2d_shape *s, int mode,
                                              const T *dy, const T *x,
                                              const int32_t *am, T *dx, int64_t ni,
                                              int64_t oi, int64_t c0, int64_t c1, int count)
{
    const int64_t H = s->h, W = s->w, C = s->c, OW = s->ow;
    const T *dyr = dy + (ni * s->oh + oi) * OW * C;
    const int32_t *ar = am ? am + (ni * s->oh + oi) * OW * C : NULL;
    const T *xp = x ? x + ni * H * W * C : NULL;
    T *dxp = dx + ni * H * W * C;
    int64_t ih_lo, ih_hi;
    cf_pool_win(oi, s->sh, s->pt, s->kh, H, &ih_lo, &ih_hi);
    T buf[CF_POOL_CHUNK];
    int32_t win[CF_POOL_CHUNK];
    int32_t hit[CF_POOL_CHUNK];
    int64_t stray = 0;
    for (int64_t ow = 0; ow < OW; ow++) {
        int64_t iw_lo, iw_hi;
        cf_pool_win(ow, s->sw, s->pl, s->kw, W, &iw_lo, &iw_hi);
        const T cnt = (T)((ih_hi - ih_lo) * (iw_hi - iw_lo));
        for (int64_t cb = c0; cb < c1; cb += CF_POOL_CHUNK) {
            const int64_t nc = c1 - cb < CF_POOL_CHUNK ? c1 - cb : CF_POOL_CHUNK;
            const T *dyo = dyr + ow * C + cb;
            if (mode == CF_POOL_AVG) {
                for (int64_t ch = 0; ch < nc; ch++)
                    buf[ch] = dyo[ch] / cnt;
                for (int64_t ih = ih_lo; ih < ih_hi; ih++)
                    for (int64_t iw = iw_lo; iw < iw_hi; iw++) {
                        T *dxc = dxp + (ih * W + iw) * C + cb;
                        for (int64_t ch = 0; ch < nc; ch++)
                            dxc[ch] = CF_FN(cf_canon_)(dxc[ch] + buf[ch]);
                    }
                continue;
            }
            const int32_t *wi = win;
            if (ar)
                wi = ar + ow * C + cb;
            else
                CF_FN(cf_pool_search_)(mode, xp + cb, W, C, ih_lo, ih_hi, iw_lo, iw_hi,
                                       buf, win, nc);
            for (int64_t ih = ih_lo; ih < ih_hi; ih++)
                for (int64_t iw = iw_lo; iw < iw_hi; iw++) {
                    const int32_t cell = (int32_t)(ih * W + iw);
                    T *dxc = dxp + (ih * W + iw) * C + cb;
                    for (int64_t ch = 0; ch < nc; ch++) {
                        /* Computed for every lane and then selected: no
                         * branch, so the compiler can vectorise it. */
                        const T d = dxc[ch], a = d + dyo[ch];
                        const T sum = a != a ? (T)NAN : a;
                        dxc[ch] = wi[ch] == cell ? sum : d;
                    }
                }
            if (ar && count) {
                for (int64_t ch = 0; ch < nc; ch++)
                    hit[ch] = 0;
                for (int64_t ih = ih_lo; ih < ih_hi; ih++)
                    for (int64_t iw = iw_lo; iw < iw_hi; iw++)
                        for (int64_t ch = 0; ch < nc; ch++)
                            hit[ch] |= wi[ch] == (int32_t)(ih * W + iw);
                for (int64_t ch = 0; ch < nc; ch++)
                    stray += !hit[ch];
            }
        }
    }
    return stray;
}

/* Whole-row adapters with the signatures the driver dispatches on. */
static void CF_FN(cf_pool_fwd_scalar_)(const cf_pool2d_shape *s, int mode, const T *x,
                                       T *y, int32_t *am, int64_t ni, int64_t oi)
{
    CF_FN(cf_pool_fwd_row_scalar_)(s, mode, x, y, am, ni, oi, 0, s->c);
}

static int64_t CF_FN(cf_pool_bwd_scalar_)(const cf_pool2d_shape *s, int mode, const T *dy,
                                          const T *x, const int32_t *am, T *dx,
                                          int64_t ni, int64_t oi, int count)
{
    return CF_FN(cf_pool_bwd_row_scalar_)(s, mode, dy, x, am, dx, ni, oi, 0, s->c, count);
}

/* 2x2 stride-2 unpadded backward row: must fully write input rows 2*oi and
 * 2*oi+1. The scalar version zeroes them and runs the general row. */
static int64_t CF_FN(cf_pool_bwd2_scalar_)(const cf_pool2d_shape *s, int mode, const T *dy,
                                           const T *x, const int32_t *am, T *dx,
                                           int64_t ni, int64_t oi, int count)
{
    const int64_t rowlen = s->w * s->c;
    memset(dx + (ni * s->h + 2 * oi) * rowlen, 0, (size_t)(2 * rowlen) * sizeof(T));
    return CF_FN(cf_pool_bwd_row_scalar_)(s, mode, dy, x, am, dx, ni, oi, 0, s->c, count);
}
