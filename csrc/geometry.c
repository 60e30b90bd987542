/* Geometry checks before the drivers run: see geometry.h. */
#include "geometry.h"

static int in_range(int64_t v, int64_t lo) { return v >= lo && v <= CF_MAX_DIM; }

const char *cf_conv2d_shape_error(const cf_conv2d_shape *s)
{
    if (!in_range(s->n, 0))
        return "batch size out of range";
    if (!in_range(s->h, 1) || !in_range(s->w, 1) || !in_range(s->c, 1) || !in_range(s->f, 1))
        return "image sizes and channel counts must be in [1, 2**31)";
    if (!in_range(s->oh, 1) || !in_range(s->ow, 1))
        return "output sizes must be in [1, 2**31)";
    if (!in_range(s->kh, 1) || !in_range(s->kw, 1) || !in_range(s->sh, 1)
        || !in_range(s->sw, 1) || !in_range(s->dh, 1) || !in_range(s->dw, 1))
        return "kernel sizes, strides and dilations must be in [1, 2**31)";
    if (!in_range(s->pt, 0) || !in_range(s->pl, 0))
        return "paddings must be in [0, 2**31)";
    /* each product below is of two numbers < 2**31: no int64 overflow; the
     * padded extent itself is compared in double (only its size matters) */
    const double hp = (double)((s->oh - 1) * s->sh) + (double)((s->kh - 1) * s->dh) + 1.0;
    const double wp = (double)((s->ow - 1) * s->sw) + (double)((s->kw - 1) * s->dw) + 1.0;
    const double ch = (double)(s->c > s->f ? s->c : s->f);
    if (hp * wp * ch > (double)CF_MAX_PADDED_ELEMS)
        return "the padded image is too large for the kernels' index arithmetic";
    if (s->winograd != 0 && s->winograd != 2 && s->winograd != 4)
        return "winograd must be 0 (direct), 2 or 4 (the output tile)";
    if (s->winograd != 0 && (s->kh != 3 || s->kw != 3 || s->sh != 1 || s->sw != 1 ||
                             s->dh != 1 || s->dw != 1))
        return "Winograd takes 3x3 kernels of stride 1 and dilation 1 only";
    return 0;
}

const char *cf_pool2d_shape_error(const cf_pool2d_shape *p, int mode)
{
    if (mode != CF_POOL_MAX && mode != CF_POOL_AVG && mode != CF_POOL_MIN)
        return "mode must be 0 (max), 1 (avg) or 2 (min)";
    if (!in_range(p->n, 0))
        return "batch size out of range";
    if (!in_range(p->h, 1) || !in_range(p->w, 1) || !in_range(p->c, 1) || !in_range(p->oh, 1)
        || !in_range(p->ow, 1))
        return "H, W, C, OH and OW must be in [1, 2**31)";
    if (!in_range(p->kh, 1) || !in_range(p->kw, 1) || !in_range(p->sh, 1)
        || !in_range(p->sw, 1))
        return "pool sizes and strides must be in [1, 2**31)";
    /* pt < kh puts an in-bounds row in the first window; a last window that
     * starts inside the image does the same for the last one */
    if (!(p->pt >= 0 && p->pt < p->kh && p->pl >= 0 && p->pl < p->kw))
        return "padding must be smaller than the window on each side";
    if ((p->oh - 1) * p->sh - p->pt >= p->h || (p->ow - 1) * p->sw - p->pl >= p->w)
        return "a window would hold only padding";
    if (p->h * p->w > 2147483647LL)
        return "the plane is too large for int32 indices";
    return 0;
}

const char *cf_conv_pool_shape_error(const cf_conv2d_shape *s, const cf_pool2d_shape *p,
                                     int mode)
{
    const char *err = cf_conv2d_shape_error(s);
    if (err != 0)
        return err;
    if (mode != CF_POOL_MAX && mode != CF_POOL_MIN)
        return "the fused kernels pool by max (0) or min (2)";
    if (!in_range(p->kh, 1) || !in_range(p->kw, 1) || p->sh < p->kh || p->sw < p->kw
        || !in_range(p->sh, 1) || !in_range(p->sw, 1) || p->pt != 0 || p->pl != 0)
        return "the fused kernels need unpadded pooling windows that do not overlap";
    if (s->oh < p->kh || s->ow < p->kw)
        return "the pooling window is larger than the convolution output";
    if (s->oh * s->ow > 2147483647LL)
        return "the convolution output plane is too large for int32 indices";
    if (p->n != s->n || p->h != s->oh || p->w != s->ow || p->c != s->f
        || p->oh != (s->oh - p->kh) / p->sh + 1 || p->ow != (s->ow - p->kw) / p->sw + 1)
        return "the pooling sizes are not those of the convolution output";
    return 0;
}
