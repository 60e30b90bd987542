"""The functional API: numpy arrays in, numpy arrays out.

This package is the checking boundary of cnnfast and the only importer of its
compiled kernels (``cnnfast._kernels``; the run-time configuration in
``cnnfast._config`` shares it). Every function validates its arguments,
raising ``ValueError``/``TypeError`` that name the argument and the shapes
involved; resolves strides, padding and dilation once (``cnnfast._spec``,
cached per shape and argument set); converts the inputs to C-contiguous
arrays of the computation dtype; allocates the outputs (or checks ``out=``);
and calls the GIL-free kernels.

The kernels work in ``channels_last`` (NHWC) layout with Keras-order kernels
``(KH, KW, C, F)``; ``channels_first`` inputs are transposed at this boundary.

Modules: ``conv`` (convolutions, and convolution + pooling), ``pool``,
``gemm`` (matmul, dense), ``training`` (the kernels the layer API calls on
arrays it prepares itself), ``_arrays`` (array and ``out=`` handling),
``_cache`` (resolved specs per argument set).
"""

from __future__ import annotations

from ._arrays import empty_aligned
from .conv import conv2d, conv2d_backward, conv2d_pool2d, conv2d_pool2d_backward
from .gemm import dense, matmul
from .pool import (
    avg_pool2d,
    avg_pool2d_backward,
    max_pool2d,
    max_pool2d_backward,
    min_pool2d,
    min_pool2d_backward,
    pool2d,
    pool2d_backward,
)

__all__ = [
    "empty_aligned",
    "matmul",
    "dense",
    "conv2d",
    "conv2d_backward",
    "conv2d_pool2d",
    "conv2d_pool2d_backward",
    "pool2d",
    "pool2d_backward",
    "max_pool2d",
    "avg_pool2d",
    "min_pool2d",
    "max_pool2d_backward",
    "avg_pool2d_backward",
    "min_pool2d_backward",
]
