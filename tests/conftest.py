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



def simd_levels() -> list[str]:
    """The SIMD levels this CPU has, lowest first, found without changing the cap (a
    module that probed with set_simd_cap would lift a CNNFAST_CPU_FEATURES cap)."""
    from cnnfast import _kernels

    order = ["scalar", "avx2", "avx512"]
    return order[: order.index(_kernels.simd_detected()) + 1]
