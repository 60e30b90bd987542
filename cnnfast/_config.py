"""Run-time configuration: threads, SIMD path, and the build summary."""

from __future__ import annotations

import os
import platform
import sys
import warnings

from ._openmp_env import short_spin
from ._version import __version__

with short_spin():  # libgomp loads with the extension and reads its settings then
    from . import _kernels

from . import _openmp_env

_openmp_env.bound_to(str(_kernels.openmp_library()))

__all__ = [
    "get_num_threads",
    "set_num_threads",
    "release_workspaces",
    "set_flush_denormal",
    "get_flush_denormal",
    "openmp_enabled",
    "openmp_runtimes",
    "simd_level",
    "show_config",
    "config_dict",
    "fma_ceiling",
    "fma_loop_shape",
]


def get_num_threads() -> int:
    """Number of OpenMP threads the kernels will use for the next call.

    The value set with :func:`set_num_threads`, else OpenMP's default
    (``OMP_NUM_THREADS`` or the number of cores); ``threadpoolctl``'s limits
    lower it while they are active. Always 1 in a process forked (``os.fork``,
    ``multiprocessing``'s "fork" start method) from one that had imported
    cnnfast: GNU OpenMP's thread pool does not survive a fork, so the child's
    kernels run on the calling thread alone.
    """
    return int(_kernels.get_num_threads())


MAX_THREADS = 4096  # far above any machine; beyond it a value is a mistake


def set_num_threads(n: int | None) -> None:
    """Use ``n`` threads in every kernel (``None`` or 0: back to OpenMP's default).

    In a forked child (see :func:`get_num_threads`) the kernels stay
    single-threaded: ``n > 1`` is capped at 1 with a ``RuntimeWarning``.
    """
    if n is None:
        n = 0
    if isinstance(n, bool) or not isinstance(n, (int,)) and not hasattr(n, "__index__"):
        raise TypeError(f"n must be an integer >= 1 (or None), got {n!r}")
    n = int(n)
    if n < 0:
        raise ValueError(f"n must be >= 1 (or 0/None for the default), got {n}")
    if n > MAX_THREADS:
        raise ValueError(f"n = {n} threads is unreasonable (limit {MAX_THREADS})")
    if n > 1 and _kernels.forked():
        warnings.warn(
            f"cnnfast.set_num_threads({n}) in a forked child process: the kernels run "
            "single-threaded after fork (the parent's OpenMP thread pool does not "
            "survive it); use the 'spawn' or 'forkserver' start method for "
            "multi-threaded kernels in child processes",
            RuntimeWarning, stacklevel=2)
        n = 1
    _kernels.set_num_threads(n)


def release_workspaces() -> None:
    """Free the scratch memory the kernels keep between calls, in every thread.

    Each thread that runs a kernel (the caller and OpenMP's workers) keeps its
    scratch buffers for the next call; they are freed when the thread exits,
    and this frees them all now (idle workers' included), e.g. after a large
    convolution. Kernel calls running in other threads finish first; calls
    that start meanwhile wait. The next call allocates again. Memory goes
    back to the operating system where the C library allows (glibc:
    ``malloc_trim``).
    """
    _kernels.release_workspaces()


def set_flush_denormal(enabled: bool) -> bool:
    """Flush subnormal (denormal) floats to zero in cnnfast's kernels.

    On, the kernels treat subnormal inputs as zero and round subnormal
    results to zero (x86: MXCSR's FTZ and DAZ bits; aarch64: FPCR.FZ), which
    avoids the large slowdown subnormal arithmetic costs on many CPUs. The
    mode applies inside the kernels only, on the calling thread and on the
    OpenMP workers, for every thread that calls a kernel; the caller's own
    floating-point behaviour (NumPy, Python) is left as it was. Off by
    default. Returns True when supported (the setting is then in effect),
    False otherwise (as ``torch.set_flush_denormal``).
    """
    return bool(_kernels.set_flush_denormal(bool(enabled)))


def get_flush_denormal() -> bool:
    """Whether the kernels flush subnormals to zero (see :func:`set_flush_denormal`)."""
    return bool(_kernels.get_flush_denormal())


def openmp_enabled() -> bool:
    """True when the extension was compiled with OpenMP."""
    return bool(_kernels.openmp_enabled())


def simd_level() -> str:
    """SIMD path in use by the kernels: 'avx512', 'avx2', 'neon' (AArch64) or 'scalar'."""
    return str(_kernels.simd_level())


def openmp_runtimes() -> tuple[str | None, list[str]]:
    """The OpenMP runtime library the kernels' calls are bound to (its path; None
    without OpenMP or where the platform cannot say) and the other OpenMP runtimes
    loaded in this process (paths, as threadpoolctl finds them).

    Each runtime keeps its own threads and settings: cnnfast's ``set_num_threads``
    acts on the first alone, ``threadpoolctl.threadpool_limits`` on them all. A
    second one comes, e.g., with PyTorch next to cnnfast's manylinux wheel, whose
    libgomp is a renamed copy (see ``cnnfast/_openmp_env.py``).
    """
    from threadpoolctl import threadpool_info

    # dladdr gives the name the loader used: the wheel's RPATH makes it
    # .../cnnfast/../cnnfast.libs/libgomp-<hash>.so.1.0.0
    found = str(_kernels.openmp_library())
    in_use = os.path.normpath(found) if found else None
    real = os.path.realpath(in_use) if in_use else None
    seen = {real} if real else set()
    others = []
    for lib in threadpool_info():
        path = lib.get("filepath") or ""
        if lib.get("user_api") != "openmp" or not path:
            continue
        if os.path.realpath(path) not in seen:
            seen.add(os.path.realpath(path))
            others.append(path)
    return in_use, others


def fma_ceiling(iters: int) -> float:
    """Run the registers-only FMA loop (``csrc/calibrate.c``) for ``iters`` steps on
    every thread of the current team and return the FLOPs done (2 per lane per FMA).

    Timed, it gives the cores' arithmetic ceiling at the SIMD level in use: no memory
    traffic, no synchronisation inside, as many independent accumulator chains as the
    level's register file holds without spilling. ``cnnfast bench`` and
    ``benchmarks/scaling.py`` report their rates against it.
    """
    if isinstance(iters, bool) or not hasattr(iters, "__index__"):
        raise TypeError(f"iters must be an integer >= 0, got {iters!r}")
    return float(_kernels.fma_ceiling(int(iters)))


# float32 lanes of the vectors the FMA loop uses at each SIMD level
_FMA_LANES = {"avx512": 16, "avx2": 8, "scalar": 1}


def fma_loop_shape() -> tuple[int | None, int | None]:
    """(float32 lanes per vector, independent chains per thread) of the FMA loop at the
    SIMD level in use, read off its FLOP count (one step on the current team), or
    (None, None) for a level this table does not know."""
    lanes = _FMA_LANES.get(simd_level())
    if lanes is None:
        return None, None
    team = get_num_threads() if openmp_enabled() else 1
    return lanes, int(round(fma_ceiling(1) / (2 * lanes * team)))


_OPENMP_VERSIONS = {
    201107: "3.1",
    201307: "4.0",
    201511: "4.5",
    201811: "5.0",
    202011: "5.1",
    202111: "5.2",
}


def config_dict() -> dict:
    """The build and run-time configuration as a dict (what show_config prints)."""

    omp_ver = int(_kernels.openmp_version())
    omp_library, omp_others = openmp_runtimes()
    return {
        "cnnfast": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": __import__("numpy").__version__,
        "compiler": _kernels.compiler(),
        "openmp": openmp_enabled(),
        "openmp_version": (
            f"{_OPENMP_VERSIONS.get(omp_ver, '?')} ({omp_ver})" if omp_ver else None
        ),
        "openmp_library": omp_library,
        "other_openmp_runtimes": ", ".join(omp_others) if omp_others else "none",
        "simd_detected": str(_kernels.simd_detected()),
        "simd_in_use": simd_level(),
        "num_threads": get_num_threads(),
        "forked_child": bool(_kernels.forked()),
        "flush_denormal": get_flush_denormal(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "GOMP_SPINCOUNT": (f"{_openmp_env.applied} (set by cnnfast while loading libgomp"
                           + ("; other OpenMP runtimes read theirs when they loaded)"
                              if omp_others else ")")
                           if _openmp_env.applied and openmp_enabled()
                           else os.environ.get("GOMP_SPINCOUNT")),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
        "CNNFAST_CPU_FEATURES": os.environ.get("CNNFAST_CPU_FEATURES"),
    }


def show_config() -> None:
    """Print version, compiler, OpenMP on/off and version, SIMD level and threads."""
    cfg = config_dict()
    width = max(len(k) for k in cfg)
    print("cnnfast configuration")
    for key, value in cfg.items():
        if value is None:
            value = "-"
        elif value is True:
            value = "on"
        elif value is False:
            value = "off"
        print(f"  {key:<{width}} : {value}")
