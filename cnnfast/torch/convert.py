"""``convert(model)``: run a PyTorch model's convolutions and poolings on cnnfast.

Each ``torch.nn.Conv2d`` / ``MaxPool2d`` / ``AvgPool2d`` (exactly those classes:
subclasses may override ``forward``) that cnnfast can run is replaced, in its parent,
by the ``cnnfast.torch.nn`` module of the same name sharing its state: the same
Parameter objects, buffers, hooks and training flag, so an optimizer built before
the conversion keeps working. Each one it cannot run is kept and named in a warning.

By default (``fuse=True``) each Conv2d - ReLU - MaxPool2d run (unpadded pooling, no
hooks on any of the three) inside an ``nn.Sequential`` becomes one
``Conv2dReLUMaxPool2d`` (the Conv2d's state, so the same ``state_dict`` keys)
followed by two ``nn.Identity``: the convolution's output and its gradient are then
never stored whole, and the ReLU costs no pass of its own. The values and gradients
are those of the three layers (the ReLU and the pooling hold no state); what changes
is the module tree a reader sees. ``fuse=False`` swaps layer for layer.
"""

from __future__ import annotations

import warnings
from typing import Callable

import torch

from . import nn as cnn

_SWAPS: dict[type, tuple[type, Callable[[torch.nn.Module], str | None]]] = {
    torch.nn.Conv2d: (cnn.Conv2d, cnn.conv2d_unsupported),
    torch.nn.MaxPool2d: (cnn.MaxPool2d, cnn.max_pool2d_unsupported),
    torch.nn.AvgPool2d: (cnn.AvgPool2d, cnn.avg_pool2d_unsupported),
}


def _tensor_problem(m: torch.nn.Module) -> str | None:
    """Parameters cnnfast cannot compute with (other dtypes, other devices)."""
    for name, t in list(m.named_parameters(recurse=False)) + list(m.named_buffers(recurse=False)):
        if t.dtype not in (torch.float32, torch.float64):
            return f"{name} is {t.dtype} (cnnfast computes in float32 / float64)"
        if t.device.type != "cpu":
            return f"{name} is on {t.device} (cnnfast runs on the CPU)"
    return None


def _swapped(m: torch.nn.Module, cls: type) -> torch.nn.Module:
    """A ``cls`` instance sharing all of m's state (no re-initialisation)."""
    new = cls.__new__(cls)
    new.__dict__.update(m.__dict__)
    return new


def _hooked(m: torch.nn.Module) -> bool:
    return bool(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks)


def _fuse(seq: torch.nn.Sequential) -> None:
    """Conv2d - ReLU - MaxPool2d runs of seq made one Conv2dReLUMaxPool2d each."""
    names = list(seq._modules)
    i = 0
    while i + 2 < len(names):
        conv, relu, pool = (seq._modules[n] for n in names[i:i + 3])
        if (type(conv) is cnn.Conv2d and type(relu) is torch.nn.ReLU
                and type(pool) is cnn.MaxPool2d and cnn.F._pair(pool.padding, "padding", 0)
                == (0, 0) and not _hooked(conv) and not _hooked(relu) and not _hooked(pool)):
            fused = _swapped(conv, cnn.Conv2dReLUMaxPool2d)
            fused.pool_kernel_size = pool.kernel_size
            fused.pool_stride = pool.stride
            seq._modules[names[i]] = fused
            seq._modules[names[i + 1]] = torch.nn.Identity()
            seq._modules[names[i + 2]] = torch.nn.Identity()
            i += 3
        else:
            i += 1


def convert(model: torch.nn.Module, fuse: bool = True) -> torch.nn.Module:
    """Swap ``model``'s supported layers for cnnfast's, in place; return ``model``.

    Warns once per layer kept as PyTorch, naming it and the reason (``groups``,
    ``padding_mode``, ``ceil_mode``, ``return_indices``, pooling ``dilation``, a
    dtype or device cnnfast does not compute on). The model itself, when it is a
    supported layer, is converted and returned as the new module. With ``fuse``
    (the default), Conv2d - ReLU - MaxPool2d runs of ``nn.Sequential`` containers
    with no hooks become one fused module and two ``nn.Identity`` (see the
    module's docstring): the same values, gradients and ``state_dict``, in about
    half the time of the three layers; ``fuse=False`` swaps layer for layer.
    """
    done: dict[int, torch.nn.Module] = {}

    def swap(name: str, m: torch.nn.Module) -> torch.nn.Module:
        if id(m) in done:  # a module shared by several parents: converted once
            return done[id(m)]
        entry = _SWAPS.get(type(m))
        if entry is None:
            return m
        cls, why = entry
        reason = why(m) or _tensor_problem(m)
        if reason is not None:
            warnings.warn(f"cnnfast.torch.convert: kept {name or 'the model'} "
                          f"({type(m).__name__}) as PyTorch: {reason}", UserWarning,
                          stacklevel=3)
            done[id(m)] = m
            return m
        done[id(m)] = new = _swapped(m, cls)
        return new

    def walk(prefix: str, parent: torch.nn.Module) -> None:
        for child_name, child in list(parent.named_children()):
            full = f"{prefix}.{child_name}" if prefix else child_name
            new = swap(full, child)
            if new is not child:
                setattr(parent, child_name, new)
            else:
                walk(full, child)

    root = swap("", model)
    if root is model:
        walk("", model)
    if fuse:
        for m in list(root.modules()):
            if isinstance(m, torch.nn.Sequential):
                _fuse(m)
    return root
