"""Pooling of the functional API: max / average / min pooling and its gradient.

Each call resolves its window once (``cnnfast._spec.PoolSpec``, cached on the
shapes and arguments by ``_cache``) and calls the GIL-free kernels.
"""

from __future__ import annotations

from typing import Any, Union

import numpy as np

from .. import _kernels
from .._spec import POOL_MODES
from . import _cache
from ._arrays import (
    _as_real_array,
    _check_index_range,
    _check_window_indices,
    _compute_dtype,
    _contig,
    _deliver,
    _index_array,
    _out_array,
    _pooled_outputs,
    _to_nhwc,
    _unaliased,
)

IntOrPair = Union[int, tuple[int, int]]
Padding = Union[str, int, tuple[int, int], tuple[tuple[int, int], tuple[int, int]]]

_AVG = POOL_MODES["avg"]


def pool2d(
    x: Any,
    pool_size: IntOrPair = 2,
    strides: IntOrPair | None = None,
    padding: Padding = "valid",
    mode: str = "max",
    data_format: str = "channels_last",
    return_indices: bool = False,
    out: Any = None,
):
    """Max / average / min pooling over (H, W) windows.

    Padded cells never win a max/min and are not counted by avg. Ties go to
    the first cell in row-major window order; a NaN in a window gives NaN.
    With ``return_indices=True`` (max/min only) also returns the int32 flat
    index ``ih * W + iw`` of each winner inside its plane, for
    :func:`pool2d_backward`. ``out``: an array to write y into, or
    ``(y, indices)`` with ``return_indices``.
    """
    xa = _as_real_array(x, "x")
    dt = _compute_dtype(xa)
    spec = _cache.pool_spec(xa.shape, pool_size, strides, padding, mode, data_format)
    if return_indices and spec.mode == _AVG:
        raise ValueError("return_indices is only meaningful for mode 'max' or 'min'")
    fmt = spec.fmt
    y, idx, y_out, i_out = _pooled_outputs(out, return_indices, spec.out_shape,
                                           spec.out_nhwc, dt, fmt)
    (xin,) = _unaliased((y_out, i_out), _contig(_to_nhwc(xa, fmt), dt))
    _kernels.pool2d_forward(xin, y, idx, spec)
    y = _deliver(y, fmt, y_out)
    if return_indices:
        return y, _deliver(idx, fmt, i_out)
    return y


def pool2d_backward(
    dy: Any,
    x: Any,
    pool_size: IntOrPair = 2,
    strides: IntOrPair | None = None,
    padding: Padding = "valid",
    mode: str = "max",
    data_format: str = "channels_last",
    indices: Any | None = None,
    out: np.ndarray | None = None,
    *,
    _check_values: bool = True,
) -> np.ndarray:
    """Gradient of :func:`pool2d` w.r.t. x given ``dy``.

    max/min: each window's dy goes whole to its winner (the first one on
    ties). ``indices`` from ``pool2d(..., return_indices=True)`` on the same x
    skips searching again; an index that is not a cell of its own window (from
    another x or other pooling arguments) is a ValueError. avg: dy is spread
    evenly over the in-bounds cells.

    (``_check_values=False`` is for callers that produced ``indices`` themselves:
    it skips the pass that checks them. The kernel stays memory-safe regardless:
    a gradient only lands on a cell of its own window.)
    """
    dya = _as_real_array(dy, "dy")
    xa = _as_real_array(x, "x")
    dt = _compute_dtype(xa, dya)
    spec = _cache.pool_spec(xa.shape, pool_size, strides, padding, mode, data_format)
    expected = spec.out_shape
    if dya.shape != expected:
        raise ValueError(
            f"dy must have the shape of pool2d's output {expected} for x {xa.shape}, "
            f"got {dya.shape}"
        )
    fmt = spec.fmt
    idx4 = None
    if indices is not None and spec.mode != _AVG:
        ia, idx4 = _index_array(indices, expected, fmt)
        if _check_values:
            _check_index_range(ia, spec, "H*W")
    if out is not None:
        out = _out_array(out, xa.shape, dt, "out")
    use = out is not None and fmt == "channels_last"
    dx = out if use else np.empty(spec.x_nhwc, dtype=dt)
    xin = None
    if spec.mode != _AVG and idx4 is None:
        xin = _contig(_to_nhwc(xa, fmt), dt)
    dy4, xin, idx4 = _unaliased((out,), _contig(_to_nhwc(dya, fmt), dt), xin, idx4)
    # the kernel counts indices that are not cells of their windows as it goes
    # (their gradient is dropped): refused, with the first named
    stray = _kernels.pool2d_backward(dy4, xin, idx4, dx, spec,
                                     _check_values and idx4 is not None)
    if stray and _check_values:
        _check_window_indices(ia, idx4, fmt, spec, "H*W")
    return _deliver(dx, fmt, out)


def _bind(mode: str):
    def fwd(x, pool_size=2, strides=None, padding="valid", data_format="channels_last",
            return_indices=False, out=None):
        return pool2d(x, pool_size, strides, padding, mode, data_format, return_indices, out)

    def bwd(dy, x, pool_size=2, strides=None, padding="valid", data_format="channels_last",
            indices=None, out=None):
        return pool2d_backward(dy, x, pool_size, strides, padding, mode, data_format, indices,
                               out)

    fwd.__name__ = f"{mode}_pool2d"
    fwd.__qualname__ = fwd.__name__
    fwd.__doc__ = f"``pool2d(..., mode={mode!r})``."
    bwd.__name__ = f"{mode}_pool2d_backward"
    bwd.__qualname__ = bwd.__name__
    bwd.__doc__ = f"``pool2d_backward(..., mode={mode!r})``."
    return fwd, bwd


max_pool2d, max_pool2d_backward = _bind("max")
avg_pool2d, avg_pool2d_backward = _bind("avg")
min_pool2d, min_pool2d_backward = _bind("min")
