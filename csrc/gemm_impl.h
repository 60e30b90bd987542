/* GEMM driver for one element type; see gemm.h. Instantiated by gemm.c with
 * GM_T, GM_SFX, GM_UK, GM_SELECT and GM_PX_FN (the wide tiles' type). */

#define GM_CAT2(a, b) a##_##b
#define GM_CAT(a, b) GM_CAT2(a, b)
#define GM_FN(name) GM_CAT(name, GM_SFX)

/* Rows of C from rows of A read in place (A(i, k) = a[i * a_is + k]): the
 * direct micro-kernel broadcasts from MR rows of A at once, over the whole
 * reduction, so A is never packed. Panels of MR rows are split statically
 * over the threads (a thread reads the rows of A that the same thread of a
 * previous layer wrote, when that layer split its rows the same way). The
 * last, partial panel reads its rows from a zero-padded copy. */
static int GM_FN(gemm_rows)(const GM_UK *uk, int64_t m, int64_t n, int64_t k, const GM_T *a,
                            int64_t a_is, const GM_T *b, int64_t b_ks, GM_T *c, int64_t ldc,
                            const GM_T *bias, int relu, int nt)
{
    static const int64_t zero_off[1] = {0};
    const int64_t MR = uk->mr, NR = uk->nr, panels = (m + MR - 1) / MR;
    int failed = 0;
    (void)nt;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        CF_REGION_FP_ENTER();
        GM_T *rest = NULL;
        if (m % MR)
            rest = (GM_T *)cf_workspace_or_flag(CF_WS_GEMM_A_PANEL, (size_t)(MR * k) * sizeof(GM_T), &failed);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t pnl = 0; pnl < panels; pnl++) {
            const int64_t i0 = pnl * MR;
            const int64_t mr = m - i0 < MR ? m - i0 : MR;
            const GM_T *ap = a + i0 * a_is;
            int64_t ais = a_is;
            if (mr < MR) {
                if (rest == NULL)
                    continue;
                for (int64_t i = 0; i < MR; i++) {
                    if (i < mr)
                        memcpy(rest + i * k, ap + i * a_is, (size_t)k * sizeof(GM_T));
                    else
                        memset(rest + i * k, 0, (size_t)k * sizeof(GM_T));
                }
                ap = rest;
                ais = k;
            }
            for (int64_t j0 = 0; j0 < n; j0 += NR) {
                const int64_t nr = n - j0 < NR ? n - j0 : NR;
                uk->direct(1, zero_off, k, ap, ais, b + j0, b_ks, c + i0 * ldc + j0, ldc,
                           (int)mr, (int)nr, bias ? bias + j0 : NULL, relu);
            }
        }
        CF_REGION_FP_LEAVE();
    }
    return failed ? -1 : 0;
}

/* Products of at most CF_GEMM_ROWS_MAX_MR rows with rows of A read in place
 * (a Dense layer on one sample): blocks of 4 vectors of columns split
 * statically over the threads, each block on the few-rows kernel. The
 * reduction is summed the way the path this replaces sums it, so the bits do
 * not change with the row count's path: one FMA chain over all of k where
 * that path is one (the direct kernels), or CF_GEMM_KC-deep blocks each
 * summed from zero and added to C where that path is the packed kernel
 * (block_sums). */
static int GM_FN(gemm_few_rows)(const GM_UK *uk, int64_t m, int64_t n, int64_t k,
                                const GM_T *a, int64_t a_is, const GM_T *b, int64_t b_ks,
                                GM_T *c, int64_t ldc, const GM_T *bias, int relu,
                                int block_sums, int nt)
{
    const int64_t BW = 4 * (int64_t)uk->vw, blocks = (n + BW - 1) / BW;
    const int64_t KB = block_sums ? CF_GEMM_KC : k;
    (void)nt;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        CF_REGION_FP_ENTER();
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t blk = 0; blk < blocks; blk++) {
            const int64_t j0 = blk * BW, nr = n - j0 < BW ? n - j0 : BW;
            for (int64_t k0 = 0; k0 < k; k0 += KB) {
                const int64_t kc = k - k0 < KB ? k - k0 : KB;
                const int last = k0 + kc == k; /* bias and relu after the whole sum */
                uk->rows(m, nr, kc, a + k0, a_is, b + k0 * b_ks + j0, b_ks, c + j0, ldc,
                         k0 > 0, last && bias ? bias + j0 : NULL, last && relu);
            }
        }
        CF_REGION_FP_LEAVE();
    }
    return 0;
}

/* The wide tile of a level: AVX-512's direct_wide (6 pixels x 4 vectors),
 * else the row-spanning direct_px (AVX2 float32: 6 pixels x 2 vectors), which
 * keeps the same contract; NULL where the level has neither. */
static GM_PX_FN GM_FN(wide_kernel)(const GM_UK *uk, int64_t *width)
{
    if (uk->direct_wide != NULL) {
        *width = 4 * (int64_t)uk->vw;
        return uk->direct_wide;
    }
    if (uk->direct_px != NULL && uk->px_mr == CF_UKERNEL_WIDE_MR) {
        *width = uk->px_nr;
        return uk->direct_px;
    }
    *width = 0;
    return NULL;
}

/* One 6-row tile of C (rows i0 .. min(i0 + 6, m), columns j0 .. j0 + nr) over
 * the reduction block [k0, k0 + kc), with the wide kernel: rows of A read in
 * place (a_is apart), the block's rows of B ldb apart from bb. The sum goes
 * on from C after the first block; bias and relu come after the last. */
static void GM_FN(wide_tile)(GM_PX_FN wide, int64_t m, int64_t i0, const GM_T *a,
                             int64_t a_is, int64_t k0, int64_t kc, int last, const GM_T *bb,
                             int64_t ldb, GM_T *c, int64_t ldc, int64_t j0, int64_t nr,
                             const GM_T *bias, int relu)
{
    static const int64_t zero_off[1] = {0};
    const int64_t WR = CF_UKERNEL_WIDE_MR;
    const int64_t mr = m - i0 < WR ? m - i0 : WR;
    int64_t px[CF_UKERNEL_WIDE_MR];
    for (int64_t i = 0; i < WR; i++)
        px[i] = (i0 + (i < mr ? i : 0)) * a_is; /* spare rows re-read row 0 */
    wide(1, zero_off, kc, a + k0, px, bb, ldb, c + i0 * ldc + j0, ldc, (int)mr,
         (int)nr, k0 > 0, last && bias ? bias + j0 : NULL, last && relu);
}

/* gemm_rows with the wide tile (6 rows x 64 columns, AVX-512 float32) and a
 * blocked reduction: for each CF_GEMM_KC-deep block, each 64-column strip of B
 * (CF_GEMM_KC x 64, in L1/L2) passes under all of this thread's 6-row tiles
 * before the next strip, instead of every tile streaming all of B from L2
 * over the whole reduction. The tile's accumulators start from C's values
 * after the first block, so every element is one chain of FMAs in k order:
 * the same bits as the unblocked kernels. Each thread owns a fixed range of
 * row tiles (schedule(static), same trip count in every block), so it reads
 * back only the C rows it wrote. */
static int GM_FN(gemm_rows_wide)(const GM_UK *uk, int64_t m, int64_t n, int64_t k,
                                 const GM_T *a, int64_t a_is, const GM_T *b, int64_t b_ks,
                                 GM_T *c, int64_t ldc, const GM_T *bias, int relu, int nt)
{
    int64_t WN;
    const GM_PX_FN wide = GM_FN(wide_kernel)(uk, &WN);
    const int64_t WR = CF_UKERNEL_WIDE_MR;
    const int64_t tiles = (m + WR - 1) / WR;
    (void)nt;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        CF_REGION_FP_ENTER();
        for (int64_t k0 = 0; k0 < k; k0 += CF_GEMM_KC) {
            const int64_t kc = k - k0 < CF_GEMM_KC ? k - k0 : CF_GEMM_KC;
            const int last = k0 + kc == k; /* bias and relu after the whole sum */
            for (int64_t j0 = 0; j0 < n; j0 += WN) {
                const int64_t nr = n - j0 < WN ? n - j0 : WN;
#ifdef _OPENMP
#pragma omp for schedule(static) nowait
#endif
                for (int64_t t = 0; t < tiles; t++)
                    GM_FN(wide_tile)(wide, m, t * WR, a, a_is, k0, kc, last, b + k0 * b_ks + j0,
                                     b_ks, c, ldc, j0, nr, bias, relu);
            }
        }
        CF_REGION_FP_LEAVE();
    }
    return 0;
}

/* Wide products (many more columns than rows, e.g. a Dense layer's input
 * gradient dz . kernel.T) with rows of A read in place: 64-column panels of
 * B split statically over the threads; per CF_GEMM_KC-deep block, the panel
 * (packed by transposing gathers when B is a transposed view) stays in L1
 * while all the 6-row tiles pass over it. Accumulators start from C after
 * the first block, so each element is one chain of FMAs in k order, as in
 * gemm_rows_wide. */
static int GM_FN(gemm_cols_wide)(const GM_UK *uk, int64_t m, int64_t n, int64_t k,
                                 const GM_T *a, int64_t a_is, const GM_T *b, int64_t b_ks,
                                 int64_t b_js, GM_T *c, int64_t ldc, const GM_T *bias,
                                 int relu, int nt)
{
    const int64_t WR = CF_UKERNEL_WIDE_MR, WN = 4 * (int64_t)uk->vw;
    const int64_t panels = (n + WN - 1) / WN;
    const int packed = b_js != 1;
    int failed = 0;
    (void)nt;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        CF_REGION_FP_ENTER();
        GM_T *bp = NULL;
        if (packed)
            bp = (GM_T *)cf_workspace_or_flag(CF_WS_GEMM_B_PANEL, (size_t)(CF_GEMM_KC * WN) * sizeof(GM_T), &failed);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t pnl = 0; pnl < panels; pnl++) {
            if (packed && bp == NULL)
                continue;
            const int64_t j0 = pnl * WN;
            const int64_t nr = n - j0 < WN ? n - j0 : WN;
            for (int64_t k0 = 0; k0 < k; k0 += CF_GEMM_KC) {
                const int64_t kc = k - k0 < CF_GEMM_KC ? k - k0 : CF_GEMM_KC;
                const int last = k0 + kc == k; /* bias and relu after the whole sum */
                const GM_T *bb = b + k0 * b_ks + j0;
                int64_t ldb = b_ks;
                if (packed) {
                    /* B(k0 + kk, j0 + j) = b[(k0 + kk) * b_ks + (j0 + j) * b_js], b_ks == 1 */
                    uk->pack_t(kc, nr, b + k0 + j0 * b_js, b_js, bp);
                    bb = bp;
                    ldb = WN;
                }
                for (int64_t i0 = 0; i0 < m; i0 += WR)
                    GM_FN(wide_tile)(uk->direct_wide, m, i0, a, a_is, k0, kc, last, bb, ldb, c, ldc, j0, nr,
                                     bias, relu);
            }
        }
        CF_REGION_FP_LEAVE();
    }
    return failed ? -1 : 0;
}

int GM_FN(cf_gemm)(int64_t m, int64_t n, int64_t k, const GM_T *a, int64_t a_is,
                   int64_t a_ks, const GM_T *b, int64_t b_ks, int64_t b_js, GM_T *c,
                   int64_t ldc, int accumulate, const GM_T *bias, int relu, int nthreads)
{
    const GM_UK uk = GM_SELECT(cf_simd_level());
    const int64_t MR = uk.mr, NR = uk.nr;
    if (m == 0 || n == 0)
        return 0;
    if (k == 0) {
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                GM_T v = (accumulate ? c[i * ldc + j] : (GM_T)0) + (bias ? bias[j] : (GM_T)0);
                c[i * ldc + j] = relu && !(v > 0) ? (GM_T)0 : v;
            }
        return 0;
    }
    /* The micro-kernel wants B rows contiguous: if they are not, B is copied
     * once, by the whole team, at the start of the parallel region. */
    const GM_T *b_src = b;
    const int64_t b_src_ks = b_ks, b_src_js = b_js;
    /* wide products (e.g. a Dense layer's input gradient): B panels split
     * over the threads instead of A panels */
    const int wide = n >= 4 * m && n >= 4 * NR;
    const int64_t panels = (m + MR - 1) / MR;
    /* below this many multiply-adds a thread team costs more than the product */
    const int small = (double)m * (double)n * (double)k < 65536.0;
    int nt = small ? 1 : cf_team_size(nthreads, panels);
    if (m <= CF_GEMM_ROWS_MAX_MR && a_ks == 1 && b_js == 1 && !accumulate && uk.rows != NULL)
        /* the path below for these shapes sums in blocks when it is the packed
         * kernel's (wide products without the wide direct tile) */
        return GM_FN(gemm_few_rows)(&uk, m, n, k, a, a_is, b, b_ks, c, ldc, bias, relu,
                                    wide && uk.direct_wide == NULL,
                                    small ? 1 : cf_team_size(nthreads, (n + 4 * uk.vw - 1) /
                                                                           (4 * uk.vw)));
    int64_t wide_width;
    if (a_ks == 1 && b_js == 1 && !accumulate && !wide &&
        GM_FN(wide_kernel)(&uk, &wide_width) != NULL && n >= CF_GEMM_WIDE_MIN_N)
        return GM_FN(gemm_rows_wide)(&uk, m, n, k, a, a_is, b, b_ks, c, ldc, bias, relu,
                                     small ? 1
                                           : cf_team_size(nthreads, (m + CF_UKERNEL_WIDE_MR - 1) /
                                                                        CF_UKERNEL_WIDE_MR));
    if (a_ks == 1 && b_js == 1 && !accumulate && !wide)
        return GM_FN(gemm_rows)(&uk, m, n, k, a, a_is, b, b_ks, c, ldc, bias, relu, nt);
    if (wide && a_ks == 1 && !accumulate && uk.direct_wide != NULL &&
        (b_js == 1 || (b_ks == 1 && uk.pack_t != NULL && b_js <= CF_GEMM_GATHER_MAX_JS)))
        return GM_FN(gemm_cols_wide)(&uk, m, n, k, a, a_is, b, b_ks, b_js, c, ldc, bias, relu,
                                     small ? 1 : cf_team_size(nthreads, (n + 4 * uk.vw - 1) /
                                                                            (4 * uk.vw)));
    GM_T *bp = NULL;
    if (b_js != 1 && !wide) {
        bp = (GM_T *)cf_workspace(CF_WS_GEMM_B_COPY, (size_t)(k * n) * sizeof(GM_T));
        if (bp == NULL)
            return -1;
        b = bp;
        b_ks = n;
    }
    /* GotoBLAS-style blocking of the reduction: a KC x n block of B stays in
     * L2 while every MR-row panel of A (packed, KC x MR, in L1) passes over
     * it. A whose columns are contiguous (a transposed view, A(i, k) =
     * a[i + k * a_ks]) is copied CF_GEMM_AT_PANELS panels at a time, MR * CF_GEMM_AT_PANELS
     * values per k, and B into NR-column panels. */
    const int64_t KC = k < CF_GEMM_KC ? k : CF_GEMM_KC;
    const int at_blocks = (a_is == 1) && !wide;
    const int64_t AW = MR * CF_GEMM_AT_PANELS;
    GM_T *bpk = NULL;
    if (at_blocks) {
        bpk = (GM_T *)cf_workspace(CF_WS_GEMM_B_PACKED, (size_t)(((n + NR - 1) / NR) * KC * NR) * sizeof(GM_T));
        if (bpk == NULL)
            return -1;
    }
    GM_T *apack = NULL;
    if (wide) {
        apack = (GM_T *)cf_workspace(CF_WS_GEMM_A_PACKED, (size_t)(panels * MR * KC) * sizeof(GM_T));
        if (apack == NULL)
            return -1;
        /* no thread team larger than the number of B panels */
        nt = small ? 1 : cf_team_size(nthreads, (n + NR - 1) / NR);
    }
    int failed = 0;
    (void)nt;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        CF_REGION_FP_ENTER();
        if (bp != NULL) {
            /* 32 x 32 tiles keep both sides of the transposition in cache */
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (int64_t k1 = 0; k1 < k; k1 += 32)
                for (int64_t j1 = 0; j1 < n; j1 += 32)
                    for (int64_t kk = k1; kk < k1 + 32 && kk < k; kk++)
                        for (int64_t j = j1; j < j1 + 32 && j < n; j++)
                            bp[kk * n + j] = b_src[kk * b_src_ks + j * b_js];
        }
        GM_T *panel = at_blocks ? NULL
                                : (GM_T *)cf_workspace_or_flag(CF_WS_GEMM_A_PANEL, (size_t)(MR * KC + MR) * sizeof(GM_T), &failed);
        GM_T *ablock = at_blocks ? (GM_T *)cf_workspace_or_flag(CF_WS_GEMM_A_PANEL, (size_t)(AW * KC + MR) * sizeof(GM_T), &failed)
                                 : NULL;
        /* wide products with B not row-contiguous (a transposed view, like
         * the Dense input gradient's kernel.T): each thread packs the KC x NR
         * block of B it is about to use, in L1, instead of a whole-matrix
         * transpose before the product */
        GM_T *bpanel = NULL;
        if (wide && b_src_js != 1)
            bpanel = (GM_T *)cf_workspace_or_flag(CF_WS_GEMM_B_PANEL, (size_t)(KC * NR) * sizeof(GM_T), &failed);
        for (int64_t k0 = 0; k0 < k; k0 += KC) {
            const int64_t kc = k - k0 < KC ? k - k0 : KC;
            const int acc = accumulate || k0 > 0;
            const int last = k0 + kc == k; /* bias and relu after the whole sum */
            const GM_T *eb = last ? bias : NULL;
            const int er = last && relu;
            if (wide) {
                /* Many more columns than rows: pack every A panel of this
                 * k-block once (shared), then split the NR-column panels of B
                 * over the threads, each B panel staying in L1 while all the
                 * A panels pass over it. */
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
                for (int64_t pnl = 0; pnl < panels; pnl++) {
                    const int64_t i0 = pnl * MR;
                    const int64_t mr = m - i0 < MR ? m - i0 : MR;
                    GM_T *dst = apack + pnl * MR * KC;
                    const GM_T *src = a + i0 * a_is + k0 * a_ks;
                    for (int64_t i = 0; i < MR; i++)
                        for (int64_t kk = 0; kk < kc; kk++)
                            dst[kk * MR + i] = i < mr ? src[i * a_is + kk * a_ks] : (GM_T)0;
                }
                const int64_t jpanels = (n + NR - 1) / NR;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 4)
#endif
                for (int64_t jp = 0; jp < jpanels; jp++) {
                    const int64_t j0 = jp * NR;
                    const int64_t nr = n - j0 < NR ? n - j0 : NR;
                    const GM_T *bb = b + k0 * b_ks + j0;
                    int64_t bb_ks = b_ks;
                    if (b_src_js != 1) {
                        if (bpanel == NULL)
                            continue;
                        /* column j of the block is a row of the source */
                        for (int64_t j = 0; j < nr; j++) {
                            const GM_T *src = b_src + k0 * b_src_ks + (j0 + j) * b_src_js;
                            for (int64_t kk = 0; kk < kc; kk++)
                                bpanel[kk * NR + j] = src[kk * b_src_ks];
                        }
                        bb = bpanel;
                        bb_ks = NR;
                    }
                    for (int64_t pnl = 0; pnl < panels; pnl++) {
                        const int64_t i0 = pnl * MR;
                        const int64_t mr = m - i0 < MR ? m - i0 : MR;
                        uk.fn(kc, apack + pnl * MR * KC, MR, bb, bb_ks,
                              c + i0 * ldc + j0, ldc, (int)mr, (int)nr, acc,
                              eb ? eb + j0 : NULL, er);
                    }
                }
                continue;
            }
            if (at_blocks) {
                /* Read in place, each k step of a panel sits a row of the
                 * source (a page, for a Dense input) away from the last, and
                 * B's rows of 128 floats map onto an eighth of L1's sets:
                 * copying both is faster (the same tile, the same sums:
                 * same bits). */
                const int64_t njp = (n + NR - 1) / NR;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
                for (int64_t jp = 0; jp < njp; jp++) {
                    const int64_t j0 = jp * NR, nr = n - j0 < NR ? n - j0 : NR;
                    GM_T *d = bpk + jp * KC * NR;
                    for (int64_t kk = 0; kk < kc; kk++) {
                        const GM_T *src = b + (k0 + kk) * b_ks + j0;
                        for (int64_t j = 0; j < NR; j++)
                            d[kk * NR + j] = j < nr ? src[j] : (GM_T)0;
                    }
                }
                const int64_t nblk = (panels + CF_GEMM_AT_PANELS - 1) / CF_GEMM_AT_PANELS;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
                for (int64_t blk = 0; blk < nblk; blk++) {
                    if (ablock == NULL)
                        continue;
                    const int64_t bi0 = blk * AW, bw = m - bi0 < AW ? m - bi0 : AW;
                    for (int64_t kk = 0; kk < kc; kk++) {
                        memcpy(ablock + kk * AW, a + bi0 + (k0 + kk) * a_ks,
                               (size_t)bw * sizeof(GM_T));
                        for (int64_t i = bw; i < AW; i++)
                            ablock[kk * AW + i] = 0;
                    }
                    for (int64_t i0 = bi0; i0 < bi0 + bw; i0 += MR) {
                        const int64_t mr = m - i0 < MR ? m - i0 : MR;
                        for (int64_t jp = 0; jp < njp; jp++) {
                            const int64_t j0 = jp * NR, nr = n - j0 < NR ? n - j0 : NR;
                            uk.fn(kc, ablock + (i0 - bi0), AW, bpk + jp * KC * NR, NR,
                                  c + i0 * ldc + j0, ldc, (int)mr, (int)nr, acc,
                                  eb ? eb + j0 : NULL, er);
                        }
                    }
                }
                continue;
            }
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
            for (int64_t pnl = 0; pnl < panels; pnl++) {
                if (panel == NULL)
                    continue;
                const int64_t i0 = pnl * MR;
                const int64_t mr = m - i0 < MR ? m - i0 : MR;
                const GM_T *src = a + i0 * a_is + k0 * a_ks;
                for (int64_t i = 0; i < MR; i++) {
                    if (i < mr)
                        for (int64_t kk = 0; kk < kc; kk++)
                            panel[kk * MR + i] = src[i * a_is + kk * a_ks];
                    else
                        for (int64_t kk = 0; kk < kc; kk++)
                            panel[kk * MR + i] = 0;
                }
                for (int64_t j0 = 0; j0 < n; j0 += NR) {
                    const int64_t nr = n - j0 < NR ? n - j0 : NR;
                    uk.fn(kc, panel, MR, b + k0 * b_ks + j0, b_ks, c + i0 * ldc + j0,
                          ldc, (int)mr, (int)nr, acc, eb ? eb + j0 : NULL, er);
                }
            }
        }
        CF_REGION_FP_LEAVE();
    }
    return failed ? -1 : 0;
}

#undef GM_FN
#undef GM_CAT
#undef GM_CAT2
