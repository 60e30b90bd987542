"""The fused C helpers of the training step (Adam update, ReLU backward mask)
give exactly what their NumPy formulations give."""

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
