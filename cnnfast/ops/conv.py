"""Convolutions of the functional API: conv2d, conv2d_backward, and a convolution
followed by pooling (conv2d_pool2d and its backward), numpy arrays in and out.

Each call resolves its geometry once (``cnnfast._spec``, cached on the shapes and
arguments by ``_cache``), converts the inputs to C-contiguous NHWC arrays of the
computation dtype, separates inputs from ``out=`` arrays that overlap them, and
calls the GIL-free kernels.
"""

from __future__ import annotations

from typing import Any, Union

import numpy as np

from .. import _kernels
from .._spec import POOL_MODE_NAMES, POOL_MODES, parse_activation
from . import _cache
from ._arrays import (
    _as_real_array,
    _check_index_range,
    _check_window_indices,
    _compute_dtype,
    _contig,
    _deliver,
    _deliver_kernel_grad,
    _from_nhwc,
    _grad_out_arrays,
    _index_array,
    _kernel_grad_buffers,
    _kernel_to_hwcf,
    _out_array,
    _pooled_outputs,
    _to_nhwc,
    _unaliased,
)
from .pool import pool2d

IntOrPair = Union[int, tuple[int, int]]
Padding = Union[str, int, tuple[int, int], tuple[tuple[int, int], tuple[int, int]]]

_AVG = POOL_MODES["avg"]


def _conv_inputs(x: Any, kernel: Any, *others: Any) -> tuple:
    """x, kernel (and others: bias, dy) as real arrays, and their computation dtype."""
    xa = _as_real_array(x, "x")
    ka = _as_real_array(kernel, "kernel")
    return (xa, ka) + others, _compute_dtype(xa, ka, *[o for o in others if o is not None])


def _check_bias(ba: np.ndarray | None, f: int) -> None:
    if ba is not None and ba.shape != (f,):
        raise ValueError(f"bias must have shape ({f},) (one value per filter), got {ba.shape}")


def conv2d(
    x: Any,
    kernel: Any,
    bias: Any | None = None,
    strides: IntOrPair = 1,
    padding: Padding = "valid",
    dilation_rate: IntOrPair = 1,
    data_format: str = "channels_last",
    activation: str | None = None,
    out: np.ndarray | None = None,
    algorithm: str = "auto",
) -> np.ndarray:
    """2-D convolution (cross-correlation) of a batch of images.

    channels_last: x ``(N, H, W, C)``, kernel ``(KH, KW, C, F)`` -> ``(N, OH, OW, F)``.
    channels_first: x ``(N, C, H, W)``, kernel ``(F, C, KH, KW)`` -> ``(N, F, OH, OW)``.
    ``padding`` is "valid", "same" (TensorFlow/Keras), an int, ``(ph, pw)`` or
    ``((top, bottom), (left, right))``; zero padding. ``activation="relu"``
    applies ReLU inside the kernel (no extra pass over the output). ``out``: a
    C-contiguous array of the output's shape and dtype to write into (reused
    buffers avoid the page faults of a fresh large allocation per call).
    ``algorithm``: "direct", "winograd" (3x3 stride-1 layers only: F(2x2, 3x3), or
    F(4x4, 3x3) on large layers, notes/winograd.md) or "auto" (Winograd where a fixed
    rule on the geometry says it is faster; the same choice, hence the same bits, on
    every call).
    """
    ba = None if bias is None else _as_real_array(bias, "bias")
    (xa, ka, ba), dt = _conv_inputs(x, kernel, ba)
    spec = _cache.conv_spec(xa.shape, ka.shape, strides, padding, dilation_rate, data_format,
                            algorithm)
    _check_bias(ba, spec.f)
    relu = parse_activation(activation)
    fmt = spec.fmt
    if out is not None:
        out = _out_array(out, spec.out_shape, dt, "out")
    y = out if out is not None and fmt == "channels_last" else np.empty(spec.out_nhwc, dtype=dt)
    xin, kin, bin_ = _unaliased((out,), _contig(_to_nhwc(xa, fmt), dt),
                                _contig(_kernel_to_hwcf(ka, fmt), dt),
                                None if ba is None else _contig(ba, dt))
    _kernels.conv2d_forward(xin, kin, bin_, y, spec, relu)
    return _deliver(y, fmt, out)


def conv2d_backward(
    dy: Any,
    x: Any,
    kernel: Any,
    strides: IntOrPair = 1,
    padding: Padding = "valid",
    dilation_rate: IntOrPair = 1,
    data_format: str = "channels_last",
    input_grad: bool = True,
    kernel_grad: bool = True,
    out: tuple | None = None,
    algorithm: str = "auto",
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Gradients of :func:`conv2d` given ``dy`` = dL/dy.

    Returns ``(dx, dkernel, dbias)``: ``dx`` shaped like ``x`` (``None`` when
    ``input_grad=False``, e.g. for a first layer), ``dkernel`` like ``kernel``
    and ``dbias`` ``(F,)`` = the sum of dy over batch and space (both ``None``
    when ``kernel_grad=False``, e.g. for a frozen layer). The kernel and bias
    gradients are summed in a fixed order: bit-identical for any thread count.
    ``out=(dx, dkernel, dbias)`` (entries may be None) gives arrays to write into.
    ``algorithm`` as for :func:`conv2d` (both gradients).
    """
    dya = _as_real_array(dy, "dy")
    (xa, ka, dya), dt = _conv_inputs(x, kernel, dya)
    spec = _cache.conv_spec(xa.shape, ka.shape, strides, padding, dilation_rate, data_format,
                            algorithm)
    if dya.shape != spec.out_shape:
        raise ValueError(
            f"dy must have the shape of conv2d's output {spec.out_shape} "
            f"(x {xa.shape}, kernel {ka.shape}), got {dya.shape}"
        )
    fmt = spec.fmt
    dx_out, dk_out, db_out = _grad_out_arrays(out, xa, ka, spec.f, dt)
    # every input is separated from every output before the first kernel runs: dx
    # is delivered before the kernel gradient reads x and dy
    dy4, k4, x4 = _unaliased((dx_out, dk_out, db_out), _contig(_to_nhwc(dya, fmt), dt),
                             _contig(_kernel_to_hwcf(ka, fmt), dt) if input_grad else None,
                             _contig(_to_nhwc(xa, fmt), dt) if kernel_grad else None)
    dx = None
    if input_grad:
        use = dx_out is not None and fmt == "channels_last"
        dx4 = dx_out if use else np.empty(spec.x_nhwc, dtype=dt)
        _kernels.conv2d_backward_input(dy4, k4, dx4, spec)
        dx = _deliver(dx4, fmt, dx_out)
    if not kernel_grad:
        return dx, None, None
    dk4, db = _kernel_grad_buffers(spec, dt, dk_out, db_out)
    _kernels.conv2d_backward_kernel(x4, dy4, dk4, db, spec)
    return dx, _deliver_kernel_grad(dk4, dk_out, fmt), db


def conv2d_pool2d(
    x: Any,
    kernel: Any,
    bias: Any | None = None,
    strides: IntOrPair = 1,
    padding: Padding = "valid",
    dilation_rate: IntOrPair = 1,
    data_format: str = "channels_last",
    activation: str | None = None,
    pool_size: IntOrPair = 2,
    pool_strides: IntOrPair | None = None,
    pool_padding: Padding = "valid",
    pool_mode: str = "max",
    return_indices: bool = False,
    out: Any = None,
    algorithm: str = "auto",
):
    """``pool2d(conv2d(x, kernel, bias, ..., activation), pool_size, ...)`` in one pass.

    The result (and the indices, which refer to the convolution output's
    plane exactly as :func:`pool2d`'s do) are bit-identical to the two calls.
    For max/min pooling with unpadded, non-overlapping windows (the usual
    ``MaxPooling2D`` after a ``Conv2D``) the convolution output is made one
    pooling band at a time in cache and never stored: no 4x larger
    intermediate is written and read back, and rows in no window are not
    computed. Other poolings run the two kernels. ``out``: an array for y,
    or ``(y, indices)`` with ``return_indices`` (max/min only). ``algorithm``
    as for :func:`conv2d` (the same choice as the unfused pair's).
    """
    ba = None if bias is None else _as_real_array(bias, "bias")
    (xa, ka, ba), dt = _conv_inputs(x, kernel, ba)
    pp = _cache.conv_pool_spec(xa.shape, ka.shape, strides, padding, dilation_rate,
                               data_format, activation, pool_size, pool_strides,
                               pool_padding, pool_mode, algorithm)
    spec = pp.conv
    _check_bias(ba, spec.f)
    if return_indices and pp.pool.mode == _AVG:
        raise ValueError("return_indices is only meaningful for pool_mode 'max' or 'min'")
    if not pp.fused:
        z = conv2d(xa, ka, ba, strides, padding, dilation_rate, data_format, activation,
                   algorithm=algorithm)
        return pool2d(z, pool_size, pool_strides, pool_padding,
                      POOL_MODE_NAMES[pp.pool.mode], data_format, return_indices, out)
    fmt = spec.fmt
    y, idx, y_out, i_out = _pooled_outputs(out, return_indices, pp.out_shape,
                                           pp.pool.out_nhwc, dt, fmt)
    xin, kin, bin_ = _unaliased((y_out, i_out), _contig(_to_nhwc(xa, fmt), dt),
                                _contig(_kernel_to_hwcf(ka, fmt), dt),
                                None if ba is None else _contig(ba, dt))
    _kernels.conv2d_pool2d_forward(xin, kin, bin_, y, idx, pp)
    y = _deliver(y, fmt, y_out)
    if return_indices:
        return y, _deliver(idx, fmt, i_out)
    return y


def conv2d_pool2d_backward(
    dy: Any,
    x: Any,
    kernel: Any,
    indices: Any,
    y: Any | None = None,
    strides: IntOrPair = 1,
    padding: Padding = "valid",
    dilation_rate: IntOrPair = 1,
    data_format: str = "channels_last",
    activation: str | None = None,
    pool_size: IntOrPair = 2,
    pool_strides: IntOrPair | None = None,
    pool_padding: Padding = "valid",
    pool_mode: str = "max",
    input_grad: bool = True,
    out: tuple | None = None,
    algorithm: str = "auto",
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients ``(dx, dkernel, dbias)`` of :func:`conv2d_pool2d` (max/min pooling).

    ``dy`` is dL/d(pooled output), ``indices`` the forward's
    ``return_indices``. With ``activation="relu"`` pass the forward's output
    as ``y``: max/min pooling commutes with ReLU, so the ReLU mask is
    ``y > 0`` on the pooled output. With ``input_grad=False`` (a first layer)
    the unpooled gradient is made a block of rows at a time in cache and
    never stored whole. ``dx`` is None when ``input_grad=False``. ``out=(dx,
    dkernel, dbias)`` (entries may be None) gives arrays to write into.
    ``indices`` that are not cells of their own pooling windows raise ValueError.
    ``algorithm`` as for :func:`conv2d`.
    """
    dya = _as_real_array(dy, "dy")
    (xa, ka, dya), dt = _conv_inputs(x, kernel, dya)
    pp = _cache.conv_pool_spec(xa.shape, ka.shape, strides, padding, dilation_rate,
                               data_format, activation, pool_size, pool_strides,
                               pool_padding, pool_mode, algorithm)
    spec, pool = pp.conv, pp.pool
    if pool.mode == _AVG:
        raise ValueError("conv2d_pool2d_backward supports pool_mode 'max' or 'min'; for "
                         "'avg' use pool2d_backward then conv2d_backward")
    expected = pp.out_shape
    if dya.shape != expected:
        raise ValueError(
            f"dy must have the shape of conv2d_pool2d's output {expected} "
            f"(x {xa.shape}, kernel {ka.shape}), got {dya.shape}"
        )
    fmt = spec.fmt
    ia, idx4 = _index_array(indices, expected, fmt)
    _check_index_range(ia, pool, "OH*OW")
    _check_window_indices(ia, idx4, fmt, pool, "OH*OW")
    y4 = None  # the pooled output whose sign is the ReLU mask (applied by the kernel)
    if pp.relu:
        if y is None:
            raise ValueError("activation='relu' needs the forward output y for the ReLU mask")
        ya = _as_real_array(y, "y")
        if ya.shape != expected:
            raise ValueError(f"y must have the shape of dy {expected}, got {ya.shape}")
        y4 = _contig(_to_nhwc(ya, fmt), dt)
    dy4 = _contig(_to_nhwc(dya, fmt), dt)
    dx_out, dk_out, db_out = _grad_out_arrays(out, xa, ka, spec.f, dt)
    if not pp.fused:
        # windows the fused kernels do not take: unpool, then the plain backward
        if y4 is not None:
            dy4 = np.array(dy4, dtype=dt, order="C")  # a copy: masked next
            _kernels.relu_mask(dy4, y4)
        dz = np.empty(pool.x_nhwc, dtype=dt)
        _kernels.pool2d_backward(dy4, None, idx4, dz, pool)
        return conv2d_backward(_from_nhwc(dz, fmt), xa, ka, strides, padding,
                               dilation_rate, data_format, input_grad=input_grad, out=out,
                               algorithm=algorithm)
    dx4 = None
    if input_grad:
        use = dx_out is not None and fmt == "channels_last"
        dx4 = dx_out if use else np.empty(spec.x_nhwc, dtype=dt)
    dk4, db = _kernel_grad_buffers(spec, dt, dk_out, db_out)
    x4, dy4, idx4, k4, y4 = _unaliased((dx_out, dk_out, db_out), _contig(_to_nhwc(xa, fmt), dt),
                                       dy4, idx4, _contig(_kernel_to_hwcf(ka, fmt), dt), y4)
    _kernels.conv2d_pool2d_backward(x4, dy4, idx4, k4, dx4, dk4, db, pp, y4)
    dx = None if dx4 is None else _deliver(dx4, fmt, dx_out)
    return dx, _deliver_kernel_grad(dk4, dk_out, fmt), db
