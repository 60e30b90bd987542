"""What ``cnnfast bench`` prints and writes: per-row summaries, tables, the plot and JSON.

``task_summary`` derives every row's numbers (GFLOP/s, % of peak and of the FMA-loop
ceiling, speed-ups, the ratios to PyTorch's best and to ONNX Runtime with their
round-by-round quartiles); ``format_task`` prints them as one table; ``write_plot`` draws
the bar chart; ``json_document`` assembles the JSON file.
"""

from __future__ import annotations

import datetime
import math
import os
import statistics

import numpy as np

from .._fileio import save_figure
from .timing import Config, Row, Task


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None or not math.isfinite(v) else format(v, spec)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _paired_ratios(num: Row, den: Row) -> list[float]:
    """num's samples over den's, round by round: both were timed in the same rounds of
    the rotation (sample i of every row comes from round i), so each ratio compares
    two implementations a few milliseconds apart, in the same phase of the machine."""
    n = min(len(num.samples_ms), len(den.samples_ms))
    return [a * num.scale / (b * den.scale)
            for a, b in zip(num.samples_ms[:n], den.samples_ms[:n]) if b > 0]


def _quartiles(values: list[float]) -> tuple[float, float] | None:
    if len(values) < 2:
        return None
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def task_summary(task: Task, peak: float | None, nominal: float | None,
                 ceiling: float | None = None) -> list[dict]:
    """Derived numbers of every row (what the table prints and the JSON stores).

    ``%fma`` divides a row's GFLOP/s by the task's own FMA-loop row (timed in the same
    rounds) where it has one, else by ``ceiling`` (the run's figure, GFLOP/s)."""
    med = {r.impl: r.median_ms for r in task.rows if r.median_ms is not None}
    torch_best = min((med[i] for i in ("torch", "torch-cl") if i in med), default=None)
    torch_row = next((r for r in task.rows if r.impl in ("torch", "torch-cl")
                      and r.median_ms is not None and r.median_ms == torch_best), None)
    ort_row = next((r for r in task.rows if r.impl == "onnxruntime"
                    and r.median_ms is not None), None)
    fma_row = next((r for r in task.rows if r.impl == "fma" and r.median_ms), None)
    if fma_row is not None:
        ceiling = fma_row.flops / (fma_row.median_ms * 1e-3) / 1e9
    out = []
    for r in task.rows:
        ms = r.median_ms
        d = {
            "impl": r.impl,
            "label": r.label,
            "note": r.note,
            "skipped": r.skipped,
            "timed_batch": r.batch,
            "scaled": r.scale != 1.0,
            "scale": r.scale,
            "median_ms": ms,
            "samples_ms": [s * r.scale for s in r.samples_ms],
            "calls_per_sample": r.calls_per_sample,
            "max_abs_err": r.max_abs_err,
        }
        if ms is not None and r.impl == "fma":
            d["gflops"] = r.flops / (ms * 1e-3) / 1e9
            d["pct_peak"] = None if not peak else 100 * d["gflops"] / peak
            d["pct_nominal"] = None if not nominal else 100 * d["gflops"] / nominal
            d["pct_fma"] = 100 * d["gflops"] / ceiling
            # the ceiling computes nothing to compare: no speed-ups, no ratios
            d.update(dict.fromkeys(("speedup_vs_reference", "speedup_vs_numpy",
                                    "torch_best_over_this", "torch_ratio_iqr",
                                    "ort_over_this", "ort_ratio_iqr")))
            d["torch_ratio_rounds"] = d["ort_ratio_rounds"] = []
        elif ms is not None:
            if task.flops:
                d["gflops"] = task.flops / (ms * 1e-3) / 1e9
                d["pct_peak"] = None if not peak else 100 * d["gflops"] / peak
                d["pct_nominal"] = None if not nominal else 100 * d["gflops"] / nominal
                d["pct_fma"] = None if not ceiling else 100 * d["gflops"] / ceiling
            if task.nbytes:
                d["gbytes_per_s"] = task.nbytes / (ms * 1e-3) / 1e9
                d["x_copy"] = _ratio(ms, med.get("copy"))
            if task.kind == "model":
                d["images_per_s"] = task.batch / (ms * 1e-3)
            if task.kind == "latency":
                d["median_us"] = ms * 1e3
                q = _quartiles(r.samples_ms) if r.calls_per_sample else None
                d["quartiles_us"] = None if q is None else (q[0] * 1e3, q[1] * 1e3)
                d["target_us"] = r.target_us
                d["within_target"] = None if r.target_us is None else ms * 1e3 <= r.target_us
            d["speedup_vs_reference"] = _ratio(med.get("reference"), ms)
            d["speedup_vs_numpy"] = _ratio(med.get("numpy"), ms)
            d["torch_best_over_this"] = _ratio(torch_best, ms)
            # The spread of that ratio within the run: the quartiles of the rounds'
            # paired ratios (PyTorch's faster layout over this row). A cell whose
            # range straddles 1.0 is at parity in this run.
            rounds = (_paired_ratios(torch_row, r)
                      if torch_row is not None and r is not torch_row and r.scale == 1.0
                      else [])
            d["torch_ratio_rounds"] = rounds
            d["torch_ratio_iqr"] = _quartiles(rounds)
            d["ort_over_this"] = None if ort_row is None else _ratio(ort_row.median_ms, ms)
            rounds = (_paired_ratios(ort_row, r)
                      if ort_row is not None and r is not ort_row and r.calls_per_sample
                      else [])
            d["ort_ratio_rounds"] = rounds
            d["ort_ratio_iqr"] = _quartiles(rounds)
        out.append(d)
    return out


def _fmt_iqr(q: tuple[float, float] | None) -> str:
    return "" if q is None else f"({q[0]:.2f}-{q[1]:.2f})"


def format_task(task: Task, summary: list[dict]) -> str:
    """The printed table of a task: a title line, a header, a line per row."""
    load = "" if task.other_load is None else f" (other load {100 * task.other_load:.0f}%)"
    lines = [f"== {task.title} =={load}"]
    if task.kind == "conv":
        head = (f"{'implementation':<22}{'median ms':>11}{'GFLOP/s':>9}{'%peak':>7}{'%nom':>6}"
                f"{'%fma':>6}{'x ref':>9}{'x numpy':>9}{'torch/x':>9}{'(IQR)':>12}"
                f"{'max|err|':>10}  note")
    elif task.kind == "pool":
        head = (f"{'implementation':<22}{'median ms':>11}{'GB/s':>8}{'x copy':>8}"
                f"{'x ref':>9}{'x numpy':>9}{'torch/x':>9}{'(IQR)':>12}{'max|err|':>10}  note")
    elif task.kind == "latency":
        head = (f"{'implementation':<22}{'median us':>11}{'(IQR us)':>16}{'target':>13}"
                f"{'torch/x':>9}{'ort/x':>7}{'calls':>7}{'max|err|':>10}  note")
    else:
        head = (f"{'implementation':<22}{'median ms':>11}{'img/s':>9}{'GFLOP/s':>9}{'%peak':>7}"
                f"{'%nom':>6}{'%fma':>6}{'torch/x':>9}{'(IQR)':>12}{'ort/x':>7}{'(IQR)':>12}"
                f"  note")
    lines.append(head)
    for r, d in zip(task.rows, summary):
        if r.skipped:
            lines.append(f"{r.label:<22}  skipped: {r.skipped}")
            continue
        if task.kind == "latency":
            lines.append(_latency_line(r, d))
            continue
        note = r.note
        if d["scaled"]:
            note = f"timed on N={r.batch}, x{r.scale:g} to N={r.batch * r.scale:g}" + (
                f"; {note}" if note else "")
        ms = _fmt(d["median_ms"], ".3f" if (d["median_ms"] or 0) < 100 else ".1f")
        err = "-" if d["max_abs_err"] is None else f"{d['max_abs_err']:.1e}"
        if r.impl in ("copy",):
            err = ""
        iqr = _fmt_iqr(d.get("torch_ratio_iqr"))
        common = (f"{_fmt(d.get('speedup_vs_reference'), '.1f'):>9}"
                  f"{_fmt(d.get('speedup_vs_numpy'), '.2f'):>9}"
                  f"{_fmt(d.get('torch_best_over_this'), '.2f'):>9}{iqr:>12}{err:>10}")
        if task.kind == "conv":
            lines.append(f"{r.label:<22}{ms:>11}{_fmt(d.get('gflops'), '.1f'):>9}"
                         f"{_fmt(d.get('pct_peak'), '.0f'):>7}"
                         f"{_fmt(d.get('pct_nominal'), '.0f'):>6}"
                         f"{_fmt(d.get('pct_fma'), '.0f'):>6}"
                         f"{common}  {note}")
        elif task.kind == "pool":
            lines.append(f"{r.label:<22}{ms:>11}{_fmt(d.get('gbytes_per_s'), '.1f'):>8}"
                         f"{_fmt(d.get('x_copy'), '.2f'):>8}{common}  {note}")
        else:
            lines.append(f"{r.label:<22}{ms:>11}{_fmt(d.get('images_per_s'), '.0f'):>9}"
                         f"{_fmt(d.get('gflops'), '.1f'):>9}{_fmt(d.get('pct_peak'), '.0f'):>7}"
                         f"{_fmt(d.get('pct_nominal'), '.0f'):>6}"
                         f"{_fmt(d.get('pct_fma'), '.0f'):>6}"
                         f"{_fmt(d.get('torch_best_over_this'), '.2f'):>9}{iqr:>12}"
                         f"{_fmt(d.get('ort_over_this'), '.2f'):>7}"
                         f"{_fmt_iqr(d.get('ort_ratio_iqr')):>12}  {note}")
    return "\n".join(lines)


def _latency_line(r: Row, d: dict) -> str:
    """One row of a latency table: microseconds, the calls' quartiles, the target."""
    q = d.get("quartiles_us")
    iqr = "" if q is None else f"({q[0]:.1f}-{q[1]:.1f})"
    target = "" if r.target_us is None else (
        f"<= {r.target_us:g} " + ("ok" if d["within_target"] else "over"))
    calls = str(len(r.samples_ms)) if r.calls_per_sample else "-"
    err = "-" if d["max_abs_err"] is None else f"{d['max_abs_err']:.1e}"
    return (f"{r.label:<22}{_fmt(d['median_us'], '.1f'):>11}{iqr:>16}{target:>13}"
            f"{_fmt(d.get('torch_best_over_this'), '.2f'):>9}"
            f"{_fmt(d.get('ort_over_this'), '.2f'):>7}{calls:>7}{err:>10}  {r.note}")


def write_plot(path: str, tasks: list[Task], summaries: list[list[dict]]) -> str:
    """PNG bar chart: cnnfast's speed-up over NumPy and its ratio to PyTorch's best
    (the throughput workloads; the latency rows are in the tables only).

    Written atomically; returns the path written (matplotlib's naming: a name
    without an extension gets ``.png``).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import NullFormatter
    except ImportError as exc:
        raise RuntimeError(
            "--plot needs matplotlib: pip install 'cnnfast[plot]' (or matplotlib)"
        ) from exc
    names, vs_numpy, vs_torch = [], [], []
    for task, summary in zip(tasks, summaries):
        if task.kind == "latency":  # the chart compares throughput; latency is in the tables
            continue
        d = next((d for d in summary if d["impl"] == "cnnfast" and d["median_ms"]), None)
        if d is None:
            continue
        names.append(task.key)
        vs_numpy.append(d.get("speedup_vs_numpy") or float("nan"))
        vs_torch.append(d.get("torch_best_over_this") or float("nan"))
    if not names:
        raise RuntimeError("--plot: no cnnfast results to plot")
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.32 * len(names) + 1.8), sharey=True)
    ypos = np.arange(len(names))
    for ax, vals, title in (
        (axes[0], vs_numpy, "speed-up over NumPy baseline (x, log)"),
        (axes[1], vs_torch, "PyTorch best ms / cnnfast ms (>1: cnnfast faster)"),
    ):
        ax.barh(ypos, vals, color=["tab:green" if v >= 1 else "tab:red" for v in vals])
        ax.axvline(1.0, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor log labels collide
        ax.set_title(title, fontsize=10)
        for y, v in zip(ypos, vals):
            if math.isfinite(v):
                ax.text(v, y, f" {v:.2f}", va="center", fontsize=7)
    axes[0].set_yticks(ypos, names, fontsize=8)
    axes[0].invert_yaxis()
    fig.suptitle("cnnfast bench (cnnfast NHWC row of each workload)")
    fig.tight_layout()
    try:
        return save_figure(fig, path, dpi=110)
    finally:
        plt.close(fig)


def json_document(argv: list[str], cfg: Config, cpu: dict, versions: dict,
                  torch_reason: str | None, peak: dict, nominal: tuple[float, str] | None,
                  elapsed: float, other: float | None, tasks: list[Task],
                  summaries: list[list[dict]]) -> dict:
    """The JSON file of a run: the machine, the configuration, and every table's rows."""
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(["cnnfast bench", *argv]),
        "cpu_model": cpu["model"],
        "logical_cpus": os.cpu_count(),
        "threads": cfg.threads,
        "quick": cfg.quick,
        "tiny": cfg.tiny,
        "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
        "versions": versions,
        "torch_skipped": torch_reason,
        "peak": {**peak, "nominal_gflops": nominal[0] if nominal else None,
                 "nominal_how": nominal[1] if nominal else None},
        "elapsed_s": elapsed,
        "other_load": other,
        "tasks": [
            {"key": t.key, "kind": t.kind, "title": t.title, "flops": t.flops,
             "bytes": t.nbytes, "elapsed_s": t.elapsed_s,
             "other_load": t.other_load, "rows": s}
            for t, s in zip(tasks, summaries)
        ],
    }
