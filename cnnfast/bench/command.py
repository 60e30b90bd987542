"""The ``cnnfast bench`` command line: its parser, the workload selection and the run.

``main`` parses and checks the options before any work, sets the thread counts of
cnnfast, torch and numpy's BLAS for the run (and restores them), measures the peak and
the FMA-loop ceiling, runs the selected tasks, prints one table each and the targets
table, and writes the JSON and the plot. ``--levels`` hands the run to ``levels``: one
child process per SIMD level, each of them this same command.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from .._cli_args import int_in, matplotlib_missing, output_path, thread_count
from .._fileio import atomic_write
from .cases import torch_or_reason
from .latency import LATENCY_WORKLOADS, run_latency_conv_task, run_latency_predict_task
from .levels import CAP_VARIABLES, TORCH_CAPABILITY, parse_levels, run_levels
from .machine import (
    LoadMeter,
    cpuinfo,
    measure_blas_peak,
    measure_fma_ceiling,
    nominal_peak,
    versions,
)
from .report import format_task, json_document, task_summary, write_plot
from .targets import format_targets, run_targets
from .tasks import run_conv_task, run_model_task, run_pool_task
from .timing import Config, Task
from .workloads import (
    CONV_DIRECTIONS,
    CONV_WORKLOADS,
    MODEL_WORKLOADS,
    POOL_DIRECTIONS,
    POOL_MODES,
    POOL_WORKLOADS,
    workloads,
)


def _select(spec: str | None, tiny: bool = False) -> list[str]:
    """Expand --workloads (a,b,c,d,e, conv, pool, p28, p14, train, infer, torch-bridge,
    model, latency, all).

    Without --workloads, --tiny leaves the latency rows and torch-bridge out: their
    shapes are already small or they only time PyTorch models, and they check no
    result against the reference, so at tiny sizes they would add time and no check
    (``--tiny --workloads latency,torch-bridge`` still runs them).
    """
    all_keys = [*CONV_WORKLOADS, *POOL_WORKLOADS, *MODEL_WORKLOADS, *LATENCY_WORKLOADS]
    if spec is None and tiny:
        return [k for k in all_keys if k not in LATENCY_WORKLOADS and k != "torch-bridge"]
    if spec is None or spec.strip().lower() == "all":
        return all_keys
    groups = {"conv": list(CONV_WORKLOADS), "pool": list(POOL_WORKLOADS),
              "model": list(MODEL_WORKLOADS)}
    out: list[str] = []
    for word in spec.split(","):
        word = word.strip().lower()
        if not word:
            continue
        for key in groups.get(word, [word]):
            if key not in all_keys:
                raise SystemExit(
                    f"cnnfast bench: unknown workload {word!r}; choose from "
                    f"{', '.join(all_keys)}, conv, pool, model, all"
                )
            if key not in out:
                out.append(key)
    if not out:
        raise SystemExit(f"cnnfast bench: --workloads {spec!r} names no workload; choose from "
                         f"{', '.join(all_keys)}, conv, pool, model, all")
    return out


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``cnnfast bench`` (its --help is the reference)."""
    p = argparse.ArgumentParser(
        prog="cnnfast bench",
        description="Time cnnfast against the naive reference, a NumPy im2col baseline and "
        "PyTorch CPU (when installed), interleaved in one run; print one table per workload.",
    )
    p.add_argument("--quick", action="store_true",
                   help="fewer repeats and shorter samples (whole run well under a minute)")
    p.add_argument("--threads", type=thread_count, default=None,
                   help="threads for cnnfast, torch and numpy's BLAS (default: cnnfast's)")
    p.add_argument("--json", metavar="PATH", type=output_path,
                   help="write machine-readable results here")
    p.add_argument("--plot", metavar="PATH", type=output_path,
                   help="write a PNG bar chart (needs matplotlib)")
    p.add_argument("--workloads", metavar="LIST",
                   help="comma list of a,b,c,d,e,p28,p14,train,infer,torch-bridge,latency or "
                   "conv,pool,model (default: all; --tiny without it: all but latency)")
    p.add_argument("--repeats", type=int_in(1), default=None,
                   help="samples per implementation")
    p.add_argument("--settle", type=float, default=None,
                   help="seconds to pause after each sample that called numpy's BLAS, so its "
                   "spinning threads stop before the next implementation (default 0.2)")
    p.add_argument("--tiny", action="store_true",
                   help="tiny shapes, for tests and CI: checks the machinery and the errors; "
                   "the timings mean nothing")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    p.add_argument("--levels", metavar="LIST",
                   help="comma list of SIMD levels (avx512, avx2) to run, each in its own "
                   "process with PyTorch and numpy's BLAS capped to the same level, then "
                   "one targets table for all (default: the detected level, in this "
                   "process); a level the CPU lacks is reported as skipped")
    # set by --levels for its child processes: fail unless cnnfast runs at this level
    p.add_argument("--expect-level", choices=sorted(TORCH_CAPABILITY), help=argparse.SUPPRESS)
    return p


def _configure(args: argparse.Namespace) -> Config:
    if args.tiny:
        cfg = Config(repeats=2, warmup=1, min_time=0.0, ref_repeats=1, settle=0.0,
                     model_repeats=2, peak_size=256, peak_samples=2, tiny=True,
                     latency_conv_calls=20, latency_predict_calls=5, fma_iters=2_000,
                     fma_samples=3)
    elif args.quick:
        cfg = Config(repeats=3, warmup=1, min_time=0.004, ref_repeats=1, slow_repeats=2,
                     model_repeats=5, peak_size=2048, peak_samples=3, quick=True,
                     latency_conv_calls=1000, latency_predict_calls=200, fma_samples=5)
    else:
        cfg = Config()
    if args.repeats is not None:
        cfg.repeats = args.repeats
    if args.settle is not None:
        if args.settle < 0:
            raise SystemExit("cnnfast bench: --settle must be >= 0")
        cfg.settle = args.settle
    return cfg


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``cnnfast bench``; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
        cfg = _configure(args)
        keys = _select(args.workloads, args.tiny)
        levels = parse_levels(args.levels) if args.levels is not None else None
    except SystemExit as e:  # a usage error, already printed by argparse, or ours
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
            return 2
        return int(e.code or 0)
    args.argv = argv
    missing = matplotlib_missing() if args.plot else None  # before the run, not after it
    if missing:
        print(f"cnnfast bench: {missing}", file=sys.stderr)
        return 1
    if levels is not None:
        return run_levels(args, levels, argv)
    return _main(args, cfg, keys)


def _main(args: argparse.Namespace, cfg: Config, keys: list[str]) -> int:
    try:
        import cnnfast
    except ImportError as exc:
        print(f"cnnfast bench: cannot import cnnfast: {exc}", file=sys.stderr)
        return 1
    prev_threads = cnnfast.get_num_threads()
    threads = args.threads or prev_threads
    cfg.threads = threads
    cnnfast.set_num_threads(threads)
    torch_skip = "--no-torch given" if args.no_torch else None
    torch, torch_reason = torch_or_reason(torch_skip)
    prev_torch_threads = None
    if torch is not None:
        prev_torch_threads = torch.get_num_threads()
        torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    started = time.perf_counter()
    try:
        limits = threadpool_limits(threads, user_api="blas") if threadpool_limits else None
        try:
            return _run(args, cfg, keys, torch, torch_reason, started)
        finally:
            if limits is not None:
                limits.restore_original_limits()
    finally:
        cnnfast.set_num_threads(prev_threads)
        if prev_torch_threads is not None:
            torch.set_num_threads(prev_torch_threads)


def _run(args: argparse.Namespace, cfg: Config, keys: list[str], torch, torch_reason,
         started: float) -> int:
    # torch_reason is None exactly when torch runs; it is also why its rows are skipped
    cpu = cpuinfo()
    versions_ = versions(torch)
    mode = " --tiny (timings meaningless)" if cfg.tiny else " --quick" if cfg.quick else ""
    print(f"cnnfast bench{mode}: "
          f"{datetime.datetime.now().isoformat(timespec='seconds')}")
    print(f"CPU: {cpu['model']} ({os.cpu_count()} logical CPUs); threads: {cfg.threads} "
          "(cnnfast, torch, numpy BLAS)")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions_.items()))
    if torch_reason:
        print(f"PyTorch columns skipped: {torch_reason}")
    simd = _simd_facts(args, versions_)
    print(simd["line"])
    if simd["error"]:
        print(f"cnnfast bench: {simd['error']}", file=sys.stderr)
        return 1
    peak = measure_blas_peak(cfg.threads, cfg.peak_size, cfg.peak_samples)
    time.sleep(cfg.settle)  # let the BLAS threads stop spinning before anything else runs
    nominal = nominal_peak(cfg.threads, cpu, simd["level"])
    print(f"measured peak: {peak['median_gflops']:.1f} GFLOP/s median "
          f"(best {peak['best_gflops']:.1f}), float32 {peak['size']}^3 matmul via {peak['blas']}")
    if nominal:
        print(f"nominal peak: {nominal[0]:.1f} GFLOP/s = {nominal[1]}")
    fma_start = _fma(cfg)
    cfg.fma_iters = fma_start["steps"]  # the tables' FMA rows: calls of that length
    print(f"FMA-loop ceiling: {fma_start['median_gflops']:.1f} GFLOP/s at "
          f"{fma_start['level']}, {fma_start['chains']} chains, {fma_start['threads']} "
          f"threads (median of {cfg.fma_samples} calls of {fma_start['steps']:,} steps, best "
          f"{fma_start['best_gflops']:.1f}; registers only, csrc/calibrate.c)")
    print("columns: %peak = of the measured peak, %nom = of the nominal, %fma = of the "
          "FMA-loop row timed in the same rounds as the table; x ref / x numpy = "
          "speed-up over them; torch/x = PyTorch's best ms / this ms (>1: this is faster), "
          "(IQR) = the quartiles of that ratio taken round by round (a range holding 1.0: "
          "at parity in this run); ort/x = ONNX Runtime's ms / this ms; max|err| vs the "
          "float64 reference on a small batch\n")
    sys.stdout.flush()
    peak_g = peak["median_gflops"]
    nom_g = nominal[0] if nominal else None
    tasks: list[Task] = []
    summaries: list[list[dict]] = []

    def emit(run_task: Callable[..., Task], *args) -> None:
        meter = LoadMeter()
        t0 = time.perf_counter()
        task = run_task(*args)
        task.elapsed_s = time.perf_counter() - t0
        task.other_load = meter.other_fraction()
        summary = task_summary(task, peak_g, nom_g, fma_start["median_gflops"])
        tasks.append(task)
        summaries.append(summary)
        print(format_task(task, summary) + "\n", flush=True)

    conv_w, pool_w, model_w = workloads(cfg.tiny)
    ref_cache: dict = {}
    run_meter = LoadMeter()
    with ThreadPoolExecutor(max_workers=cfg.threads) as pool:
        for key in keys:
            if key in conv_w:
                for direction in CONV_DIRECTIONS:
                    emit(run_conv_task, conv_w[key], direction, cfg, ref_cache, torch_reason)
            elif key in pool_w:
                for mode in POOL_MODES:
                    for direction in POOL_DIRECTIONS:
                        emit(run_pool_task, pool_w[key], mode, direction, cfg, pool,
                             torch_reason)
            elif key in model_w:
                emit(run_model_task, model_w[key], cfg, torch_reason)
            else:
                emit(run_latency_conv_task, LATENCY_WORKLOADS[key], cfg)
                emit(run_latency_predict_task, LATENCY_WORKLOADS[key], cfg, torch_reason)
    fma_end = _fma(cfg)
    elapsed = time.perf_counter() - started
    other = run_meter.other_fraction()
    print(f"FMA-loop ceiling at the end: {fma_end['median_gflops']:.1f} GFLOP/s (at the "
          f"start {fma_start['median_gflops']:.1f})")
    print(f"total time {elapsed:.1f} s"
          + ("" if other is None else
             f"; other processes used {100 * other:.0f}% of the CPUs meanwhile"))
    doc = json_document(args.argv, cfg, cpu, versions_, torch_reason, peak, nominal,
                        elapsed, other, tasks, summaries)
    doc["simd"] = {k: v for k, v in simd.items() if k != "line"}
    doc["fma_ceiling"] = {"start": fma_start, "end": fma_end}
    doc["targets"] = run_targets(doc["tasks"])
    if args.expect_level is None:  # a level's child: its parent prints all levels' targets
        print("\n" + format_targets([(simd["level"], doc["targets"], None)]))
    if args.json:
        try:
            with atomic_write(args.json, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, indent=1)
        except OSError as exc:  # checked up front, but the disk can still fill or vanish
            print(f"cnnfast bench: could not write {args.json}: {exc.strerror or exc}",
                  file=sys.stderr)
            return 1
        print(f"wrote {args.json}")
    if args.plot:
        try:
            written = write_plot(args.plot, tasks, summaries)
        except (RuntimeError, OSError) as exc:
            print(f"cnnfast bench: {exc}", file=sys.stderr)
            return 1
        print(f"wrote {written}")
    return 0



def _fma(cfg: Config) -> dict:
    """The FMA-loop ceiling now (measure_fma_ceiling with the run's sample length)."""
    return measure_fma_ceiling(cfg.fma_iters, cfg.fma_samples, max(cfg.min_time, 0.02)
                               if not cfg.tiny else 0.0)


def _simd_facts(args: argparse.Namespace, versions_: dict) -> dict:
    """cnnfast's SIMD level (and the one detected), PyTorch's CPU capability, the peers'
    caps in the environment, the header line saying so, and an error when a level's
    child runs at another level than --expect-level asks for."""
    from .._config import config_dict

    cfg = config_dict()
    level, detected = cfg["simd_in_use"], cfg["simd_detected"]
    torch_cap = versions_.get("torch.cpu_capability")
    caps = {k: os.environ[k] for k in ("CNNFAST_CPU_FEATURES", *CAP_VARIABLES)
            if os.environ.get(k)}
    line = f"SIMD level: cnnfast {level} (detected {detected})"
    if torch_cap is not None:
        line += f"; torch CPU capability {torch_cap}"
    line += "; ONNX Runtime uncapped (it has no switch)"
    if caps:
        line += "; " + ", ".join(f"{k}={v}" for k, v in caps.items())
    error = None
    want = args.expect_level
    if want is not None and level != want:
        error = f"cnnfast runs at {level}, not at the level asked for ({want})"
    elif want is not None and torch_cap is not None and torch_cap != TORCH_CAPABILITY[want]:
        line += f" -- PyTorch's capability is not {TORCH_CAPABILITY[want]}: its rows ran above"
    return {"level": level, "detected": detected, "torch_cpu_capability": torch_cap,
            "env": caps, "error": error, "line": line}
