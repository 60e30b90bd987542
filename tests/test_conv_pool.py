"""The fused convolution + pooling ops (cnnfast.conv2d_pool2d and its backward).

The contract: ``conv2d_pool2d`` equals ``pool2d(conv2d(...))`` bit for bit
(values and indices), and ``conv2d_pool2d_backward`` equals
``pool2d_backward`` then ``conv2d_backward``; both against the reference
too. The fused C drivers have their own paths (whole images per thread, a
shared padded batch when there are fewer images than threads, row blocks of
the kernel gradient that must hold whole pooling windows, the input gradient
unpooling each image as it pads it, and the unfused fallbacks for small
batches, strided convolutions and huge dilations): each is hit here on every
SIMD level, with 1 and 2 threads.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import simd_levels
from hypothesis import given, settings
from hypothesis import strategies as st

import cnnfast
from cnnfast import _kernels, _spec
from cnnfast import reference as ref

LEVELS = simd_levels()
# the level each test found, restored after it changes the cap
_START_LEVEL = cnnfast.simd_level()


def _unfused(x, k, b, conv, pool, activation, fmt="channels_last"):
    z = cnnfast.conv2d(x, k, b, data_format=fmt, activation=activation, **conv)
    y, idx = cnnfast.pool2d(z, data_format=fmt, return_indices=True, **pool)
    return z, y, idx


def _unfused_backward(dy, x, k, z, y, idx, conv, pool, activation, input_grad,
                      fmt="channels_last"):
    if activation == "relu":
        dy = dy * (y > 0)
    dz = cnnfast.pool2d_backward(dy, z, data_format=fmt, indices=idx, **pool)
    return cnnfast.conv2d_backward(dz, x, k, data_format=fmt, input_grad=input_grad, **conv)


def _fused(x, k, b, conv, pool, activation, fmt="channels_last"):
    return cnnfast.conv2d_pool2d(
        x, k, b, data_format=fmt, activation=activation, pool_size=pool["pool_size"],
        pool_strides=pool["strides"], pool_padding=pool["padding"], pool_mode=pool["mode"],
        return_indices=True, **conv)


def _fused_backward(dy, x, k, y, idx, conv, pool, activation, input_grad, fmt="channels_last"):
    return cnnfast.conv2d_pool2d_backward(
        dy, x, k, idx, y, data_format=fmt, activation=activation,
        pool_size=pool["pool_size"], pool_strides=pool["strides"],
        pool_padding=pool["padding"], pool_mode=pool["mode"], input_grad=input_grad, **conv)


# (name, x NHWC, kernel HWCF, conv geometry, pooling)
PATHS = [
    ("mnist-layer1", (6, 28, 28, 1), (3, 3, 1, 32), dict(padding="same"),
     dict(pool_size=2, strides=None, padding="valid", mode="max")),
    ("mnist-layer2", (5, 14, 14, 32), (3, 3, 32, 64), dict(padding="same"),
     dict(pool_size=2, strides=None, padding="valid", mode="max")),
    ("odd-sizes-min-gaps", (4, 13, 11, 3), (3, 2, 3, 7), dict(padding="same"),
     dict(pool_size=(2, 3), strides=(3, 3), padding="valid", mode="min")),
    ("few-images", (1, 9, 9, 2), (3, 3, 2, 40), dict(padding="same"),
     dict(pool_size=3, strides=None, padding="valid", mode="max")),
    ("narrow-filters", (5, 8, 10, 20), (3, 3, 20, 3), dict(padding="valid"),
     dict(pool_size=2, strides=None, padding="valid", mode="max")),
    ("strided-dilated-conv", (4, 17, 15, 5), (3, 3, 5, 9),
     dict(strides=2, padding="same", dilation_rate=(1, 2)),
     dict(pool_size=2, strides=(2, 3), padding="valid", mode="max")),
    ("huge-dilation-fallback", (4, 5, 5, 3), (2, 2, 3, 4),
     dict(padding="same", dilation_rate=1000),
     dict(pool_size=2, strides=None, padding="valid", mode="max")),
    # the convolution pads within bounds but its input gradient (a convolution of dy
    # padded by (k - 1) * dilation) does not: dy is unpooled whole, ReLU mask included
    ("input-gradient-unpooled-whole", (4, 132, 132, 2), (3, 3, 2, 16),
     dict(padding="valid", dilation_rate=64),
     dict(pool_size=2, strides=None, padding="valid", mode="max")),
    ("row-blocks-wide-image", (4, 6, 300, 2), (3, 3, 2, 5), dict(padding="same"),
     dict(pool_size=2, strides=None, padding="valid", mode="max")),
    ("row-blocks-tall-window", (4, 9, 200, 3), (2, 2, 3, 6), dict(padding="same"),
     dict(pool_size=(3, 2), strides=(4, 2), padding="valid", mode="min")),
    ("whole-output-window", (4, 4, 5, 2), (2, 2, 2, 3), dict(padding="valid"),
     dict(pool_size=(3, 4), strides=None, padding="valid", mode="max")),
    # 48 filters or more: the 6 x 64 forward tile (AVX-512 float32) over groups of
    # pooled rows (9 + 9 + 2 here), a partial last filter panel, a window of 3 rows,
    # windows with gaps (no grouping), and fewer images than threads
    ("wide-tile-grouped-rows", (3, 40, 20, 5), (3, 3, 5, 64), dict(padding="same"),
     dict(pool_size=2, strides=None, padding="valid", mode="max")),
    ("wide-tile-masked-filters", (3, 30, 11, 4), (3, 3, 4, 50), dict(padding="same"),
     dict(pool_size=3, strides=None, padding="valid", mode="min")),
    ("wide-tile-window-gaps", (3, 20, 13, 3), (3, 3, 3, 70), dict(padding="same"),
     dict(pool_size=2, strides=3, padding="valid", mode="max")),
    ("wide-tile-few-images", (1, 12, 12, 6), (3, 3, 6, 64), dict(padding="same"),
     dict(pool_size=2, strides=None, padding="valid", mode="max")),
    # fewer images than threads, each item padding the rows its windows read:
    # windows with gaps, a strided convolution, and "valid" read in place
    ("few-images-window-gaps", (1, 17, 9, 3), (3, 3, 3, 20), dict(padding="same"),
     dict(pool_size=2, strides=3, padding="valid", mode="min")),
    ("few-images-strided-conv", (1, 15, 14, 4), (3, 3, 4, 64),
     dict(strides=2, padding="same", dilation_rate=(2, 1)),
     dict(pool_size=2, strides=None, padding="valid", mode="max")),
    ("few-images-valid", (1, 12, 12, 32), (3, 3, 32, 64), dict(padding="valid"),
     dict(pool_size=2, strides=None, padding="valid", mode="max")),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", PATHS, ids=[c[0] for c in PATHS])
def test_fused_paths_match_unfused_and_reference(case, dtype):
    _, xs, ks, conv, pool = case
    rng = np.random.default_rng(sum(map(ord, case[0])))
    x = rng.standard_normal(xs).astype(dtype)
    k = rng.standard_normal(ks).astype(dtype)
    b = rng.standard_normal(ks[-1]).astype(dtype)
    tol = dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    checked_ref = None
    try:
        for level in LEVELS:
            _kernels.set_simd_cap(level)
            per_threads = []
            for threads in (1, 2):
                cnnfast.set_num_threads(threads)
                z, y, idx = _unfused(x, k, b, conv, pool, "relu")
                yf, idxf = _fused(x, k, b, conv, pool, "relu")
                assert np.array_equal(yf, y), f"{level}/{threads}: fused values differ"
                assert np.array_equal(idxf, idx), f"{level}/{threads}: fused indices differ"
                dy = np.cos(np.arange(y.size)).reshape(y.shape).astype(dtype)
                want = _unfused_backward(dy, x, k, z, y, idx, conv, pool, "relu", True)
                got_k = _fused_backward(dy, x, k, yf, idxf, conv, pool, "relu", False)
                got_x = _fused_backward(dy, x, k, yf, idxf, conv, pool, "relu", True)
                assert got_k[0] is None
                np.testing.assert_array_equal(got_x[0], want[0])
                for g in (got_k, got_x):
                    np.testing.assert_allclose(g[1], want[1], **tol)
                    np.testing.assert_allclose(g[2], want[2], **tol)
                per_threads.append((yf, got_k[1], got_k[2]))
                # against the oracle at every level: the fused kernels share their
                # pooling rows with pool2d, so fused == unfused alone cannot see a
                # wrong row
                if checked_ref is None:
                    zr = ref.conv2d(x, k, b, activation="relu", **conv)
                    yr = ref.pool2d(zr, **pool)
                    dzr = ref.pool2d_backward(dy * (yr > 0), zr, **pool)
                    checked_ref = (yr, dzr, *ref.conv2d_backward(dzr, x, k, **conv))
                yr, dzr, dxr, dkr, dbr = checked_ref
                np.testing.assert_allclose(yf, yr, **tol, err_msg=f"{level} forward")
                np.testing.assert_allclose(got_x[0], dxr, **tol, err_msg=f"{level} dx")
                np.testing.assert_allclose(got_k[1], dkr, **tol, err_msg=f"{level} dkernel")
                np.testing.assert_allclose(got_k[2], dbr, **tol, err_msg=f"{level} dbias")
            for a1, a2 in zip(*per_threads):
                assert np.array_equal(a1, a2), f"{level}: 1 vs 2 threads differ"
    finally:
        _kernels.set_simd_cap(_START_LEVEL)
        cnnfast.set_num_threads(0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", PATHS, ids=[c[0] for c in PATHS])
def test_dead_windows_in_the_indices_are_the_relu_mask(case, dtype):
    """The layers' form of the fused pair (``mark_dead``): indices -1 where ReLU
    zeroed the window, and no ``y`` in the backward, give the same bits as the
    public form (plain indices, ``y`` as the mask), on every driver path."""
    _, xs, ks, conv, pool = case
    rng = np.random.default_rng(sum(map(ord, case[0])) + 1)
    x = rng.standard_normal(xs).astype(dtype)
    k = rng.standard_normal(ks).astype(dtype)
    # biases centre each filter's outputs, so that ReLU zeroes some windows, not all
    z = cnnfast.conv2d(x, k, **conv)
    b = -np.median(z.reshape(-1, ks[-1]), axis=0).astype(dtype)
    pp = _spec.conv_pool_spec(x.shape, k.shape, conv.get("strides", 1), conv["padding"],
                              conv.get("dilation_rate", 1), "channels_last", "relu",
                              pool["pool_size"], pool["strides"], pool["padding"], pool["mode"])
    shape = pp.out_shape
    y1, y2 = np.empty(shape, dtype), np.empty(shape, dtype)
    i1, i2 = np.empty(shape, np.int32), np.empty(shape, np.int32)
    _kernels.conv2d_pool2d_forward(x, k, b, y1, i1, pp)
    _kernels.conv2d_pool2d_forward(x, k, b, y2, i2, pp, True)
    assert np.array_equal(y1, y2)
    assert np.array_equal(i2, np.where(y1 > 0, i1, -1))
    dy = rng.standard_normal(shape).astype(dtype)
    grads = []
    for idx, mask in ((i1, y1), (i2, None)):
        g = (np.empty_like(x), np.empty_like(k), np.empty_like(b))
        _kernels.conv2d_pool2d_backward(x, dy, idx, k, *g, pp, mask)
        grads.append(g)
    for a, w in zip(*grads):
        assert np.array_equal(a, w)


@st.composite
def conv_pool_cases(draw):
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    s = draw(st.integers(1, 2))
    d = draw(st.integers(1, 2))
    padding = draw(st.sampled_from(["valid", "same", 1]))
    ph, pw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    psh = draw(st.integers(ph - 1 if ph > 1 else 1, ph + 1))  # overlapping windows too
    psw = draw(st.integers(pw - 1 if pw > 1 else 1, pw + 1))
    pool_padding = draw(st.sampled_from(["valid", "valid", "same"]))
    mode = draw(st.sampled_from(["max", "min"]))
    # sizes that leave a convolution output of at least one pooling window
    eff_h, eff_w = (kh - 1) * d + 1, (kw - 1) * d + 1
    h = draw(st.integers(max(eff_h, ph * s), max(eff_h, ph * s) + 6))
    w = draw(st.integers(max(eff_w, pw * s), max(eff_w, pw * s) + 6))
    n = draw(st.sampled_from([1, 2, 4, 5]))
    c, f = draw(st.integers(1, 4)), draw(st.integers(1, 6))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    fmt = draw(st.sampled_from(["channels_last", "channels_first"]))
    activation = draw(st.sampled_from([None, "relu"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    k = rng.standard_normal((kh, kw, c, f)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype) if draw(st.booleans()) else None
    if fmt == "channels_first":
        x, k = x.transpose(0, 3, 1, 2), k.transpose(3, 2, 0, 1)
    conv = dict(strides=s, padding=padding, dilation_rate=d)
    pool = dict(pool_size=(ph, pw), strides=(psh, psw), padding=pool_padding, mode=mode)
    return x, k, b, conv, pool, activation, fmt


@settings(max_examples=60)
@given(conv_pool_cases(), st.booleans())
def test_fused_equals_composition(case, input_grad):
    x, k, b, conv, pool, activation, fmt = case
    try:
        z, y, idx = _unfused(x, k, b, conv, pool, activation, fmt)
    except ValueError:
        return  # the pooling does not fit this convolution output: nothing to compare
    yf, idxf = _fused(x, k, b, conv, pool, activation, fmt)
    assert np.array_equal(yf, y) and np.array_equal(idxf, idx)
    dy = np.sin(np.arange(y.size)).reshape(y.shape).astype(x.dtype)
    want = _unfused_backward(dy, x, k, z, y, idx, conv, pool, activation, input_grad, fmt)
    got = _fused_backward(dy, x, k, yf, idxf, conv, pool, activation, input_grad, fmt)
    tol = dict(rtol=2e-4, atol=2e-4) if x.dtype == np.float32 else dict(rtol=1e-10,
                                                                        atol=1e-10)
    if input_grad:
        np.testing.assert_allclose(got[0], want[0], **tol)
    else:
        assert got[0] is None
    np.testing.assert_allclose(got[1], want[1], **tol)
    np.testing.assert_allclose(got[2], want[2], **tol)


def test_avg_pooling_forward_runs_unfused():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    k = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    want = cnnfast.pool2d(cnnfast.conv2d(x, k, padding="same", activation="relu"), 2,
                          mode="avg")
    got = cnnfast.conv2d_pool2d(x, k, padding="same", activation="relu", pool_mode="avg")
    assert np.array_equal(got, want)


def test_gradient_by_finite_differences():
    """float64 central differences of sum(w * conv2d_pool2d(x)) w.r.t. x, kernel, bias."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 6, 5, 2))
    k = rng.standard_normal((3, 2, 2, 3))
    b = rng.standard_normal(3)
    geo = dict(strides=1, padding="same", activation="relu", pool_size=2)
    y, idx = cnnfast.conv2d_pool2d(x, k, b, return_indices=True, **geo)
    wgt = rng.standard_normal(y.shape)
    for input_grad in (True, False):
        dx, dk, db = cnnfast.conv2d_pool2d_backward(
            wgt, x, k, idx, y, strides=1, padding="same", activation="relu", pool_size=2,
            input_grad=input_grad)
        eps = 1e-6
        for arr, grad in ((x, dx), (k, dk), (b, db)):
            if grad is None:
                continue
            for i in rng.choice(arr.size, size=min(arr.size, 12), replace=False):
                old = arr.flat[i]
                arr.flat[i] = old + eps
                up = np.sum(wgt * cnnfast.conv2d_pool2d(x, k, b, **geo))
                arr.flat[i] = old - eps
                dn = np.sum(wgt * cnnfast.conv2d_pool2d(x, k, b, **geo))
                arr.flat[i] = old
                assert abs((up - dn) / (2 * eps) - grad.flat[i]) < 1e-6 * max(1, abs(grad.flat[i]))


def test_out_arrays_are_written():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 8, 8, 3)).astype(np.float32)
    k = rng.standard_normal((3, 3, 3, 8)).astype(np.float32)
    y = np.empty((4, 4, 4, 8), np.float32)
    idx = np.empty((4, 4, 4, 8), np.int32)
    r = cnnfast.conv2d_pool2d(x, k, padding="same", return_indices=True, out=(y, idx))
    assert r[0] is y and r[1] is idx
    dk = np.empty_like(k)
    db = np.empty(8, np.float32)
    dx, dk2, db2 = cnnfast.conv2d_pool2d_backward(np.ones_like(y), x, k, idx, padding="same",
                                                  input_grad=False, out=(None, dk, db))
    assert dx is None and dk2 is dk and db2 is db


def _garbage_indices(shape, rng):
    return (np.full(shape, -5, np.int32), np.full(shape, 2**31 - 1, np.int32),
            rng.integers(-1000, 1000, shape).astype(np.int32))


def test_out_of_range_indices_are_refused():
    """Indices outside the convolution output's plane name the range and the value;
    in the plane but outside their own window, the window."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((4, 8, 8, 2)).astype(np.float32)
    k = rng.standard_normal((3, 3, 2, 4)).astype(np.float32)
    y, idx = cnnfast.conv2d_pool2d(x, k, padding="same", return_indices=True)
    garbage = _garbage_indices(y.shape, rng)
    for bad in garbage[:2]:
        for input_grad in (False, True):
            with pytest.raises(ValueError, match=r"indices must lie in \[0, OH\*OW\) = \[0, 64\)"
                                                 r", got (-5|2147483647) at indices\[0, 0, 0, 0\]"):
                cnnfast.conv2d_pool2d_backward(np.ones_like(y), x, k, bad, padding="same",
                                               input_grad=input_grad)
    with pytest.raises(ValueError, match=r"must lie in|is not in its pooling window"):
        cnnfast.conv2d_pool2d_backward(np.ones_like(y), x, k, garbage[2], padding="same")
    # the plane's last cell: in range, but only in the last window of each plane
    edge = np.full(y.shape, 63, np.int32)
    with pytest.raises(ValueError, match=r"indices\[0, 0, 0, 0\] = 63, cell \(7, 7\) of the "
                                         r"8x8 plane, is not in its pooling window, rows "
                                         r"\[0, 2\) x columns \[0, 2\)"):
        cnnfast.conv2d_pool2d_backward(np.ones_like(y), x, k, edge, padding="same")
    edge[:] = idx
    edge[:, -1, -1, :] = 63
    cnnfast.conv2d_pool2d_backward(np.ones_like(y), x, k, edge, padding="same")


def test_garbage_indices_are_memory_safe_in_the_kernel():
    """The layers call the kernel without the range check (they made the indices):
    whatever the values, a gradient only ever lands inside its own window."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((4, 8, 8, 2)).astype(np.float32)
    k = rng.standard_normal((3, 3, 2, 4)).astype(np.float32)
    y = cnnfast.conv2d_pool2d(x, k, padding="same")
    pp = _spec.conv_pool_spec(x.shape, k.shape, 1, "same", 1, "channels_last", None, 2, None,
                              "valid", "max")
    for bad in _garbage_indices(y.shape, rng):
        for input_grad in (False, True):
            for ymask in (None, y):  # with the ReLU mask applied while unpooling
                dx = np.zeros_like(x) if input_grad else None
                dk = np.zeros_like(k)
                db = np.zeros(4, np.float32)
                _kernels.conv2d_pool2d_backward(x, np.ones_like(y), bad, k, dx, dk, db, pp,
                                                ymask)
                assert np.isfinite(dk).all() and np.isfinite(db).all()


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(pool_mode="median"), ValueError, "pool_mode"),
    (dict(pool_size=0), ValueError, "pool_size"),
    (dict(pool_size=9), ValueError, "pool_size"),
    (dict(activation="tanh"), ValueError, "activation"),
    (dict(pool_mode="avg", return_indices=True), ValueError, "return_indices"),
    (dict(pool_padding=((3, 0), (0, 0))), ValueError, "pool_padding"),
])
def test_forward_errors(kwargs, exc, match):
    x = np.zeros((2, 8, 8, 3), np.float32)
    k = np.zeros((3, 3, 3, 4), np.float32)
    with pytest.raises(exc, match=match):
        cnnfast.conv2d_pool2d(x, k, padding="same", **kwargs)


def test_backward_errors():
    x = np.zeros((2, 8, 8, 3), np.float32)
    k = np.zeros((3, 3, 3, 4), np.float32)
    y, idx = cnnfast.conv2d_pool2d(x, k, padding="same", return_indices=True)
    dy = np.ones_like(y)
    with pytest.raises(ValueError, match="dy must have the shape"):
        cnnfast.conv2d_pool2d_backward(dy[:, :2], x, k, idx, padding="same")
    with pytest.raises(ValueError, match="indices must have the shape"):
        cnnfast.conv2d_pool2d_backward(dy, x, k, idx[:1], padding="same")
    with pytest.raises(TypeError, match="indices must be integers"):
        cnnfast.conv2d_pool2d_backward(dy, x, k, idx.astype(np.float32), padding="same")
    with pytest.raises(ValueError, match="needs the forward output y"):
        cnnfast.conv2d_pool2d_backward(dy, x, k, idx, padding="same", activation="relu")
    with pytest.raises(ValueError, match="'max' or 'min'"):
        cnnfast.conv2d_pool2d_backward(dy, x, k, idx, padding="same", pool_mode="avg")
    with pytest.raises(ValueError, match="out must be a tuple"):
        cnnfast.conv2d_pool2d_backward(dy, x, k, idx, padding="same", out=np.empty(3))


@pytest.mark.parametrize("fmt", ["channels_last", "channels_first"])
@pytest.mark.parametrize("pool_strides", [None, 1], ids=["fused", "unfused"])
def test_out_arrays_hold_the_same_values(fmt, pool_strides):
    """out= for conv2d_pool2d (values and indices) and its backward (dx, dkernel,
    dbias), on the fused and the unfused paths, in both layouts: the arrays given are
    returned and hold exactly what the calls without out= return."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 6, 6, 3))
    k = rng.standard_normal((3, 3, 3, 4))
    b = rng.standard_normal(4)
    if fmt == "channels_first":
        x, k = x.transpose(0, 3, 1, 2).copy(), k.transpose(3, 2, 0, 1).copy()
    args = dict(padding="same", data_format=fmt, activation="relu", pool_strides=pool_strides)
    y, idx = cnnfast.conv2d_pool2d(x, k, b, return_indices=True, **args)
    yo, io = np.full_like(y, np.nan), np.full_like(idx, -7)
    got = cnnfast.conv2d_pool2d(x, k, b, return_indices=True, out=(yo, io), **args)
    assert got[0] is yo and got[1] is io
    np.testing.assert_array_equal(yo, y)
    np.testing.assert_array_equal(io, idx)
    dy = rng.standard_normal(y.shape)
    want = cnnfast.conv2d_pool2d_backward(dy, x, k, idx, y=y, **args)
    outs = tuple(np.full_like(w, np.nan) for w in want)
    got = cnnfast.conv2d_pool2d_backward(dy, x, k, idx, y=y, out=outs, **args)
    for g, o, w in zip(got, outs, want):
        assert g is o
        np.testing.assert_array_equal(o, w)
