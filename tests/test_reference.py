"""Checks of the oracle itself (cnnfast.reference): hand-worked cases and self-consistency.

Every other kernel test trusts cnnfast.reference, so it is checked here
against numbers worked out by hand, against TensorFlow's documented 'same'
padding amounts, against an independent vectorised formulation, and against
the adjoint identity and central differences for its gradients.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnfast import reference as ref

# ---------------------------------------------------------------------------
# 'same' padding: TensorFlow's amounts (out = ceil(in / s), smaller half first)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size, k, s, d, expected",
    [
        (5, 3, 1, 1, (1, 1)),
        (5, 3, 2, 1, (1, 1)),  # out 3, total 2
        (6, 3, 2, 1, (0, 1)),  # out 3, total 1: the extra row goes to the bottom
        (4, 2, 1, 1, (0, 1)),  # even kernel
        (7, 4, 3, 1, (1, 2)),  # out 3, total 3
        (5, 3, 1, 2, (2, 2)),  # dilated: effective kernel 5
        (1, 1, 5, 1, (0, 0)),
        (2, 3, 3, 1, (0, 1)),  # stride larger than the input
        (10, 5, 1, 1, (2, 2)),
        (9, 2, 2, 1, (0, 1)),  # out 5, total 1
        (8, 2, 2, 1, (0, 0)),  # exact tiling: no padding
    ],
)
def test_same_padding_matches_tensorflow(size, k, s, d, expected):
    assert ref.same_padding(size, k, s, d) == expected


def test_resolve_padding_forms():
    r = ref.resolve_padding
    assert r("valid", (5, 6), (3, 3), (1, 1)) == ((0, 0), (0, 0))
    assert r("SAME", (6, 5), (3, 3), (2, 2)) == ((0, 1), (1, 1))
    assert r(2, (5, 5), (3, 3), (1, 1)) == ((2, 2), (2, 2))
    assert r((1, 2), (5, 5), (3, 3), (1, 1)) == ((1, 1), (2, 2))
    assert r(((0, 1), (2, 0)), (5, 5), (3, 3), (1, 1)) == ((0, 1), (2, 0))
    for bad in ("full", -1, (1, -1), ((0, 1), (2,)), (1, 2, 3), 1.5, None):
        with pytest.raises(ValueError, match="padding"):
            r(bad, (5, 5), (3, 3), (1, 1))


def test_output_size():
    assert ref.output_size(5, 3, 1, 1, 0, 0) == 3
    assert ref.output_size(5, 3, 2, 1, 1, 1) == 3
    assert ref.output_size(5, 3, 1, 2, 0, 0) == 1
    assert ref.output_size(2, 3, 1, 1, 0, 0) == 0  # empty
    assert ref.output_size(7, 2, 3, 1, 0, 0) == 2


# ---------------------------------------------------------------------------
# Hand-worked convolutions
# ---------------------------------------------------------------------------


def _img(a):
    """(H, W) -> (1, H, W, 1) float64."""
    return np.asarray(a, dtype=np.float64)[None, :, :, None]


def _ker(a):
    """(KH, KW) -> (KH, KW, 1, 1) float64."""
    return np.asarray(a, dtype=np.float64)[:, :, None, None]


def test_conv_sobel_valid():
    # x[r, c] = 4r + c: every column difference x[r, c] - x[r, c+2] is -2, so the
    # Sobel response is (1 + 2 + 1) * (-2) = -8 everywhere.
    x = _img(np.arange(16).reshape(4, 4))
    k = _ker([[1, 0, -1], [2, 0, -2], [1, 0, -1]])
    y = ref.conv2d(x, k)
    np.testing.assert_array_equal(y[0, :, :, 0], np.full((2, 2), -8.0))


def test_conv_box_same():
    # 3x3 box sum with 'same' padding on x[r, c] = 4r + c: corners see 2x2 blocks.
    x = _img(np.arange(16).reshape(4, 4))
    y = ref.conv2d(x, _ker(np.ones((3, 3))), padding="same")[0, :, :, 0]
    assert y.shape == (4, 4)
    assert y[0, 0] == 0 + 1 + 4 + 5
    assert y[1, 1] == 45  # full 3x3 block around 5
    assert y[3, 3] == 10 + 11 + 14 + 15
    assert y[0, 3] == 2 + 3 + 6 + 7
    assert y[0, 1] == 0 + 1 + 2 + 4 + 5 + 6


def test_conv_stride_dilation_by_hand():
    # 5x5 image, 2x2 kernel dilated by 2 (taps at offsets 0 and 2), stride 2:
    # outputs at rows/cols 0 and 2; y = x[r, c] + 10 * x[r + 2, c + 2].
    x = _img(np.arange(25).reshape(5, 5))
    k = _ker([[1, 0], [0, 10]])
    y = ref.conv2d(x, k, strides=2, dilation_rate=2)[0, :, :, 0]
    xr = np.arange(25).reshape(5, 5)
    want = np.array([[xr[r, c] + 10 * xr[r + 2, c + 2] for c in (0, 2)] for r in (0, 2)])
    np.testing.assert_array_equal(y, want)


def test_conv_channels_and_bias_by_hand():
    # A 1x1 convolution is a matrix product over channels plus the bias.
    x = np.array([1.0, 2.0]).reshape(1, 1, 1, 2)
    k = np.array([[1.0, 0.0, -1.0], [3.0, 1.0, 0.5]]).reshape(1, 1, 2, 3)
    y = ref.conv2d(x, k, bias=np.array([0.5, 0.0, -1.0]))
    np.testing.assert_array_equal(y.reshape(3), [1 + 6 + 0.5, 2.0, -1 + 1 - 1])
    yr = ref.conv2d(x, k, bias=np.array([0.5, 0.0, -1.0]), activation="relu")
    np.testing.assert_array_equal(yr.reshape(3), [7.5, 2.0, 0.0])


def test_conv_explicit_asymmetric_padding_by_hand():
    # 1x1 identity kernel: the output is the zero-padded input itself.
    x = _img([[1, 2], [3, 4]])
    y = ref.conv2d(x, _ker([[1]]), padding=((1, 0), (0, 2)))[0, :, :, 0]
    np.testing.assert_array_equal(y, [[0, 0, 0, 0], [1, 2, 0, 0], [3, 4, 0, 0]])


def test_conv_backward_by_hand():
    # x all ones 3x3, kernel 2x2 of ones, valid: y = 4 everywhere (2x2).
    # dy = ones: dkernel[i, j] = sum of the x cells it touched = 4; dbias = 4;
    # dx[r, c] = number of windows covering (r, c).
    x = _img(np.ones((3, 3)))
    k = _ker(np.ones((2, 2)))
    dy = np.ones((1, 2, 2, 1))
    dx, dk, db = ref.conv2d_backward(dy, x, k)
    np.testing.assert_array_equal(dx[0, :, :, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])
    np.testing.assert_array_equal(dk[:, :, 0, 0], [[4, 4], [4, 4]])
    np.testing.assert_array_equal(db, [4.0])
    dx2, dk2, db2 = ref.conv2d_backward(dy, x, k, input_grad=False)
    assert dx2 is None
    np.testing.assert_array_equal(dk2, dk)
    np.testing.assert_array_equal(db2, db)


# ---------------------------------------------------------------------------
# Hand-worked pooling, ties and NaN
# ---------------------------------------------------------------------------


def test_pool_ties_by_hand():
    x = _img([[1, 3], [3, 2]])
    y, idx = ref.pool2d(x, 2, mode="max", return_indices=True)
    assert y.item() == 3 and idx.item() == 1  # first 3 in row-major order: (0, 1)
    dx = ref.pool2d_backward(np.ones((1, 1, 1, 1)), x, 2, mode="max")
    np.testing.assert_array_equal(dx[0, :, :, 0], [[0, 1], [0, 0]])
    x = _img([[2, 1], [1, 5]])
    y, idx = ref.pool2d(x, 2, mode="min", return_indices=True)
    assert y.item() == 1 and idx.item() == 1
    dx = ref.pool2d_backward(np.full((1, 1, 1, 1), 7.0), x, 2, mode="min")
    np.testing.assert_array_equal(dx[0, :, :, 0], [[0, 7], [0, 0]])
    assert ref.pool2d(x, 2, mode="avg").item() == 9 / 4


def test_pool_nan_by_hand():
    x = _img([[1, np.nan], [5, np.nan]])
    for mode in ("max", "min"):
        y, idx = ref.pool2d(x, 2, mode=mode, return_indices=True)
        assert np.isnan(y.item()) and idx.item() == 1  # the first NaN wins
        dx = ref.pool2d_backward(np.ones((1, 1, 1, 1)), x, 2, mode=mode)
        np.testing.assert_array_equal(dx[0, :, :, 0], [[0, 1], [0, 0]])
    assert np.isnan(ref.pool2d(x, 2, mode="avg").item())


def test_avg_pool_same_padding_by_hand():
    # 3x3 input, 2x2 windows, stride 2, 'same': pads (0, 1) on each axis, and the
    # padded cells are not counted.
    x = _img(np.arange(9).reshape(3, 3))
    y = ref.pool2d(x, 2, padding="same", mode="avg")[0, :, :, 0]
    np.testing.assert_array_equal(y, [[(0 + 1 + 3 + 4) / 4, (2 + 5) / 2], [(6 + 7) / 2, 8]])
    dx = ref.pool2d_backward(np.ones((1, 2, 2, 1)), x, 2, padding="same", mode="avg")
    np.testing.assert_array_equal(dx[0, :, :, 0], [[0.25, 0.25, 0.5], [0.25, 0.25, 0.5],
                                                   [0.5, 0.5, 1.0]])


def test_max_pool_padding_never_wins():
    # All-negative input with explicit padding: a zero pad must not win the max.
    x = _img(-np.arange(1, 10).reshape(3, 3))
    y = ref.pool2d(x, 3, strides=1, padding=1, mode="max")[0, :, :, 0]
    assert (y < 0).all()
    assert y[0, 0] == -1 and y[2, 2] == -5
    y = ref.pool2d(-x, 3, strides=1, padding=1, mode="min")[0, :, :, 0]
    assert (y > 0).all()


def test_overlapping_max_windows_add_gradients():
    # Stride 1, window 2: the 9 sits in all four windows and gets all four dy.
    x = _img([[1, 2, 1], [2, 9, 2], [1, 2, 1]])
    dy = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 2, 2, 1)
    dx = ref.pool2d_backward(dy, x, 2, strides=1, mode="max")
    assert dx[0, 1, 1, 0] == 10 and dx.sum() == 10


def test_reference_argument_errors():
    x = np.zeros((1, 4, 4, 2))
    with pytest.raises(ValueError, match="kernel"):
        ref.conv2d(x, np.zeros((3, 3, 3, 1)))
    with pytest.raises(ValueError, match="empty"):
        ref.conv2d(x, np.zeros((5, 5, 2, 1)))
    with pytest.raises(ValueError, match="strides"):
        ref.conv2d(x, np.zeros((3, 3, 2, 1)), strides=0)
    with pytest.raises(ValueError, match="padding"):
        ref.pool2d(x, 2, padding=2)  # pad >= window
    with pytest.raises(TypeError, match="x"):
        ref.pool2d(x.astype(complex))
    with pytest.raises(ValueError, match="dy"):
        ref.conv2d_backward(np.zeros((1, 2, 2, 2)), x, np.zeros((3, 3, 2, 1)))


def test_dtypes_and_batch_zero():
    x = np.ones((0, 3, 3, 2), np.float32)
    k = np.ones((2, 2, 2, 4), np.float32)
    y = ref.conv2d(x, k)
    assert y.shape == (0, 2, 2, 4) and y.dtype == np.float32
    dx, dk, db = ref.conv2d_backward(np.zeros((0, 2, 2, 4), np.float32), x, k)
    assert dx.shape == x.shape and (dk == 0).all() and (db == 0).all()
    assert dk.dtype == np.float32
    assert ref.conv2d(np.ones((1, 2, 2, 1)), np.ones((1, 1, 1, 1), np.float32)).dtype == np.float64
    assert ref.conv2d(np.ones((1, 2, 2, 1), np.int64), np.ones((1, 1, 1, 1))).dtype == np.float64
    assert ref.pool2d(np.ones((1, 2, 2, 1), np.float16)).dtype == np.float32
    assert ref.pool2d(np.ones((0, 2, 2, 1))).shape == (0, 1, 1, 1)


# ---------------------------------------------------------------------------
# Self-consistency on random cases
# ---------------------------------------------------------------------------


def _vectorised_conv(x, k, s, d, pads):
    """Independent formulation: pad, then sum shifted strided slices times each tap."""
    (pt, pb), (pl, pr) = pads
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    kh, kw = k.shape[:2]
    oh = (xp.shape[1] - ((kh - 1) * d[0] + 1)) // s[0] + 1
    ow = (xp.shape[2] - ((kw - 1) * d[1] + 1)) // s[1] + 1
    y = np.zeros((x.shape[0], oh, ow, k.shape[3]))
    for i in range(kh):
        for j in range(kw):
            sl = xp[:, i * d[0] : i * d[0] + (oh - 1) * s[0] + 1 : s[0],
                    j * d[1] : j * d[1] + (ow - 1) * s[1] + 1 : s[1], :]
            y += np.einsum("nhwc,cf->nhwf", sl, k[i, j])
    return y


@st.composite
def conv_cases(draw):
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pads = ((draw(st.integers(0, 2)), draw(st.integers(0, 2))),
            (draw(st.integers(0, 2)), draw(st.integers(0, 2))))
    h = draw(st.integers(max(1, (kh - 1) * d[0] + 1 - sum(pads[0])), 6))
    w = draw(st.integers(max(1, (kw - 1) * d[1] + 1 - sum(pads[1])), 6))
    n, c, f = draw(st.integers(0, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c))
    k = rng.standard_normal((kh, kw, c, f))
    return x, k, s, d, pads


@settings(max_examples=40)
@given(conv_cases())
def test_reference_conv_matches_vectorised(case):
    x, k, s, d, pads = case
    y = ref.conv2d(x, k, strides=s, padding=pads, dilation_rate=d)
    np.testing.assert_allclose(y, _vectorised_conv(x, k, s, d, pads), rtol=1e-12, atol=1e-12)
    # Same numbers in channels_first.
    y_cf = ref.conv2d(x.transpose(0, 3, 1, 2), k.transpose(3, 2, 0, 1), strides=s,
                      padding=pads, dilation_rate=d, data_format="channels_first")
    np.testing.assert_array_equal(y_cf, y.transpose(0, 3, 1, 2))


@settings(max_examples=40)
@given(conv_cases())
def test_reference_conv_backward_is_adjoint(case):
    # conv2d is bilinear in (x, kernel): <conv(x, k), dy> = <x, dx> = <k, dk>.
    x, k, s, d, pads = case
    y = ref.conv2d(x, k, strides=s, padding=pads, dilation_rate=d)
    dy = np.random.default_rng(0).standard_normal(y.shape)
    dx, dk, db = ref.conv2d_backward(dy, x, k, strides=s, padding=pads, dilation_rate=d)
    inner = np.sum(y * dy)
    np.testing.assert_allclose(np.sum(x * dx), inner, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(np.sum(k * dk), inner, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(db, dy.sum(axis=(0, 1, 2)), rtol=1e-12, atol=1e-12)


def test_reference_pool_gradient_central_difference():
    rng = np.random.default_rng(3)
    # Distinct values far apart compared with the step, so max/min never switch.
    x = rng.permutation(5 * 5 * 2).reshape(1, 5, 5, 2) * 0.1
    for mode in ("max", "avg", "min"):
        for padding in ("valid", "same", 1):
            y = ref.pool2d(x, 3, strides=2, padding=padding, mode=mode)
            w = rng.standard_normal(y.shape)
            dx = ref.pool2d_backward(w, x, 3, strides=2, padding=padding, mode=mode)
            num = np.zeros_like(x)
            h = 1e-4
            for i in np.ndindex(x.shape):
                xp, xm = x.copy(), x.copy()
                xp[i] += h
                xm[i] -= h
                num[i] = (np.sum(ref.pool2d(xp, 3, 2, padding, mode) * w)
                          - np.sum(ref.pool2d(xm, 3, 2, padding, mode) * w)) / (2 * h)
            np.testing.assert_allclose(dx, num, rtol=1e-8, atol=1e-8)
