"""The AVX2 tiles' edge cases, at the avx2 level, against the reference.

AVX2 has its own tiles for 16 ymm registers (csrc/ukernel.c, AVX2 section): the
row-spanning pixel tile of the forward (6 pixels anywhere x 16 filters, which also
runs the stride-1 input gradient and the fused convolution + pooling) and the
narrow-output tile (vectors over input channels, for at most 4 filters: a first
layer's input gradient). Each case here aims at an edge of one of them: pixel and
filter tails, tiles that span rows, strides, dilations, paddings, tiny images,
batch 1, channel tails of the narrow tile, and each result is bit-identical for
1, 2 and 3 threads. Skipped on CPUs without AVX2.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from conftest import simd_levels

import cnnfast
from cnnfast import _kernels, reference

pytestmark = pytest.mark.skipif(
    "avx2" not in simd_levels(), reason="this CPU has no AVX2 (the cases run its tiles)"
)
_START_LEVEL = cnnfast.simd_level()

# (name, x shape NHWC, kernel shape HWCF, strides, padding, dilation)
CASES = [
    # pixel tile: 14 x 14 = 32 tiles of 6 and a partial one of 4, spanning rows
    ("px-14x14-partial-tile", (2, 14, 14, 8), (3, 3, 8, 16), 1, "same", 1),
    # one input channel: the taps without a channel loop; 32 filters = 2 panels
    ("px-first-layer-3x3", (3, 28, 28, 1), (3, 3, 1, 32), 1, "same", 1),
    ("px-first-layer-5x5-filter-tail", (2, 11, 13, 1), (5, 5, 1, 21), 1, "same", 1),
    # filter tails (masked weights and stores), fewer pixels than a tile
    ("px-tiny-image", (1, 2, 2, 3), (3, 3, 3, 17), 1, "same", 1),
    ("px-one-pixel", (1, 1, 1, 5), (1, 1, 5, 9), 1, "valid", 1),
    ("px-5-filters", (2, 7, 5, 6), (2, 2, 6, 5), 1, "valid", 1),
    ("px-strided-dilated", (3, 13, 12, 5), (3, 3, 5, 30), (2, 3), "same", (2, 1)),
    ("px-asymmetric-padding", (2, 9, 10, 4), (3, 2, 4, 19), 1, ((2, 0), (1, 3)), 1),
    ("px-valid-in-place", (4, 8, 9, 7), (3, 3, 7, 16), 1, "valid", 1),
    ("px-channel-unroll-tail", (2, 6, 7, 13), (3, 3, 13, 40), 1, "same", 1),
    # narrow tile: 1 output channel (the input gradient of a first layer), 32
    # and 20 input channels (a channel tail of 4), dy channels 5 (tail only)
    ("narrow-dx-of-1-channel-3x3", (2, 12, 13, 1), (3, 3, 1, 32), 1, "same", 1),
    ("narrow-dx-of-1-channel-5x5-tail", (1, 9, 11, 1), (5, 5, 1, 20), 1, "same", 1),
    ("narrow-dx-of-1-channel-5-filters", (2, 7, 7, 1), (3, 3, 1, 5), 1, "same", 1),
    ("narrow-dx-strided", (2, 11, 10, 2), (3, 3, 2, 24), 2, "same", 1),
    ("narrow-dx-dilated", (1, 12, 12, 1), (3, 3, 1, 12), 1, "same", (2, 3)),
    # narrow tile in the forward: 1-4 filters, 4 or more channels
    ("narrow-fwd-3-filters", (2, 9, 9, 7), (3, 3, 7, 3), 1, "same", 1),
    ("narrow-fwd-1-filter-strided", (3, 10, 11, 19), (2, 3, 19, 1), (2, 2), "same", 1),
    ("narrow-fwd-tiny", (1, 1, 2, 4), (1, 2, 4, 2), 1, "valid", 1),
]


def _run(x, k, b, strides, padding, dilation):
    y = cnnfast.conv2d(x, k, b, strides, padding, dilation)
    yr = cnnfast.conv2d(x, k, b, strides, padding, dilation, activation="relu")
    dy = np.cos(np.arange(y.size, dtype=np.float64)).reshape(y.shape).astype(x.dtype)
    dx, dk, db = cnnfast.conv2d_backward(dy, x, k, strides, padding, dilation)
    return y, yr, dy, dx, dk, db


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_avx2_tile_matches_reference_for_any_thread_count(case, dtype):
    _, xs, ks, strides, padding, dilation = case
    rng = np.random.default_rng(zlib.crc32(case[0].encode()))
    x = rng.standard_normal(xs).astype(dtype)
    k = rng.standard_normal(ks).astype(dtype)
    b = rng.standard_normal(ks[-1]).astype(dtype)
    tol = dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    try:
        _kernels.set_simd_cap("avx2")
        results = []
        for threads in (1, 2, 3):
            cnnfast.set_num_threads(threads)
            results.append(_run(x, k, b, strides, padding, dilation))
    finally:
        _kernels.set_simd_cap(_START_LEVEL)
        cnnfast.set_num_threads(None)
    for other, threads in ((results[1], 2), (results[2], 3)):
        for a1, a2 in zip(results[0], other):
            assert np.array_equal(a1, a2), f"1 vs {threads} threads differ"
    y, yr, dy, dx, dk, db = results[0]
    ry = reference.conv2d(x, k, b, strides, padding, dilation)
    rdx, rdk, rdb = reference.conv2d_backward(dy, x, k, strides, padding, dilation)
    np.testing.assert_allclose(y, ry, **tol, err_msg="forward")
    np.testing.assert_allclose(yr, np.maximum(ry, 0), **tol, err_msg="forward + relu")
    np.testing.assert_allclose(dx, rdx, **tol, err_msg="dx")
    np.testing.assert_allclose(dk, rdk, **tol, err_msg="dkernel")
    np.testing.assert_allclose(db, rdb, **tol, err_msg="dbias")


@pytest.mark.parametrize("shape", [(3, 14, 14, 1, 32), (2, 12, 10, 16, 20)])
def test_avx2_fused_pool_matches_unfused_bits(shape):
    """The fused convolution + 2x2 max pooling runs the pixel tile over bands of
    rows, the unfused forward over whole images: the same bits (tests/test_conv_pool.py
    checks the backward at every level)."""
    n, h, w, c, f = shape
    rng = np.random.default_rng(5)
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    k = rng.standard_normal((3, 3, c, f)).astype(np.float32)
    b = rng.standard_normal(f).astype(np.float32)
    try:
        _kernels.set_simd_cap("avx2")
        fused = cnnfast.conv2d_pool2d(x, k, b, padding="same", activation="relu")
        y = cnnfast.conv2d(x, k, b, padding="same", activation="relu")
        unfused = cnnfast.pool2d(y, 2)
    finally:
        _kernels.set_simd_cap(_START_LEVEL)
    assert np.array_equal(fused, unfused)
