"""Cross-layer fusion inside a Sequential model: a ``Conv2D`` followed by a
``MaxPooling2D`` / ``MinPooling2D`` runs as one fused kernel pair.

The forward pass computes the convolution one pooling band at a time in cache
and stores only the pooled output and the winners' indices
(``cnnfast.ops.conv2d_pool2d``): the convolution output, 4x larger for 2x2
pooling, is never written to memory. The backward pass unpools the gradient
in cache where it is used: a block of rows at a time in front of the
kernel-gradient micro-kernel, and (stride-1 convolutions) one image at a time
as the input gradient's forward convolution pads it; the full-size gradient
of the convolution output is never stored. Max/min pooling commutes with ReLU, so the
ReLU mask is taken on the pooled output (4x fewer elements).

The two layers keep their own state (the pooling layer its output and
indices, the convolution its input and gradients), so ``model.layers`` looks
exactly as without fusion, and results are bit-identical to running the two
layers one after the other.
"""

from __future__ import annotations

import numpy as np

from . import _spec
from .layers import Conv2D, MaxPooling2D, MinPooling2D
from .ops import training as _training

_MODES = {"max": 0, "min": 2}


def fusable(conv, pool) -> bool:
    """Whether the pair (conv, pool) of built layers can run fused: channels_last,
    ReLU or no activation, and the pooling the fused kernels take (the spec's rule)."""
    if not (isinstance(conv, Conv2D) and isinstance(pool, (MaxPooling2D, MinPooling2D))):
        return False
    if not (conv.built and pool.built) or conv.dtype != pool.dtype:
        return False
    if conv.data_format != "channels_last" or pool.data_format != "channels_last":
        return False
    if not (conv._fused_relu or conv.activation.name == "linear"):
        return False
    try:
        return _pair_spec(conv, pool, (1,) + conv._in_shape).fused
    except ValueError:
        return False


def _pair_spec(conv, pool, x_shape: tuple) -> _spec.ConvPoolSpec:
    return _spec.conv_pool_spec(
        x_shape, conv.kernel.shape, conv.strides, conv.padding, conv.dilation_rate,
        "channels_last", "relu" if conv._fused_relu else None, pool.pool_size,
        pool.strides, pool.padding, pool._mode)


class ConvPoolStep:
    """One step of a Sequential model standing for the layers conv, pool."""

    def __init__(self, conv: Conv2D, pool) -> None:
        self.conv, self.pool = conv, pool
        self.layers = (conv, pool)
        self._problem_key = None
        self._problem = None

    @property
    def trainable(self) -> bool:
        return self.conv.trainable and bool(self.conv.weights)

    def _resolve(self, x: np.ndarray):
        """The validated geometry for this input shape (cached: same every step)."""
        conv, pool = self.conv, self.pool
        key = (x.shape, x.dtype)
        if key != self._problem_key:
            self._problem = _pair_spec(conv, pool, x.shape)
            self._problem_key = key
        return self._problem

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        conv, pool = self.conv, self.pool
        pp = self._resolve(x)
        x = np.require(x, dtype=conv.dtype, requirements=("C", "A"))
        conv._x = x
        shape = (x.shape[0],) + pool._out_shape
        y = pool._ws.get("out", shape, conv.dtype)
        idx = pool._ws.get("idx", shape, np.int32) if training else None
        # with ReLU, windows it zeroed get index -1: the backward's ReLU mask,
        # without reading y again
        _training.conv2d_pool2d_forward(x, conv.kernel, conv.bias, y, idx, pp, pp.relu)
        pool._x, pool._y, pool._idx = None, y, idx
        conv._y = None
        return y

    def backward(self, dy: np.ndarray, input_grad: bool) -> np.ndarray | None:
        conv, pool = self.conv, self.pool
        pp = self._problem
        x = conv._x
        dy = np.require(dy, dtype=conv.dtype, requirements=("C", "A"))
        dk = conv._ws.get("dk", conv.kernel.shape, conv.dtype)
        db = conv._ws.get("db", (conv.filters,), conv.dtype) if conv.use_bias else None
        dx = conv._ws.get("dx", x.shape, conv.dtype) if input_grad else None
        # the ReLU mask is in the indices (-1: a window ReLU zeroed, no gradient)
        _training.conv2d_pool2d_backward(x, dy, pool._idx, conv.kernel, dx, dk, db, pp)
        conv.gradients = [dk, db] if conv.use_bias else [dk]
        pool.gradients = []
        return dx
