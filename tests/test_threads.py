"""Threads: bit-identical results for any thread count, the thread-count API,
threadpoolctl and OMP_NUM_THREADS, and concurrent calls from Python threads.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import threadpoolctl

import cnnfast
from cnnfast import reference as ref


@pytest.fixture(autouse=True)
def _default_threads():
    """Every test starts and ends with the OpenMP default thread count."""
    cnnfast.set_num_threads(0)
    yield
    cnnfast.set_num_threads(0)


def _problems():
    """Problems large enough that two threads really split the work."""
    rng = np.random.default_rng(21)
    out = []
    for dtype in (np.float32, np.float64):
        for fmt in ("channels_last", "channels_first"):
            x = rng.standard_normal((6, 13, 11, 5)).astype(dtype)
            k = rng.standard_normal((3, 3, 5, 7)).astype(dtype)
            if fmt == "channels_first":
                x, k = x.transpose(0, 3, 1, 2).copy(), k.transpose(3, 2, 0, 1).copy()
            b = rng.standard_normal(7).astype(dtype)
            geo = dict(strides=(1, 2), padding="same", dilation_rate=(2, 1), data_format=fmt)
            out.append((x, k, b, geo))
    return out


def _run_all(x, k, b, geo):
    """Every kernel on one problem; returns a flat list of result arrays."""
    y = cnnfast.conv2d(x, k, b, **geo)
    dy = np.cos(np.arange(y.size, dtype=y.dtype)).reshape(y.shape)
    dx, dk, db = cnnfast.conv2d_backward(dy, x, k, **geo)
    res = [y, cnnfast.conv2d(x, k, b, **geo, activation="relu"), dx, dk, db]
    fmt = geo["data_format"]
    for mode in ("max", "avg", "min"):
        # Overlapping windows (stride 1 < pool 3): backward accumulates into shared cells.
        p = cnnfast.pool2d(x, 3, 1, "same", mode, fmt)
        pdy = np.sin(np.arange(p.size, dtype=p.dtype)).reshape(p.shape)
        res += [p, cnnfast.pool2d_backward(pdy, x, 3, 1, "same", mode, fmt)]
        if mode != "avg":
            p2, idx = cnnfast.pool2d(x, (2, 3), (2, 1), 1, mode, fmt, return_indices=True)
            q = np.ones(p2.shape, p2.dtype)
            res += [p2, idx, cnnfast.pool2d_backward(q, x, (2, 3), (2, 1), 1, mode, fmt,
                                                      indices=idx)]
    return res


def _assert_identical(a_list, b_list):
    assert len(a_list) == len(b_list)
    for a, b in zip(a_list, b_list):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()  # bit-identical, not merely close


def test_thread_count_api():
    default = cnnfast.get_num_threads()
    assert default >= 1
    cnnfast.set_num_threads(1)
    assert cnnfast.get_num_threads() == 1
    cnnfast.set_num_threads(3)
    assert cnnfast.get_num_threads() == (3 if cnnfast.openmp_enabled() else 1)
    cnnfast.set_num_threads(None)
    assert cnnfast.get_num_threads() == default
    cnnfast.set_num_threads(2)
    cnnfast.set_num_threads(0)
    assert cnnfast.get_num_threads() == default
    for bad in (-1, -5):
        with pytest.raises(ValueError):
            cnnfast.set_num_threads(bad)
    for bad in (1.5, "2"):
        with pytest.raises((TypeError, ValueError)):
            cnnfast.set_num_threads(bad)
    assert cnnfast.get_num_threads() == default


def test_bit_identical_for_1_2_and_3_threads():
    for prob in _problems():
        cnnfast.set_num_threads(1)
        one = _run_all(*prob)
        cnnfast.set_num_threads(2)
        two = _run_all(*prob)
        cnnfast.set_num_threads(3)  # more threads than cores, uneven split
        three = _run_all(*prob)
        _assert_identical(one, two)
        _assert_identical(one, three)


def test_bit_identical_batch_reduction_many_threads():
    # dkernel/dbias sum over a batch that does not divide evenly among threads.
    rng = np.random.default_rng(3)
    x = rng.standard_normal((7, 9, 9, 4))
    k = rng.standard_normal((3, 3, 4, 6))
    dy = rng.standard_normal((7, 7, 7, 6))
    results = []
    for n in (1, 2, 4, 5, 8):
        cnnfast.set_num_threads(n)
        results.append(cnnfast.conv2d_backward(dy, x, k))
    for r in results[1:]:
        _assert_identical(list(results[0]), list(r))
    want = ref.conv2d_backward(dy, x, k)
    for g, w in zip(results[0], want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-10)


def test_threadpoolctl_limits_cnnfast():
    if not cnnfast.openmp_enabled():
        pytest.skip("built without OpenMP")
    info = threadpoolctl.threadpool_info()
    assert any(d.get("user_api") == "openmp" for d in info), info
    prob = _problems()[0]
    cnnfast.set_num_threads(1)
    one = _run_all(*prob)
    cnnfast.set_num_threads(0)
    with threadpoolctl.threadpool_limits(1):
        assert cnnfast.get_num_threads() == 1
        limited = _run_all(*prob)
    _assert_identical(one, limited)
    # A user-set count is capped by the limit too, and restored after it.
    cnnfast.set_num_threads(2)
    with threadpoolctl.threadpool_limits(1):
        assert cnnfast.get_num_threads() == 1
    assert cnnfast.get_num_threads() == 2


def _child_threads(env_extra):
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env.update(env_extra)
    out = subprocess.run(
        [sys.executable, "-c", "import cnnfast; print(cnnfast.get_num_threads())"],
        env=env, capture_output=True, text=True, timeout=120, check=True,
        cwd=os.path.dirname(os.path.abspath(__file__)),
    )
    return int(out.stdout.strip().splitlines()[-1])


def test_omp_num_threads_respected():
    if not cnnfast.openmp_enabled():
        pytest.skip("built without OpenMP")
    assert _child_threads({"OMP_NUM_THREADS": "1"}) == 1
    assert _child_threads({"OMP_NUM_THREADS": "3"}) == 3


def test_concurrent_python_threads():
    # Several Python threads call the kernels at once (the GIL is released inside):
    # each must get exactly the result of a lone sequential call.
    rng = np.random.default_rng(17)
    jobs = []
    for i in range(12):
        dtype = np.float32 if i % 2 else np.float64
        x = rng.standard_normal((3, 8 + i % 3, 7, 3)).astype(dtype)
        k = rng.standard_normal((3, 2, 3, 4)).astype(dtype)
        jobs.append((x, k, np.arange(4, dtype=dtype), dict(strides=1 + i % 2, padding="same",
                                                           dilation_rate=1,
                                                           data_format="channels_last")))
    cnnfast.set_num_threads(2)
    sequential = [_run_all(*job) for job in jobs]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(_run_all, *job) for job in jobs * 2]
        concurrent_results = [f.result() for f in futures]
    for i, res in enumerate(concurrent_results):
        _assert_identical(sequential[i % len(jobs)], res)
    # And they are right, not merely repeatable.
    x, k, b, geo = jobs[0]
    np.testing.assert_allclose(sequential[0][0], ref.conv2d(x, k, b, **geo), rtol=1e-10,
                               atol=1e-10)


def test_fma_ceiling_counts_the_team():
    # benchmarks/scaling.py's calibration row: FLOPs = 2 x chains x lanes x steps on
    # every thread of the team (1 thread without OpenMP), as many chains as the
    # level's register file holds without spilling (csrc/calibrate.c)
    from cnnfast import _kernels

    lanes, chains = {"avx512": (16, 30), "avx2": (8, 14), "neon": (4, 30),
                     "scalar": (1, 14)}[cnnfast.simd_level()]
    try:
        cnnfast.set_num_threads(1)
        assert _kernels.fma_ceiling(10) == 2 * chains * lanes * 10
        assert _kernels.fma_ceiling(0) == 0
        cnnfast.set_num_threads(3)
        team = 3 if cnnfast.openmp_enabled() else 1
        assert _kernels.fma_ceiling(10) == 2 * chains * lanes * 10 * team
        with pytest.raises(ValueError, match="iters"):
            _kernels.fma_ceiling(-1)
    finally:
        cnnfast.set_num_threads(0)


def _config_in_subprocess(env_extra: dict, drop=(), preload: str = "") -> dict:
    """config_dict() and the spin variables of os.environ, in a fresh interpreter
    (``preload``: Python run before cnnfast is imported)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", *drop)}
    env.update(env_extra)
    code = (preload + "import json, os, cnnfast; from cnnfast._config import config_dict; "
            "c = config_dict(); print(json.dumps({'cfg_spin': c['GOMP_SPINCOUNT'], "
            "'cfg_wait': c['OMP_WAIT_POLICY'], 'env': os.environ.get('GOMP_SPINCOUNT')}))")
    # cwd: not the repository root, whose cnnfast/ has no compiled extension
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True, timeout=120,
                         cwd=os.path.dirname(os.path.abspath(__file__))).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.skipif(not cnnfast.openmp_enabled(), reason="built without OpenMP")
def test_short_spin_while_libgomp_loads_and_environment_put_back():
    """cnnfast asks libgomp for a short spin (several processes sharing the cores) only
    while its extension loads, and never over the user's own setting."""
    got = _config_in_subprocess({})
    assert got["env"] is None  # put back: a later OpenMP runtime sees the user's env
    assert got["cfg_spin"].startswith("30000 (set by cnnfast")
    got = _config_in_subprocess({"GOMP_SPINCOUNT": "1234"})
    assert got["env"] == "1234" and got["cfg_spin"] == "1234"
    got = _config_in_subprocess({"OMP_WAIT_POLICY": "active"})
    assert got["env"] is None and got["cfg_spin"] is None and got["cfg_wait"] == "active"
    # libgomp loaded before cnnfast read its settings then: cnnfast claims nothing
    try:
        ctypes.CDLL("libgomp.so.1")
    except OSError:  # an OpenMP runtime other than GNU's
        return
    got = _config_in_subprocess({}, preload="import ctypes; "
                                "ctypes.CDLL('libgomp.so.1', mode=ctypes.RTLD_GLOBAL); ")
    assert got["env"] is None and got["cfg_spin"] is None


# ----------------------------------------------- every kernel, concurrently --

def _every_kernel_jobs():
    """Problems for every kind of kernel, each big enough to use two OpenMP threads."""
    rng = np.random.default_rng(29)
    jobs = []
    for i, dtype in enumerate((np.float32, np.float64, np.float32, np.float64)):
        x = rng.standard_normal((4 + i, 40, 37, 8)).astype(dtype)
        k = rng.standard_normal((3, 3, 8, 8)).astype(dtype)
        b = rng.standard_normal(8).astype(dtype)
        a = rng.standard_normal((70 + 9 * i, 130)).astype(dtype)
        w = rng.standard_normal((130, 90)).astype(dtype)
        jobs.append((x, k, b, a, w, 1 + i % 2))
    return jobs


def _every_kernel(x, k, b, a, w, stride):
    """conv2d forward/backward, fused conv+pool forward/backward, max/avg/min pooling
    forward/backward, matmul and dense on one problem: a flat list of results."""
    geo = dict(strides=stride, padding="same")
    y = cnnfast.conv2d(x, k, b, **geo, activation="relu")
    dy = np.cos(np.arange(y.size, dtype=y.dtype)).reshape(y.shape)
    res = [y, *cnnfast.conv2d_backward(dy, x, k, **geo)]
    for mode in ("max", "min"):
        yp, idx = cnnfast.conv2d_pool2d(x, k, b, **geo, activation="relu", pool_size=2,
                                        pool_mode=mode, return_indices=True)
        dyp = np.sin(np.arange(yp.size, dtype=yp.dtype)).reshape(yp.shape)
        res += [yp, idx, *cnnfast.conv2d_pool2d_backward(dyp, x, k, idx, yp, **geo,
                                                          activation="relu", pool_size=2,
                                                          pool_mode=mode)]
    for mode in ("max", "avg", "min"):
        p = cnnfast.pool2d(x, 3, 2, "same", mode)
        pdy = np.sin(np.arange(p.size, dtype=p.dtype)).reshape(p.shape)
        res += [p, cnnfast.pool2d_backward(pdy, x, 3, 2, "same", mode)]
    # plain, transposed views (read in place) and wide (B's panels split)
    res += [cnnfast.matmul(a, w), cnnfast.matmul(a.T.copy().T, w.T.copy().T),
            cnnfast.matmul(a[:20], w.T.copy().T),
            cnnfast.dense(a, w, b[:1].repeat(w.shape[1]), activation="relu")]
    return res


def _run_in_threads(jobs, n_threads, rounds, background=None):
    """Each job `rounds` times on `n_threads` Python threads at once, while
    `background()` (if given) runs in a loop on one more thread."""
    stop = threading.Event()
    errors = []

    def loop():
        try:
            while not stop.is_set():
                background()
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    bg = threading.Thread(target=loop) if background else None
    if bg:
        bg.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=n_threads) as pool:
            futures = [pool.submit(_every_kernel, *job) for job in jobs * rounds]
            results = [f.result() for f in futures]
    finally:
        stop.set()
        if bg:
            bg.join()
    assert not errors, errors
    return results


@pytest.fixture(scope="module")
def every_kernel_single_thread():
    jobs = _every_kernel_jobs()
    cnnfast.set_num_threads(1)
    try:
        return jobs, [_every_kernel(*job) for job in jobs]
    finally:
        cnnfast.set_num_threads(0)


def test_every_kernel_from_8_python_threads(every_kernel_single_thread):
    # 8 Python threads, each running every kind of kernel with a 2-thread team:
    # every result is bit-for-bit the single-threaded one.
    jobs, want = every_kernel_single_thread
    cnnfast.set_num_threads(2)
    got = _run_in_threads(jobs, 8, rounds=4)
    for i, res in enumerate(got):
        _assert_identical(want[i % len(jobs)], res)


def test_set_num_threads_in_a_loop_while_others_compute(every_kernel_single_thread):
    # The thread count changes under running calls: each call uses some count,
    # and every count gives the same bits.
    jobs, want = every_kernel_single_thread
    counts = iter(range(10**9))
    got = _run_in_threads(jobs, 6, rounds=3,
                          background=lambda: cnnfast.set_num_threads(1 + next(counts) % 3))
    for i, res in enumerate(got):
        _assert_identical(want[i % len(jobs)], res)


def test_release_workspaces_in_a_loop_while_others_compute(every_kernel_single_thread):
    # A release waits for the running calls and holds new ones back: no call
    # ever sees its buffers freed under it.
    jobs, want = every_kernel_single_thread
    cnnfast.set_num_threads(2)
    released = []

    def release():
        cnnfast.release_workspaces()
        released.append(1)

    got = _run_in_threads(jobs, 6, rounds=3, background=release)
    for i, res in enumerate(got):
        _assert_identical(want[i % len(jobs)], res)
    assert released
