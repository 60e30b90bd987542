"""Winograd convolution (``algorithm="winograd"``, csrc/winograd.c).

Against the float64 oracle (cnnfast.reference) in all three directions, at every
SIMD level this CPU has, with 1, 2 and 3 threads giving the same bits; the fused
convolution + pooling equal to the unfused pair bit for bit; the accuracy bound
(at most 5x the direct path's max abs error on the bench's 3x3 stride-1 cells);
a finite-difference check of the gradients; the "auto" rule; and the errors.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import simd_levels
from hypothesis import given, settings
from hypothesis import strategies as st

import cnnfast
from cnnfast import _kernels, _spec, layers, models
from cnnfast import reference as ref
from cnnfast.ops import _cache

LEVELS = simd_levels()
_START_LEVEL = cnnfast.simd_level()


@pytest.fixture(autouse=True)
def _restore():
    yield
    _kernels.set_simd_cap(_START_LEVEL)
    cnnfast.set_num_threads(0)


def _tol(dtype, scale):
    # errors grow with the sum's length and the values' size: scale is
    # sum |x| |k| over one output's terms (or the matching sum per gradient)
    eps = np.finfo(dtype).eps
    return 64 * eps * scale + (1e-12 if dtype == np.float64 else 1e-6)


def _all_directions(x, k, b, dy, padding, algorithm):
    y = cnnfast.conv2d(x, k, b, padding=padding, algorithm=algorithm)
    dx, dk, db = cnnfast.conv2d_backward(dy, x, k, padding=padding, algorithm=algorithm)
    return y, dx, dk, db


paddings = st.one_of(
    st.sampled_from(["valid", "same"]),
    st.tuples(st.tuples(st.integers(0, 3), st.integers(0, 3)),
              st.tuples(st.integers(0, 3), st.integers(0, 3))),
)


@settings(max_examples=30)
@given(n=st.integers(1, 3), h=st.integers(3, 13), w=st.integers(3, 13),
       c=st.integers(1, 20), f=st.integers(1, 20), padding=paddings,
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_matches_reference_every_level_and_thread_count(n, h, w, c, f, padding, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    k = rng.standard_normal((3, 3, c, f)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    want_y = ref.conv2d(x, k, b, padding=padding)
    dy = rng.standard_normal(want_y.shape).astype(dtype)
    want = (want_y, *ref.conv2d_backward(dy, x, k, padding=padding))
    # scales of the sums: one output, one input cell, one kernel tap
    scales = (9 * c * 3.0, 9 * f * 3.0, n * h * w * 3.0, n * h * w * 1.0)
    try:
        for level in LEVELS:
            _kernels.set_simd_cap(level)
            first = None
            for threads in (1, 2, 3):
                cnnfast.set_num_threads(threads)
                got = _all_directions(x, k, b, dy, padding, "winograd")
                if first is None:
                    first = got
                    for name, g, wnt, sc in zip(("y", "dx", "dk", "db"), got, want, scales):
                        assert g.dtype == dtype
                        err = np.max(np.abs(g - wnt), initial=0.0)
                        assert err <= _tol(dtype, sc), f"{level} {name}: error {err}"
                else:
                    for name, g, g1 in zip(("y", "dx", "dk", "db"), got, first):
                        assert np.array_equal(g, g1), f"{level} {name}: {threads} vs 1 thread"
    finally:
        cnnfast.set_num_threads(0)


@pytest.mark.parametrize("padding", [((3, 0), (0, 3)), ((3, 3), (3, 3)), ((0, 3), (3, 1))])
def test_input_gradient_of_wide_paddings(padding):
    # the input gradient runs the forward on dy with padding 2 - p: negative (a
    # crop of dy) where p is 3; small images read their tiles from a padded band
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 5, 4))
    k = rng.standard_normal((3, 3, 4, 5))
    dy = rng.standard_normal(ref.conv2d(x, k, None, padding=padding).shape)
    want = ref.conv2d_backward(dy, x, k, padding=padding)
    try:
        for level in LEVELS:
            _kernels.set_simd_cap(level)
            got = cnnfast.conv2d_backward(dy, x, k, padding=padding, algorithm="winograd")
            for g, w in zip(got, want):
                np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12, err_msg=level)
    finally:
        _kernels.set_simd_cap(_START_LEVEL)


def test_tile_tails_and_large_blocks():
    """Images whose tiles span several work items (tile rows per item) and whose
    last tile row and column overhang the output, at every level."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 37, 29, 24))
    k = rng.standard_normal((3, 3, 24, 70))
    b = rng.standard_normal(70)
    y = ref.conv2d(x, k, b, padding="same", activation="relu")
    dy = rng.standard_normal(y.shape)
    want = ref.conv2d_backward(dy, x, k, padding="same")
    for level in LEVELS:
        _kernels.set_simd_cap(level)
        got = cnnfast.conv2d(x, k, b, padding="same", activation="relu", algorithm="winograd")
        np.testing.assert_allclose(got, y, rtol=1e-11, atol=1e-11, err_msg=level)
        g = cnnfast.conv2d_backward(dy, x, k, padding="same", algorithm="winograd")
        for a, w in zip(g, want):
            np.testing.assert_allclose(a, w, rtol=1e-11, atol=1e-10, err_msg=level)


def test_f4x4_tile_matches_reference(monkeypatch):
    """The F(4x4, 3x3) transforms (not the default tile: notes/winograd.md) stay
    correct, to their looser bound."""
    monkeypatch.setattr(_spec, "WINOGRAD_TILE", 4)
    _cache.conv_spec.cache_clear()
    try:
        rng = np.random.default_rng(2)
        x = rng.standard_normal((3, 11, 10, 7))
        k = rng.standard_normal((3, 3, 7, 9))
        y = ref.conv2d(x, k, padding="same")
        dy = rng.standard_normal(y.shape)
        want = ref.conv2d_backward(dy, x, k, padding="same")
        for level in LEVELS:
            _kernels.set_simd_cap(level)
            np.testing.assert_allclose(
                cnnfast.conv2d(x, k, padding="same", algorithm="winograd"), y, atol=1e-11)
            g = cnnfast.conv2d_backward(dy, x, k, padding="same", algorithm="winograd")
            for a, w in zip(g, want):
                np.testing.assert_allclose(a, w, atol=1e-10)
    finally:
        _cache.conv_spec.cache_clear()


# (x NHWC, padding, pooling): 2x2 windows, windows with gaps between them, 3-row
# windows (items of whole pooling strides: 6 rows), a tall min window, one image,
# an image of many items (tile rows per item < tile rows)
FUSED = [
    ((5, 14, 13, 16), "same", dict(pool_size=2, strides=None, mode="max")),
    ((5, 14, 13, 16), "valid", dict(pool_size=2, strides=None, mode="max")),
    ((3, 17, 11, 16), "same", dict(pool_size=2, strides=3, mode="max")),
    ((3, 19, 12, 16), "same", dict(pool_size=3, strides=None, mode="max")),
    ((2, 21, 9, 16), ((1, 0), (2, 1)), dict(pool_size=(3, 2), strides=(4, 2), mode="min")),
    ((1, 12, 12, 16), "same", dict(pool_size=2, strides=None, mode="max")),
    ((2, 60, 20, 16), "same", dict(pool_size=2, strides=None, mode="max")),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", range(len(FUSED)))
def test_fused_equals_unfused_bit_for_bit(dtype, case):
    xs, padding, pool = FUSED[case]
    rng = np.random.default_rng(3)
    x = rng.standard_normal(xs).astype(dtype)
    k = rng.standard_normal((3, 3, xs[3], 20)).astype(dtype)
    b = rng.standard_normal(20).astype(dtype)
    pkw = dict(pool_size=pool["pool_size"], pool_strides=pool["strides"],
               pool_mode=pool["mode"])
    for level in LEVELS:
        _kernels.set_simd_cap(level)
        for threads in (1, 2):
            cnnfast.set_num_threads(threads)
            z = cnnfast.conv2d(x, k, b, padding=padding, activation="relu",
                               algorithm="winograd")
            y, idx = cnnfast.pool2d(z, return_indices=True, **pool)
            yf, idxf = cnnfast.conv2d_pool2d(x, k, b, padding=padding, activation="relu",
                                             return_indices=True, algorithm="winograd", **pkw)
            assert np.array_equal(yf, y) and np.array_equal(idxf, idx), level
            dy = np.cos(np.arange(y.size)).reshape(y.shape).astype(dtype)
            dz = cnnfast.pool2d_backward(dy * (y > 0), z, indices=idx, **pool)
            want = cnnfast.conv2d_backward(dz, x, k, padding=padding, algorithm="winograd")
            got = cnnfast.conv2d_pool2d_backward(dy, x, k, idxf, yf, padding=padding,
                                                 activation="relu", algorithm="winograd",
                                                 **pkw)
            for g, w in zip(got, want):
                assert np.array_equal(g, w), level


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias,activation,mode", [
    (True, "relu", "max"), (False, "relu", "max"), (True, None, "max"),
    (False, None, "min"), (True, "relu", "min")])
def test_fused_2x2_windows_equal_the_pooled_output(dtype, bias, activation, mode):
    # 2 x 2, stride-2 windows over F(2x2) output tiles: odd sizes (the last tile row
    # and column dropped), 70 filters (two lane blocks), NaN, inf and ties (the
    # ReLU's zeros, repeated values) in the windows, with and without bias and ReLU
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 15, 13, 5)).astype(dtype)
    x[0, 3, 4, 1] = np.nan
    x[1, 7, 2, :] = np.inf
    x[2, :4, :4, :] = 1.0
    k = rng.standard_normal((3, 3, 5, 70)).astype(dtype)
    k[:, :, :, 3] = 0.0  # a filter whose windows are all ties
    b = rng.standard_normal(70).astype(dtype) if bias else None
    kw = dict(padding="same", activation=activation, algorithm="winograd")
    for level in LEVELS:
        _kernels.set_simd_cap(level)
        for threads in (1, 2):
            cnnfast.set_num_threads(threads)
            z = cnnfast.conv2d(x, k, b, **kw)
            y, idx = cnnfast.pool2d(z, pool_size=2, mode=mode, return_indices=True)
            yf, idxf = cnnfast.conv2d_pool2d(x, k, b, pool_size=2, pool_mode=mode,
                                             return_indices=True, **kw)
            assert np.array_equal(yf, y, equal_nan=True), level
            assert np.array_equal(idxf, idx), level
            if activation == "relu" and mode == "max":
                # the layers' form: -1 marks a window ReLU zeroed
                from cnnfast.ops import training
                pair = _spec.conv_pool_spec(x.shape, k.shape, padding="same",
                                            activation="relu", algorithm="winograd")
                yd = np.empty_like(yf)
                dead = np.empty(yf.shape, np.int32)
                training.conv2d_pool2d_forward(x, k, b, yd, dead, pair, True)
                assert np.array_equal(yd, y, equal_nan=True), level
                assert np.array_equal(dead, np.where(y > 0, idx, -1)), level


def test_auto_picks_the_same_for_fused_and_unfused():
    for xs, ks in [((128, 14, 14, 32), (3, 3, 32, 64)), ((32, 56, 56, 64), (3, 3, 64, 64)),
                   ((128, 28, 28, 1), (3, 3, 1, 32)), ((4, 9, 9, 8), (3, 3, 8, 64)),
                   ((4, 7, 7, 64), (3, 3, 64, 64)), ((4, 28, 28, 16), (3, 3, 16, 32))]:
        conv = _spec.conv_spec(xs, ks, padding="same")
        pair = _spec.conv_pool_spec(xs, ks, padding="same", activation="relu")
        assert pair.conv.algorithm == conv.algorithm
        wants = (min(ks[2], ks[3]) >= _spec.WINOGRAD_MIN_CHANNELS
                 and xs[1] >= _spec.WINOGRAD_MIN_SIZE
                 and xs[0] * xs[1] * xs[2] >= _spec.WINOGRAD_MIN_PIXELS)
        assert conv.algorithm == ("winograd" if wants else "direct"), (xs, ks)
    # a few small images stay direct (the kernel's transform is paid per call); a spec
    # taken to another batch resolves "auto" again, an explicit choice stays
    one = _spec.conv_spec((1, 14, 14, 32), (3, 3, 32, 64), padding="same")
    assert one.algorithm == "direct" and one.winograd_tile == 0
    big = one.with_batch(128)
    assert big.algorithm == "winograd" and big.winograd_tile == _spec.WINOGRAD_TILE
    assert big.with_batch(1).algorithm == "direct"
    pair = _spec.conv_pool_spec((1, 14, 14, 32), (3, 3, 32, 64), padding="same")
    assert pair.with_batch(128).conv.algorithm == "winograd"
    forced = _spec.conv_spec((1, 14, 14, 32), (3, 3, 32, 64), padding="same",
                             algorithm="winograd")
    assert forced.algorithm == "winograd" and forced.with_batch(64).algorithm == "winograd"
    direct = _spec.conv_spec((128, 14, 14, 32), (3, 3, 32, 64), padding="same",
                             algorithm="direct")
    assert direct.with_batch(1).algorithm == direct.with_batch(256).algorithm == "direct"
    # never Winograd where it does not apply
    for kw in (dict(strides=2), dict(dilation_rate=2)):
        assert _spec.conv_spec((2, 20, 20, 64), (3, 3, 64, 64), **kw).algorithm == "direct"
    assert _spec.conv_spec((2, 20, 20, 64), (5, 5, 64, 64)).algorithm == "direct"


# The bench's cells a-e (cnnfast/bench/workloads.py), smaller batches; d (stride 2)
# and e (5x5) are not Winograd's. a and b run F(2x2), c F(4x4) (forward and input
# gradient), as does "c28", the smallest layer the F(4x4) rule takes.
CELLS = {"a": (4, 28, 28, 1, 32), "b": (4, 14, 14, 32, 64), "c": (2, 56, 56, 64, 64),
         "c28": (4, 28, 28, 32, 32)}


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_accuracy_within_5x_of_direct(cell):
    n, h, w, c, f = CELLS[cell]
    rng = np.random.default_rng(4)
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    k = (rng.standard_normal((3, 3, c, f)) / np.sqrt(9 * c)).astype(np.float32)
    b = rng.standard_normal(f).astype(np.float32)
    x64, k64 = x.astype(np.float64), k.astype(np.float64)
    want_y = ref.conv2d(x64, k64, b.astype(np.float64), padding="same")
    dy = rng.standard_normal(want_y.shape).astype(np.float32)
    want = (want_y, *ref.conv2d_backward(dy.astype(np.float64), x64, k64, padding="same"))
    errs = {}
    for alg in ("direct", "winograd"):
        got = _all_directions(x, k, b, dy, "same", alg)
        errs[alg] = [np.max(np.abs(g - w_)) for g, w_ in zip(got, want)]
    for i, name in enumerate(("y", "dx", "dk", "db")):
        assert errs["winograd"][i] <= 5 * errs["direct"][i], (cell, name, errs)


def test_the_tile_rule():
    # F(4x4) from 28 x 28 outputs and 32 channels and filters on, F(2x2) below
    assert _spec.winograd_tile(32, 32, (28, 28)) == 4
    assert _spec.winograd_tile(64, 64, (56, 56)) == 4
    assert _spec.winograd_tile(32, 64, (14, 14)) == 2
    assert _spec.winograd_tile(16, 64, (56, 56)) == 2
    assert _spec.winograd_tile(1, 32, (28, 28)) == 2
    spec = _spec.conv_spec((2, 56, 56, 64), (3, 3, 64, 64), padding="same")
    assert spec.algorithm == "winograd" and spec.winograd_tile == 4
    assert spec.with_batch(64).winograd_tile == 4
    b = _spec.conv_spec((128, 14, 14, 32), (3, 3, 32, 64), padding="same")
    assert b.winograd_tile == 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_f4x4_layers_bits_for_any_thread_count_and_fused_pooling(dtype):
    # a layer the F(4x4) rule takes, with its 2x2 pooling fused and not: the same bits
    # for 1, 2 and 3 threads, fused against unfused, at every level
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 29, 28, 32)).astype(dtype)
    k = (rng.standard_normal((3, 3, 32, 33)) / 17).astype(dtype)
    b = rng.standard_normal(33).astype(dtype)
    assert _spec.conv_spec(x.shape, k.shape, padding="same").winograd_tile == 4
    kw = dict(padding="same", activation="relu", algorithm="winograd")
    for level in LEVELS:
        _kernels.set_simd_cap(level)
        runs = []
        for threads in (1, 2, 3):
            cnnfast.set_num_threads(threads)
            z = cnnfast.conv2d(x, k, b, **kw)
            y, idx = cnnfast.pool2d(z, pool_size=2, return_indices=True)
            yf, idxf = cnnfast.conv2d_pool2d(x, k, b, pool_size=2, return_indices=True, **kw)
            assert np.array_equal(yf, y) and np.array_equal(idxf, idx), level
            dy = np.cos(np.arange(y.size)).reshape(y.shape).astype(dtype)
            got = cnnfast.conv2d_pool2d_backward(dy, x, k, idxf, yf, padding="same",
                                                 activation="relu", algorithm="winograd")
            dz = cnnfast.pool2d_backward(dy * (y > 0), z, indices=idx, pool_size=2)
            want = cnnfast.conv2d_backward(dz, x, k, padding="same", algorithm="winograd")
            for g, w in zip(got, want):
                assert np.array_equal(g, w), level
            runs.append((z, *got))
        for other in runs[1:]:
            for a, w in zip(other, runs[0]):
                assert np.array_equal(a, w), level


def test_finite_difference_gradients():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 6, 5, 3))
    k = rng.standard_normal((3, 3, 3, 4))
    r = rng.standard_normal(ref.conv2d(x, k, padding="same").shape)

    def loss(xx, kk):
        return float(np.sum(cnnfast.conv2d(xx, kk, padding="same", algorithm="winograd") * r))

    dx, dk, _ = cnnfast.conv2d_backward(r, x, k, padding="same", algorithm="winograd")
    h = 1e-6
    for arr, grad in ((x, dx), (k, dk)):
        for idx in [tuple(rng.integers(0, s) for s in arr.shape) for _ in range(12)]:
            old = arr[idx]
            arr[idx] = old + h
            up = loss(x, k)
            arr[idx] = old - h
            down = loss(x, k)
            arr[idx] = old
            assert abs((up - down) / (2 * h) - grad[idx]) <= 1e-6 * (1 + abs(grad[idx]))


@pytest.mark.parametrize("kernel_shape,kw,what", [
    ((3, 3, 4, 4), dict(strides=2), "strides (2, 2)"),
    ((3, 3, 4, 4), dict(dilation_rate=2), "dilation_rate (2, 2)"),
    ((5, 5, 4, 4), {}, "kernel (5, 5)"),
])
def test_winograd_refuses_other_geometries(kernel_shape, kw, what):
    x = np.zeros((1, 12, 12, 4), np.float32)
    k = np.zeros(kernel_shape, np.float32)
    with pytest.raises(ValueError, match=r"algorithm='winograd'.*" + what.replace("(", r"\(")
                       .replace(")", r"\)")):
        cnnfast.conv2d(x, k, algorithm="winograd", **kw)
    with pytest.raises(ValueError, match="algorithm='winograd'"):
        layers.Conv2D(4, kernel_shape[:2], algorithm="winograd", **kw)


def test_bad_algorithm_name():
    x = np.zeros((1, 5, 5, 2))
    k = np.zeros((3, 3, 2, 2))
    with pytest.raises(ValueError, match="algorithm must be"):
        cnnfast.conv2d(x, k, algorithm="fft")
    with pytest.raises(ValueError, match="algorithm must be"):
        layers.Conv2D(2, 3, algorithm=None)


def test_layer_fused_and_unfused_models_agree():
    """A Sequential with Conv2D(algorithm="winograd") + MaxPooling2D, fused and
    not: the same predictions and the same gradients, bit for bit."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((6, 12, 12, 16)).astype(np.float32)
    t = rng.integers(0, 3, 6)
    results = []
    for fuse in (True, False):
        model = models.Sequential([
            layers.Conv2D(16, 3, padding="same", activation="relu", algorithm="winograd",
                          input_shape=(12, 12, 16)),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(3),
        ])
        model.fuse_layers = fuse
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        rs = np.random.default_rng(7)
        model.set_weights([rs.standard_normal(w.shape).astype(np.float32) * 0.1
                           for w in model.get_weights()])
        model.train_on_batch(x, t)
        results.append((model.predict(x, verbose=0), model.get_weights()))
    assert np.array_equal(results[0][0], results[1][0])
    for a, b in zip(results[0][1], results[1][1]):
        assert np.array_equal(a, b)


def test_private_wrapper_refuses_a_forged_winograd_geometry():
    """The C struct's winograd field is checked before the drivers index memory with
    it (csrc/geometry.c), whatever a private caller puts in the spec."""
    from types import SimpleNamespace

    def forged(spec, **fields):
        return SimpleNamespace(**{**{n: getattr(spec, n) for n in type(spec).__slots__},
                                  **fields})

    x, y = np.ones((1, 6, 6, 2), np.float32), np.zeros((1, 6, 6, 2), np.float32)
    k2 = np.ones((2, 2, 2, 2), np.float32)
    spec = forged(_spec.conv_spec(x.shape, k2.shape, 1, "same"), winograd_tile=2)
    with pytest.raises(ValueError, match="3x3 kernels of stride 1"):
        _kernels.conv2d_forward(x, k2, None, y, spec, False)
    k3 = np.ones((3, 3, 2, 2), np.float32)
    spec = forged(_spec.conv_spec(x.shape, k3.shape, 1, "same"), winograd_tile=3)
    with pytest.raises(ValueError, match="winograd must be 0"):
        _kernels.conv2d_forward(x, k3, None, y, spec, False)
