"""Small helpers of the Keras-style API: the one random generator, one-hot labels.

Every random draw of the Keras-style API (weight initialisers, shuffling in ``fit``,
``Dropout`` masks) comes from the single numpy ``Generator`` kept here, so that
``set_random_seed(s)`` before building and training a model makes the whole run
repeat bit-for-bit (the kernels themselves are deterministic for any thread count).
"""

from __future__ import annotations

import random

import numpy as np

__all__ = ["set_random_seed", "get_rng", "to_categorical"]

# Seeded from the OS until set_random_seed() is called, like Keras without a seed.
_rng: np.random.Generator = np.random.default_rng()


def set_random_seed(seed: int) -> None:
    """Seed the generator used by initialisers, shuffling and dropout.

    Also seeds Python's ``random`` and numpy's legacy global state, as Keras'
    ``keras.utils.set_random_seed`` does, so user code that draws from them repeats too.
    """
    global _rng
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    _rng = np.random.default_rng(int(seed))
    random.seed(int(seed))
    np.random.seed(int(seed) % (2**32))


def get_rng() -> np.random.Generator:
    """The generator shared by the Keras-style API (see ``set_random_seed``)."""
    return _rng


def to_categorical(y, num_classes: int | None = None, dtype="float32") -> np.ndarray:
    """One-hot encode integer class labels, as ``keras.utils.to_categorical``.

    ``y`` of shape ``S`` (a trailing axis of length 1 is dropped) gives an array of
    shape ``S + (num_classes,)``; ``num_classes`` defaults to ``max(y) + 1``.
    """
    y = np.asarray(y)
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise ValueError("y must hold integer class labels")
    elif y.dtype.kind not in "iub":
        raise TypeError(f"y must hold integer class labels, got dtype {y.dtype}")
    shape = y.shape
    if len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    labels = y.reshape(-1).astype(np.int64)
    if labels.size and labels.min() < 0:
        raise ValueError(f"y must hold labels >= 0, got {labels.min()}")
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    elif labels.size and labels.max() >= num_classes:
        raise ValueError(
            f"label {labels.max()} out of range for num_classes={num_classes}"
        )
    out = np.zeros((labels.size, num_classes), dtype=dtype)
    out[np.arange(labels.size), labels] = 1
    return out.reshape(shape + (num_classes,))
