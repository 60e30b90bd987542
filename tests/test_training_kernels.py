"""The fused C helpers of the training step (Adam update, ReLU backward mask, dropout,
softmax) give what their NumPy formulations give: the same bits, or for the softmax
(whose exp is libm's, not NumPy's) the float64 formula's values within a few ulps."""

from __future__ import annotations

import numpy as np
import pytest

import cnnfast
from cnnfast import optimizers


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [7, 100_003])  # below and above the parallel threshold
def test_fused_adam_equals_numpy_path(dtype, n, monkeypatch):
    rng = np.random.default_rng(n)
    p0 = rng.standard_normal(n).astype(dtype)
    grads = [rng.standard_normal(n).astype(dtype) for _ in range(4)]

    def run(fused: bool, threads: int):
        cnnfast.set_num_threads(threads)
        if not fused:
            monkeypatch.setattr(optimizers, "_fusable", lambda *a: False)
        opt = optimizers.Adam(learning_rate=0.01)
        p = p0.copy()
        opt._build_state([p])
        for t, g in enumerate(grads, start=1):
            opt.iterations = t
            opt._update(0, p, g, np.empty_like(p))
        monkeypatch.undo()
        return p, opt._m[0], opt._v[0]

    try:
        ref = run(False, 1)
        for threads in (1, 2):
            got = run(True, threads)
            for a, b in zip(got, ref):
                assert np.array_equal(a, b)
    finally:
        cnnfast.set_num_threads(None)
    assert not np.array_equal(ref[0], p0)  # it did move


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [5, 200_001])
def test_relu_mask_equals_numpy(dtype, n):
    from cnnfast import _kernels

    rng = np.random.default_rng(n)
    y = rng.standard_normal(n).astype(dtype)
    y[::7] = 0.0
    y[3] = np.nan
    dy = rng.standard_normal(n).astype(dtype)
    expected = np.where(np.greater(y, 0), dy, 0).astype(dtype)
    got = dy.copy()
    _kernels.relu_mask(got, y)
    assert np.array_equal(got, expected)
    with pytest.raises(ValueError):
        _kernels.relu_mask(got, y[:-1])


def test_blas_limit_option_changes_nothing_numerically():
    """blas_threads only limits numpy's BLAS (the model calls none): same bits."""
    from cnnfast.layers import Conv2D, Dense, Flatten, MaxPooling2D
    from cnnfast.models import Sequential
    from cnnfast.utils import set_random_seed

    rng = np.random.default_rng(5)
    x = rng.random((16, 8, 8, 1), dtype=np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 16)]
    losses = []
    for limit in (None, 1):
        set_random_seed(3)
        m = Sequential([Conv2D(4, 3, padding="same", activation="relu", input_shape=(8, 8, 1)),
                        MaxPooling2D(2), Flatten(), Dense(3, activation="softmax")])
        m.compile(loss="categorical_crossentropy", optimizer="adam")
        m.blas_threads = limit
        losses.append([m.train_on_batch(x, y) for _ in range(3)])
    assert losses[0] == losses[1]


def test_training_is_bit_identical_for_1_and_2_threads():
    """Every kernel of the step reduces in a fixed order: threads change no bit."""
    from cnnfast.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
    from cnnfast.models import Sequential
    from cnnfast.utils import set_random_seed

    rng = np.random.default_rng(9)
    x = rng.random((24, 12, 12, 1), dtype=np.float32)
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 24)]
    runs = []
    try:
        for threads in (1, 2):
            cnnfast.set_num_threads(threads)
            set_random_seed(7)
            m = Sequential([
                Conv2D(8, 3, padding="same", activation="relu", input_shape=(12, 12, 1)),
                MaxPooling2D(2),
                Conv2D(16, 3, padding="same", activation="relu"),
                MaxPooling2D(2),
                Flatten(), Dense(20, activation="relu"), Dropout(0.5),
                Dense(4, activation="softmax"),
            ])
            m.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
            hist = m.fit(x, y, batch_size=8, epochs=2, verbose=0)
            runs.append((hist.history["loss"], m.get_weights()))
    finally:
        cnnfast.set_num_threads(None)
    assert runs[0][0] == runs[1][0]
    assert all(np.array_equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))


@pytest.mark.parametrize("pool", ["max", "min"])
@pytest.mark.parametrize("activation", ["relu", None])
def test_fused_conv_pool_layers_train_bit_identically(pool, activation, monkeypatch):
    """Sequential runs Conv2D + Max/MinPooling2D as one fused kernel pair (cnnfast._plan):
    same losses, weights and predictions bit for bit as the layers one by one."""
    from cnnfast import _plan
    from cnnfast.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D, MinPooling2D
    from cnnfast.models import Sequential
    from cnnfast.utils import set_random_seed

    Pool = MaxPooling2D if pool == "max" else MinPooling2D
    rng = np.random.default_rng(4)
    x = rng.random((20, 13, 12, 2), dtype=np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 20)]
    runs = []
    for fuse in (False, True):
        monkeypatch.setattr(Sequential, "fuse_layers", fuse)
        set_random_seed(11)
        m = Sequential([
            Conv2D(6, 3, padding="same", activation=activation, input_shape=(13, 12, 2)),
            Pool(2),
            Conv2D(10, (2, 3), activation=activation),
            Pool((2, 2), strides=(3, 2)),
            Flatten(), Dense(12, activation="relu"), Dropout(0.3),
            Dense(3, activation="softmax"),
        ])
        m.compile(loss="categorical_crossentropy", optimizer="adam")
        fused = [s for s in m._plan().steps if isinstance(s, _plan.ConvPoolStep)]
        assert len(fused) == (2 if fuse else 0)
        hist = m.fit(x, y, batch_size=8, epochs=2, verbose=0)
        runs.append((hist.history["loss"], m.get_weights(), m.predict(x, batch_size=7)))
    assert runs[0][0] == runs[1][0]
    assert all(np.array_equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))
    assert np.array_equal(runs[0][2], runs[1][2])


def test_pairs_that_cannot_fuse_run_as_layers():
    from cnnfast import _plan
    from cnnfast.layers import AveragePooling2D, Conv2D, MaxPooling2D
    from cnnfast.models import Sequential

    def steps(*layers):
        m = Sequential(list(layers))
        return [type(s).__name__ for s in m._plan().steps]

    shape = dict(input_shape=(8, 8, 3))
    assert steps(Conv2D(4, 3, activation="relu", **shape), MaxPooling2D(2)) == ["ConvPoolStep"]
    assert steps(Conv2D(4, 3, **shape), AveragePooling2D(2)) == ["Conv2D", "AveragePooling2D"]
    assert steps(Conv2D(4, 3, activation="tanh", **shape), MaxPooling2D(2)) == \
        ["Conv2D", "MaxPooling2D"]
    assert steps(Conv2D(4, 3, **shape), MaxPooling2D(2, strides=1)) == \
        ["Conv2D", "MaxPooling2D"]  # overlapping windows
    assert steps(Conv2D(4, 3, padding="same", **shape), MaxPooling2D(3, padding="same")) == \
        ["Conv2D", "MaxPooling2D"]  # 8 -> padded windows
    assert steps(Conv2D(4, 3, data_format="channels_first", input_shape=(3, 8, 8)),
                 MaxPooling2D(2, data_format="channels_first")) == ["Conv2D", "MaxPooling2D"]
    assert _plan.fusable(Conv2D(4, 3), MaxPooling2D(2)) is False  # not built


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_layers_without_bias_match_unfused(dtype):
    from cnnfast.layers import Conv2D, Dense, Flatten, MaxPooling2D
    from cnnfast.models import Sequential
    from cnnfast.utils import set_random_seed

    rng = np.random.default_rng(1)
    x = rng.random((9, 10, 10, 3))
    y = np.eye(2)[rng.integers(0, 2, 9)]
    runs = []
    for fuse in (False, True):
        set_random_seed(5)
        m = Sequential([
            Conv2D(4, 3, use_bias=False, activation="relu", input_shape=(10, 10, 3)),
            MaxPooling2D(2),
            Conv2D(5, 2, padding="same", use_bias=False),
            MaxPooling2D(2), Flatten(), Dense(2, activation="softmax"),
        ], dtype=dtype)
        m.fuse_layers = fuse
        m.compile(loss="categorical_crossentropy", optimizer="adam")
        hist = m.fit(x, y, batch_size=4, epochs=2, verbose=0)
        runs.append((hist.history["loss"], m.get_weights(), m.predict(x)))
    assert runs[0][0] == runs[1][0]
    assert all(np.array_equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))
    assert np.array_equal(runs[0][2], runs[1][2])


def _splitmix64_keep(key: int, n: int, rate: float) -> np.ndarray:
    """The dropout kernel's draws, written out in Python integers (the oracle)."""
    m64 = (1 << 64) - 1
    keep = np.empty(n, bool)
    for i in range(n):
        z = (key + (i + 1) * 0x9E3779B97F4A7C15) & m64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m64
        z ^= z >> 31
        keep[i] = (z >> 11) / 2.0**53 >= rate
    return keep


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [37, 100_003])  # below and above the parallel threshold
def test_dropout_kernel_draws_splitmix64_and_is_thread_and_simd_invariant(dtype, n):
    from cnnfast import _kernels

    x = np.random.default_rng(n).standard_normal(n).astype(dtype)
    key, rate = 0xDEADBEEF12345678, 0.3
    scale = dtype(1.0 / (1.0 - rate))
    results = []
    try:
        for level in ("scalar", "avx2", "neon", "avx512"):
            _kernels.set_simd_cap(level)  # a level the CPU lacks caps at one it has
            for threads in (1, 2):
                cnnfast.set_num_threads(threads)
                y, mask = np.empty_like(x), np.empty_like(x)
                _kernels.dropout(x, key, rate, y, mask)
                results.append((y, mask))
    finally:
        _kernels.set_simd_cap("avx512")
        cnnfast.set_num_threads(None)
    y, mask = results[0]
    for y2, m2 in results[1:]:
        assert np.array_equal(y2, y) and np.array_equal(m2, mask)
    checked = min(n, 2000)  # the Python oracle is slow
    keep = _splitmix64_keep(key, checked, rate)
    assert np.array_equal(mask[:checked], np.where(keep, scale, dtype(0)))
    assert np.array_equal(y, x * mask)
    assert set(np.unique(mask)) <= {dtype(0), scale}
    if n > 10_000:
        assert abs((mask == 0).mean() - rate) < 0.01


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_offset_draws_the_slice_of_the_whole_arrays_mask(dtype):
    """A call on elements [lo, hi) with offset lo draws exactly those elements of the
    one-call mask (a data-parallel rank's share of the global batch), at every SIMD
    level and thread count, across the kernel's 16,384-element chunks."""
    from cnnfast import _kernels

    n, key, rate = 100_003, 0x0123456789ABCDEF, 0.4
    x = np.random.default_rng(5).standard_normal(n).astype(dtype)
    whole_y, whole = np.empty_like(x), np.empty_like(x)
    _kernels.dropout(x, key, rate, whole_y, whole)
    try:
        for level in ("scalar", "avx2", "avx512"):
            _kernels.set_simd_cap(level)
            for threads in (1, 2):
                cnnfast.set_num_threads(threads)
                for lo, hi in ((0, 37), (20_001, 90_000), (16_384, n), (n - 5, n)):
                    part = np.ascontiguousarray(x[lo:hi])
                    y, mask = np.empty_like(part), np.empty_like(part)
                    _kernels.dropout(part, key, rate, y, mask, lo)
                    assert np.array_equal(mask, whole[lo:hi]), (level, threads, lo, hi)
                    assert np.array_equal(y, whole_y[lo:hi])
    finally:
        _kernels.set_simd_cap("avx512")
        cnnfast.set_num_threads(None)
    assert not np.array_equal(whole[:1000], whole[1:1001])  # the offset matters


def test_dropout_kernel_rejects_bad_arguments():
    from cnnfast import _kernels

    x = np.ones((4, 5), np.float32)
    with pytest.raises(ValueError, match="rate"):
        _kernels.dropout(x, 1, 1.0, np.empty_like(x), np.empty_like(x))
    with pytest.raises(ValueError, match="offset"):
        _kernels.dropout(x, 1, 0.5, np.empty_like(x), np.empty_like(x), -1)
    with pytest.raises(ValueError, match="mask must have"):
        _kernels.dropout(x, 1, 0.5, np.empty_like(x), np.empty((4, 6), np.float32))
    with pytest.raises(ValueError, match="y must have"):
        _kernels.dropout(x, 1, 0.5, np.empty_like(x, dtype=np.float64), np.empty_like(x))
    with pytest.raises(TypeError, match="dtype"):
        xi = np.ones((4, 5), np.int32)
        _kernels.dropout(xi, 1, 0.5, np.empty_like(xi), np.empty_like(xi))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 10), (7, 3), (4, 2, 5), (3, 1), (5,), (0, 4)])
def test_softmax_kernel_matches_the_float64_formula(dtype, shape):
    """The C softmax of the output layers: within a few ulps of exp(z - max) / sum
    computed in float64, rows summing to 1; in place (out is z) gives the same bits."""
    from cnnfast import activations
    from cnnfast.ops import training

    rng = np.random.default_rng(len(shape))
    z = (rng.standard_normal(shape) * 20).astype(dtype)
    out = np.empty_like(z)
    training.softmax(z, out)
    z64 = z.astype(np.float64)
    e = np.exp(z64 - z64.max(axis=-1, keepdims=True))
    want = e / e.sum(axis=-1, keepdims=True)
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(out, want, rtol=8 * eps, atol=8 * eps * want.max(initial=0))
    inplace = z.copy()
    training.softmax(inplace, inplace)
    assert np.array_equal(inplace, out)
    # the activation takes the C kernel for contiguous arrays, NumPy for views
    assert np.array_equal(activations.get("softmax").forward(z), out)
    if z.ndim == 2 and z.shape[0] > 1 and z.shape[1] > 1:
        view = np.asfortranarray(z)
        np.testing.assert_allclose(activations.get("softmax").forward(view), want,
                                   rtol=8 * eps, atol=8 * eps)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_kernel_nan_and_inf_rows(dtype):
    from cnnfast.ops import training

    z = np.array([[0.0, np.nan, 1.0], [np.nan, 0.0, 1.0], [np.inf, 0.0, 1.0],
                  [-np.inf, 0.0, 0.0], [1.0, 2.0, 3.0]], dtype=dtype)
    out = np.empty_like(z)
    training.softmax(z, out)
    with np.errstate(invalid="ignore"):
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        want = e / e.sum(axis=-1, keepdims=True)
    assert np.isnan(out[:3]).all() and np.isnan(want[:3]).all()
    np.testing.assert_allclose(out[3:], want[3:], rtol=1e-6)


def test_softmax_kernel_rejects_bad_arguments():
    from cnnfast.ops import training

    z = np.zeros((4, 3), np.float32)
    with pytest.raises(TypeError, match="dtype"):
        training.softmax(z.astype(np.float16), z.astype(np.float16))
    with pytest.raises(ValueError, match="out must be a float32 array of shape"):
        training.softmax(z, np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError, match="out must be a float32"):
        training.softmax(z, np.zeros((4, 3), np.float64))
    with pytest.raises(ValueError, match="C-contiguous"):
        training.softmax(np.zeros((3, 4), np.float32).T, z)
    with pytest.raises(ValueError, match="last axis"):
        training.softmax(np.zeros((4, 0), np.float32), np.zeros((4, 0), np.float32))
    big = np.zeros((5, 3), np.float32)
    with pytest.raises(ValueError, match="overlaps"):
        training.softmax(big[1:], big[:4])
    ro = np.zeros((4, 3), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        training.softmax(z, ro)
