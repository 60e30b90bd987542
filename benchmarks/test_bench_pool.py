"""Pooling 2x2/2 on (128,28,28,32) and (128,14,14,64): max, avg, min, forward and backward.

One pytest-benchmark group per shape, mode and direction; besides the
implementations, each group times a plain multi-threaded copy of the same
number of bytes (the memory-bandwidth bound of the operation).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from cnnfast import bench

TOL = 1e-5


@pytest.mark.parametrize("impl", bench.POOL_IMPLS)
@pytest.mark.parametrize("direction", bench.POOL_DIRECTIONS)
@pytest.mark.parametrize("mode", bench.POOL_MODES)
@pytest.mark.parametrize("key", list(bench.POOL_WORKLOADS))
def test_pool(benchmark, workloads, tiny, pool_inputs, pool_ref, run_case, check_case,
              key, mode, direction, impl):
    wl = workloads.pool[key]
    benchmark.group = f"{mode} pool {wl.title} -- {direction}"
    slow = impl == "reference"
    n = wl.n_small if slow else wl.n
    try:
        case = bench.pool_case(impl, wl, mode, direction, pool_inputs(wl, n))
        small = bench.pool_case(impl, wl, mode, direction, pool_inputs(wl, wl.n_small))
    except bench.Unavailable as exc:
        pytest.skip(str(exc))
    benchmark.extra_info.update(
        impl=impl, timed_batch=n, full_batch=wl.n,
        megabytes=wl.nbytes(mode, direction) * n / wl.n / 1e6, note=case.note,
    )
    run_case(benchmark, case, slow=slow, tiny=tiny)
    check_case(small, pool_ref(wl, mode, direction), TOL)


@pytest.mark.parametrize("direction", bench.POOL_DIRECTIONS)
@pytest.mark.parametrize("mode", bench.POOL_MODES)
@pytest.mark.parametrize("key", list(bench.POOL_WORKLOADS))
def test_copy_same_bytes(benchmark, workloads, tiny, bench_threads, run_case, key, mode,
                         direction):
    wl = workloads.pool[key]
    benchmark.group = f"{mode} pool {wl.title} -- {direction}"
    nbytes = wl.nbytes(mode, direction)
    with ThreadPoolExecutor(max_workers=bench_threads) as pool:
        case = bench.copy_case(nbytes, bench_threads, pool)
        benchmark.extra_info.update(impl="copy", megabytes=nbytes / 1e6, note=case.note)
        run_case(benchmark, case, slow=False, tiny=tiny)
