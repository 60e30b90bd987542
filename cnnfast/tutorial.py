"""The tutorial's MNIST CNN and its data split, in one place.

``cnnfast train`` trains this model and ``cnnfast bench`` times it (its ``train``,
``infer`` and ``latency`` workloads), so both build it here: the classic Keras MNIST
example, Conv2D(32, 3x3, same, relu) -> MaxPooling2D(2) -> Conv2D(64, 3x3, same, relu)
-> MaxPooling2D(2) -> Flatten -> Dense(128, relu) -> Dropout(0.5) -> Dense(10, softmax).
The layer API is imported on first use, so that importing this module (and the
``cnnfast`` command that does) stays light.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["build_tutorial_model", "tutorial_split"]


def build_tutorial_model(input_shape: tuple = (28, 28, 1), num_classes: int = 10,
                         dtype: Any = "float32"):
    """The tutorial's CNN, written with the Keras-style API (a ``Sequential``)."""
    from .layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
    from .models import Sequential

    return Sequential([
        Conv2D(32, kernel_size=(3, 3), padding="same", activation="relu",
               input_shape=input_shape),
        MaxPooling2D(pool_size=(2, 2)),
        Conv2D(64, kernel_size=(3, 3), padding="same", activation="relu"),
        MaxPooling2D(pool_size=(2, 2)),
        Flatten(),
        Dense(128, activation="relu"),
        Dropout(0.5),
        Dense(num_classes, activation="softmax"),
    ], dtype=dtype)


def tutorial_split(n: int, test_size: float = 0.3, seed: int = 1) -> tuple:
    """(train indices, test indices) of n samples, the ones scikit-learn's
    ``train_test_split(np.arange(n), test_size=test_size, random_state=seed)`` returns:
    a permutation from ``RandomState(seed)``, its first ceil(test_size * n) entries the
    test set, the rest the training set."""
    n_test = math.ceil(test_size * n)
    if not 0 < n_test < n:
        raise ValueError(f"a {test_size:g} test split of {n} samples leaves a set empty")
    perm = np.random.RandomState(seed).permutation(n)
    return perm[n_test:], perm[:n_test]
