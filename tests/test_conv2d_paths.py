"""Each internal code path of the convolution kernels, reached on purpose.

The C kernels choose between several drivers by shape (see csrc/conv2d_*_impl.h):
direct forward (whole images per thread, or a shared padded batch when there
are fewer images than threads), the narrow-output forward (very few filters),
an im2col forward for huge strides/dilations, the stride-1 input gradient
(a forward convolution of dy), or for strided ones a stride-1 convolution
per output phase (GEMM + col2im beyond 16 phases), and the kernel
gradient either direct from the padded image or through im2col tiles. The
property tests draw small random shapes and may miss some of these; here each
one is hit deliberately, on every SIMD level this CPU has, with 1 and 2
threads, against the reference, and bit-identical across thread counts.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from conftest import simd_level_params, simd_levels

import cnnfast
from cnnfast import _kernels, reference

LEVELS = simd_levels()
# the level each test found, restored after it changes the cap
_START_LEVEL = cnnfast.simd_level()

# (name, x shape NHWC, kernel shape HWCF, strides, padding, dilation)
CASES = [
    ("direct-fwd+direct-dk", (5, 7, 7, 17), (3, 3, 17, 19), 1, "same", 1),
    ("direct-dk-stride2", (4, 9, 8, 16), (3, 3, 16, 30), 2, "same", 1),
    ("narrow-fwd", (3, 6, 9, 20), (3, 2, 20, 2), 1, "valid", 1),
    ("narrow-dx-of-1-channel", (3, 8, 8, 1), (3, 3, 1, 24), 1, "same", 1),
    ("few-images-fwd", (1, 9, 7, 5), (3, 3, 5, 33), 1, ((2, 0), (1, 3)), 1),
    # fewer images than threads: each item pads the rows it reads into its thread's
    # own buffer, strided and dilated; a 2-pixel-wide image, whose partial tiles
    # read several padded rows on; "valid" reads x in place
    ("few-images-fwd-strided-dilated", (1, 13, 12, 7), (3, 3, 7, 40), (2, 1), "same", (2, 2)),
    ("few-images-fwd-narrow-image", (1, 9, 2, 3), (3, 2, 3, 20), 1, "same", 1),
    ("few-images-fwd-valid", (1, 8, 9, 6), (3, 3, 6, 20), 1, "valid", 1),
    ("few-images-wide-fwd-strided", (1, 12, 11, 5), (3, 3, 5, 64), (2, 2), ((0, 2), (1, 1)), 1),
    ("im2col-fwd-huge-dilation", (2, 5, 5, 3), (2, 2, 3, 4), 1, "same", 1000),
    ("im2col-fwd-huge-stride", (2, 6, 5, 2), (2, 3, 2, 5), (4000, 3000), 3, 1),
    ("phases-dx", (3, 9, 10, 5), (3, 3, 5, 7), (2, 3), "same", (1, 2)),
    # phases of 13 columns: 2 whole 6-pixel tiles a row, the row ends run together
    # through the row-spanning pixel tile (AVX2 float32), 40 channels = 16 + 16 + 8
    ("phases-dx-row-ends-spilled", (2, 23, 26, 40), (3, 3, 40, 24), 2, "same", 1),
    ("phases-dx-stride-gt-kernel", (2, 11, 9, 17), (2, 2, 17, 35), (3, 4), ((1, 0), (2, 1)), 1),
    ("phases-dx-dilated-even", (3, 12, 12, 4), (4, 3, 4, 6), 2, "same", (2, 2)),
    ("col2im-dx-many-phases", (2, 12, 12, 3), (3, 3, 3, 5), (5, 4), "same", 1),
    ("im2col-dk-few-images", (1, 6, 6, 17), (3, 3, 17, 9), 1, "same", 1),
    ("dilated-direct", (4, 10, 9, 16), (3, 2, 16, 20), 1, 2, (2, 3)),
    ("taps-dk-1-channel", (4, 9, 8, 1), (3, 3, 1, 33), 1, "same", 1),
    ("taps-dk-rgb-strided", (5, 11, 10, 3), (5, 4, 3, 20), (2, 3), "same", (1, 2)),
    # 25 (tap, channel) rows = 14 + 11: the bias gradient rides in a spare row of
    # the second block (a run of ones after the padded image); 40 filters = a
    # full and a masked column panel
    ("taps-dk-bias-in-spare-row", (4, 12, 11, 1), (5, 5, 1, 40), 1, "same", 1),
    # 48 filters or more: the 6 x 64 forward tile (AVX-512 float32; tiles span rows)
    ("wide-fwd-few-images", (1, 7, 9, 6), (3, 3, 6, 64), 1, "same", 1),
    ("wide-fwd-dilated-strided", (3, 13, 11, 4), (3, 2, 4, 100), (2, 1), "same", (2, 2)),
    # 48 filters or more: the 6 x 64 kernel-gradient tile (AVX-512)
    ("direct-dk-wide-tile", (4, 6, 7, 5), (3, 3, 5, 70), 1, "same", 1),
    ("direct-dk-wide-tile-strided", (5, 9, 8, 24), (3, 3, 24, 70), 2, "same", 1),
    ("direct-dk-wide-tile-64ch", (4, 6, 6, 64), (3, 3, 64, 50), 1, "same", 1),
    # channels in blocks of 16 (at most 32, or under 48 filters): the 16 x 16 tile
    ("direct-dk-t16-strided", (5, 9, 8, 16), (3, 3, 16, 130), 2, "same", 1),
    # 17-32 channels whose kernel row has more than 64 values (AVX-512 float32):
    # the kernel-row tile (6 vectors along a kernel row x 4 filters, partials
    # transposed); one row of 5 x 32 values is two segments, 69 values need
    # masks, 6 or 9 filters a partial group of 4
    ("direct-dk-kernel-rows-32ch", (4, 7, 6, 32), (3, 3, 32, 64), 1, "same", 1),
    ("direct-dk-kernel-rows-two-segments", (4, 7, 9, 32), (2, 5, 32, 6), 1, "same", (2, 1)),
    ("direct-dk-kernel-rows-masked-strided", (4, 9, 10, 23), (3, 3, 23, 9), (2, 2), "same", 1),
    ("direct-dk-t16-64ch-few-filters", (4, 5, 6, 64), (2, 3, 64, 20), 1, "same", 1),
    # "valid" padding whose padded copy would be the image itself: the forward
    # and the kernel gradient read x in place (the 14 x 32 tile may read past
    # an image, so the last images are still copied)
    ("in-place-valid-wide-fwd-t16-dk", (4, 9, 10, 16), (3, 3, 16, 64), 1, "valid", 1),
    ("in-place-valid-direct-fwd-last-copied", (5, 7, 9, 3), (3, 2, 3, 20), 1, "valid", 1),
    ("in-place-valid-strided-kernel-rows-dk", (4, 11, 11, 32), (3, 3, 32, 64), 2, "valid", 1),
    # wide images: the kernel gradient works through blocks of output rows
    ("direct-dk-row-blocks", (4, 5, 300, 16), (3, 3, 16, 8), 1, "same", 1),
    ("taps-dk-row-blocks", (4, 4, 520, 2), (2, 2, 2, 5), (1, 2), "same", 1),
]


def _run(x, k, b, strides, padding, dilation):
    y = cnnfast.conv2d(x, k, b, strides, padding, dilation)
    dy = np.cos(np.arange(y.size, dtype=np.float64)).reshape(y.shape).astype(x.dtype)
    dx, dk, db = cnnfast.conv2d_backward(dy, x, k, strides, padding, dilation)
    return y, dy, dx, dk, db


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_path_matches_reference(case, dtype):
    _, xs, ks, strides, padding, dilation = case
    rng = np.random.default_rng(zlib.crc32(case[0].encode()))  # the same every run
    x = rng.standard_normal(xs).astype(dtype)
    k = rng.standard_normal(ks).astype(dtype)
    b = rng.standard_normal(ks[-1]).astype(dtype)
    tol = dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    ref = None
    try:
        for level in LEVELS:
            _kernels.set_simd_cap(level)
            results = []
            for threads in (1, 2):
                cnnfast.set_num_threads(threads)
                results.append(_run(x, k, b, strides, padding, dilation))
            for a1, a2 in zip(results[0], results[1]):
                assert np.array_equal(a1, a2), f"{level}: 1 vs 2 threads differ"
            y, dy, dx, dk, db = results[0]
            if ref is None:
                ref = (
                    reference.conv2d(x, k, b, strides, padding, dilation),
                    reference.conv2d_backward(dy, x, k, strides, padding, dilation),
                )
            np.testing.assert_allclose(y, ref[0], **tol, err_msg=f"{level} forward")
            rdx, rdk, rdb = ref[1]
            np.testing.assert_allclose(dx, rdx, **tol, err_msg=f"{level} dx")
            np.testing.assert_allclose(dk, rdk, **tol, err_msg=f"{level} dkernel")
            np.testing.assert_allclose(db, rdb, **tol, err_msg=f"{level} dbias")
    finally:
        _kernels.set_simd_cap(_START_LEVEL)
        cnnfast.set_num_threads(None)


@pytest.mark.parametrize("level", simd_level_params())
def test_fused_relu_matches_reference(level):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 8, 8, 16)).astype(np.float32)
    for f in (3, 40):  # narrow and direct kernels
        k = rng.standard_normal((3, 3, 16, f)).astype(np.float32)
        b = rng.standard_normal(f).astype(np.float32)
        try:
            _kernels.set_simd_cap(level)
            y = cnnfast.conv2d(x, k, b, padding="same", activation="relu")
        finally:
            _kernels.set_simd_cap(_START_LEVEL)
        expected = np.maximum(reference.conv2d(x, k, b, padding="same"), 0)
        np.testing.assert_allclose(y, expected, rtol=2e-4, atol=2e-4)
        assert (y >= 0).all()


def test_kernel_grad_false_gives_the_same_dx():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 7, 6, 4))
    k = rng.standard_normal((3, 3, 4, 5))
    dy = rng.standard_normal((3, 4, 3, 5))
    dx, dk, db = cnnfast.conv2d_backward(dy, x, k, 2, "same", kernel_grad=False)
    assert dk is None and db is None
    assert np.array_equal(dx, cnnfast.conv2d_backward(dy, x, k, 2, "same")[0])
    assert cnnfast.conv2d_backward(dy, x, k, 2, "same", input_grad=False,
                                   kernel_grad=False) == (None, None, None)


@pytest.mark.parametrize("level", simd_level_params())
# whole streamed vectors, a masked tail (direct and pixel tiles); the 6 x 64 tile
@pytest.mark.parametrize("filters, hw, channels", [(32, 28, 1), (21, 28, 1), (64, 16, 3)])
def test_streamed_forward_output_has_the_same_bits(level, filters, hw, channels):
    """A forward output of 8 MB or more is stored with non-temporal stores
    (the tiles' streaming variants): the same bits as the same images run in
    halves below that size, for 1 and 2 threads, into an aligned output and
    into one at a 4-byte offset (the tiles then store plainly)."""
    rng = np.random.default_rng(filters)
    x = rng.standard_normal((128, hw, hw, channels)).astype(np.float32)
    k = rng.standard_normal((3, 3, channels, filters)).astype(np.float32)
    b = rng.standard_normal(filters).astype(np.float32)
    # the whole output at or above the streaming size, each half below it
    assert 128 * hw * hw * filters * 4 >= 8 << 20 > 64 * hw * hw * filters * 4
    try:
        _kernels.set_simd_cap(level)
        halves = np.concatenate([cnnfast.conv2d(x[:64], k, b, padding="same", activation="relu"),
                                 cnnfast.conv2d(x[64:], k, b, padding="same", activation="relu")])
        for threads in (1, 2):
            cnnfast.set_num_threads(threads)
            whole = cnnfast.conv2d(x, k, b, padding="same", activation="relu")
            assert np.array_equal(whole, halves)
            raw = np.empty(whole.size + 16, np.float32)
            start = (-raw.ctypes.data // 4) % 16 + 1  # one float past a 64-byte boundary
            out = raw[start:start + whole.size].reshape(whole.shape)
            cnnfast.conv2d(x, k, b, padding="same", activation="relu", out=out)
            assert np.array_equal(out, halves)
    finally:
        _kernels.set_simd_cap(_START_LEVEL)
        cnnfast.set_num_threads(None)
