"""conv2d and conv2d_backward of the compiled engine checked against cnnfast.reference.

Property tests over random shapes, strides, dilations, every padding form,
dtypes and both layouts; float64 central-difference gradient checks; float32
vs float64 agreement; input memory layouts; edge cases.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cnnfast
from cnnfast import reference as ref

TOL = {np.float32: 1e-4, np.float64: 1e-10}


def assert_close(got, want):
    """Same shape and dtype, C-contiguous, values within the dtype's tolerance."""
    assert isinstance(got, np.ndarray)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.flags.c_contiguous
    tol = TOL[want.dtype.type]
    scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


def variant(a: np.ndarray, kind: str) -> np.ndarray:
    """The same values as `a` in another memory layout."""
    if kind == "c":
        return np.ascontiguousarray(a)
    if kind == "fortran":
        return np.asfortranarray(a)
    if kind == "strided":  # every other element of a larger buffer
        big = np.zeros(tuple(2 * s for s in a.shape), a.dtype)
        view = big[tuple(slice(None, None, 2) for _ in a.shape)]
        view[...] = a
        return view
    if kind == "reversed":  # negative strides on every axis
        return np.flip(np.flip(a).copy())
    if kind == "readonly":
        b = a.copy()
        b.flags.writeable = False
        return b
    if kind == "transposed":  # C-contiguous buffer in another axis order, viewed back
        perm = tuple(reversed(range(a.ndim)))
        return np.ascontiguousarray(a.transpose(perm)).transpose(perm)
    if kind == "unaligned":  # C-contiguous at an odd byte offset (np.frombuffer, np.memmap)
        return unaligned(a)
    raise AssertionError(kind)


def unaligned(a: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of `a` one byte past an aligned address (flags.aligned False)."""
    buf = np.empty(a.nbytes + 1, np.uint8)
    out = np.frombuffer(buf.data, a.dtype, a.size, offset=1).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned and out.flags.c_contiguous
    return out


LAYOUTS = ("channels_last", "channels_first")


def to_layout(x_nhwc, k_hwcf, fmt):
    """(x, kernel) given in channels_last order, returned in `fmt`'s order."""
    if fmt == "channels_first":
        return x_nhwc.transpose(0, 3, 1, 2), k_hwcf.transpose(3, 2, 0, 1)
    return x_nhwc, k_hwcf


# ---------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------


@st.composite
def padding_and_sizes(draw, kh, kw, d, s):
    """A padding argument in any contract form and an (h, w) that gives a non-empty output."""
    form = draw(st.sampled_from(["valid", "same", "SAME", "int", "pair", "pairs"]))
    if form in ("valid", "same", "SAME"):
        pads = ((0, 0), (0, 0))
        padding = form
    elif form == "int":
        p = draw(st.integers(0, 2))
        pads, padding = ((p, p), (p, p)), p
    elif form == "pair":
        ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
        pads, padding = ((ph, ph), (pw, pw)), (ph, pw)
    else:
        t, b, l, r = (draw(st.integers(0, 3)) for _ in range(4))
        pads, padding = ((t, b), (l, r)), ((t, b), (l, r))
    if form.lower() == "same":
        lo_h = lo_w = 1
    else:
        lo_h = max(1, (kh - 1) * d[0] + 1 - sum(pads[0]))
        lo_w = max(1, (kw - 1) * d[1] + 1 - sum(pads[1]))
    h = draw(st.integers(lo_h, lo_h + 6))
    w = draw(st.integers(lo_w, lo_w + 6))
    return padding, h, w


@st.composite
def conv_cases(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    s = draw(st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    d = draw(st.one_of(st.integers(1, 2), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    d2 = (d, d) if isinstance(d, int) else d
    s2 = (s, s) if isinstance(s, int) else s
    padding, h, w = draw(padding_and_sizes(kh, kw, d2, s2))
    n = draw(st.sampled_from([0, 1, 1, 2, 3]))
    c, f = draw(st.integers(1, 5)), draw(st.integers(1, 6))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    fmt = draw(st.sampled_from(LAYOUTS))
    use_bias = draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    k = rng.standard_normal((kh, kw, c, f)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype) if use_bias else None
    x, k = to_layout(x, k, fmt)
    return dict(x=x, kernel=k, bias=b, strides=s, padding=padding, dilation_rate=d,
                data_format=fmt)


def _geometry(case):
    return {key: case[key] for key in ("strides", "padding", "dilation_rate", "data_format")}


# ---------------------------------------------------------------------------
# Forward and backward against the reference
# ---------------------------------------------------------------------------


@settings(max_examples=60)
@given(conv_cases(), st.sampled_from([None, "linear", "relu"]))
def test_conv2d_matches_reference(case, activation):
    want = ref.conv2d(**case, activation=activation)
    got = cnnfast.conv2d(**case, activation=activation)
    assert_close(got, want)
    if activation == "relu":
        assert (got >= 0).all()


@settings(max_examples=60)
@given(conv_cases(), st.booleans())
def test_conv2d_backward_matches_reference(case, input_grad):
    y = ref.conv2d(case["x"], case["kernel"], **_geometry(case))
    dy = np.random.default_rng(y.size).standard_normal(y.shape).astype(y.dtype)
    want = ref.conv2d_backward(dy, case["x"], case["kernel"], **_geometry(case))
    got = cnnfast.conv2d_backward(dy, case["x"], case["kernel"], **_geometry(case),
                                  input_grad=input_grad)
    assert len(got) == 3
    if input_grad:
        assert_close(got[0], want[0])
    else:
        assert got[0] is None
    assert_close(got[1], want[1])
    assert_close(got[2], want[2])


@settings(max_examples=30)
@given(conv_cases())
def test_conv2d_float32_agrees_with_float64(case):
    c32 = dict(case, x=case["x"].astype(np.float32), kernel=case["kernel"].astype(np.float32),
               bias=None if case["bias"] is None else case["bias"].astype(np.float32))
    c64 = dict(c32, x=c32["x"].astype(np.float64), kernel=c32["kernel"].astype(np.float64),
               bias=None if c32["bias"] is None else c32["bias"].astype(np.float64))
    y32, y64 = cnnfast.conv2d(**c32), cnnfast.conv2d(**c64)
    assert y32.dtype == np.float32 and y64.dtype == np.float64
    scale = max(1.0, float(np.abs(y64).max())) if y64.size else 1.0
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-4 * scale)
    dy = np.random.default_rng(1).standard_normal(y64.shape)
    g32 = cnnfast.conv2d_backward(dy.astype(np.float32), c32["x"], c32["kernel"],
                                  **_geometry(case))
    g64 = cnnfast.conv2d_backward(dy, c64["x"], c64["kernel"], **_geometry(case))
    for a, b in zip(g32, g64):
        assert a.dtype == np.float32
        s = max(1.0, float(np.abs(b).max())) if b.size else 1.0
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * s)


# ---------------------------------------------------------------------------
# Central differences (float64)
# ---------------------------------------------------------------------------

GRAD_CASES = [
    # (x shape NHWC, kernel KH KW, strides, padding, dilation, layout)
    ((2, 5, 5, 2), (3, 3), 1, "valid", 1, "channels_last"),
    ((1, 6, 5, 2), (3, 2), 2, "same", 1, "channels_last"),
    ((2, 5, 6, 1), (2, 3), (1, 2), ((1, 0), (2, 1)), (2, 1), "channels_first"),
    ((1, 7, 7, 3), (3, 3), 3, 1, 2, "channels_first"),
    ((1, 4, 4, 2), (4, 4), 1, "same", 1, "channels_last"),
]


@pytest.mark.parametrize("xs, ks, s, p, d, fmt", GRAD_CASES)
def test_conv2d_backward_central_differences(xs, ks, s, p, d, fmt):
    rng = np.random.default_rng(11)
    x = rng.standard_normal(xs)
    k = rng.standard_normal((*ks, xs[3], 3))
    b = rng.standard_normal(3)
    x, k = to_layout(x, k, fmt)
    geo = dict(strides=s, padding=p, dilation_rate=d, data_format=fmt)
    y = cnnfast.conv2d(x, k, b, **geo)
    w = rng.standard_normal(y.shape)  # L = sum(y * w), so dL/dy = w

    def loss(xx, kk, bb):
        return float(np.sum(cnnfast.conv2d(xx, kk, bb, **geo) * w))

    dx, dk, db = cnnfast.conv2d_backward(w, x, k, **geo)
    h = 1e-6
    for arr, grad, name in ((x, dx, "dx"), (k, dk, "dkernel"), (b, db, "dbias")):
        num = np.zeros_like(arr)
        for i in np.ndindex(arr.shape):
            orig = arr[i]
            arr[i] = orig + h
            lp = loss(x, k, b)
            arr[i] = orig - h
            lm = loss(x, k, b)
            arr[i] = orig
            num[i] = (lp - lm) / (2 * h)
        np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-6, err_msg=name)


# ---------------------------------------------------------------------------
# Memory layouts and dtypes of the inputs
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fortran", "strided", "reversed", "readonly", "transposed",
                                  "unaligned"])
@pytest.mark.parametrize("fmt", LAYOUTS)
def test_conv2d_any_input_layout(kind, fmt):
    rng = np.random.default_rng(5)
    x, k = to_layout(rng.standard_normal((2, 7, 6, 3)), rng.standard_normal((3, 2, 3, 4)), fmt)
    b = rng.standard_normal(4)
    geo = dict(strides=(2, 1), padding="same", dilation_rate=1, data_format=fmt)
    y = cnnfast.conv2d(x, k, b, **geo)
    dy = rng.standard_normal(y.shape)
    grads = cnnfast.conv2d_backward(dy, x, k, **geo)
    xv, kv, bv, dyv = (variant(a, kind) for a in (x, k, b, dy))
    saved = [a.copy() for a in (xv, kv, bv, dyv)]
    # The boundary may copy: results must be exactly those of C-contiguous inputs.
    np.testing.assert_array_equal(cnnfast.conv2d(xv, kv, bv, **geo), y)
    for got, want in zip(cnnfast.conv2d_backward(dyv, xv, kv, **geo), grads):
        assert got.flags.c_contiguous
        np.testing.assert_array_equal(got, want)
    for a, s in zip((xv, kv, bv, dyv), saved):  # inputs untouched
        np.testing.assert_array_equal(a, s)
    assert_close(y, ref.conv2d(x, k, b, **geo))


def test_conv2d_outputs_are_new_arrays():
    x = np.ones((1, 3, 3, 1))
    k = np.ones((1, 1, 1, 1))
    y = cnnfast.conv2d(x, k)
    assert not np.shares_memory(y, x) and y.flags.writeable and y.flags.owndata
    y[...] = 5
    assert (x == 1).all()


@pytest.mark.parametrize(
    "xdt, kdt, bdt, want",
    [
        (np.float32, np.float32, np.float32, np.float32),
        (np.float64, np.float64, None, np.float64),
        (np.float32, np.float64, None, np.float64),
        (np.float16, np.float16, None, np.float32),
        (np.int64, np.float32, None, np.float64),
        (np.int32, np.int32, None, np.float64),
    ],
)
def test_conv2d_dtype_promotion(xdt, kdt, bdt, want):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((2, 5, 5, 2)) * 3).astype(xdt)
    k = (rng.standard_normal((3, 3, 2, 3)) * 3).astype(kdt)
    b = None if bdt is None else rng.standard_normal(3).astype(bdt)
    y = cnnfast.conv2d(x, k, b, padding=1)
    assert y.dtype == want
    assert_close(y, ref.conv2d(x, k, b, padding=1))
    dx, dk, db = cnnfast.conv2d_backward(np.ones(y.shape, y.dtype), x, k, padding=1)
    assert dx.dtype == dk.dtype == db.dtype == want


def test_conv2d_accepts_lists():
    x = [[[[1.0], [2.0]], [[3.0], [4.0]]]]  # (1, 2, 2, 1)
    k = [[[[1.0]], [[1.0]]], [[[1.0]], [[1.0]]]]  # (2, 2, 1, 1)
    y = cnnfast.conv2d(x, k)
    assert y.shape == (1, 1, 1, 1) and y.item() == 10.0


# ---------------------------------------------------------------------------
# Edge cases
# ---------------------------------------------------------------------------

EDGE_CASES = [
    # name, x NHWC, kernel KH KW, F, strides, padding, dilation
    ("1x1 input, 1x1 kernel", (2, 1, 1, 3), (1, 1), 2, 1, "valid", 1),
    ("1x1 input, 3x3 same", (2, 1, 1, 3), (3, 3), 2, 1, "same", 1),
    ("1x1 input, 3x3 pad 1", (1, 1, 1, 1), (3, 3), 1, 1, 1, 1),
    ("kernel = input", (2, 5, 4, 3), (5, 4), 4, 1, "valid", 1),
    ("kernel = input, same", (2, 5, 4, 3), (5, 4), 4, 1, "same", 1),
    ("stride > kernel", (2, 9, 8, 2), (2, 2), 3, 3, "valid", 1),
    ("stride > kernel, same", (1, 9, 8, 2), (1, 1), 3, (4, 5), "same", 1),
    ("stride > input", (1, 5, 5, 2), (3, 3), 3, 1000, "same", 1),
    ("huge stride valid", (1, 5, 5, 2), (3, 3), 3, 10**6, "valid", 1),
    ("batch 1, one channel", (1, 7, 5, 1), (3, 3), 1, 1, "valid", 1),
    ("odd sizes, even kernel same", (3, 7, 5, 3), (2, 4), 5, 1, "same", 1),
    ("odd sizes, even kernel same s2", (3, 7, 5, 3), (2, 4), 5, 2, "same", 1),
    ("dilation = size", (1, 6, 6, 2), (2, 2), 2, 1, "valid", 5),
    ("dilated same, even kernel", (2, 7, 6, 2), (2, 3), 3, 1, "same", (3, 2)),
    ("many channels", (1, 3, 3, 70), (2, 2), 33, 1, "valid", 1),
    ("wide output", (1, 2, 40, 3), (1, 3), 17, 1, "same", 1),
    ("batch 0", (0, 5, 5, 2), (3, 3), 3, 1, "same", 1),
    ("batch 0 valid", (0, 3, 4, 2), (3, 3), 3, 2, "valid", 1),
]


@pytest.mark.parametrize("fmt", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, xs, ks, f, s, p, d", EDGE_CASES, ids=[c[0] for c in EDGE_CASES])
def test_conv2d_edge_cases(name, xs, ks, f, s, p, d, dtype, fmt):
    rng = np.random.default_rng(len(name))
    x = rng.standard_normal(xs).astype(dtype)
    k = rng.standard_normal((*ks, xs[3], f)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    x, k = to_layout(x, k, fmt)
    geo = dict(strides=s, padding=p, dilation_rate=d, data_format=fmt)
    y = cnnfast.conv2d(x, k, b, **geo)
    assert_close(y, ref.conv2d(x, k, b, **geo))
    dy = rng.standard_normal(y.shape).astype(dtype)
    got = cnnfast.conv2d_backward(dy, x, k, **geo)
    want = ref.conv2d_backward(dy, x, k, **geo)
    for g, w in zip(got, want):
        assert_close(g, w)
    if xs[0] == 0:
        assert y.shape[0] == 0 and got[0].shape == x.shape
        assert not got[1].any() and not got[2].any()


def test_conv2d_batch0_shapes():
    x = np.zeros((0, 6, 5, 3), np.float32)
    k = np.zeros((3, 3, 3, 4), np.float32)
    y = cnnfast.conv2d(x, k, padding="same", strides=2)
    assert y.shape == (0, 3, 3, 4) and y.dtype == np.float32
    y = cnnfast.conv2d(x.transpose(0, 3, 1, 2), k.transpose(3, 2, 0, 1),
                       data_format="channels_first")
    assert y.shape == (0, 4, 4, 3)
    dx, dk, db = cnnfast.conv2d_backward(np.zeros((0, 4, 3, 4), np.float32), x, k)
    assert dx.shape == x.shape and dk.shape == k.shape and db.shape == (4,)
    assert not dk.any() and not db.any()


def test_conv2d_padding_words_case_insensitive():
    rng = np.random.default_rng(0)
    x, k = rng.standard_normal((1, 5, 5, 2)), rng.standard_normal((3, 3, 2, 2))
    base = cnnfast.conv2d(x, k, padding="same")
    for word in ("SAME", "Same"):
        np.testing.assert_array_equal(cnnfast.conv2d(x, k, padding=word), base)
    np.testing.assert_array_equal(cnnfast.conv2d(x, k, padding="VALID"), cnnfast.conv2d(x, k))
    # Every explicit form of the same amounts gives the same result.
    a = cnnfast.conv2d(x, k, padding=1)
    np.testing.assert_array_equal(cnnfast.conv2d(x, k, padding=(1, 1)), a)
    np.testing.assert_array_equal(cnnfast.conv2d(x, k, padding=((1, 1), (1, 1))), a)
    np.testing.assert_array_equal(cnnfast.conv2d(x, k, padding=[[1, 1], [1, 1]]), a)
    np.testing.assert_array_equal(a, base)  # 'same' for 3x3 stride 1 is 1 everywhere


def test_conv2d_relu_fused_equals_relu_after():
    rng = np.random.default_rng(9)
    x, k = rng.standard_normal((2, 6, 6, 3)), rng.standard_normal((3, 3, 3, 5))
    b = rng.standard_normal(5)
    lin = cnnfast.conv2d(x, k, b, padding="same")
    np.testing.assert_array_equal(cnnfast.conv2d(x, k, b, padding="same", activation="linear"),
                                  lin)
    relu = cnnfast.conv2d(x, k, b, padding="same", activation="relu")
    np.testing.assert_array_equal(relu, np.maximum(lin, 0))


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("s, p, d", [(1, "same", 1), (2, "valid", 1), (1, ((2, 0), (1, 3)), 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_medium_shapes(n, s, p, d, dtype):
    # Channel and filter counts beyond one register block / cache block of the
    # fast kernels (and not multiples of any vector width).
    rng = np.random.default_rng(n * 10 + s)
    x = rng.standard_normal((n, 17, 19, 41)).astype(dtype)
    k = (rng.standard_normal((3, 3, 41, 75)) / 10).astype(dtype)
    b = rng.standard_normal(75).astype(dtype)
    geo = dict(strides=s, padding=p, dilation_rate=d)
    y = cnnfast.conv2d(x, k, b, **geo)
    assert_close(y, ref.conv2d(x, k, b, **geo))
    dy = rng.standard_normal(y.shape).astype(dtype)
    for got, want in zip(cnnfast.conv2d_backward(dy, x, k, **geo),
                         ref.conv2d_backward(dy, x, k, **geo)):
        assert_close(got, want)
