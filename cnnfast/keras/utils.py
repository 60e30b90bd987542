"""``keras.utils`` for cnnfast: ``to_categorical``, ``set_random_seed``."""

from ..utils import set_random_seed, to_categorical
from ._missing import refuse

__all__ = ["set_random_seed", "to_categorical"]

__getattr__ = refuse("utils", __all__)
