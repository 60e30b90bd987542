"""``keras.layers`` for cnnfast: the layers cnnfast implements (``cnnfast.layers``)."""

from ..layers import (
    Activation,
    AveragePooling2D,
    AvgPool2D,
    Conv2D,
    Convolution2D,
    Dense,
    Dropout,
    Flatten,
    Input,
    InputLayer,
    Layer,
    MaxPool2D,
    MaxPooling2D,
    MinPooling2D,
)
from ._missing import refuse

__all__ = ["Activation", "AveragePooling2D", "AvgPool2D", "Conv2D", "Convolution2D",
           "Dense", "Dropout", "Flatten", "Input", "InputLayer", "Layer", "MaxPool2D",
           "MaxPooling2D", "MinPooling2D"]

__getattr__ = refuse("layers", __all__)
