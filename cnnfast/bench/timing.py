"""How ``cnnfast bench`` times: its configuration, result rows and the round-robin timer.

Every case of a table is warmed up, calibrated to k calls per sample, and then timed in
rotated round-robin order, so that the machine's noise hits every implementation alike;
a case that calls numpy's BLAS (or ONNX Runtime) is followed by a pause
(``Config.settle``) so that their spinning worker threads do not slow the next one.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .cases import Case


@dataclass
class Config:
    """How long and how often ``cnnfast bench`` measures; one per run, passed explicitly.

    ``latency_*_calls``: per-call samples of the latency rows (each call timed alone).
    ``fma_iters``: the fewest steps of one call of the registers-only FMA loop, the
    ceiling of the header (the median of ``fma_samples`` calls, each lasting at least
    ``min_time``) and of the convolution and model tables' FMA row, whose calls run the
    steps the header's measurement found.
    """

    repeats: int = 7
    warmup: int = 2
    min_time: float = 0.02  # seconds per sample (k calls back to back)
    ref_repeats: int = 2
    slow_call: float = 0.25  # seconds: a call this slow is its own warm-up
    slow_repeats: int = 5
    model_repeats: int = 15
    settle: float = 0.2
    threads: int = 1
    peak_size: int = 4096
    peak_samples: int = 5
    quick: bool = False
    tiny: bool = False
    latency_conv_calls: int = 2000
    latency_predict_calls: int = 500
    fma_iters: int = 400_000
    fma_samples: int = 7


@dataclass
class Row:
    """One implementation's line of a table: its samples (ms per call) or why it was skipped.

    ``target_us`` is the latency rows' goal, shown next to their median; ``flops``: the
    work of one call where it is not the task's (the FMA-loop row).
    """

    impl: str
    label: str
    note: str = ""
    batch: int = 0  # batch that was timed
    scale: float = 1.0  # full batch / timed batch (reference rows)
    samples_ms: list = field(default_factory=list)
    calls_per_sample: int = 1
    max_abs_err: float | None = None
    skipped: str | None = None
    target_us: float | None = None
    flops: float | None = None

    @property
    def median_ms(self) -> float | None:
        """The median sample times the scale (the full batch's time), or None."""
        if not self.samples_ms:
            return None
        return statistics.median(self.samples_ms) * self.scale


def time_round_robin(entries: list[tuple[Row, Case, int]], cfg: Config) -> None:
    """Warm up, calibrate, then time every case in rotated round-robin order.

    entries: (row, case, max samples). A sample = mean of k back-to-back calls,
    k chosen from the fastest warm-up call so that a sample lasts at least
    cfg.min_time, and each sample of a call faster than cfg.slow_call follows one
    untimed call: the previous implementation's settle pause (or its own pool's)
    lets a thread team fall asleep, and the first call of a sleeping 2-thread team
    costs 3-4 ms on the development KVM guest, which a first-call calibration then
    spread over too few calls (conv a's forward read 0.35 or 0.85 ms from one run
    to the next). Scaled rows (the naive reference on a small batch) get no
    warm-up and k = 1: they are slow, and pure Python loops have nothing to warm
    up. A call slower than cfg.slow_call is its own warm-up and gets at most
    cfg.slow_repeats samples.
    """
    live = []
    for row, case, max_samples in entries:
        if row.scale != 1.0:
            live.append((row, case, max_samples, 1, False))
            continue
        t0 = time.perf_counter()
        case.fn()
        t1 = time.perf_counter() - t0
        if case.settles:
            time.sleep(cfg.settle)
        slow = t1 >= cfg.slow_call
        if slow:
            max_samples = min(max_samples, cfg.slow_repeats)
        else:
            for _ in range(cfg.warmup - 1):
                t0 = time.perf_counter()
                case.fn()
                t1 = min(t1, time.perf_counter() - t0)
                if case.settles:
                    time.sleep(cfg.settle)
        k = max(1, math.ceil(cfg.min_time / t1))
        row.calls_per_sample = k
        live.append((row, case, max_samples, k, not slow))
    rounds = max((m for _, _, m, _, _ in live), default=0)
    for r in range(rounds):
        shift = r % max(len(live), 1)
        for row, case, max_samples, k, wake in live[shift:] + live[:shift]:
            if len(row.samples_ms) >= max_samples:
                continue
            if wake:
                case.fn()
            t0 = time.perf_counter()
            for _ in range(k):
                case.fn()
            row.samples_ms.append((time.perf_counter() - t0) / k * 1e3)
            if case.settles:
                time.sleep(cfg.settle)


def result_error(result: Any, case: Case, ref64: np.ndarray) -> float:
    """Max abs difference of a case's result (in the canonical layout) from ref64."""
    got = case.canon(result) if case.canon else np.asarray(result)
    got = np.asarray(got, dtype=np.float64)
    if got.shape != ref64.shape:
        raise ValueError(f"shape {got.shape} != reference {ref64.shape}")
    return float(np.max(np.abs(got - ref64))) if got.size else 0.0


@dataclass
class Task:
    """One table: a workload in one direction (or mode), with a row per implementation."""

    key: str  # e.g. "conv-b-fwd", "pool-p28-max-bwd", "model-train"
    kind: str  # conv | pool | model | latency
    title: str
    flops: float | None = None
    nbytes: int | None = None
    rows: list = field(default_factory=list)
    batch: int = 0
    elapsed_s: float = 0.0
    other_load: float | None = None


def timed_call(fn: Callable[[], Any]) -> tuple[Any, float]:
    """(fn's result, the seconds the call took)."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def time_per_call(entries: list[tuple[Row, Callable[[], Any]]], calls: int, block: int,
                  warmup: int, settle: dict[str, float] | None = None,
                  block_warmup: int = 0, block_warm_s: float = 0.0) -> None:
    """Time each call alone, ``calls`` per entry, interleaved in rotated rounds.

    For the latency rows, whose calls last microseconds: a sample is one call, so the
    median is the typical call and not a mean that one interruption inflates. Every
    round runs ``block`` calls of each entry in turn (the first entry rotating), so
    the machine's phases hit every entry alike while each still runs warm. Each call
    pays the same timer and closure-call overhead (well under a microsecond), so the
    difference of two rows' medians holds none of it. ``settle``: seconds to pause
    after the block of the row with that ``impl`` (a runtime whose idle worker threads
    spin on, like OpenBLAS's, would otherwise take the cores from the next block).
    ``block_warmup``: untimed calls before each block, so every block is timed warm,
    as a server answering a stream of requests runs: after another runtime's block
    and its settle pause, the first calls on a thread team pay for cores that went
    idle (on the KVM guests measured, milliseconds for 2 threads; the rows' notes and
    BENCHMARKS.md say so), whichever implementation comes next. ``block_warm_s``: the
    untimed calls go on until that many seconds have passed, so that every
    implementation, fast or slow, gets the same time to wake its cores after a pause
    (a count of calls gives a runtime 4x faster per call 4x less of it).
    """
    settle = settle or {}
    clock = time.perf_counter_ns
    for row, fn in entries:
        for _ in range(warmup):
            fn()
        time.sleep(settle.get(row.impl, 0.0))
    rounds = math.ceil(calls / max(block, 1))
    for r in range(rounds):
        shift = r % max(len(entries), 1)
        for row, fn in entries[shift:] + entries[:shift]:
            samples = row.samples_ms
            if len(samples) < calls:
                for _ in range(block_warmup):
                    fn()
                until = clock() + int(block_warm_s * 1e9)
                while clock() < until:
                    fn()
            for _ in range(min(block, calls - len(samples))):
                t0 = clock()
                fn()
                samples.append((clock() - t0) * 1e-6)
            time.sleep(settle.get(row.impl, 0.0))
