"""``keras.optimizers`` for cnnfast: ``SGD``, ``Adam``, ``RMSprop`` (``cnnfast.optimizers``)."""

from ..optimizers import SGD, Adam, Optimizer, RMSprop, get
from ._missing import refuse

__all__ = ["SGD", "Adam", "Optimizer", "RMSprop", "get"]

__getattr__ = refuse("optimizers", __all__)
