"""The engine behind ``cnnfast bench``: cnnfast against NumPy and PyTorch, in one run.

For every workload of the benchmark suite (issue 4) it builds one *case* per
implementation -- cnnfast (channels_last, its native layout, and channels_first), the
naive reference (``cnnfast.reference``, on a small batch, time scaled to the full
batch), a vectorised NumPy baseline (``cnnfast.baselines``) and PyTorch CPU (NCHW and
channels_last) when ``torch`` imports -- and times them *interleaved*: warm-up, then
round-robin repeats so that the machine's noise hits every implementation alike,
reporting medians. Each table also shows GFLOP/s against this machine's measured peak
(a large float32 matmul through numpy's BLAS at start), the nominal one and the
registers-only FMA loop of the SIMD level in use (timed in the same rounds), speed-ups,
the ratios to PyTorch's best and to ONNX Runtime (batch-1000 inference), and every
result's max abs error against the reference computed in float64 on a small batch; a run
ends with issue 16's targets, each with its value and ok / miss. The ``latency``
workload times single small calls instead: ``ops.conv2d`` on one image against its C
kernel alone, and ``Sequential.predict`` on one image against PyTorch eager and ONNX
Runtime. ``--levels avx512,avx2`` runs the whole command once per SIMD level, each in
its own process with PyTorch and numpy's BLAS capped to the same level.

Threading hazard (measured, see BENCHMARKS.md): numpy's OpenBLAS keeps its worker
threads spinning for about 0.1 s after each call; an OpenMP kernel run right after
competes with them for the cores. Nothing is changed globally; instead every sample of
an implementation that calls BLAS is followed by a pause (``--settle``, 0.2 s) before
the next implementation runs.

The modules, by concern: ``workloads`` (what is measured), ``cases`` (the
implementations; the pytest-benchmark suite in ``benchmarks/`` builds its cases with the
same functions), ``machine`` (CPU facts, peaks, load, versions), ``timing`` (the
configuration, rows and the interleaved timers), ``tasks`` and ``latency`` (one table
each), ``report`` (summaries, tables, plot, JSON), ``targets`` (the targets table),
``levels`` (``--levels``: a child process per SIMD level) and ``command`` (the command
line).
Nothing here imports ``cnnfast.cli``; ``cnnfast.cli`` imports this package only when
``cnnfast bench`` runs.
"""

from __future__ import annotations

from .cases import (
    Case,
    Unavailable,
    conv_case,
    conv_inputs,
    conv_reference64,
    copy_case,
    model_case,
    pool_case,
    pool_inputs,
    pool_reference64,
    torch_or_reason,
)
from .command import build_parser, main
from .latency import LATENCY_WORKLOADS, LatencyWorkload
from .machine import LoadMeter, measure_blas_peak, nominal_peak
from .report import format_task, task_summary, write_plot
from .targets import format_targets, run_targets
from .timing import Config, Row, Task
from .workloads import (
    CONV_DIRECTIONS,
    CONV_IMPLS,
    CONV_WORKLOADS,
    IMPL_LABELS,
    MODEL_IMPLS,
    MODEL_WORKLOADS,
    POOL_DIRECTIONS,
    POOL_IMPLS,
    POOL_MODES,
    POOL_WORKLOADS,
    TINY_CONV_WORKLOADS,
    TINY_MODEL_WORKLOADS,
    TINY_POOL_WORKLOADS,
    TORCH_BRIDGE_IMPLS,
    ConvWorkload,
    ModelWorkload,
    PoolWorkload,
    workloads,
)

__all__ = [
    "ConvWorkload",
    "PoolWorkload",
    "ModelWorkload",
    "LatencyWorkload",
    "CONV_WORKLOADS",
    "POOL_WORKLOADS",
    "MODEL_WORKLOADS",
    "LATENCY_WORKLOADS",
    "TINY_CONV_WORKLOADS",
    "TINY_POOL_WORKLOADS",
    "TINY_MODEL_WORKLOADS",
    "workloads",
    "CONV_DIRECTIONS",
    "POOL_MODES",
    "POOL_DIRECTIONS",
    "CONV_IMPLS",
    "POOL_IMPLS",
    "MODEL_IMPLS",
    "TORCH_BRIDGE_IMPLS",
    "IMPL_LABELS",
    "Case",
    "Unavailable",
    "conv_inputs",
    "pool_inputs",
    "conv_case",
    "conv_reference64",
    "copy_case",
    "pool_reference64",
    "pool_case",
    "model_case",
    "torch_or_reason",
    "Config",
    "Row",
    "Task",
    "LoadMeter",
    "measure_blas_peak",
    "nominal_peak",
    "task_summary",
    "format_task",
    "run_targets",
    "format_targets",
    "write_plot",
    "build_parser",
    "main",
]
