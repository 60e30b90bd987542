"""The tables of ``cnnfast bench``'s throughput workloads: conv, pool and model tasks.

Each function builds every implementation's case of one workload (a row per
implementation; one that cannot run here is a skipped row with the reason), checks each
result against the float64 reference on a small batch, and times them interleaved; the
convolution and model tables also time the registers-only FMA loop in the same rounds
(their ``%fma`` ceiling).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from .cases import (
    Case,
    Unavailable,
    conv_case,
    conv_inputs,
    conv_reference64,
    conv_reference64_bwd,
    copy_case,
    fma_case,
    model_case,
    pool_case,
    pool_inputs,
    pool_reference64,
)
from .timing import Config, Row, Task, result_error, time_round_robin, timed_call
from .workloads import (
    CONV_IMPLS,
    IMPL_LABELS,
    POOL_IMPLS,
    ConvWorkload,
    ModelWorkload,
    PoolWorkload,
)

TORCH_IMPLS = ("torch", "torch-cl", "torch-bridge", "torch-bridge-unfused")


def _fma_entry(task: Task, cfg: Config, repeats: int) -> tuple[Row, Case, int]:
    """The FMA-loop ceiling row of a table, timed in the same rounds as the others so
    that the ``%fma`` of every row divides by a ceiling taken in the same phases of the
    machine."""
    case, flops = fma_case(cfg.fma_iters)
    row = Row("fma", case.label, note=case.note, batch=task.batch, flops=flops)
    task.rows.append(row)
    return row, case, repeats


def _implementation_rows(task: Task, impls: tuple, make_case, reference, full: dict,
                         small: dict, batch: int, small_batch: int, cfg: Config,
                         torch_skip: str | None) -> list:
    """A row per implementation in ``task``, and the (row, case, repeats) entries to
    time. ``make_case(impl, inputs)`` builds a case (Unavailable: the row says why);
    ``reference(case)`` is the float64 result its error is measured against, on the
    ``small`` inputs. The naive reference is timed on the small batch only (its one
    call there is a sample), and the others' times are scaled from their batch."""
    entries = []
    for impl in impls:
        row = Row(impl, IMPL_LABELS[impl])
        task.rows.append(row)
        if torch_skip and impl in TORCH_IMPLS:
            row.skipped = torch_skip
            continue
        use_small = impl == "reference"
        try:
            case = make_case(impl, small if use_small else full)
            err_case = case if use_small else make_case(impl, small)
        except Unavailable as exc:
            row.skipped = str(exc)
            continue
        row.label, row.note = case.label, case.note
        row.batch = small_batch if use_small else batch
        row.scale = batch / row.batch
        try:
            out, secs = timed_call(err_case.fn)
            if use_small:
                row.samples_ms.append(secs * 1e3)  # the naive loops: this call is a sample
            row.max_abs_err = result_error(out, err_case, reference(err_case))
        except Exception as exc:  # report a failing implementation, keep benchmarking
            row.skipped = f"failed: {type(exc).__name__}: {exc}"
            continue
        if err_case.settles:
            time.sleep(cfg.settle)
        entries.append((row, case, cfg.ref_repeats if use_small else cfg.repeats))
    return entries


def run_conv_task(wl: ConvWorkload, direction: str, cfg: Config, ref_cache: dict,
                  torch_skip: str | None = None) -> Task:
    """The table of conv workload ``wl`` in ``direction``; ``ref_cache`` keeps the float64
    references between directions; ``torch_skip``: why the torch rows are left out."""
    task = Task(f"conv-{wl.key}-{direction}", "conv",
                f"conv {wl.key}) {wl.title} -- {direction}", flops=wl.flops())
    full = conv_inputs(wl)
    small = conv_inputs(wl, wl.n_small)

    def ref64(padding):
        # one float64 reference backward serves both gradient directions
        kind = "fwd" if direction == "fwd" else "bwd"
        key = (wl, kind, padding)
        if key not in ref_cache:
            if kind == "fwd":
                ref_cache[key] = conv_reference64(wl, "fwd", small, padding)
            else:
                ref_cache[key] = conv_reference64_bwd(wl, small, padding)
        got = ref_cache[key]
        return got if kind == "fwd" else got[0 if direction == "bwd-input" else 1]

    entries = _implementation_rows(
        task, CONV_IMPLS, lambda impl, inp: conv_case(impl, wl, direction, inp),
        lambda case: ref64("same" if case.ref_key is None else case.ref_key),
        full, small, wl.n, wl.n_small, cfg, torch_skip)
    entries.append(_fma_entry(task, cfg, cfg.repeats))
    time_round_robin(entries, cfg)
    return task


def run_pool_task(wl: PoolWorkload, mode: str, direction: str, cfg: Config,
                  pool: ThreadPoolExecutor, torch_skip: str | None = None) -> Task:
    """The table of pooling ``mode`` / ``direction`` on ``wl``, with the copy row (the
    memory bound, its threads from ``pool``); ``torch_skip`` as in run_conv_task."""
    nbytes = wl.nbytes(mode, direction)
    task = Task(f"pool-{wl.key}-{mode}-{direction}", "pool",
                f"{mode} pool {wl.title} -- {direction}", nbytes=nbytes)
    full = pool_inputs(wl)
    small = pool_inputs(wl, wl.n_small)
    ref64 = pool_reference64(mode, direction, small, wl.pool)
    entries = _implementation_rows(
        task, POOL_IMPLS, lambda impl, inp: pool_case(impl, wl, mode, direction, inp),
        lambda case: ref64, full, small, wl.n, wl.n_small, cfg, torch_skip)
    copy = copy_case(nbytes, cfg.threads, pool)
    row = Row("copy", copy.label, note=copy.note, batch=wl.n)
    task.rows.append(row)
    entries.append((row, copy, cfg.repeats))
    time_round_robin(entries, cfg)
    return task


def run_model_task(wl: ModelWorkload, cfg: Config, torch_skip: str | None = None) -> Task:
    """The table of the tutorial CNN's training step or inference; ``torch_skip`` as in
    run_conv_task."""
    task = Task(f"model-{wl.key}", "model", wl.title, flops=wl.flops(), batch=wl.batch)
    entries = []
    for impl in wl.impls:
        row = Row(impl, IMPL_LABELS[impl], batch=wl.batch)
        task.rows.append(row)
        if torch_skip and impl in TORCH_IMPLS:
            row.skipped = torch_skip
            continue
        if torch_skip and impl == "onnxruntime":
            row.skipped = f"needs torch to export the model ({torch_skip})"
            continue
        try:
            case = model_case(impl, wl, threads=cfg.threads)
            case.fn()  # fails here rather than inside the timing loop
        except Unavailable as exc:
            row.skipped = str(exc)
            continue
        except Exception as exc:
            row.skipped = f"failed: {type(exc).__name__}: {exc}"
            continue
        row.note = case.note
        entries.append((row, case, cfg.model_repeats if wl.training else cfg.repeats))
    entries.append(_fma_entry(task, cfg, cfg.model_repeats if wl.training else cfg.repeats))
    time_round_robin(entries, cfg)
    return task
