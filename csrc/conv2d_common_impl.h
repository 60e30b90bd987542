/* Shared pieces of the convolution drivers, for one element type: copying
 * an image into a zero-padded buffer, im2col rows, and the unpooling of a
 * pooled gradient (the dy_source that the fused convolution + pooling
 * backward hands to the forward and kernel-gradient drivers).
 *
 * Why a file of its own: the forward (conv2d_forward_impl.h), the input
 * gradient (conv2d_input_grad_impl.h) and the kernel gradient
 * (conv2d_kernel_grad_impl.h) all read their inputs through these helpers.
 *
 * Instantiated by conv2d.c, first of the conv2d_*_impl.h files, with CV_T
 * (element type), CV_SFX (f32/f64), CV_UK (micro-kernel struct type),
 * CV_SELECT (its selector), CV_PX_FN (its pixel-tile type), CF_POOL_* (the
 * pooling kernels) and CV_FN (a name with the type's suffix). See conv2d.h for the contract. */

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
        /* The indices may come from the caller (private wrappers included):
         * one before the band becomes -1, which matches no cell (one past it
         * matches none either). In int32 with a select, so that the loop
         * vectorises: a - shift cannot overflow when a >= shift >= 0, and a
         * band starting past INT32_MAX holds no int32 index. */
        const int64_t shift = po * p->sh * p->w;
        const int32_t *restrict am_row = src->argmax + off;
        if (shift > INT32_MAX) {
            for (int64_t i = 0; i < prow; i++)
                am_rel[i] = -1;
        } else {
            const int32_t shift32 = (int32_t)shift;
            for (int64_t i = 0; i < prow; i++) {
                const int32_t a = am_row[i];
                am_rel[i] = a >= shift32 ? a - shift32 : -1;
            }
        }
        const CV_T *drow = src->dyp + off;
        if (src->ymask != NULL) {
            CV_FN(relu_masked_row)(prow, drow, src->ymask + off, masked);
            drow = masked;
        }
        CF_POOL_BAND_BWD(&band, src->mode, drow, am_rel, blk + (po * p->sh - r0) * rowlen);
    }
}

#define PR_T CV_T
#define PR_FN CV_FN
#include "pad_rows_impl.h"
#undef PR_T
#undef PR_FN

static void CV_FN(pad_image)(const cf_conv2d_shape *s, const CV_T *restrict xn,
                             int64_t hp, int64_t wp, CV_T *restrict xp, int borders_zero)
{
    CV_FN(pad_rows)(s, xn, 0, hp, wp, xp, borders_zero);
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
