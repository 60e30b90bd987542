"""``keras.activations`` for cnnfast (``cnnfast.activations``)."""

from ..activations import get, linear, relu, serialize, sigmoid, softmax, tanh
from ._missing import refuse

__all__ = ["get", "linear", "relu", "serialize", "sigmoid", "softmax", "tanh"]

__getattr__ = refuse("activations", __all__)
