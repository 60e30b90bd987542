"""``keras.initializers`` for cnnfast (``cnnfast.initializers``)."""

from ..initializers import (
    GlorotNormal,
    GlorotUniform,
    HeNormal,
    HeUniform,
    Initializer,
    Ones,
    RandomNormal,
    RandomUniform,
    Zeros,
    get,
)
from ._missing import refuse

__all__ = ["GlorotNormal", "GlorotUniform", "HeNormal", "HeUniform", "Initializer", "Ones",
           "RandomNormal", "RandomUniform", "Zeros", "get"]

__getattr__ = refuse("initializers", __all__)
