"""``keras.models`` for cnnfast: ``Sequential``, ``load_model``, ``save_model``."""

from ..models import Sequential, load_model, save_model
from ._missing import refuse

__all__ = ["Sequential", "load_model", "save_model"]

__getattr__ = refuse("models", __all__)
