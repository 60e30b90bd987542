"""A Keras-shaped namespace over cnnfast's layer API: a Keras program that uses only
what cnnfast implements runs with its imports changed to ``from cnnfast import keras``
and ``from cnnfast.keras import layers``.

Laid out like Keras 3: ``keras.Sequential``, ``keras.Input``, ``keras.layers``,
``keras.models``, ``keras.datasets`` (``mnist``), ``keras.utils``, ``keras.optimizers``,
``keras.losses``, ``keras.callbacks``, ``keras.initializers``, ``keras.activations``,
``keras.saving``. Every object is cnnfast's own (``keras.layers.Dense`` is
``cnnfast.layers.Dense``). A Keras name cnnfast does not implement (``keras.Model``,
``keras.layers.BatchNormalization``, ``keras.callbacks.TensorBoard``, ...) raises
``AttributeError`` naming it. Importing ``cnnfast`` does not import this package.
"""

from . import (
    activations,
    callbacks,
    datasets,
    initializers,
    layers,
    losses,
    models,
    optimizers,
    saving,
    utils,
)
from ._missing import refuse
from .layers import Input, InputLayer, Layer
from .models import Sequential

__all__ = ["Sequential", "Input", "InputLayer", "Layer", "activations", "callbacks",
           "datasets", "initializers", "layers", "losses", "models", "optimizers",
           "saving", "utils"]

__getattr__ = refuse("", __all__)
