/* Template for one direct-convolution micro-kernel (see ukernel.h).
 *
 * Computes an MR x NR tile of output pixels x filters over all taps at once:
 *
 *   Y[i][j] = sum_{t < ntaps} sum_{cc < c} A(i, t, cc) * B(t, cc, j)
 *   A(i, t, cc) = a[tap_off[t] + i * a_is + cc]      (pixel rows of the input)
 *   B(t, cc, j) = b[(t * c + cc) * b_ks + j]         (the (KH, KW, C, F) kernel)
 *
 * then + bias, relu, and a masked store of mr rows and nr columns. Rows are
 * addressed from two bases (p0 for rows 0-6, p7 for rows 7-13) with the
 * strides r, 3r and 5r, so each broadcast is a single base+index*scale
 * address and no row pointer needs a register of its own.
 *
 * Instantiated by ukernel.c with the UK_* macros of ukernel_impl.h plus
 * UK_DNAME (function name) and UK_AROW(i) (row i's address). */

UK_TARGET static void UK_DNAME(int64_t ntaps, const int64_t *restrict tap_off,
                               int64_t c, const UK_T *restrict a, int64_t a_is,
                               const UK_T *restrict b, int64_t b_ks,
                               UK_T *restrict y, int64_t ldc, int mr, int nr,
                               const UK_T *restrict bias, int relu)
{
    const UK_M m0 = UK_MASK(nr);
    const UK_M m1 = UK_MASK(nr - UK_VW);
    const int64_t r = a_is, r3 = 3 * a_is, r5 = 5 * a_is;
#define UK_DECL(i) UK_V c##i##_0 = UK_ZERO(), c##i##_1 = UK_ZERO();
    UK_ROWS(UK_DECL)
#undef UK_DECL

#define UK_STEP(i)                                                             \
    {                                                                          \
        const UK_V ai = UK_BCAST(UK_AROW(i));                                  \
        c##i##_0 = UK_FMA(ai, b0, c##i##_0);                                   \
        c##i##_1 = UK_FMA(ai, b1, c##i##_1);                                   \
    }
#define UK_LOOP(LD)                                                            \
    for (int64_t t = 0; t < ntaps; t++) {                                      \
        const UK_T *p0 = a + tap_off[t];                                       \
        const UK_T *p7 = p0 + 7 * r;                                           \
        const UK_T *bk = b + t * c * b_ks;                                     \
        (void)p7;                                                              \
        UK_UNROLL4                                                             \
        for (int64_t cc = 0; cc < c; cc++, p0++, p7++, bk += b_ks) {           \
            const UK_V b0 = LD(bk, m0);                                        \
            const UK_V b1 = LD(bk + UK_VW, m1);                                \
            UK_ROWS(UK_STEP)                                                   \
        }                                                                      \
    }
    /* full-width weight rows (always, from the packed streams): plain loads */
    if (nr == 2 * UK_VW) {
        UK_LOOP(UK_LOADF)
    } else {
        UK_LOOP(UK_LOADM)
    }
#undef UK_LOOP
#undef UK_STEP
    (void)r3;
    (void)r5;

    const UK_V zero = UK_ZERO();
    const UK_V bb0 = bias ? UK_LOADM(bias, m0) : zero;
    const UK_V bb1 = bias ? UK_LOADM(bias + UK_VW, m1) : zero;
#define UK_OUT(i)                                                              \
    if ((i) < mr) {                                                            \
        UK_T *ci = y + (int64_t)(i) * ldc;                                     \
        UK_V r0 = c##i##_0, r1 = c##i##_1;                                     \
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
