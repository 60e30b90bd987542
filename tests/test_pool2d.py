"""pool2d / pool2d_backward (max, avg, min) of the compiled engine against cnnfast.reference.

Covers every padding form (padded cells never win, are not counted by avg),
both layouts, float32/float64, the tie rule (first cell in row-major window
order wins and takes the whole gradient), NaN propagation, return_indices and
the indices= fast path of the backward, gradient checks and edge cases.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import simd_levels
from hypothesis import given, settings
from hypothesis import strategies as st

import cnnfast
from cnnfast import _kernels
from cnnfast import reference as ref
from cnnfast._spec import pool_spec

TOL = {np.float32: 1e-5, np.float64: 1e-12}
MODES = ("max", "avg", "min")
_START = cnnfast.simd_level()  # restored after a test changes the SIMD cap
LAYOUTS = ("channels_last", "channels_first")


def assert_close(got, want):
    assert isinstance(got, np.ndarray)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.flags.c_contiguous
    tol = TOL[want.dtype.type]
    scale = max(1.0, float(np.nanmax(np.abs(want)))) if want.size and not np.isnan(
        want).all() else 1.0
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


def nchw(a):
    return a.transpose(0, 3, 1, 2)


@st.composite
def pool_cases(draw, values="any"):
    """A pooling problem: x and every argument, valid for the contract."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    strides = draw(st.one_of(
        st.none(), st.integers(1, 3), st.tuples(st.integers(1, 4), st.integers(1, 4))))
    form = draw(st.sampled_from(["valid", "same", "Same", "int", "pair", "pairs"]))
    # Every padding side must be smaller than the window on that axis.
    if form == "int":
        padding = draw(st.integers(0, min(kh, kw) - 1))
        pads = ((padding, padding), (padding, padding))
    elif form == "pair":
        padding = (draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1)))
        pads = ((padding[0],) * 2, (padding[1],) * 2)
    elif form == "pairs":
        padding = ((draw(st.integers(0, kh - 1)), draw(st.integers(0, kh - 1))),
                   (draw(st.integers(0, kw - 1)), draw(st.integers(0, kw - 1))))
        pads = padding
    else:
        padding, pads = form, ((0, 0), (0, 0))
    lo_h = 1 if form.lower() == "same" else max(1, kh - sum(pads[0]))
    lo_w = 1 if form.lower() == "same" else max(1, kw - sum(pads[1]))
    h, w = draw(st.integers(lo_h, lo_h + 6)), draw(st.integers(lo_w, lo_w + 6))
    n, c = draw(st.sampled_from([0, 1, 2, 3])), draw(st.integers(1, 5))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    fmt = draw(st.sampled_from(LAYOUTS))
    mode = draw(st.sampled_from(MODES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = values if values != "any" else draw(st.sampled_from(["normal", "ties", "nan"]))
    if kind == "ties":  # few distinct values: many ties inside windows
        x = rng.integers(-2, 3, (n, h, w, c)).astype(dtype)
    elif kind == "distinct":
        x = (rng.permutation(n * h * w * c).reshape(n, h, w, c) * 0.25 - 3).astype(dtype)
    else:
        x = rng.standard_normal((n, h, w, c)).astype(dtype)
        if kind == "nan":
            x[rng.random(x.shape) < 0.15] = np.nan
    if fmt == "channels_first":
        x = nchw(x)
    return dict(x=x, pool_size=(kh, kw) if kh != kw or draw(st.booleans()) else kh,
                strides=strides, padding=padding, mode=mode, data_format=fmt)


def _args(case):
    return {k: v for k, v in case.items() if k != "x"}


@settings(max_examples=60)
@given(pool_cases())
def test_pool2d_matches_reference(case):
    want = ref.pool2d(**case)
    got = cnnfast.pool2d(**case)
    if case["mode"] == "avg":
        assert_close(got, want)
    else:
        # max/min select an input value: exact, NaN where the reference has NaN.
        assert got.dtype == want.dtype and got.flags.c_contiguous
        np.testing.assert_array_equal(got, want)


@settings(max_examples=60)
@given(pool_cases())
def test_pool2d_backward_matches_reference(case):
    y = ref.pool2d(**case)
    dy = np.random.default_rng(y.size).standard_normal(y.shape).astype(y.dtype)
    want = ref.pool2d_backward(dy, **case)
    got = cnnfast.pool2d_backward(dy, **case)
    assert_close(got, want)


@settings(max_examples=50)
@given(pool_cases())
def test_pool2d_return_indices(case):
    if case["mode"] == "avg":
        case["mode"] = "max"
    y_ref, idx_ref = ref.pool2d(**case, return_indices=True)
    y, idx = cnnfast.pool2d(**case, return_indices=True)
    np.testing.assert_array_equal(y, y_ref)
    assert idx.dtype == np.int32 and idx.shape == y.shape and idx.flags.c_contiguous
    np.testing.assert_array_equal(idx, idx_ref)
    # The same y as without indices.
    np.testing.assert_array_equal(cnnfast.pool2d(**case), y)
    # Backward through the indices equals recomputing the winners; x is then only
    # used for its shape and dtype, so a zero x of that shape gives the same dx.
    dy = np.random.default_rng(3).standard_normal(y.shape).astype(y.dtype)
    dx = cnnfast.pool2d_backward(dy, **case)
    args = _args(case)
    np.testing.assert_array_equal(cnnfast.pool2d_backward(dy, case["x"], **args, indices=idx),
                                  dx)
    np.testing.assert_array_equal(
        cnnfast.pool2d_backward(dy, np.zeros_like(case["x"]), **args, indices=idx), dx)
    assert_close(dx, ref.pool2d_backward(dy, **case))


@settings(max_examples=30)
@given(pool_cases(values="ties"))
def test_pool2d_ties_first_cell_takes_whole_gradient(case):
    if case["mode"] == "avg":
        case["mode"] = "min"
    y = cnnfast.pool2d(**case)
    dy = np.ones(y.shape, y.dtype)
    dx = cnnfast.pool2d_backward(dy, **case)
    # dy = 1 everywhere: each window puts exactly 1 on a single cell, its first winner.
    want = ref.pool2d_backward(dy, **case)
    np.testing.assert_array_equal(dx, want)
    assert dx.sum() == y.size


def test_pool2d_tie_rule_by_hand():
    x = np.array([[5, 7, 7], [7, 1, 7], [0, 7, 2]], np.float64)[None, :, :, None]
    y, idx = cnnfast.max_pool2d(x, 3, return_indices=True)
    assert y.item() == 7 and idx.item() == 1
    dx = cnnfast.max_pool2d_backward(np.full((1, 1, 1, 1), 2.5), x, 3)
    want = np.zeros((3, 3))
    want[0, 1] = 2.5
    np.testing.assert_array_equal(dx[0, :, :, 0], want)
    x = -x
    y, idx = cnnfast.min_pool2d(x, 3, return_indices=True)
    assert y.item() == -7 and idx.item() == 1
    np.testing.assert_array_equal(
        cnnfast.min_pool2d_backward(np.full((1, 1, 1, 1), 2.5), x, 3)[0, :, :, 0], want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", MODES)
def test_pool2d_nan_propagates(mode, dtype):
    x = np.arange(16, dtype=dtype).reshape(1, 4, 4, 1)
    x[0, 0, 1, 0] = np.nan  # in the first 2x2 window only, not its first cell
    x[0, 3, 3, 0] = np.nan  # last cell of the last window
    x[0, 2, 2, 0] = -np.inf
    y = cnnfast.pool2d(x, 2, mode=mode)[0, :, :, 0]
    assert np.isnan(y[0, 0]) and np.isnan(y[1, 1])
    assert not np.isnan(y[0, 1]) and not np.isnan(y[1, 0])
    np.testing.assert_array_equal(cnnfast.pool2d(x, 2, mode=mode), ref.pool2d(x, 2, mode=mode))
    dy = np.ones((1, 2, 2, 1), dtype)
    dx = cnnfast.pool2d_backward(dy, x, 2, mode=mode)
    np.testing.assert_array_equal(dx, ref.pool2d_backward(dy, x, 2, mode=mode))
    if mode != "avg":  # the NaN itself is the winner that gets the gradient
        assert dx[0, 0, 1, 0] == 1 and dx[0, 3, 3, 0] == 1
        _, idx = cnnfast.pool2d(x, 2, mode=mode, return_indices=True)
        assert idx[0, 0, 0, 0] == 1 and idx[0, 1, 1, 0] == 15


@pytest.mark.parametrize("mode", ["max", "min"])
def test_pool2d_padding_never_wins(mode):
    sign = 1 if mode == "max" else -1
    x = sign * -np.arange(1.0, 26.0).reshape(1, 5, 5, 1)  # all < 0 for max, > 0 for min
    for padding in ("same", 1, ((2, 0), (0, 2)), (1, 2)):
        y = cnnfast.pool2d(x, 3, 1, padding=padding, mode=mode)
        assert (sign * y < 0).all()
        np.testing.assert_array_equal(y, ref.pool2d(x, 3, 1, padding=padding, mode=mode))


def test_avg_pool2d_counts_only_in_bounds_cells():
    x = np.ones((2, 5, 4, 3))
    for padding in ("same", 1, ((0, 2), (2, 1))):
        y = cnnfast.avg_pool2d(x, 3, 2, padding=padding)
        np.testing.assert_allclose(y, 1.0, rtol=0, atol=1e-15)  # padding is never averaged in


# ---------------------------------------------------------------------------
# Central differences (float64, distinct values so max/min never switch)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "shape, k, s, p, fmt",
    [
        ((2, 5, 5, 2), 2, None, "valid", "channels_last"),
        ((1, 6, 5, 3), 3, 2, "same", "channels_first"),
        ((1, 5, 6, 1), (3, 2), 1, ((2, 0), (1, 1)), "channels_last"),  # overlapping
        ((2, 4, 7, 2), (2, 3), (3, 2), (1, 2), "channels_first"),
    ],
)
def test_pool2d_backward_central_differences(mode, shape, k, s, p, fmt):
    rng = np.random.default_rng(4)
    x = rng.permutation(int(np.prod(shape))).reshape(shape) * 0.01 + 1.0
    if fmt == "channels_first":
        x = np.ascontiguousarray(nchw(x))
    args = dict(pool_size=k, strides=s, padding=p, mode=mode, data_format=fmt)
    y = cnnfast.pool2d(x, **args)
    w = rng.standard_normal(y.shape)
    dx = cnnfast.pool2d_backward(w, x, **args)
    h = 1e-6
    num = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        orig = x[i]
        x[i] = orig + h
        lp = np.sum(cnnfast.pool2d(x, **args) * w)
        x[i] = orig - h
        lm = np.sum(cnnfast.pool2d(x, **args) * w)
        x[i] = orig
        num[i] = (lp - lm) / (2 * h)
    np.testing.assert_allclose(dx, num, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------
# Bound variants, float32 vs float64, layouts, dtypes, edge cases
# ---------------------------------------------------------------------------


@settings(max_examples=20)
@given(pool_cases(values="normal"))
def test_bound_variants_equal_pool2d(case):
    mode = case.pop("mode")
    x = case.pop("x")
    fwd = {"max": cnnfast.max_pool2d, "avg": cnnfast.avg_pool2d, "min": cnnfast.min_pool2d}
    bwd = {"max": cnnfast.max_pool2d_backward, "avg": cnnfast.avg_pool2d_backward,
           "min": cnnfast.min_pool2d_backward}
    y = cnnfast.pool2d(x, mode=mode, **case)
    np.testing.assert_array_equal(fwd[mode](x, **case), y)
    dy = np.ones(y.shape, y.dtype)
    np.testing.assert_array_equal(bwd[mode](dy, x, **case),
                                  cnnfast.pool2d_backward(dy, x, mode=mode, **case))


@settings(max_examples=30)
@given(pool_cases(values="normal"))
def test_pool2d_float32_agrees_with_float64(case):
    x32 = case["x"].astype(np.float32)
    args = _args(case)
    y32 = cnnfast.pool2d(x32, **args)
    y64 = cnnfast.pool2d(x32.astype(np.float64), **args)
    assert y32.dtype == np.float32 and y64.dtype == np.float64
    np.testing.assert_allclose(y32, y64, rtol=1e-5, atol=1e-5)
    dy = np.random.default_rng(0).standard_normal(y64.shape)
    d32 = cnnfast.pool2d_backward(dy.astype(np.float32), x32, **args)
    d64 = cnnfast.pool2d_backward(dy.astype(np.float32).astype(np.float64),
                                  x32.astype(np.float64), **args)
    np.testing.assert_allclose(d32, d64, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["fortran", "strided", "reversed", "readonly", "unaligned"])
@pytest.mark.parametrize("mode", MODES)
def test_pool2d_any_input_layout(kind, mode):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 7, 6, 3))
    y, dy = cnnfast.pool2d(x, 3, 2, "same", mode), None
    dy = rng.standard_normal(y.shape)
    dx = cnnfast.pool2d_backward(dy, x, 3, 2, "same", mode)

    def var(a):
        if kind == "fortran":
            return np.asfortranarray(a)
        if kind == "strided":
            big = np.zeros(tuple(2 * s for s in a.shape), a.dtype)
            big[::2, ::2, ::2, ::2] = a
            return big[::2, ::2, ::2, ::2]
        if kind == "reversed":
            return np.flip(np.flip(a).copy())
        if kind == "unaligned":  # C-contiguous one byte past an aligned address
            buf = np.empty(a.nbytes + 1, np.uint8)
            u = np.frombuffer(buf.data, a.dtype, a.size, offset=1).reshape(a.shape)
            u[...] = a
            return u
        b = a.copy()
        b.flags.writeable = False
        return b

    np.testing.assert_array_equal(cnnfast.pool2d(var(x), 3, 2, "same", mode), y)
    np.testing.assert_array_equal(cnnfast.pool2d_backward(var(dy), var(x), 3, 2, "same", mode),
                                  dx)
    if mode != "avg":
        _, idx = cnnfast.pool2d(x, 3, 2, "same", mode, return_indices=True)
        np.testing.assert_array_equal(
            cnnfast.pool2d_backward(dy, x, 3, 2, "same", mode, indices=var(idx)), dx)


@pytest.mark.parametrize("xdt, want", [(np.float16, np.float32), (np.int64, np.float64),
                                       (np.float32, np.float32)])
def test_pool2d_dtype_promotion(xdt, want):
    x = (np.random.default_rng(1).standard_normal((1, 4, 4, 2)) * 5).astype(xdt)
    for mode in MODES:
        y = cnnfast.pool2d(x, 2, mode=mode)
        assert y.dtype == want
        np.testing.assert_allclose(y, ref.pool2d(x, 2, mode=mode), rtol=1e-6)
        assert cnnfast.pool2d_backward(np.ones(y.shape), x, 2, mode=mode).dtype == np.result_type(
            want, np.float64)


EDGE_CASES = [
    # name, x NHWC, pool, strides, padding
    ("1x1 input", (2, 1, 1, 3), 1, None, "valid"),
    ("1x1 input, pool 2 same", (2, 1, 1, 3), 2, None, "same"),
    ("1x1 input, pool 3 pad 1", (1, 1, 1, 2), 3, 1, 1),
    ("pool = input", (2, 5, 4, 3), (5, 4), None, "valid"),
    ("pool = input, same", (2, 5, 4, 3), (5, 4), 1, "same"),
    ("stride > pool", (2, 9, 8, 2), 2, 3, "valid"),
    ("stride > pool, same", (1, 9, 8, 2), 1, (4, 5), "same"),
    ("stride > input", (1, 5, 5, 2), 2, 1000, "same"),
    ("batch 1, one channel", (1, 7, 5, 1), 3, 2, "valid"),
    ("odd sizes", (3, 7, 5, 3), 2, None, "same"),
    ("odd sizes, overlapping", (3, 7, 5, 3), 3, 1, "same"),
    ("many channels", (1, 4, 4, 70), 2, 1, "valid"),
    ("batch 0", (0, 5, 5, 2), 2, None, "same"),
    ("big window, big pads", (1, 1, 1, 2), (101, 101), 1, 50),
]


@pytest.mark.parametrize("fmt", LAYOUTS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name, xs, k, s, p", EDGE_CASES, ids=[c[0] for c in EDGE_CASES])
def test_pool2d_edge_cases(name, xs, k, s, p, mode, fmt):
    rng = np.random.default_rng(len(name))
    x = rng.standard_normal(xs)
    if fmt == "channels_first":
        x = nchw(x)
    args = dict(pool_size=k, strides=s, padding=p, mode=mode, data_format=fmt)
    y = cnnfast.pool2d(x, **args)
    assert_close(y, ref.pool2d(x, **args))
    dy = rng.standard_normal(y.shape)
    dx = cnnfast.pool2d_backward(dy, x, **args)
    assert_close(dx, ref.pool2d_backward(dy, x, **args))
    if xs[0] == 0:
        assert y.shape[0] == 0 and dx.shape == x.shape
    if mode != "avg":
        yi, idx = cnnfast.pool2d(x, **args, return_indices=True)
        np.testing.assert_array_equal(idx, ref.pool2d(x, **args, return_indices=True)[1])
        np.testing.assert_array_equal(cnnfast.pool2d_backward(dy, x, **args, indices=idx), dx)


def test_pool2d_default_strides_equal_pool_size():
    x = np.random.default_rng(0).standard_normal((1, 6, 6, 2))
    for k in (2, 3, (2, 3)):
        np.testing.assert_array_equal(cnnfast.pool2d(x, k), cnnfast.pool2d(x, k, strides=k))


@pytest.mark.parametrize("mode", ["max", "min"])
def test_large_aligned_backward_streams_same_bits(mode):
    """A 2x2 backward into a 64-byte aligned dx of 8 MB or more uses non-temporal
    stores (csrc/pool2d.c): same bits as into an unaligned dx."""
    rng = np.random.default_rng(12)
    x = rng.standard_normal((8, 64, 64, 64)).astype(np.float32)
    y, idx = cnnfast.pool2d(x, 2, mode=mode, return_indices=True)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    aligned = cnnfast.empty_aligned(x.shape, np.float32)
    raw = np.empty(x.size + 1, np.float32)
    unaligned = raw[1:].reshape(x.shape)
    if unaligned.ctypes.data % 64 == 0:
        unaligned = raw[:-1].reshape(x.shape)
    for out in (aligned, unaligned):
        out.fill(np.nan)
        cnnfast.pool2d_backward(dy, x, 2, mode=mode, indices=idx, out=out)
    assert np.array_equal(aligned, unaligned)
    small = cnnfast.pool2d_backward(dy[:1], x[:1], 2, mode=mode, indices=idx[:1])
    assert np.array_equal(aligned[:1], small)


def _stray_oracle(idx, h, w, kh, kw, sh, sw, pt, pl) -> list[int]:
    """Obvious loops: the (row-major) positions of the indices that are not cells of
    their windows."""
    n, oh, ow, c = idx.shape
    strays = []
    for pos, v in enumerate(idx.reshape(-1)):
        i, j = (pos // c) // ow % oh, (pos // c) % ow
        rows = range(max(i * sh - pt, 0), min(i * sh - pt + kh, h))
        cols = range(max(j * sw - pl, 0), min(j * sw - pl + kw, w))
        if not any(v == r * w + q for r in rows for q in cols):
            strays.append(pos)
    return strays


def _first_stray_oracle(idx, *geometry) -> int:
    strays = _stray_oracle(idx, *geometry)
    return strays[0] if strays else -1


@given(data=st.data())
@settings(max_examples=60, deadline=None)
def test_first_stray_index_kernel(data):
    """The boundary's one-pass window check of user indices, against loops, for any
    thread count: indices from the forward pass it, a single changed one is found."""
    kh, kw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    sh, sw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    h, w = data.draw(st.integers(kh, 9)), data.draw(st.integers(kw, 9))
    padding = data.draw(st.sampled_from(["valid", "same"]))
    x = np.random.default_rng(data.draw(st.integers(0, 99))).permutation(
        2 * h * w * 3).reshape(2, h, w, 3).astype(np.float64)
    _, idx = cnnfast.pool2d(x, (kh, kw), (sh, sw), padding, "max", return_indices=True)
    spec = pool_spec(x.shape, (kh, kw), (sh, sw), padding, "max")
    args = (h, w, kh, kw, sh, sw, spec.pt, spec.pl)
    bad = idx.copy()
    pos = data.draw(st.integers(0, idx.size - 1))
    bad.reshape(-1)[pos] = data.draw(st.sampled_from([-1, h * w, 2**31 - 1, -2**31,
                                                      bad.reshape(-1)[pos] + 1,
                                                      bad.reshape(-1)[pos] - 1,
                                                      bad.reshape(-1)[pos] + w]))
    try:
        for threads in (1, 2, 3):
            cnnfast.set_num_threads(threads)
            assert _kernels.pool2d_first_stray_index(idx, spec) == -1
            assert _kernels.pool2d_first_stray_index(bad, spec) == _first_stray_oracle(
                bad, *args)
    finally:
        cnnfast.set_num_threads(None)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geo", [(2, 2, 0), (3, 2, 0), (2, 3, 1), (3, 3, 1)],
                         ids=["2x2s2", "3x3s2-overlap", "2x2s3-pad", "3x3s3-pad"])
def test_backward_kernel_counts_stray_indices_at_every_simd_level(dtype, geo):
    """The backward counts indices that are not cells of their window (the boundary
    refuses them without a second pass): 0 for the forward's indices, the oracle's
    count for changed ones, in every row variant (2x2 fast, general, scalar tails)."""
    k, s, pad = geo
    rng = np.random.default_rng(k * 10 + s)
    try:
        for level in simd_levels():
            _kernels.set_simd_cap(level)
            for c in (3, 16, 21):
                x = rng.permutation(2 * 9 * 8 * c).reshape(2, 9, 8, c).astype(dtype)
                padding = ((pad, pad), (pad, pad))
                y, idx = cnnfast.pool2d(x, k, s, padding, "max", return_indices=True)
                spec = pool_spec(x.shape, k, s, padding, "max")
                shape = (k, k, s, s, spec.pt, spec.pl)
                dx = np.empty_like(x)
                dy = np.ones_like(y)
                assert _kernels.pool2d_backward(dy, None, idx, dx, spec, True) == 0, level
                bad = idx.copy()
                flat = bad.reshape(-1)
                picks = rng.choice(flat.size, 5, replace=False)
                flat[picks] = rng.integers(-3, 9 * 8 + 3, 5)
                strays = len(_stray_oracle(bad, 9, 8, *shape))
                assert _kernels.pool2d_backward(dy, None, bad, dx, spec, True) == strays, level
                assert _kernels.pool2d_backward(dy, None, bad, dx, spec) == 0  # not asked
                assert (_kernels.pool2d_first_stray_index(bad, spec) >= 0) == (strays > 0)
    finally:
        _kernels.set_simd_cap(_START)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["max", "min"])
def test_2x2_rows_give_the_scalar_bits_at_every_simd_level(dtype, mode):
    """The 2x2 / stride-2 rows without indices take max/min instructions where a
    window block holds no NaN: the same bits as the ordered updates of the scalar row
    (the first of equal values, -0 against +0 included; the first NaN, its payload
    kept), with and without indices, for channel counts with full vectors and
    tails at every level."""
    rng = np.random.default_rng(7)
    levels = simd_levels()  # read before the cap below lowers them
    uint = np.uint32 if dtype == np.float32 else np.uint64
    nan_payload = np.array([0x7FC01234 if dtype == np.float32 else 0x7FF8000000001234],
                           dtype=uint).view(dtype)[0]
    for c in (8, 16, 19, 35):
        # image 0: ties of -0 and +0 only; 1: ties and infinities; 2: NaNs as well
        x = rng.integers(-1, 2, (3, 8, 6, c)).astype(dtype)
        x[0] = np.where(rng.random(x[0].shape) < 0.5, -0.0, 0.0)
        x[0, 0::4, ::2] = 0.0  # +0 first in some windows, -0 first in the others
        x[0, 2::4, ::2] = -0.0
        x[1:][rng.random(x[1:].shape) < 0.2] = -0.0
        x[1:][rng.random(x[1:].shape) < 0.05] = np.inf
        x[1:][rng.random(x[1:].shape) < 0.05] = -np.inf
        x[2][rng.random(x[2].shape) < 0.04] = np.nan
        x[2][rng.random(x[2].shape) < 0.04] = nan_payload
        try:
            _kernels.set_simd_cap("scalar")
            want = cnnfast.pool2d(x, 2, mode=mode)
            want_i = cnnfast.pool2d(x, 2, mode=mode, return_indices=True)
            for level in levels:
                _kernels.set_simd_cap(level)
                got = cnnfast.pool2d(x, 2, mode=mode)
                np.testing.assert_array_equal(got.view(uint), want.view(uint), f"{level} c={c}")
                got_y, got_i = cnnfast.pool2d(x, 2, mode=mode, return_indices=True)
                np.testing.assert_array_equal(got_y.view(uint), want_i[0].view(uint))
                np.testing.assert_array_equal(got_i, want_i[1])
        finally:
            _kernels.set_simd_cap(_START)


def test_indices_outside_their_window_are_an_error():
    """In range but not in their own window (indices of another x, or of another
    padding): the backward would drop those gradients, so the boundary refuses them."""
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    dy = np.ones((1, 2, 2, 1), np.float32)
    with pytest.raises(ValueError, match=r"indices\[0, 0, 1, 0\] = 0, cell \(0, 0\) of the "
                                         r"4x4 plane, is not in its pooling window, rows "
                                         r"\[0, 2\) x columns \[2, 4\)"):
        cnnfast.pool2d_backward(dy, x, indices=np.zeros((1, 2, 2, 1), np.int32))
    xcf = np.zeros((1, 2, 4, 4), np.float32)
    _, idx = cnnfast.pool2d(xcf, 2, data_format="channels_first", return_indices=True)
    idx[0, 1, 1, 0] = idx[0, 1, 0, 0]  # channel 1, window (1, 0) given window (0, 0)'s cell
    with pytest.raises(ValueError, match=r"indices\[0, 1, 1, 0\] = "):
        cnnfast.pool2d_backward(np.ones((1, 2, 2, 2), np.float32), xcf, 2,
                                data_format="channels_first", indices=idx)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_out_of_range_indices_are_an_error(dtype):
    x = np.zeros((2, 6, 6, 3), np.float32)
    y, idx = cnnfast.pool2d(x, 2, return_indices=True)
    for bad in (-1, 36, 2**40 if dtype == np.int64 else 2**31 - 1):
        i2 = idx.astype(dtype)
        i2[1, 2, 0, 1] = bad
        with pytest.raises(ValueError, match=r"indices must lie in \[0, H\*W\)"):
            cnnfast.pool2d_backward(np.ones_like(y), x, 2, indices=i2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geo", [(2, 2, "valid", (9, 8)), (2, 2, "valid", (8, 8)),
                                 (3, 2, "same", (7, 9)), (2, 3, "same", (8, 7))],
                         ids=["2x2s2-odd", "2x2s2", "3x3s2-same", "2x2s3-same"])
def test_every_simd_level_against_the_reference(dtype, geo):
    """Each SIMD level's pooling rows (the 2x2 stride-2 fast rows, the general rows,
    and their channel tails: 8, 16 and 33 channels fill AVX2 and AVX-512 vectors and
    leave remainders) against the oracle, forward and backward, with and without the
    forward's indices. The property tests draw few channels, which stay in the
    scalar tails of the vector rows."""
    k, s, padding, (h, w) = geo
    rng = np.random.default_rng(k * 100 + s * 10 + h)
    try:
        for level in simd_levels():
            _kernels.set_simd_cap(level)
            for c in (8, 16, 33):
                x = rng.permutation(2 * h * w * c).reshape(2, h, w, c).astype(dtype)
                for mode in MODES:
                    want = ref.pool2d(x, k, s, padding, mode)
                    y = cnnfast.pool2d(x, k, s, padding, mode)
                    np.testing.assert_array_equal(y, want, err_msg=f"{level} {mode} c={c}")
                    dy = rng.standard_normal(y.shape).astype(dtype)
                    dwant = ref.pool2d_backward(dy, x, k, s, padding, mode)
                    tol = 1e-6 if dtype == np.float32 else 1e-12
                    np.testing.assert_allclose(cnnfast.pool2d_backward(dy, x, k, s, padding, mode),
                                               dwant, rtol=tol, atol=tol,
                                               err_msg=f"{level} {mode} bwd c={c}")
                    if mode != "avg":
                        _, idx = cnnfast.pool2d(x, k, s, padding, mode, return_indices=True)
                        np.testing.assert_allclose(
                            cnnfast.pool2d_backward(dy, x, k, s, padding, mode, indices=idx),
                            dwant, rtol=tol, atol=tol, err_msg=f"{level} {mode} bwd idx c={c}")
    finally:
        _kernels.set_simd_cap(_START)
