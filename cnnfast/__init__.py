"""cnnfast: a CPU convolution engine for training CNNs.

Hot kernels (conv2d, max/avg/min pooling and their gradients) in C with
OpenMP and run-time-dispatched AVX2/AVX-512 micro-kernels behind a Cython
boundary; a functional API (numpy in, numpy out); and a Keras-like layer API
(``cnnfast.models``, ``cnnfast.layers``), also laid out as Keras
(``from cnnfast import keras``).
"""

from ._config import (  # noqa: E402
    get_flush_denormal,
    get_num_threads,
    openmp_enabled,
    release_workspaces,
    set_flush_denormal,
    set_num_threads,
    show_config,
    simd_level,
)
from ._version import __version__
from .ops import (  # noqa: E402
    avg_pool2d,
    avg_pool2d_backward,
    conv2d,
    conv2d_backward,
    conv2d_pool2d,
    conv2d_pool2d_backward,
    dense,
    empty_aligned,
    matmul,
    max_pool2d,
    max_pool2d_backward,
    min_pool2d,
    min_pool2d_backward,
    pool2d,
    pool2d_backward,
)

__all__ = [
    "__version__",
    "conv2d",
    "conv2d_backward",
    "conv2d_pool2d",
    "conv2d_pool2d_backward",
    "empty_aligned",
    "matmul",
    "dense",
    "pool2d",
    "pool2d_backward",
    "max_pool2d",
    "avg_pool2d",
    "min_pool2d",
    "max_pool2d_backward",
    "avg_pool2d_backward",
    "min_pool2d_backward",
    "get_num_threads",
    "set_num_threads",
    "release_workspaces",
    "set_flush_denormal",
    "get_flush_denormal",
    "openmp_enabled",
    "simd_level",
    "show_config",
]


def __getattr__(name):
    # The Keras-like API is imported on first use, so that the functional
    # API stays a light import.
    import importlib

    if name in ("layers", "models", "optimizers", "losses", "initializers",
                "activations", "utils", "datasets", "reference", "callbacks",
                "saving", "keras"):
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'cnnfast' has no attribute {name!r}")
