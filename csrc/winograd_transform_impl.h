/* The Winograd tile transforms of one (instruction set, element type), as
 * plain loops over a block of `n` lanes (channels or filters, contiguous in
 * NHWC), which the compiler vectorises for the instruction set of WT_TGT.
 *
 * Template header, included by winograd.c once per (instruction set, type)
 * with these macros defined:
 *   WT_T        element type
 *   WT_FN(name) the function's name for this (instruction set, type)
 *   WT_TGT      the GCC target attribute of every function here (or empty)
 *
 * No sum here is contracted into an FMA (the build compiles ISO C, whose
 * default is -ffp-contract=off), so every level gives the scalar loops' bits.
 *
 * The 1-D transforms map the values at in[j * is + l] to out[k * os + l] for
 * lanes l < n. F(2, 3) with the points (0, 1, -1, inf) (Lavin & Gray, 2016),
 * F(4, 3) with (0, 1, -1, 1/2, -2, inf), whose float32 error is about half of
 * that of (0, 1, -1, 2, -2, inf) (notes/winograd.md):
 *
 *   F(2,3)  B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
 *           A^T = [1 1 1 0; 0 1 -1 -1]
 *   F(4,3)  B^T = [1 -3/2 -2 3/2 1 0; 0 -1 1/2 5/2 1 0; 0 1 -5/2 1/2 1 0;
 *                  0 -2 -1 2 1 0; 0 1/2 -1 -1/2 1 0; 0 1 -3/2 -2 3/2 1]
 *           A^T = [1 1 1 1 1 0; 0 1 -1 1/2 -2 0; 0 1 1 1/4 4 0;
 *                  0 1 -1 1/8 -8 1]
 *
 * (G, the kernel's transform, is in winograd_impl.h: it runs once per call.) */

/* out = B^T in (4 -> 4) */
static inline WT_TGT void WT_FN(wt_bt2)(const WT_T *restrict in, int64_t is, WT_T *restrict out,
                                        int64_t os, int64_t n)
{
    WT_LANES
    for (int64_t l = 0; l < n; l++) {
        const WT_T d0 = in[l], d1 = in[is + l], d2 = in[2 * is + l], d3 = in[3 * is + l];
        out[l] = d0 - d2;
        out[os + l] = d1 + d2;
        out[2 * os + l] = d2 - d1;
        out[3 * os + l] = d1 - d3;
    }
}

/* out = B^T in (6 -> 6) */
static inline WT_TGT void WT_FN(wt_bt4)(const WT_T *restrict in, int64_t is, WT_T *restrict out,
                                        int64_t os, int64_t n)
{
    WT_LANES
    for (int64_t l = 0; l < n; l++) {
        const WT_T d0 = in[l], d1 = in[is + l], d2 = in[2 * is + l], d3 = in[3 * is + l];
        const WT_T d4 = in[4 * is + l], d5 = in[5 * is + l];
        out[l] = d0 - (WT_T)1.5 * d1 - 2 * d2 + (WT_T)1.5 * d3 + d4;
        out[os + l] = -d1 + (WT_T)0.5 * d2 + (WT_T)2.5 * d3 + d4;
        out[2 * os + l] = d1 - (WT_T)2.5 * d2 + (WT_T)0.5 * d3 + d4;
        out[3 * os + l] = -2 * d1 - d2 + 2 * d3 + d4;
        out[4 * os + l] = (WT_T)0.5 * d1 - d2 - (WT_T)0.5 * d3 + d4;
        out[5 * os + l] = d1 - (WT_T)1.5 * d2 - 2 * d3 + (WT_T)1.5 * d4 + d5;
    }
}

/* out = A^T in (4 -> 2) */
static inline WT_TGT void WT_FN(wt_at2)(const WT_T *restrict in, int64_t is, WT_T *restrict out,
                                        int64_t os, int64_t n)
{
    WT_LANES
    for (int64_t l = 0; l < n; l++) {
        const WT_T m0 = in[l], m1 = in[is + l], m2 = in[2 * is + l], m3 = in[3 * is + l];
        out[l] = m0 + m1 + m2;
        out[os + l] = m1 - m2 - m3;
    }
}

/* out = A^T in (6 -> 4) */
static inline WT_TGT void WT_FN(wt_at4)(const WT_T *restrict in, int64_t is, WT_T *restrict out,
                                        int64_t os, int64_t n)
{
    WT_LANES
    for (int64_t l = 0; l < n; l++) {
        const WT_T m0 = in[l], m1 = in[is + l], m2 = in[2 * is + l], m3 = in[3 * is + l];
        const WT_T m4 = in[4 * is + l], m5 = in[5 * is + l];
        const WT_T sp = m1 + m2, sm = m1 - m2;
        out[l] = m0 + sp + m3 + m4;
        out[os + l] = sm + (WT_T)0.5 * m3 - 2 * m4;
        out[2 * os + l] = sp + (WT_T)0.25 * m3 + 4 * m4;
        out[3 * os + l] = sm + (WT_T)0.125 * m3 - 8 * m4 + m5;
    }
}

/* out = A in, the adjoint of A^T (2 -> 4): the kernel gradient's dy tiles */
static inline WT_TGT void WT_FN(wt_a2)(const WT_T *restrict in, int64_t is, WT_T *restrict out,
                                       int64_t os, int64_t n)
{
    WT_LANES
    for (int64_t l = 0; l < n; l++) {
        const WT_T i0 = in[l], i1 = in[is + l];
        out[l] = i0;
        out[os + l] = i0 + i1;
        out[2 * os + l] = i0 - i1;
        out[3 * os + l] = -i1;
    }
}

/* out = A in (4 -> 6) */
static inline WT_TGT void WT_FN(wt_a4)(const WT_T *restrict in, int64_t is, WT_T *restrict out,
                                       int64_t os, int64_t n)
{
    WT_LANES
    for (int64_t l = 0; l < n; l++) {
        const WT_T i0 = in[l], i1 = in[is + l], i2 = in[2 * is + l], i3 = in[3 * is + l];
        const WT_T ev = i0 + i2, od = i1 + i3;
        out[l] = i0;
        out[os + l] = ev + od;
        out[2 * os + l] = ev - od;
        out[3 * os + l] = i0 + (WT_T)0.5 * i1 + (WT_T)0.25 * i2 + (WT_T)0.125 * i3;
        out[4 * os + l] = i0 - 2 * i1 + 4 * i2 - 8 * i3;
        out[5 * os + l] = i3;
    }
}

/* F(2x2, 3x3) tiles in one pass per lane, the whole 4 x 4 tile in registers
 * (the two 1-D passes below, fused: no temporary round trip), the same sums
 * in the same order as wt_bt2 / wt_at2 / wt_a2 twice. */
static inline WT_TGT void WT_FN(wt_input2)(const WT_T *restrict d, int64_t rs, int64_t cs,
                                           WT_T *restrict out, int64_t plane, int64_t n)
{
    const WT_T *restrict r0 = d, *restrict r1 = d + rs, *restrict r2 = d + 2 * rs;
    const WT_T *restrict r3 = d + 3 * rs;
    WT_LANES
    for (int64_t l = 0; l < n; l++) {
        WT_T t[4][4];
        for (int j = 0; j < 4; j++) {
            const WT_T d0 = r0[j * cs + l], d1 = r1[j * cs + l], d2 = r2[j * cs + l];
            const WT_T d3 = r3[j * cs + l];
            t[0][j] = d0 - d2;
            t[1][j] = d1 + d2;
            t[2][j] = d2 - d1;
            t[3][j] = d1 - d3;
        }
        for (int k = 0; k < 4; k++) {
            WT_T *restrict o = out + 4 * k * plane + l;
            o[0] = t[k][0] - t[k][2];
            o[plane] = t[k][1] + t[k][2];
            o[2 * plane] = t[k][2] - t[k][1];
            o[3 * plane] = t[k][1] - t[k][3];
        }
    }
}

/* y00 .. y11: the tile's four output pixels (spare ones point at scratch).
 * n <= CF_WINO_LANES. Two passes through a fixed-size local array: each loop
 * then holds 4 runtime-strided streams, not 16 (which would not fit the
 * general registers), and the array's offsets are constants. The sums are
 * those of wt_at2 applied to rows, then to columns. */
static inline WT_TGT void WT_FN(wt_output2)(const WT_T *restrict mt, int64_t plane, int64_t n,
                                            const WT_T *restrict bias, int has_bias, int relu,
                                            WT_T *restrict y00, WT_T *restrict y01,
                                            WT_T *restrict y10, WT_T *restrict y11)
{
    WT_T t[4][2][CF_WINO_LANES];
    for (int k = 0; k < 4; k++) {
        const WT_T *restrict r0 = mt + 4 * k * plane, *restrict r1 = r0 + plane;
        const WT_T *restrict r2 = r1 + plane, *restrict r3 = r2 + plane;
        WT_LANES
        for (int64_t l = 0; l < n; l++) {
            t[k][0][l] = r0[l] + r1[l] + r2[l];
            t[k][1][l] = r1[l] - r2[l] - r3[l];
        }
    }
    WT_LANES
    for (int64_t l = 0; l < n; l++) {
        WT_T v00 = t[0][0][l] + t[1][0][l] + t[2][0][l], v01 = t[0][1][l] + t[1][1][l] + t[2][1][l];
        WT_T v10 = t[1][0][l] - t[2][0][l] - t[3][0][l], v11 = t[1][1][l] - t[2][1][l] - t[3][1][l];
        if (has_bias) {
            v00 += bias[l];
            v01 += bias[l];
            v10 += bias[l];
            v11 += bias[l];
        }
        if (relu) {
            v00 = v00 > 0 ? v00 : (WT_T)0;
            v01 = v01 > 0 ? v01 : (WT_T)0;
            v10 = v10 > 0 ? v10 : (WT_T)0;
            v11 = v11 > 0 ? v11 : (WT_T)0;
        }
        y00[l] = v00;
        y01[l] = v01;
        y10[l] = v10;
        y11[l] = v11;
    }
}

static inline WT_TGT void WT_FN(wt_dy2)(const WT_T *restrict dy, int64_t rs, int64_t cs,
                                        WT_T *restrict out, int64_t plane, int64_t n)
{
    WT_LANES
    for (int64_t l = 0; l < n; l++) {
        const WT_T d00 = dy[l], d01 = dy[cs + l], d10 = dy[rs + l], d11 = dy[rs + cs + l];
        /* columns: t[a][j] = (A dY)[a][j] */
        const WT_T t[4][2] = {{d00, d01}, {d00 + d10, d01 + d11}, {d00 - d10, d01 - d11},
                              {-d10, -d11}};
        for (int a = 0; a < 4; a++) {
            WT_T *restrict o = out + 4 * a * plane + l;
            o[0] = t[a][0];
            o[plane] = t[a][0] + t[a][1];
            o[2 * plane] = t[a][0] - t[a][1];
            o[3 * plane] = -t[a][1];
        }
    }
}

/* One input tile: out[(k * alpha + l) * plane + lane] = (B^T d B)[k][l], d[i][j]
 * at d + i * rs + j * cs (n lanes each). tmp: alpha * alpha * n values. */
static WT_TGT void WT_FN(wt_input_tile)(int m, const WT_T *d, int64_t rs, int64_t cs,
                                        WT_T *restrict out, int64_t plane, int64_t n,
                                        WT_T *restrict tmp)
{
    const int al = m + 2;
    if (m == 2) {
        WT_FN(wt_input2)(d, rs, cs, out, plane, n);
        return;
    }
    for (int j = 0; j < al; j++) /* columns: tmp[k][j] = sum_i B^T[k][i] d[i][j] */
        if (m == 2)
            WT_FN(wt_bt2)(d + j * cs, rs, tmp + j * n, al * n, n);
        else
            WT_FN(wt_bt4)(d + j * cs, rs, tmp + j * n, al * n, n);
    for (int k = 0; k < al; k++) /* rows: out[k][l] = sum_j tmp[k][j] B^T[l][j] */
        if (m == 2)
            WT_FN(wt_bt2)(tmp + k * al * n, n, out + k * al * plane, plane, n);
        else
            WT_FN(wt_bt4)(tmp + k * al * n, n, out + k * al * plane, plane, n);
}

/* One output tile: Y = A^T Mt A from mt[(k * alpha + l) * plane + lane], then
 * + bias, ReLU, stored to y + i * rs + j * cs for i < rows, j < cols (the
 * pixels inside the output). tmp: alpha * m * n + m * m * n values. */
static WT_TGT void WT_FN(wt_output_tile)(int m, const WT_T *restrict mt, int64_t plane,
                                         int64_t n, const WT_T *bias, int relu,
                                         WT_T *y, int64_t rs, int64_t cs, int rows, int cols,
                                         WT_T *restrict tmp)
{
    const int al = m + 2;
    if (m == 2) {
        /* pixels outside the output go to scratch */
        WT_T *p00 = y, *p01 = cols > 1 ? y + cs : tmp, *p10 = rows > 1 ? y + rs : tmp;
        WT_T *p11 = rows > 1 && cols > 1 ? y + rs + cs : tmp;
        if (bias != NULL && relu)
            WT_FN(wt_output2)(mt, plane, n, bias, 1, 1, p00, p01, p10, p11);
        else if (bias != NULL)
            WT_FN(wt_output2)(mt, plane, n, bias, 1, 0, p00, p01, p10, p11);
        else if (relu)
            WT_FN(wt_output2)(mt, plane, n, bias, 0, 1, p00, p01, p10, p11);
        else
            WT_FN(wt_output2)(mt, plane, n, bias, 0, 0, p00, p01, p10, p11);
        return;
    }
    WT_T *restrict t2 = tmp + al * m * n;
    for (int k = 0; k < al; k++) /* rows: tmp[k][j] = sum_l Mt[k][l] A^T[j][l] */
        if (m == 2)
            WT_FN(wt_at2)(mt + k * al * plane, plane, tmp + k * m * n, n, n);
        else
            WT_FN(wt_at4)(mt + k * al * plane, plane, tmp + k * m * n, n, n);
    for (int j = 0; j < m; j++) /* columns: t2[i][j] = sum_k A^T[i][k] tmp[k][j] */
        if (m == 2)
            WT_FN(wt_at2)(tmp + j * n, m * n, t2 + j * n, m * n, n);
        else
            WT_FN(wt_at4)(tmp + j * n, m * n, t2 + j * n, m * n, n);
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            const WT_T *restrict v = t2 + (i * m + j) * n;
            WT_T *restrict o = y + i * rs + j * cs;
            if (bias != NULL && relu) {
                WT_LANES
    for (int64_t l = 0; l < n; l++) {
                    const WT_T r = v[l] + bias[l];
                    o[l] = r > 0 ? r : (WT_T)0;
                }
            } else if (bias != NULL) {
                for (int64_t l = 0; l < n; l++)
                    o[l] = v[l] + bias[l];
            } else if (relu) {
                for (int64_t l = 0; l < n; l++)
                    o[l] = v[l] > 0 ? v[l] : (WT_T)0;
            } else {
                for (int64_t l = 0; l < n; l++)
                    o[l] = v[l];
            }
        }
}

/* One dy tile of the kernel gradient: out[(k * alpha + l) * plane + lane] =
 * (A dY A^T)[k][l], dY[i][j] (m x m) at dy + i * rs + j * cs. tmp: alpha * m * n. */
static WT_TGT void WT_FN(wt_dy_tile)(int m, const WT_T *dy, int64_t rs, int64_t cs,
                                     WT_T *restrict out, int64_t plane, int64_t n,
                                     WT_T *restrict tmp)
{
    const int al = m + 2;
    if (m == 2) {
        WT_FN(wt_dy2)(dy, rs, cs, out, plane, n);
        return;
    }
    for (int j = 0; j < m; j++) /* columns: tmp[k][j] = sum_i A[k][i] dY[i][j] */
        if (m == 2)
            WT_FN(wt_a2)(dy + j * cs, rs, tmp + j * n, m * n, n);
        else
            WT_FN(wt_a4)(dy + j * cs, rs, tmp + j * n, m * n, n);
    for (int k = 0; k < al; k++) /* rows: out[k][l] = sum_j tmp[k][j] A[l][j] */
        if (m == 2)
            WT_FN(wt_a2)(tmp + k * m * n, n, out + k * al * plane, plane, n);
        else
            WT_FN(wt_a4)(tmp + k * m * n, n, out + k * al * plane, plane, n);
}

/* The block's channel sums for dbias: acc[l] += v[l], l < n. */
static WT_TGT void WT_FN(wt_add_row)(WT_T *restrict acc, const WT_T *restrict v, int64_t n)
{
    for (int64_t l = 0; l < n; l++)
        acc[l] += v[l];
}
