"""Issue 16's performance targets, read off one run's tables: each measured value, ok / miss.

The targets (float32, ratios within one run): every convolution cell a-e x {fwd,
bwd-input, bwd-kernel} and every pooling cell at least as fast as PyTorch's faster layout;
the MNIST training step at least 3x PyTorch eager; batch-1000 inference at least as fast
as ONNX Runtime and one-image ``predict`` no slower than it; conv b and c forward at an
effective rate (direct-convolution FLOPs / time) of at least 120% of the FMA-loop
ceiling. A ratio is the issue's "paired median ratio": the median of the ratios taken
round by round (the rows' samples i come from the same round), which a phase of the
machine that slows one row's samples and not the other's moves less than the ratio of
the two medians (the tables' ``torch/x`` and ``ort/x``, shown beside it). ``run_targets``
works on the JSON form of the tables (``json_document``'s "tasks"), so the same code
judges a run in this process and a level's child process.
"""

from __future__ import annotations

import statistics

from .workloads import CONV_DIRECTIONS, CONV_WORKLOADS

CONV_RATIO = 1.0  # PyTorch's best ms / cnnfast ms, every convolution cell
POOL_RATIO = 1.0  # the same, every pooling cell
TRAIN_RATIO = 3.0  # PyTorch eager's training step ms / cnnfast's
INFER_RATIO = 1.0  # ONNX Runtime's batch-1000 ms / cnnfast's
PREDICT_RATIO = 1.0  # ONNX Runtime's one-image us / cnnfast predict's
FMA_PCT = 120.0  # conv b and c forward, % of the FMA-loop ceiling
FMA_CELLS = ("b", "c")


def _cnnfast(task: dict | None) -> tuple[dict | None, str | None]:
    """(the cnnfast row of a task, None) or (None, why there is no figure)."""
    if task is None:
        return None, "not run"
    row = next((r for r in task["rows"] if r["impl"] == "cnnfast"), None)
    if row is None or row.get("skipped"):
        return None, "cnnfast " + (row["skipped"] if row else "row missing")
    return row, None


def _target(key: str, label: str, threshold: float, value: float | None,
            detail: str = "") -> dict:
    ok = None if value is None else value >= threshold
    return {"key": key, "label": label, "threshold": threshold, "value": value,
            "detail": detail, "ok": ok}


# a ratio column and the round-by-round ratios it is paired from
_ROUNDS = {"torch_best_over_this": "torch_ratio_rounds", "ort_over_this": "ort_ratio_rounds"}


def _paired(row: dict, field: str) -> tuple[float | None, str]:
    """(the paired median ratio of ``field``, or the plain value where the row has no
    rounds; a note giving the ratio of medians beside a paired median)."""
    medians = row.get(field)
    rounds = row.get(_ROUNDS.get(field, ""), None) or []
    if medians is None or not rounds:
        return medians, ""
    return statistics.median(rounds), f"medians {medians:.2f}"


def _row_target(key: str, label: str, threshold: float, task: dict | None,
                field: str, missing: str) -> dict:
    row, why = _cnnfast(task)
    value, note = (None, "") if row is None else _paired(row, field)
    return _target(key, label, threshold, value,
                   why or (note if value is not None else missing))


def run_targets(tasks: list[dict]) -> list[dict]:
    """The targets' values in one run's tasks (JSON form), in the order of the issue.

    Each entry: key, label, threshold, value (None where not measured), detail (why
    not, or what the value is made of) and ok (None where not measured)."""
    by_key = {t["key"]: t for t in tasks}
    out = []
    for wl in CONV_WORKLOADS:
        for direction in CONV_DIRECTIONS:
            key = f"conv-{wl}-{direction}"
            out.append(_row_target(key, f"conv {wl} {direction}: torch/cnnfast", CONV_RATIO,
                                   by_key.get(key), "torch_best_over_this",
                                   "no PyTorch row"))
    pools = [(t["key"], _cnnfast(t)[0]) for t in tasks if t["kind"] == "pool"]
    ratios = [(_paired(row, "torch_best_over_this")[0], key) for key, row in pools
              if row is not None and row.get("torch_best_over_this") is not None]
    if ratios:
        worst, where = min(ratios)
        out.append(_target("pool", "pooling, every cell: torch/cnnfast", POOL_RATIO, worst,
                           f"min of {len(ratios)}: {where.removeprefix('pool-')}"))
    else:
        out.append(_target("pool", "pooling, every cell: torch/cnnfast", POOL_RATIO, None,
                           "not run" if not pools else "no PyTorch row"))
    out.append(_row_target("train", "MNIST step b128: torch/cnnfast", TRAIN_RATIO,
                           by_key.get("model-train"), "torch_best_over_this",
                           "no PyTorch row"))
    out.append(_row_target("infer", "inference b1000: ORT/cnnfast", INFER_RATIO,
                           by_key.get("model-infer"), "ort_over_this",
                           "no ONNX Runtime row"))
    predict = by_key.get("latency-predict")
    t = _row_target("predict", "predict b1: ORT us/cnnfast us", PREDICT_RATIO, predict,
                    "ort_over_this", "no ONNX Runtime row")
    if t["value"] is not None:
        rows = {r["impl"]: r for r in predict["rows"]}
        t["detail"] = (f"medians {rows['cnnfast']['median_us']:.0f} vs "
                       f"{rows['onnxruntime']['median_us']:.0f} us")
    out.append(t)
    for wl in FMA_CELLS:
        out.append(_row_target(f"fma-{wl}", f"conv {wl} fwd: %fma", FMA_PCT,
                               by_key.get(f"conv-{wl}-fwd"), "pct_fma", "no ceiling"))
    return out


def _cell(t: dict | None) -> str:
    if t is None:
        return "-"
    if t["value"] is None:
        return t["detail"] or "-"
    spec = ".0f" if t["threshold"] >= 10 else ".2f"
    text = f"{format(t['value'], spec)} {'ok' if t['ok'] else 'miss'}"
    return f"{text} ({t['detail']})" if t["detail"] else text


def format_targets(levels: list[tuple[str, list[dict] | None, str | None]]) -> str:
    """The targets table: a line per target, a column per level. ``levels``: (level,
    its targets, or None and why the level has none)."""
    labels: list[tuple[str, str, float]] = []
    for _, targets, _ in levels:
        for t in targets or []:
            if t["key"] not in {k for k, _, _ in labels}:
                labels.append((t["key"], t["label"], t["threshold"]))
    width = 34
    lines = ["== issue 16 targets, this run (ok: at or past the target) ==",
             f"{'target':<{width + 8}}" + "".join(f"{lv:<36}" for lv, _, _ in levels)]
    for key, label, threshold in labels:
        cells = []
        for _, targets, why in levels:
            if targets is None:
                cells.append("skipped" if why and why.startswith("skipped") else "failed")
                continue
            cells.append(_cell(next((t for t in targets if t["key"] == key), None)))
        head = f"{label} >= {threshold:g}"
        lines.append(f"{head:<{width + 8}}" + "".join(f"{c:<36}" for c in cells))
    for level, targets, why in levels:
        if targets is None:
            lines.append(f"{level}: {why}")
    return "\n".join(lines)
