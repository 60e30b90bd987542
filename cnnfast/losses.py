"""Losses (categorical / sparse categorical cross-entropy, mean squared error) and accuracy.

All losses reduce like Keras' default ``sum_over_batch_size``: the per-sample loss
averaged over the batch. ``value_and_grad(y_true, y_pred)`` returns the mean loss
and its gradient with respect to ``y_pred``.

Cross-entropy after a softmax is computed *from the logits*: ``Sequential`` asks
``value_and_grad_logits(y_true, logits, probs)`` whenever the last layer's
activation is softmax, which uses a log-sum-exp (no ``log(0)`` however large the
logits) and returns the gradient with respect to the logits directly,
``(p - y) / N`` for one-hot targets, so the softmax Jacobian is never formed. For
C-contiguous float32/float64 arrays that runs as one C pass per row
(``csrc/softmax_xent.c``), with the same gradient bits as the NumPy formulation here.
"""

from __future__ import annotations

import numpy as np

from .ops import training as _training

__all__ = [
    "Loss", "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "MeanSquaredError",
    "categorical_crossentropy", "sparse_categorical_crossentropy", "mse",
    "mean_squared_error", "get",
]

_EPSILON = 1e-7  # Keras' backend epsilon, used to clip probabilities


class Loss:
    """Base class. ``name`` is what Keras prints; ``supports_logits`` marks cross-entropies."""

    name = "loss"
    supports_logits = False

    def check_targets(self, y: np.ndarray, n: int, out_shape: tuple, dtype) -> np.ndarray:
        """Validate ``y`` against a model output of shape ``(n,) + out_shape``; cast it.

        As in Keras, targets without the output's last axis of size 1 get it:
        ``(N,)`` targets for a ``Dense(1)`` output are read as ``(N, 1)``.
        """
        y = _as_numeric(y, "y")
        expected = (n,) + tuple(out_shape)
        if expected[-1] == 1 and y.shape == expected[:-1]:
            y = y[..., np.newaxis]
        if y.shape != expected:
            raise ValueError(
                f"{self.name}: y has shape {y.shape}, expected {expected} "
                "(the model's output shape)"
            )
        return y.astype(dtype, copy=False)

    def value_and_grad(self, y_true: np.ndarray, y_pred: np.ndarray):
        raise NotImplementedError

    def __call__(self, y_true, y_pred) -> float:
        """Mean loss over the batch (float)."""
        y_pred = np.asarray(y_pred)
        y_true = self.check_targets(y_true, y_pred.shape[0], y_pred.shape[1:],
                                    np.result_type(y_pred.dtype, np.float32))
        return float(self._value(y_true, y_pred))

    def _value(self, y_true, y_pred):
        return self.value_and_grad(y_true, y_pred)[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _as_numeric(a, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind not in "fiub":
        raise TypeError(f"{what} must be a numeric array, got dtype {a.dtype}")
    return a


def _log_softmax_parts(z: np.ndarray):
    """(log-sum-exp per row, shifted logits z - max) for a stable log-softmax."""
    m = np.max(z, axis=-1, keepdims=True)
    zs = z - m
    lse = np.log(np.sum(np.exp(zs), axis=-1, keepdims=True))
    return lse, zs


class CategoricalCrossentropy(Loss):
    """``-sum(y * log p)`` per sample; targets are one-hot (or soft) rows."""

    name = "categorical_crossentropy"
    supports_logits = True

    def __init__(self, from_logits: bool = False):
        self.from_logits = bool(from_logits)

    def value_and_grad(self, y_true, y_pred):
        if self.from_logits:
            return self.value_and_grad_logits(y_true, y_pred, None)
        n = _loss_terms(y_pred)
        # Keras: rescale rows to sum to one, clip to [eps, 1 - eps], then -y log p.
        s = np.sum(y_pred, axis=-1, keepdims=True)
        q = y_pred / s
        qc = np.clip(q, _EPSILON, 1.0 - _EPSILON)
        loss = -np.sum(y_true * np.log(qc)) / max(n, 1)
        # d/dq of -sum y log clip(q) is -y/q where q is not clipped, 0 where it is.
        dq = np.where(qc == q, -y_true / qc, 0.0)
        # Through the normalisation q = p / s: dp_j = (dq_j - <dq, q>) / s.
        dp = (dq - np.sum(dq * q, axis=-1, keepdims=True)) / s
        return loss, (dp / max(n, 1)).astype(y_pred.dtype, copy=False)

    def value_and_grad_logits(self, y_true, logits, probs=None):
        """Loss from logits ``z`` and its gradient w.r.t. ``z``; ``probs`` = softmax(z) if known."""
        if _one_pass_ok(logits, y_true, probs):
            # the same gradient, operation by operation, in one C pass per row
            grad = np.empty_like(logits)
            return _training.softmax_xent(logits, y_true, probs, grad), grad
        n = _loss_terms(logits)
        lse, zs = _log_softmax_parts(logits)
        ysum = np.sum(y_true, axis=-1, keepdims=True)
        loss = (np.sum(ysum * lse) - np.sum(y_true * zs)) / max(n, 1)
        if probs is None:
            probs = np.exp(zs - lse)
        grad = probs * ysum if not _all_one(ysum) else probs.copy()
        grad -= y_true
        grad *= 1.0 / max(n, 1)
        return float(loss), grad.astype(logits.dtype, copy=False)


def _loss_terms(y_pred: np.ndarray) -> int:
    """How many per-sample losses the mean runs over: one per row of classes, so
    (N, T, classes) outputs average over N * T, as Keras's sum-over-batch-size
    reduction does (not just over N). At least 1, for empty batches."""
    return max(y_pred.size // max(y_pred.shape[-1], 1), 1) if y_pred.ndim else 1


def _one_pass_ok(logits, y_true, probs) -> bool:
    """Whether the C softmax cross-entropy takes these arrays as they are."""
    arrays = (logits, y_true) if probs is None else (logits, y_true, probs)
    return logits.ndim == 2 and logits.shape[1] >= 1 and _training.takes_as_is(*arrays)


def _all_one(a: np.ndarray) -> bool:
    return bool(np.all(a == 1))


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy with integer class labels of shape ``(N,)`` or ``(N, 1)``."""

    name = "sparse_categorical_crossentropy"
    supports_logits = True

    def __init__(self, from_logits: bool = False):
        self.from_logits = bool(from_logits)

    def check_targets(self, y, n, out_shape, dtype):
        y = _as_numeric(y, "y")
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.shape != (n,):
            raise ValueError(
                f"{self.name}: y has shape {y.shape}, expected ({n},) or ({n}, 1) integer labels"
            )
        if len(out_shape) != 1:
            raise ValueError(f"{self.name} needs a 2-D model output, got (None, *{out_shape})")
        if y.dtype.kind == "f" and np.any(y != np.round(y)):
            raise ValueError(f"{self.name}: y must hold integer labels")
        labels = y.astype(np.int64)
        if labels.size and (labels.min() < 0 or labels.max() >= out_shape[0]):
            raise ValueError(
                f"{self.name}: labels must lie in [0, {out_shape[0]}), "
                f"got [{labels.min()}, {labels.max()}]"
            )
        return labels

    def value_and_grad(self, y_true, y_pred):
        if self.from_logits:
            return self.value_and_grad_logits(y_true, y_pred, None)
        n = y_pred.shape[0]
        rows = np.arange(n)
        s = np.sum(y_pred, axis=-1, keepdims=True)
        q = y_pred / s
        qc = np.clip(q, _EPSILON, 1.0 - _EPSILON)
        picked = qc[rows, y_true]
        loss = -np.sum(np.log(picked)) / max(n, 1)
        dq = np.zeros_like(q)
        dq[rows, y_true] = np.where(picked == q[rows, y_true], -1.0 / picked, 0.0)
        dp = (dq - np.sum(dq * q, axis=-1, keepdims=True)) / s
        return float(loss), (dp / max(n, 1)).astype(y_pred.dtype, copy=False)

    def value_and_grad_logits(self, y_true, logits, probs=None):
        n = logits.shape[0]
        rows = np.arange(n)
        lse, zs = _log_softmax_parts(logits)
        loss = (np.sum(lse) - np.sum(zs[rows, y_true])) / max(n, 1)
        grad = np.exp(zs - lse) if probs is None else probs.copy()
        grad[rows, y_true] -= 1
        grad *= 1.0 / max(n, 1)
        return float(loss), grad.astype(logits.dtype, copy=False)


class MeanSquaredError(Loss):
    """``mean((y - p)**2)`` over the last axis, averaged over the batch."""

    name = "mean_squared_error"

    def value_and_grad(self, y_true, y_pred):
        d = y_pred - y_true
        size = max(d.size, 1)
        loss = float(np.sum(d * d) / size)
        d *= 2.0 / size
        return loss, d.astype(y_pred.dtype, copy=False)


# The plain functions return one loss per sample, shape ``y_pred.shape[:-1]``, as
# Keras's do (its classes, like the ones above, return the mean).

def _checked(loss: Loss, y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_pred = np.asarray(y_pred)
    if y_pred.ndim < 1:
        raise ValueError(f"{loss.name}: y_pred must have a class axis, got a scalar")
    dtype = np.result_type(y_pred.dtype, np.float32)
    y_true = loss.check_targets(y_true, y_pred.shape[0], y_pred.shape[1:], dtype)
    return y_true, y_pred.astype(dtype, copy=False)


def categorical_crossentropy(y_true, y_pred, from_logits: bool = False) -> np.ndarray:
    """Per-sample ``-sum(y * log p)`` over the last axis (Keras's clipping and row
    normalisation of probabilities, or log-softmax of logits)."""
    y_true, y_pred = _checked(CategoricalCrossentropy(from_logits), y_true, y_pred)
    if from_logits:
        lse, zs = _log_softmax_parts(y_pred)
        return np.sum(y_true * (lse - zs), axis=-1)
    q = np.clip(y_pred / np.sum(y_pred, axis=-1, keepdims=True), _EPSILON, 1.0 - _EPSILON)
    return -np.sum(y_true * np.log(q), axis=-1)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits: bool = False) -> np.ndarray:
    """Per-sample cross-entropy with integer labels."""
    labels, y_pred = _checked(SparseCategoricalCrossentropy(from_logits), y_true, y_pred)
    rows = np.arange(len(labels))
    if from_logits:
        lse, zs = _log_softmax_parts(y_pred)
        return lse[:, 0] - zs[rows, labels]
    q = np.clip(y_pred / np.sum(y_pred, axis=-1, keepdims=True), _EPSILON, 1.0 - _EPSILON)
    return -np.log(q[rows, labels])


def mean_squared_error(y_true, y_pred) -> np.ndarray:
    """Per-sample ``mean((y - p)**2)`` over the last axis."""
    y_true, y_pred = _checked(MeanSquaredError(), y_true, y_pred)
    return np.mean((y_pred - y_true) ** 2, axis=-1)


mse = mean_squared_error

_REGISTRY = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
}


def get(identifier: str | Loss) -> Loss:
    """Resolve a loss name or pass a ``Loss`` object through."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in _REGISTRY:
            return _REGISTRY[key]()
        raise ValueError(f"unknown loss {identifier!r}; expected one of {sorted(_REGISTRY)}")
    raise TypeError(f"loss must be a name or a Loss, got {identifier!r}")


# ---- accuracy ---------------------------------------------------------------------------

def count_correct(loss: Loss, y_true: np.ndarray, y_pred: np.ndarray) -> int:
    """Number of correct predictions in a batch, choosing Keras' meaning of "accuracy".

    Sparse labels: argmax vs label. One output unit: threshold at 0.5 (binary).
    Otherwise: argmax of prediction vs argmax of target (categorical).
    """
    if isinstance(loss, SparseCategoricalCrossentropy):
        return int(np.count_nonzero(np.argmax(y_pred, axis=-1) == y_true))
    if y_pred.shape[-1] == 1:
        # Keras's binary accuracy: the thresholded prediction against the target as it is
        hits = (y_pred > 0.5).astype(y_true.dtype) == y_true
        return int(np.count_nonzero(hits))
    return int(np.count_nonzero(np.argmax(y_pred, axis=-1) == np.argmax(y_true, axis=-1)))


def accuracy_denominator(loss: Loss, y_pred: np.ndarray) -> int:
    """How many predictions ``count_correct`` judged in this batch."""
    if not isinstance(loss, SparseCategoricalCrossentropy) and y_pred.shape[-1] == 1:
        return int(y_pred.size)
    return int(np.prod(y_pred.shape[:-1]))
