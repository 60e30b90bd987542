"""The implementations ``cnnfast bench`` times: one *case* per workload and implementation.

A case is a ready-to-call closure over inputs laid out for its implementation --
cnnfast (channels_last and channels_first), the naive reference, the NumPy baseline and
PyTorch (NCHW and channels_last) -- plus how to bring its result to the canonical
layout for the error check. The pytest-benchmark suite in ``benchmarks/`` builds its
cases with the same functions, so both agree on what is measured.
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .._openmp_env import same_spin
from .workloads import (
    CONV_DIRECTIONS,
    CONV_IMPLS,
    IMPL_LABELS,
    MODEL_IMPLS,
    POOL_DIRECTIONS,
    POOL_IMPLS,
    POOL_MODES,
    POOL_NUMPY_LABEL,
    TORCH_BRIDGE_IMPLS,
    ConvWorkload,
    ModelWorkload,
    PoolWorkload,
)


class Unavailable(Exception):
    """An implementation that cannot run here (e.g. torch not installed); str = reason."""


@dataclass
class Case:
    """One implementation of one workload, ready to time.

    ``fn`` is the timed call (inputs already laid out for it); ``canon`` turns
    its result into the canonical layout (NHWC / HWCF numpy) for error checks.
    ``uses_blas``: it calls numpy's BLAS; ``spins``: its runtime's worker threads spin
    on after each call (ONNX Runtime's); either way the next case waits (``settles``).
    """

    impl: str
    label: str
    fn: Callable[[], Any]
    canon: Callable[[Any], np.ndarray] | None = None
    uses_blas: bool = False
    note: str = ""
    ref_key: Any = None  # which reference result to compare with (padding variant)
    spins: bool = False

    @property
    def settles(self) -> bool:
        """Whether a pause must follow each call, for spinning threads to stop."""
        return self.uses_blas or self.spins


# ---------------------------------------------------------------------------
# Optional torch
# ---------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _import_torch() -> tuple[Any, str | None]:
    """(torch, None) or (None, why not), tried once per process: a failed import of a
    large package is slow and fails the same way each time."""
    try:
        with same_spin():  # a libgomp of torch's own spins as cnnfast's (_openmp_env)
            import torch
    except Exception as exc:  # ImportError, or a broken install
        return None, f"torch not importable ({type(exc).__name__}: {exc})"
    return torch, None


def torch_or_reason(skip: str | None = None) -> tuple[Any, str | None]:
    """(torch module, None) or (None, why it is not usable).

    ``skip``: a reason to leave torch out (``cnnfast bench --no-torch`` passes one); the
    environment variable ``CNNFAST_BENCH_NO_TORCH`` does the same for any caller.
    """
    if skip:
        return None, skip
    if os.environ.get("CNNFAST_BENCH_NO_TORCH"):
        return None, "CNNFAST_BENCH_NO_TORCH is set"
    return _import_torch()


def _need_torch():
    torch, reason = torch_or_reason()
    if torch is None:
        raise Unavailable(reason)
    return torch


def onnxruntime_or_reason() -> tuple[Any, str | None]:
    """(onnxruntime module, None) or (None, why it is not usable)."""
    try:
        import onnxruntime
    except Exception as exc:  # ImportError, or a broken install
        return None, f"onnxruntime not importable ({type(exc).__name__}: {exc})"
    return onnxruntime, None


def onnx_session(ort: Any, torch: Any, model: Any, tx: Any, threads: int) -> Any:
    """An ONNX Runtime session (CPUExecutionProvider, ``threads`` intra-op threads) of
    the torch model, exported with the TorchScript-based exporter to a temporary file;
    its input is named "x" and has ``tx``'s shape."""
    fd, path = tempfile.mkstemp(suffix=".onnx")
    os.close(fd)
    try:
        # The TorchScript-based exporter needs neither onnxscript nor torch.export and
        # handles this plain Sequential; torch warns that it is the legacy one.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(model, (tx,), path, input_names=["x"], output_names=["y"],
                              dynamo=False)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    finally:
        os.unlink(path)


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
        "x": aligned_copy(rng.standard_normal((n, wl.h, wl.w, wl.c), dtype=np.float32)),
        "kernel": aligned_copy(rng.standard_normal((wl.k, wl.k, wl.c, wl.f), dtype=np.float32)
                           * scale),
        "dy": aligned_copy(rng.standard_normal((n, oh, ow, wl.f), dtype=np.float32)),
    }


def aligned_copy(a: np.ndarray) -> np.ndarray:
    """a copied into 64-byte aligned memory, as a framework's allocator gives (torch's
    does): every implementation reads the same arrays (torch channels_last in place)."""
    from ..ops import empty_aligned

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
    return {"x": aligned_copy(x),
            "dy": aligned_copy(rng.standard_normal(wl.out_shape(n), dtype=np.float32))}


def to_nchw(a: np.ndarray) -> np.ndarray:
    """NHWC -> NCHW, contiguous."""
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2))


def _fchw(k: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(k.transpose(3, 2, 0, 1))


def from_nchw(a: Any) -> np.ndarray:
    """NCHW (array or CPU tensor) -> an NHWC view."""
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
            fmt, xx, kk, gg = "channels_first", to_nchw(x), _fchw(k), to_nchw(dy)
            back, kback = from_nchw, _from_fchw
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
        tx = torch.from_numpy(to_nchw(x)).contiguous(memory_format=fmt)
        tw = torch.from_numpy(_fchw(k)).contiguous(memory_format=fmt)
        tg = torch.from_numpy(to_nchw(dy)).contiguous(memory_format=fmt)
        ref_key, pad = wl.torch_padding()
        ref_key = None if ref_key == "same" else ref_key
        stride, dil = [s, s], [1, 1]
        conv_bwd = torch.ops.aten.convolution_backward
        if direction == "fwd":
            conv2d = torch.nn.functional.conv2d

            def run_fwd():
                with torch.no_grad():
                    return conv2d(tx, tw, None, s, pad)

            return Case(impl, label, run_fwd, lambda t: from_nchw(t.numpy()), ref_key=ref_key)
        mask = [True, False, False] if direction == "bwd-input" else [False, True, False]
        which = 0 if direction == "bwd-input" else 1
        canon = from_nchw if which == 0 else _from_fchw
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


def conv_reference64_bwd(wl: ConvWorkload, inp: dict, padding: Any) -> tuple:
    """(dx, dkernel) of the float64 reference on inputs ``inp``: one backward serves
    both gradient directions."""
    from cnnfast import reference as ref

    x = inp["x"].astype(np.float64)
    k = inp["kernel"].astype(np.float64)
    dy = inp["dy"].astype(np.float64)
    dx, dk, _ = ref.conv2d_backward(dy, x, k, strides=wl.stride, padding=padding)
    return dx, dk


def conv_reference64(wl: ConvWorkload, direction: str, inp: dict,
                     padding: Any) -> np.ndarray:
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
            fmt, xx, gg, back = "channels_first", to_nchw(x), to_nchw(dy), from_nchw
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
        tx = torch.from_numpy(to_nchw(x)).contiguous(memory_format=fmt)
        tg = torch.from_numpy(to_nchw(dy)).contiguous(memory_format=fmt)
        canon = lambda t: from_nchw(t.numpy())  # noqa: E731
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
    """The float64 reference pooling result (forward or input gradient) on ``inp``."""
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


def fma_case(iters: int) -> tuple[Case, float]:
    """(the registers-only FMA loop of ``iters`` steps on the current thread team, the
    FLOPs of one call): the arithmetic ceiling of the SIMD level in use."""
    from .._config import fma_ceiling, fma_loop_shape, simd_level

    flops = fma_ceiling(iters)
    lanes, chains = fma_loop_shape()
    return Case("fma", IMPL_LABELS["fma"], lambda: fma_ceiling(iters),
                note=f"{simd_level()}, {chains} chains x {lanes} lanes, {iters} steps"), flops


# ---------------------------------------------------------------------------
# Model cases (the tutorial CNN)
# ---------------------------------------------------------------------------


def cnnfast_tutorial_model() -> Any:
    """The tutorial CNN, built as ``cnnfast train`` builds it."""
    from cnnfast.tutorial import build_tutorial_model

    model = build_tutorial_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def torch_tutorial_model(torch: Any, channels_last: bool) -> Any:
    """The tutorial CNN in ``torch.nn`` (NCHW, or channels_last weights), no softmax:
    ``cross_entropy`` takes logits."""
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10),
    )
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def model_case(impl: str, wl: ModelWorkload, batch: int | None = None, seed: int = 0,
               threads: int = 1) -> Case:
    """A training step (``wl.key == 'train'``) or batched inference of the tutorial CNN.

    cnnfast: one ``model.train_on_batch(x, y)`` / ``model.predict(x, batch_size=batch)``.
    torch: zero_grad, forward, cross_entropy, backward, Adam step / eval forward
    under inference_mode. torch-bridge: the torch step of the NCHW model after
    ``cnnfast.torch.convert(model)`` (convolutions and poolings on cnnfast, each
    Conv2d-ReLU-MaxPool2d run fused); torch-bridge-unfused: after
    ``convert(model, fuse=False)``. onnxruntime (inference
    only): the NCHW torch model exported to ONNX, run by ONNX Runtime on ``threads``
    intra-op threads. Same architecture, random data, random labels.
    """
    n = wl.batch if batch is None else batch
    rng = np.random.default_rng(seed)
    x = rng.random((n, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, n)
    label = IMPL_LABELS[impl]
    if impl == "cnnfast":
        model = cnnfast_tutorial_model()
        # the model makes no BLAS call (Dense runs on cnnfast.matmul): no settle pause
        if wl.training:
            return Case(impl, label, lambda: model.train_on_batch(x, y),
                        note="train_on_batch (Adam, dropout, Python layer API)")
        return Case(impl, label, lambda: model.predict(x, batch_size=n, verbose=0),
                    note="predict")
    if impl == "onnxruntime":
        return _onnxruntime_case(wl, x, seed, threads)
    if impl in ("torch", "torch-cl", "torch-bridge", "torch-bridge-unfused"):
        torch = _need_torch()
        torch.manual_seed(seed)
        cl = impl == "torch-cl"
        model = torch_tutorial_model(torch, cl)
        note = "Adam, cross_entropy"
        if impl.startswith("torch-bridge"):
            try:
                import cnnfast.torch as cnnfast_torch
            except ImportError as exc:
                raise Unavailable(str(exc)) from None
            fuse = impl == "torch-bridge"
            cnnfast_torch.convert(model, fuse=fuse)
            note = f"convert(model{'' if fuse else ', fuse=False'}); Adam, cross_entropy"
        tx = torch.from_numpy(to_nchw(x))
        if cl:
            tx = tx.contiguous(memory_format=torch.channels_last)
        ty = torch.from_numpy(y)
        if wl.training:
            model.train()
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            ce = torch.nn.functional.cross_entropy

            def step():
                opt.zero_grad(set_to_none=True)
                loss = ce(model(tx), ty)
                loss.backward()
                opt.step()
                return loss

            return Case(impl, label, step, note=note)
        model.eval()

        def infer():
            with torch.inference_mode():
                return model(tx)

        return Case(impl, label, infer, note="eval, inference_mode")
    raise ValueError(f"unknown model implementation {impl!r}; choose from "
                     f"{MODEL_IMPLS + TORCH_BRIDGE_IMPLS[:2] + ('onnxruntime',)}")


def _onnxruntime_case(wl: ModelWorkload, x: np.ndarray, seed: int, threads: int) -> Case:
    """Batched inference of the tutorial CNN by ONNX Runtime: the torch model (NCHW,
    seeded as the torch rows) exported with ``dynamo=False``; its output is checked
    against torch's before it is timed."""
    if wl.training:
        raise Unavailable("ONNX Runtime runs inference only")
    torch, reason = torch_or_reason()
    if torch is None:
        raise Unavailable(f"needs torch to export the model ({reason})")
    ort, reason = onnxruntime_or_reason()
    if ort is None:
        raise Unavailable(reason)
    torch.manual_seed(seed)
    model = torch_tutorial_model(torch, channels_last=False).eval()
    tx = torch.from_numpy(to_nchw(x))
    sess = onnx_session(ort, torch, model, tx, threads)
    feed = {"x": tx.numpy()}
    with torch.no_grad():
        want = model(tx).numpy()
    err = float(np.max(np.abs(sess.run(None, feed)[0] - want)))
    if not err < 1e-3:
        raise ValueError(f"ONNX Runtime's output differs from torch's by {err:.2e}")
    return Case("onnxruntime", IMPL_LABELS["onnxruntime"], lambda: sess.run(None, feed)[0],
                spins=True,
                note=f"torch model exported (dynamo=False), {threads} intra-op threads, "
                     f"max|err| vs torch {err:.1e}")
