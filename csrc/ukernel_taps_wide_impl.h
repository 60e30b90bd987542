/* Wide variant of the taps micro-kernel (ukernel_taps_impl.h): 6 rows x 4
 * vectors (64 float / 32 double columns). Per reduction step it loads 4 B
 * vectors and broadcasts 6 A values for 24 FMAs (the 14 x 2 tile needs 2 + 14
 * loads for 28), 24 accumulators + 4 B vectors + the broadcast fit the 32 zmm
 * registers, and its 6 offsets stay in general registers. Same contract as the taps
 * kernel with MR = 6 and NR = 4 * UK_VW.
 *
 * Instantiated by ukernel.c with the UK_* macros plus UK_TWNAME. */

#define UK_ROWS6(X) X(0) X(1) X(2) X(3) X(4) X(5)

UK_TARGET static void UK_TWNAME(int64_t nrows, int64_t kc, const int64_t *restrict off,
                                const UK_T *restrict a, int64_t a_ks, int64_t a_rs,
                                const UK_T *restrict b, int64_t b_ks,
                                UK_T *restrict c, int64_t ldc, int mr, int nr,
                                int accumulate)
{
    const UK_M m0 = UK_MASK(nr), m1 = UK_MASK(nr - UK_VW);
    const UK_M m2 = UK_MASK(nr - 2 * UK_VW), m3 = UK_MASK(nr - 3 * UK_VW);
#define UK_DECL(i)                                                             \
    UK_V c##i##_0 = UK_ZERO(), c##i##_1 = UK_ZERO(), c##i##_2 = UK_ZERO(),     \
         c##i##_3 = UK_ZERO();                                                 \
    const int64_t o##i = off[i];
    UK_CHECK_ROWS_HERE(UK_ROWS6, CF_UKERNEL_WIDE_MR);
    UK_ROWS6(UK_DECL)
#undef UK_DECL
#define UK_STEP(i)                                                             \
    {                                                                          \
        const UK_V ai = UK_BCAST(ak + o##i);                                   \
        c##i##_0 = UK_FMA(ai, b0, c##i##_0);                                   \
        c##i##_1 = UK_FMA(ai, b1, c##i##_1);                                   \
        c##i##_2 = UK_FMA(ai, b2, c##i##_2);                                   \
        c##i##_3 = UK_FMA(ai, b3, c##i##_3);                                   \
    }
#define UK_LOOP(LD)                                                            \
    for (int64_t row = 0; row < nrows; row++) {                                \
        const UK_T *ak = a + row * a_rs;                                       \
        UK_UNROLL4                                                             \
        for (int64_t k = 0; k < kc; k++, ak += a_ks, bk += b_ks) {             \
            const UK_V b0 = LD(bk, m0);                                        \
            const UK_V b1 = LD(bk + UK_VW, m1);                                \
            const UK_V b2 = LD(bk + 2 * UK_VW, m2);                            \
            const UK_V b3 = LD(bk + 3 * UK_VW, m3);                            \
            UK_ROWS6(UK_STEP)                                                  \
        }                                                                      \
    }
    const UK_T *bk = b;
    /* full-width dy rows: plain loads (masked ones are slower) */
    if (nr == 4 * UK_VW) {
        UK_LOOP(UK_LOADF)
    } else {
        UK_LOOP(UK_LOADM)
    }
#undef UK_LOOP
#undef UK_STEP
#define UK_OUT(i)                                                              \
    if ((i) < mr) {                                                            \
        UK_T *ci = c + (int64_t)(i) * ldc;                                     \
        UK_V r0 = c##i##_0, r1 = c##i##_1, r2 = c##i##_2, r3 = c##i##_3;       \
        if (accumulate) {                                                      \
            r0 = UK_ADD(UK_LOADM(ci, m0), r0);                                 \
            r1 = UK_ADD(UK_LOADM(ci + UK_VW, m1), r1);                         \
            r2 = UK_ADD(UK_LOADM(ci + 2 * UK_VW, m2), r2);                     \
            r3 = UK_ADD(UK_LOADM(ci + 3 * UK_VW, m3), r3);                     \
        }                                                                      \
        UK_STOREM(ci, m0, r0);                                                 \
        UK_STOREM(ci + UK_VW, m1, r1);                                         \
        UK_STOREM(ci + 2 * UK_VW, m2, r2);                                     \
        UK_STOREM(ci + 3 * UK_VW, m3, r3);                                     \
    }
    UK_ROWS6(UK_OUT)
#undef UK_OUT
}

#undef UK_ROWS6
