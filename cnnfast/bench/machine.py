"""Facts about the machine ``cnnfast bench`` runs on, taken in the same run.

The CPU model and flags (``/proc/cpuinfo``), the nominal float32 peak they imply, the
measured peak (a large matmul through numpy's BLAS, with the BLAS threadpoolctl names),
the FMA-loop ceiling of cnnfast's SIMD level, how busy *other* processes kept the CPUs
meanwhile, and the versions of what ran (with PyTorch's CPU capability).
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from typing import Any

import numpy as np


def cpuinfo() -> dict:
    """{"model", "mhz", "flags"} of the first CPU in /proc/cpuinfo (what is known)."""
    info = {"model": platform.processor() or platform.machine(), "mhz": None, "flags": set()}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, val = line.partition(":")
                key = key.strip()
                if key == "model name" and info["model"] in ("", platform.machine(), "x86_64"):
                    info["model"] = val.strip()
                elif key == "cpu MHz" and info["mhz"] is None:
                    info["mhz"] = float(val)
                elif key == "flags" and not info["flags"]:
                    info["flags"] = set(val.split())
    except OSError:
        pass
    return info


def nominal_peak(threads: int, cpu: dict | None = None,
                 level: str | None = None) -> tuple[float, str] | None:
    """(GFLOP/s, how) from the clock and SIMD width, or None when unknown.

    Assumes two FMA units per core (true of the server Xeons with AVX-512; a
    part with one would have half): AVX-512 64, AVX2+FMA 32 float32 FLOP/cycle.
    ``level``: the SIMD level the run uses ("avx2" caps an AVX-512 CPU's figure).
    """
    cpu = cpu or cpuinfo()
    if not cpu["mhz"]:
        return None
    flags = cpu["flags"]
    if "avx512f" in flags and level in (None, "avx512"):
        fpc, isa = 64, "AVX-512"
    elif "avx2" in flags and "fma" in flags:
        fpc, isa = 32, "AVX2+FMA"
    else:
        return None
    cores = min(threads, os.cpu_count() or 1)
    ghz = cpu["mhz"] / 1000.0
    gflops = cores * fpc * ghz
    return gflops, (f"{cores} cores x {fpc} FLOP/cycle ({isa}, 2 FMA units assumed) "
                    f"x {ghz:.2f} GHz")


def blas_info() -> str:
    """numpy's BLAS as threadpoolctl names it: API, version, architecture, library."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown BLAS (threadpoolctl missing)"
    for lib in threadpool_info():
        if lib.get("user_api") == "blas":
            arch = lib.get("architecture")
            name = os.path.basename(lib.get("filepath", "")) or lib.get("prefix", "")
            return (f"{lib.get('internal_api')} {lib.get('version')}"
                    + (f" ({arch})" if arch else "") + f" [{name}]")
    return "unknown BLAS"


def measure_blas_peak(threads: int, size: int, samples: int) -> dict:
    """float32 size^3 matmul through numpy's BLAS: median and best GFLOP/s."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    c = np.empty_like(a)
    np.matmul(a, b, out=c)  # warm-up
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        times.append(time.perf_counter() - t0)
    flop = 2.0 * size**3
    return {
        "size": size,
        "median_gflops": flop / statistics.median(times) / 1e9,
        "best_gflops": flop / min(times) / 1e9,
        "blas": blas_info(),
    }


def measure_fma_ceiling(iters: int, samples: int, min_time: float) -> dict:
    """The registers-only FMA loop of the SIMD level in use on cnnfast's thread team:
    median and best GFLOP/s of ``samples`` calls, with the level, lanes, chains, threads
    and steps it ran at.

    A call runs at least ``iters`` steps, more where the fastest of three calls of
    ``iters`` steps took less than ``min_time``: on a shared machine one preemption of
    one thread stalls a short call's whole team at its closing barrier, so calls as
    short as a millisecond read the machine's scheduling, not its arithmetic. The
    steps found ("steps") are what the tables' FMA-loop rows then run.
    """
    from .._config import fma_ceiling, fma_loop_shape, get_num_threads, simd_level

    fma_ceiling(iters)  # the warm-up
    fastest = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        fma_ceiling(iters)
        fastest = min(fastest, time.perf_counter() - t0)
    steps = max(iters, math.ceil(iters * min_time / max(fastest, 1e-9)))
    rates = []
    for _ in range(samples):
        t0 = time.perf_counter()
        flops = fma_ceiling(steps)  # each call counts the team that ran it
        rates.append(flops / (time.perf_counter() - t0) / 1e9)
    lanes, chains = fma_loop_shape()
    return {"median_gflops": statistics.median(rates), "best_gflops": max(rates),
            "samples_gflops": rates, "level": simd_level(), "lanes": lanes,
            "chains": chains, "threads": get_num_threads(), "steps": steps}


def _busy_seconds() -> float | None:
    """CPU seconds all processes have been busy since boot (/proc/stat), or None."""
    try:
        with open("/proc/stat") as fh:
            fields = fh.readline().split()[1:]
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal ...
    vals = [int(v) for v in fields]
    busy = sum(vals[:3]) + sum(vals[5:8])
    return busy / os.sysconf("SC_CLK_TCK")


class LoadMeter:
    """How much of the CPUs *other* processes used while we measured.

    The machine is shared: a figure taken while something else ran is not
    comparable. (busy CPU seconds of the whole machine - our own CPU seconds)
    / (wall seconds x CPUs), from /proc/stat; None where that is unavailable.
    """

    def __init__(self) -> None:
        self.busy0 = _busy_seconds()
        self.own0 = time.process_time()
        self.wall0 = time.perf_counter()

    def other_fraction(self) -> float | None:
        """Other processes' share of all CPUs since this meter started, or None."""
        busy = _busy_seconds()
        if busy is None or self.busy0 is None:
            return None
        wall = time.perf_counter() - self.wall0
        own = time.process_time() - self.own0
        if wall <= 0:
            return None
        return max(0.0, (busy - self.busy0 - own) / (wall * (os.cpu_count() or 1)))


def versions(torch: Any = None) -> dict:
    """Versions of Python, numpy, cnnfast (with its SIMD level and OpenMP), threadpoolctl
    and, when given the module the run uses, torch."""
    out = {"python": platform.python_version(), "numpy": np.__version__}
    try:
        import cnnfast

        out["cnnfast"] = getattr(cnnfast, "__version__", "?")
        for name in ("simd_level", "openmp_enabled"):
            fn = getattr(cnnfast, name, None)
            if fn is not None:
                out[f"cnnfast.{name}"] = fn()
    except Exception as exc:  # a broken build still lets the rest be measured
        out["cnnfast"] = f"import failed: {exc}"
    try:
        import threadpoolctl

        out["threadpoolctl"] = threadpoolctl.__version__
    except ImportError:
        pass
    if torch is not None:
        out["torch"] = torch.__version__
        cpu = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", None)
        if cpu is not None:
            out["torch.cpu_capability"] = cpu()
    return out
