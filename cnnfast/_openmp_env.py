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
Which libgomp reads it depends on the build and on what was loaded first. A build from
source needs ``libgomp.so.1``, the soname of PyTorch's bundled copy too, so the process
holds one libgomp: a torch imported after cnnfast runs on the one cnnfast loaded, with
this setting (which keeps ``cnnfast bench``'s comparison even). The manylinux wheel
vendors a renamed copy (``cnnfast.libs/libgomp-<hash>.so.1.0.0``), so a torch imported
after cnnfast loads its own libgomp, with its own setting and threads: two OpenMP
runtimes in one process. A libgomp loaded before cnnfast into the global symbol scope
(PyTorch does, through ``libtorch_global_deps``) takes the kernels' OpenMP calls even
from the wheel, and cnnfast's copy then lies idle. So the claim is made after the load:
cnnfast reports its setting only when the runtime its kernels are bound to
(``_kernels.openmp_library()``, from ``dladdr``) is a libgomp that was not mapped before
the import (Linux: ``/proc/self/maps``; elsewhere cnnfast claims nothing). When cnnfast
itself imports PyTorch (``cnnfast.torch``, ``cnnfast bench``) it does so within
:func:`same_spin`, so that a libgomp of PyTorch's loading then spins as cnnfast's does and
the bench's comparison stays even with the wheel too; a torch the user imports is left as
it comes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

SPINCOUNT = "30000"

# What cnnfast set, for show_config(); None when it left the setting alone.
applied: str | None = None
# The files mapped just before the extension loaded (None: not recorded or unknown).
_mapped_before: set[str] | None = None


def mapped_files() -> set[str] | None:
    """Real paths of the files mapped into this process (None where unknown)."""
    try:
        with open("/proc/self/maps") as fh:
            lines = fh.readlines()
    except OSError:
        return None
    # address perms offset dev inode [path]: the path is the sixth field
    fields = (line.split(None, 5) for line in lines)
    return {os.path.realpath(f[5].strip()) for f in fields if len(f) == 6 and "/" in f[5]}


@contextlib.contextmanager
def short_spin() -> Iterator[None]:
    """Within this block (the first import of the extension), GOMP_SPINCOUNT is
    SPINCOUNT unless the user chose a spin or wait policy; :func:`bound_to` then
    says whether the runtime the kernels use read it."""
    global _mapped_before
    if "GOMP_SPINCOUNT" in os.environ or "OMP_WAIT_POLICY" in os.environ:
        yield
        return
    _mapped_before = mapped_files()
    os.environ["GOMP_SPINCOUNT"] = SPINCOUNT
    try:
        yield
    finally:
        del os.environ["GOMP_SPINCOUNT"]


def bound_to(runtime: str) -> None:
    """Record whether ``runtime`` (the library the kernels' OpenMP calls are bound to)
    read SPINCOUNT: a libgomp first mapped while :func:`short_spin` was in effect."""
    global applied
    if (_mapped_before is None or not runtime
            or not os.path.basename(runtime).startswith("libgomp")):
        return
    if os.path.realpath(runtime) not in _mapped_before:
        applied = SPINCOUNT


@contextlib.contextmanager
def same_spin() -> Iterator[None]:
    """Within this block (cnnfast importing another library, e.g. PyTorch), an OpenMP
    runtime that loads gets the spin cnnfast's got: GOMP_SPINCOUNT is SPINCOUNT when
    cnnfast applied it and the user chose no spin or wait policy. The environment is put
    back afterwards."""
    if (applied is None or "GOMP_SPINCOUNT" in os.environ
            or "OMP_WAIT_POLICY" in os.environ):
        yield
        return
    os.environ["GOMP_SPINCOUNT"] = applied
    try:
        yield
    finally:
        del os.environ["GOMP_SPINCOUNT"]
