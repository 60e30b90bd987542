"""Matrix products of the functional API: matmul and a Dense layer's forward (dense).

Both run on cnnfast's own micro-kernels under the same OpenMP threads as the
convolutions, bit-identical for any thread count.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _kernels
from .._spec import parse_activation
from ._arrays import _as_real_array, _compute_dtype, _contig, _out_array, _unaliased


def matmul(a: Any, b: Any, out: np.ndarray | None = None, accumulate: bool = False
           ) -> np.ndarray:
    """``a @ b`` for 2-D arrays on cnnfast's own micro-kernels and OpenMP threads.

    For Dense layers in CPU training code: it runs under the same thread team
    as the convolutions (no BLAS thread pool spinning in between) and is
    bit-identical for any thread count. Transposed views (``x.T``) are read in
    place. ``out`` (C-contiguous, the result dtype) is written, or added to
    when ``accumulate=True``.
    """
    return _gemm(a, b, out, accumulate, None, False, ("a", "b"))


def dense(x: Any, kernel: Any, bias: Any | None = None, activation: str | None = None,
          out: np.ndarray | None = None) -> np.ndarray:
    """A Dense layer's forward, ``x @ kernel (+ bias)``, then ``activation``, in one pass.

    ``x`` is (batch, in), ``kernel`` (in, units) as Keras stores it, ``bias``
    (units,). ``activation`` is None/"linear" or "relu": bias and ReLU are
    applied to each output tile while it is still in registers. The same
    threads and determinism as :func:`matmul`.
    """
    relu = parse_activation(activation)
    return _gemm(x, kernel, out, False, bias, relu, ("x", "kernel"))


def _gemm_operand(arr: np.ndarray, dt: np.dtype) -> np.ndarray:
    """A GEMM operand as the kernel reads it: strided views (x.T) in place; a copy
    only for another dtype or for elements not on their natural alignment."""
    if (arr.dtype != dt or not arr.flags.aligned or arr.strides[0] % dt.itemsize
            or arr.strides[1] % dt.itemsize):
        return _contig(arr, dt)
    return arr


def _gemm(a: Any, b: Any, out: np.ndarray | None, accumulate: bool, bias: Any | None,
          relu: bool, names: tuple[str, str]) -> np.ndarray:
    na, nb = names
    aa = _as_real_array(a, na)
    ba = _as_real_array(b, nb)
    if aa.ndim != 2 or ba.ndim != 2:
        raise ValueError(f"{na} and {nb} must be 2-D, got shapes {aa.shape} and {ba.shape}")
    if aa.shape[1] != ba.shape[0]:
        raise ValueError(
            f"{na} and {nb} do not chain: {na} has {aa.shape[1]} columns, {nb} has "
            f"{ba.shape[0]} rows (shapes {aa.shape} @ {ba.shape})"
        )
    bia = None
    if bias is not None:
        bia = _as_real_array(bias, "bias")
        if bia.shape != (ba.shape[1],):
            raise ValueError(f"bias must have shape ({ba.shape[1]},) for {nb} {ba.shape}, "
                             f"got {bia.shape}")
    # numpy promotion over every input, the bias included (as conv2d does)
    dt = _compute_dtype(aa, ba, *(() if bia is None else (bia,)))
    if bia is not None:
        bia = _contig(bia, dt)
    aa, ba = _gemm_operand(aa, dt), _gemm_operand(ba, dt)
    shape = (aa.shape[0], ba.shape[1])
    if out is None:
        out = np.empty(shape, dtype=dt)
        accumulate = False
    else:
        out = _out_array(out, shape, dt, "out")
        aa, ba, bia = _unaliased((out,), aa, ba, bia)
    _kernels.gemm(aa, ba, out, bool(accumulate), bia, relu)
    return out
