"""Element-wise activations of the Keras-style layers: relu, sigmoid, tanh, softmax, linear.

Each activation is an object with ``forward(x, out=None)`` and
``backward(dy, y, out=None)``; the derivative is written in terms of the *output*
``y`` (all five allow it), so layers keep only their output for the backward pass.
``out=`` lets layers reuse workspaces between steps; ``out`` may be ``x`` itself.
The plain functions (``relu(x)`` ...) mirror ``keras.activations``.
"""

from __future__ import annotations

import numpy as np

from .ops import training as _training

__all__ = [
    "Activation", "get", "serialize",
    "relu", "sigmoid", "tanh", "softmax", "linear",
]


class Activation:
    """Base class: identity (``linear``)."""

    name = "linear"

    def forward(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        if out is None or out is x:
            return x
        np.copyto(out, x)
        return out

    def backward(self, dy: np.ndarray, y: np.ndarray,
                 out: np.ndarray | None = None) -> np.ndarray:
        return dy

    def __repr__(self) -> str:
        return f"<activation {self.name}>"


class _Linear(Activation):
    name = "linear"


class _ReLU(Activation):
    name = "relu"

    def forward(self, x, out=None):
        return np.maximum(x, 0, out=out)

    def backward(self, dy, y, out=None):
        # y > 0 exactly where x > 0; multiply by the boolean mask (no temporaries
        # beyond the mask when out is given).
        return np.multiply(dy, y > 0, out=out)


class _Sigmoid(Activation):
    name = "sigmoid"

    def forward(self, x, out=None):
        # 1 / (1 + exp(-x)) overflows exp for very negative x; numpy's exp gives inf
        # there and the division then gives the correct 0, so only silence the warning.
        with np.errstate(over="ignore"):
            out = np.negative(x, out=out)
            np.exp(out, out=out)
            out += 1
            np.reciprocal(out, out=out)
        return out

    def backward(self, dy, y, out=None):
        out = np.subtract(1, y, out=out)
        out *= y
        out *= dy
        return out


class _Tanh(Activation):
    name = "tanh"

    def forward(self, x, out=None):
        return np.tanh(x, out=out)

    def backward(self, dy, y, out=None):
        out = np.multiply(y, y, out=out)
        np.subtract(1, out, out=out)
        out *= dy
        return out


def _c_softmax_takes(x: np.ndarray, out: np.ndarray | None) -> bool:
    """Whether the C softmax takes these arrays as they are (float32/float64,
    C-contiguous and aligned, ``out`` None, ``x``, or a matching array of its own)."""
    if x.ndim < 1 or x.shape[-1] < 1 or not _training.takes_as_is(x):
        return False
    if out is None or out is x:
        return True
    return (_training.takes_as_is(x, out) and out.flags.writeable
            and not np.shares_memory(out, x))


class _Softmax(Activation):
    """Softmax over the last axis, shifted by the row maximum for stability."""

    name = "softmax"

    def forward(self, x, out=None):
        if _c_softmax_takes(x, out):
            if out is None:
                out = np.empty_like(x)
            # one C pass per row (a model's output layer): NumPy takes five calls,
            # about 15 us of a one-image predict
            _training.softmax(x, out)
            return out
        # the ndarray methods: the same reductions as np.max / np.sum without their
        # dispatch layers
        m = x.max(axis=-1, keepdims=True)
        out = np.subtract(x, m, out=out)
        np.exp(out, out=out)
        out /= out.sum(axis=-1, keepdims=True)
        return out

    def backward(self, dy, y, out=None):
        # J^T dy = y * (dy - <dy, y>) row by row.
        s = np.sum(dy * y, axis=-1, keepdims=True)
        out = np.subtract(dy, s, out=out)
        out *= y
        return out


_REGISTRY = {
    "linear": _Linear(),
    "relu": _ReLU(),
    "sigmoid": _Sigmoid(),
    "tanh": _Tanh(),
    "softmax": _Softmax(),
}


def get(identifier: None | str | Activation) -> Activation:
    """Resolve ``None`` (linear), a name, or an ``Activation`` object."""
    if identifier is None:
        return _REGISTRY["linear"]
    if isinstance(identifier, Activation):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in _REGISTRY:
            return _REGISTRY[key]
        raise ValueError(
            f"unknown activation {identifier!r}; expected one of {sorted(_REGISTRY)}"
        )
    raise TypeError(f"activation must be a name or an Activation, got {identifier!r}")


def serialize(activation: Activation) -> str:
    return activation.name


def _as_float(x) -> np.ndarray:
    x = np.asarray(x)
    return x if x.dtype.kind == "f" else x.astype(np.float32)


def relu(x) -> np.ndarray:
    return _REGISTRY["relu"].forward(_as_float(x))


def sigmoid(x) -> np.ndarray:
    return _REGISTRY["sigmoid"].forward(_as_float(x))


def tanh(x) -> np.ndarray:
    return _REGISTRY["tanh"].forward(_as_float(x))


def softmax(x) -> np.ndarray:
    return _REGISTRY["softmax"].forward(_as_float(x))


def linear(x) -> np.ndarray:
    return np.asarray(x)
