"""Fast tests of the benchmark machinery: the NumPy baselines and ``cnnfast bench``.

The baselines (``cnnfast.baselines``) must agree with the naive reference on
every padding form, stride, dilation and layout; ``cnnfast bench --tiny`` must
run every workload end to end and write complete, correct JSON (its error
columns checked here), with and without torch. No timing assertions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from cnnfast import baselines, bench, reference

CONV_CASES = [
    # (n, h, w, c, f, k, strides, padding, dilation)
    (2, 7, 6, 3, 4, 3, 1, "same", 1),
    (2, 9, 8, 2, 3, 3, 2, "same", 1),
    (1, 8, 8, 2, 2, 2, (2, 1), "valid", 2),
    (2, 7, 7, 3, 5, 3, 2, ((1, 0), (2, 1)), 1),
    (1, 6, 5, 1, 2, 5, 1, "SAME", (1, 1)),
    (2, 5, 5, 2, 3, 3, 1, (1, 2), 1),
]


@pytest.mark.parametrize("fmt", ["channels_last", "channels_first"])
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_baseline_matches_reference(case, fmt):
    n, h, w, c, f, k, s, pad, d = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, h, w, c))
    kern = rng.standard_normal((k, k, c, f))
    if fmt == "channels_first":
        x, kern = x.transpose(0, 3, 1, 2), kern.transpose(3, 2, 0, 1)
    y = baselines.conv2d(x, kern, s, pad, d, fmt)
    y_ref = reference.conv2d(x, kern, None, s, pad, d, fmt)
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    dx, dk, db = baselines.conv2d_backward(dy, x, kern, s, pad, d, fmt)
    rdx, rdk, rdb = reference.conv2d_backward(dy, x, kern, s, pad, d, fmt)
    np.testing.assert_allclose(dx, rdx, rtol=0, atol=1e-12)
    np.testing.assert_allclose(dk, rdk, rtol=0, atol=1e-12)
    np.testing.assert_allclose(db, rdb, rtol=0, atol=1e-12)
    # the partial forms used to time one gradient alone
    only_dx = baselines.conv2d_backward(dy, x, kern, s, pad, d, fmt, kernel_grad=False)
    only_dk = baselines.conv2d_backward(dy, x, kern, s, pad, d, fmt, input_grad=False)
    assert only_dx[1] is None and only_dk[0] is None
    np.testing.assert_array_equal(only_dx[0], dx)
    np.testing.assert_array_equal(only_dk[1], dk)


def test_conv_baseline_float32_keeps_dtype():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 6, 6, 3), dtype=np.float32)
    kern = rng.standard_normal((3, 3, 3, 4), dtype=np.float32)
    y = baselines.conv2d(x, kern, 1, "same")
    assert y.dtype == np.float32 and y.flags.c_contiguous
    np.testing.assert_allclose(y, reference.conv2d(x, kern, padding="same"), atol=1e-5)


POOL_CASES = [
    (2, None, "valid"),
    (3, 2, "same"),
    (3, 1, 1),
    ((2, 3), (1, 2), "same"),
    (2, 1, "valid"),  # overlapping windows
]


@pytest.mark.parametrize("fmt", ["channels_last", "channels_first"])
@pytest.mark.parametrize("mode", ["max", "avg", "min"])
@pytest.mark.parametrize("case", POOL_CASES)
def test_pool_baseline_matches_reference(case, mode, fmt):
    pool, strides, pad = case
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 7, 8, 3))
    if fmt == "channels_first":
        x = x.transpose(0, 3, 1, 2)
    if mode == "avg":
        y = baselines.pool2d(x, pool, strides, pad, mode, fmt)
        y_ref = reference.pool2d(x, pool, strides, pad, mode, fmt)
        idx = None
    else:
        y, idx = baselines.pool2d(x, pool, strides, pad, mode, fmt, return_indices=True)
        y_ref, idx_ref = reference.pool2d(x, pool, strides, pad, mode, fmt, return_indices=True)
        np.testing.assert_array_equal(idx, idx_ref)
        assert idx.dtype == np.int32
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    dx_ref = reference.pool2d_backward(dy, x, pool, strides, pad, mode, fmt)
    for ind in (None, idx):
        dx = baselines.pool2d_backward(dy, x, pool, strides, pad, mode, fmt, indices=ind)
        np.testing.assert_allclose(dx, dx_ref, rtol=0, atol=1e-12)


def test_pool_baseline_rejects_bad_arguments():
    x = np.zeros((1, 4, 4, 1))
    with pytest.raises(ValueError, match="mode"):
        baselines.pool2d(x, 2, mode="median")
    with pytest.raises(ValueError, match="padding"):
        baselines.pool2d(x, 2, padding=2)


def test_workload_flops_and_bytes():
    b = bench.CONV_WORKLOADS["b"]
    assert b.flops() == 2 * 128 * 14 * 14 * 64 * 32 * 3 * 3
    d = bench.CONV_WORKLOADS["d"]
    assert d.out_hw() == (28, 28) and d.same_pads() == ((0, 1), (0, 1))
    assert d.torch_padding() == (((1, 1), (1, 1)), (1, 1))
    assert bench.CONV_WORKLOADS["c"].torch_padding() == ("same", (1, 1))
    p = bench.POOL_WORKLOADS["p28"]
    x_bytes, y_bytes = 128 * 28 * 28 * 32 * 4, 128 * 14 * 14 * 32 * 4
    assert p.nbytes("max", "fwd") == x_bytes + y_bytes
    assert p.nbytes("max", "bwd") == x_bytes + 2 * y_bytes  # dy, indices, dx
    assert p.nbytes("avg", "bwd") == x_bytes + y_bytes
    # 25.0 MFLOP per training image, 8.48 per inference image (perf-anchors §8.1)
    assert bench.MODEL_WORKLOADS["train"].flops(1) == 24_995_328
    assert bench.MODEL_WORKLOADS["infer"].flops(1) == 8_482_304


def test_nominal_peak_from_cpuinfo():
    cpu = {"model": "x", "mhz": 2100.0, "flags": {"avx512f", "avx2", "fma"}}
    gflops, how = bench.nominal_peak(2, cpu)
    if (os.cpu_count() or 1) >= 2:
        assert gflops == pytest.approx(268.8)
    assert "AVX-512" in how
    assert bench.nominal_peak(1, {"model": "x", "mhz": None, "flags": set()}) is None


def _run_main(argv, capsys):
    code = bench.main(argv)
    out = capsys.readouterr().out
    return code, out


def test_bench_tiny_all_workloads_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    code, out = _run_main(["--tiny", "--threads", "1", "--json", str(path)], capsys)
    assert code == 0
    assert "measured peak" in out and "GFLOP/s" in out
    doc = json.loads(path.read_text())
    assert doc["threads"] == 1 and doc["tiny"] is True
    assert doc["cpu_model"] and doc["versions"]["numpy"] == np.__version__
    assert doc["peak"]["median_gflops"] > 0 and doc["peak"]["blas"]
    keys = [t["key"] for t in doc["tasks"]]
    assert len(keys) == 5 * 3 + 2 * 3 * 2 + 2
    assert "conv-d-bwd-input" in keys and "pool-p14-min-bwd" in keys and "model-train" in keys
    for task in doc["tasks"]:
        rows = {r["impl"]: r for r in task["rows"]}
        assert rows["cnnfast"]["skipped"] is None or task["kind"] == "model"
        for impl, r in rows.items():
            if r["skipped"]:
                assert impl in ("torch", "torch-cl", "cnnfast") and r["skipped"]
                continue
            assert r["median_ms"] > 0 and len(r["samples_ms"]) >= 1
            if task["kind"] != "model" and impl != "copy":
                # every result checked against the float64 reference
                assert r["max_abs_err"] is not None and r["max_abs_err"] < 1e-4, (task, r)
            if task["kind"] == "conv":
                assert r["gflops"] > 0 and r["pct_peak"] > 0
                assert r["speedup_vs_reference"] > 0 and r["speedup_vs_numpy"] > 0
            if task["kind"] == "pool":
                assert r["gbytes_per_s"] > 0 and r["x_copy"] > 0
        if task["kind"] != "model":
            ref = rows["reference"]
            assert ref["scaled"] and ref["timed_batch"] < ref["scale"] * ref["timed_batch"]
        if task["kind"] == "pool":
            assert "copy" in rows
    # one printed table per task
    assert sum(line.startswith("== ") for line in out.splitlines()) == len(keys)


def test_bench_without_torch(tmp_path, capsys):
    path = tmp_path / "b.json"
    code, out = _run_main(["--tiny", "--no-torch", "--workloads", "b,p14", "--json", str(path)],
                          capsys)
    assert code == 0
    assert "PyTorch columns skipped" in out
    doc = json.loads(path.read_text())
    assert [t["key"] for t in doc["tasks"]][:3] == ["conv-b-fwd", "conv-b-bwd-input",
                                                    "conv-b-bwd-kernel"]
    for task in doc["tasks"]:
        rows = {r["impl"]: r for r in task["rows"]}
        assert "--no-torch" in rows["torch"]["skipped"]
        assert rows["cnnfast"]["torch_best_over_this"] is None


def test_bench_runs_when_torch_cannot_be_imported():
    # a fresh interpreter where `import torch` fails, as on a core-only install
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from cnnfast import bench\n"
        "raise SystemExit(bench.main(['--tiny', '--workloads', 'a,p28']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=os.path.dirname(os.path.abspath(__file__)))
    assert proc.returncode == 0, proc.stderr
    assert "torch not importable" in proc.stdout
    assert "cnnfast NHWC" in proc.stdout


def test_bench_with_torch(tmp_path, capsys):
    torch, reason = bench.torch_or_reason()
    if torch is None:
        pytest.skip(reason)
    path = tmp_path / "t.json"
    code, _ = _run_main(["--tiny", "--workloads", "d,p28", "--json", str(path)], capsys)
    assert code == 0
    doc = json.loads(path.read_text())
    assert doc["versions"]["torch"] == torch.__version__
    for task in doc["tasks"]:
        rows = {r["impl"]: r for r in task["rows"]}
        for impl in ("torch", "torch-cl"):
            assert rows[impl]["skipped"] is None
            assert rows[impl]["max_abs_err"] < 1e-4
        assert rows["cnnfast"]["torch_best_over_this"] > 0


def test_bench_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "p.png"
    code, _ = _run_main(["--tiny", "--no-torch", "--workloads", "a", "--plot", str(path)],
                        capsys)
    assert code == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_rejects_bad_options(capsys):
    assert bench.main(["--workloads", "zzz"]) == 2
    assert bench.main(["--workloads", " , "]) == 2
    assert bench.main(["--tiny", "--threads", "0"]) == 2
    assert bench.main(["--tiny", "--threads", "100000"]) == 2
    assert bench.main(["--tiny", "--repeats", "0"]) == 2
    assert bench.main(["--tiny", "--json", "/nonexistent-dir/x.json"]) == 2
    err = capsys.readouterr().err
    for what in ("unknown workload 'zzz'", "names no workload", "--threads: must be in [1, 4096]",
                 "--repeats: must be >= 1", "directory '/nonexistent-dir' does not exist"):
        assert what in err


def test_scaling_script_runs():
    """benchmarks/scaling.py end to end on one quick round: its table has a row per case."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks",
                          "scaling.py")
    if not os.path.exists(script):
        pytest.skip("benchmarks/scaling.py is not next to the tests")
    out = subprocess.run(
        [sys.executable, script, "--workloads", "fma,a", "--threads", "1,2",
         "--repeats", "1", "--sample", "0.01"],
        capture_output=True, text=True, timeout=300, check=True,
    ).stdout
    rows = [line for line in out.splitlines() if line.startswith("| ") and "ms" not in line]
    names = [r.split("|")[1].strip() for r in rows]
    assert names == ["FMA loop (registers only)", "conv a fwd", "conv a bwd-input",
                     "conv a bwd-kernel"], out
    for r in rows:
        speedup = r.split("|")[-2].strip()
        assert speedup.endswith("x") and float(speedup[:-1]) > 0, r


def test_torch_ratio_spread_pairs_samples_round_by_round():
    """The (IQR) column: the quartiles of PyTorch's-best-over-this ratios taken sample by
    sample (sample i of every row comes from round i); none for the torch row itself,
    for scaled reference rows, or without torch."""
    task = bench.Task("conv-x-fwd", "conv", "x", flops=1e9)
    fast = bench.Row("cnnfast", "cnnfast NHWC", samples_ms=[1.0, 2.0, 1.0, 2.0, 1.0])
    tcl = bench.Row("torch-cl", "torch channels_last", samples_ms=[1.1, 2.4, 0.9, 2.2, 1.3])
    tnc = bench.Row("torch", "torch NCHW", samples_ms=[5.0, 5.0, 5.0, 5.0, 5.0])
    ref = bench.Row("reference", "naive", samples_ms=[3.0], scale=64.0)
    task.rows = [fast, tcl, tnc, ref]
    rows = {d["impl"]: d for d in bench.task_summary(task, 100.0, 200.0)}
    got = rows["cnnfast"]["torch_ratio_rounds"]
    np.testing.assert_allclose(got, [1.1, 1.2, 0.9, 1.1, 1.3])
    np.testing.assert_allclose(rows["cnnfast"]["torch_ratio_iqr"], (1.1, 1.2))
    assert rows["cnnfast"]["torch_best_over_this"] == pytest.approx(1.3 / 1.0)
    assert rows["torch-cl"]["torch_ratio_iqr"] is None
    assert rows["reference"]["torch_ratio_iqr"] is None
    assert "(1.10-1.20)" in bench.format_task(task, list(rows.values()))
    task.rows = [fast, ref]  # no torch
    rows = {d["impl"]: d for d in bench.task_summary(task, 100.0, 200.0)}
    assert rows["cnnfast"]["torch_ratio_iqr"] is None


def test_latency_rows_are_in_the_default_set_but_not_in_tinys():
    from cnnfast.bench.command import _select

    assert "latency" in _select(None) and "latency" in _select("all")
    assert "latency" not in _select(None, tiny=True)
    assert _select("latency", tiny=True) == ["latency"]


def test_bench_latency_rows(tmp_path, capsys):
    path = tmp_path / "lat.json"
    code, out = _run_main(["--tiny", "--threads", "1", "--workloads", "latency",
                           "--json", str(path)], capsys)
    assert code == 0
    doc = json.loads(path.read_text())
    assert [t["key"] for t in doc["tasks"]] == ["latency-conv", "latency-predict"]
    conv, predict = ({r["impl"]: r for r in t["rows"]} for t in doc["tasks"])
    # the kernel row's prebuilt arguments gave ops.conv2d's result, so it was timed
    assert conv["kernel"]["skipped"] is None, conv["kernel"]
    assert len(conv["cnnfast"]["samples_ms"]) == doc["config"]["latency_conv_calls"]
    assert conv["overhead"]["median_us"] == pytest.approx(
        conv["cnnfast"]["median_us"] - conv["kernel"]["median_us"])
    assert conv["overhead"]["target_us"] == 15.0
    assert predict["cnnfast"]["median_us"] > 0 and predict["cnnfast"]["target_us"] == 150.0
    torch, _ = bench.torch_or_reason()
    assert (predict["torch"]["skipped"] is None) == (torch is not None)
    ort = predict["onnxruntime"]
    assert ort["skipped"] or ort["max_abs_err"] < 1e-4
    assert "latency: conv2d (1, 28, 28, 1) -> 32 filters" in out
    assert "Python overhead" in out and "median us" in out


def test_bench_latency_without_torch(capsys):
    code, out = _run_main(["--tiny", "--no-torch", "--workloads", "latency"], capsys)
    assert code == 0
    assert "torch eager             skipped: --no-torch given" in out
    assert "onnxruntime             skipped: needs torch to export the model" in out
