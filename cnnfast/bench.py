"""The engine behind ``cnnfast bench``: cnnfast against NumPy and PyTorch, in one run.

For every workload of the benchmark suite (issue 4) this module builds one
*case* per implementation -- cnnfast (channels_last, its native layout, and
channels_first), the naive reference (``cnnfast.reference``, on a small batch,
time scaled to the full batch), a vectorised NumPy baseline
(``cnnfast.baselines``) and PyTorch CPU (NCHW and channels_last) when ``torch``
imports -- and times them *interleaved*: warm-up, then round-robin repeats so
that the machine's noise hits every implementation alike, reporting medians.
Each table also shows GFLOP/s against this machine's measured peak (a large
float32 matmul through numpy's BLAS at start) and the nominal one, speed-ups,
the ratio to PyTorch's best, and every result's max abs error against the
reference computed in float64 on a small batch.

The pytest-benchmark suite in ``benchmarks/`` builds its cases with the same
functions (``conv_case``, ``pool_case``, ``model_case``) so both agree on what
is measured.

Threading hazard (measured here, see BENCHMARKS.md): numpy's OpenBLAS keeps its
worker threads spinning for about 0.1 s after each call; an OpenMP kernel run
right after competes with them for the 2 cores. Nothing is changed globally;
instead every sample of an implementation that calls BLAS is followed by a
pause (``--settle``, 0.2 s) before the next implementation runs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ._cli_args import int_in, matplotlib_missing, output_path, thread_count
from ._fileio import atomic_write, save_figure

__all__ = [
    "ConvWorkload",
    "PoolWorkload",
    "ModelWorkload",
    "CONV_WORKLOADS",
    "POOL_WORKLOADS",
    "MODEL_WORKLOADS",
    "workloads",
    "CONV_DIRECTIONS",
    "POOL_MODES",
    "POOL_DIRECTIONS",
    "CONV_IMPLS",
    "POOL_IMPLS",
    "MODEL_IMPLS",
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
    "main",
]


# ---------------------------------------------------------------------------
# Workloads
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ConvWorkload:
    """A float32 convolution, 'same' padding (TF/Keras), NHWC x / HWCF kernel."""

    key: str
    n: int
    h: int
    w: int
    c: int
    f: int
    k: int
    stride: int
    n_small: int  # batch for the reference timing and the error check

    @property
    def title(self) -> str:
        return (
            f"N={self.n} {self.h}x{self.w} {self.c}->{self.f} {self.k}x{self.k} "
            f"s{self.stride} same"
        )

    def out_hw(self) -> tuple[int, int]:
        return -(-self.h // self.stride), -(-self.w // self.stride)

    def flops(self, n: int | None = None) -> float:
        """2*N*OH*OW*F*C*KH*KW: the count of each direction."""
        oh, ow = self.out_hw()
        return 2.0 * (self.n if n is None else n) * oh * ow * self.f * self.c * self.k * self.k

    def same_pads(self) -> tuple[tuple[int, int], tuple[int, int]]:
        oh, ow = self.out_hw()
        th = max((oh - 1) * self.stride + self.k - self.h, 0)
        tw = max((ow - 1) * self.stride + self.k - self.w, 0)
        return (th // 2, th - th // 2), (tw // 2, tw - tw // 2)

    def torch_padding(self):
        """PyTorch only pads symmetrically: the 'same' pads, or (k-1)//2 when they are not.

        With stride 2 TF's 'same' pads (0, 1); PyTorch users write padding=1,
        which gives the same output size and FLOPs (the windows sit one row up),
        so its error is checked against the reference run with that padding.
        """
        (pt, pb), (pl, pr) = self.same_pads()
        if pt == pb and pl == pr:
            return "same", (pt, pl)
        p = (self.k - 1) // 2
        return ((p, p), (p, p)), (p, p)


@dataclass(frozen=True)
class PoolWorkload:
    """2x2 / stride 2 'valid' pooling of a float32 NHWC tensor."""

    key: str
    n: int
    h: int
    w: int
    c: int
    pool: int = 2
    n_small: int = 2

    @property
    def title(self) -> str:
        return f"({self.n}, {self.h}, {self.w}, {self.c}) {self.pool}x{self.pool}/{self.pool}"

    def out_shape(self, n: int | None = None) -> tuple[int, int, int, int]:
        return (
            self.n if n is None else n,
            (self.h - self.pool) // self.pool + 1,
            (self.w - self.pool) // self.pool + 1,
            self.c,
        )

    def nbytes(self, mode: str, direction: str) -> int:
        """Bytes that must move: read the input(s) once, write the output once."""
        x = self.n * self.h * self.w * self.c * 4
        y = int(np.prod(self.out_shape())) * 4
        if direction == "fwd":
            return x + y
        # backward reads dy (and the int32 winner indices for max/min), writes dx
        return y + x + (y if mode != "avg" else 0)


@dataclass(frozen=True)
class ModelWorkload:
    """The tutorial CNN: a training step (batch 128) or inference (batch 1000)."""

    key: str
    batch: int

    @property
    def title(self) -> str:
        what = "training step" if self.key == "train" else "inference"
        return f"tutorial CNN {what}, batch {self.batch}"

    def flops(self, n: int | None = None) -> float:
        n = self.batch if n is None else n
        conv1 = 2 * 28 * 28 * 32 * 1 * 9
        conv2 = 2 * 14 * 14 * 64 * 32 * 9
        fc1 = 2 * 3136 * 128
        fc2 = 2 * 128 * 10
        fwd = conv1 + conv2 + fc1 + fc2
        if self.key == "infer":
            return float(n * fwd)
        # backward: conv1 needs only its kernel gradient, the others both
        bwd = conv1 + 2 * (conv2 + fc1 + fc2)
        return float(n * (fwd + bwd))


CONV_WORKLOADS: dict[str, ConvWorkload] = {
    "a": ConvWorkload("a", 128, 28, 28, 1, 32, 3, 1, n_small=2),
    "b": ConvWorkload("b", 128, 14, 14, 32, 64, 3, 1, n_small=2),
    "c": ConvWorkload("c", 32, 56, 56, 64, 64, 3, 1, n_small=1),
    "d": ConvWorkload("d", 32, 56, 56, 64, 128, 3, 2, n_small=1),
    "e": ConvWorkload("e", 128, 28, 28, 1, 32, 5, 1, n_small=2),
}
POOL_WORKLOADS: dict[str, PoolWorkload] = {
    "p28": PoolWorkload("p28", 128, 28, 28, 32),
    "p14": PoolWorkload("p14", 128, 14, 14, 64),
}
MODEL_WORKLOADS: dict[str, ModelWorkload] = {
    "train": ModelWorkload("train", 128),
    "infer": ModelWorkload("infer", 1000),
}
# Tiny versions of the same workloads (same keys, same code paths, e.g. the
# asymmetric 'same' padding of d): for tests and CI, where timings mean nothing.
TINY_CONV_WORKLOADS: dict[str, ConvWorkload] = {
    "a": ConvWorkload("a", 4, 8, 8, 1, 4, 3, 1, n_small=2),
    "b": ConvWorkload("b", 4, 6, 6, 4, 8, 3, 1, n_small=2),
    "c": ConvWorkload("c", 2, 8, 8, 8, 8, 3, 1, n_small=1),
    "d": ConvWorkload("d", 2, 8, 8, 8, 16, 3, 2, n_small=1),
    "e": ConvWorkload("e", 4, 8, 8, 1, 4, 5, 1, n_small=2),
}
TINY_POOL_WORKLOADS: dict[str, PoolWorkload] = {
    "p28": PoolWorkload("p28", 4, 8, 8, 4),
    "p14": PoolWorkload("p14", 4, 6, 6, 8),
}
TINY_MODEL_WORKLOADS: dict[str, ModelWorkload] = {
    "train": ModelWorkload("train", 8),
    "infer": ModelWorkload("infer", 16),
}


def workloads(tiny: bool = False) -> tuple[dict, dict, dict]:
    """(conv, pool, model) workload dicts: the real ones, or their tiny versions."""
    if tiny:
        return TINY_CONV_WORKLOADS, TINY_POOL_WORKLOADS, TINY_MODEL_WORKLOADS
    return CONV_WORKLOADS, POOL_WORKLOADS, MODEL_WORKLOADS


CONV_DIRECTIONS = ("fwd", "bwd-input", "bwd-kernel")
POOL_MODES = ("max", "avg", "min")
POOL_DIRECTIONS = ("fwd", "bwd")
CONV_IMPLS = ("cnnfast", "cnnfast-nchw", "reference", "numpy", "torch", "torch-cl")
POOL_IMPLS = CONV_IMPLS
MODEL_IMPLS = ("cnnfast", "torch", "torch-cl")

IMPL_LABELS = {
    "cnnfast": "cnnfast NHWC",
    "cnnfast-nchw": "cnnfast NCHW",
    "reference": "naive reference",
    "numpy": "numpy im2col",
    "torch": "torch NCHW",
    "torch-cl": "torch channels_last",
    "copy": "copy same bytes",
}
POOL_NUMPY_LABEL = "numpy window loop"


class Unavailable(Exception):
    """An implementation that cannot run here (e.g. torch not installed); str = reason."""


@dataclass
class Case:
    """One implementation of one workload, ready to time.

    ``fn`` is the timed call (inputs already laid out for it); ``canon`` turns
    its result into the canonical layout (NHWC / HWCF numpy) for error checks.
    """

    impl: str
    label: str
    fn: Callable[[], Any]
    canon: Callable[[Any], np.ndarray] | None = None
    uses_blas: bool = False
    note: str = ""
    ref_key: Any = None  # which reference result to compare with (padding variant)


# ---------------------------------------------------------------------------
# Optional torch
# ---------------------------------------------------------------------------

_TORCH: Any = None
_TORCH_REASON: str | None = None


_TORCH_OFF: str | None = None  # set by `cnnfast bench --no-torch` for its own run


def torch_or_reason() -> tuple[Any, str | None]:
    """(torch module, None) or (None, why it is not usable)."""
    global _TORCH, _TORCH_REASON
    if _TORCH_OFF:
        return None, _TORCH_OFF
    if _TORCH is None and _TORCH_REASON is None:
        if os.environ.get("CNNFAST_BENCH_NO_TORCH"):
            _TORCH_REASON = "CNNFAST_BENCH_NO_TORCH is set"
        else:
            try:
                import torch

                _TORCH = torch
            except Exception as exc:  # ImportError, or a broken install
                _TORCH_REASON = f"torch not importable ({type(exc).__name__}: {exc})"
    return _TORCH, _TORCH_REASON


def _need_torch():
    torch, reason = torch_or_reason()
    if torch is None:
        raise Unavailable(reason)
    return torch


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------


def conv_inputs(wl: ConvWorkload, n: int | None = None, seed: int = 0) -> dict:
    """x (N,H,W,C), kernel (K,K,C,F), dy (N,OH,OW,F), float32, for batch n."""
    n = wl.n if n is None else n
    rng = np.random.default_rng(seed)
    oh, ow = wl.out_hw()
    scale = 1.0 / math.sqrt(wl.c * wl.k * wl.k)
    return {
        "x": _aligned(rng.standard_normal((n, wl.h, wl.w, wl.c), dtype=np.float32)),
        "kernel": _aligned(rng.standard_normal((wl.k, wl.k, wl.c, wl.f), dtype=np.float32)
                           * scale),
        "dy": _aligned(rng.standard_normal((n, oh, ow, wl.f), dtype=np.float32)),
    }


def _aligned(a: np.ndarray) -> np.ndarray:
    """a copied into 64-byte aligned memory, as a framework's allocator gives (torch's
    does): every implementation reads the same arrays (torch channels_last in place)."""
    from .ops import empty_aligned

    out = empty_aligned(a.shape, a.dtype)
    np.copyto(out, a)
    return out


def pool_inputs(wl: PoolWorkload, n: int | None = None, seed: int = 0) -> dict:
    """x (N,H,W,C) and dy (N,OH,OW,C), float32; x without ties (a permutation)."""
    n = wl.n if n is None else n
    rng = np.random.default_rng(seed)
    size = n * wl.h * wl.w * wl.c
    # distinct values so max/min winners (and their indices) are unambiguous
    x = (rng.permutation(size).astype(np.float32) / size).reshape(n, wl.h, wl.w, wl.c)
    return {"x": _aligned(x),
            "dy": _aligned(rng.standard_normal(wl.out_shape(n), dtype=np.float32))}


def _nchw(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2))


def _fchw(k: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(k.transpose(3, 2, 0, 1))


def _from_nchw(a) -> np.ndarray:
    return np.asarray(a).transpose(0, 2, 3, 1)


def _from_fchw(a) -> np.ndarray:
    return np.asarray(a).transpose(2, 3, 1, 0)


# ---------------------------------------------------------------------------
# Convolution cases
# ---------------------------------------------------------------------------


def conv_case(impl: str, wl: ConvWorkload, direction: str, inp: dict) -> Case:
    """The case of ``impl`` for conv workload ``wl`` / ``direction`` on inputs ``inp``.

    Raises Unavailable when the implementation cannot run here.
    """
    if direction not in CONV_DIRECTIONS:
        raise ValueError(f"direction must be one of {CONV_DIRECTIONS}, got {direction!r}")
    x, k, dy = inp["x"], inp["kernel"], inp["dy"]
    s = wl.stride
    label = IMPL_LABELS[impl]
    if impl in ("cnnfast", "cnnfast-nchw"):
        from cnnfast import ops
        if impl == "cnnfast":
            fmt, xx, kk, gg, back, kback = "channels_last", x, k, dy, None, None
        else:
            fmt, xx, kk, gg = "channels_first", _nchw(x), _fchw(k), _nchw(dy)
            back, kback = _from_nchw, _from_fchw
        if direction == "fwd":
            return Case(impl, label,
                        lambda: ops.conv2d(xx, kk, strides=s, padding="same", data_format=fmt),
                        back)
        if direction == "bwd-input":
            fn, note = _cnnfast_bwd_input(ops, gg, xx, kk, s, fmt)
            return Case(impl, label, fn, back, note=note)
        return Case(impl, label,
                    lambda: ops.conv2d_backward(gg, xx, kk, strides=s, padding="same",
                                                data_format=fmt, input_grad=False)[1],
                    kback, note="also computes dbias")
    if impl == "reference":
        from cnnfast import reference as ref

        if direction == "fwd":
            return Case(impl, label,
                        lambda: ref.conv2d(x, k, None, strides=s, padding="same"),
                        uses_blas=True)
        which = 0 if direction == "bwd-input" else 1
        return Case(impl, label,
                    lambda: ref.conv2d_backward(dy, x, k, strides=s, padding="same",
                                                input_grad=which == 0)[which],
                    uses_blas=True, note="computes dx and dkernel together")
    if impl == "numpy":
        from cnnfast import baselines as base

        if direction == "fwd":
            return Case(impl, label, lambda: base.conv2d(x, k, strides=s, padding="same"),
                        uses_blas=True)
        if direction == "bwd-input":
            return Case(impl, label,
                        lambda: base.conv2d_backward(dy, x, k, strides=s, padding="same",
                                                     kernel_grad=False)[0],
                        uses_blas=True)
        return Case(impl, label,
                    lambda: base.conv2d_backward(dy, x, k, strides=s, padding="same",
                                                 input_grad=False)[1],
                    uses_blas=True)
    if impl in ("torch", "torch-cl"):
        torch = _need_torch()
        fmt = torch.channels_last if impl == "torch-cl" else torch.contiguous_format
        tx = torch.from_numpy(_nchw(x)).contiguous(memory_format=fmt)
        tw = torch.from_numpy(_fchw(k)).contiguous(memory_format=fmt)
        tg = torch.from_numpy(_nchw(dy)).contiguous(memory_format=fmt)
        ref_key, pad = wl.torch_padding()
        ref_key = None if ref_key == "same" else ref_key
        stride, dil = [s, s], [1, 1]
        conv_bwd = torch.ops.aten.convolution_backward
        if direction == "fwd":
            conv2d = torch.nn.functional.conv2d

            def run_fwd():
                with torch.no_grad():
                    return conv2d(tx, tw, None, s, pad)

            return Case(impl, label, run_fwd, lambda t: _from_nchw(t.numpy()), ref_key=ref_key)
        mask = [True, False, False] if direction == "bwd-input" else [False, True, False]
        which = 0 if direction == "bwd-input" else 1
        canon = _from_nchw if which == 0 else _from_fchw
        return Case(impl, label,
                    lambda: conv_bwd(tg, tx, tw, None, stride, list(pad), dil, False,
                                     [0, 0], 1, mask)[which],
                    lambda t: canon(t.numpy()), ref_key=ref_key)
    raise ValueError(f"unknown conv implementation {impl!r}; choose from {CONV_IMPLS}")


def _cnnfast_bwd_input(ops, dy, x, kernel, s: int, fmt: str):
    """(timed call, note) computing cnnfast's input gradient alone: the public
    ``conv2d_backward`` with ``kernel_grad=False``."""
    return (lambda: ops.conv2d_backward(dy, x, kernel, strides=s, padding="same",
                                        data_format=fmt, kernel_grad=False)[0], "")


def _conv_reference64_bwd(wl: ConvWorkload, inp: dict, padding) -> tuple:
    from cnnfast import reference as ref

    x = inp["x"].astype(np.float64)
    k = inp["kernel"].astype(np.float64)
    dy = inp["dy"].astype(np.float64)
    dx, dk, _ = ref.conv2d_backward(dy, x, k, strides=wl.stride, padding=padding)
    return dx, dk


def conv_reference64(wl: ConvWorkload, direction: str, inp: dict, padding) -> np.ndarray:
    """The float64 reference result on (small) inputs, the yardstick for errors.

    ``padding`` is "same", or the explicit pads a torch case used (``case.ref_key``).
    """
    from cnnfast import reference as ref

    x = inp["x"].astype(np.float64)
    k = inp["kernel"].astype(np.float64)
    if direction == "fwd":
        return ref.conv2d(x, k, None, strides=wl.stride, padding=padding)
    dy = inp["dy"].astype(np.float64)
    dx, dk, _ = ref.conv2d_backward(dy, x, k, strides=wl.stride, padding=padding)
    return dx if direction == "bwd-input" else dk


# ---------------------------------------------------------------------------
# Pooling cases
# ---------------------------------------------------------------------------


def pool_case(impl: str, wl: PoolWorkload, mode: str, direction: str, inp: dict) -> Case:
    """The case of ``impl`` for pooling ``mode`` / ``direction`` on inputs ``inp``.

    Backward of max/min is given the winner indices of the forward (computed
    outside the timing) wherever the implementation can take them, as a layer
    would; the reference searches again (it is the oracle).
    """
    if mode not in POOL_MODES or direction not in POOL_DIRECTIONS:
        raise ValueError(f"mode/direction must be in {POOL_MODES}/{POOL_DIRECTIONS}")
    x, dy = inp["x"], inp["dy"]
    p = wl.pool
    label = IMPL_LABELS[impl]
    if impl in ("cnnfast", "cnnfast-nchw"):
        from cnnfast import ops
        if impl == "cnnfast":
            fmt, xx, gg, back = "channels_last", x, dy, None
        else:
            fmt, xx, gg, back = "channels_first", _nchw(x), _nchw(dy), _from_nchw
        if direction == "fwd":
            return Case(impl, label,
                        lambda: ops.pool2d(xx, p, mode=mode, data_format=fmt), back)
        idx = None
        if mode != "avg":
            idx = ops.pool2d(xx, p, mode=mode, data_format=fmt, return_indices=True)[1]
        return Case(impl, label,
                    lambda: ops.pool2d_backward(gg, xx, p, mode=mode, data_format=fmt,
                                                indices=idx),
                    back, note="" if idx is None else "with fwd indices")
    if impl == "reference":
        from cnnfast import reference as ref

        if direction == "fwd":
            return Case(impl, label, lambda: ref.pool2d(x, p, mode=mode))
        return Case(impl, label, lambda: ref.pool2d_backward(dy, x, p, mode=mode))
    if impl == "numpy":
        from cnnfast import baselines as base

        label = POOL_NUMPY_LABEL
        if direction == "fwd":
            return Case(impl, label, lambda: base.pool2d(x, p, mode=mode))
        idx = None if mode == "avg" else base.pool2d(x, p, mode=mode, return_indices=True)[1]
        return Case(impl, label, lambda: base.pool2d_backward(dy, x, p, mode=mode, indices=idx),
                    note="" if idx is None else "with fwd indices")
    if impl in ("torch", "torch-cl"):
        torch = _need_torch()
        F = torch.nn.functional
        fmt = torch.channels_last if impl == "torch-cl" else torch.contiguous_format
        tx = torch.from_numpy(_nchw(x)).contiguous(memory_format=fmt)
        tg = torch.from_numpy(_nchw(dy)).contiguous(memory_format=fmt)
        canon = lambda t: _from_nchw(t.numpy())  # noqa: E731
        kk = [p, p]
        if direction == "fwd":
            if mode == "max":
                fn = lambda: F.max_pool2d(tx, p)  # noqa: E731
            elif mode == "avg":
                fn = lambda: F.avg_pool2d(tx, p)  # noqa: E731
            else:
                # torch has no min pooling: what a user writes
                fn = lambda: torch.neg(F.max_pool2d(torch.neg(tx), p))  # noqa: E731
            return Case(impl, label, fn, canon, note="-maxpool(-x)" if mode == "min" else "")
        if mode == "avg":
            bwd = torch.ops.aten.avg_pool2d_backward
            return Case(impl, label, lambda: bwd(tg, tx, kk, kk, [0, 0], False, True, None),
                        canon)
        src = tx if mode == "max" else torch.neg(tx)
        _, tidx = F.max_pool2d(src, p, return_indices=True)
        # d(-maxpool(-x))/dx routes dy to the argmin: the max backward with those indices
        bwd = torch.ops.aten.max_pool2d_with_indices_backward
        return Case(impl, label, lambda: bwd(tg, tx, kk, kk, [0, 0], [1, 1], False, tidx),
                    canon, note="with fwd indices")
    raise ValueError(f"unknown pool implementation {impl!r}; choose from {POOL_IMPLS}")


def pool_reference64(mode: str, direction: str, inp: dict, pool: int) -> np.ndarray:
    from cnnfast import reference as ref

    x = inp["x"].astype(np.float64)
    if direction == "fwd":
        return ref.pool2d(x, pool, mode=mode)
    return ref.pool2d_backward(inp["dy"].astype(np.float64), x, pool, mode=mode)


def copy_case(nbytes: int, threads: int, pool: ThreadPoolExecutor) -> Case:
    """np.copyto of nbytes/2 bytes (read + write = nbytes), split over the threads.

    np.copyto releases the GIL for plain float copies, so `threads` Python
    threads copy their chunks in parallel: the memory bound of the machine at
    this thread count, measured in the same run as the pooling rows.
    """
    n = max(nbytes // 8, 1)
    src = np.random.default_rng(1).standard_normal(n, dtype=np.float32)
    dst = np.empty_like(src)
    bounds = np.linspace(0, n, threads + 1).astype(int)
    chunks = [(dst[a:b], src[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]

    def run():
        if len(chunks) == 1:
            np.copyto(*chunks[0])
        else:
            list(pool.map(lambda c: np.copyto(*c), chunks))

    return Case("copy", IMPL_LABELS["copy"], run, note=f"np.copyto, {threads} thr")


# ---------------------------------------------------------------------------
# Model cases (the tutorial CNN)
# ---------------------------------------------------------------------------


def _cnnfast_model():
    """The tutorial CNN, built as ``cnnfast train`` builds it."""
    from cnnfast.tutorial import build_tutorial_model

    model = build_tutorial_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def _torch_model(torch, channels_last: bool):
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10),
    )
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def model_case(impl: str, wl: ModelWorkload, batch: int | None = None, seed: int = 0) -> Case:
    """A training step (``wl.key == 'train'``) or batched inference of the tutorial CNN.

    cnnfast: one ``model.train_on_batch(x, y)`` / ``model.predict(x, batch_size=batch)``.
    torch: zero_grad, forward, cross_entropy, backward, Adam step / eval forward
    under inference_mode. Same architecture, random data, random labels.
    """
    n = wl.batch if batch is None else batch
    rng = np.random.default_rng(seed)
    x = rng.random((n, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, n)
    label = IMPL_LABELS[impl]
    if impl == "cnnfast":
        model = _cnnfast_model()
        # the model makes no BLAS call (Dense runs on cnnfast.matmul): no settle pause
        if wl.key == "train":
            return Case(impl, label, lambda: model.train_on_batch(x, y),
                        note="train_on_batch (Adam, dropout, Python layer API)")
        return Case(impl, label, lambda: model.predict(x, batch_size=n, verbose=0),
                    note="predict")
    if impl in ("torch", "torch-cl"):
        torch = _need_torch()
        torch.manual_seed(seed)
        cl = impl == "torch-cl"
        model = _torch_model(torch, cl)
        tx = torch.from_numpy(_nchw(x))
        if cl:
            tx = tx.contiguous(memory_format=torch.channels_last)
        ty = torch.from_numpy(y)
        if wl.key == "train":
            model.train()
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            ce = torch.nn.functional.cross_entropy

            def step():
                opt.zero_grad(set_to_none=True)
                loss = ce(model(tx), ty)
                loss.backward()
                opt.step()
                return loss

            return Case(impl, label, step, note="Adam, cross_entropy")
        model.eval()

        def infer():
            with torch.inference_mode():
                return model(tx)

        return Case(impl, label, infer, note="eval, inference_mode")
    raise ValueError(f"unknown model implementation {impl!r}; choose from {MODEL_IMPLS}")


# ---------------------------------------------------------------------------
# Machine facts
# ---------------------------------------------------------------------------


def _cpuinfo() -> dict:
    info = {"model": platform.processor() or platform.machine(), "mhz": None, "flags": set()}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, val = line.partition(":")
                key = key.strip()
                if key == "model name" and info["model"] in ("", platform.machine(), "x86_64"):
                    info["model"] = val.strip()
                elif key == "cpu MHz" and info["mhz"] is None:
                    info["mhz"] = float(val)
                elif key == "flags" and not info["flags"]:
                    info["flags"] = set(val.split())
    except OSError:
        pass
    return info


def nominal_peak(threads: int, cpu: dict | None = None) -> tuple[float, str] | None:
    """(GFLOP/s, how) from the clock and SIMD width, or None when unknown.

    Assumes two FMA units per core (true of the server Xeons with AVX-512; a
    part with one would have half): AVX-512 64, AVX2+FMA 32 float32 FLOP/cycle.
    """
    cpu = cpu or _cpuinfo()
    if not cpu["mhz"]:
        return None
    flags = cpu["flags"]
    if "avx512f" in flags:
        fpc, isa = 64, "AVX-512"
    elif "avx2" in flags and "fma" in flags:
        fpc, isa = 32, "AVX2+FMA"
    else:
        return None
    cores = min(threads, os.cpu_count() or 1)
    ghz = cpu["mhz"] / 1000.0
    gflops = cores * fpc * ghz
    return gflops, (f"{cores} cores x {fpc} FLOP/cycle ({isa}, 2 FMA units assumed) "
                    f"x {ghz:.2f} GHz")


def _blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown BLAS (threadpoolctl missing)"
    for lib in threadpool_info():
        if lib.get("user_api") == "blas":
            arch = lib.get("architecture")
            name = os.path.basename(lib.get("filepath", "")) or lib.get("prefix", "")
            return (f"{lib.get('internal_api')} {lib.get('version')}"
                    + (f" ({arch})" if arch else "") + f" [{name}]")
    return "unknown BLAS"


def measure_blas_peak(threads: int, size: int, samples: int) -> dict:
    """float32 size^3 matmul through numpy's BLAS: median and best GFLOP/s."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    c = np.empty_like(a)
    np.matmul(a, b, out=c)  # warm-up
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        times.append(time.perf_counter() - t0)
    flop = 2.0 * size**3
    return {
        "size": size,
        "median_gflops": flop / statistics.median(times) / 1e9,
        "best_gflops": flop / min(times) / 1e9,
        "blas": _blas_info(),
    }


def _busy_seconds() -> float | None:
    """CPU seconds all processes have been busy since boot (/proc/stat), or None."""
    try:
        with open("/proc/stat") as fh:
            fields = fh.readline().split()[1:]
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal ...
    vals = [int(v) for v in fields]
    busy = sum(vals[:3]) + sum(vals[5:8])
    return busy / os.sysconf("SC_CLK_TCK")


class LoadMeter:
    """How much of the CPUs *other* processes used while we measured.

    The machine is shared: a figure taken while something else ran is not
    comparable. (busy CPU seconds of the whole machine - our own CPU seconds)
    / (wall seconds x CPUs), from /proc/stat; None where that is unavailable.
    """

    def __init__(self) -> None:
        self.busy0 = _busy_seconds()
        self.own0 = time.process_time()
        self.wall0 = time.perf_counter()

    def other_fraction(self) -> float | None:
        busy = _busy_seconds()
        if busy is None or self.busy0 is None:
            return None
        wall = time.perf_counter() - self.wall0
        own = time.process_time() - self.own0
        if wall <= 0:
            return None
        return max(0.0, (busy - self.busy0 - own) / (wall * (os.cpu_count() or 1)))


def _versions() -> dict:
    out = {"python": platform.python_version(), "numpy": np.__version__}
    try:
        import cnnfast

        out["cnnfast"] = getattr(cnnfast, "__version__", "?")
        for name in ("simd_level", "openmp_enabled"):
            fn = getattr(cnnfast, name, None)
            if fn is not None:
                out[f"cnnfast.{name}"] = fn()
    except Exception as exc:  # a broken build still lets the rest be measured
        out["cnnfast"] = f"import failed: {exc}"
    try:
        import threadpoolctl

        out["threadpoolctl"] = threadpoolctl.__version__
    except ImportError:
        pass
    torch, _ = torch_or_reason()
    if torch is not None:
        out["torch"] = torch.__version__
    return out


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------


@dataclass
class Config:
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


@dataclass
class Row:
    impl: str
    label: str
    note: str = ""
    batch: int = 0  # batch that was timed
    scale: float = 1.0  # full batch / timed batch (reference rows)
    samples_ms: list = field(default_factory=list)
    calls_per_sample: int = 1
    max_abs_err: float | None = None
    skipped: str | None = None

    @property
    def median_ms(self) -> float | None:
        if not self.samples_ms:
            return None
        return statistics.median(self.samples_ms) * self.scale


def _time_round_robin(entries: list[tuple[Row, Case, int]], cfg: Config) -> None:
    """Warm up, calibrate, then time every case in rotated round-robin order.

    entries: (row, case, max samples). A sample = mean of k back-to-back calls,
    k chosen so that a sample lasts at least cfg.min_time. Scaled rows (the
    naive reference on a small batch) get no warm-up and k = 1: they are slow,
    and pure Python loops have nothing to warm up. A call slower than
    cfg.slow_call is its own warm-up and gets at most cfg.slow_repeats samples.
    """
    live = []
    for row, case, max_samples in entries:
        if row.scale != 1.0:
            live.append((row, case, max_samples, 1))
            continue
        t0 = time.perf_counter()
        case.fn()
        t1 = time.perf_counter() - t0
        if case.uses_blas:
            time.sleep(cfg.settle)
        if t1 >= cfg.slow_call:
            max_samples = min(max_samples, cfg.slow_repeats)
        else:
            for _ in range(cfg.warmup - 1):
                case.fn()
                if case.uses_blas:
                    time.sleep(cfg.settle)
        k = max(1, math.ceil(cfg.min_time / t1))
        row.calls_per_sample = k
        live.append((row, case, max_samples, k))
    rounds = max((m for _, _, m, _ in live), default=0)
    for r in range(rounds):
        shift = r % max(len(live), 1)
        for row, case, max_samples, k in live[shift:] + live[:shift]:
            if len(row.samples_ms) >= max_samples:
                continue
            t0 = time.perf_counter()
            for _ in range(k):
                case.fn()
            row.samples_ms.append((time.perf_counter() - t0) / k * 1e3)
            if case.uses_blas:
                time.sleep(cfg.settle)


def _max_err(result, case: Case, ref64: np.ndarray) -> float:
    got = case.canon(result) if case.canon else np.asarray(result)
    got = np.asarray(got, dtype=np.float64)
    if got.shape != ref64.shape:
        raise ValueError(f"shape {got.shape} != reference {ref64.shape}")
    return float(np.max(np.abs(got - ref64))) if got.size else 0.0


# ---------------------------------------------------------------------------
# Tasks (one table each)
# ---------------------------------------------------------------------------


@dataclass
class Task:
    key: str  # e.g. "conv-b-fwd", "pool-p28-max-bwd", "model-train"
    kind: str  # conv | pool | model
    title: str
    flops: float | None = None
    nbytes: int | None = None
    rows: list = field(default_factory=list)
    batch: int = 0
    elapsed_s: float = 0.0
    other_load: float | None = None


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _run_conv_task(wl: ConvWorkload, direction: str, cfg: Config, ref_cache: dict) -> Task:
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
                ref_cache[key] = _conv_reference64_bwd(wl, small, padding)
        got = ref_cache[key]
        return got if kind == "fwd" else got[0 if direction == "bwd-input" else 1]

    entries = []
    for impl in CONV_IMPLS:
        row = Row(impl, IMPL_LABELS[impl])
        task.rows.append(row)
        use_small = impl == "reference"
        try:
            case = conv_case(impl, wl, direction, small if use_small else full)
            err_case = case if use_small else conv_case(impl, wl, direction, small)
        except Unavailable as exc:
            row.skipped = str(exc)
            continue
        row.label, row.note = case.label, case.note
        row.batch = wl.n_small if use_small else wl.n
        row.scale = wl.n / row.batch
        try:
            out, secs = _timed(err_case.fn)
            if use_small:
                row.samples_ms.append(secs * 1e3)  # the naive loops: this call is a sample
            row.max_abs_err = _max_err(out, err_case,
                                       ref64("same" if err_case.ref_key is None
                                             else err_case.ref_key))
        except Exception as exc:  # report a failing implementation, keep benchmarking
            row.skipped = f"failed: {type(exc).__name__}: {exc}"
            continue
        if err_case.uses_blas:
            time.sleep(cfg.settle)
        entries.append((row, case, cfg.ref_repeats if use_small else cfg.repeats))
    _time_round_robin(entries, cfg)
    return task


def _run_pool_task(wl: PoolWorkload, mode: str, direction: str, cfg: Config,
                   pool: ThreadPoolExecutor) -> Task:
    nbytes = wl.nbytes(mode, direction)
    task = Task(f"pool-{wl.key}-{mode}-{direction}", "pool",
                f"{mode} pool {wl.title} -- {direction}", nbytes=nbytes)
    full = pool_inputs(wl)
    small = pool_inputs(wl, wl.n_small)
    ref64 = pool_reference64(mode, direction, small, wl.pool)
    entries = []
    for impl in POOL_IMPLS:
        row = Row(impl, IMPL_LABELS[impl])
        task.rows.append(row)
        try:
            use_small = impl == "reference"
            case = pool_case(impl, wl, mode, direction, small if use_small else full)
            err_case = case if use_small else pool_case(impl, wl, mode, direction, small)
        except Unavailable as exc:
            row.skipped = str(exc)
            continue
        row.label, row.note = case.label, case.note
        row.batch = wl.n_small if use_small else wl.n
        row.scale = wl.n / row.batch
        try:
            out, secs = _timed(err_case.fn)
            if use_small:
                row.samples_ms.append(secs * 1e3)
            row.max_abs_err = _max_err(out, err_case, ref64)
        except Exception as exc:
            row.skipped = f"failed: {type(exc).__name__}: {exc}"
            continue
        entries.append((row, case, cfg.ref_repeats if use_small else cfg.repeats))
    copy = copy_case(nbytes, cfg.threads, pool)
    row = Row("copy", copy.label, note=copy.note, batch=wl.n)
    task.rows.append(row)
    entries.append((row, copy, cfg.repeats))
    _time_round_robin(entries, cfg)
    return task


def _run_model_task(wl: ModelWorkload, cfg: Config) -> Task:
    task = Task(f"model-{wl.key}", "model", wl.title, flops=wl.flops(), batch=wl.batch)
    entries = []
    for impl in MODEL_IMPLS:
        row = Row(impl, IMPL_LABELS[impl], batch=wl.batch)
        task.rows.append(row)
        try:
            case = model_case(impl, wl)
            case.fn()  # fails here rather than inside the timing loop
        except Unavailable as exc:
            row.skipped = str(exc)
            continue
        except Exception as exc:
            row.skipped = f"failed: {type(exc).__name__}: {exc}"
            continue
        row.note = case.note
        entries.append((row, case, cfg.model_repeats if wl.key == "train" else cfg.repeats))
    _time_round_robin(entries, cfg)
    return task


# ---------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------


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


def task_summary(task: Task, peak: float | None, nominal: float | None) -> list[dict]:
    """Derived numbers of every row (what the table prints and the JSON stores)."""
    med = {r.impl: r.median_ms for r in task.rows if r.median_ms is not None}
    torch_best = min((med[i] for i in ("torch", "torch-cl") if i in med), default=None)
    torch_row = next((r for r in task.rows if r.impl in ("torch", "torch-cl")
                      and r.median_ms is not None and r.median_ms == torch_best), None)
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
        if ms is not None:
            if task.flops:
                d["gflops"] = task.flops / (ms * 1e-3) / 1e9
                d["pct_peak"] = None if not peak else 100 * d["gflops"] / peak
                d["pct_nominal"] = None if not nominal else 100 * d["gflops"] / nominal
            if task.nbytes:
                d["gbytes_per_s"] = task.nbytes / (ms * 1e-3) / 1e9
                d["x_copy"] = _ratio(ms, med.get("copy"))
            if task.kind == "model":
                d["images_per_s"] = task.batch / (ms * 1e-3)
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
        out.append(d)
    return out


def _fmt_iqr(q: tuple[float, float] | None) -> str:
    return "" if q is None else f"({q[0]:.2f}-{q[1]:.2f})"


def format_task(task: Task, summary: list[dict]) -> str:
    load = "" if task.other_load is None else f" (other load {100 * task.other_load:.0f}%)"
    lines = [f"== {task.title} =={load}"]
    if task.kind == "conv":
        head = (f"{'implementation':<22}{'median ms':>11}{'GFLOP/s':>9}{'%peak':>7}{'%nom':>6}"
                f"{'x ref':>9}{'x numpy':>9}{'torch/x':>9}{'(IQR)':>12}{'max|err|':>10}  note")
    elif task.kind == "pool":
        head = (f"{'implementation':<22}{'median ms':>11}{'GB/s':>8}{'x copy':>8}"
                f"{'x ref':>9}{'x numpy':>9}{'torch/x':>9}{'(IQR)':>12}{'max|err|':>10}  note")
    else:
        head = (f"{'implementation':<22}{'median ms':>11}{'img/s':>9}{'GFLOP/s':>9}{'%peak':>7}"
                f"{'%nom':>6}{'torch/x':>9}{'(IQR)':>12}  note")
    lines.append(head)
    for r, d in zip(task.rows, summary):
        if r.skipped:
            lines.append(f"{r.label:<22}  skipped: {r.skipped}")
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
                         f"{common}  {note}")
        elif task.kind == "pool":
            lines.append(f"{r.label:<22}{ms:>11}{_fmt(d.get('gbytes_per_s'), '.1f'):>8}"
                         f"{_fmt(d.get('x_copy'), '.2f'):>8}{common}  {note}")
        else:
            lines.append(f"{r.label:<22}{ms:>11}{_fmt(d.get('images_per_s'), '.0f'):>9}"
                         f"{_fmt(d.get('gflops'), '.1f'):>9}{_fmt(d.get('pct_peak'), '.0f'):>7}"
                         f"{_fmt(d.get('pct_nominal'), '.0f'):>6}"
                         f"{_fmt(d.get('torch_best_over_this'), '.2f'):>9}{iqr:>12}  {note}")
    return "\n".join(lines)


def write_plot(path: str, tasks: list[Task], summaries: list[list[dict]]) -> str:
    """PNG bar chart: cnnfast's speed-up over NumPy and its ratio to PyTorch's best.

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


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def _select(spec: str | None) -> list[str]:
    """Expand --workloads (a,b,c,d,e, conv, pool, p28, p14, train, infer, model, all)."""
    all_keys = [*CONV_WORKLOADS, *POOL_WORKLOADS, *MODEL_WORKLOADS]
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
                   help="comma list of a,b,c,d,e,p28,p14,train,infer or conv,pool,model "
                   "(default: all)")
    p.add_argument("--repeats", type=int_in(1), default=None,
                   help="samples per implementation")
    p.add_argument("--settle", type=float, default=None,
                   help="seconds to pause after each sample that called numpy's BLAS, so its "
                   "spinning threads stop before the next implementation (default 0.2)")
    p.add_argument("--tiny", action="store_true",
                   help="tiny shapes, for tests and CI: checks the machinery and the errors; "
                   "the timings mean nothing")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    return p


def _configure(args) -> Config:
    if args.tiny:
        cfg = Config(repeats=2, warmup=1, min_time=0.0, ref_repeats=1, settle=0.0,
                     model_repeats=2, peak_size=256, peak_samples=2, tiny=True)
    elif args.quick:
        cfg = Config(repeats=3, warmup=1, min_time=0.004, ref_repeats=1, slow_repeats=2,
                     model_repeats=5, peak_size=2048, peak_samples=3, quick=True)
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
        keys = _select(args.workloads)
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
    global _TORCH_OFF
    _TORCH_OFF = "--no-torch given" if args.no_torch else None
    try:
        return _main(args, cfg, keys)
    finally:
        _TORCH_OFF = None


def _main(args, cfg: Config, keys: list[str]) -> int:
    try:
        import cnnfast
    except ImportError as exc:
        print(f"cnnfast bench: cannot import cnnfast: {exc}", file=sys.stderr)
        return 1
    prev_threads = cnnfast.get_num_threads()
    threads = args.threads or prev_threads
    cfg.threads = threads
    cnnfast.set_num_threads(threads)
    torch, torch_reason = torch_or_reason()
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
            return _run(args, cfg, keys, torch_reason, started)
        finally:
            if limits is not None:
                limits.restore_original_limits()
    finally:
        cnnfast.set_num_threads(prev_threads)
        if prev_torch_threads is not None:
            torch.set_num_threads(prev_torch_threads)


def _run(args, cfg: Config, keys: list[str], torch_reason, started: float) -> int:
    cpu = _cpuinfo()
    versions = _versions()
    mode = " --tiny (timings meaningless)" if cfg.tiny else " --quick" if cfg.quick else ""
    print(f"cnnfast bench{mode}: "
          f"{datetime.datetime.now().isoformat(timespec='seconds')}")
    print(f"CPU: {cpu['model']} ({os.cpu_count()} logical CPUs); threads: {cfg.threads} "
          "(cnnfast, torch, numpy BLAS)")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    if torch_reason:
        print(f"PyTorch columns skipped: {torch_reason}")
    peak = measure_blas_peak(cfg.threads, cfg.peak_size, cfg.peak_samples)
    time.sleep(cfg.settle)  # let the BLAS threads stop spinning before anything else runs
    nominal = nominal_peak(cfg.threads, cpu)
    print(f"measured peak: {peak['median_gflops']:.1f} GFLOP/s median "
          f"(best {peak['best_gflops']:.1f}), float32 {peak['size']}^3 matmul via {peak['blas']}")
    if nominal:
        print(f"nominal peak: {nominal[0]:.1f} GFLOP/s = {nominal[1]}")
    print("columns: %peak = of the measured peak, %nom = of the nominal; x ref / x numpy = "
          "speed-up over them; torch/x = PyTorch's best ms / this ms (>1: this is faster), "
          "(IQR) = the quartiles of that ratio taken round by round (a range holding 1.0: "
          "at parity in this run); max|err| vs the float64 reference on a small batch\n")
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
        summary = task_summary(task, peak_g, nom_g)
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
                    emit(_run_conv_task, conv_w[key], direction, cfg, ref_cache)
            elif key in pool_w:
                for mode in POOL_MODES:
                    for direction in POOL_DIRECTIONS:
                        emit(_run_pool_task, pool_w[key], mode, direction, cfg, pool)
            else:
                emit(_run_model_task, model_w[key], cfg)
    elapsed = time.perf_counter() - started
    other = run_meter.other_fraction()
    print(f"total time {elapsed:.1f} s"
          + ("" if other is None else
             f"; other processes used {100 * other:.0f}% of the CPUs meanwhile"))
    if args.json:
        doc = {
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "command": " ".join(["cnnfast bench", *args.argv]),
            "cpu_model": cpu["model"],
            "logical_cpus": os.cpu_count(),
            "threads": cfg.threads,
            "quick": cfg.quick,
            "tiny": cfg.tiny,
            "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
            "versions": versions,
            "torch_skipped": torch_reason,
            "peak": {**peak, "nominal_gflops": nom_g,
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


if __name__ == "__main__":
    raise SystemExit(main())
