/* Template for the "taps" micro-kernel (see ukernel.h): the kernel gradient
 * of layers with few input channels, where the reduction rows of one tile are
 * (tap, channel) pairs read at arbitrary offsets from a padded image:
 *
 *   C[i][j] (+)= sum_{r < nrows} sum_{k < kc} a[r*a_rs + k*a_ks + off[i]] * b[(r*kc + k)*b_ks + j]
 *
 * Instantiated by ukernel.c with the UK_* macros of ukernel_impl.h plus
 * UK_TNAME. The MR offsets are loaded once; all MR rows are read (the caller
 * points unused rows at valid data). */

UK_TARGET static void UK_TNAME(int64_t nrows, int64_t kc, const int64_t *restrict off,
                               const UK_T *restrict a, int64_t a_ks, int64_t a_rs,
                               const UK_T *restrict b, int64_t b_ks,
                               UK_T *restrict c, int64_t ldc, int mr, int nr,
                               int accumulate)
{
    const UK_M m0 = UK_MASK(nr);
    const UK_M m1 = UK_MASK(nr - UK_VW);
#define UK_DECL(i) UK_V c##i##_0 = UK_ZERO(), c##i##_1 = UK_ZERO(); const int64_t o##i = off[i];
    UK_ROWS(UK_DECL)
#undef UK_DECL
#define UK_STEP(i)                                                             \
    {                                                                          \
        const UK_V ai = UK_BCAST(ak + o##i);                                   \
        c##i##_0 = UK_FMA(ai, b0, c##i##_0);                                   \
        c##i##_1 = UK_FMA(ai, b1, c##i##_1);                                   \
    }
#define UK_LOOP(LD)                                                            \
    for (int64_t row = 0; row < nrows; row++) {                                \
        const UK_T *ak = a + row * a_rs;                                       \
        UK_UNROLL4                                                             \
        for (int64_t k = 0; k < kc; k++, ak += a_ks, bk += b_ks) {             \
            const UK_V b0 = LD(bk, m0);                                        \
            const UK_V b1 = LD(bk + UK_VW, m1);                                \
            UK_ROWS(UK_STEP)                                                   \
        }                                                                      \
    }
    const UK_T *bk = b;
    /* full-width dy rows: plain loads (masked ones are slower) */
    if (nr == 2 * UK_VW) {
        UK_LOOP(UK_LOADF)
    } else {
        UK_LOOP(UK_LOADM)
    }
#undef UK_LOOP
#undef UK_STEP
#define UK_OUT(i)                                                              \
    if ((i) < mr) {                                                            \
        UK_T *ci = c + (int64_t)(i) * ldc;                                     \
        UK_V r0 = c##i##_0, r1 = c##i##_1;                                     \
        if (accumulate) {                                                      \
            r0 = UK_ADD(UK_LOADM(ci, m0), r0);                                 \
            r1 = UK_ADD(UK_LOADM(ci + UK_VW, m1), r1);                         \
        }                                                                      \
        UK_STOREM(ci, m0, r0);                                                 \
        UK_STOREM(ci + UK_VW, m1, r1);                                         \
    }
    UK_ROWS(UK_OUT)
#undef UK_OUT
}
