"""Keras-style layers running on cnnfast's kernels.

Conv2D and the pooling layers call the engine through ``cnnfast.ops`` (a ReLU after a
convolution is fused into the kernel's epilogue; max/min pooling keep the winners'
indices from the forward pass so the backward pass does not search again). Dense
runs on cnnfast's own GEMM (``cnnfast.dense`` forward, ``cnnfast.matmul`` backward
through the helper ``_matmul``). Every layer works on whole batches: no Python loop
over samples or pixels.

A layer's life: ``build(input_shape, dtype)`` (shape without the batch axis) creates
the weights; ``forward(x, training)`` returns the output and keeps what ``backward``
needs; ``backward(dy, input_grad)`` stores the weight gradients in ``gradients`` (same
order as ``weights``) and returns ``dx`` (or ``None`` when ``input_grad`` is False,
which the model passes to the first layer so its input gradient is never computed).
``backward`` may use ``dy`` as scratch space (it is the caller's temporary: the model
never reads it again); pass a copy to keep it.

Buffers that do not escape to the caller (activation outputs of Dense, masks,
gradients of Dense) live in a per-layer workspace keyed by shape and are reused
from step to step. Outputs of ``forward`` may therefore be overwritten by the next
call; ``layer(x)`` (``__call__``) returns a copy that is safe to keep.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from itertools import count

import numpy as np

from . import _spec, ops
from . import activations as _activations
from . import initializers as _initializers
from . import utils as _utils
from .ops import training as _training

__all__ = [
    "Layer", "InputLayer", "Input", "Conv2D", "MaxPooling2D", "AveragePooling2D",
    "MinPooling2D", "Flatten", "Dense", "Dropout", "Activation",
    "MaxPool2D", "AvgPool2D", "Convolution2D",
]

Shape = tuple[int, ...]


def _matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The one matrix product of the layers (Dense forward and backward).

    Runs on cnnfast's own GEMM (``cnnfast.matmul``): the same OpenMP threads as
    the convolutions, so no BLAS thread pool spins between layers, and results
    are bit-identical for any thread count.
    """
    if out is not None and not (out.flags.c_contiguous and out.flags.aligned):
        out[...] = ops.matmul(a, b)
        return out
    return ops.matmul(a, b, out=out)


def _aligned_copy(a, dtype) -> np.ndarray:
    """A 64-byte aligned C-contiguous copy (weights: the kernels read them as vectors)."""
    out = ops.empty_aligned(np.shape(a), dtype)
    np.copyto(out, a, casting="unsafe")
    return out


def _relu_mask_into(dy: np.ndarray, y: np.ndarray, ws, key: str) -> np.ndarray:
    """ReLU backward, dy where y > 0 else 0: one fused C pass, in place into dy
    when dy is a writable C-contiguous array of y's dtype (else into a buffer)."""
    if not (dy.flags.writeable and dy.flags.c_contiguous and dy.flags.aligned
            and dy.dtype == y.dtype):
        buf = ws.get(key, dy.shape, y.dtype)
        np.copyto(buf, dy)
        dy = buf
    yc = np.require(y, requirements=("C", "A"))
    _training.relu_mask(dy, yc)
    return dy


_name_counters: dict[str, count[int]] = {}


def _auto_name(cls_name: str) -> str:
    """Keras-like unique names: conv2d, conv2d_1, ... (one counter per class per process)."""
    base = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", cls_name).lower()
    base = base.replace("2_d", "2d")
    n = next(_name_counters.setdefault(base, count()))
    return base if n == 0 else f"{base}_{n}"


class _Workspace:
    """Arrays reused between steps, one per (purpose, shape, dtype)."""

    _MAX = 32  # a model sees only a handful of batch shapes; bound it anyway

    def __init__(self) -> None:
        self._bufs: dict[tuple, np.ndarray] = {}

    def get(self, name: str, shape: Shape, dtype) -> np.ndarray:
        key = (name, tuple(shape), np.dtype(dtype))
        buf = self._bufs.get(key)
        if buf is None:
            if len(self._bufs) >= self._MAX:
                self._bufs.clear()
            # 64-byte aligned: the kernels' vector loads then never split lines
            buf = ops.empty_aligned(shape, dtype)
            self._bufs[key] = buf
        return buf


def _shape_tuple(shape, what: str) -> Shape:
    try:
        t = tuple(int(s) for s in shape)
    except TypeError:
        t = (int(shape),)
    if any(s < 1 for s in t):
        raise ValueError(f"{what} must hold positive sizes, got {tuple(shape)}")
    return t


class Layer:
    """Base class of all layers (also usable for a custom stateless layer)."""

    def __init__(self, name: str | None = None, input_shape=None,
                 trainable: bool = True, **kwargs) -> None:
        batch_input_shape = kwargs.pop("batch_input_shape", None)
        dtype = kwargs.pop("dtype", None)
        # One dtype per model (the model's): a layer asking for another one is an
        # error when the model builds it, not silently overridden.
        try:
            self._requested_dtype = None if dtype is None else np.dtype(dtype)
        except TypeError:  # e.g. a Keras mixed-precision policy name
            self._requested_dtype = np.dtype(object)
        if self._requested_dtype is not None and self._requested_dtype not in (
                np.float32, np.float64):
            raise ValueError(f"{type(self).__name__}: dtype must be float32 or float64, "
                             f"got {dtype!r}")
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected arguments {sorted(kwargs)}")
        if input_shape is None and batch_input_shape is not None:
            input_shape = tuple(batch_input_shape)[1:]
        self.name = name or _auto_name(type(self).__name__)
        self.trainable = bool(trainable)
        self._declared_input_shape: Shape | None = (
            None if input_shape is None else _shape_tuple(input_shape, "input_shape")
        )
        self.built = False
        self.dtype = np.dtype(np.float32)
        self._in_shape: Shape | None = None
        self._out_shape: Shape | None = None
        self.weights: list[np.ndarray] = []
        self.gradients: list[np.ndarray | None] = []
        self._ws = _Workspace()

    # ---- shapes -----------------------------------------------------------------------
    @property
    def input_shape(self) -> tuple:
        if self._in_shape is None:
            raise AttributeError(f"layer {self.name!r} is not built yet")
        return (None,) + self._in_shape

    @property
    def output_shape(self) -> tuple:
        if self._out_shape is None:
            raise AttributeError(f"layer {self.name!r} is not built yet")
        return (None,) + self._out_shape

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)

    # ---- building ---------------------------------------------------------------------
    def build(self, input_shape: Shape, dtype="float32") -> None:
        """Create the weights for inputs of shape ``(batch,) + input_shape``."""
        self.dtype = np.dtype(dtype)
        self._in_shape = tuple(int(s) for s in input_shape)
        self._out_shape = tuple(self.compute_output_shape(self._in_shape))
        self._create_weights()
        self.gradients = [None] * len(self.weights)
        self.built = True

    def _create_weights(self) -> None:
        pass

    def count_params(self) -> int:
        return int(sum(w.size for w in self.weights))

    def get_weights(self) -> list[np.ndarray]:
        return [w.copy() for w in self.weights]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        weights = list(weights)
        if len(weights) != len(self.weights):
            raise ValueError(
                f"layer {self.name!r} expects {len(self.weights)} weight arrays, "
                f"got {len(weights)}"
            )
        for i, (dst, src) in enumerate(zip(self.weights, weights)):
            src = np.asarray(src)
            if src.shape != dst.shape:
                raise ValueError(
                    f"layer {self.name!r} weight {i}: expected shape {dst.shape}, "
                    f"got {src.shape}"
                )
            # In place, so optimizers and callers holding the arrays stay in sync.
            np.copyto(dst, src, casting="unsafe")

    # ---- computing --------------------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        raise NotImplementedError

    def __call__(self, x, training: bool = False) -> np.ndarray:
        """Apply the layer to a batch (building it on first use); returns a new array."""
        x = np.asarray(x)
        if not self.built:
            dtype = self._requested_dtype or (
                x.dtype if x.dtype in (np.float32, np.float64) else np.float32)
            self.build(x.shape[1:], dtype)
        if x.shape[1:] != self._in_shape:
            raise ValueError(
                f"layer {self.name!r} expects input shape (None, *{self._in_shape}), "
                f"got {x.shape}"
            )
        x = np.require(x, dtype=self.dtype, requirements=("C", "A"))
        return np.array(self.forward(x, training), copy=True)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"


class InputLayer(Layer):
    """Declares the input shape of a Sequential model (``keras.Input``); passes data through."""

    def __init__(self, input_shape=None, name: str | None = None, shape=None, **kwargs):
        shape = shape if shape is not None else input_shape
        if shape is None:
            raise ValueError("InputLayer needs a shape")
        super().__init__(name=name, input_shape=shape, **kwargs)

    def forward(self, x, training=False):
        return x

    def backward(self, dy, input_grad=True):
        return dy if input_grad else None


def Input(shape, name: str | None = None, **kwargs) -> InputLayer:
    """``keras.Input(shape=...)`` for Sequential models: an ``InputLayer``."""
    return InputLayer(shape=shape, name=name, **kwargs)


class _ActivatedLayer(Layer):
    """A layer followed by an activation; supports the model's fused softmax+CE mode.

    In logits mode (set by ``Sequential.compile`` when this is the last layer, its
    activation is softmax and the loss is a cross-entropy) ``forward`` also keeps the
    pre-activation ``logits`` and ``backward`` receives the gradient w.r.t. them.
    """

    def __init__(self, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.activation = _activations.get(activation)
        self._logits_mode = False
        self.logits: np.ndarray | None = None
        self._y: np.ndarray | None = None

    def _activate(self, z: np.ndarray, z_is_ours: bool) -> np.ndarray:
        """Apply the activation to pre-activation ``z``; keep what backward needs."""
        act = self.activation
        if self._logits_mode:
            self.logits = z
            y = act.forward(z, out=self._ws.get("probs", z.shape, z.dtype))
        elif act.name == "linear":
            y = z
        else:
            # In place when z is a fresh array nobody else holds (only y is needed later).
            y = act.forward(z, out=z if z_is_ours else self._ws.get("act", z.shape, z.dtype))
        self._y = y
        return y

    def _dpre(self, dy: np.ndarray) -> np.ndarray:
        """Gradient w.r.t. the pre-activation, from the gradient w.r.t. the output."""
        if self._logits_mode or self.activation.name == "linear":
            return dy
        return self.activation.backward(dy, self._y,
                                        out=self._ws.get("dpre", dy.shape, dy.dtype))


class Conv2D(_ActivatedLayer):
    """2-D convolution (``keras.layers.Conv2D``) on ``cnnfast.ops.conv2d``.

    Kernel layout follows the engine: ``(kh, kw, in_channels, filters)`` for
    channels_last (as Keras), ``(filters, in_channels, kh, kw)`` for channels_first.
    """

    def __init__(self, filters: int, kernel_size, strides=(1, 1), padding="valid",
                 data_format: str | None = None, dilation_rate=(1, 1), activation=None,
                 use_bias: bool = True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
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
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.bias_initializer = _initializers.get(bias_initializer)
        self.kernel: np.ndarray | None = None
        self.bias: np.ndarray | None = None
        self._x: np.ndarray | None = None
        self._fused_relu = self.activation.name == "relu"
        # Set by Sequential when a max/min pooling layer follows: that layer applies
        # the ReLU mask to its (4x smaller) dy, so dy arrives here already masked.
        self._dy_premasked = False

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
        if self.use_bias:
            self.bias = _aligned_copy(self.bias_initializer((self.filters,), self.dtype),
                                      self.dtype)
            self.weights.append(self.bias)

    def forward(self, x, training=False):
        self._x = x
        # in training the output lives until the next step: a reused buffer
        # (a fresh 10 MB array per call costs page faults on every step)
        out = (self._ws.get("out", (x.shape[0],) + self._out_shape, self.dtype)
               if training and self._out_shape is not None else None)
        z = ops.conv2d(x, self.kernel, self.bias, self.strides, self.padding,
                       self.dilation_rate, self.data_format,
                       activation="relu" if self._fused_relu else None, out=out)
        if self._fused_relu:
            self._y = z
            return z
        return self._activate(z, z_is_ours=True)

    def backward(self, dy, input_grad=True):
        if self._fused_relu and self._dy_premasked:
            dz = dy
        elif self._fused_relu:
            # d relu: keep dy where the output is positive (y > 0 <=> pre-activation > 0).
            # In place into dy (see the module docstring): one memory stream less, which
            # measured 11 -> 7 ms per batch of 128 for the first layer of the MNIST model.
            dz = _relu_mask_into(dy, self._y, self._ws, "dpre")
        else:
            dz = self._dpre(dy)
        dx_buf = (self._ws.get("dx", self._x.shape, self.dtype)
                  if input_grad and self._x.dtype == self.dtype else None)
        dx, dk, db = ops.conv2d_backward(dz, self._x, self.kernel, self.strides, self.padding,
                                         self.dilation_rate, self.data_format,
                                         input_grad=input_grad, out=(dx_buf, None, None))
        self.gradients = [dk, db] if self.use_bias else [dk]
        return dx


Convolution2D = Conv2D


class _Pooling2D(Layer):
    _mode = "max"

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid",
                 data_format: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = _spec.as_pair(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else _spec.as_pair(strides, "strides")
        self.padding = padding.lower() if isinstance(padding, str) else padding
        self.data_format = _spec.check_data_format(data_format or "channels_last")
        self._x: np.ndarray | None = None
        self._idx: np.ndarray | None = None
        self._y: np.ndarray | None = None
        # Set by Sequential (max/min only) when the input is a fused-ReLU Conv2D output:
        # the winner of a window of ReLU outputs is positive exactly when the pooled
        # value is, so masking dy by (y > 0) here equals the ReLU mask on the conv's
        # gradient, on a pool_size-times smaller array.
        self._relu_mask = False

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

    def forward(self, x, training=False):
        self._x = x
        if self._mode == "avg" or not training:
            self._idx = None
            return ops.pool2d(x, self.pool_size, self.strides, self.padding, self._mode,
                              self.data_format)
        shape = (x.shape[0],) + self._out_shape if self._out_shape is not None else None
        out = None
        if shape is not None and x.dtype == self.dtype:
            out = (self._ws.get("out", shape, self.dtype), self._ws.get("idx", shape, np.int32))
        y, self._idx = ops.pool2d(x, self.pool_size, self.strides, self.padding, self._mode,
                                  self.data_format, return_indices=True, out=out)
        self._y = y
        return y

    def backward(self, dy, input_grad=True):
        if not input_grad:
            return None
        if self._relu_mask and self._idx is not None:
            dy = _relu_mask_into(dy, self._y, self._ws, "dy")
        # the indices come from this layer's own forward: no range-check pass
        dx_buf = self._ws.get("dx", self._x.shape, self.dtype) if self._x.dtype == self.dtype \
            else None
        return ops.pool2d_backward(dy, self._x, self.pool_size, self.strides, self.padding,
                                   self._mode, self.data_format, indices=self._idx,
                                   out=dx_buf, _check_values=False)


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
        if self.use_bias:
            self.bias = _aligned_copy(self.bias_initializer((self.units,), self.dtype),
                                      self.dtype)
            self.weights.append(self.bias)
            self._db = ops.empty_aligned(self.bias.shape, self.dtype)

    def forward(self, x, training=False):
        n = x.shape[0]
        x2 = x.reshape(-1, self._in_shape[-1])
        self._x2 = x2
        z = self._ws.get("z", (x2.shape[0], self.units), self.dtype)
        if not self._logits_mode and self.activation.name in ("linear", "relu"):
            # bias and ReLU applied by the GEMM to each tile in registers
            self._y = ops.dense(x2, self.kernel, self.bias, self.activation.name, out=z)
            return self._y.reshape((n,) + self._out_shape)
        z = _matmul(x2, self.kernel, out=z)
        if self.use_bias:
            z += self.bias
        y = self._activate(z, z_is_ours=True)
        if self._logits_mode:
            self.logits = self.logits.reshape((n,) + self._out_shape)
        return y.reshape((n,) + self._out_shape)

    def backward(self, dy, input_grad=True):
        dz = self._dpre(dy.reshape(-1, self.units))
        _matmul(self._x2.T, dz, out=self._dk)
        grads = [self._dk]
        if self.use_bias:
            np.sum(dz, axis=0, out=self._db)
            grads.append(self._db)
        self.gradients = grads
        if not input_grad:
            return None
        dx = _matmul(dz, self.kernel.T,
                     out=self._ws.get("dx", (dz.shape[0], self._in_shape[-1]), self.dtype))
        return dx.reshape((dy.shape[0],) + self._in_shape)


class Dropout(Layer):
    """Inverted dropout: in training, zero each input with probability ``rate`` and scale
    the rest by ``1 / (1 - rate)``; identity at inference. Each training call takes one
    64-bit key from the shared generator of ``cnnfast.utils`` (or the layer's own, given
    ``seed``); the mask is drawn from that key and each element's index in one C pass
    (SplitMix64), so it is the same for any thread count."""

    def __init__(self, rate: float, noise_shape=None, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        rate = float(rate)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout rate must be in [0, 1), got {rate}")
        if noise_shape is not None:
            raise NotImplementedError("Dropout(noise_shape=...) is not supported")
        self.rate = rate
        self.seed = seed
        self._rng = None if seed is None else np.random.default_rng(seed)
        self._mask: np.ndarray | None = None

    def forward(self, x, training=False):
        if not training or self.rate == 0.0:
            self._mask = None
            return x
        rng = self._rng if self._rng is not None else _utils.get_rng()
        key = int(rng.integers(0, 2**64, dtype=np.uint64))
        x = np.asarray(x)
        x = np.require(x, dtype=self.dtype, requirements=("C", "A"))
        mask = self._ws.get("mask", x.shape, self.dtype)
        y = self._ws.get("y", x.shape, self.dtype)
        # mask = (u >= rate) / (1 - rate), y = x * mask
        _training.dropout(x, key, self.rate, y, mask)
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

    def backward(self, dy, input_grad=True):
        if not input_grad:
            return None
        return self._dpre(dy)


def get(identifier: str | Layer) -> Layer:
    """Pass a layer through (for symmetry with the other ``get`` helpers)."""
    if isinstance(identifier, Layer):
        return identifier
    raise TypeError(f"expected a Layer, got {identifier!r}")
