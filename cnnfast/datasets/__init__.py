"""Datasets for the Keras-style API (``cnnfast.datasets.mnist.load_data()``, as in Keras)."""

from . import mnist

__all__ = ["mnist"]
