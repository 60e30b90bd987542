"""A convolution with subnormal weights, with cnnfast.set_flush_denormal off and on.

Weights that decay towards zero (weight decay, dead filters) can become
subnormal; on many CPUs arithmetic on subnormals is much slower than on normal
floats. One pytest-benchmark group, two rows: flushing off (exact IEEE
arithmetic) and on (subnormal inputs and results read and written as zero).
The results are checked: off against the float64 reference, on against zero
(every product of a subnormal weight is flushed).
"""

from __future__ import annotations

import numpy as np
import pytest

import cnnfast
from cnnfast import reference as ref

# (batch, height, width, channels, filters): a mid-network 3x3 layer; tiny for CI
FULL = (32, 28, 28, 32, 64)
TINY = (2, 8, 8, 4, 8)


def _inputs(shape) -> tuple[np.ndarray, np.ndarray]:
    n, h, w, c, f = shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    sub = np.float32(np.finfo(np.float32).smallest_subnormal)
    # subnormal magnitudes spread over the range, random signs
    k = (rng.integers(1, 2**22, (3, 3, c, f)) * sub).astype(np.float32)
    k *= rng.choice(np.array([-1, 1], np.float32), k.shape)
    assert np.all(np.abs(k) < np.finfo(np.float32).tiny) and np.all(k != 0)
    return x, k


@pytest.mark.parametrize("flush", [False, True], ids=["flush-off", "flush-on"])
def test_conv_subnormal_weights(benchmark, tiny, flush):
    shape = TINY if tiny else FULL
    x, k = _inputs(shape)
    benchmark.group = f"conv 3x3 'same' {shape[:4]} -> {shape[4]} filters, subnormal weights"
    benchmark.extra_info.update(flush_denormal=flush, simd=cnnfast.simd_level(),
                                threads=cnnfast.get_num_threads())
    if not cnnfast.set_flush_denormal(flush) and flush:
        pytest.skip("no flush-to-zero control on this platform")
    try:
        def fn():
            return cnnfast.conv2d(x, k, padding="same")

        if tiny:
            y = benchmark.pedantic(fn, rounds=1, iterations=1)
        else:
            y = benchmark(fn)
    finally:
        cnnfast.set_flush_denormal(False)
    if flush:
        assert not np.any(y)
    else:
        n_check = min(2, shape[0])
        want = ref.conv2d(x[:n_check], k, padding="same")
        err = float(np.max(np.abs(y[:n_check] - want)))
        assert err <= 1e-4 * float(np.max(np.abs(want))), f"max abs error {err:.3g}"
