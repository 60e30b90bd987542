"""Convolution workloads a-e: forward, input gradient and kernel gradient, per implementation.

One pytest-benchmark group per workload and direction, so the table compares
cnnfast (NHWC and NCHW), the naive reference (on its small batch), the NumPy
im2col baseline and PyTorch (NCHW, channels_last) side by side.
"""

from __future__ import annotations

import pytest

from cnnfast import bench

# float32 results against the float64 reference, relative to the largest value
TOL = 1e-4


@pytest.mark.parametrize("impl", bench.CONV_IMPLS)
@pytest.mark.parametrize("direction", bench.CONV_DIRECTIONS)
@pytest.mark.parametrize("key", list(bench.CONV_WORKLOADS))
def test_conv(benchmark, workloads, tiny, conv_inputs, conv_ref, run_case, check_case,
              key, direction, impl):
    wl = workloads.conv[key]
    benchmark.group = f"conv {key}) {wl.title} -- {direction}"
    slow = impl == "reference"  # naive loops: timed on the small batch only
    n = wl.n_small if slow else wl.n
    try:
        case = bench.conv_case(impl, wl, direction, conv_inputs(wl, n))
        small = bench.conv_case(impl, wl, direction, conv_inputs(wl, wl.n_small))
    except bench.Unavailable as exc:
        pytest.skip(str(exc))
    benchmark.extra_info.update(
        impl=impl, timed_batch=n, full_batch=wl.n, gflop=wl.flops(n) / 1e9, note=case.note
    )
    run_case(benchmark, case, slow=slow, tiny=tiny)
    padding = "same" if small.ref_key is None else small.ref_key
    check_case(small, conv_ref(wl, direction, padding), TOL)
