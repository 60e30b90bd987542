"""Keras-style layers running on cnnfast's kernels.

Conv2D and the pooling layers resolve their geometry once per input shape
(``cnnfast._spec``: a ``ConvSpec`` / ``PoolSpec`` per batch size, kept by the
layer) and call the prepared kernels of ``cnnfast.ops.training`` with their own
aligned C-contiguous arrays: no argument is parsed again on a step. A ReLU after a
convolution runs in the kernel's epilogue; max/min pooling keep the winners'
indices from the forward pass so the backward pass does not search again. Dense
runs on cnnfast's own GEMM (``cnnfast.ops.dense`` forward, ``cnnfast.ops.matmul``
backward through the helper ``_matmul``). Every layer works on whole batches: no
Python loop over samples or pixels.

A layer's life: ``build(input_shape, dtype)`` (shape without the batch axis) creates
the weights and the arrays its weight gradients are written to (``gradients``, same
order as ``weights``); ``forward(x, training)`` returns the output and keeps what
``backward`` needs; ``backward(dy, input_grad)`` fills ``gradients`` and returns
``dx`` (or ``None`` when ``input_grad`` is False, which the model passes to the first
layer so its input gradient is never computed). ``backward`` may use ``dy`` as
scratch space (it is the caller's temporary: the model never reads it again); pass a
copy to keep it.

Layers with an activation also offer ``forward_linear`` / ``backward_linear``: the
output before the activation and the backward pass from the gradient with respect
to it. The execution plan (``cnnfast._plan``) uses them where it applies the
activation's backward itself (softmax + cross-entropy from the logits, a ReLU mask
moved after max/min pooling).

The inputs of ``forward`` are checked once at the layer boundary (``_prepared``:
shape, the layer's dtype, C order, alignment), not again in every kernel call.
Buffers that do not escape to the caller (outputs, masks, gradients) live in a
per-layer workspace keyed by shape and are reused from step to step. Outputs of
``forward`` may therefore be overwritten by the next call; ``layer(x)``
(``__call__``) returns a copy that is safe to keep.
"""

from __future__ import annotations

import math

import numpy as np

from . import _spec, ops
from . import initializers as _initializers
from . import utils as _utils
from ._layer_base import (
    Input,
    InputLayer,
    Layer,
    Shape,
    _ActivatedLayer,
    _aligned_copy,
    _contiguous,
    _nhwc,
    relu_mask_into,
    spec_for_batch,
)
from .ops import training as _training

__all__ = [
    "Layer", "InputLayer", "Input", "Conv2D", "MaxPooling2D", "AveragePooling2D",
    "MinPooling2D", "Flatten", "Dense", "Dropout", "Activation",
    "MaxPool2D", "AvgPool2D", "Convolution2D",
]



def _matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray, bias: np.ndarray | None = None,
            relu: bool = False) -> np.ndarray:
    """The one matrix product of the layers (Dense forward and backward):
    ``out = a @ b (+ bias) (relu)``.

    Runs on cnnfast's own GEMM: the same OpenMP threads as the convolutions, so no
    BLAS thread pool spins between layers, and results are bit-identical for any
    thread count. Operands already in the layer's dtype (every call inside a model)
    go to the prepared call, which checks only memory safety; anything else takes
    ``ops.dense``'s argument handling.
    """
    dt = out.dtype
    if a.dtype == dt and b.dtype == dt and out.flags.c_contiguous and out.flags.aligned:
        _training.gemm(a, b, out, bias, relu)
        return out
    out[...] = ops.dense(a, b, bias, "relu" if relu else None)
    return out


class Conv2D(_ActivatedLayer):
    """2-D convolution (``keras.layers.Conv2D``) on the kernels of ``cnnfast.ops.training``.

    Kernel layout follows the engine: ``(kh, kw, in_channels, filters)`` for
    channels_last (as Keras), ``(filters, in_channels, kh, kw)`` for channels_first.
    ``algorithm``: "auto", "direct" or "winograd", as for ``cnnfast.ops.conv2d``;
    a fused Conv2D + pooling pair runs the same one.
    """

    def __init__(self, filters: int, kernel_size, strides=(1, 1), padding="valid",
                 data_format: str | None = None, dilation_rate=(1, 1), activation=None,
                 use_bias: bool = True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", algorithm: str = "auto", **kwargs):
        super().__init__(activation=activation, **kwargs)
        if isinstance(filters, bool) or not isinstance(filters, (int, np.integer)) \
                or filters < 1:
            raise ValueError(f"filters must be a positive integer, got {filters!r}")
        self.filters = int(filters)
        self.kernel_size = _spec.as_pair(kernel_size, "kernel_size")
        self.strides = _spec.as_pair(strides, "strides")
        self.dilation_rate = _spec.as_pair(dilation_rate, "dilation_rate")
        self.padding = padding.lower() if isinstance(padding, str) else padding
        self.data_format = _spec.check_data_format(data_format or "channels_last")
        # refused here, not at the first call: the geometry is known already
        _spec.resolve_algorithm(algorithm, self.kernel_size, self.strides, self.dilation_rate,
                                1, 1)
        self.algorithm = algorithm
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.bias_initializer = _initializers.get(bias_initializer)
        self.kernel: np.ndarray | None = None
        self.bias: np.ndarray | None = None
        self._x: np.ndarray | None = None  # the last forward's input, NHWC
        self._specs: dict[int, _spec.ConvSpec] = {}

    @property
    def _fused_relu(self) -> bool:
        """ReLU runs in the convolution kernel's epilogue, its backward as a mask on dy
        (read from the activation at each call: it may be replaced after construction)."""
        return self.activation.name == "relu"

    def _channels_hw(self, shape: Shape) -> tuple[int, tuple[int, int]]:
        if len(shape) != 3:
            raise ValueError(
                f"{self.name}: Conv2D expects inputs of shape (batch, H, W, C) or "
                f"(batch, C, H, W), got (None, *{tuple(shape)})"
            )
        if self.data_format == "channels_last":
            return shape[2], (shape[0], shape[1])
        return shape[0], (shape[1], shape[2])

    def compute_output_shape(self, input_shape):
        _, hw = self._channels_hw(input_shape)
        spec = _spec.window_spec(hw, self.kernel_size, self.strides, self.padding,
                                 self.dilation_rate, window_name="kernel", input_name="x")
        if self.data_format == "channels_last":
            return (spec.oh, spec.ow, self.filters)
        return (self.filters, spec.oh, spec.ow)

    def _create_weights(self):
        c, _ = self._channels_hw(self._in_shape)
        kh, kw = self.kernel_size
        # Initialise in Keras' layout so fans (and draws) are the same for both formats.
        k = self.kernel_initializer((kh, kw, c, self.filters), self.dtype)
        if self.data_format == "channels_first":
            k = k.transpose(3, 2, 0, 1)
        self.kernel = _aligned_copy(k, self.dtype)
        self.weights = [self.kernel]
        self.gradients = [ops.empty_aligned(self.kernel.shape, self.dtype)]
        if self.use_bias:
            self.bias = _aligned_copy(self.bias_initializer((self.filters,), self.dtype),
                                      self.dtype)
            self.weights.append(self.bias)
            self.gradients.append(ops.empty_aligned(self.bias.shape, self.dtype))
        self._specs = {}

    def spec(self, n: int) -> _spec.ConvSpec:
        """The resolved convolution for a batch of ``n`` inputs (built once per size)."""
        return spec_for_batch(self._specs, n, lambda n: _spec.conv_spec(
            (n,) + self._in_shape, self.kernel.shape, self.strides, self.padding,
            self.dilation_rate, self.data_format, self.algorithm))

    def _kernel_hwcf(self) -> np.ndarray:
        if self.data_format == "channels_last":
            return self.kernel
        return np.ascontiguousarray(self.kernel.transpose(2, 3, 1, 0))

    def forward_linear(self, x, training=False):
        return self._conv(x, relu=False)

    def forward(self, x, training=False):
        if self._fused_relu:
            self._y = self._conv(x, relu=True)
            return self._y
        return self._activate(self._conv(x, relu=False), z_is_ours=True)

    def _conv(self, x: np.ndarray, relu: bool) -> np.ndarray:
        x = self._prepared(x)
        self._x = x4 = _nhwc(x, self.data_format)
        spec = self.spec(x.shape[0])
        # the output lives until the next call: a reused buffer (a fresh 10 MB array
        # per call costs page faults on every step)
        y = self._ws.get("out", spec.out_nhwc, self.dtype)
        _training.conv2d_forward(x4, self._kernel_hwcf(), self.bias, y, spec, relu)
        if self.data_format == "channels_last":
            return y
        return np.ascontiguousarray(y.transpose(0, 3, 1, 2))

    def backward(self, dy, input_grad=True):
        if self._fused_relu:
            # d relu: keep dy where the output is positive (y > 0 <=> pre-activation > 0).
            # In place into dy (see the module docstring): one memory stream less, which
            # measured 11 -> 7 ms per batch of 128 for the first layer of the MNIST model.
            return self.backward_linear(relu_mask_into(dy, self._y, self._ws, "dpre"),
                                        input_grad)
        return self.backward_linear(self._dpre(dy), input_grad)

    def backward_linear(self, dz, input_grad=True):
        x, fmt = self._x, self.data_format  # x: NHWC
        spec = self.spec(x.shape[0])
        dz4 = _contiguous(_nhwc(dz, fmt), self.dtype)
        dx = None
        if input_grad:
            dx4 = self._ws.get("dx", spec.x_nhwc, self.dtype)
            _training.conv2d_backward_input(dz4, self._kernel_hwcf(), dx4, spec)
            dx = dx4 if fmt == "channels_last" else np.ascontiguousarray(
                dx4.transpose(0, 3, 1, 2))
        dk = self.gradients[0]
        # the bias gradient is computed (into scratch) even without a bias: the
        # kernel sums both in one pass
        db = self.gradients[1] if self.use_bias else self._ws.get("db", (self.filters,),
                                                                  self.dtype)
        if fmt == "channels_last":
            _training.conv2d_backward_kernel(x, dz4, dk, db, spec)
        else:
            dk4 = self._ws.get("dk", spec.kernel_hwcf, self.dtype)
            _training.conv2d_backward_kernel(x, dz4, dk4, db, spec)
            np.copyto(dk, dk4.transpose(3, 2, 0, 1))
        return dx


Convolution2D = Conv2D


class _Pooling2D(Layer):
    """Max / average / min pooling on the kernels of ``cnnfast.ops.training``."""

    _mode = "max"

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid",
                 data_format: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = _spec.as_pair(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else _spec.as_pair(strides, "strides")
        self.padding = padding.lower() if isinstance(padding, str) else padding
        self.data_format = _spec.check_data_format(data_format or "channels_last")
        self._x: np.ndarray | None = None  # the last forward's input, NHWC
        self._idx: np.ndarray | None = None  # its winners (max/min in training), NHWC
        self._specs: dict[int, _spec.PoolSpec] = {}

    @property
    def mode(self) -> str:
        """"max", "avg" or "min"."""
        return self._mode

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                f"{self.name}: pooling expects inputs of shape (batch, H, W, C) or "
                f"(batch, C, H, W), got (None, *{tuple(input_shape)})"
            )
        if self.data_format == "channels_last":
            hw, c = input_shape[:2], input_shape[2]
        else:
            hw, c = input_shape[1:], input_shape[0]
        spec = _spec.window_spec(tuple(hw), self.pool_size, self.strides, self.padding,
                                 window_name="pool_size", input_name="x")
        if self.data_format == "channels_last":
            return (spec.oh, spec.ow, c)
        return (c, spec.oh, spec.ow)

    def _create_weights(self):
        self._specs = {}

    def spec(self, n: int) -> _spec.PoolSpec:
        """The resolved pooling for a batch of ``n`` inputs (built once per size)."""
        return spec_for_batch(self._specs, n, lambda n: _spec.pool_spec(
            (n,) + self._in_shape, self.pool_size, self.strides, self.padding, self._mode,
            self.data_format))

    def forward(self, x, training=False):
        x = self._prepared(x)
        self._x = x4 = _nhwc(x, self.data_format)
        spec = self.spec(x.shape[0])
        y = self._ws.get("out", spec.out_nhwc, self.dtype)
        # indices only where a backward follows: inference keeps none
        idx = None
        if training and self._mode != "avg":
            idx = self._ws.get("idx", spec.out_nhwc, np.int32)
        self._idx = idx
        _training.pool2d_forward(x4, y, idx, spec)
        if self.data_format == "channels_last":
            return y
        return np.ascontiguousarray(y.transpose(0, 3, 1, 2))

    def backward(self, dy, input_grad=True):
        if not input_grad:
            return None
        fmt = self.data_format
        spec = self.spec(self._x.shape[0])
        dy4 = _contiguous(_nhwc(dy, fmt), self.dtype)
        dx = self._ws.get("dx", spec.x_nhwc, self.dtype)
        # the indices come from this layer's own forward: no range-check pass
        _training.pool2d_backward(dy4, self._x, self._idx, dx, spec)
        if fmt == "channels_last":
            return dx
        return np.ascontiguousarray(dx.transpose(0, 3, 1, 2))


class MaxPooling2D(_Pooling2D):
    """``keras.layers.MaxPooling2D``; the backward pass reuses the forward's argmax."""

    _mode = "max"


class AveragePooling2D(_Pooling2D):
    """``keras.layers.AveragePooling2D`` (padded cells are not counted, as in Keras)."""

    _mode = "avg"


class MinPooling2D(_Pooling2D):
    """Min pooling (cnnfast's own), same parameters as MaxPooling2D."""

    _mode = "min"


MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D


class Flatten(Layer):
    """Flattens all but the batch axis, in channels_last order as Keras does.

    With ``data_format="channels_first"`` the channel axis (axis 1) is moved last
    before flattening (Keras's rule), so the features come out in the same order as
    for the channels_last form of the same tensor and Dense weights carry over.
    """

    def __init__(self, data_format: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = _spec.check_data_format(data_format or "channels_last")

    def compute_output_shape(self, input_shape):
        return (int(math.prod(input_shape)),)

    def _moves_channels(self) -> bool:
        return self.data_format == "channels_first" and len(self._in_shape) > 1

    def forward(self, x, training=False):
        if self._moves_channels():
            x = np.moveaxis(x, 1, -1)
        return x.reshape(x.shape[0], -1)

    def backward(self, dy, input_grad=True):
        if not input_grad:
            return None
        if self._moves_channels():
            moved = self._in_shape[1:] + self._in_shape[:1]
            return np.ascontiguousarray(
                np.moveaxis(dy.reshape((dy.shape[0],) + moved), -1, 1))
        return dy.reshape((dy.shape[0],) + self._in_shape)


class Dense(_ActivatedLayer):
    """Fully connected layer ``activation(x @ kernel + bias)`` on the last axis."""

    def __init__(self, units: int, activation=None, use_bias: bool = True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 input_dim: int | None = None, **kwargs):
        if input_dim is not None and kwargs.get("input_shape") is None:
            kwargs["input_shape"] = (int(input_dim),)
        super().__init__(activation=activation, **kwargs)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units < 1:
            raise ValueError(f"units must be a positive integer, got {units!r}")
        self.units = int(units)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.bias_initializer = _initializers.get(bias_initializer)
        self.kernel: np.ndarray | None = None
        self.bias: np.ndarray | None = None
        self._x2: np.ndarray | None = None

    def compute_output_shape(self, input_shape):
        if len(input_shape) < 1:
            raise ValueError(f"{self.name}: Dense needs inputs with a feature axis")
        return tuple(input_shape[:-1]) + (self.units,)

    def _create_weights(self):
        fan_in = self._in_shape[-1]
        self.kernel = _aligned_copy(self.kernel_initializer((fan_in, self.units), self.dtype),
                                    self.dtype)
        self.weights = [self.kernel]
        self._dk = ops.empty_aligned(self.kernel.shape, self.dtype)
        self.gradients = [self._dk]
        if self.use_bias:
            self.bias = _aligned_copy(self.bias_initializer((self.units,), self.dtype),
                                      self.dtype)
            self.weights.append(self.bias)
            self._db = ops.empty_aligned(self.bias.shape, self.dtype)
            self.gradients.append(self._db)

    def forward(self, x, training=False):
        x2 = self._keep_input(x)
        z = self._ws.get("z", (x2.shape[0], self.units), self.dtype)
        if self.activation.name in ("linear", "relu"):
            # bias and ReLU applied by the GEMM to each tile in registers
            self._y = y = _matmul(x2, self.kernel, z, self.bias,
                                  self.activation.name == "relu")
        else:
            y = self._activate(self._affine(x2, z), z_is_ours=True)
        return y.reshape((x.shape[0],) + self._out_shape)

    def forward_linear(self, x, training=False):
        x2 = self._keep_input(x)
        z = self._affine(x2, self._ws.get("z", (x2.shape[0], self.units), self.dtype))
        return z.reshape((x.shape[0],) + self._out_shape)

    def _affine(self, x2: np.ndarray, z: np.ndarray) -> np.ndarray:
        """z = x2 @ kernel + bias, the bias added after the whole product (the GEMM's
        epilogue): the logits and the outputs of activations other than linear/relu
        are defined by these bits."""
        return _matmul(x2, self.kernel, z, self.bias)

    def _keep_input(self, x: np.ndarray) -> np.ndarray:
        """x as rows of features (kept for the kernel gradient)."""
        self._x2 = x.reshape(-1, self._in_shape[-1])
        return self._x2

    def backward(self, dy, input_grad=True):
        # rows of units, as the activation's output is kept (see forward)
        return self.backward_linear(self._dpre(dy.reshape(-1, self.units)), input_grad)

    def backward_linear(self, dz, input_grad=True):
        dz = dz.reshape(-1, self.units)
        _matmul(self._x2.T, dz, out=self._dk)
        if self.use_bias:
            np.sum(dz, axis=0, out=self._db)
        if not input_grad:
            return None
        dx = _matmul(dz, self.kernel.T,
                     out=self._ws.get("dx", (dz.shape[0], self._in_shape[-1]), self.dtype))
        return dx.reshape((-1,) + self._in_shape)


class Dropout(Layer):
    """Inverted dropout: in training, zero each input with probability ``rate`` and scale
    the rest by ``1 / (1 - rate)``; identity at inference. Each training call takes one
    64-bit key from the shared generator of ``cnnfast.utils`` (or the layer's own, given
    ``seed``); the mask is drawn from that key and each element's index in one C pass
    (SplitMix64), so it is the same for any thread count.

    ``sample_offset`` is the index of the call's first sample in a larger batch (0 by
    default): element ``j`` of the call draws the bits of element ``sample_offset *
    sample_size + j`` of that batch, so data-parallel ranks that each hold a contiguous
    slice of a global batch, with the same key, draw the one-process mask of the global
    batch (``cnnfast.distributed``)."""

    def __init__(self, rate: float, noise_shape=None, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        rate = float(rate)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout rate must be in [0, 1), got {rate}")
        if noise_shape is not None:
            raise NotImplementedError("Dropout(noise_shape=...) is not supported")
        self.rate = rate
        self.seed = seed
        self.sample_offset = 0
        self._rng = None if seed is None else np.random.default_rng(seed)
        self._mask: np.ndarray | None = None

    def draws(self, training: bool) -> bool:
        """Whether a forward call with this ``training`` flag takes a key."""
        return bool(training) and self.rate != 0.0

    def draw_key(self) -> int:
        """The next key from this layer's generator, as a training forward takes it (a
        data-parallel rank with no samples in a step calls it to stay in step)."""
        rng = self._rng if self._rng is not None else _utils.get_rng()
        return int(rng.integers(0, 2**64, dtype=np.uint64))

    def forward(self, x, training=False):
        if not self.draws(training):
            self._mask = None
            return x
        key = self.draw_key()
        x = np.asarray(x)
        x = np.require(x, dtype=self.dtype, requirements=("C", "A"))
        mask = self._ws.get("mask", x.shape, self.dtype)
        y = self._ws.get("y", x.shape, self.dtype)
        offset = int(self.sample_offset) * (x.size // x.shape[0] if x.shape[0] else 0)
        # mask = (u >= rate) / (1 - rate), y = x * mask
        _training.dropout(x, key, self.rate, y, mask, offset)
        self._mask = mask
        return y

    def backward(self, dy, input_grad=True):
        if not input_grad:
            return None
        if self._mask is None:
            return dy
        return np.multiply(dy, self._mask, out=self._ws.get("dx", dy.shape, dy.dtype))


class Activation(_ActivatedLayer):
    """Applies an activation function (``keras.layers.Activation``)."""

    def __init__(self, activation, **kwargs):
        super().__init__(activation=activation, **kwargs)

    def forward(self, x, training=False):
        return self._activate(x, z_is_ours=False)

    def forward_linear(self, x, training=False):
        return x

    def backward(self, dy, input_grad=True):
        if not input_grad:
            return None
        return self._dpre(dy)

    def backward_linear(self, dz, input_grad=True):
        return dz if input_grad else None


def get(identifier: str | Layer) -> Layer:
    """Pass a layer through (for symmetry with the other ``get`` helpers)."""
    if isinstance(identifier, Layer):
        return identifier
    raise TypeError(f"expected a Layer, got {identifier!r}")
