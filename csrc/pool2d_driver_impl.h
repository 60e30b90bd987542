/* Public pooling entry points for one element type: code-path choice and the
 * OpenMP split.
 *
 * Template header, included by pool2d.c once per type after the row
 * templates (pool2d_impl.h and, on x86-64, pool2d_simd_impl.h for avx512 and
 * avx2; on AArch64 for neon, pool2d_neon_impl.h), with T and SFX defined.
 *
 * Work split (every output element and every dx element has one owner, so
 * results do not depend on the thread count):
 *   forward            one task per output row (n, oh);
 *   backward, windows  one task per output row; the task zeroes and fills the
 *   don't overlap      input rows its windows own, i.e. [oh*sh - pt,
 *                      (oh+1)*sh - pt) clipped to the image, the first and
 *                      last tasks of an image also own the rows above / below;
 *   backward, windows  one task per image: zero dx[n], then add the windows in
 *   overlap            row-major output order (the scalar definition's order). */

typedef void (*CF_FN(cf_pool_fwd_fn_))(const cf_pool2d_shape *, int, const T *, T *,
                                       int32_t *, int64_t, int64_t);
/* with its last argument set, returns how many argmax entries of the row are
 * not a cell of their window */
typedef int64_t (*CF_FN(cf_pool_bwd_fn_))(const cf_pool2d_shape *, int, const T *,
                                          const T *, const int32_t *, T *, int64_t,
                                          int64_t, int);

/* The forward row for this machine: the 2x2/2 one when it applies. */
static CF_FN(cf_pool_fwd_fn_) CF_FN(cf_pool_pick_fwd_)(const cf_pool2d_shape *s)
{
    CF_FN(cf_pool_fwd_fn_) row = CF_FN(cf_pool_fwd_scalar_);
    CF_FN(cf_pool_fwd_fn_) row2 = CF_FN(cf_pool_fwd_scalar_);
#if CF_HAVE_X86_DISPATCH
    const int level = cf_simd_level();
    if (level >= CF_SIMD_AVX512) {
        row = CF_FN(cf_pool_fwd_avx512_);
        row2 = CF_FN(cf_pool_fwd2_avx512_);
    } else if (level >= CF_SIMD_AVX2) {
        row = CF_FN(cf_pool_fwd_avx2_);
        row2 = CF_FN(cf_pool_fwd2_avx2_);
    }
#endif
#if CF_HAVE_NEON
    if (cf_simd_level() >= CF_SIMD_NEON) {
        row = CF_FN(cf_pool_fwd_neon_);
        row2 = CF_FN(cf_pool_fwd2_neon_);
    }
#endif
    return cf_pool_is_2x2(s) ? row2 : row;
}

/* The backward rows for this machine: the general one and the 2x2/2 one
 * (which writes its two input rows whole). */
static void CF_FN(cf_pool_pick_bwd_)(CF_FN(cf_pool_bwd_fn_) *row, CF_FN(cf_pool_bwd_fn_) *row2)
{
    *row = CF_FN(cf_pool_bwd_scalar_);
    *row2 = CF_FN(cf_pool_bwd2_scalar_);
#if CF_HAVE_X86_DISPATCH
    const int level = cf_simd_level();
    if (level >= CF_SIMD_AVX512) {
        *row = CF_FN(cf_pool_bwd_avx512_);
        *row2 = CF_FN(cf_pool_bwd2_avx512_);
    } else if (level >= CF_SIMD_AVX2) {
        *row = CF_FN(cf_pool_bwd_avx2_);
        *row2 = CF_FN(cf_pool_bwd2_avx2_);
    }
#endif
#if CF_HAVE_NEON
    if (cf_simd_level() >= CF_SIMD_NEON) {
        *row = CF_FN(cf_pool_bwd_neon_);
        *row2 = CF_FN(cf_pool_bwd2_neon_);
    }
#endif
}

/* Band entry points of the fused convolution + pooling drivers (conv2d.h):
 * `band` is one output row's worth of input, n = 1, oh = 1, h = the window
 * height, no padding, non-overlapping windows. The argmax indices are
 * relative to the band (ih * w + iw, ih < kh). */
void CF_CAT(cf_pool2d_band_forward_, SFX)(const cf_pool2d_shape *band, int mode,
                                          const T *x, T *y, int32_t *argmax)
{
    CF_FN(cf_pool_pick_fwd_)(band)(band, mode, x, y, argmax, 0, 0);
}

void CF_CAT(cf_pool2d_band_argmax_to_plane_, SFX)(int64_t n, const T *restrict y,
                                                  int64_t shift, int mark_dead,
                                                  int32_t *restrict argmax)
{
    /* int32 arithmetic (the loop vectorises): the sums are cells of the
     * plane, which the boundary keeps below 2**31 */
    const int32_t shift32 = (int32_t)shift;
    if (mark_dead) {
        for (int64_t e = 0; e < n; e++) {
            const int32_t a = argmax[e];
            argmax[e] = y[e] > 0 ? a + shift32 : -1;
        }
    } else {
        for (int64_t e = 0; e < n; e++)
            argmax[e] += shift32;
    }
}

void CF_CAT(cf_pool2d_band_backward_, SFX)(const cf_pool2d_shape *band, int mode,
                                           const T *dy, const int32_t *argmax, T *dx)
{
    CF_FN(cf_pool_bwd_fn_) row, row2;
    CF_FN(cf_pool_pick_bwd_)(&row, &row2);
    /* the fused drivers made these indices: no strays to count */
    if (cf_pool_is_2x2(band)) {
        /* writes both rows whole, the odd last column included */
        (void)row2(band, mode, dy, NULL, argmax, dx, 0, 0, 0);
        return;
    }
    memset(dx, 0, (size_t)(band->h * band->w * band->c) * sizeof(T));
    (void)row(band, mode, dy, NULL, argmax, dx, 0, 0, 0);
}

void CF_CAT(cf_pool2d_forward_, SFX)(const cf_pool2d_shape *s, int mode, const T *x,
                                     T *y, int32_t *argmax, int nthreads)
{
    if (s->n <= 0 || s->oh <= 0 || s->ow <= 0 || s->c <= 0)
        return;
    if (mode == CF_POOL_AVG)
        argmax = NULL;
    const CF_FN(cf_pool_fwd_fn_) fn = CF_FN(cf_pool_pick_fwd_)(s);
    const int64_t rows = s->n * s->oh, oh = s->oh;
    const int nt = cf_pool_threads(nthreads, rows,
                                   rows * s->ow * s->c * s->kh * s->kw);
    (void)nt;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        CF_REGION_FP_ENTER();
#ifdef _OPENMP
#pragma omp for schedule(guided) nowait
#endif
        for (int64_t r = 0; r < rows; r++)
            fn(s, mode, x, y, argmax, r / oh, r % oh);
        CF_REGION_FP_LEAVE();
    }
}

int64_t CF_CAT(cf_pool2d_backward_, SFX)(const cf_pool2d_shape *s, int mode, const T *dy,
                                         const T *x, const int32_t *argmax, T *dx,
                                         int count_strays, int nthreads)
{
    int64_t stray = 0;
    if (s->n <= 0 || s->h <= 0 || s->w <= 0 || s->c <= 0)
        return 0;
    if (mode == CF_POOL_AVG) {
        x = NULL;
        argmax = NULL;
    } else if (argmax != NULL) {
        x = NULL; /* the contract: with argmax, x is not read */
    }
    CF_FN(cf_pool_bwd_fn_) row, row2;
    CF_FN(cf_pool_pick_bwd_)(&row, &row2);
    const int64_t H = s->h, OH = s->oh, rowlen = s->w * s->c;
    const int64_t plane = H * rowlen;
    const int64_t work = s->n * plane + s->n * OH * s->ow * s->c * s->kh * s->kw;
    if (s->sh >= s->kh && s->sw >= s->kw) {
        const int fast = cf_pool_is_2x2(s);
        const int64_t rows = s->n * OH;
        const int nt = cf_pool_threads(nthreads, rows, work);
        (void)nt;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
        {
            CF_REGION_FP_ENTER();
#ifdef _OPENMP
#pragma omp for schedule(guided) reduction(+ : stray) nowait
#endif
        for (int64_t r = 0; r < rows; r++) {
            const int64_t ni = r / OH, oi = r % OH;
            int64_t r0 = oi == 0 ? 0 : oi * s->sh - s->pt;
            int64_t r1 = oi == OH - 1 ? H : (oi + 1) * s->sh - s->pt;
            r0 = r0 < 0 ? 0 : (r0 > H ? H : r0);
            r1 = r1 < r0 ? r0 : (r1 > H ? H : r1);
            T *dxn = dx + ni * plane;
            if (fast) {
                /* row2 writes rows 2oi, 2oi+1; only an odd last row is left. */
                stray += row2(s, mode, dy, x, argmax, dx, ni, oi, count_strays);
                if (r1 > 2 * oi + 2)
                    memset(dxn + (2 * oi + 2) * rowlen, 0,
                           (size_t)((r1 - 2 * oi - 2) * rowlen) * sizeof(T));
            } else {
                memset(dxn + r0 * rowlen, 0, (size_t)((r1 - r0) * rowlen) * sizeof(T));
                stray += row(s, mode, dy, x, argmax, dx, ni, oi, count_strays);
            }
        }
#if CF_HAVE_X86_DISPATCH
        /* the 2x2 rows may have used non-temporal stores: order them before
         * anyone reads dx */
        _mm_sfence();
#endif
            CF_REGION_FP_LEAVE();
        }
    } else {
        const int nt = cf_pool_threads(nthreads, s->n, work);
        (void)nt;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
        {
            CF_REGION_FP_ENTER();
#ifdef _OPENMP
#pragma omp for schedule(guided) reduction(+ : stray) nowait
#endif
            for (int64_t ni = 0; ni < s->n; ni++) {
                memset(dx + ni * plane, 0, (size_t)plane * sizeof(T));
                for (int64_t oi = 0; oi < OH; oi++)
                    stray += row(s, mode, dy, x, argmax, dx, ni, oi, count_strays);
            }
            CF_REGION_FP_LEAVE();
        }
    }
    return stray;
}
