"""The base of the Keras-style layers: ``Layer`` (the protocol every layer follows,
see ``cnnfast.layers``), ``InputLayer`` / ``Input``, the activated-layer base, the
per-layer workspace of reused buffers, and the array helpers the layers and the
execution plan share (the layer-boundary check, the one ReLU-mask call, NHWC views).
``cnnfast.layers`` re-exports the public names.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import count

import numpy as np

from . import activations as _activations
from . import ops
from .ops import training as _training

Shape = tuple[int, ...]


def _aligned_copy(a, dtype) -> np.ndarray:
    """A 64-byte aligned C-contiguous copy (weights: the kernels read them as vectors)."""
    out = ops.empty_aligned(np.shape(a), dtype)
    np.copyto(out, a, casting="unsafe")
    return out


def relu_mask_into(dy: np.ndarray, y: np.ndarray, ws: _Workspace, key: str) -> np.ndarray:
    """ReLU backward, dy where y > 0 else 0: one fused C pass, in place into dy
    when dy is a writable aligned C-contiguous array of y's dtype (else into the
    workspace buffer ``key``). ``y`` is a ReLU output (or, for max/min pooling of
    ReLU outputs, the pooled output: its sign is the same mask)."""
    if not (dy.flags.writeable and dy.flags.c_contiguous and dy.flags.aligned
            and dy.dtype == y.dtype):
        buf = ws.get(key, dy.shape, y.dtype)
        np.copyto(buf, dy)
        dy = buf
    _training.relu_mask(dy, _contiguous(y, y.dtype))
    return dy


def _contiguous(a: np.ndarray, dtype) -> np.ndarray:
    """``a`` as an aligned C-contiguous array of ``dtype``, copied only when it is not."""
    if a.dtype == dtype and a.flags.c_contiguous and a.flags.aligned:
        return a
    return np.require(a, dtype=dtype, requirements=("C", "A"))


def _nhwc(a: np.ndarray, fmt: str) -> np.ndarray:
    """An NCHW array as the NHWC C-contiguous array the kernels read (a copy), or
    the array itself for channels_last."""
    if fmt == "channels_last":
        return a
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1))


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


def spec_for_batch(specs: dict, n: int, resolve):
    """The resolved spec (``cnnfast._spec``) of a layer for a batch of ``n``, from
    ``specs`` (one per batch size, bounded like the workspaces): the first is resolved by
    ``resolve(n)``, the others are the same problem ``with_batch(n)``."""
    spec = specs.get(n)
    if spec is None:
        spec = resolve(n) if not specs else next(iter(specs.values())).with_batch(n)
        if len(specs) >= _Workspace._MAX:
            specs.clear()
        specs[n] = spec
    return spec


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
        # the arrays backward writes the weight gradients to (same order as weights)
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
        self.weights, self.gradients = [], []
        self._create_weights()
        if len(self.gradients) != len(self.weights):
            self.gradients = [None] * len(self.weights)
        self.built = True

    def _create_weights(self) -> None:
        """Create ``weights`` (and, optionally, the ``gradients`` arrays) once built."""

    def _prepared(self, x: np.ndarray) -> np.ndarray:
        """The layer boundary's one check: ``x`` of shape ``(batch,) + input_shape`` as
        an aligned C-contiguous array of the layer's dtype (copied only when it is not)."""
        if x.shape[1:] != self._in_shape:
            raise ValueError(
                f"layer {self.name!r} expects input shape (None, *{self._in_shape}), "
                f"got {x.shape}"
            )
        return _contiguous(x, self.dtype)

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
    """A layer followed by an activation.

    ``forward`` = activation(``forward_linear``); ``backward`` = the activation's
    backward, then ``backward_linear``. The execution plan calls the two halves
    itself where it owns the activation's backward (``cnnfast._plan``).
    """

    def __init__(self, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.activation = _activations.get(activation)
        self._y: np.ndarray | None = None

    def forward_linear(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """The output before the activation (kept for ``backward_linear``)."""
        raise NotImplementedError

    def backward_linear(self, dz: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """``backward`` from ``dz``, the gradient w.r.t. the output before the activation."""
        raise NotImplementedError

    def _activate(self, z: np.ndarray, z_is_ours: bool) -> np.ndarray:
        """Apply the activation to pre-activation ``z``; keep what backward needs."""
        act = self.activation
        if act.name == "linear":
            y = z
        else:
            # In place when z is a fresh array nobody else holds (only y is needed later).
            y = act.forward(z, out=z if z_is_ours else self._ws.get("act", z.shape, z.dtype))
        self._y = y
        return y

    def _dpre(self, dy: np.ndarray) -> np.ndarray:
        """Gradient w.r.t. the pre-activation, from the gradient w.r.t. the output."""
        if self.activation.name == "linear":
            return dy
        return self.activation.backward(dy, self._y,
                                        out=self._ws.get("dpre", dy.shape, dy.dtype))

    def backward(self, dy, input_grad=True):
        return self.backward_linear(self._dpre(dy), input_grad)
