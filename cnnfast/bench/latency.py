"""The latency rows of ``cnnfast bench``: what one small call costs, where batches hide it.

Two tables (workload key ``latency``):

- ``latency-conv``: ``ops.conv2d`` on one 28x28x1 float32 image, 3x3 'same', 32 filters
  -- the whole call; the C kernel alone (``ops.training.conv2d_forward`` with arguments
  built once, as ``ops.conv2d`` builds them per call); and their difference, the Python
  overhead outside the kernel (argument checks, the padding geometry, the output
  allocation), with its target.
- ``latency-predict``: ``Sequential.predict`` on one image of the tutorial CNN, next to
  PyTorch eager on the same architecture (batch 1, ``torch.no_grad()``) and ONNX Runtime
  running that torch model exported to ONNX, when ``onnxruntime`` imports.

Each call is timed alone (``timing.time_per_call``), the implementations interleaved
in blocks, each block after three untimed calls (warm, as a server answering a stream
of requests runs), and the tables show medians in microseconds with the quartiles of
the calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .cases import (
    Unavailable,
    aligned_copy,
    onnx_session,
    onnxruntime_or_reason,
    to_nchw,
    torch_or_reason,
)
from .timing import Config, Row, Task, time_per_call
from .workloads import ConvWorkload

__all__ = ["LatencyWorkload", "LATENCY_WORKLOADS", "run_latency_conv_task",
           "run_latency_predict_task", "kernel_conv_call", "onnxruntime_or_reason"]


@dataclass(frozen=True)
class LatencyWorkload:
    """One-image calls: a first-layer convolution and the tutorial CNN's predict."""

    key: str
    conv: ConvWorkload  # batch 1
    conv_target_us: float  # Python overhead of ops.conv2d outside the kernel
    predict_target_us: float  # Sequential.predict on one image
    conv_block: int = 50  # calls of each row per round
    predict_block: int = 10
    warmup: int = 20
    block_warmup: int = 3  # untimed calls before each block (timing.time_per_call)
    # and untimed calls for this long before each predict block: after ONNX Runtime's
    # settle pause, 3 calls left the next block's first calls cold (2026-12-07, Xeon
    # avx512: cnnfast 47 us alone, 54 after ONNX Runtime; ONNX Runtime 50 us after
    # cnnfast, 76 after its own pause); 2 ms of calls gave 49 and 50
    predict_warm_s: float = 0.002


LATENCY_WORKLOADS: dict[str, LatencyWorkload] = {
    "latency": LatencyWorkload("latency", ConvWorkload("latency", 1, 28, 28, 1, 32, 3, 1,
                                                       n_small=1),
                               conv_target_us=15.0, predict_target_us=150.0),
}


def kernel_conv_call(wl: ConvWorkload, x: np.ndarray, kernel: np.ndarray,
                     y: np.ndarray) -> Callable[[], Any]:
    """A call of the C kernel alone, its arguments prebuilt: NHWC x, HWCF kernel, no
    bias, the output y and the resolved spec that ``ops.conv2d`` resolves (through
    ``ops.training.conv2d_forward``, the layers' door to the same kernel), no fused
    ReLU."""
    from .. import _spec
    from ..ops import training

    spec = _spec.conv_spec(x.shape, kernel.shape, wl.stride, "same")
    forward = training.conv2d_forward
    return lambda: forward(x, kernel, None, y, spec, False)


def run_latency_conv_task(lw: LatencyWorkload, cfg: Config) -> Task:
    """The table of ``ops.conv2d`` on one image: the call, the kernel alone, the overhead."""
    from .. import ops

    wl = lw.conv
    task = Task("latency-conv", "latency",
                f"latency: conv2d ({wl.n}, {wl.h}, {wl.w}, {wl.c}) -> {wl.f} filters "
                f"{wl.k}x{wl.k} same, float32, one call, {cfg.threads} threads",
                batch=wl.n)
    rng = np.random.default_rng(0)
    x = aligned_copy(rng.standard_normal((wl.n, wl.h, wl.w, wl.c), dtype=np.float32))
    k = aligned_copy(rng.standard_normal((wl.k, wl.k, wl.c, wl.f), dtype=np.float32) / 3)
    y = aligned_copy(np.zeros((wl.n, *wl.out_hw(), wl.f), dtype=np.float32))
    total = Row("cnnfast", "cnnfast ops.conv2d", note="whole call (allocates its output)",
                batch=wl.n)
    kern = Row("kernel", "C kernel alone",
               note="ops.training.conv2d_forward, arguments prebuilt", batch=wl.n)
    overhead = Row("overhead", "Python overhead", note="ops.conv2d median - kernel median",
                   batch=wl.n, target_us=lw.conv_target_us)
    task.rows = [total, kern, overhead]

    def call() -> np.ndarray:
        return ops.conv2d(x, k, padding="same")

    entries: list[tuple[Row, Callable[[], Any]]] = [(total, call)]
    try:
        kernel_call = kernel_conv_call(wl, x, k, y)
        kernel_call()
        # the prebuilt arguments must mean what ops.conv2d means, or the difference is
        # not the overhead
        if not np.array_equal(y, call()):
            raise ValueError("its result differs from ops.conv2d's")
        entries.append((kern, kernel_call))
    except Exception as exc:  # e.g. the kernel's signature changed
        kern.skipped = f"failed: {type(exc).__name__}: {exc}"
        overhead.skipped = "needs the kernel row"
    time_per_call(entries, cfg.latency_conv_calls, lw.conv_block, lw.warmup,
                  block_warmup=lw.block_warmup)
    if kern.skipped is None:
        overhead.samples_ms = [total.median_ms - kern.median_ms]
        overhead.calls_per_sample = 0  # derived from the two rows above, not timed
    return task


def run_latency_predict_task(lw: LatencyWorkload, cfg: Config,
                             torch_skip: str | None = None) -> Task:
    """The table of one-image inference of the tutorial CNN: cnnfast's
    ``Sequential.predict``, PyTorch eager and ONNX Runtime."""
    from .cases import cnnfast_tutorial_model, torch_tutorial_model

    task = Task("latency-predict", "latency",
                f"latency: Sequential.predict, one image of the tutorial CNN, "
                f"{cfg.threads} threads", batch=1)
    x = np.random.default_rng(0).random((1, 28, 28, 1), dtype=np.float32)
    rows = {
        "cnnfast": Row("cnnfast", "cnnfast predict", batch=1,
                       note="model.predict(x, batch_size=1, verbose=0)",
                       target_us=lw.predict_target_us),
        "torch": Row("torch", "torch eager", batch=1,
                     note="eval, no_grad, NCHW; same architecture, own weights"),
        "onnxruntime": Row("onnxruntime", "onnxruntime", batch=1,
                           note="the torch model exported (dynamo=False)"),
    }
    task.rows = list(rows.values())
    entries: list[tuple[Row, Callable[[], Any]]] = []

    model = cnnfast_tutorial_model()

    def predict() -> Any:
        return model.predict(x, batch_size=1, verbose=0)

    entries.append((rows["cnnfast"], predict))
    torch, reason = torch_or_reason(torch_skip)
    tmodel = tx = None
    try:
        if torch is None:
            raise Unavailable(reason)
        torch.manual_seed(0)
        tmodel = torch_tutorial_model(torch, channels_last=False).eval()
        tx = torch.from_numpy(to_nchw(x))

        def eager() -> Any:
            with torch.no_grad():
                return tmodel(tx)

        eager()
        entries.append((rows["torch"], eager))
    except Exception as exc:
        rows["torch"].skipped = str(exc) if isinstance(exc, Unavailable) else (
            f"failed: {type(exc).__name__}: {exc}")
    ort, ort_reason = onnxruntime_or_reason()
    if rows["torch"].skipped:
        rows["onnxruntime"].skipped = f"needs torch to export the model ({rows['torch'].skipped})"
    elif ort is None:
        rows["onnxruntime"].skipped = ort_reason
    else:
        try:
            sess = onnx_session(ort, torch, tmodel, tx, cfg.threads)
            feed = {"x": tx.numpy()}
            with torch.no_grad():
                want = tmodel(tx).numpy()
            got = sess.run(None, feed)[0]
            rows["onnxruntime"].max_abs_err = float(np.max(np.abs(got - want)))
            entries.append((rows["onnxruntime"], lambda: sess.run(None, feed)))
        except Exception as exc:  # an export or session failure leaves the other rows
            rows["onnxruntime"].skipped = f"failed: {type(exc).__name__}: {exc}"
    # ONNX Runtime's intra-op threads spin after each run (its default, kept so that it
    # runs at its best): the pause lets them sleep before cnnfast's or torch's block
    time_per_call(entries, cfg.latency_predict_calls, lw.predict_block, lw.warmup,
                  settle={"onnxruntime": cfg.settle}, block_warmup=lw.block_warmup,
                  block_warm_s=lw.predict_warm_s)
    return task
