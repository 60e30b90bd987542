"""How long the OpenMP worker threads spin after a kernel before they sleep.

GNU libgomp's idle workers busy-wait for GOMP_SPINCOUNT iterations (300,000 by
default) before sleeping, and read that setting once, when the library loads. With
one process per machine the spinning is harmless; with several processes sharing the
cores (pytest-xdist, two training jobs, CI) the spinning workers of one take the cores
the others need. Measured on the 2-core development machine, two concurrent
``cnnfast train --epochs 1 --limit 6000 --threads 2`` runs: 5.7 / 5.9 s per epoch by
default, 1.5-1.8 s with GOMP_SPINCOUNT=30000 (set by hand: 1.5 / 1.5; as cnnfast sets
it: 1.8 / 1.8; 0.7 s for one run alone), while the
training step of one process alone and its short kernels (pooling 0.25 ms, conv a
0.7 ms) were unchanged within the noise. So cnnfast asks for 30,000 spins while its
extension loads libgomp, unless the user has set GOMP_SPINCOUNT or OMP_WAIT_POLICY,
and puts the environment back afterwards, so child processes see the user's environment.
Within the process there is one libgomp: PyTorch's bundled copy has the same soname,
so a torch imported after cnnfast runs on the libgomp cnnfast loaded, with this setting
(which keeps ``cnnfast bench``'s comparison even: both sides spin alike). When libgomp
was loaded before cnnfast (by torch or another extension), its setting stays whatever it
was, and cnnfast does not claim otherwise (Linux: the process's mapped libraries say so).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

SPINCOUNT = "30000"

# What cnnfast set, for show_config(); None when it left the setting alone.
applied: str | None = None


def _libgomp_loaded() -> bool:
    """Whether a libgomp.so is mapped into this process already (False when unknown)."""
    try:
        with open("/proc/self/maps") as fh:
            return any("/libgomp.so" in line for line in fh)
    except OSError:
        return False


@contextlib.contextmanager
def short_spin() -> Iterator[None]:
    """Within this block (the first import of the extension), GOMP_SPINCOUNT is
    SPINCOUNT unless the user chose a spin or wait policy, or libgomp is loaded
    already (it read its settings then)."""
    global applied
    if ("GOMP_SPINCOUNT" in os.environ or "OMP_WAIT_POLICY" in os.environ
            or _libgomp_loaded()):
        yield
        return
    os.environ["GOMP_SPINCOUNT"] = SPINCOUNT
    try:
        yield
        applied = SPINCOUNT
    finally:
        del os.environ["GOMP_SPINCOUNT"]
