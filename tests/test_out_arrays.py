"""``out=`` on the functional API: the same results written into caller buffers."""

from __future__ import annotations

import numpy as np
import pytest

import cnnfast


@pytest.mark.parametrize("fmt", ["channels_last", "channels_first"])
def test_conv_out(fmt):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 6, 7, 4) if fmt == "channels_last" else (3, 4, 6, 7))
    k = rng.standard_normal((3, 3, 4, 5) if fmt == "channels_last" else (5, 4, 3, 3))
    b = rng.standard_normal(5)
    y = cnnfast.conv2d(x, k, b, 2, "same", data_format=fmt, activation="relu")
    buf = np.full_like(y, np.nan)
    assert cnnfast.conv2d(x, k, b, 2, "same", data_format=fmt, activation="relu", out=buf) is buf
    assert np.array_equal(buf, y)
    dy = rng.standard_normal(y.shape)
    ref = cnnfast.conv2d_backward(dy, x, k, 2, "same", data_format=fmt)
    outs = (np.empty_like(x), np.empty_like(k), np.empty(5))
    got = cnnfast.conv2d_backward(dy, x, k, 2, "same", data_format=fmt, out=outs)
    for g, o, r in zip(got, outs, ref):
        assert g is o and np.array_equal(g, r)
    part = cnnfast.conv2d_backward(dy, x, k, 2, "same", data_format=fmt,
                                   out=(None, outs[1], None))
    assert part[1] is outs[1] and np.array_equal(part[0], ref[0])


@pytest.mark.parametrize("fmt", ["channels_last", "channels_first"])
def test_pool_out(fmt):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 6, 6, 3) if fmt == "channels_last" else (2, 3, 6, 6))
    y, idx = cnnfast.pool2d(x, 2, data_format=fmt, return_indices=True)
    yb, ib = np.empty_like(y), np.empty_like(idx)
    got = cnnfast.pool2d(x, 2, data_format=fmt, return_indices=True, out=(yb, ib))
    assert got[0] is yb and got[1] is ib
    assert np.array_equal(yb, y) and np.array_equal(ib, idx)
    assert cnnfast.avg_pool2d(x, 2, data_format=fmt, out=yb) is yb
    dy = rng.standard_normal(y.shape)
    dx = cnnfast.pool2d_backward(dy, x, 2, data_format=fmt, indices=idx)
    dxb = np.empty_like(dx)
    assert cnnfast.max_pool2d_backward(dy, x, 2, data_format=fmt, indices=idx, out=dxb) is dxb
    assert np.array_equal(dxb, dx)


@pytest.mark.parametrize(
    "out",
    [np.empty((2, 3, 3, 3), np.float32), np.empty((2, 3, 3, 4)),
     np.empty((2, 3, 3, 3))[:, ::-1], np.empty((2, 3, 3, 3)).T, [1, 2]],
)
def test_bad_out(out):
    x = np.ones((2, 6, 6, 3))
    with pytest.raises(ValueError, match="out"):
        cnnfast.pool2d(x, 2, out=out)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
@pytest.mark.parametrize("shape", [(), 0, 7, (3, 0, 2), (5, 13, 11, 3)])
def test_empty_aligned(shape, dtype):
    a = cnnfast.empty_aligned(shape, dtype)
    want = np.empty(shape, dtype)
    assert a.shape == want.shape and a.dtype == want.dtype
    assert a.flags.c_contiguous and a.flags.writeable
    assert a.size == 0 or a.ctypes.data % 64 == 0  # an empty array has no data to align
    a[...] = 1
    assert np.all(a == 1)


def test_empty_aligned_errors():
    with pytest.raises(ValueError, match="power of two"):
        cnnfast.empty_aligned(3, alignment=48)
    with pytest.raises(ValueError, match="negative"):
        cnnfast.empty_aligned((2, -1))


def _unaligned(shape, dtype=np.float64) -> np.ndarray:
    """A C-contiguous array one byte past an aligned address (np.frombuffer at an offset)."""
    n = int(np.prod(shape))
    buf = np.zeros(n * np.dtype(dtype).itemsize + 1, np.uint8)
    return np.frombuffer(buf.data, dtype, n, offset=1).reshape(shape)


def test_unaligned_out_is_refused_by_name():
    x = np.ones((2, 6, 6, 3))
    k = np.ones((3, 3, 3, 4))
    with pytest.raises(ValueError, match=r"^out must .*not aligned"):
        cnnfast.conv2d(x, k, out=_unaligned((2, 4, 4, 4)))
    with pytest.raises(ValueError, match=r"^out must .*not aligned"):
        cnnfast.pool2d(x, 2, out=_unaligned((2, 3, 3, 3)))
    with pytest.raises(ValueError, match=r"^out must .*not aligned"):
        cnnfast.matmul(np.ones((2, 3)), np.ones((3, 4)), out=_unaligned((2, 4)))
    with pytest.raises(ValueError, match=r"^out\[0\] \(dx\) must .*not aligned"):
        cnnfast.conv2d_backward(np.ones((2, 4, 4, 4)), x, k,
                                out=(_unaligned(x.shape), None, None))
