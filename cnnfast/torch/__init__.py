"""PyTorch front end of cnnfast: torch.nn.functional-style functions, nn modules and a
converter, all backed by cnnfast's CPU kernels.

``cnnfast.torch.conv2d`` / ``max_pool2d`` / ``avg_pool2d`` / ``min_pool2d`` take
PyTorch's arguments and NCHW semantics and are registered as ``torch.library`` custom
ops (``torch.ops.cnnfast.*``) with autograd formulas and fake (shape) functions, so they
work under autograd and ``torch.compile``. ``cnnfast.torch.nn`` has the matching modules
and ``cnnfast.torch.convert(model)`` swaps a model's supported layers in place.

Optional: ``import cnnfast`` never imports torch; this package needs it
(``pip install "cnnfast[torch]"``).
"""

from __future__ import annotations

from .._openmp_env import same_spin

try:
    with same_spin():  # a libgomp of torch's own spins as cnnfast's (see _openmp_env)
        import torch as _torch  # noqa: F401  (only to fail early, with the install hint)
except ImportError as exc:  # pragma: no cover - exercised in an environment without torch
    raise ImportError(
        'cnnfast.torch needs PyTorch: pip install "cnnfast[torch]" (or pip install torch)'
    ) from exc

from . import nn
from .convert import convert
from .functional import avg_pool2d, conv2d, max_pool2d, min_pool2d

__all__ = ["conv2d", "max_pool2d", "avg_pool2d", "min_pool2d", "nn", "convert"]
