"""pytest-benchmark suite of cnnfast: shared fixtures and the tiny mode.

Run:  pytest benchmarks/ --benchmark-only            (real sizes, a few minutes)
      CNNFAST_BENCH_TINY=1 pytest benchmarks/         (tiny sizes, seconds: for CI)
      pytest benchmarks/ --benchmark-disable          (tiny sizes too, each case run once)

Every test builds its case with the same functions as ``cnnfast bench``
(``cnnfast.bench.conv_case`` etc.), groups itself per workload + direction so
that pytest-benchmark's tables put the implementations side by side, checks
its result against the float64 reference on a small batch (a correctness
check, never a timing assertion), and skips with the reason when an
implementation cannot run here (e.g. torch not installed).

Threads: ``CNNFAST_BENCH_THREADS`` (default: cnnfast's default) for cnnfast,
torch and numpy's BLAS alike.

Unlike ``cnnfast bench``, pytest-benchmark runs all rounds of one case before
the next, so noise is not spread evenly; and the reference row is the time of
its small batch, not scaled (see each result's ``extra_info``).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import time
from types import SimpleNamespace

import numpy as np
import pytest

from cnnfast import bench

_TINY = False

# Seconds to wait after a case that called numpy's BLAS: its threads spin for
# about 0.1 s after each call and would slow the OpenMP kernels of the next case.
SETTLE_S = 0.2


def pytest_configure(config):
    global _TINY
    disabled = False
    try:
        disabled = bool(config.getoption("benchmark_disable"))
    except ValueError:  # no pytest-benchmark: pytest_collection_modifyitems skips the suite
        pass
    _TINY = disabled or os.environ.get("CNNFAST_BENCH_TINY", "") not in ("", "0")


def _no_benchmark_plugin_reason(config) -> str | None:
    """Why the ``benchmark`` fixture is missing, or None when pytest-benchmark is active."""
    # "benchmark" is the plugin's pytest11 entry-point name, the one -p no:benchmark blocks
    if config.pluginmanager.hasplugin("benchmark"):
        return None
    if importlib.util.find_spec("pytest_benchmark") is None:
        return "pytest-benchmark is not installed: pip install 'cnnfast[bench]'"
    return "pytest-benchmark is installed but disabled (-p no:benchmark)"


def pytest_collection_modifyitems(config, items):
    # Without the plugin every test here would error with "fixture 'benchmark' not
    # found"; one skip reason says what is missing instead. A skip mark is evaluated
    # before fixtures are looked up. Only this directory's tests are touched: this
    # hook sees every collected item when benchmarks/ is run together with tests/.
    reason = _no_benchmark_plugin_reason(config)
    if reason is None:
        return
    here = os.path.dirname(os.path.realpath(__file__))
    mark = pytest.mark.skip(reason=reason)
    for item in items:
        in_here = os.path.realpath(item.path).startswith(here + os.sep)
        if in_here and "benchmark" in getattr(item, "fixturenames", ()):
            item.add_marker(mark)


def pytest_report_header(config):
    torch, reason = bench.torch_or_reason()
    mode = "tiny sizes (no meaningful timings)" if _TINY else "real sizes"
    tline = f"torch {torch.__version__}" if torch is not None else f"torch skipped: {reason}"
    return [f"cnnfast benchmarks: {mode}; threads {_threads()}; {tline}"]


def _threads() -> int:
    import cnnfast

    env = os.environ.get("CNNFAST_BENCH_THREADS")
    return int(env) if env else cnnfast.get_num_threads()


@pytest.fixture(scope="session")
def tiny() -> bool:
    """True when the suite runs its tiny sizes (CI mode)."""
    return _TINY


@pytest.fixture(scope="session")
def workloads(tiny):
    """The workload dicts of cnnfast bench (tiny versions in tiny mode)."""
    conv, pool, model = bench.workloads(tiny)
    return SimpleNamespace(conv=conv, pool=pool, model=model)


@pytest.fixture(scope="session", autouse=True)
def bench_threads():
    """Same thread count for cnnfast, torch and numpy's BLAS for the whole session."""
    import cnnfast

    n = _threads()
    prev = cnnfast.get_num_threads()
    cnnfast.set_num_threads(n)
    torch, _ = bench.torch_or_reason()
    prev_torch = None
    if torch is not None:
        prev_torch = torch.get_num_threads()
        torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(n, user_api="blas")
    except ImportError:
        limits = None
    yield n
    if limits is not None:
        limits.restore_original_limits()
    if prev_torch is not None:
        torch.set_num_threads(prev_torch)
    cnnfast.set_num_threads(prev)


@functools.lru_cache(maxsize=8)
def _conv_inputs(wl: bench.ConvWorkload, n: int) -> dict:
    return bench.conv_inputs(wl, n)


@functools.lru_cache(maxsize=8)
def _pool_inputs(wl: bench.PoolWorkload, n: int) -> dict:
    return bench.pool_inputs(wl, n)


@functools.lru_cache(maxsize=64)
def _conv_ref(wl: bench.ConvWorkload, direction: str, padding) -> np.ndarray:
    return bench.conv_reference64(wl, direction, _conv_inputs(wl, wl.n_small), padding)


@functools.lru_cache(maxsize=64)
def _pool_ref(wl: bench.PoolWorkload, mode: str, direction: str) -> np.ndarray:
    return bench.pool_reference64(mode, direction, _pool_inputs(wl, wl.n_small), wl.pool)


@pytest.fixture
def conv_ref():
    """conv_ref(wl, direction, padding): cached float64 reference on the small batch."""
    return _conv_ref


@pytest.fixture
def pool_ref():
    """pool_ref(wl, mode, direction): cached float64 reference on the small batch."""
    return _pool_ref


@pytest.fixture
def conv_inputs():
    """conv_inputs(wl, n): cached bench.conv_inputs."""
    return _conv_inputs


@pytest.fixture
def pool_inputs():
    """pool_inputs(wl, n): cached bench.pool_inputs."""
    return _pool_inputs


def _run_case(benchmark, case: bench.Case, *, slow: bool, tiny: bool):
    """Time ``case.fn`` with pytest-benchmark; slow cases get 3 single-call rounds, tiny 1."""
    if case.uses_blas and not tiny:
        time.sleep(SETTLE_S)  # the previous case may have been BLAS too; start clean
    if tiny:
        # CI mode: run once through pytest-benchmark, the timing is not the point
        result = benchmark.pedantic(case.fn, rounds=1, iterations=1)
    elif slow:
        result = benchmark.pedantic(case.fn, rounds=3, iterations=1)
    else:
        result = benchmark(case.fn)
    if case.uses_blas and not tiny:
        time.sleep(SETTLE_S)
    return result


def _check_case(case: bench.Case, ref64: np.ndarray, tol: float) -> None:
    """The case's result on the small batch matches the float64 reference."""
    got = np.asarray(case.canon(case.fn()) if case.canon else case.fn(), dtype=np.float64)
    assert got.shape == ref64.shape
    err = float(np.max(np.abs(got - ref64))) if got.size else 0.0
    assert err <= tol * max(1.0, float(np.max(np.abs(ref64)))), f"max abs error {err:.3g}"


@pytest.fixture
def run_case():
    """run_case(benchmark, case, slow=..., tiny=...) -> the result of the timed call."""
    return _run_case


@pytest.fixture
def check_case():
    """check_case(case, ref64, tol): the case's result matches the float64 reference."""
    return _check_case
