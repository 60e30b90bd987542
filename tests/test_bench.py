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
        # the convolution and model tables time the FMA-loop ceiling in their rounds
        assert ("fma" in rows) == (task["kind"] in ("conv", "model")), task["key"]
        for impl, r in rows.items():
            if r["skipped"]:
                assert impl in ("torch", "torch-cl", "cnnfast", "onnxruntime") and r["skipped"]
                continue
            assert r["median_ms"] > 0 and len(r["samples_ms"]) >= 1
            if task["kind"] != "model" and impl not in ("copy", "fma"):
                # every result checked against the float64 reference
                assert r["max_abs_err"] is not None and r["max_abs_err"] < 1e-4, (task, r)
            if task["kind"] == "conv" and impl != "fma":
                assert r["gflops"] > 0 and r["pct_peak"] > 0 and r["pct_fma"] > 0
                assert r["speedup_vs_reference"] > 0 and r["speedup_vs_numpy"] > 0
            if task["kind"] == "pool":
                assert r["gbytes_per_s"] > 0 and r["x_copy"] > 0
        if task["kind"] != "model":
            ref = rows["reference"]
            assert ref["scaled"] and ref["timed_batch"] < ref["scale"] * ref["timed_batch"]
        if task["kind"] == "pool":
            assert "copy" in rows
    # one printed table per task, then the targets table
    tables = [line for line in out.splitlines() if line.startswith("== ")]
    assert len(tables) == len(keys) + 1 and tables[-1].startswith("== issue 16 targets")
    assert {t["key"] for t in doc["targets"]} >= {"conv-a-fwd", "pool", "train", "infer"}


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


def test_time_per_call_times_each_block_after_untimed_warm_calls():
    from cnnfast.bench.timing import Row, time_per_call

    calls = {"a": 0, "b": 0}
    rows = {k: Row(k, k) for k in calls}

    def counter(k):
        def fn():
            calls[k] += 1
        return fn

    time_per_call([(rows[k], counter(k)) for k in calls], calls=25, block=10, warmup=4,
                  block_warmup=3)
    # 4 warm-up calls, then 3 rounds (10 + 10 + 5 timed), each after 3 untimed calls
    for k in calls:
        assert len(rows[k].samples_ms) == 25
        assert calls[k] == 4 + 3 * 3 + 25


def test_time_per_call_warms_each_block_for_a_set_time():
    import time

    from cnnfast.bench.timing import Row, time_per_call

    row = Row("a", "a")
    stamps: list[float] = []

    def fn():
        time.sleep(0.0002)
        stamps.append(time.perf_counter())

    time_per_call([(row, fn)], calls=4, block=2, warmup=0, block_warmup=1,
                  block_warm_s=0.003)
    # two rounds, each block's 2 timed calls after at least 3 ms of untimed ones
    assert len(row.samples_ms) == 4
    assert len(stamps) - 4 >= 2 * (1 + 1)  # per round: the counted call, then timed ones
    assert stamps[-1] - stamps[0] >= 2 * 0.003


def test_bench_latency_without_torch(capsys):
    code, out = _run_main(["--tiny", "--no-torch", "--workloads", "latency"], capsys)
    assert code == 0
    assert "torch eager             skipped: --no-torch given" in out
    assert "onnxruntime             skipped: needs torch to export the model" in out


def test_fma_door_in_config():
    """The bench reaches the FMA loop through cnnfast._config (the kernels' door): the
    FLOPs of a call and the loop's shape at the SIMD level in use."""
    import cnnfast
    from cnnfast import _config

    lanes, chains = _config.fma_loop_shape()
    assert lanes == {"avx512": 16, "avx2": 8, "scalar": 1}[cnnfast.simd_level()]
    assert chains >= 8  # enough to hide the FMA latency on two units
    try:
        cnnfast.set_num_threads(1)
        assert _config.fma_ceiling(10) == 2 * lanes * chains * 10
        assert _config.fma_ceiling(0) == 0
    finally:
        cnnfast.set_num_threads(0)
    with pytest.raises(TypeError, match="iters"):
        _config.fma_ceiling(1.5)
    with pytest.raises(ValueError, match="iters"):
        _config.fma_ceiling(-1)


def test_bench_fma_ceiling_header_rows_and_pct(tmp_path, capsys):
    import cnnfast

    path = tmp_path / "f.json"
    code, out = _run_main(["--tiny", "--threads", "1", "--no-torch", "--workloads", "b,train",
                           "--json", str(path)], capsys)
    assert code == 0
    level = cnnfast.simd_level()
    _, chains = cnnfast._config.fma_loop_shape()
    assert f"at {level}, {chains} chains, 1 threads" in out
    assert "FMA-loop ceiling at the end:" in out and "%fma" in out
    doc = json.loads(path.read_text())
    for when in ("start", "end"):
        ceiling = doc["fma_ceiling"][when]
        assert ceiling["level"] == level and ceiling["chains"] == chains
        assert ceiling["threads"] == 1 and ceiling["median_gflops"] > 0
        assert len(ceiling["samples_gflops"]) == doc["config"]["fma_samples"]
    for task in doc["tasks"]:
        rows = {r["impl"]: r for r in task["rows"]}
        fma = rows["fma"]
        assert fma["pct_fma"] == pytest.approx(100.0)
        assert fma["torch_best_over_this"] is None and fma["max_abs_err"] is None
        fast = rows["cnnfast"]
        assert fast["pct_fma"] == pytest.approx(100 * fast["gflops"] / fma["gflops"])


def test_bench_infer_onnxruntime_row(tmp_path, capsys):
    path = tmp_path / "i.json"
    code, out = _run_main(["--tiny", "--threads", "1", "--workloads", "infer",
                           "--json", str(path)], capsys)
    assert code == 0
    (task,) = json.loads(path.read_text())["tasks"]
    rows = {r["impl"]: r for r in task["rows"]}
    assert list(rows) == ["cnnfast", "torch", "torch-cl", "onnxruntime", "fma"]
    ort = rows["onnxruntime"]
    torch, _ = bench.torch_or_reason()
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        onnxruntime = None
    if torch is None or onnxruntime is None:
        assert ort["skipped"]
        assert rows["cnnfast"]["ort_over_this"] is None
        return
    assert ort["skipped"] is None and "1 intra-op threads" in ort["note"]
    assert rows["cnnfast"]["ort_over_this"] == pytest.approx(
        ort["median_ms"] / rows["cnnfast"]["median_ms"])
    assert ort["ort_over_this"] == pytest.approx(1.0)
    assert "ort/x" in out


def test_bench_infer_without_onnxruntime_or_torch(capsys):
    code, out = _run_main(["--tiny", "--no-torch", "--workloads", "infer"], capsys)
    assert code == 0
    assert "onnxruntime             skipped: needs torch to export the model (--no-torch" in out
    # a fresh interpreter where `import onnxruntime` fails: the row says why
    code = ("import sys; sys.modules['onnxruntime'] = None\n"
            "from cnnfast import bench\n"
            "raise SystemExit(bench.main(['--tiny', '--workloads', 'infer']))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=os.path.dirname(os.path.abspath(__file__)))
    assert proc.returncode == 0, proc.stderr
    torch, _ = bench.torch_or_reason()
    why = "onnxruntime not importable" if torch is not None else "needs torch"
    assert f"onnxruntime             skipped: {why}" in proc.stdout


def _task(key: str, kind: str, **cnnfast_row) -> dict:
    return {"key": key, "kind": kind,
            "rows": [{"impl": "cnnfast", "skipped": None, **cnnfast_row}]}


def test_targets_read_off_the_tables():
    from cnnfast.bench.targets import format_targets, run_targets

    tasks = [
        _task("conv-a-fwd", "conv", torch_best_over_this=1.2, pct_fma=40.0),
        _task("conv-b-fwd", "conv", torch_best_over_this=0.8, pct_fma=130.0),
        # the paired median ratio (of the rounds) decides, the medians' ratio is beside it
        _task("conv-d-fwd", "conv", torch_best_over_this=0.8,
              torch_ratio_rounds=[0.9, 1.2, 1.1]),
        _task("pool-p28-max-fwd", "pool", torch_best_over_this=2.0),
        _task("pool-p14-avg-bwd", "pool", torch_best_over_this=0.9),
        _task("model-train", "model", torch_best_over_this=3.1),
        _task("model-infer", "model", torch_best_over_this=4.0, ort_over_this=0.7),
        {"key": "latency-predict", "kind": "latency", "rows": [
            {"impl": "cnnfast", "skipped": None, "median_us": 300.0, "ort_over_this": 0.4},
            {"impl": "onnxruntime", "skipped": None, "median_us": 120.0}]},
    ]
    got = {t["key"]: t for t in run_targets(tasks)}
    assert len(got) == 15 + 6
    assert got["conv-a-fwd"]["ok"] is True and got["conv-b-fwd"]["ok"] is False
    assert got["conv-c-fwd"]["value"] is None and got["conv-c-fwd"]["detail"] == "not run"
    assert got["pool"]["value"] == 0.9 and got["pool"]["ok"] is False
    assert got["pool"]["detail"] == "min of 2: p14-avg-bwd"
    assert got["train"]["ok"] is True and got["infer"]["ok"] is False
    assert got["predict"]["value"] == 0.4
    assert got["predict"]["detail"] == "medians 300 vs 120 us"
    assert got["conv-d-fwd"]["value"] == 1.1 and got["conv-d-fwd"]["ok"] is True
    assert got["conv-d-fwd"]["detail"] == "medians 0.80"
    assert got["fma-b"]["value"] == 130.0 and got["fma-b"]["ok"] is True
    assert got["fma-c"]["ok"] is None
    text = format_targets([("avx512", list(got.values()), None),
                           ("avx2", None, "skipped: this CPU lacks avx2")])
    assert "conv b fwd: torch/cnnfast >= 1" in text and "0.80 miss" in text
    assert "130 ok" in text and "1.10 ok (medians 0.80)" in text
    assert "avx2: skipped: this CPU lacks avx2" in text


def test_levels_options_env_and_skips():
    from cnnfast.bench import levels

    assert levels.parse_levels("avx512, AVX2,avx2") == ["avx512", "avx2"]
    for bad in ("sse", " , "):
        with pytest.raises(SystemExit):
            levels.parse_levels(bad)
    assert levels.skip_reason("avx2", "avx512") is None
    assert "lacks avx512" in levels.skip_reason("avx512", "avx2")
    base = {"PATH": "/bin", "ATEN_CPU_CAPABILITY": "default", "PYTHONPATH": "/x"}
    env2 = levels.level_env("avx2", base)
    assert env2["CNNFAST_CPU_FEATURES"] == "avx2" and env2["ATEN_CPU_CAPABILITY"] == "avx2"
    assert env2["ONEDNN_MAX_CPU_ISA"] == "AVX2" and env2["MKL_ENABLE_INSTRUCTIONS"] == "AVX2"
    assert env2["PYTHONPATH"].endswith(os.pathsep + "/x") and env2["PATH"] == "/bin"
    env512 = levels.level_env("avx512", base)
    assert env512["CNNFAST_CPU_FEATURES"] == "avx512"
    assert not set(levels.CAP_VARIABLES) & set(env512)  # the peers at their best
    assert bench.main(["--tiny", "--levels", "neon"]) == 2


def test_bench_expect_level_mismatch_fails(capsys):
    import cnnfast

    other = "avx2" if cnnfast.simd_level() != "avx2" else "avx512"
    code = bench.main(["--tiny", "--no-torch", "--workloads", "b", "--expect-level", other])
    captured = capsys.readouterr()
    assert code == 1
    assert f"not at the level asked for ({other})" in captured.err
    assert "== conv" not in captured.out  # nothing measured at the wrong level


def test_bench_levels_runs_a_child_per_level(tmp_path, capsys):
    """--levels avx2,avx512: one child process per level (cnnfast and PyTorch capped in
    the avx2 one), their tables, the targets table of both, one JSON with both."""
    import cnnfast

    path = tmp_path / "levels.json"
    code = bench.main(["--tiny", "--threads", "1", "--workloads", "b,infer",
                       "--levels", "avx2,avx512", "--json", str(path)])
    out = capsys.readouterr().out
    assert code == 0
    doc = json.loads(path.read_text())
    entries = {e["level"]: e for e in doc["levels"]}
    assert list(entries) == ["avx2", "avx512"]
    detected = cnnfast._config.config_dict()["simd_detected"]
    assert doc["simd_detected"] == detected
    for level, e in entries.items():
        if level == "avx512" and detected != "avx512":
            assert e["skipped"].startswith("skipped: this CPU lacks avx512")
            assert e["run"] is None
            continue
        assert e["failed"] is None and e["returncode"] == 0
        run = e["run"]
        assert run["simd"]["level"] == level and run["fma_ceiling"]["start"]["level"] == level
        assert [t["key"] for t in run["tasks"]] == ["conv-b-fwd", "conv-b-bwd-input",
                                                    "conv-b-bwd-kernel", "model-infer"]
        assert {t["key"] for t in e["targets"]} >= {"conv-b-fwd", "infer", "fma-b"}
        cap = run["simd"]["torch_cpu_capability"]
        if level == "avx2":
            assert run["simd"]["env"]["ONEDNN_MAX_CPU_ISA"] == "AVX2"
            assert cap in (None, "AVX2")  # None: no torch here
        assert f"SIMD level: cnnfast {level}" in out
    assert out.count("== issue 16 targets") == 1
    assert "conv b fwd: %fma >= 120" in out
