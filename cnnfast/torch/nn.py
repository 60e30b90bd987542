"""``torch.nn`` modules on cnnfast's kernels: Conv2d, MaxPool2d, AvgPool2d, MinPool2d.

Conv2d, MaxPool2d and AvgPool2d subclass their PyTorch namesakes: same constructor
arguments, default initialisation, ``state_dict`` keys (``weight``, ``bias``) and
``repr``; only ``forward`` changes, to the functions of ``cnnfast.torch.functional``.
Options those functions do not implement are refused at construction
(``ValueError`` naming the option), so a model never falls back silently.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from . import functional as F


def conv2d_unsupported(m: torch.nn.Conv2d) -> str | None:
    """Why cnnfast cannot run this Conv2d, or None when it can."""
    if m.groups != 1:
        return f"groups={m.groups} (cnnfast implements groups=1)"
    if m.padding_mode != "zeros":
        return f"padding_mode={m.padding_mode!r} (cnnfast pads with zeros)"
    return None


def max_pool2d_unsupported(m: torch.nn.MaxPool2d) -> str | None:
    """Why cnnfast cannot run this MaxPool2d, or None when it can."""
    if F._pair(m.dilation, "dilation", 1) != (1, 1):
        return f"dilation={m.dilation} (cnnfast pools with dilation 1)"
    if m.ceil_mode:
        return "ceil_mode=True (cnnfast implements ceil_mode=False)"
    if m.return_indices:
        return "return_indices=True (the module would return a tuple; use " \
            "cnnfast.torch.max_pool2d(..., return_indices=True))"
    return None


def avg_pool2d_unsupported(m: torch.nn.AvgPool2d) -> str | None:
    """Why cnnfast cannot run this AvgPool2d, or None when it can."""
    if m.ceil_mode:
        return "ceil_mode=True (cnnfast implements ceil_mode=False)"
    return None


def _refuse(reason: str | None, cls: str) -> None:
    if reason is not None:
        raise ValueError(f"cnnfast.torch.nn.{cls}: {reason}")


class Conv2d(torch.nn.Conv2d):
    """``torch.nn.Conv2d`` (groups=1, zero padding) whose forward runs on cnnfast."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _refuse(conv2d_unsupported(self), "Conv2d")

    def forward(self, input: Tensor) -> Tensor:
        return F.conv2d(input, self.weight, self.bias, self.stride, self.padding,
                        self.dilation, self.groups)


class MaxPool2d(torch.nn.MaxPool2d):
    """``torch.nn.MaxPool2d`` (dilation 1, floor mode) whose forward runs on cnnfast."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _refuse(max_pool2d_unsupported(self), "MaxPool2d")

    def forward(self, input: Tensor) -> Tensor:
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding)


class AvgPool2d(torch.nn.AvgPool2d):
    """``torch.nn.AvgPool2d`` (floor mode) whose forward runs on cnnfast;
    ``count_include_pad`` and ``divisor_override`` as in PyTorch."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _refuse(avg_pool2d_unsupported(self), "AvgPool2d")

    def forward(self, input: Tensor) -> Tensor:
        return F.avg_pool2d(input, self.kernel_size, self.stride, self.padding,
                            count_include_pad=self.count_include_pad,
                            divisor_override=self.divisor_override)


class MinPool2d(torch.nn.Module):
    """Min pooling with ``torch.nn.MaxPool2d``'s arguments (dilation 1, floor mode, no
    indices): PyTorch has no min pooling layer."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 dilation: Any = 1, return_indices: bool = False,
                 ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode
        _refuse(max_pool2d_unsupported(self), "MinPool2d")

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"

    def forward(self, input: Tensor) -> Tensor:
        return F.min_pool2d(input, self.kernel_size, self.stride, self.padding)


class Conv2dReLUMaxPool2d(Conv2d):
    """A Conv2d followed by ReLU and unpadded max pooling, run as one cnnfast pass
    (``convert(model, fuse=True)`` makes these). Its parameters and ``state_dict`` are
    the Conv2d's; ``pool_kernel_size`` / ``pool_stride`` are the pooling's."""

    pool_kernel_size: Any = 2
    pool_stride: Any = None

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, relu, max_pool(kernel_size={self.pool_kernel_size}, "
                f"stride={self.pool_stride})")

    def forward(self, input: Tensor) -> Tensor:
        x = input.unsqueeze(0) if input.dim() == 3 else input
        y = F.conv2d_relu_max_pool2d(x, self.weight, self.bias, self.stride, self.padding,
                                     self.dilation, self.pool_kernel_size, self.pool_stride)
        return y.squeeze(0) if input.dim() == 3 else y


__all__ = ["Conv2d", "MaxPool2d", "AvgPool2d", "MinPool2d", "Conv2dReLUMaxPool2d"]
