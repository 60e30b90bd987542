"""The built extension: OpenMP on, show_config's report, and every SIMD code path.

Each SIMD level the CPU supports is forced in turn, both in-process through
``cnnfast._kernels.set_simd_cap`` and in a fresh interpreter through the
``CNNFAST_CPU_FEATURES`` environment variable, and the kernels are compared
with the reference on shapes that exercise full vectors and remainders.
"""

from __future__ import annotations

import contextlib
import io
import os
import platform
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import simd_level_params

import cnnfast
from cnnfast import _kernels
from cnnfast import reference as ref

LEVELS = ("scalar", "avx2", "avx512", "neon")


def test_openmp_enabled():
    if os.environ.get("CNNFAST_SKIP_OPENMP_TEST") == "1":
        pytest.skip("CNNFAST_SKIP_OPENMP_TEST=1 (a compiler without OpenMP)")
    assert cnnfast.openmp_enabled() is True


def test_show_config_prints_every_field():
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        cnnfast.show_config()
    text = buf.getvalue()
    low = text.lower()
    assert cnnfast.__version__ in text
    assert "compiler" in low and _kernels.compiler() in text
    assert "openmp" in low
    assert ("on" if cnnfast.openmp_enabled() else "off") in low
    assert "simd" in low and cnnfast.simd_level() in text
    assert "thread" in low and str(cnnfast.get_num_threads()) in text


def test_version_matches_pyproject():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(root, "pyproject.toml")
    if not os.path.exists(path):
        pytest.skip("not running from a source checkout")
    with open(path) as f:
        assert f'version = "{cnnfast.__version__}"' in f.read()


def _cpu_flags() -> set:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _detected() -> str:
    return _kernels.simd_detected()


def test_simd_level_detected_from_cpu():
    assert cnnfast.simd_level() in LEVELS
    assert _detected() in LEVELS
    if platform.machine() in ("aarch64", "arm64"):
        assert _detected() == "neon"  # Advanced SIMD is the AArch64 baseline
        return
    flags = _cpu_flags()
    if platform.machine() not in ("x86_64", "AMD64") or not flags:
        pytest.skip("level detection is checked on x86-64 Linux only")
    if {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags:
        want = "avx512"
    elif {"avx2", "fma"} <= flags:
        want = "avx2"
    else:
        want = "scalar"
    assert _detected() == want


def _check_kernels_against_reference():
    """A few kernels on shapes with full SIMD vectors and remainders (C, F = 1, 17, 37)."""
    rng = np.random.default_rng(42)
    for dtype, tol in ((np.float32, 1e-4), (np.float64, 1e-10)):
        for c, f, fmt in ((1, 17, "channels_last"), (17, 37, "channels_first"),
                          (3, 1, "channels_last")):
            x = rng.standard_normal((2, 9, 10, c)).astype(dtype)
            k = rng.standard_normal((3, 3, c, f)).astype(dtype)
            if fmt == "channels_first":
                x, k = x.transpose(0, 3, 1, 2), k.transpose(3, 2, 0, 1)
            b = rng.standard_normal(f).astype(dtype)
            geo = dict(strides=(1, 2), padding="same", data_format=fmt)
            y = cnnfast.conv2d(x, k, b, **geo, activation="relu")
            np.testing.assert_allclose(y, ref.conv2d(x, k, b, **geo, activation="relu"),
                                       rtol=tol, atol=tol * 10)
            dy = rng.standard_normal(y.shape).astype(dtype)
            for g, w in zip(cnnfast.conv2d_backward(dy, x, k, **geo),
                            ref.conv2d_backward(dy, x, k, **geo)):
                np.testing.assert_allclose(g, w, rtol=tol, atol=tol * 10 * max(1, abs(w).max()))
            for mode in ("max", "avg", "min"):
                p = cnnfast.pool2d(x, 3, 2, "same", mode, fmt)
                np.testing.assert_allclose(p, ref.pool2d(x, 3, 2, "same", mode, fmt),
                                           rtol=tol, atol=tol)
                pdy = np.ones(p.shape, dtype)
                np.testing.assert_allclose(
                    cnnfast.pool2d_backward(pdy, x, 3, 2, "same", mode, fmt),
                    ref.pool2d_backward(pdy, x, 3, 2, "same", mode, fmt), rtol=tol, atol=tol)


def _check_gemm_against_numpy():
    """The GEMM routes (rows of A in place, wide products, transposed views of B,
    k blocks of 384 and a remainder) with bias and ReLU, against float64 NumPy."""
    rng = np.random.default_rng(7)
    for dtype, tol in ((np.float32, 1e-4), (np.float64, 1e-10)):
        for m, k, n in ((13, 50, 70), (7, 400, 130), (5, 30, 200), (3, 800, 65)):
            a = rng.standard_normal((m, k)).astype(dtype)
            w = rng.standard_normal((n, k)).astype(dtype)
            bias = rng.standard_normal(n).astype(dtype)
            for b in (w.T, np.ascontiguousarray(w.T)):
                want = a.astype(np.float64) @ b.astype(np.float64)
                scale = tol * np.sqrt(k)
                np.testing.assert_allclose(cnnfast.matmul(a, b), want, rtol=scale, atol=scale)
                got = cnnfast.dense(a, b, bias, activation="relu")
                np.testing.assert_allclose(got, np.maximum(want + bias, 0), rtol=scale,
                                           atol=scale)


@pytest.mark.parametrize("level", simd_level_params())
def test_simd_cap_in_process(level):
    before = cnnfast.simd_level()  # may itself be capped by CNNFAST_CPU_FEATURES
    try:
        assert _kernels.set_simd_cap(level) == level
        assert cnnfast.simd_level() == level
        _check_kernels_against_reference()
        _check_gemm_against_numpy()
    finally:
        _kernels.set_simd_cap(before)
    assert cnnfast.simd_level() == before


def test_simd_cap_above_cpu_is_clamped():
    before = cnnfast.simd_level()
    try:
        assert _kernels.set_simd_cap("avx512") == _detected()
    finally:
        _kernels.set_simd_cap(before)
    with pytest.raises(ValueError):
        _kernels.set_simd_cap("sse9")


# Children run from tests/ so that `python -c` (which puts the working
# directory first on sys.path) imports the installed cnnfast, not the source tree.
_HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    import cnnfast
    from test_build import _check_kernels_against_reference
    _check_kernels_against_reference()
    print("LEVEL", cnnfast.simd_level())
    """
)


@pytest.mark.parametrize("level", simd_level_params())
def test_simd_env_var_in_fresh_interpreter(level):
    env = dict(os.environ, CNNFAST_CPU_FEATURES=level)
    code = CHILD.format(tests=os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300, cwd=_HERE)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"LEVEL {level}" in out.stdout


def test_simd_skip_reasons_name_the_cpu_and_the_cap(monkeypatch):
    """The reason a level's tests skip: the CPU lacks it (named, with the missing
    flags), or CNNFAST_CPU_FEATURES caps the session below it."""
    import conftest

    if conftest._platform_levels() != ("scalar", "avx2", "avx512"):
        pytest.skip(f"x86-64 levels only ({platform.machine()})")
    monkeypatch.setattr(_kernels, "simd_detected", lambda: "avx2")
    monkeypatch.setattr(_kernels, "simd_level", lambda: "avx2")
    monkeypatch.setattr(conftest, "_cpu_model_and_flags",
                        lambda: ("AMD EPYC 7B13", {"avx2", "fma", "sse4_2"}))
    why = conftest.simd_skip_reason("avx512")
    assert why.startswith("avx512: this CPU (AMD EPYC 7B13) lacks "
                          "AVX512F/AVX512BW/AVX512DQ/AVX512VL"), why
    assert "Intel SDE" in why
    assert conftest.simd_skip_reason("avx2") is None
    assert conftest.simd_levels() == ["scalar", "avx2"]
    params = {p.id: p.marks for p in conftest.simd_level_params()}
    assert not params["scalar"] and not params["avx2"]
    assert params["avx512"][0].kwargs["reason"] == why
    assert params["neon"][0].kwargs["reason"].startswith("neon: a SIMD level of aarch64 builds")
    monkeypatch.setattr(_kernels, "simd_level", lambda: "scalar")
    monkeypatch.setenv("CNNFAST_CPU_FEATURES", "scalar")
    assert conftest.simd_skip_reason("avx2") == (
        "avx2: CNNFAST_CPU_FEATURES=scalar caps this session at scalar (the CPU has avx2)")
