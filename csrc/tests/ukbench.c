/* Micro-kernel throughput on cache-resident operands, with no Python: each
 * float32 micro-kernel family of the level in use (GEMM, direct convolution,
 * taps) run back to back on full tiles, against the level's FMA ceiling
 * (calibrate.h) on one thread. What llvm-mca predicts for the kernels' inner
 * loops (benchmarks/kernel_mca.py) is checked against these figures.
 *
 *   make -C csrc ukbench            then   CNNFAST_CPU_FEATURES=avx2 csrc/tests/build-cc/ukbench
 *
 * Prints, per kernel: GFLOP/s and the fraction of the measured ceiling. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../calibrate.h"
#include "../cpu_features.h"
#include "../ukernel.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *fbuf(int64_t n)
{
    float *p = (float *)calloc((size_t)n + 64, sizeof(float));
    if (p == NULL) {
        fprintf(stderr, "ukbench: out of memory\n");
        exit(2);
    }
    for (int64_t i = 0; i < n; i++)
        p[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
    return p;
}

/* The best of RUNS short runs: on a shared machine the quiet slices show
 * what the core does. out = that run's GFLOP/s for `reps` calls. */
#define RUNS 40
#define TIME_GFLOPS(out, flops_per_call, reps, CALL)                             \
    do {                                                                         \
        double best = 0;                                                         \
        for (int run = 0; run < RUNS; run++) {                                    \
            const double t0 = now();                                             \
            for (int64_t r = 0; r < (reps); r++) {                               \
                CALL;                                                            \
            }                                                                    \
            const double g = (flops_per_call) * (double)(reps) / (now() - t0) * 1e-9; \
            best = g > best ? g : best;                                          \
        }                                                                        \
        (out) = best;                                                            \
    } while (0)

int main(void)
{
    const int level = cf_simd_level();
    const cf_ukernel_f32 uk = cf_ukernel_select_f32(level);
    const int MR = uk.mr, NR = uk.nr;

    /* the level's FMA ceiling on one thread */
    double ceiling = 0;
    for (int run = 0; run < RUNS; run++) {
        const int64_t iters = 1000000;
        const double t0 = now();
        const double flops = cf_fma_ceiling(iters, 1);
        const double g = flops / (now() - t0) * 1e-9;
        ceiling = g > ceiling ? g : ceiling;
    }
    printf("level %s, tile %d x %d, FMA ceiling %.1f GFLOP/s (1 thread)\n", cf_simd_name(level),
           MR, NR, ceiling);

    /* GEMM: a packed 384-deep panel of A, a 384 x NR panel of B */
    {
        const int64_t kc = 384;
        float *a = fbuf(kc * MR), *b = fbuf(kc * NR), *c = fbuf((int64_t)MR * NR);
        const double flops = 2.0 * MR * NR * (double)kc;
        double g;
        TIME_GFLOPS(g, flops, 4000,
                                     uk.fn(kc, a, MR, b, NR, c, NR, MR, NR, 0, NULL, 0));
        printf("  gemm    %6.1f GFLOP/s  %5.1f%% of the ceiling\n", g, 100 * g / ceiling);
        free(a), free(b), free(c);
    }
    /* direct convolution: 3 x 3 taps x 64 channels, MR pixels of a padded row */
    {
        const int64_t c = 64, wp = MR + 2;
        int64_t tap_off[9];
        for (int t = 0; t < 9; t++)
            tap_off[t] = ((t / 3) * wp + t % 3) * c;
        float *a = fbuf(3 * wp * c), *b = fbuf(9 * c * NR), *y = fbuf((int64_t)MR * NR);
        const double flops = 2.0 * MR * NR * 9.0 * (double)c;
        double g;
        TIME_GFLOPS(g, flops, 4000,
                                     uk.direct(9, tap_off, c, a, c, b, NR, y, NR, MR, NR, NULL, 0));
        printf("  direct  %6.1f GFLOP/s  %5.1f%% of the ceiling\n", g, 100 * g / ceiling);
        free(a), free(b), free(y);
    }
    /* taps (kernel gradient): MR (tap, channel) rows over 512 pixels */
    {
        const int64_t kc = 512, cin = 16;
        int64_t off[CF_UKERNEL_MAX_MR];
        for (int i = 0; i < MR; i++)
            off[i] = i;
        float *a = fbuf(kc * cin + MR), *b = fbuf(kc * NR), *cc = fbuf((int64_t)MR * NR);
        const double flops = 2.0 * MR * NR * (double)kc;
        double g;
        TIME_GFLOPS(g, flops, 3000,
                                     uk.taps(1, kc, off, a, cin, 0, b, NR, cc, NR, MR, NR, 0));
        printf("  taps    %6.1f GFLOP/s  %5.1f%% of the ceiling\n", g, 100 * g / ceiling);
        free(a), free(b), free(cc);
    }
    /* the wide / pixel tile (direct_wide, or AVX2's direct_px): 3 x 3 taps x 64
     * channels, then the Winograd products' shape, a 32-deep reduction per
     * call over the 9 row tiles of one 54-row plane (F(2x2, 3x3) on a 14 x 14
     * image, 32 channels, 64 filters) */
    {
        cf_ukernel_direct_px_f32_fn px = uk.direct_wide != NULL ? uk.direct_wide : uk.direct_px;
        const int WR = uk.direct_wide != NULL ? CF_UKERNEL_WIDE_MR : uk.px_mr;
        const int WN = uk.direct_wide != NULL ? 4 * uk.vw : uk.px_nr;
        if (px != NULL) {
            const int64_t c = 64, wp = WR + 2;
            int64_t tap_off[9], px_off[CF_UKERNEL_MAX_MR];
            for (int t = 0; t < 9; t++)
                tap_off[t] = ((t / 3) * wp + t % 3) * c;
            for (int i = 0; i < WR; i++)
                px_off[i] = i * c;
            float *a = fbuf(3 * wp * c), *b = fbuf(9 * c * WN), *y = fbuf((int64_t)WR * WN);
            double g;
            TIME_GFLOPS(g, 2.0 * WR * WN * 9.0 * (double)c, 4000,
                        px(9, tap_off, c, a, px_off, b, WN, y, WN, WR, WN, 0, NULL, 0));
            printf("  wide    %6.1f GFLOP/s  %5.1f%% of the ceiling (%d x %d, 9 taps x 64)\n", g,
                   100 * g / ceiling, WR, WN);
            free(a), free(b), free(y);
            const int64_t cw = 32, rows = 54, fw = 64;
            static const int64_t zero_off[1] = {0};
            float *v = fbuf(rows * cw), *u = fbuf(cw * fw), *m = fbuf(rows * fw);
            TIME_GFLOPS(g, 2.0 * (double)rows * fw * (double)cw, 2000, {
                for (int64_t j0 = 0; j0 < fw; j0 += WN)
                    for (int64_t i0 = 0; i0 < rows; i0 += WR) {
                        int64_t po[CF_UKERNEL_MAX_MR];
                        for (int i = 0; i < WR; i++)
                            po[i] = (i0 + i) * cw;
                        px(1, zero_off, cw, v, po, u + j0, fw, m + i0 * fw + j0, fw, WR, WN,
                           0, NULL, 0);
                    }
            });
            printf("  wide32  %6.1f GFLOP/s  %5.1f%% of the ceiling (a 54 x 32 x 64 plane)\n", g,
                   100 * g / ceiling);
            free(v), free(u), free(m);
        }
    }
    return 0;
}
