/* Template for the column-sum kernel (see ukernel.h):
 *
 *   acc[j] += sum_{p < np} src[p * ld + j]    for j < n, rows added in order
 *
 * (a convolution's bias gradient). Each column is summed in row order, as
 * the scalar loop does, so every SIMD level gives the same bits. Blocks of
 * four vectors of columns stay in registers across the rows. Instantiated by
 * ukernel.c with the UK_* macros of ukernel_impl.h plus UK_CSNAME. */

UK_TARGET static void UK_CSNAME(int64_t np, int64_t n, const UK_T *restrict src,
                                int64_t ld, UK_T *restrict acc)
{
    for (int64_t j0 = 0; j0 < n; j0 += 4 * UK_VW) {
        const int r = (int)(n - j0 < 4 * UK_VW ? n - j0 : 4 * UK_VW);
        const UK_M m0 = UK_MASK(r), m1 = UK_MASK(r - UK_VW);
        const UK_M m2 = UK_MASK(r - 2 * UK_VW), m3 = UK_MASK(r - 3 * UK_VW);
        UK_T *a = acc + j0;
        UK_V s0 = UK_LOADM(a, m0), s1 = UK_LOADM(a + UK_VW, m1);
        UK_V s2 = UK_LOADM(a + 2 * UK_VW, m2), s3 = UK_LOADM(a + 3 * UK_VW, m3);
        const UK_T *q = src + j0;
        for (int64_t p = 0; p < np; p++, q += ld) {
            s0 = UK_ADD(s0, UK_LOADM(q, m0));
            s1 = UK_ADD(s1, UK_LOADM(q + UK_VW, m1));
            s2 = UK_ADD(s2, UK_LOADM(q + 2 * UK_VW, m2));
            s3 = UK_ADD(s3, UK_LOADM(q + 3 * UK_VW, m3));
        }
        UK_STOREM(a, m0, s0);
        UK_STOREM(a + UK_VW, m1, s1);
        UK_STOREM(a + 2 * UK_VW, m2, s2);
        UK_STOREM(a + 3 * UK_VW, m3, s3);
    }
}
