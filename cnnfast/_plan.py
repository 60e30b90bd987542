"""The execution plan of a Sequential model: the one owner of how its layers run.

Given the model's layers (built for one input shape), its loss and whether fusion
is on, ``make_plan`` decides once:

* which layers fuse: a ``Conv2D`` (ReLU or no activation, channels_last) followed by
  a ``MaxPooling2D`` / ``MinPooling2D`` runs as one fused kernel pair
  (``ConvPoolStep``) when the resolved pair says the fused kernels take it
  (``cnnfast._spec.ConvPoolSpec.fused``, the one fusion rule);
* where each ReLU mask applies. A fused pair's ReLU travels in its indices (-1:
  a window ReLU zeroed, no gradient; ``mark_dead``). An unfused ``Conv2D(relu)``
  followed by max/min pooling (``ReluPoolStep``) masks the pooled gradient with
  ``ops.training.relu_mask`` on the pooled output (the winner of a window of ReLU
  outputs is positive exactly when the pooled value is, so it is the same mask on a
  pool_size-times smaller array). Any other ``Conv2D(relu)`` masks its own ``dy``
  in its ``backward``, with the same call;
* the output mode: when the last layer's activation is softmax and the loss is a
  cross-entropy on probabilities, the loss is computed from the logits
  (``SoftmaxOutputStep``): stable, and its gradient ``(p - y) / N`` goes straight
  into the layer's ``backward_linear`` (no softmax Jacobian);
* which steps need gradients: none before the first step with trainable weights,
  and no input gradient for that one;
* how inference runs: where every step has a form in ``ops.training.InferenceChain``
  (convolutions and Dense with ReLU, no or a softmax activation, channels_last
  pooling, Flatten, Dropout), ``Plan.predict`` runs them as one C call per batch,
  with no Python between the steps; any other plan runs its steps' ``forward``.

``Sequential`` keeps the plan per input shape and runs it step by step; a step is a
layer, or one of the step objects here that owns the state of the layers it stands
for (its input, outputs, indices, masks) while ``model.layers`` still shows each layer
with its weights and gradients. Every plan gives the same bits as running the
layers one after the other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from . import _spec
from ._layer_base import InputLayer, Layer, _ActivatedLayer, _Workspace, relu_mask_into
from .layers import (
    Activation,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPooling2D,
    MinPooling2D,
    _Pooling2D,
)
from .ops import training as _training

__all__ = ["Plan", "make_plan", "ConvPoolStep", "ReluPoolStep", "SoftmaxOutputStep"]


def _relu_pool_pair(conv: Layer, pool: Layer) -> bool:
    """A Conv2D with ReLU followed by max/min pooling in the same data format."""
    return (isinstance(conv, Conv2D) and conv.activation.name == "relu"
            and isinstance(pool, (MaxPooling2D, MinPooling2D))
            and conv.data_format == pool.data_format)


def _pair_spec(conv: Conv2D, pool, n: int) -> _spec.ConvPoolSpec:
    return _spec.conv_pool_spec(
        (n,) + conv._in_shape, conv.kernel.shape, conv.strides, conv.padding,
        conv.dilation_rate, "channels_last",
        "relu" if conv.activation.name == "relu" else None, pool.pool_size,
        pool.strides, pool.padding, pool.mode, conv.algorithm)


def fusable(conv: Layer, pool: Layer) -> bool:
    """Whether the pair (conv, pool) of built layers can run fused: channels_last,
    ReLU or no activation, and the pooling the fused kernels take (the spec's rule)."""
    if not (isinstance(conv, Conv2D) and isinstance(pool, (MaxPooling2D, MinPooling2D))):
        return False
    if not (conv.built and pool.built) or conv.dtype != pool.dtype:
        return False
    if conv.data_format != "channels_last" or pool.data_format != "channels_last":
        return False
    if conv.activation.name not in ("relu", "linear"):
        return False
    try:
        return _pair_spec(conv, pool, 1).fused
    except ValueError:
        return False


class ConvPoolStep:
    """A Conv2D + max/min pooling pair run as one fused kernel pair.

    Owns the pair's state (the input, the pooled output, the winners' indices with
    the ReLU mask in them) and writes the convolution's weight gradients into the
    conv layer's ``gradients`` arrays.
    """

    def __init__(self, conv: Conv2D, pool) -> None:
        self.conv, self.pool = conv, pool
        self.layers = (conv, pool)
        self.dtype = conv.dtype
        self._spec1 = _pair_spec(conv, pool, 1)
        # batch size -> (resolved pair, pooled output, indices): made once per size
        self._per_batch: dict[int, tuple] = {}
        self._ws = _Workspace()
        self._x: np.ndarray | None = None
        self._idx: np.ndarray | None = None

    @property
    def trainable(self) -> bool:
        return self.conv.trainable and bool(self.conv.weights)

    def _batch(self, n: int) -> tuple:
        entry = self._per_batch.get(n)
        if entry is None:
            if len(self._per_batch) >= _Workspace._MAX:
                self._per_batch.clear()
            pp = self._spec1.with_batch(n)
            shape = pp.pool.out_nhwc
            entry = (pp, self._ws.get("out", shape, self.dtype),
                     self._ws.get("idx", shape, np.int32))
            self._per_batch[n] = entry
        return entry

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        conv = self.conv
        x = conv._prepared(x)
        pp, y, idx = self._batch(x.shape[0])
        if not training:
            idx = None
        # with ReLU, windows it zeroed get index -1: the backward's ReLU mask,
        # without reading y again
        _training.conv2d_pool2d_forward(x, conv.kernel, conv.bias, y, idx, pp, pp.relu)
        self._x, self._idx = x, idx
        return y

    def backward(self, dy: np.ndarray, input_grad: bool) -> np.ndarray | None:
        conv, x = self.conv, self._x
        pp = self._batch(x.shape[0])[0]
        dy = np.require(dy, dtype=self.dtype, requirements=("C", "A"))
        dk = conv.gradients[0]
        db = conv.gradients[1] if conv.use_bias else None
        dx = self._ws.get("dx", x.shape, self.dtype) if input_grad else None
        # the ReLU mask is in the indices (-1: a window ReLU zeroed, no gradient)
        _training.conv2d_pool2d_backward(x, dy, self._idx, conv.kernel, dx, dk, db, pp)
        return dx


class ReluPoolStep:
    """A Conv2D(relu) + max/min pooling pair the fused kernels do not take, run as
    the two layers, with the ReLU mask applied to the pooled gradient."""

    def __init__(self, conv: Conv2D, pool) -> None:
        self.conv, self.pool = conv, pool
        self.layers = (conv, pool)
        self._ws = _Workspace()
        self._y: np.ndarray | None = None

    @property
    def trainable(self) -> bool:
        return self.conv.trainable and bool(self.conv.weights)

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        self._y = self.pool.forward(self.conv.forward(x, training), training)
        return self._y

    def backward(self, dy: np.ndarray, input_grad: bool) -> np.ndarray | None:
        dy = relu_mask_into(dy, self._y, self._ws, "dy")
        return self.conv.backward_linear(self.pool.backward(dy, True), input_grad)


class SoftmaxOutputStep:
    """The last layer with a softmax activation under a cross-entropy loss: keeps the
    logits, returns the probabilities, and takes the gradient w.r.t. the logits."""

    def __init__(self, layer: _ActivatedLayer) -> None:
        self.layer = layer
        self.layers = (layer,)
        self._ws = _Workspace()
        self.logits: np.ndarray | None = None

    @property
    def trainable(self) -> bool:
        return self.layer.trainable and bool(self.layer.weights)

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        z = self.layer.forward_linear(x, training)
        self.logits = z
        return self.layer.activation.forward(z, out=self._ws.get("probs", z.shape, z.dtype))

    def backward(self, dz: np.ndarray, input_grad: bool) -> np.ndarray | None:
        return self.layer.backward_linear(dz, input_grad)


def _trainable(step) -> bool:
    if isinstance(step, Layer):
        return step.trainable and bool(step.weights)
    return step.trainable


# ---- inference as one C call --------------------------------------------------------
# Each function gives a step's InferenceChain steps for a batch of n (the same kernel
# calls, with the same arguments, as its forward with training=False) and adds the
# arrays and objects those steps took from a layer to `refs`; None: no chain form.

def _take(refs: list, layer: Layer, *names: str) -> None:
    refs.extend((layer, name, getattr(layer, name)) for name in names)


def _weighted_steps(layer: Layer, n: int, refs: list) -> list | None:
    """A Conv2D's or Dense's steps: the linear map with ReLU in its epilogue, then a
    softmax over the last axis where that is the activation."""
    act = layer.activation.name
    if act not in ("linear", "relu", "softmax"):
        return None
    if isinstance(layer, Conv2D):
        if layer.data_format != "channels_last":
            return None
        steps = [("conv", layer.spec(n), layer.kernel, layer.bias, act == "relu")]
    elif isinstance(layer, Dense):
        rows = n * math.prod(layer._in_shape[:-1])
        steps = [("dense", rows, layer.kernel, layer.bias, act == "relu")]
    else:
        return None
    if act == "softmax":
        out = layer._out_shape
        steps.append(("softmax", n * math.prod(out[:-1]), out[-1]))
    _take(refs, layer, "kernel", "bias", "activation")
    return steps


def _chain_steps(step, n: int, refs: list) -> list | None:
    if isinstance(step, ConvPoolStep):
        _take(refs, step.conv, "kernel", "bias", "activation")
        return [("conv_pool", step._spec1.with_batch(n), step.conv.kernel, step.conv.bias)]
    if isinstance(step, ReluPoolStep):
        head = _weighted_steps(step.conv, n, refs)
        tail = _chain_steps(step.pool, n, refs)
        return None if head is None or tail is None else head + tail
    if isinstance(step, SoftmaxOutputStep):  # the logits, then their softmax
        return _chain_steps(step.layer, n, refs)
    if isinstance(step, (Conv2D, Dense)):
        return _weighted_steps(step, n, refs)
    if isinstance(step, _Pooling2D):
        return [("pool", step.spec(n))] if step.data_format == "channels_last" else None
    if isinstance(step, Flatten):
        return None if step._moves_channels() else []
    if isinstance(step, (Dropout, InputLayer)):
        return []  # identity at inference
    if isinstance(step, Activation):
        _take(refs, step, "activation")
        name, shape = step.activation.name, step._in_shape
        if name == "linear":
            return []
        if name == "softmax" and shape:
            return [("softmax", n * math.prod(shape[:-1]), shape[-1])]
    return None


class Plan:
    """How a model's layers run for one input shape: the steps, the output mode."""

    _MAX_CHAINS = 4  # batch sizes with a chain kept (predict's batch and its last)

    def __init__(self, steps: list, logits: bool, layers: Sequence[Layer]) -> None:
        self.steps = steps
        #: the loss is computed from the last step's logits (SoftmaxOutputStep)
        self.logits = logits
        self.layers = list(layers)
        # batch size -> (InferenceChain, refs) or None (no chain form)
        self._chains: dict[int, tuple | None] = {}

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        for step in self.steps:
            x = step.forward(x, training)
        return x

    def predict(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The inference output for the prepared batch ``x`` (C-contiguous, aligned,
        the layers' dtype) in ``out`` (C-contiguous, aligned) or a new array: one C
        call where the plan has a chain form, else the steps' ``forward``. The same
        bits either way."""
        chain = self._chain(x)
        if chain is None:
            y = self.forward(x, False)
            if out is None:
                return np.array(y)
            out[...] = y
            return out
        return chain(x, out)

    def _chain(self, x: np.ndarray):
        n = x.shape[0]
        entry = self._chains.get(n, False)
        # a chain reads the arrays it was built on: rebuilt when a layer has new ones
        if entry is False or (entry is not None and any(
                getattr(layer, name) is not obj for layer, name, obj in entry[1])):
            entry = self._build_chain(x)
            if len(self._chains) >= self._MAX_CHAINS:
                self._chains.clear()
            self._chains[n] = entry
        return None if entry is None else entry[0]

    def _build_chain(self, x: np.ndarray) -> tuple | None:
        n = x.shape[0]
        if n == 0 or not self.layers or x.dtype not in (np.float32, np.float64):
            return None
        refs: list = []
        steps: list = []
        for step in self.steps:
            more = _chain_steps(step, n, refs)
            if more is None:
                return None
            steps += more
        if not steps or any(layer.dtype != x.dtype for layer in self.layers):
            return None
        out_shape = (n,) + tuple(self.layers[-1]._out_shape)
        return _training.InferenceChain(x.dtype, x.shape, out_shape, steps), refs

    def loss_and_grad(self, loss, y: np.ndarray, out: np.ndarray):
        """(loss value, gradient w.r.t. the last step's output: the logits in logits mode)."""
        if self.logits:
            return loss.value_and_grad_logits(y, self.steps[-1].logits, out)
        return loss.value_and_grad(y, out)

    def backward(self, grad: np.ndarray) -> None:
        # Steps before the first one with trainable weights need no gradient at all,
        # and that one needs no input gradient. (Read on each step: ``trainable`` may
        # change between steps.)
        steps = self.steps
        first = next((i for i, s in enumerate(steps) if _trainable(s)), len(steps))
        for i in range(len(steps) - 1, first - 1, -1):
            grad = steps[i].backward(grad, i > first)

    def gradients(self) -> list[np.ndarray]:
        """The trainable weights' gradients after ``backward``, in the model's order."""
        return [g for layer in self.layers if layer.trainable and layer.weights
                for g in layer.gradients]


def logits_mode(layers: Sequence[Layer], loss) -> bool:
    """Whether the loss is computed from the last layer's logits: its activation is
    softmax and the loss a cross-entropy on probabilities."""
    last = layers[-1] if layers else None
    return bool(
        isinstance(last, _ActivatedLayer) and last.activation.name == "softmax"
        and loss is not None and loss.supports_logits
        and not getattr(loss, "from_logits", False)
    )


def make_plan(layers: Sequence[Layer], loss, fuse: bool) -> Plan:
    """The plan for built ``layers`` (see the module docstring)."""
    layers = list(layers)
    logits = logits_mode(layers, loss)
    steps: list = []
    i = 0
    while i < len(layers):
        layer = layers[i]
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if nxt is not None and fuse and fusable(layer, nxt):
            steps.append(ConvPoolStep(layer, nxt))
            i += 2
        elif nxt is not None and _relu_pool_pair(layer, nxt):
            steps.append(ReluPoolStep(layer, nxt))
            i += 2
        elif logits and i == len(layers) - 1:
            steps.append(SoftmaxOutputStep(layer))
            i += 1
        else:
            steps.append(layer)
            i += 1
    return Plan(steps, logits, layers)
