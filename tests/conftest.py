"""Shared pytest configuration for cnnfast's tests: the hypothesis profiles.

Profiles:
  "ci"  - selected when the environment variable CI is set: derandomized (the
          same examples every run, so CI is reproducible), no deadline (the
          machine is shared and noisy; we never assert on timing).
  "dev" - the default elsewhere: random examples, no deadline.
Either can be forced with HYPOTHESIS_PROFILE=name.
"""

from __future__ import annotations

import os
import platform

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)



# The SIMD levels cnnfast's kernels have on each platform, lowest first.
PLATFORM_LEVELS = {"x86_64": ("scalar", "avx2", "avx512"), "aarch64": ("scalar", "neon")}
ALL_LEVELS = ("scalar", "avx2", "avx512", "neon")
_MACHINE = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}
# /proc/cpuinfo flags each x86 level needs (what csrc/cpu_features.c checks)
_LEVEL_FLAGS = {"avx2": ("avx2", "fma"), "avx512": ("avx512f", "avx512bw", "avx512dq", "avx512vl")}


def _platform_levels() -> tuple[str, ...]:
    machine = platform.machine().lower()
    return PLATFORM_LEVELS.get(_MACHINE.get(machine, machine), ("scalar",))


def _cpu_model_and_flags() -> tuple[str, set[str]]:
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model", "CPU part") and not model:
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model or platform.processor() or platform.machine(), flags


def simd_skip_reason(level: str) -> str | None:
    """Why the tests cannot run the kernels at ``level`` here (None when they can): the
    CPU (or the OS) lacks it, or CNNFAST_CPU_FEATURES caps the session below it."""
    from cnnfast import _kernels

    levels = _platform_levels()
    if level not in levels:
        arch = [a for a, lv in PLATFORM_LEVELS.items() if level in lv]
        return (f"{level}: a SIMD level of {' / '.join(arch) or 'no'} builds; this is "
                f"{platform.machine()}")
    detected = str(_kernels.simd_detected())
    in_use = str(_kernels.simd_level())  # the session's start: tests restore their caps
    rank = levels.index
    if detected in levels and rank(level) > rank(detected):
        model, flags = _cpu_model_and_flags()
        missing = [f for f in _LEVEL_FLAGS.get(level, ()) if flags and f not in flags]
        lacks = (f"lacks {'/'.join(m.upper() for m in missing)}" if missing
                 else f"(or its OS) does not enable {level}")
        why = f"{level}: this CPU ({model}) {lacks}, so the {level} kernels cannot run here"
        if level == "avx512":
            why += ("; an emulator would be Intel SDE, which is not in the package "
                    "registries: they run on an AVX-512 machine")
        return why
    if in_use in levels and rank(level) > rank(in_use):
        return (f"{level}: CNNFAST_CPU_FEATURES={os.environ.get('CNNFAST_CPU_FEATURES')} "
                f"caps this session at {in_use} (the CPU has {detected})")
    return None


def simd_levels() -> list[str]:
    """The SIMD levels the tests run here, lowest first: the CPU's, up to the session's
    CNNFAST_CPU_FEATURES cap. Found without changing the cap (a module that probed with
    set_simd_cap would lift it)."""
    return [lv for lv in _platform_levels() if simd_skip_reason(lv) is None]


def simd_level_params() -> list:
    """Every SIMD level cnnfast has (any platform's) as a pytest parameter; those the
    tests cannot run here are marked skip, with the reason (``pytest -ra`` prints it)."""
    import pytest

    return [pytest.param(lv, id=lv, marks=pytest.mark.skip(reason=simd_skip_reason(lv)))
            if simd_skip_reason(lv) else pytest.param(lv, id=lv)
            for lv in ALL_LEVELS]


def pytest_report_header(config):
    """The levels run and the levels skipped, with why: tests that loop over the levels
    inside one test (tests/test_conv2d_paths.py, tests/test_conv_pool.py) say it only here."""
    try:
        skipped = [r for r in map(simd_skip_reason, ALL_LEVELS) if r]
        return [f"cnnfast SIMD levels tested: {', '.join(simd_levels())}",
                *(f"cnnfast SIMD level skipped: {r}" for r in skipped)]
    except ImportError:  # the extension is not built: the tests say so themselves
        return None
