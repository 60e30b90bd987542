"""Run-time configuration: threads, SIMD path, and the build summary."""

from __future__ import annotations

import os
import platform
import sys

from ._openmp_env import short_spin

with short_spin():  # libgomp loads with the extension and reads its settings then
    from . import _kernels

from . import _openmp_env

__all__ = [
    "get_num_threads",
    "set_num_threads",
    "openmp_enabled",
    "simd_level",
    "show_config",
    "config_dict",
]


def get_num_threads() -> int:
    """Number of OpenMP threads the kernels will use for the next call.

    The value set with :func:`set_num_threads`, else OpenMP's default
    (``OMP_NUM_THREADS`` or the number of cores); ``threadpoolctl``'s limits
    lower it while they are active.
    """
    return int(_kernels.get_num_threads())


MAX_THREADS = 4096  # far above any machine; beyond it a value is a mistake


def set_num_threads(n: int | None) -> None:
    """Use ``n`` threads in every kernel (``None`` or 0: back to OpenMP's default)."""
    if n is None:
        n = 0
    if isinstance(n, bool) or not isinstance(n, (int,)) and not hasattr(n, "__index__"):
        raise TypeError(f"n must be an integer >= 1 (or None), got {n!r}")
    n = int(n)
    if n < 0:
        raise ValueError(f"n must be >= 1 (or 0/None for the default), got {n}")
    if n > MAX_THREADS:
        raise ValueError(f"n = {n} threads is unreasonable (limit {MAX_THREADS})")
    _kernels.set_num_threads(n)


def openmp_enabled() -> bool:
    """True when the extension was compiled with OpenMP."""
    return bool(_kernels.openmp_enabled())


def simd_level() -> str:
    """SIMD path in use by the kernels: 'avx512', 'avx2' or 'scalar'."""
    return str(_kernels.simd_level())


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
    from . import __version__

    omp_ver = int(_kernels.openmp_version())
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
        "simd_detected": str(_kernels.simd_detected()),
        "simd_in_use": simd_level(),
        "num_threads": get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "GOMP_SPINCOUNT": (f"{_openmp_env.applied} (set by cnnfast while loading libgomp)"
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
