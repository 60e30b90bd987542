"""``keras.saving`` for cnnfast: ``load_model``, ``save_model`` (``cnnfast.saving``)."""

from ..models import load_model, save_model
from ._missing import refuse

__all__ = ["load_model", "save_model"]

__getattr__ = refuse("saving", __all__)
