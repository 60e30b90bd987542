"""``keras.losses`` for cnnfast (``cnnfast.losses``)."""

from ..losses import (
    CategoricalCrossentropy,
    Loss,
    MeanSquaredError,
    SparseCategoricalCrossentropy,
    categorical_crossentropy,
    get,
    mean_squared_error,
    mse,
    sparse_categorical_crossentropy,
)
from ._missing import refuse

__all__ = ["CategoricalCrossentropy", "Loss", "MeanSquaredError",
           "SparseCategoricalCrossentropy", "categorical_crossentropy", "get",
           "mean_squared_error", "mse", "sparse_categorical_crossentropy"]

__getattr__ = refuse("losses", __all__)
