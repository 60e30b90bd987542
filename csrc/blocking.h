/* Tile and block sizes of the micro-kernels and their drivers, in one place.
 *
 * A section per instruction set (scalar, AVX2 + FMA, AVX-512) holds the
 * register tiles of that level's micro-kernels (ukernel.c; their tables in
 * cf_ukernel_select_*), then a section holds the drivers' blocking, which is
 * the same at every level (conv2d.c's drivers, gemm.c).
 *
 * Every value here fixes the order in which sums are formed, so changing one
 * changes results in their last bits (still the same for any thread count):
 * the tests compare each level against the oracle, and the benchmarks
 * (BENCHMARKS.md) are where a new value earns its place.
 *
 * MR is a tile's rows (pixels, or (tap, channel) pairs for kernel
 * gradients), NR its columns (filters or channels), VW the lanes of one
 * vector. The register tiles are also spelled out as X-macro row lists in
 * ukernel.c (UK_ROWS and the like); ukernel.c checks at compile time that
 * those lists have the lengths given here. */
#ifndef CNNFAST_BLOCKING_H
#define CNNFAST_BLOCKING_H

#include <stdint.h>

/* ------------------------------------------------------------------------ */
/* Scalar (the portable definition and fallback).                           */

/* 4 x 8 accumulators: small enough for a compiler to keep in registers on
 * any target, and the reference layout the SIMD tiles reproduce. */
#define CF_SCALAR_MR 4
#define CF_SCALAR_NR 8
/* no vectors: the narrow kernel (vectors over channels) does not exist */
#define CF_SCALAR_VW 1

/* ------------------------------------------------------------------------ */
/* AVX2 + FMA (16 ymm registers).                                           */

/* 6 rows x 2 vectors = 12 ymm accumulators, leaving 4 registers for the two
 * B vectors and the broadcast A value of a k step. */
#define CF_AVX2_MR 6
/* 2 vectors of 8 floats / 4 doubles */
#define CF_AVX2_NR_F32 16
#define CF_AVX2_NR_F64 8
/* The row-spanning pixel tile of the forward (float32): 6 pixels at any
 * offsets x 2 vectors, the same 12 accumulators as the direct tile. */
#define CF_AVX2_PX_MR 6
/* lanes per ymm vector (the narrow kernel's channel padding) */
#define CF_AVX2_VW_F32 8
#define CF_AVX2_VW_F64 4

/* ------------------------------------------------------------------------ */
/* NEON (AArch64 Advanced SIMD, 32 q registers of 128 bits).                 */

/* 14 rows x 2 vectors = 28 q accumulators, the 2 B vectors and the A value
 * of a k step in the other 4 (A loaded as a scalar and used by lane, so a
 * broadcast costs a load, not a vector op). 14 rows, as AVX-512's: a 14- or
 * 28-pixel image row is whole tiles. */
#define CF_NEON_MR 14
/* 2 vectors of 4 floats / 2 doubles */
#define CF_NEON_NR_F32 8
#define CF_NEON_NR_F64 4
#define CF_NEON_VW_F32 4
#define CF_NEON_VW_F64 2

/* ------------------------------------------------------------------------ */
/* AVX-512 (32 zmm registers).                                              */

/* The main tile: 14 rows x 2 vectors = 28 zmm accumulators, 2 B vectors and
 * the broadcasts in the other 4 (A is broadcast straight from memory). */
#define CF_AVX512_MR 14
#define CF_AVX512_NR_F32 32
#define CF_AVX512_NR_F64 16
/* lanes per zmm vector (the narrow kernel's channel padding) */
#define CF_AVX512_VW_F32 16
#define CF_AVX512_VW_F64 8

/* The short taps tile (kernel gradients): 10 rows x 2 vectors, for first
 * layers whose reduction has at most 10 (tap, channel) rows (a 3x3 kernel
 * on 1 channel), which would leave 4 of the main tile's 14 rows idle. */
#define CF_UKERNEL_SHORT_MR 10

/* The channel-block taps tile (kernel gradients, float32): 16 consecutive
 * channels of one tap x 16 filters, one accumulator per channel: a dy
 * vector per pixel feeds 16 FMAs whose broadcasts fold into memory
 * operands. Rows and columns are both this size. */
#define CF_UKERNEL_CHANNEL_BLOCK 16

/* The wide tiles: 6 rows x 4 vectors = 24 accumulators, 4 B vectors and
 * the broadcasts in the other 8: the forward's 6 pixels x 64 filters
 * (float32), the kernel gradient's 6 (tap, channel) rows x 4 vectors (both
 * types), the GEMM's 6 rows x 64 columns. Pixels are at arbitrary offsets,
 * so a forward tile may span image rows. */
#define CF_UKERNEL_WIDE_MR 6

/* The kernel-row taps tile (kernel gradients, float32): 6 vectors of 16
 * contiguous padded-image values (96: one kernel row of 3 taps x 32
 * channels) x 4 broadcast filters = 24 accumulators. */
#define CF_UKERNEL_KROW_LEN 96
#define CF_UKERNEL_KROW_NF 4

/* The narrow forward tile (very few filters): output pixels per call, one
 * accumulator vector (over input channels) each. */
#define CF_NARROW_ROWS 8

/* The largest MR of any tile: callers size per-tile offset arrays with it. */
#define CF_UKERNEL_MAX_MR 16

/* ------------------------------------------------------------------------ */
/* Drivers: the same at every level (measured on a 2-core AVX-512 machine).  */

/* Micro-panels of MR rows per tile of the im2col forward and the col2im
 * input gradient: the tile's im2col rows (or dcol rows) stay in L2. */
#define CF_CONV_TILE_PANELS 8
/* Filters up to which the forward uses the narrow kernel (vectors over
 * channels): fewer would leave most of an NR-wide tile idle. */
#define CF_CONV_NARROW_MAX_F 4
/* Filters from which the forward uses the 6 x 64 tile (AVX-512 float32):
 * enough to fill most of its 4 vectors. */
#define CF_CONV_WIDE_MIN_F 48
/* Scratch for the convolution rows of a group of pooled rows (fused
 * pooling): an L2-resident band. */
#define CF_CONV_BAND_BYTES (int64_t)(96 * 1024)
/* Elements a padded image copy may exceed 4x the input by before the
 * im2col path is used instead (huge strides, dilations or paddings). */
#define CF_CONV_PAD_ALLOWANCE (int64_t)(1 << 20)
/* Strided input gradients by phases up to this many (sh * sw): the phase
 * tables grow with sh * sw, and larger strides use col2im. */
#define CF_CONV_MAX_PHASES 16

/* Kernel gradient. Output pixels per chunk of the im2col path. */
#define CF_CONV_DW_CHUNK 512
/* Images from which the direct kernel gradient is used: enough to make
 * chunks of. */
#define CF_CONV_DW_DIRECT_MIN_N 4
/* Output pixels per block of rows of the direct kernel gradient: the dy
 * rows and padded input rows a block touches stay in L2 across all taps
 * and panels. */
#define CF_CONV_DW_BLOCK_PIXELS 512
/* At most this many chunks, and at most this many partial elements in all:
 * each chunk's partial is written and summed once. */
#define CF_CONV_DW_MAX_CHUNKS 32
#define CF_CONV_DW_MAX_PARTIAL (int64_t)(16 * 1024 * 1024)
/* Output pixels a direct kernel-gradient chunk covers at least (whole
 * images): each chunk's partial is written and read back once, so small
 * images make few, larger chunks. */
#define CF_CONV_DW_MIN_PIXELS 1536
/* Prefetch the next image of a kernel-gradient chunk (prefetch.h) when its
 * inputs take at most this many bytes and each image makes at least this
 * many tile calls to spread the requests over. */
#define CF_CONV_DW_PREFETCH_MAX_BYTES (int64_t)(256 * 1024)
#define CF_CONV_DW_PREFETCH_MIN_CALLS 16
/* Tile choice of the direct kernel gradient (see backward_kernel_direct):
 * the kernel-row tile for at most this many channels whose kernel row holds
 * more than CF_CONV_DW_KROW_MIN_ROW values (with more channels the 16 x 16
 * and wide tiles are faster); the channel-block tile for at most
 * CF_CONV_DW_CHANNEL_BLOCK_MAX_C channels or fewer than
 * CF_CONV_DW_WIDE_MIN_F filters; the wide tile from CF_CONV_DW_WIDE_MIN_F
 * filters, which fill most of its 4 vectors. */
#define CF_CONV_DW_KROW_MAX_C 32
#define CF_CONV_DW_KROW_MIN_ROW 64
#define CF_CONV_DW_CHANNEL_BLOCK_MAX_C 32
#define CF_CONV_DW_WIDE_MIN_F 48
/* Elements per block of the partials' reduction: one block's accumulators
 * on the stack, in L1, each summed over the chunks in chunk order. */
#define CF_CONV_DW_REDUCE_BLOCK 512
/* im2col kernel gradient: elements of patches per sub-tile (512 KiB of
 * float32, in L2), and the bounds on its pixels. */
#define CF_CONV_DW_IM2COL_ELEMS 131072
#define CF_CONV_DW_IM2COL_MIN_PIXELS 32
#define CF_CONV_DW_IM2COL_MAX_PIXELS 512

/* GEMM. Reduction block: KC x n of B in L2, KC x MR of A in L1. */
#define CF_GEMM_KC 384
/* Columns from which rows of A read in place use the 6 x 64 tile. */
#define CF_GEMM_WIDE_MIN_N 48
/* Products of at most this many rows (rows of A read in place) run on the
 * few-rows kernel, one block of 4 vectors of columns per call. */
#define CF_GEMM_ROWS_MAX_MR 4
/* Panels of A^T copied per block when A's columns are contiguous (a
 * transposed view, e.g. the Dense kernel gradient x.T @ dz). */
#define CF_GEMM_AT_PANELS 4
/* Largest column stride of B the packer's int32 gather indices reach. */
#define CF_GEMM_GATHER_MAX_JS ((int64_t)0x7fffffff / 64)

/* Forward outputs of at least this many bytes are stored with non-temporal
 * stores (the tiles' streaming variants, ukernel.h). */
#define CF_CONV_STREAM_MIN_BYTES ((int64_t)8 << 20)

/* Output pixels per forward call up to which the weights are read in place
 * rather than packed into panel streams (a one-image forward of a 14 x 14 or
 * 28 x 28 layer). */
#define CF_CONV_PACK_MIN_PIXELS 1024

/* Winograd (winograd.h). Tiles per work item: whole tile rows of one image
 * adding up to about this many, so an item's transformed tiles and products
 * stay in L2. Lanes (channels or filters) per tile transform call. */
#define CF_WINO_BLOCK_TILES 96
#define CF_WINO_LANES 64

/* Split `items` (images, pixels or Winograd work items) into at most `want`
 * chunks (also capped by CF_CONV_DW_MAX_CHUNKS and by the memory of one
 * `partial`-element partial per chunk) of `*chunk` items each; returns the
 * number of chunks. Depends on the problem only, never on the thread count:
 * that is what makes the kernel gradients bit-identical for any number of
 * threads. */
static inline int64_t cf_dw_chunks(int64_t items, int64_t want, int64_t partial,
                                   int64_t *chunk)
{
    int64_t n = want < CF_CONV_DW_MAX_CHUNKS ? want : CF_CONV_DW_MAX_CHUNKS;
    if (n < 1)
        n = 1;
    while (n > 1 && n * partial > CF_CONV_DW_MAX_PARTIAL)
        n--;
    *chunk = (items + n - 1) / n;
    return (items + *chunk - 1) / *chunk;
}

#endif
