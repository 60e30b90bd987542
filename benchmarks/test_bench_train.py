"""The tutorial CNN end to end: a training step (batch 128) and inference (batch 1000).

cnnfast's Keras-style model (``train_on_batch`` / ``predict``) against the same
architecture in PyTorch (NCHW and channels_last), grouped per workload.
"""

from __future__ import annotations

import numpy as np
import pytest

from cnnfast import bench


@pytest.mark.parametrize("impl", bench.MODEL_IMPLS)
@pytest.mark.parametrize("key", list(bench.MODEL_WORKLOADS))
def test_model(benchmark, workloads, tiny, run_case, key, impl):
    wl = workloads.model[key]
    benchmark.group = wl.title
    try:
        case = bench.model_case(impl, wl)
    except bench.Unavailable as exc:
        pytest.skip(str(exc))
    benchmark.extra_info.update(
        impl=impl, batch=wl.batch, gflop=wl.flops() / 1e9, note=case.note
    )
    out = run_case(benchmark, case, slow=False, tiny=tiny)
    # a loss value (train) or a (batch, 10) output (inference), and finite
    out = np.asarray(out.detach() if hasattr(out, "detach") else out, dtype=np.float64)
    if key == "infer":
        assert out.shape == (wl.batch, 10)
    assert np.all(np.isfinite(out))
