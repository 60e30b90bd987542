/* Template for one SIMD micro-kernel; see ukernel.h for the contract.
 *
 * Instantiated by ukernel.c with:
 *   UK_NAME   function name              UK_T      element type
 *   UK_ROWS(X)  X(0) X(1) ... X(MR-1)    (the rows of the tile)
 *   UK_VW     lanes per vector; each row is two vectors (NR = 2 * UK_VW)
 *   UK_TARGET function attribute (target ISA)
 *   UK_V / UK_M vector and mask types, and the operations used below.
 * The accumulators are named variables (c<row>_0, c<row>_1), not an array:
 * with an array GCC 12 keeps a memory copy and stores it every k step. */

UK_TARGET static void UK_NAME(int64_t kc, const UK_T *restrict a, int64_t a_ks,
                              const UK_T *restrict b, int64_t b_ks,
                              UK_T *restrict c, int64_t ldc, int mr, int nr,
                              int accumulate, const UK_T *restrict bias, int relu)
{
    const UK_M m0 = UK_MASK(nr);
    const UK_M m1 = UK_MASK(nr - UK_VW);
#define UK_DECL(i) UK_V c##i##_0 = UK_ZERO(), c##i##_1 = UK_ZERO();
    UK_ROWS(UK_DECL)
#undef UK_DECL

#define UK_STEP(i)                                                             \
    {                                                                          \
        const UK_V ai = UK_BCAST(ak + (i));                                    \
        c##i##_0 = UK_FMA(ai, b0, c##i##_0);                                   \
        c##i##_1 = UK_FMA(ai, b1, c##i##_1);                                   \
    }
#define UK_LOOP(LD)                                                            \
    for (int64_t k = 0; k < kc; k++) {                                         \
        const UK_T *bk = b + k * b_ks;                                         \
        const UK_T *ak = a + k * a_ks;                                         \
        const UK_V b0 = LD(bk, m0);                                            \
        const UK_V b1 = LD(bk + UK_VW, m1);                                    \
        UK_ROWS(UK_STEP)                                                       \
    }
    /* full-width B rows: plain loads (masked ones are slower) */
    if (nr == 2 * UK_VW) {
        UK_LOOP(UK_LOADF)
    } else {
        UK_LOOP(UK_LOADM)
    }
#undef UK_LOOP
#undef UK_STEP

    const UK_V zero = UK_ZERO();
    const UK_V bb0 = bias ? UK_LOADM(bias, m0) : zero;
    const UK_V bb1 = bias ? UK_LOADM(bias + UK_VW, m1) : zero;
#define UK_OUT(i)                                                              \
    if ((i) < mr) {                                                            \
        UK_T *ci = c + (int64_t)(i) * ldc;                                     \
        UK_V r0 = c##i##_0, r1 = c##i##_1;                                     \
        if (accumulate) {                                                      \
            r0 = UK_ADD(UK_LOADM(ci, m0), r0);                                 \
            r1 = UK_ADD(UK_LOADM(ci + UK_VW, m1), r1);                         \
        }                                                                      \
        if (bias) {                                                            \
            r0 = UK_ADD(r0, bb0);                                              \
            r1 = UK_ADD(r1, bb1);                                              \
        }                                                                      \
        if (relu) {                                                            \
            r0 = UK_RELU(r0);                                                  \
            r1 = UK_RELU(r1);                                                  \
        }                                                                      \
        UK_STOREM(ci, m0, r0);                                                 \
        UK_STOREM(ci + UK_VW, m1, r1);                                         \
    }
    UK_ROWS(UK_OUT)
#undef UK_OUT
}
