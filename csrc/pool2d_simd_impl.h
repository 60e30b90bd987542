/* SIMD pooling rows, vectorised over the channel axis (contiguous in NHWC).
 *
 * Template header, included by pool2d.c once per (instruction set, type),
 * after pool2d_impl.h for the same type, with these macros defined:
 *   T, SFX          element type and suffix (as for pool2d_impl.h)
 *   CF_ISA          name piece of the instruction set (avx512 / avx2)
 *   CF_TGT          the GCC target attribute of every function here
 *   VT, IT, KT, VL  value vector, int32 index vector, lane mask, lanes
 *   CF_MASKED       1: the channel tail runs as a masked vector block;
 *                   0: full vectors only, the tail goes to the scalar row
 *   V_LD(p,k) V_ST(p,k,v) V_SET1(a) V_ZERO() V_ADD(a,b) V_MUL(a,b) V_DIV(a,b)
 *   V_BLEND(m,a,b)  (m ? b : a, lane-wise)
 *   V_UPD_MAX(v,b)  lanes where v must replace best b for max:
 *                   ordered(b) && !(v <= b)  ==  v > b || (isnan(v) && !isnan(b))
 *   V_UPD_MIN(v,b)  ordered(b) && !(v >= b)
 *   V_MAX(v,b) V_MIN(v,b)  v > b ? v : b / v < b ? v : b (the max/min
 *                   instructions: b where either is NaN, or where they are equal)
 *   V_ANY_NAN4(a,b,c,d)  nonzero when a lane of any of the four is NaN
 *   I_LD(p,k) I_ST(p,k,v) I_SET1(a) I_BLEND(m,a,b) I_EQ(a,b)
 *   V_CANON(v)      NaN lanes -> the default quiet NaN (see pool2d_impl.h)
 *   K_TAIL(r)       mask of the first min(r, VL) lanes (unused when !CF_MASKED)
 *
 * The vector macros (VT ... K_MISSES) are undefined at the end of this file.
 *
 * Every operation follows the order laid down in pool2d_impl.h (same first
 * cell, same visiting order, same division or exact power-of-two product), so
 * the results are bit-identical to the scalar rows. */

#define CF_VFN(name) CF_CAT(CF_CAT(name, CF_ISA), CF_CAT(_, SFX))

/* Winner of one channel block over one window: best value and, when want_idx,
 * its flat plane index. */
static inline CF_TGT void CF_VFN(cf_vsearch_)(int mode, const T *xp, int64_t W, int64_t C,
                                              int64_t ch, KT k, int64_t ih_lo,
                                              int64_t ih_hi, int64_t iw_lo,
                                              int64_t iw_hi, int want_idx, VT *pbest,
                                              IT *pidx)
{
    const int is_max = mode == CF_POOL_MAX;
    (void)k;
    VT best = V_LD(xp + (ih_lo * W + iw_lo) * C + ch, k);
    IT idx = I_SET1((int32_t)(ih_lo * W + iw_lo));
    for (int64_t ih = ih_lo; ih < ih_hi; ih++)
        for (int64_t iw = (ih == ih_lo ? iw_lo + 1 : iw_lo); iw < iw_hi; iw++) {
            const VT v = V_LD(xp + (ih * W + iw) * C + ch, k);
            const KT m = is_max ? V_UPD_MAX(v, best) : V_UPD_MIN(v, best);
            best = V_BLEND(m, best, v);
            if (want_idx)
                idx = I_BLEND(m, idx, I_SET1((int32_t)(ih * W + iw)));
        }
    *pbest = best;
    *pidx = idx;
}

/* General forward row (any window, stride, padding). */
static CF_TGT void CF_VFN(cf_pool_fwd_)(const cf_pool2d_shape *s, int mode, const T *x,
                                        T *y, int32_t *am, int64_t ni, int64_t oi)
{
    const int64_t H = s->h, W = s->w, C = s->c, OW = s->ow;
    const int64_t cv = CF_MASKED ? C : C - C % VL;
    const T *xp = x + ni * H * W * C;
    T *yr = y + (ni * s->oh + oi) * OW * C;
    int32_t *ar = am ? am + (ni * s->oh + oi) * OW * C : NULL;
    int64_t ih_lo, ih_hi;
    cf_pool_win(oi, s->sh, s->pt, s->kh, H, &ih_lo, &ih_hi);
    for (int64_t ow = 0; ow < OW; ow++) {
        int64_t iw_lo, iw_hi;
        cf_pool_win(ow, s->sw, s->pl, s->kw, W, &iw_lo, &iw_hi);
        T *yo = yr + ow * C;
        if (mode == CF_POOL_AVG) {
            const VT cnt = V_SET1((T)((ih_hi - ih_lo) * (iw_hi - iw_lo)));
            for (int64_t ch = 0; ch < cv; ch += VL) {
                const KT k = K_TAIL(C - ch);
                (void)k;
                VT acc = V_LD(xp + (ih_lo * W + iw_lo) * C + ch, k);
                for (int64_t ih = ih_lo; ih < ih_hi; ih++)
                    for (int64_t iw = (ih == ih_lo ? iw_lo + 1 : iw_lo); iw < iw_hi; iw++)
                        acc = V_ADD(acc, V_LD(xp + (ih * W + iw) * C + ch, k));
                V_ST(yo + ch, k, V_CANON(V_DIV(acc, cnt)));
            }
            continue;
        }
        int32_t *ao = ar ? ar + ow * C : NULL;
        for (int64_t ch = 0; ch < cv; ch += VL) {
            const KT k = K_TAIL(C - ch);
            (void)k;
            VT best;
            IT idx;
            CF_VFN(cf_vsearch_)(mode, xp, W, C, ch, k, ih_lo, ih_hi, iw_lo, iw_hi,
                                ao != NULL, &best, &idx);
            V_ST(yo + ch, k, best);
            if (ao)
                I_ST(ao + ch, k, idx);
        }
    }
    if (!CF_MASKED && cv < C)
        CF_FN(cf_pool_fwd_row_scalar_)(s, mode, x, y, am, ni, oi, cv, C);
}

/* Forward row for the common 2x2 window, stride 2, no padding. */
static CF_TGT void CF_VFN(cf_pool_fwd2_)(const cf_pool2d_shape *s, int mode, const T *x,
                                         T *y, int32_t *am, int64_t ni, int64_t oi)
{
    const int64_t H = s->h, W = s->w, C = s->c, OW = s->ow;
    const int64_t cv = CF_MASKED ? C : C - C % VL;
    const T *r0 = x + (ni * H + 2 * oi) * W * C;
    const T *r1 = r0 + W * C;
    T *yr = y + (ni * s->oh + oi) * OW * C;
    int32_t *ar = am ? am + (ni * s->oh + oi) * OW * C : NULL;
    const int is_max = mode == CF_POOL_MAX;
    const VT quarter = V_SET1((T)0.25);
    for (int64_t ow = 0; ow < OW; ow++) {
        const T *p0 = r0 + 2 * ow * C, *p1 = p0 + C;
        const T *p2 = r1 + 2 * ow * C, *p3 = p2 + C;
        T *yo = yr + ow * C;
        const int32_t base = (int32_t)(2 * oi * W + 2 * ow);
        for (int64_t ch = 0; ch < cv; ch += VL) {
            const KT k = K_TAIL(C - ch);
            (void)k;
            const VT a = V_LD(p0 + ch, k), b = V_LD(p1 + ch, k);
            const VT c = V_LD(p2 + ch, k), d = V_LD(p3 + ch, k);
            if (mode == CF_POOL_AVG) {
                /* x/4 == x*0.25 exactly: same result as the scalar division. */
                V_ST(yo + ch, k, V_CANON(V_MUL(V_ADD(V_ADD(V_ADD(a, b), c), d), quarter)));
                continue;
            }
            if (ar == NULL && !V_ANY_NAN4(a, b, c, d)) {
                /* no NaN (the usual case) and no index: the max/min
                 * instructions keep the earlier of equal values (-0 and +0
                 * included), as the ordered updates below do */
                const VT best = is_max ? V_MAX(d, V_MAX(c, V_MAX(b, a)))
                                       : V_MIN(d, V_MIN(c, V_MIN(b, a)));
                V_ST(yo + ch, k, best);
                continue;
            }
            VT best = a;
            const KT mb = is_max ? V_UPD_MAX(b, best) : V_UPD_MIN(b, best);
            best = V_BLEND(mb, best, b);
            const KT mc = is_max ? V_UPD_MAX(c, best) : V_UPD_MIN(c, best);
            best = V_BLEND(mc, best, c);
            const KT md = is_max ? V_UPD_MAX(d, best) : V_UPD_MIN(d, best);
            best = V_BLEND(md, best, d);
            V_ST(yo + ch, k, best);
            if (ar) {
                IT idx = I_SET1(base);
                idx = I_BLEND(mb, idx, I_SET1(base + 1));
                idx = I_BLEND(mc, idx, I_SET1(base + (int32_t)W));
                idx = I_BLEND(md, idx, I_SET1(base + (int32_t)W + 1));
                I_ST(ar + ow * C + ch, k, idx);
            }
        }
    }
    if (!CF_MASKED && cv < C)
        CF_FN(cf_pool_fwd_row_scalar_)(s, mode, x, y, am, ni, oi, cv, C);
}

/* General backward row: adds into dx, which the caller has zeroed. With
 * count, returns the number of argmax entries that are not a cell of their
 * window (see the scalar row). */
static CF_TGT int64_t CF_VFN(cf_pool_bwd_)(const cf_pool2d_shape *s, int mode, const T *dy,
                                           const T *x, const int32_t *am, T *dx,
                                           int64_t ni, int64_t oi, int count)
{
    int64_t stray = 0;
    const int64_t H = s->h, W = s->w, C = s->c, OW = s->ow;
    const int64_t cv = CF_MASKED ? C : C - C % VL;
    const T *dyr = dy + (ni * s->oh + oi) * OW * C;
    const int32_t *ar = am ? am + (ni * s->oh + oi) * OW * C : NULL;
    const T *xp = x ? x + ni * H * W * C : NULL;
    T *dxp = dx + ni * H * W * C;
    int64_t ih_lo, ih_hi;
    cf_pool_win(oi, s->sh, s->pt, s->kh, H, &ih_lo, &ih_hi);
    for (int64_t ow = 0; ow < OW; ow++) {
        int64_t iw_lo, iw_hi;
        cf_pool_win(ow, s->sw, s->pl, s->kw, W, &iw_lo, &iw_hi);
        const T *dyo = dyr + ow * C;
        const VT cnt = V_SET1((T)((ih_hi - ih_lo) * (iw_hi - iw_lo)));
        for (int64_t ch = 0; ch < cv; ch += VL) {
            const KT k = K_TAIL(C - ch);
            (void)k;
            VT g = V_LD(dyo + ch, k);
            if (mode == CF_POOL_AVG) {
                g = V_DIV(g, cnt);
                for (int64_t ih = ih_lo; ih < ih_hi; ih++)
                    for (int64_t iw = iw_lo; iw < iw_hi; iw++) {
                        T *p = dxp + (ih * W + iw) * C + ch;
                        V_ST(p, k, V_CANON(V_ADD(V_LD(p, k), g)));
                    }
                continue;
            }
            IT idx;
            if (ar) {
                idx = I_LD(ar + ow * C + ch, k);
            } else {
                VT best;
                CF_VFN(cf_vsearch_)(mode, xp, W, C, ch, k, ih_lo, ih_hi, iw_lo, iw_hi, 1,
                                    &best, &idx);
            }
            for (int64_t ih = ih_lo; ih < ih_hi; ih++)
                for (int64_t iw = iw_lo; iw < iw_hi; iw++) {
                    T *p = dxp + (ih * W + iw) * C + ch;
                    const KT m = I_EQ(idx, I_SET1((int32_t)(ih * W + iw)));
                    const VT old = V_LD(p, k);
                    V_ST(p, k, V_BLEND(m, old, V_CANON(V_ADD(old, g))));
                }
            if (ar && count) {
                /* a loop of its own: the update loop above stays as lean as
                 * without counting (which the layers' own indices skip) */
                KT hit = K_NONE();
                for (int64_t ih = ih_lo; ih < ih_hi; ih++)
                    for (int64_t iw = iw_lo; iw < iw_hi; iw++)
                        hit = K_OR(hit, I_EQ(idx, I_SET1((int32_t)(ih * W + iw))));
                stray += K_MISSES(hit, k);
            }
        }
    }
    if (!CF_MASKED && cv < C)
        stray += CF_FN(cf_pool_bwd_row_scalar_)(s, mode, dy, x, am, dx, ni, oi, cv, C, count);
    return stray;
}

/* Backward row for 2x2 / stride 2 / no padding: writes input rows 2*oi and
 * 2*oi+1 completely (no zeroing pass, no read of dx). "0 + g" keeps the
 * scalar definition's +0 start (it turns a -0 gradient into +0). */
static CF_TGT int64_t CF_VFN(cf_pool_bwd2_)(const cf_pool2d_shape *s, int mode, const T *dy,
                                            const T *x, const int32_t *am, T *dx,
                                            int64_t ni, int64_t oi, int count)
{
    int64_t stray = 0;
    const int64_t H = s->h, W = s->w, C = s->c, OW = s->ow;
    const int64_t cv = CF_MASKED ? C : C - C % VL;
    const T *dyr = dy + (ni * s->oh + oi) * OW * C;
    const int32_t *ar = am ? am + (ni * s->oh + oi) * OW * C : NULL;
    const T *x0 = x ? x + (ni * H + 2 * oi) * W * C : NULL;
    T *d0 = dx + (ni * H + 2 * oi) * W * C;
    T *d1 = d0 + W * C;
    const int is_max = mode == CF_POOL_MAX;
    const VT zero = V_ZERO();
    const VT quarter = V_SET1((T)0.25);
    /* A dx far larger than the caches is written with non-temporal stores
     * (no read-for-ownership of lines that are overwritten whole); they
     * need whole, 64-byte aligned
     * vectors. The caller fences after the loop. */
#ifdef V_STNT
    const int stream = CF_POOL_STREAM_OK(s, dx) && C % VL == 0;
#endif
    for (int64_t ow = 0; ow < OW; ow++) {
        const T *dyo = dyr + ow * C;
        T *q0 = d0 + 2 * ow * C, *q1 = q0 + C, *q2 = d1 + 2 * ow * C, *q3 = q2 + C;
        const int32_t base = (int32_t)(2 * oi * W + 2 * ow);
        for (int64_t ch = 0; ch < cv; ch += VL) {
            const KT k = K_TAIL(C - ch);
            (void)k;
            const VT g = V_LD(dyo + ch, k);
            if (mode == CF_POOL_AVG) {
                const VT ga = V_CANON(V_ADD(zero, V_MUL(g, quarter)));
                V_ST(q0 + ch, k, ga);
                V_ST(q1 + ch, k, ga);
                V_ST(q2 + ch, k, ga);
                V_ST(q3 + ch, k, ga);
                continue;
            }
            IT idx;
            if (ar) {
                idx = I_LD(ar + ow * C + ch, k);
            } else {
                const T *p0 = x0 + 2 * ow * C + ch, *p2 = p0 + W * C;
                const VT a = V_LD(p0, k), b = V_LD(p0 + C, k);
                const VT c = V_LD(p2, k), d = V_LD(p2 + C, k);
                VT best = a;
                const KT mb = is_max ? V_UPD_MAX(b, best) : V_UPD_MIN(b, best);
                best = V_BLEND(mb, best, b);
                const KT mc = is_max ? V_UPD_MAX(c, best) : V_UPD_MIN(c, best);
                best = V_BLEND(mc, best, c);
                const KT md = is_max ? V_UPD_MAX(d, best) : V_UPD_MIN(d, best);
                idx = I_SET1(base);
                idx = I_BLEND(mb, idx, I_SET1(base + 1));
                idx = I_BLEND(mc, idx, I_SET1(base + (int32_t)W));
                idx = I_BLEND(md, idx, I_SET1(base + (int32_t)W + 1));
            }
            const VT g0 = V_CANON(V_ADD(zero, g));
            const KT e0 = I_EQ(idx, I_SET1(base)), e1 = I_EQ(idx, I_SET1(base + 1));
            const KT e2 = I_EQ(idx, I_SET1(base + (int32_t)W));
            const KT e3 = I_EQ(idx, I_SET1(base + (int32_t)W + 1));
            if (ar && count)
                stray += K_MISSES(K_OR(K_OR(e0, e1), K_OR(e2, e3)), k);
            const VT v0 = V_BLEND(e0, zero, g0);
            const VT v1 = V_BLEND(e1, zero, g0);
            const VT v2 = V_BLEND(e2, zero, g0);
            const VT v3 = V_BLEND(e3, zero, g0);
#ifdef V_STNT
            if (stream) {
                V_STNT(q0 + ch, v0);
                V_STNT(q1 + ch, v1);
                V_STNT(q2 + ch, v2);
                V_STNT(q3 + ch, v3);
                continue;
            }
#endif
            V_ST(q0 + ch, k, v0);
            V_ST(q1 + ch, k, v1);
            V_ST(q2 + ch, k, v2);
            V_ST(q3 + ch, k, v3);
        }
        if (!CF_MASKED && cv < C) {
            /* The scalar row adds into the tail channels: zero them first. */
            const size_t tb = (size_t)(C - cv) * sizeof(T);
            memset(q0 + cv, 0, tb);
            memset(q1 + cv, 0, tb);
            memset(q2 + cv, 0, tb);
            memset(q3 + cv, 0, tb);
        }
    }
    if (W & 1) {
        /* The last column lies in no window. */
        memset(d0 + (W - 1) * C, 0, (size_t)C * sizeof(T));
        memset(d1 + (W - 1) * C, 0, (size_t)C * sizeof(T));
    }
    if (!CF_MASKED && cv < C)
        stray += CF_FN(cf_pool_bwd_row_scalar_)(s, mode, dy, x, am, dx, ni, oi, cv, C, count);
    return stray;
}

#undef CF_VFN
/* The vector parameters belong to one instantiation: the next defines its own
 * (T, SFX and the CF_ISA / CF_TGT / CF_MASKED of the instruction set are the
 * includer's). */
#undef VT
#undef IT
#undef KT
#undef VL
#undef K_TAIL
#undef V_LD
#undef V_ST
#undef V_SET1
#undef V_ZERO
#undef V_ADD
#undef V_MUL
#undef V_DIV
#undef V_BLEND
#undef V_CANON
#undef V_UPD_MAX
#undef V_UPD_MIN
#undef V_MAX
#undef V_MIN
#undef V_ANY_NAN4
#undef I_LD
#undef I_ST
#undef I_SET1
#undef I_BLEND
#undef I_EQ
#undef K_NONE
#undef K_OR
#undef K_MISSES
