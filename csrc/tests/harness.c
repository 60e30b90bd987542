/* C-level test harness for the kernels in csrc/, with no Python.
 *
 * Every kernel entry point (convolution forward, input and kernel gradients,
 * the fused convolution + pooling pair, pooling max/avg/min forward and
 * backward, GEMM, dropout, the ReLU mask, softmax cross-entropy, Adam) runs on
 * random geometries (tails, strides, dilations, paddings) in float32 and
 * float64, at every SIMD level this CPU has, with 1, 2 and 3 threads:
 *   - the 1-thread result is compared with a naive reference written plainly
 *     here, in double precision, within a rounding bound (the terms' absolute
 *     sum times the chain length times the type's epsilon);
 *   - the 2- and 3-thread results must have the same bits as the 1-thread one.
 *
 * Built with the extension's own flags by csrc/Makefile (`make -C csrc check`,
 * natively or cross-compiled and run under qemu). Usage:
 *   harness [cases]     random geometries per (kernel, level, dtype); default 40,
 *                       or the environment variable CNNFAST_CHECK_CASES
 * Exit status 0 when every check passed. Seeded: the same cases every run. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../conv2d.h"
#include "../cpu_features.h"
#include "../dispatch.h"
#include "../geometry.h"
#include "../pool2d.h"
#include "../runtime.h"

#define NTHREADS_MAX 3

static long checks, failures;
static const char *ctx_kernel = "";
static int ctx_level, ctx_case;
static cf_dtype ctx_dt;

/* ------------------------------------------------------------------------ */
/* Random numbers (SplitMix64) and typed buffers.                           */

static uint64_t rng_state = 0x1234567887654321ull;

static uint64_t rng_u64(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int64_t rng_int(int64_t lo, int64_t hi) /* inclusive */
{
    return lo + (int64_t)(rng_u64() % (uint64_t)(hi - lo + 1));
}

static double rng_unit(void) { return (double)(rng_u64() >> 11) / 9007199254740992.0 * 2.0 - 1.0; }

static size_t esize(cf_dtype dt) { return dt == CF_FLOAT32 ? sizeof(float) : sizeof(double); }

static void *xalloc(size_t bytes)
{
    /* slack after every buffer: a tile may read (never use) past its end */
    void *p = calloc(bytes + 256, 1);
    if (p == NULL) {
        fprintf(stderr, "harness: out of memory\n");
        exit(2);
    }
    return p;
}

static void *buf_new(cf_dtype dt, int64_t n) { return xalloc((size_t)(n > 0 ? n : 1) * esize(dt)); }

static double get(cf_dtype dt, const void *p, int64_t i)
{
    return dt == CF_FLOAT32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

static void set(cf_dtype dt, void *p, int64_t i, double v)
{
    if (dt == CF_FLOAT32)
        ((float *)p)[i] = (float)v;
    else
        ((double *)p)[i] = v;
}

static void *buf_random(cf_dtype dt, int64_t n)
{
    void *p = buf_new(dt, n);
    for (int64_t i = 0; i < n; i++)
        set(dt, p, i, rng_unit());
    return p;
}

static void *buf_copy(cf_dtype dt, const void *src, int64_t n)
{
    void *p = buf_new(dt, n);
    memcpy(p, src, (size_t)n * esize(dt));
    return p;
}

static double eps_of(cf_dtype dt) { return dt == CF_FLOAT32 ? 5.96e-8 : 1.11e-16; }

/* ------------------------------------------------------------------------ */
/* Checks.                                                                  */

static void fail_header(void)
{
    fprintf(stderr, "FAIL %s level=%s dtype=%s case=%d: ", ctx_kernel, cf_simd_name(ctx_level),
            ctx_dt == CF_FLOAT32 ? "float32" : "float64", ctx_case);
}

/* |got - ref| <= (2 * terms + 4) * eps * abssum for every element */
static void check_close(const char *what, cf_dtype dt, const void *got, const double *ref,
                        const double *abssum, int64_t n, double terms)
{
    checks++;
    const double e = eps_of(dt);
    for (int64_t i = 0; i < n; i++) {
        const double g = get(dt, got, i);
        const double bound = (2.0 * terms + 4.0) * e * abssum[i] + 1e-300;
        if (!(fabs(g - ref[i]) <= bound)) {
            failures++;
            fail_header();
            fprintf(stderr, "%s[%lld] = %.17g, reference %.17g (bound %.3g)\n", what,
                    (long long)i, g, ref[i], bound);
            return;
        }
    }
}

static void check_bits(const char *what, const void *a, const void *b, size_t bytes, int nt)
{
    checks++;
    if (memcmp(a, b, bytes) != 0) {
        failures++;
        fail_header();
        fprintf(stderr, "%s differs between 1 and %d threads\n", what, nt);
    }
}

static void check_i32(const char *what, const int32_t *got, const int32_t *want, int64_t n)
{
    checks++;
    for (int64_t i = 0; i < n; i++)
        if (got[i] != want[i]) {
            failures++;
            fail_header();
            fprintf(stderr, "%s[%lld] = %d, expected %d\n", what, (long long)i, got[i], want[i]);
            return;
        }
}

/* ------------------------------------------------------------------------ */
/* Geometry.                                                                */

static int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t d, int64_t p0, int64_t p1)
{
    const int64_t span = d * (k - 1) + 1;
    return in + p0 + p1 < span ? 0 : (in + p0 + p1 - span) / s + 1;
}

static int64_t pick(const int64_t *v, int n) { return v[rng_int(0, n - 1)]; }

/* A random convolution: mostly small, sometimes the bench's shapes (channel
 * counts that fill the vectors, 48-64 filters for the wide tiles, 4+ images
 * for the direct kernel gradient), sometimes strides above 4 (col2im). */
static cf_conv2d_shape random_conv(int big)
{
    static const int64_t chans[] = {1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 32, 33};
    static const int64_t filt[] = {1, 2, 3, 4, 5, 8, 12, 15, 16, 17, 24, 32, 33, 48, 64, 65};
    for (;;) {
        cf_conv2d_shape s;
        s.n = big ? rng_int(4, 6) : rng_int(1, 5);
        s.h = big ? rng_int(10, 16) : rng_int(1, 11);
        s.w = big ? rng_int(10, 16) : rng_int(1, 11);
        s.c = big ? pick((const int64_t[]){1, 16, 32, 33}, 4) : pick(chans, 13);
        s.f = big ? pick((const int64_t[]){16, 32, 48, 64}, 4) : pick(filt, 16);
        s.kh = rng_int(1, big ? 3 : 5);
        s.kw = rng_int(1, big ? 3 : 5);
        const int wide_stride = !big && rng_int(0, 7) == 0;
        s.sh = big ? rng_int(1, 2) : rng_int(1, wide_stride ? 5 : 3);
        s.sw = big ? rng_int(1, 2) : rng_int(1, wide_stride ? 5 : 3);
        s.dh = big || rng_int(0, 2) ? 1 : 2;
        s.dw = big || rng_int(0, 2) ? 1 : 2;
        s.pt = rng_int(0, s.kh - 1);
        s.pl = rng_int(0, s.kw - 1);
        s.oh = out_size(s.h, s.kh, s.sh, s.dh, s.pt, rng_int(0, s.kh - 1));
        s.ow = out_size(s.w, s.kw, s.sw, s.dw, s.pl, rng_int(0, s.kw - 1));
        /* the direct path: the elementwise bound below is the direct sum's
         * (Winograd's error follows its transformed terms instead; it is
         * tested from Python, tests/test_winograd.py) */
        s.winograd = 0;
        if (s.oh >= 1 && s.ow >= 1 && cf_conv2d_shape_error(&s) == NULL)
            return s;
    }
}

static cf_pool2d_shape random_pool(void)
{
    static const int64_t chans[] = {1, 3, 4, 7, 8, 9, 16, 17, 32, 33, 64};
    for (;;) {
        cf_pool2d_shape p;
        p.n = rng_int(1, 4);
        p.h = rng_int(1, 12);
        p.w = rng_int(1, 12);
        p.c = pick(chans, 11);
        p.kh = rng_int(1, 3);
        p.kw = rng_int(1, 3);
        p.sh = rng_int(1, 3);
        p.sw = rng_int(1, 3);
        p.pt = rng_int(0, p.kh - 1);
        p.pl = rng_int(0, p.kw - 1);
        p.oh = out_size(p.h, p.kh, p.sh, 1, p.pt, rng_int(0, p.kh - 1));
        p.ow = out_size(p.w, p.kw, p.sw, 1, p.pl, rng_int(0, p.kw - 1));
        if (p.oh >= 1 && p.ow >= 1 && cf_pool2d_shape_error(&p, CF_POOL_MAX) == NULL &&
            cf_pool2d_shape_error(&p, CF_POOL_AVG) == NULL)
            return p;
    }
}

/* ------------------------------------------------------------------------ */
/* Naive references, in double.                                             */

#define X4(g, i0, i1, i2, i3) ((((i0) * (g).h + (i1)) * (g).w + (i2)) * (g).c + (i3))
#define Y4(g, i0, i1, i2, i3) ((((i0) * (g).oh + (i1)) * (g).ow + (i2)) * (g).f + (i3))
#define K4(g, i0, i1, i2, i3) ((((i0) * (g).kw + (i1)) * (g).c + (i2)) * (g).f + (i3))

static void ref_conv_forward(const cf_conv2d_shape *s, cf_dtype dt, const void *x, const void *k,
                             const void *bias, int relu, double *y, double *abssum)
{
    for (int64_t n = 0; n < s->n; n++)
        for (int64_t oy = 0; oy < s->oh; oy++)
            for (int64_t ox = 0; ox < s->ow; ox++)
                for (int64_t f = 0; f < s->f; f++) {
                    double acc = bias ? get(dt, bias, f) : 0.0;
                    double mag = fabs(acc);
                    for (int64_t ky = 0; ky < s->kh; ky++)
                        for (int64_t kx = 0; kx < s->kw; kx++) {
                            const int64_t iy = oy * s->sh - s->pt + ky * s->dh;
                            const int64_t ix = ox * s->sw - s->pl + kx * s->dw;
                            if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w)
                                continue;
                            for (int64_t c = 0; c < s->c; c++) {
                                const double t = get(dt, x, X4(*s, n, iy, ix, c)) *
                                                 get(dt, k, K4(*s, ky, kx, c, f));
                                acc += t;
                                mag += fabs(t);
                            }
                        }
                    const int64_t o = Y4(*s, n, oy, ox, f);
                    y[o] = relu && acc < 0 ? 0.0 : acc;
                    abssum[o] = mag;
                }
}

static void ref_conv_input_grad(const cf_conv2d_shape *s, cf_dtype dt, const void *dy,
                                const void *k, double *dx, double *abssum)
{
    const int64_t nx = s->n * s->h * s->w * s->c;
    memset(dx, 0, (size_t)nx * sizeof(double));
    memset(abssum, 0, (size_t)nx * sizeof(double));
    for (int64_t n = 0; n < s->n; n++)
        for (int64_t oy = 0; oy < s->oh; oy++)
            for (int64_t ox = 0; ox < s->ow; ox++)
                for (int64_t ky = 0; ky < s->kh; ky++)
                    for (int64_t kx = 0; kx < s->kw; kx++) {
                        const int64_t iy = oy * s->sh - s->pt + ky * s->dh;
                        const int64_t ix = ox * s->sw - s->pl + kx * s->dw;
                        if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w)
                            continue;
                        for (int64_t c = 0; c < s->c; c++)
                            for (int64_t f = 0; f < s->f; f++) {
                                const double t = get(dt, dy, Y4(*s, n, oy, ox, f)) *
                                                 get(dt, k, K4(*s, ky, kx, c, f));
                                dx[X4(*s, n, iy, ix, c)] += t;
                                abssum[X4(*s, n, iy, ix, c)] += fabs(t);
                            }
                    }
}

static void ref_conv_kernel_grad(const cf_conv2d_shape *s, cf_dtype dt, const void *x,
                                 const void *dy, double *dk, double *dkabs, double *db,
                                 double *dbabs)
{
    const int64_t nk = s->kh * s->kw * s->c * s->f;
    memset(dk, 0, (size_t)nk * sizeof(double));
    memset(dkabs, 0, (size_t)nk * sizeof(double));
    memset(db, 0, (size_t)s->f * sizeof(double));
    memset(dbabs, 0, (size_t)s->f * sizeof(double));
    for (int64_t n = 0; n < s->n; n++)
        for (int64_t oy = 0; oy < s->oh; oy++)
            for (int64_t ox = 0; ox < s->ow; ox++) {
                for (int64_t f = 0; f < s->f; f++) {
                    const double g = get(dt, dy, Y4(*s, n, oy, ox, f));
                    db[f] += g;
                    dbabs[f] += fabs(g);
                }
                for (int64_t ky = 0; ky < s->kh; ky++)
                    for (int64_t kx = 0; kx < s->kw; kx++) {
                        const int64_t iy = oy * s->sh - s->pt + ky * s->dh;
                        const int64_t ix = ox * s->sw - s->pl + kx * s->dw;
                        if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w)
                            continue;
                        for (int64_t c = 0; c < s->c; c++)
                            for (int64_t f = 0; f < s->f; f++) {
                                const double t = get(dt, x, X4(*s, n, iy, ix, c)) *
                                                 get(dt, dy, Y4(*s, n, oy, ox, f));
                                dk[K4(*s, ky, kx, c, f)] += t;
                                dkabs[K4(*s, ky, kx, c, f)] += fabs(t);
                            }
                    }
            }
}

#define P_IN(g, i0, i1, i2, i3) ((((i0) * (g).h + (i1)) * (g).w + (i2)) * (g).c + (i3))
#define P_OUT(g, i0, i1, i2, i3) ((((i0) * (g).oh + (i1)) * (g).ow + (i2)) * (g).c + (i3))

/* Pooling of a double array: y, the winner's flat index (max/min), and the
 * sum of |cells| (avg's rounding bound). */
static void ref_pool_forward(const cf_pool2d_shape *p, int mode, const double *x, double *y,
                             int32_t *argmax, double *abssum)
{
    for (int64_t n = 0; n < p->n; n++)
        for (int64_t oy = 0; oy < p->oh; oy++)
            for (int64_t ox = 0; ox < p->ow; ox++)
                for (int64_t c = 0; c < p->c; c++) {
                    double best = 0.0, sum = 0.0, mag = 0.0;
                    int64_t win = -1, count = 0;
                    for (int64_t ky = 0; ky < p->kh; ky++)
                        for (int64_t kx = 0; kx < p->kw; kx++) {
                            const int64_t iy = oy * p->sh - p->pt + ky;
                            const int64_t ix = ox * p->sw - p->pl + kx;
                            if (iy < 0 || iy >= p->h || ix < 0 || ix >= p->w)
                                continue;
                            const double v = x[P_IN(*p, n, iy, ix, c)];
                            sum += v;
                            mag += fabs(v);
                            count++;
                            if (win < 0 || (mode == CF_POOL_MAX && v > best) ||
                                (mode == CF_POOL_MIN && v < best)) {
                                best = v;
                                win = iy * p->w + ix;
                            }
                        }
                    const int64_t o = P_OUT(*p, n, oy, ox, c);
                    y[o] = mode == CF_POOL_AVG ? sum / (double)count : best;
                    abssum[o] = mode == CF_POOL_AVG ? mag / (double)count : fabs(best);
                    argmax[o] = (int32_t)win;
                }
}

/* dx from dy (double); max/min route each gradient to argmax's cell */
static void ref_pool_backward(const cf_pool2d_shape *p, int mode, const double *dy,
                              const int32_t *argmax, double *dx, double *abssum)
{
    const int64_t nx = p->n * p->h * p->w * p->c;
    memset(dx, 0, (size_t)nx * sizeof(double));
    memset(abssum, 0, (size_t)nx * sizeof(double));
    for (int64_t n = 0; n < p->n; n++)
        for (int64_t oy = 0; oy < p->oh; oy++)
            for (int64_t ox = 0; ox < p->ow; ox++)
                for (int64_t c = 0; c < p->c; c++) {
                    const int64_t o = P_OUT(*p, n, oy, ox, c);
                    if (mode != CF_POOL_AVG) {
                        if (argmax[o] < 0)
                            continue;
                        const int64_t iy = argmax[o] / p->w, ix = argmax[o] % p->w;
                        dx[P_IN(*p, n, iy, ix, c)] += dy[o];
                        abssum[P_IN(*p, n, iy, ix, c)] += fabs(dy[o]);
                        continue;
                    }
                    int64_t count = 0;
                    for (int pass = 0; pass < 2; pass++)
                        for (int64_t ky = 0; ky < p->kh; ky++)
                            for (int64_t kx = 0; kx < p->kw; kx++) {
                                const int64_t iy = oy * p->sh - p->pt + ky;
                                const int64_t ix = ox * p->sw - p->pl + kx;
                                if (iy < 0 || iy >= p->h || ix < 0 || ix >= p->w)
                                    continue;
                                if (pass == 0) {
                                    count++;
                                } else {
                                    dx[P_IN(*p, n, iy, ix, c)] += dy[o] / (double)count;
                                    abssum[P_IN(*p, n, iy, ix, c)] += fabs(dy[o]) / (double)count;
                                }
                            }
                }
}

/* ------------------------------------------------------------------------ */
/* Running a kernel at 1..NTHREADS_MAX threads.                             */

static void call_begin(cf_call_state *cs) { cf_call_begin(cs); }
static void call_end(cf_call_state *cs) { cf_call_end(cs); }

static double *dbuf(int64_t n) { return (double *)xalloc((size_t)(n > 0 ? n : 1) * sizeof(double)); }

static double *to_double(cf_dtype dt, const void *p, int64_t n)
{
    double *d = dbuf(n);
    for (int64_t i = 0; i < n; i++)
        d[i] = get(dt, p, i);
    return d;
}

static void test_conv(cf_dtype dt, int big)
{
    const cf_conv2d_shape s = random_conv(big);
    const int64_t nx = s.n * s.h * s.w * s.c, ny = s.n * s.oh * s.ow * s.f;
    const int64_t nk = s.kh * s.kw * s.c * s.f;
    const size_t es = esize(dt);
    void *x = buf_random(dt, nx), *k = buf_random(dt, nk), *bias = buf_random(dt, s.f);
    void *dy = buf_random(dt, ny);
    const int relu = (int)rng_int(0, 1), with_bias = (int)rng_int(0, 1);
    double *ref = dbuf(nx > ny ? (nx > nk ? nx : nk) : (ny > nk ? ny : nk));
    double *mag = dbuf(nx > ny ? (nx > nk ? nx : nk) : (ny > nk ? ny : nk));
    double *dbref = dbuf(s.f), *dbmag = dbuf(s.f);
    void *out[NTHREADS_MAX], *out2[NTHREADS_MAX];
    cf_call_state cs;

    ctx_kernel = "conv2d_forward";
    for (int t = 0; t < NTHREADS_MAX; t++) {
        out[t] = buf_new(dt, ny);
        call_begin(&cs);
        if (cf_conv2d_forward_by_dtype(dt, &s, x, k, with_bias ? bias : NULL, relu, out[t], t + 1))
            fprintf(stderr, "harness: conv forward out of memory\n"), exit(2);
        call_end(&cs);
        if (t)
            check_bits("y", out[0], out[t], (size_t)ny * es, t + 1);
    }
    ref_conv_forward(&s, dt, x, k, with_bias ? bias : NULL, relu, ref, mag);
    check_close("y", dt, out[0], ref, mag, ny, (double)(s.kh * s.kw * s.c + 1));
    for (int t = 0; t < NTHREADS_MAX; t++)
        free(out[t]);

    ctx_kernel = "conv2d_backward_input";
    for (int t = 0; t < NTHREADS_MAX; t++) {
        out[t] = buf_new(dt, nx);
        call_begin(&cs);
        if (cf_conv2d_backward_input_by_dtype(dt, &s, dy, k, out[t], t + 1))
            fprintf(stderr, "harness: conv input grad out of memory\n"), exit(2);
        call_end(&cs);
        if (t)
            check_bits("dx", out[0], out[t], (size_t)nx * es, t + 1);
    }
    ref_conv_input_grad(&s, dt, dy, k, ref, mag);
    check_close("dx", dt, out[0], ref, mag, nx, (double)(s.kh * s.kw * s.f));
    for (int t = 0; t < NTHREADS_MAX; t++)
        free(out[t]);

    ctx_kernel = "conv2d_backward_kernel";
    for (int t = 0; t < NTHREADS_MAX; t++) {
        out[t] = buf_new(dt, nk);
        out2[t] = buf_new(dt, s.f);
        call_begin(&cs);
        if (cf_conv2d_backward_kernel_by_dtype(dt, &s, x, dy, out[t], out2[t], t + 1))
            fprintf(stderr, "harness: conv kernel grad out of memory\n"), exit(2);
        call_end(&cs);
        if (t) {
            check_bits("dkernel", out[0], out[t], (size_t)nk * es, t + 1);
            check_bits("dbias", out2[0], out2[t], (size_t)s.f * es, t + 1);
        }
    }
    ref_conv_kernel_grad(&s, dt, x, dy, ref, mag, dbref, dbmag);
    check_close("dkernel", dt, out[0], ref, mag, nk, (double)(s.n * s.oh * s.ow));
    check_close("dbias", dt, out2[0], dbref, dbmag, s.f, (double)(s.n * s.oh * s.ow));
    for (int t = 0; t < NTHREADS_MAX; t++) {
        free(out[t]);
        free(out2[t]);
    }
    free(x), free(k), free(bias), free(dy), free(ref), free(mag), free(dbref), free(dbmag);
}

/* Fused convolution + max/min pooling against the naive convolution, ReLU
 * and pooling; the forward also against the unfused kernels (same bits). */
static void test_conv_pool(cf_dtype dt)
{
    cf_conv2d_shape s;
    cf_pool2d_shape p;
    for (;;) {
        s = random_conv(rng_int(0, 2) == 0);
        p.n = s.n, p.h = s.oh, p.w = s.ow, p.c = s.f;
        p.kh = rng_int(1, 3), p.kw = rng_int(1, 3);
        p.sh = p.kh + rng_int(0, 1), p.sw = p.kw + rng_int(0, 1);
        p.pt = p.pl = 0;
        p.oh = s.oh < p.kh ? 0 : (s.oh - p.kh) / p.sh + 1;
        p.ow = s.ow < p.kw ? 0 : (s.ow - p.kw) / p.sw + 1;
        if (p.oh >= 1 && p.ow >= 1 && cf_conv_pool_shape_error(&s, &p, CF_POOL_MAX) == NULL)
            break;
    }
    const int mode = rng_int(0, 3) ? CF_POOL_MAX : CF_POOL_MIN;
    const int relu = (int)rng_int(0, 1), mark_dead = relu && rng_int(0, 1);
    const int64_t nx = s.n * s.h * s.w * s.c, ny = s.n * s.oh * s.ow * s.f;
    const int64_t nk = s.kh * s.kw * s.c * s.f, np = p.n * p.oh * p.ow * p.c;
    const size_t es = esize(dt);
    void *x = buf_random(dt, nx), *k = buf_random(dt, nk), *bias = buf_random(dt, s.f);
    void *dyp = buf_random(dt, np);
    double *yconv = dbuf(ny), *yconv_mag = dbuf(ny), *ypool = dbuf(np), *ypool_mag = dbuf(np);
    int32_t *ref_arg = (int32_t *)xalloc((size_t)np * sizeof(int32_t));
    void *yp[NTHREADS_MAX];
    int32_t *arg[NTHREADS_MAX];
    cf_call_state cs;

    ctx_kernel = mode == CF_POOL_MAX ? "conv2d_pool_forward(max)" : "conv2d_pool_forward(min)";
    for (int t = 0; t < NTHREADS_MAX; t++) {
        yp[t] = buf_new(dt, np);
        arg[t] = (int32_t *)xalloc((size_t)np * sizeof(int32_t));
        call_begin(&cs);
        if (cf_conv2d_pool_forward_by_dtype(dt, &s, &p, mode, x, k, bias, relu, yp[t], arg[t],
                                            mark_dead, t + 1))
            fprintf(stderr, "harness: conv+pool out of memory\n"), exit(2);
        call_end(&cs);
        if (t) {
            check_bits("y", yp[0], yp[t], (size_t)np * es, t + 1);
            check_bits("argmax", arg[0], arg[t], (size_t)np * sizeof(int32_t), t + 1);
        }
    }
    {   /* the unfused pair gives the same bits */
        void *yc = buf_new(dt, ny), *yu = buf_new(dt, np);
        int32_t *au = (int32_t *)xalloc((size_t)np * sizeof(int32_t));
        call_begin(&cs);
        cf_conv2d_forward_by_dtype(dt, &s, x, k, bias, relu, yc, 2);
        cf_pool2d_forward_by_dtype(dt, &p, mode, yc, yu, au, 2);
        call_end(&cs);
        check_bits("y vs unfused", yp[0], yu, (size_t)np * es, 2);
        if (mark_dead)
            for (int64_t i = 0; i < np; i++)
                if (!(get(dt, yu, i) > 0))
                    au[i] = -1;
        check_i32("argmax vs unfused", arg[0], au, np);
        free(yc), free(yu), free(au);
    }
    ref_conv_forward(&s, dt, x, k, bias, relu, yconv, yconv_mag);
    ref_pool_forward(&p, mode, yconv, ypool, ref_arg, ypool_mag);
    /* the bound of the winning convolution output (near-ties may pick another
     * cell within rounding: compare values, not indices) */
    for (int64_t i = 0; i < np; i++) {
        const int64_t n = i / (p.oh * p.ow * p.c), f = i % p.c;
        double m = 0.0;
        for (int64_t ky = 0; ky < p.kh; ky++)
            for (int64_t kx = 0; kx < p.kw; kx++) {
                const int64_t oy = (i / (p.ow * p.c)) % p.oh * p.sh + ky;
                const int64_t ox = (i / p.c) % p.ow * p.sw + kx;
                const double v = yconv_mag[Y4(s, n, oy, ox, f)];
                m = v > m ? v : m;
            }
        ypool_mag[i] = m;
    }
    check_close("y", dt, yp[0], ypool, ypool_mag, np, (double)(s.kh * s.kw * s.c + 1));

    /* backward from the fused forward's argmax (and its output as ymask) */
    ctx_kernel = mode == CF_POOL_MAX ? "conv2d_pool_backward(max)" : "conv2d_pool_backward(min)";
    const void *ymask = relu && !mark_dead ? yp[0] : NULL;
    void *dx[NTHREADS_MAX], *dk[NTHREADS_MAX], *db[NTHREADS_MAX];
    for (int t = 0; t < NTHREADS_MAX; t++) {
        dx[t] = buf_new(dt, nx), dk[t] = buf_new(dt, nk), db[t] = buf_new(dt, s.f);
        call_begin(&cs);
        if (cf_conv2d_pool_backward_by_dtype(dt, &s, &p, mode, x, dyp, ymask, arg[0], k, dx[t],
                                             dk[t], db[t], t + 1))
            fprintf(stderr, "harness: conv+pool backward out of memory\n"), exit(2);
        call_end(&cs);
        if (t) {
            check_bits("dx", dx[0], dx[t], (size_t)nx * es, t + 1);
            check_bits("dkernel", dk[0], dk[t], (size_t)nk * es, t + 1);
            check_bits("dbias", db[0], db[t], (size_t)s.f * es, t + 1);
        }
    }
    double *dyp_d = to_double(dt, dyp, np), *dyfull = dbuf(ny), *dymag = dbuf(ny);
    if (ymask)
        for (int64_t i = 0; i < np; i++)
            if (!(get(dt, ymask, i) > 0))
                dyp_d[i] = 0.0;
    ref_pool_backward(&p, mode, dyp_d, arg[0], dyfull, dymag);
    /* the references of the two gradients take dy in the kernel's type (exact:
     * each dy element is one dyp value or zero) */
    void *dyt = buf_new(dt, ny);
    for (int64_t i = 0; i < ny; i++)
        set(dt, dyt, i, dyfull[i]);
    double *ref = dbuf(nx > nk ? nx : nk), *mag = dbuf(nx > nk ? nx : nk);
    double *dbref = dbuf(s.f), *dbmag = dbuf(s.f);
    ref_conv_input_grad(&s, dt, dyt, k, ref, mag);
    check_close("dx", dt, dx[0], ref, mag, nx, (double)(s.kh * s.kw * s.f));
    ref_conv_kernel_grad(&s, dt, x, dyt, ref, mag, dbref, dbmag);
    check_close("dkernel", dt, dk[0], ref, mag, nk, (double)(s.n * s.oh * s.ow));
    check_close("dbias", dt, db[0], dbref, dbmag, s.f, (double)(s.n * s.oh * s.ow));
    for (int t = 0; t < NTHREADS_MAX; t++)
        free(yp[t]), free(arg[t]), free(dx[t]), free(dk[t]), free(db[t]);
    free(x), free(k), free(bias), free(dyp), free(yconv), free(yconv_mag), free(ypool);
    free(ypool_mag), free(ref_arg), free(dyp_d), free(dyfull), free(dymag), free(dyt);
    free(ref), free(mag), free(dbref), free(dbmag);
}

static void test_pool(cf_dtype dt, int mode)
{
    static const char *names[] = {"pool2d(max)", "pool2d(avg)", "pool2d(min)"};
    const cf_pool2d_shape p = random_pool();
    const int64_t nx = p.n * p.h * p.w * p.c, ny = p.n * p.oh * p.ow * p.c;
    const size_t es = esize(dt);
    void *x = buf_random(dt, nx), *dy = buf_random(dt, ny);
    double *xd = to_double(dt, x, nx), *ref = dbuf(nx > ny ? nx : ny), *mag = dbuf(nx > ny ? nx : ny);
    int32_t *ref_arg = (int32_t *)xalloc((size_t)ny * sizeof(int32_t));
    void *y[NTHREADS_MAX], *dx[NTHREADS_MAX];
    int32_t *arg[NTHREADS_MAX];
    cf_call_state cs;

    ctx_kernel = names[mode];
    for (int t = 0; t < NTHREADS_MAX; t++) {
        y[t] = buf_new(dt, ny);
        arg[t] = (int32_t *)xalloc((size_t)ny * sizeof(int32_t));
        call_begin(&cs);
        cf_pool2d_forward_by_dtype(dt, &p, mode, x, y[t], mode == CF_POOL_AVG ? NULL : arg[t], t + 1);
        call_end(&cs);
        if (t) {
            check_bits("y", y[0], y[t], (size_t)ny * es, t + 1);
            check_bits("argmax", arg[0], arg[t], (size_t)ny * sizeof(int32_t), t + 1);
        }
    }
    ref_pool_forward(&p, mode, xd, ref, ref_arg, mag);
    check_close("y", dt, y[0], ref, mag, ny, 4.0);
    if (mode != CF_POOL_AVG)  /* distinct random values: no ties */
        check_i32("argmax", arg[0], ref_arg, ny);

    /* The SIMD rows reproduce the scalar rows bit for bit (pool2d_impl.h),
     * NaNs included (the first NaN wins, NaN sums give the default NaN):
     * the same x with NaNs and ties sprinkled in, at this level and scalar. */
    if (ctx_level != CF_SIMD_SCALAR) {
        void *xn = buf_copy(dt, x, nx);
        for (int64_t i = 0; i < nx; i++) {
            const int64_t r = rng_int(0, 9);
            if (r == 0)
                set(dt, xn, i, NAN);
            else if (r == 1)
                set(dt, xn, i, 0.5);
        }
        void *dyn = buf_copy(dt, dy, ny);
        for (int64_t i = 0; i < ny; i++)
            if (rng_int(0, 9) == 0)
                set(dt, dyn, i, NAN);
        void *ys = buf_new(dt, ny), *yl = buf_new(dt, ny), *dxs = buf_new(dt, nx);
        void *dxl = buf_new(dt, nx);
        int32_t *as = (int32_t *)xalloc((size_t)ny * sizeof(int32_t));
        int32_t *al = (int32_t *)xalloc((size_t)ny * sizeof(int32_t));
        int32_t *amax = mode == CF_POOL_AVG ? NULL : as;
        call_begin(&cs);
        cf_pool2d_forward_by_dtype(dt, &p, mode, xn, yl, mode == CF_POOL_AVG ? NULL : al, 2);
        cf_pool2d_backward_by_dtype(dt, &p, mode, dyn, xn, NULL, dxl, 0, 2);
        cf_simd_set_cap(CF_SIMD_SCALAR);
        cf_pool2d_forward_by_dtype(dt, &p, mode, xn, ys, amax, 2);
        cf_pool2d_backward_by_dtype(dt, &p, mode, dyn, xn, NULL, dxs, 0, 2);
        cf_simd_set_cap(ctx_level);
        call_end(&cs);
        check_bits("y with NaNs vs scalar", ys, yl, (size_t)ny * es, 2);
        if (amax)
            check_i32("argmax with NaNs vs scalar", al, as, ny);
        check_bits("dx with NaNs vs scalar", dxs, dxl, (size_t)nx * es, 2);
        free(xn), free(dyn), free(ys), free(yl), free(dxs), free(dxl), free(as), free(al);
    }
    /* Without NaNs the 2x2 / stride-2 rows without indices take max/min
     * selects: a 2x2 pooling of values with ties of -0 and +0 sprinkled in, no
     * indices, at this level and scalar (the first of equal values wins in
     * both). */
    if (ctx_level != CF_SIMD_SCALAR && mode != CF_POOL_AVG) {
        static const int64_t chans[] = {4, 8, 13, 16, 19, 32, 35, 64};
        cf_pool2d_shape q = {0};
        q.n = rng_int(1, 3);
        q.h = rng_int(2, 12);
        q.w = rng_int(2, 12);
        q.c = pick(chans, 8);
        q.kh = q.kw = q.sh = q.sw = 2;
        q.oh = q.h / 2;
        q.ow = q.w / 2;
        const int64_t nq = q.n * q.h * q.w * q.c, nyq = q.n * q.oh * q.ow * q.c;
        void *xz = buf_random(dt, nq);
        for (int64_t i = 0; i < nq; i++) {
            const int64_t r = rng_int(0, 3);
            if (r == 0)
                set(dt, xz, i, -0.0);
            else if (r == 1)
                set(dt, xz, i, 0.0);
        }
        void *yzl = buf_new(dt, nyq), *yzs = buf_new(dt, nyq);
        call_begin(&cs);
        cf_pool2d_forward_by_dtype(dt, &q, mode, xz, yzl, NULL, 2);
        cf_simd_set_cap(CF_SIMD_SCALAR);
        cf_pool2d_forward_by_dtype(dt, &q, mode, xz, yzs, NULL, 2);
        cf_simd_set_cap(ctx_level);
        call_end(&cs);
        check_bits("2x2 y of signed zeros, no indices, vs scalar", yzs, yzl, (size_t)nyq * es, 2);
        free(xz), free(yzl), free(yzs);
    }

    /* backward twice for max/min: from argmax, and finding the winners in x */
    double *dyd = to_double(dt, dy, ny);
    for (int from_x = 0; from_x < (mode == CF_POOL_AVG ? 1 : 2); from_x++) {
        for (int t = 0; t < NTHREADS_MAX; t++) {
            dx[t] = buf_new(dt, nx);
            call_begin(&cs);
            cf_pool2d_backward_by_dtype(dt, &p, mode, dy, x, from_x ? NULL : arg[0], dx[t], 0, t + 1);
            call_end(&cs);
            if (t)
                check_bits("dx", dx[0], dx[t], (size_t)nx * es, t + 1);
        }
        ref_pool_backward(&p, mode, dyd, ref_arg, ref, mag);
        check_close(from_x ? "dx (winners from x)" : "dx", dt, dx[0], ref, mag, nx,
                    (double)(p.kh * p.kw + 2));
        for (int t = 0; t < NTHREADS_MAX; t++)
            free(dx[t]);
    }
    for (int t = 0; t < NTHREADS_MAX; t++)
        free(y[t]), free(arg[t]);
    free(x), free(dy), free(xd), free(ref), free(mag), free(ref_arg), free(dyd);
}

static void test_gemm(cf_dtype dt)
{
    const int big = rng_int(0, 3) == 0;
    /* a quarter of the small products have 1-4 rows (the few-rows kernel) */
    const int64_t m = big ? rng_int(60, 200) : rng_int(0, 3) == 0 ? rng_int(1, 4) : rng_int(1, 40);
    const int64_t n = big ? pick((const int64_t[]){47, 64, 100, 130}, 4) : rng_int(1, 70);
    const int64_t k = big ? rng_int(380, 900) : rng_int(1, 60);
    const int a_t = (int)rng_int(0, 1), b_t = (int)rng_int(0, 1);
    const int accumulate = (int)rng_int(0, 1), with_bias = (int)rng_int(0, 1);
    const int relu = (int)rng_int(0, 1);
    /* A is m x k, row-major or a transposed view; B is k x n likewise */
    const int64_t a_is = a_t ? 1 : k, a_ks = a_t ? m : 1;
    const int64_t b_ks = b_t ? 1 : n, b_js = b_t ? k : 1;
    const size_t es = esize(dt);
    void *a = buf_random(dt, m * k), *b = buf_random(dt, k * n), *bias = buf_random(dt, n);
    void *c0 = buf_random(dt, m * n), *c[NTHREADS_MAX];
    double *ref = dbuf(m * n), *mag = dbuf(m * n);
    cf_call_state cs;

    ctx_kernel = "gemm";
    for (int t = 0; t < NTHREADS_MAX; t++) {
        c[t] = buf_copy(dt, c0, m * n);
        call_begin(&cs);
        if (cf_gemm_by_dtype(dt, m, n, k, a, a_is, a_ks, b, b_ks, b_js, c[t], n, accumulate,
                             with_bias ? bias : NULL, relu, t + 1))
            fprintf(stderr, "harness: gemm out of memory\n"), exit(2);
        call_end(&cs);
        if (t)
            check_bits("c", c[0], c[t], (size_t)(m * n) * es, t + 1);
    }
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double acc = accumulate ? get(dt, c0, i * n + j) : 0.0, s = fabs(acc);
            for (int64_t q = 0; q < k; q++) {
                const double t = get(dt, a, i * a_is + q * a_ks) * get(dt, b, q * b_ks + j * b_js);
                acc += t;
                s += fabs(t);
            }
            if (with_bias) {
                acc += get(dt, bias, j);
                s += fabs(get(dt, bias, j));
            }
            ref[i * n + j] = relu && acc < 0 ? 0.0 : acc;
            mag[i * n + j] = s;
        }
    check_close("c", dt, c[0], ref, mag, m * n, (double)(k + 2));
    for (int t = 0; t < NTHREADS_MAX; t++)
        free(c[t]);
    free(a), free(b), free(bias), free(c0), free(ref), free(mag);
}

/* Dropout: SplitMix64 draws, exact; the ReLU mask, exact. Sizes straddle the
 * vectors, the 16,384-element chunks and the parallel threshold. */
static void test_elementwise(cf_dtype dt)
{
    const int64_t n = pick((const int64_t[]){1, 3, 17, 1000, 16385, 70001}, 6);
    const size_t es = esize(dt);
    const uint64_t key = rng_u64();
    const double rate = rng_int(0, 4) * 0.2;
    void *x = buf_random(dt, n), *y[NTHREADS_MAX], *mask[NTHREADS_MAX];
    cf_call_state cs;

    ctx_kernel = "dropout";
    for (int t = 0; t < NTHREADS_MAX; t++) {
        y[t] = buf_new(dt, n), mask[t] = buf_new(dt, n);
        call_begin(&cs);
        cf_dropout_by_dtype(dt, n, key, 0, rate, x, y[t], mask[t], t + 1);
        call_end(&cs);
        if (t) {
            check_bits("y", y[0], y[t], (size_t)n * es, t + 1);
            check_bits("mask", mask[0], mask[t], (size_t)n * es, t + 1);
        }
    }
    {
        const double scale_d = 1.0 / (1.0 - rate);
        const double scale = dt == CF_FLOAT32 ? (double)(float)scale_d : scale_d;
        double *ry = dbuf(n), *rm = dbuf(n), *zero = dbuf(n);
        for (int64_t i = 0; i < n; i++) {
            uint64_t z = key + (uint64_t)(i + 1) * 0x9E3779B97F4A7C15ull;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
            z ^= z >> 31;
            const double u = (double)(z >> 11) / 9007199254740992.0;
            rm[i] = u >= rate ? scale : 0.0;
            ry[i] = get(dt, x, i) * rm[i];
            zero[i] = fabs(ry[i]) * 0.5; /* one rounding of the product */
        }
        check_close("mask", dt, mask[0], rm, zero, n, 0.0);
        check_close("y", dt, y[0], ry, zero, n, 0.0);
        free(ry), free(rm), free(zero);
    }
    for (int t = 0; t < NTHREADS_MAX; t++)
        free(y[t]), free(mask[t]);

    ctx_kernel = "relu_mask";
    void *yv = buf_random(dt, n), *dy0 = buf_random(dt, n);
    for (int t = 0; t < NTHREADS_MAX; t++) {
        y[t] = buf_copy(dt, dy0, n);
        call_begin(&cs);
        cf_relu_mask_by_dtype(dt, n, y[t], yv, t + 1);
        call_end(&cs);
        if (t)
            check_bits("dy", y[0], y[t], (size_t)n * es, t + 1);
    }
    checks++;
    for (int64_t i = 0; i < n; i++) {
        const double want = get(dt, yv, i) > 0 ? get(dt, dy0, i) : 0.0;
        if (get(dt, y[0], i) != want) {
            failures++;
            fail_header();
            fprintf(stderr, "dy[%lld] = %g, expected %g\n", (long long)i, get(dt, y[0], i), want);
            break;
        }
    }
    for (int t = 0; t < NTHREADS_MAX; t++)
        free(y[t]);
    free(x), free(yv), free(dy0);
}

/* Softmax cross-entropy (serial) and Adam (elementwise, threaded). */
static void test_training_step(cf_dtype dt)
{
    const int64_t rows = rng_int(1, 40), k = rng_int(1, 12);
    void *z = buf_random(dt, rows * k), *y = buf_new(dt, rows * k), *g = buf_new(dt, rows * k);
    for (int64_t r = 0; r < rows; r++)
        set(dt, y, r * k + rng_int(0, k - 1), 1.0);
    cf_call_state cs;

    ctx_kernel = "softmax_xent";
    call_begin(&cs);
    const double loss = cf_softmax_xent_by_dtype(dt, rows, k, z, y, NULL, g);
    call_end(&cs);
    double ref_loss = 0.0, *rg = dbuf(rows * k), *mag = dbuf(rows * k), lmag = 0.0;
    for (int64_t r = 0; r < rows; r++) {
        double mx = -INFINITY, s = 0.0;
        for (int64_t j = 0; j < k; j++)
            mx = fmax(mx, get(dt, z, r * k + j));
        for (int64_t j = 0; j < k; j++)
            s += exp(get(dt, z, r * k + j) - mx);
        for (int64_t j = 0; j < k; j++) {
            const double zs = get(dt, z, r * k + j) - mx, p = exp(zs) / s;
            ref_loss -= get(dt, y, r * k + j) * (zs - log(s)) / (double)rows;
            lmag += fabs(get(dt, y, r * k + j) * (zs - log(s))) / (double)rows + 4.0;
            rg[r * k + j] = (p - get(dt, y, r * k + j)) / (double)rows;
            mag[r * k + j] = 8.0 / (double)rows;
        }
    }
    /* exp/log to a few ulps: the bound is the magnitudes times a handful of
     * roundings per term */
    check_close("grad", dt, g, rg, mag, rows * k, 16.0);
    check_close("loss", CF_FLOAT64, &loss, &ref_loss, &lmag,
                1, dt == CF_FLOAT32 ? 16.0 * 5.96e-8 / 1.11e-16 : 16.0);
    free(z), free(y), free(g), free(rg), free(mag);

    ctx_kernel = "adam";
    const int64_t n = pick((const int64_t[]){1, 7, 1000, 70001}, 4);
    const size_t es = esize(dt);
    void *p0 = buf_random(dt, n), *gr = buf_random(dt, n), *m0 = buf_random(dt, n);
    void *v0 = buf_new(dt, n);
    for (int64_t i = 0; i < n; i++)
        set(dt, v0, i, fabs(rng_unit()));
    void *pt[NTHREADS_MAX], *mt[NTHREADS_MAX], *vt[NTHREADS_MAX];
    const double alpha = 1e-3, omb1 = 0.1, omb2 = 0.001, eps = 1e-7;
    for (int t = 0; t < NTHREADS_MAX; t++) {
        pt[t] = buf_copy(dt, p0, n), mt[t] = buf_copy(dt, m0, n), vt[t] = buf_copy(dt, v0, n);
        call_begin(&cs);
        cf_adam_by_dtype(dt, n, pt[t], gr, mt[t], vt[t], alpha, omb1, omb2, eps, t + 1);
        call_end(&cs);
        if (t) {
            check_bits("p", pt[0], pt[t], (size_t)n * es, t + 1);
            check_bits("m", mt[0], mt[t], (size_t)n * es, t + 1);
            check_bits("v", vt[0], vt[t], (size_t)n * es, t + 1);
        }
    }
    double *rp = dbuf(n), *rm = dbuf(n), *rv = dbuf(n), *mp = dbuf(n), *mm = dbuf(n), *mv = dbuf(n);
    for (int64_t i = 0; i < n; i++) {
        const double gi = get(dt, gr, i);
        double mi = get(dt, m0, i), vi = get(dt, v0, i);
        mi += (gi - mi) * omb1;
        vi += (gi * gi - vi) * omb2;
        rm[i] = mi, rv[i] = vi;
        const double step = alpha * mi / (sqrt(vi) + eps);
        rp[i] = get(dt, p0, i) - step;
        mm[i] = fabs(get(dt, m0, i)) + fabs(gi);
        mv[i] = fabs(get(dt, v0, i)) + gi * gi;
        /* the step's relative error grows through v's rounding and sqrt */
        mp[i] = fabs(get(dt, p0, i)) + fabs(step) * 4.0;
    }
    check_close("m", dt, mt[0], rm, mm, n, 4.0);
    check_close("v", dt, vt[0], rv, mv, n, 4.0);
    check_close("p", dt, pt[0], rp, mp, n, 8.0);
    for (int t = 0; t < NTHREADS_MAX; t++)
        free(pt[t]), free(mt[t]), free(vt[t]);
    free(p0), free(gr), free(m0), free(v0), free(rp), free(rm), free(rv), free(mp), free(mm), free(mv);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    int cases = 40;
    const char *env = getenv("CNNFAST_CHECK_CASES");
    if (argc > 1)
        cases = atoi(argv[1]);
    else if (env && *env)
        cases = atoi(env);
    if (cases < 1)
        cases = 1;
    cf_runtime_init();
    const int top = cf_simd_detected();
    printf("cnnfast C harness: SIMD levels scalar..%s, %d cases per kernel, level and dtype, "
           "threads 1-%d\n", cf_simd_name(top), cases, NTHREADS_MAX);
    for (int level = CF_SIMD_SCALAR; level <= top; level++) {
        const double t0 = now();
        const long f0 = failures, c0 = checks;
        if (cf_simd_set_cap(level) != level)
            continue; /* not a level of this platform */
        ctx_level = level;
        for (int d = 0; d < 2; d++) {
            ctx_dt = d ? CF_FLOAT64 : CF_FLOAT32;
            for (ctx_case = 0; ctx_case < cases; ctx_case++) {
                test_conv(ctx_dt, ctx_case % 4 == 3);
                test_conv_pool(ctx_dt);
                for (int mode = 0; mode < 3; mode++)
                    test_pool(ctx_dt, mode);
                test_gemm(ctx_dt);
                if (ctx_case < 4) {
                    test_elementwise(ctx_dt);
                    test_training_step(ctx_dt);
                }
            }
        }
        printf("  %-7s %6ld checks, %ld failed (%.1f s)\n", cf_simd_name(level), checks - c0,
               failures - f0, now() - t0);
    }
    printf("%s: %ld checks, %ld failed\n", failures ? "FAIL" : "OK", checks, failures);
    return failures ? 1 : 0;
}
