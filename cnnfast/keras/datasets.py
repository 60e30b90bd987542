"""``keras.datasets`` for cnnfast: ``mnist`` (``mnist.load_data()``, see
``cnnfast.datasets.mnist`` for where the files are read from)."""

from ..datasets import mnist
from ._missing import refuse

__all__ = ["mnist"]

__getattr__ = refuse("datasets", __all__)
