/* Template for the few-rows GEMM kernel (see ukernel.h, cf_ukernel_rows_*_fn):
 *
 *   C[i][j] = (accumulate ? C[i][j] : 0) + sum_{k < kc} a[i * a_is + k] * b[k * b_ks + j]
 *   then + bias[j], relu;   for i < mr <= CF_GEMM_ROWS_MAX_MR, j < nr <= 4 vectors
 *
 * A product with one to four rows (a Dense layer on one sample, a server's
 * single request) is a matrix-vector product: it reads all of B once and does
 * two FLOPs per element read, so its speed is B's stream from cache or
 * memory. The tiled kernels compute MR rows whatever mr is (the spare rows are
 * computed and dropped), which at mr = 1 makes the product FMA-bound at MR
 * times the work; here each row count has its own loop and only the rows
 * asked for are computed. Each output is one FMA chain from zero in k order,
 * added to C with accumulate, then + bias, then relu: the same operations as
 * the tiled kernel `fn` (ukernel_impl.h), so a driver that splits the
 * reduction into blocks the way it does gets its bits. Instantiated by ukernel.c with the UK_* macros of ukernel_impl.h
 * plus UK_RNAME. */

UK_TARGET static void UK_RNAME(int64_t mr, int64_t nr, int64_t kc, const UK_T *restrict a,
                               int64_t a_is, const UK_T *restrict b, int64_t b_ks,
                               UK_T *restrict c, int64_t ldc, int accumulate,
                               const UK_T *restrict bias, int relu)
{
    const int r = (int)nr;
    const UK_M m0 = UK_MASK(r), m1 = UK_MASK(r - UK_VW);
    const UK_M m2 = UK_MASK(r - 2 * UK_VW), m3 = UK_MASK(r - 3 * UK_VW);
    const UK_V zero = UK_ZERO();
    const UK_V bb0 = bias ? UK_LOADM(bias, m0) : zero;
    const UK_V bb1 = bias ? UK_LOADM(bias + UK_VW, m1) : zero;
    const UK_V bb2 = bias ? UK_LOADM(bias + 2 * UK_VW, m2) : zero;
    const UK_V bb3 = bias ? UK_LOADM(bias + 3 * UK_VW, m3) : zero;

#define UK_R_DECL(i)                                                           \
    UK_V s##i##_0 = zero, s##i##_1 = zero, s##i##_2 = zero, s##i##_3 = zero;   \
    const UK_T *a##i = a + (int64_t)(i) * a_is;
#define UK_R_STEP(i)                                                           \
    {                                                                          \
        const UK_V ai = UK_BCAST(a##i + kk);                                   \
        s##i##_0 = UK_FMA(ai, b0, s##i##_0);                                   \
        s##i##_1 = UK_FMA(ai, b1, s##i##_1);                                   \
        s##i##_2 = UK_FMA(ai, b2, s##i##_2);                                   \
        s##i##_3 = UK_FMA(ai, b3, s##i##_3);                                   \
    }
#define UK_R_OUT1(i, q, mk, bq)                                                \
    {                                                                          \
        UK_T *cq = c + (int64_t)(i) * ldc + (q) * UK_VW;                       \
        UK_V v = s##i##_##q;                                                   \
        if (accumulate)                                                        \
            v = UK_ADD(UK_LOADM(cq, mk), v);                                   \
        if (bias)                                                              \
            v = UK_ADD(v, bq);                                                 \
        if (relu)                                                              \
            v = UK_RELU(v);                                                    \
        UK_STOREM(cq, mk, v);                                                  \
    }
#define UK_R_OUT(i)                                                            \
    UK_R_OUT1(i, 0, m0, bb0)                                                   \
    UK_R_OUT1(i, 1, m1, bb1)                                                   \
    UK_R_OUT1(i, 2, m2, bb2)                                                   \
    UK_R_OUT1(i, 3, m3, bb3)
#define UK_R_LOOP(ROWS, LD)                                                    \
    {                                                                          \
        ROWS(UK_R_DECL)                                                        \
        const UK_T *bk = b;                                                    \
        for (int64_t kk = 0; kk < kc; kk++, bk += b_ks) {                      \
            const UK_V b0 = LD(bk, m0), b1 = LD(bk + UK_VW, m1);               \
            const UK_V b2 = LD(bk + 2 * UK_VW, m2), b3 = LD(bk + 3 * UK_VW, m3); \
            ROWS(UK_R_STEP)                                                    \
        }                                                                      \
        ROWS(UK_R_OUT)                                                         \
    }
#define UK_R_ROWS1(X) X(0)
#define UK_R_ROWS2(X) X(0) X(1)
#define UK_R_ROWS3(X) X(0) X(1) X(2)
#define UK_R_ROWS4(X) X(0) X(1) X(2) X(3)
#define UK_R_CASES(LD)                                                         \
    switch (mr) {                                                              \
    case 1: UK_R_LOOP(UK_R_ROWS1, LD) break;                                   \
    case 2: UK_R_LOOP(UK_R_ROWS2, LD) break;                                   \
    case 3: UK_R_LOOP(UK_R_ROWS3, LD) break;                                   \
    default: UK_R_LOOP(UK_R_ROWS4, LD) break;                                  \
    }
    /* whole blocks (every column but the last block's) take plain loads */
    if (r == 4 * UK_VW) {
        UK_R_CASES(UK_LOADF)
    } else {
        UK_R_CASES(UK_LOADM)
    }
#undef UK_R_CASES
#undef UK_R_ROWS1
#undef UK_R_ROWS2
#undef UK_R_ROWS3
#undef UK_R_ROWS4
#undef UK_R_LOOP
#undef UK_R_OUT
#undef UK_R_OUT1
#undef UK_R_STEP
#undef UK_R_DECL
}
