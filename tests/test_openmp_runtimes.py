"""Which OpenMP runtime the kernels run on, and what cnnfast says when a process holds two.

A build from source uses the system's libgomp.so.1 (which PyTorch's bundled copy
shares by soname); the manylinux wheel vendors a renamed copy in ``cnnfast.libs/``, so
next to PyTorch a process holds two GNU OpenMP runtimes. ``cnnfast info`` names the
library the kernels are bound to and the other runtimes loaded; the short spin
(``GOMP_SPINCOUNT``) is claimed only when that library read it; threadpoolctl lists and
limits it. A second runtime is made here without PyTorch by loading a copy of the
kernels' libgomp under another file name. The checks that need the repaired wheel
(the vendored copy, PyTorch beside it) skip when cnnfast was not installed from it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import cnnfast
from cnnfast._config import config_dict, openmp_runtimes

needs_openmp = pytest.mark.skipif(not cnnfast.openmp_enabled(), reason="built without OpenMP")
IN_USE = openmp_runtimes()[0]
VENDORED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(cnnfast.__file__))),
                        "cnnfast.libs")
FROM_WHEEL = os.path.isdir(VENDORED)
needs_wheel = pytest.mark.skipif(
    not FROM_WHEEL, reason="cnnfast is not installed from the repaired wheel (no cnnfast.libs/ "
    "next to it): .ci/wheel runs these")
needs_libgomp = pytest.mark.skipif(
    not (IN_USE and os.path.basename(IN_USE).startswith("libgomp") and sys.platform == "linux"),
    reason=f"the kernels do not run on GNU libgomp on Linux here ({IN_USE!r})")


def _same(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _in_subprocess(preload: str, env_extra: dict | None = None) -> dict:
    """``preload`` run, then cnnfast imported, in a fresh interpreter: config_dict()'s
    OpenMP fields, openmp_runtimes() and threadpoolctl's OpenMP entries."""
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    env.update(env_extra or {})
    code = preload + (
        "\nimport json, cnnfast\n"
        "from cnnfast._config import config_dict, openmp_runtimes\n"
        "from threadpoolctl import threadpool_info\n"
        "c = config_dict(); lib, others = openmp_runtimes()\n"
        "omp = [i['filepath'] for i in threadpool_info() if i['user_api'] == 'openmp']\n"
        "print(json.dumps({'spin': c['GOMP_SPINCOUNT'], 'lib': lib, 'others': others,\n"
        "                  'info_lib': c['openmp_library'],\n"
        "                  'info_others': c['other_openmp_runtimes'], 'threadpoolctl': omp}))\n")
    # cwd: not the repository root, whose cnnfast/ has no compiled extension
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300, cwd=os.path.dirname(os.path.abspath(__file__)))
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@needs_openmp
def test_info_names_the_runtime_the_kernels_use():
    cfg = config_dict()
    in_use, others = openmp_runtimes()  # others: what earlier tests loaded too
    assert cfg["openmp_library"] == in_use == IN_USE
    assert cfg["other_openmp_runtimes"] == (", ".join(others) if others else "none")
    if sys.platform not in ("linux", "darwin"):
        pytest.skip("the runtime's file is found with dladdr (Linux, macOS)")
    assert in_use and os.path.isfile(in_use), in_use
    assert os.path.basename(in_use).startswith(("libgomp", "libomp", "libiomp")), in_use
    assert not any(_same(p, in_use) for p in others)


@needs_wheel
@needs_openmp
def test_wheel_runs_on_its_vendored_libgomp():
    got = _in_subprocess("")
    assert _same(os.path.dirname(got["lib"]), VENDORED), got
    assert os.path.basename(got["lib"]).startswith("libgomp-"), got
    assert got["spin"].startswith("30000 (set by cnnfast"), got


def test_info_without_openmp_names_no_runtime():
    if cnnfast.openmp_enabled():
        pytest.skip("built with OpenMP")
    assert config_dict()["openmp_library"] is None


@needs_openmp
def test_threadpoolctl_lists_and_limits_the_kernels_runtime():
    if not IN_USE:
        pytest.skip("this platform cannot say which runtime the kernels use")
    listed = [i for i in threadpool_info()
              if i["user_api"] == "openmp" and _same(i["filepath"], IN_USE)]
    assert len(listed) == 1, threadpool_info()
    with threadpool_limits(1):
        assert cnnfast.get_num_threads() == 1
    assert cnnfast.get_num_threads() == listed[0]["num_threads"]


@needs_openmp
@needs_libgomp
def test_a_second_runtime_is_reported(tmp_path):
    """A copy of libgomp under another file name, loaded after cnnfast: a second runtime
    with its own threads, as PyTorch's is next to the wheel."""
    copy = str(tmp_path / "libgomp-second.so.1")
    shutil.copyfile(IN_USE, copy)
    got = _in_subprocess("", {})
    assert got["others"] == [] and got["info_others"] == "none"
    assert got["spin"].startswith("30000 (set by cnnfast while loading libgomp)"), got
    got = _in_subprocess(f"import cnnfast, ctypes; ctypes.CDLL({copy!r})")
    assert _same(got["lib"], IN_USE) and [_same(p, copy) for p in got["others"]] == [True], got
    assert got["info_others"] == got["others"][0]
    assert got["spin"] == ("30000 (set by cnnfast while loading libgomp; other OpenMP runtimes "
                           "read theirs when they loaded)"), got
    assert sorted(map(os.path.realpath, got["threadpoolctl"])) == sorted(
        map(os.path.realpath, [IN_USE, copy]))


@needs_openmp
@needs_libgomp
def test_spin_claimed_only_when_the_kernels_runtime_read_it(tmp_path):
    """A copy of the kernels' libgomp loaded before cnnfast (privately, RTLD_LOCAL) has
    the soname the extension asks for (libgomp.so.1 from source, the vendored name in
    the wheel), so the kernels run on it: it read its settings before cnnfast could set
    any, and cnnfast claims no spin."""
    copy = str(tmp_path / "libgomp-first.so.1")
    shutil.copyfile(IN_USE, copy)
    got = _in_subprocess(f"import ctypes; ctypes.CDLL({copy!r})")
    assert _same(got["lib"], copy) and got["others"] == [], got
    assert got["spin"] is None, got
    # a setting of the user's own is reported as it is, never overridden
    got = _in_subprocess("", {"GOMP_SPINCOUNT": "1234"})
    assert got["spin"] == "1234"


TORCH_THEN_CNNFAST = "import torch"
CNNFAST_THEN_TORCH = "import cnnfast, torch"


@needs_wheel
@needs_openmp
@pytest.mark.parametrize("preload", [CNNFAST_THEN_TORCH, TORCH_THEN_CNNFAST])
def test_wheel_next_to_torch(preload):
    """cnnfast first: the kernels run on the vendored libgomp (short spin), torch on its
    own. torch first: torch's libgomp is in the global symbol scope and takes the
    kernels' OpenMP calls; the vendored copy is loaded but idle, and no spin is claimed."""
    pytest.importorskip("torch", reason="torch is not installed (the side-by-side case)")
    got = _in_subprocess(preload)
    assert got["lib"] and got["others"], got
    libs = [got["lib"], *got["others"]]
    vendored = [p for p in libs if _same(os.path.dirname(p), VENDORED)]
    torch_gomp = [p for p in libs if f"{os.sep}torch{os.sep}" in p]
    assert len(vendored) == 1 and len(torch_gomp) == 1, got
    assert sorted(map(os.path.realpath, got["threadpoolctl"])) == sorted(
        map(os.path.realpath, libs))
    if preload == CNNFAST_THEN_TORCH:
        assert got["lib"] == vendored[0] and got["spin"].startswith("30000"), got
    else:
        assert got["lib"] == torch_gomp[0] and got["spin"] is None, got


def _spincounts_displayed(code: str) -> list[str]:
    """GOMP_SPINCOUNT of every libgomp that loads while ``code`` runs in a fresh
    interpreter, as libgomp itself prints it (OMP_DISPLAY_ENV=verbose)."""
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    env["OMP_DISPLAY_ENV"] = "verbose"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300, cwd=os.path.dirname(os.path.abspath(__file__)))
    assert out.returncode == 0, out.stdout + out.stderr
    return [line.split("=", 1)[1].strip().strip("'") for line in out.stderr.splitlines()
            if line.strip().startswith("GOMP_SPINCOUNT =")]


@needs_openmp
@needs_libgomp
def test_torch_imported_by_cnnfast_spins_as_cnnfast():
    """cnnfast.torch (and the bench) import torch within _openmp_env.same_spin: every
    libgomp that loads then spins as cnnfast's, the wheel's second runtime included. A
    torch the user imports keeps libgomp's own default."""
    pytest.importorskip("torch", reason="torch is not installed")
    spins = _spincounts_displayed("import cnnfast.torch")
    assert spins and set(spins) == {"30000"}, spins
    assert len(spins) == (2 if FROM_WHEEL else 1), spins
    spins = _spincounts_displayed("import cnnfast, torch")
    assert spins[0] == "30000", spins
    if FROM_WHEEL:
        assert len(spins) == 2 and spins[1] != "30000", spins
