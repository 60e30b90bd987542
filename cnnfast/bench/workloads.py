"""What ``cnnfast bench`` measures: the workloads, their shapes and work counts.

Convolutions a-e, the pooling shapes and the tutorial CNN's training step and inference,
each a frozen dataclass that knows its FLOPs or bytes; tiny versions of the same keys for
tests and CI; the directions, modes and implementation names every table uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _spec


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
        """The table title's description of the shape."""
        return (
            f"N={self.n} {self.h}x{self.w} {self.c}->{self.f} {self.k}x{self.k} "
            f"s{self.stride} same"
        )

    def spec(self) -> _spec.ConvSpec:
        """The resolved convolution ('same' padding at this stride, NHWC)."""
        return _spec.conv_spec((self.n, self.h, self.w, self.c), (self.k, self.k, self.c, self.f),
                               self.stride, "same")

    def out_hw(self) -> tuple[int, int]:
        """(OH, OW) of 'same' padding at this stride."""
        spec = self.spec()
        return spec.oh, spec.ow

    def flops(self, n: int | None = None) -> float:
        """2*N*OH*OW*F*C*KH*KW: the count of each direction."""
        oh, ow = self.out_hw()
        return 2.0 * (self.n if n is None else n) * oh * ow * self.f * self.c * self.k * self.k

    def same_pads(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """((top, bottom), (left, right)): TF/Keras 'same' padding, the extra row below."""
        spec = self.spec()
        return (spec.pt, spec.pb), (spec.pl, spec.pr)

    def torch_padding(self) -> tuple[Any, tuple[int, int]]:
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
        """The table title's description of the shape."""
        return f"({self.n}, {self.h}, {self.w}, {self.c}) {self.pool}x{self.pool}/{self.pool}"

    def out_shape(self, n: int | None = None) -> tuple[int, int, int, int]:
        """The pooled NHWC shape for batch n (the workload's batch by default)."""
        return _spec.pool_spec((self.n if n is None else n, self.h, self.w, self.c),
                               self.pool).out_nhwc

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
    """The tutorial CNN: a training step (batch 128) or inference (batch 1000).

    ``torch-bridge`` is the training step of the PyTorch model after
    ``cnnfast.torch.convert`` (its convolutions and poolings on cnnfast, the rest on
    PyTorch), timed against the stock PyTorch step.
    """

    key: str
    batch: int

    @property
    def training(self) -> bool:
        """Whether a sample is a training step (forward, backward, Adam update)."""
        return self.key != "infer"

    @property
    def impls(self) -> tuple[str, ...]:
        """The rows of this workload's table."""
        if self.key == "torch-bridge":
            return TORCH_BRIDGE_IMPLS
        return MODEL_IMPLS if self.training else INFER_IMPLS

    @property
    def title(self) -> str:
        """The table title's description of the shape."""
        if self.key == "torch-bridge":
            return (f"tutorial CNN training step in PyTorch, converted by cnnfast.torch.convert, "
                    f"batch {self.batch}")
        what = "training step" if self.training else "inference"
        return f"tutorial CNN {what}, batch {self.batch}"

    def flops(self, n: int | None = None) -> float:
        """Multiply-adds x 2 of n images: the forward, plus the backward for training."""
        n = self.batch if n is None else n
        conv1 = 2 * 28 * 28 * 32 * 1 * 9
        conv2 = 2 * 14 * 14 * 64 * 32 * 9
        fc1 = 2 * 3136 * 128
        fc2 = 2 * 128 * 10
        fwd = conv1 + conv2 + fc1 + fc2
        if not self.training:
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
    "torch-bridge": ModelWorkload("torch-bridge", 128),
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
    "torch-bridge": ModelWorkload("torch-bridge", 8),
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
INFER_IMPLS = (*MODEL_IMPLS, "onnxruntime")  # ONNX Runtime runs inference only
# the converted PyTorch step first, then the cnnfast layer API's and stock PyTorch's
TORCH_BRIDGE_IMPLS = ("torch-bridge", "torch-bridge-unfused", "cnnfast", "torch", "torch-cl")

IMPL_LABELS = {
    "cnnfast": "cnnfast NHWC",
    "cnnfast-nchw": "cnnfast NCHW",
    "reference": "naive reference",
    "numpy": "numpy im2col",
    "torch": "torch NCHW",
    "torch-cl": "torch channels_last",
    "copy": "copy same bytes",
    "torch-bridge": "torch + cnnfast.torch",
    "torch-bridge-unfused": "torch+cnnfast unfused",
    "onnxruntime": "onnxruntime",
    "fma": "FMA loop (registers)",
}
POOL_NUMPY_LABEL = "numpy window loop"
