"""The functional API: numpy arrays in, numpy arrays out.

This module is the checking boundary of cnnfast. It validates every
argument (raising ``ValueError``/``TypeError`` that name the argument and the
shapes involved), resolves strides/padding/dilation once (``cnnfast._spec``),
converts the inputs to C-contiguous arrays of the computation dtype, allocates
the outputs and calls the GIL-free kernels of ``cnnfast._kernels``.

The kernels work in ``channels_last`` (NHWC) layout with Keras-order kernels
``(KH, KW, C, F)``; ``channels_first`` inputs are transposed at this boundary.
"""

from __future__ import annotations

from typing import Any, Union

import numpy as np

from . import _kernels
from ._spec import as_pair, check_data_format, window_spec

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

IntOrPair = Union[int, tuple[int, int]]
Padding = Union[str, int, tuple[int, int], tuple[tuple[int, int], tuple[int, int]]]

# Every resolved size, stride, dilation and padding must stay below this, so
# that all index arithmetic in the C kernels fits in int64 with room to spare.
_MAX_DIM = 2**31 - 1
_MAX_ELEMS = np.iinfo(np.intp).max // 8
_POOL_MODES = {"max": 0, "avg": 1, "min": 2}


# ------------------------------------------------------------ allocation --

def empty_aligned(shape: int | tuple[int, ...], dtype: Any = np.float32,
                  alignment: int = 64) -> np.ndarray:
    """``np.empty(shape, dtype)`` whose data starts on an ``alignment``-byte boundary.

    numpy aligns its arrays to 16 bytes; the kernels' 64-byte vector loads
    from such an array straddle two cache lines whenever its rows are
    64-byte multiples apart. Gradients and activations in 64-byte aligned
    arrays measured 7-12% faster kernel gradients (workloads a-c).
    """
    dt = np.dtype(dtype)
    if isinstance(alignment, bool) or not isinstance(alignment, int) or alignment < 1 \
            or alignment & (alignment - 1):
        raise ValueError(f"alignment must be a power of two, got {alignment!r}")
    shape = tuple(int(s) for s in (shape if np.ndim(shape) else (shape,)))
    if any(s < 0 for s in shape):
        raise ValueError(f"negative dimensions are not allowed: {shape}")
    nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    raw = np.empty(nbytes + alignment, dtype=np.uint8)
    start = (-raw.ctypes.data) % alignment
    return raw[start:start + nbytes].view(dt).reshape(shape)


# ----------------------------------------------------------------- checks --

def _as_real_array(a: Any, name: str) -> np.ndarray:
    if a is None:
        raise TypeError(f"{name} must be an array of real numbers, got None")
    try:
        arr = np.asarray(a)
    except ValueError as exc:  # ragged nested sequences
        raise ValueError(f"{name} could not be converted to an array: {exc}") from None
    if arr.dtype.kind not in "fiu":
        raise TypeError(
            f"{name} must hold real numbers (float32/float64, or integers), "
            f"got dtype {arr.dtype}"
        )
    if arr.dtype.kind == "f" and arr.dtype.itemsize > 8:
        raise TypeError(
            f"{name} has dtype {arr.dtype}, which the kernels cannot compute in without "
            f"losing precision: pass float32 or float64 (e.g. {name}.astype(np.float64))"
        )
    return arr


def _compute_dtype(*arrays: np.ndarray) -> np.dtype:
    dt = np.result_type(*[a.dtype for a in arrays], np.float32)
    if dt == np.float16:
        dt = np.dtype(np.float32)
    if dt not in (np.float32, np.float64):
        raise TypeError(
            "inputs must be float32 or float64 (or convertible without loss); "
            f"got dtypes {[str(a.dtype) for a in arrays]}"
        )
    return np.dtype(dt)


def _check_ndim(arr: np.ndarray, ndim: int, name: str, layout: str) -> None:
    if arr.ndim != ndim:
        raise ValueError(
            f"{name} must be {ndim}-D {layout}, got shape {arr.shape} ({arr.ndim}-D)"
        )


def _check_sizes(name: str, *values: int) -> None:
    for v in values:
        if v > _MAX_DIM:
            raise ValueError(
                f"{name}: size {v} is too large (would overflow the kernels' index arithmetic;"
                f" limit {_MAX_DIM})"
            )


def _check_elems(name: str, shape: tuple[int, ...]) -> None:
    total = 1
    for s in shape:
        total *= int(s)
    if total > _MAX_ELEMS:
        raise ValueError(f"{name}: shape {shape} has {total} elements, which would overflow")


def _out_problem(out: Any, shape: tuple, dtype: np.dtype) -> str | None:
    """Why ``out`` cannot be written as a result of ``shape`` and ``dtype``, or None."""
    if not isinstance(out, np.ndarray):
        return f"got {type(out).__name__}"
    if out.shape != tuple(shape) or out.dtype != dtype:
        return f"got {out.shape} {out.dtype}"
    for flag, what in (("c_contiguous", "not C-contiguous"), ("writeable", "read-only"),
                       ("aligned", "not aligned to its element size")):
        if not getattr(out.flags, flag):
            return f"got a {out.shape} {out.dtype} array that is {what}"
    return None


def _out_array(out: Any, shape: tuple, dtype: np.dtype, name: str) -> np.ndarray:
    """Validate a caller-provided output array (numpy's ``out=`` convention)."""
    problem = _out_problem(out, shape, dtype)
    if problem is not None:
        raise ValueError(f"{name} must be a writable aligned C-contiguous {dtype} array of "
                         f"shape {tuple(shape)}, {problem}")
    return out


def _check_outs_disjoint(**outs: np.ndarray | None) -> None:
    """Refuse ``out`` entries of one call that overlap each other: each result needs
    memory of its own (the entries are C-contiguous, so overlapping bounds are shared
    elements)."""
    named = [(name, a) for name, a in outs.items() if a is not None]
    for i, (name_a, a) in enumerate(named):
        for name_b, b in named[i + 1:]:
            if np.may_share_memory(a, b):
                raise ValueError(f"{name_a} and {name_b} share memory: each result needs an "
                                 f"array of its own (got {a.shape} and {b.shape})")


def _unaliased(outs: tuple, *inputs: np.ndarray | None) -> tuple:
    """``inputs`` as the kernels read them, each copied first when it may share memory
    with one of ``outs``: the kernels write their results while they still read their
    inputs, so a call with ``out=`` overlapping an input (an in-place update such as
    ``conv2d(x, k, out=x)``) gives the same result as the call without ``out=``."""
    live = [o for o in outs if o is not None]
    if not live:
        return inputs
    return tuple(a if a is None or not any(np.may_share_memory(a, o) for o in live)
                 else a.copy() for a in inputs)


def _deliver(result_nhwc: np.ndarray, fmt: str, out: np.ndarray | None) -> np.ndarray:
    """The NHWC result in the caller's layout, written into ``out`` when given."""
    if out is None:
        return _from_nhwc(result_nhwc, fmt)
    if result_nhwc is not out:
        np.copyto(out, result_nhwc.transpose(0, 3, 1, 2) if fmt == "channels_first"
                  else result_nhwc)
    return out


def _grad_out_arrays(out: Any, x: Any, kernel: Any, f: int, dt: np.dtype) -> tuple:
    """The checked ``out=(dx, dkernel, dbias)`` of a convolution backward (entries may
    be None), or three Nones."""
    if out is None:
        return None, None, None
    if not isinstance(out, tuple) or len(out) != 3:
        raise ValueError("out must be a tuple (dx, dkernel, dbias) whose entries may be None")
    dx_out, dk_out, db_out = out
    if dx_out is not None:
        dx_out = _out_array(dx_out, np.shape(x), dt, "out[0] (dx)")
    if dk_out is not None:
        dk_out = _out_array(dk_out, np.shape(kernel), dt, "out[1] (dkernel)")
    if db_out is not None:
        db_out = _out_array(db_out, (f,), dt, "out[2] (dbias)")
    _check_outs_disjoint(**{"out[0] (dx)": dx_out, "out[1] (dkernel)": dk_out,
                            "out[2] (dbias)": db_out})
    return dx_out, dk_out, db_out


def _kernel_grad_buffers(prob, dk_out, db_out) -> tuple:
    """(dk4, db): where the kernels write the kernel gradient (HWCF; the caller's
    array when it is already in that layout) and the bias gradient."""
    dt = prob.dtype
    use = dk_out is not None and prob.fmt == "channels_last"
    dk4 = dk_out if use else np.empty(prob.kernel.shape, dtype=dt)
    db = db_out if db_out is not None else np.empty((prob.f,), dtype=dt)
    return dk4, db


def _deliver_kernel_grad(dk4: np.ndarray, dk_out: np.ndarray | None, fmt: str) -> np.ndarray:
    """The HWCF kernel gradient in the caller's layout, written into ``dk_out`` if given."""
    if dk_out is None:
        return _kernel_from_hwcf(dk4, fmt)
    if dk4 is not dk_out:
        np.copyto(dk_out, dk4.transpose(3, 2, 0, 1))
    return dk_out


def _pooled_outputs(out: Any, return_indices: bool, user_shape: tuple, nhwc_shape: tuple,
                    dt: np.dtype, fmt: str) -> tuple:
    """(y, idx, y_out, i_out) of a pooling forward: the NHWC arrays the kernel writes
    (the caller's ``out`` entries when already NHWC, idx None without indices) and
    the checked ``out`` (an array for y, or ``(y, indices)`` with return_indices)."""
    y_out = i_out = None
    if out is not None:
        if return_indices:
            if not isinstance(out, tuple) or len(out) != 2:
                raise ValueError("out must be a tuple (y, indices) when return_indices=True")
            y_out, i_out = out
            i_out = None if i_out is None else _out_array(i_out, user_shape,
                                                          np.dtype(np.int32), "out[1]")
        else:
            y_out = out
        y_out = None if y_out is None else _out_array(y_out, user_shape, dt, "out")
        _check_outs_disjoint(**{"out[0] (y)": y_out, "out[1] (indices)": i_out})
    last = fmt == "channels_last"
    y = y_out if y_out is not None and last else np.empty(nhwc_shape, dtype=dt)
    idx = None
    if return_indices:
        idx = i_out if i_out is not None and last else np.empty(nhwc_shape, dtype=np.int32)
    return y, idx, y_out, i_out


def _index_array(indices: Any, expected: tuple, fmt: str) -> tuple[np.ndarray, np.ndarray]:
    """(the user's indices as an array, the same as C-contiguous NHWC int32) after the
    dtype and shape checks."""
    ia = np.asarray(indices)
    if ia.dtype.kind not in "iu":
        raise TypeError(f"indices must be integers, got dtype {ia.dtype}")
    if ia.shape != expected:
        raise ValueError(f"indices must have the shape of dy {expected}, got {ia.shape}")
    return ia, _contig(_to_nhwc(ia, fmt), np.dtype(np.int32))


def _contig(arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """arr as an aligned C-contiguous array of ``dtype`` (a copy only when needed): the
    kernels read whole elements, so a buffer at an odd byte offset (``np.frombuffer``,
    ``np.memmap``) is copied, not rejected."""
    if arr.dtype == dtype and arr.flags.c_contiguous and arr.flags.aligned:
        return arr  # the usual case, without np.require's overhead (a few us per call)
    return np.require(arr, dtype=dtype, requirements=("C", "A"))


def _to_nhwc(x: np.ndarray, fmt: str) -> np.ndarray:
    return x if fmt == "channels_last" else x.transpose(0, 2, 3, 1)


def _from_nhwc(y: np.ndarray, fmt: str) -> np.ndarray:
    if fmt == "channels_last":
        return y
    return np.ascontiguousarray(y.transpose(0, 3, 1, 2))


def _kernel_to_hwcf(k: np.ndarray, fmt: str) -> np.ndarray:
    return k if fmt == "channels_last" else k.transpose(2, 3, 1, 0)


def _kernel_from_hwcf(k: np.ndarray, fmt: str) -> np.ndarray:
    if fmt == "channels_last":
        return k
    return np.ascontiguousarray(k.transpose(3, 2, 0, 1))


def _layout_name(fmt: str, what: str) -> str:
    return {
        ("channels_last", "x"): "(N, H, W, C)",
        ("channels_first", "x"): "(N, C, H, W)",
        ("channels_last", "kernel"): "(KH, KW, C, F)",
        ("channels_first", "kernel"): "(F, C, KH, KW)",
    }[(fmt, what)]


class _ConvProblem:
    """Validated convolution arguments in NHWC form."""

    __slots__ = ("fmt", "dtype", "x", "kernel", "spec", "n", "c", "f", "shape")

    def __init__(self, x, kernel, strides, padding, dilation_rate, data_format,
                 extra: tuple = ()):
        self.fmt = fmt = check_data_format(data_format)
        xa = _as_real_array(x, "x")
        ka = _as_real_array(kernel, "kernel")
        _check_ndim(xa, 4, "x", _layout_name(fmt, "x"))
        _check_ndim(ka, 4, "kernel", _layout_name(fmt, "kernel"))
        self.dtype = _compute_dtype(xa, ka, *extra)
        x4 = _to_nhwc(xa, fmt)
        k4 = _kernel_to_hwcf(ka, fmt)
        n, h, w, c = (int(v) for v in x4.shape)
        kh, kw, kc, f = (int(v) for v in k4.shape)
        if kc != c:
            raise ValueError(
                f"kernel expects {kc} input channels but x has {c}: x shape {xa.shape}, "
                f"kernel shape {ka.shape} ({fmt}: x {_layout_name(fmt, 'x')}, kernel "
                f"{_layout_name(fmt, 'kernel')})"
            )
        if min(h, w, c) < 1:
            raise ValueError(f"x must have non-zero H, W and C, got shape {xa.shape}")
        if min(kh, kw, f) < 1:
            raise ValueError(f"kernel must have non-zero KH, KW and F, got shape {ka.shape}")
        _check_sizes("x", n, h, w, c)
        _check_sizes("kernel", kh, kw, f)
        _check_elems("x", xa.shape)
        sp = window_spec((h, w), (kh, kw), strides, padding, dilation_rate)
        _check_sizes("strides", sp.sh, sp.sw)
        _check_sizes("dilation_rate", sp.dh, sp.dw, (kh - 1) * sp.dh + 1, (kw - 1) * sp.dw + 1)
        _check_sizes("padding", sp.pt, sp.pb, sp.pl, sp.pr, h + sp.pt + sp.pb, w + sp.pl + sp.pr)
        _check_elems("output", (n, sp.oh, sp.ow, f))
        _check_elems("kernel", (kh, kw, c, f))
        # Each factor alone fits, but the kernels index a padded image of hp x wp
        # x channels: with huge dilations and paddings together that product
        # would wrap int64 (a heap overflow in C, not an error).
        hp = (sp.oh - 1) * sp.sh + (kh - 1) * sp.dh + 1
        wp = (sp.ow - 1) * sp.sw + (kw - 1) * sp.dw + 1
        if hp * wp * max(c, f) > _kernels.MAX_PADDED_ELEMS:
            raise ValueError(
                f"padding / dilation_rate / strides: the padded geometry they make, "
                f"{hp} x {wp} x {max(c, f)} elements for x {xa.shape} and kernel "
                f"{ka.shape}, is too large for the kernels' index arithmetic (limit "
                f"2**55)"
            )
        self.x, self.kernel, self.spec = x4, k4, sp
        self.n, self.c, self.f = n, c, f
        self.shape = (n, h, w, c, sp.oh, sp.ow, f, kh, kw, sp.sh, sp.sw, sp.dh, sp.dw,
                      sp.pt, sp.pl)

    def out_shape(self) -> tuple[int, int, int, int]:
        n, sp, f = self.n, self.spec, self.f
        if self.fmt == "channels_last":
            return (n, sp.oh, sp.ow, f)
        return (n, f, sp.oh, sp.ow)


# ------------------------------------------------------------ convolution --

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
) -> np.ndarray:
    """2-D convolution (cross-correlation) of a batch of images.

    channels_last: x ``(N, H, W, C)``, kernel ``(KH, KW, C, F)`` -> ``(N, OH, OW, F)``.
    channels_first: x ``(N, C, H, W)``, kernel ``(F, C, KH, KW)`` -> ``(N, F, OH, OW)``.
    ``padding`` is "valid", "same" (TensorFlow/Keras), an int, ``(ph, pw)`` or
    ``((top, bottom), (left, right))``; zero padding. ``activation="relu"``
    applies ReLU inside the kernel (no extra pass over the output). ``out``: a
    C-contiguous array of the output's shape and dtype to write into (reused
    buffers avoid the page faults of a fresh large allocation per call).
    """
    extra = ()
    ba = None
    if bias is not None:
        ba = _as_real_array(bias, "bias")
        extra = (ba,)
    prob = _ConvProblem(x, kernel, strides, padding, dilation_rate, data_format, extra)
    if ba is not None and ba.shape != (prob.f,):
        raise ValueError(
            f"bias must have shape ({prob.f},) (one value per filter), got {ba.shape}"
        )
    relu = _parse_activation(activation)
    dt = prob.dtype
    sp = prob.spec
    shape = (prob.n, sp.oh, sp.ow, prob.f)
    if out is not None:
        out = _out_array(out, prob.out_shape(), dt, "out")
    y = out if out is not None and prob.fmt == "channels_last" else np.empty(shape, dtype=dt)
    xin, kin, bin_ = _unaliased((out,), _contig(prob.x, dt), _contig(prob.kernel, dt),
                                None if ba is None else _contig(ba, dt))
    _kernels.conv2d_forward(xin, kin, bin_, y, prob.shape, relu)
    return _deliver(y, prob.fmt, out)


def _parse_activation(activation: str | None) -> bool:
    if activation is None:
        return False
    if not isinstance(activation, str) or activation.lower() not in ("linear", "relu"):
        raise ValueError(
            f"activation must be None, 'linear' or 'relu' (the fused ones), got {activation!r}"
        )
    return activation.lower() == "relu"


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
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Gradients of :func:`conv2d` given ``dy`` = dL/dy.

    Returns ``(dx, dkernel, dbias)``: ``dx`` shaped like ``x`` (``None`` when
    ``input_grad=False``, e.g. for a first layer), ``dkernel`` like ``kernel``
    and ``dbias`` ``(F,)`` = the sum of dy over batch and space (both ``None``
    when ``kernel_grad=False``, e.g. for a frozen layer). The kernel and bias
    gradients are summed in a fixed order: bit-identical for any thread count.
    ``out=(dx, dkernel, dbias)`` (entries may be None) gives arrays to write into.
    """
    dya = _as_real_array(dy, "dy")
    prob = _ConvProblem(x, kernel, strides, padding, dilation_rate, data_format, (dya,))
    expected = prob.out_shape()
    if dya.shape != expected:
        raise ValueError(
            f"dy must have the shape of conv2d's output {expected} "
            f"(x {np.shape(x)}, kernel {np.shape(kernel)}), got {dya.shape}"
        )
    dt = prob.dtype
    dx_out, dk_out, db_out = _grad_out_arrays(out, x, kernel, prob.f, dt)
    # every input is separated from every output before the first kernel runs: dx
    # is delivered before the kernel gradient reads x and dy
    dy4, k4, x4 = _unaliased((dx_out, dk_out, db_out), _contig(_to_nhwc(dya, prob.fmt), dt),
                             _contig(prob.kernel, dt) if input_grad else None,
                             _contig(prob.x, dt) if kernel_grad else None)
    n, h, w, c = prob.x.shape
    dx = None
    if input_grad:
        use = dx_out is not None and prob.fmt == "channels_last"
        dx4 = dx_out if use else np.empty((n, h, w, c), dtype=dt)
        _kernels.conv2d_backward_input(dy4, k4, dx4, prob.shape)
        dx = _deliver(dx4, prob.fmt, dx_out)
    if not kernel_grad:
        return dx, None, None
    dk4, db = _kernel_grad_buffers(prob, dk_out, db_out)
    _kernels.conv2d_backward_kernel(x4, dy4, dk4, db, prob.shape)
    return dx, _deliver_kernel_grad(dk4, dk_out, prob.fmt), db


# ----------------------------------------------------------------- matmul --

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
    relu = _parse_activation(activation)
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


# ---------------------------------------------------------------- pooling --

class _PoolProblem:
    """Validated pooling arguments in NHWC form."""

    __slots__ = ("fmt", "dtype", "x", "spec", "mode", "shape", "n", "c")

    def __init__(self, x, pool_size, strides, padding, mode, data_format, extra=()):
        self.fmt = fmt = check_data_format(data_format)
        if not isinstance(mode, str) or mode.lower() not in _POOL_MODES:
            raise ValueError(f"mode must be 'max', 'avg' or 'min', got {mode!r}")
        self.mode = _POOL_MODES[mode.lower()]
        xa = _as_real_array(x, "x")
        _check_ndim(xa, 4, "x", _layout_name(fmt, "x"))
        self.dtype = _compute_dtype(xa, *extra)
        x4 = _to_nhwc(xa, fmt)
        n, h, w, c = (int(v) for v in x4.shape)
        if min(h, w, c) < 1:
            raise ValueError(f"x must have non-zero H, W and C, got shape {xa.shape}")
        _check_sizes("x", n, h, w, c)
        _check_elems("x", xa.shape)
        kh, kw = as_pair(pool_size, "pool_size")
        _check_sizes("pool_size", kh, kw)
        if strides is None:
            strides = (kh, kw)
        sp = window_spec((h, w), (kh, kw), strides, padding, 1, window_name="pool_size")
        _check_sizes("strides", sp.sh, sp.sw)
        if max(sp.pt, sp.pb) >= kh or max(sp.pl, sp.pr) >= kw:
            raise ValueError(
                f"padding (({sp.pt}, {sp.pb}), ({sp.pl}, {sp.pr})) must be smaller than "
                f"pool_size ({kh}, {kw}) on each side: a window would hold only padding"
            )
        if h * w > 2**31 - 1:
            raise ValueError(f"x: plane {h}x{w} too large for int32 indices (overflow)")
        self.x, self.spec, self.n, self.c = x4, sp, n, c
        self.shape = (kh, kw, sp.sh, sp.sw, sp.pt, sp.pl)

    def out_shape(self) -> tuple[int, int, int, int]:
        sp = self.spec
        if self.fmt == "channels_last":
            return (self.n, sp.oh, sp.ow, self.c)
        return (self.n, self.c, sp.oh, sp.ow)


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
    prob = _PoolProblem(x, pool_size, strides, padding, mode, data_format)
    if return_indices and prob.mode == _POOL_MODES["avg"]:
        raise ValueError("return_indices is only meaningful for mode 'max' or 'min'")
    dt = prob.dtype
    sp = prob.spec
    y, idx, y_out, i_out = _pooled_outputs(out, return_indices, prob.out_shape(),
                                           (prob.n, sp.oh, sp.ow, prob.c), dt, prob.fmt)
    (xin,) = _unaliased((y_out, i_out), _contig(prob.x, dt))
    _kernels.pool2d_forward(xin, y, idx, *prob.shape, prob.mode)
    y = _deliver(y, prob.fmt, y_out)
    if return_indices:
        return y, _deliver(idx, prob.fmt, i_out)
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

    (``_check_values=False`` is for callers that produced ``indices`` themselves,
    like the pooling layers: it skips the pass that checks them. The kernel
    stays memory-safe regardless: a gradient only lands on a cell of its own
    window.)
    """
    dya = _as_real_array(dy, "dy")
    prob = _PoolProblem(x, pool_size, strides, padding, mode, data_format, (dya,))
    expected = prob.out_shape()
    if dya.shape != expected:
        raise ValueError(
            f"dy must have the shape of pool2d's output {expected} for x {np.shape(x)}, "
            f"got {dya.shape}"
        )
    dt = prob.dtype
    n, h, w, c = prob.x.shape
    idx4 = None
    if indices is not None and prob.mode != _POOL_MODES["avg"]:
        ia, idx4 = _index_array(indices, expected, prob.fmt)
        if _check_values:
            _check_index_range(ia, (h, w), "H*W")
    if out is not None:
        out = _out_array(out, np.shape(x), dt, "out")
    use = out is not None and prob.fmt == "channels_last"
    dx = out if use else np.empty((n, h, w, c), dtype=dt)
    xin = None
    if prob.mode != _POOL_MODES["avg"] and idx4 is None:
        xin = _contig(prob.x, dt)
    dy4, xin, idx4 = _unaliased((out,), _contig(_to_nhwc(dya, prob.fmt), dt), xin, idx4)
    # the kernel counts indices that are not cells of their windows as it goes
    # (their gradient is dropped): refused, with the first named
    stray = _kernels.pool2d_backward(
        dy4, xin, idx4, dx, *prob.shape, prob.mode, _check_values and idx4 is not None
    )
    if stray and _check_values:
        _check_window_indices(ia, idx4, prob.fmt, (h, w), prob.shape, "H*W")
    return _deliver(dx, prob.fmt, out)


# ------------------------------------------------- convolution + pooling --

class _ConvPoolProblem:
    """Validated arguments of pool(act(conv(x))): the convolution's, the
    pooling's over the convolution output, and whether the fused kernels apply
    (max/min pooling, no pooling padding, windows that do not overlap)."""

    __slots__ = ("conv", "pool_size", "pool_strides", "pool_padding", "mode", "pool",
                 "fused", "pshape", "relu")

    def __init__(self, x, kernel, strides, padding, dilation_rate, data_format,
                 activation, pool_size, pool_strides, pool_padding, pool_mode, extra=()):
        self.conv = prob = _ConvProblem(x, kernel, strides, padding, dilation_rate,
                                        data_format, extra)
        self.relu = _parse_activation(activation)
        if not isinstance(pool_mode, str) or pool_mode.lower() not in _POOL_MODES:
            raise ValueError(f"pool_mode must be 'max', 'avg' or 'min', got {pool_mode!r}")
        self.mode = _POOL_MODES[pool_mode.lower()]
        kh, kw = as_pair(pool_size, "pool_size")
        _check_sizes("pool_size", kh, kw)
        if pool_strides is None:
            pool_strides = (kh, kw)
        sp = prob.spec
        try:
            ps = window_spec((sp.oh, sp.ow), (kh, kw), pool_strides, pool_padding, 1,
                             window_name="pool_size", input_name="the convolution output",
                             strides_name="pool_strides", padding_name="pool_padding")
        except ValueError as e:
            raise ValueError(f"{e} (x {np.shape(x)}, kernel {np.shape(kernel)})") from None
        _check_sizes("pool_strides", ps.sh, ps.sw)
        if max(ps.pt, ps.pb) >= kh or max(ps.pl, ps.pr) >= kw:
            raise ValueError(
                f"pool_padding (({ps.pt}, {ps.pb}), ({ps.pl}, {ps.pr})) must be smaller than "
                f"pool_size ({kh}, {kw}) on each side: a window would hold only padding"
            )
        if sp.oh * sp.ow > 2**31 - 1:
            raise ValueError(f"convolution output plane {sp.oh}x{sp.ow} too large for int32 "
                             "indices (overflow)")
        self.pool = ps
        self.pool_size, self.pool_strides, self.pool_padding = (kh, kw), pool_strides, \
            pool_padding
        self.fused = (self.mode != _POOL_MODES["avg"] and ps.pt == ps.pb == ps.pl == ps.pr == 0
                      and ps.sh >= kh and ps.sw >= kw)
        self.pshape = (kh, kw, ps.sh, ps.sw)

    def out_shape(self) -> tuple[int, int, int, int]:
        n, f, ps = self.conv.n, self.conv.f, self.pool
        if self.conv.fmt == "channels_last":
            return (n, ps.oh, ps.ow, f)
        return (n, f, ps.oh, ps.ow)


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
):
    """``pool2d(conv2d(x, kernel, bias, ..., activation), pool_size, ...)`` in one pass.

    The result (and the indices, which refer to the convolution output's
    plane exactly as :func:`pool2d`'s do) are bit-identical to the two calls.
    For max/min pooling with unpadded, non-overlapping windows (the usual
    ``MaxPooling2D`` after a ``Conv2D``) the convolution output is made one
    pooling band at a time in cache and never stored: no 4x larger
    intermediate is written and read back, and rows in no window are not
    computed. Other poolings run the two kernels. ``out``: an array for y,
    or ``(y, indices)`` with ``return_indices`` (max/min only).
    """
    extra = ()
    ba = None
    if bias is not None:
        ba = _as_real_array(bias, "bias")
        extra = (ba,)
    pp = _ConvPoolProblem(x, kernel, strides, padding, dilation_rate, data_format,
                          activation, pool_size, pool_strides, pool_padding, pool_mode, extra)
    prob = pp.conv
    if ba is not None and ba.shape != (prob.f,):
        raise ValueError(
            f"bias must have shape ({prob.f},) (one value per filter), got {ba.shape}"
        )
    if return_indices and pp.mode == _POOL_MODES["avg"]:
        raise ValueError("return_indices is only meaningful for pool_mode 'max' or 'min'")
    if not pp.fused:
        z = conv2d(x, kernel, bias, strides, padding, dilation_rate, data_format,
                   activation)
        return pool2d(z, pp.pool_size, pp.pool_strides, pp.pool_padding,
                      ("max", "avg", "min")[pp.mode], data_format, return_indices, out)
    dt = prob.dtype
    y, idx, y_out, i_out = _pooled_outputs(out, return_indices, pp.out_shape(),
                                           (prob.n, pp.pool.oh, pp.pool.ow, prob.f), dt,
                                           prob.fmt)
    xin, kin, bin_ = _unaliased((y_out, i_out), _contig(prob.x, dt), _contig(prob.kernel, dt),
                                None if ba is None else _contig(ba, dt))
    _kernels.conv2d_pool2d_forward(xin, kin, bin_, y, idx, prob.shape, pp.pshape, pp.mode,
                                   pp.relu)
    y = _deliver(y, prob.fmt, y_out)
    if return_indices:
        return y, _deliver(idx, prob.fmt, i_out)
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
    """
    dya = _as_real_array(dy, "dy")
    pp = _ConvPoolProblem(x, kernel, strides, padding, dilation_rate, data_format,
                          activation, pool_size, pool_strides, pool_padding, pool_mode, (dya,))
    prob = pp.conv
    if pp.mode == _POOL_MODES["avg"]:
        raise ValueError("conv2d_pool2d_backward supports pool_mode 'max' or 'min'; for "
                         "'avg' use pool2d_backward then conv2d_backward")
    expected = pp.out_shape()
    if dya.shape != expected:
        raise ValueError(
            f"dy must have the shape of conv2d_pool2d's output {expected} "
            f"(x {np.shape(x)}, kernel {np.shape(kernel)}), got {dya.shape}"
        )
    ia, idx4 = _index_array(indices, expected, prob.fmt)
    plane = (prob.spec.oh, prob.spec.ow)
    _check_index_range(ia, plane, "OH*OW")
    _check_window_indices(ia, idx4, prob.fmt, plane, pp.pshape + (pp.pool.pt, pp.pool.pl),
                          "OH*OW")
    dt = prob.dtype
    y4 = None  # the pooled output whose sign is the ReLU mask (applied by the kernel)
    if pp.relu:
        if y is None:
            raise ValueError("activation='relu' needs the forward output y for the ReLU mask")
        ya = _as_real_array(y, "y")
        if ya.shape != expected:
            raise ValueError(f"y must have the shape of dy {expected}, got {ya.shape}")
        y4 = _contig(_to_nhwc(ya, prob.fmt), dt)
    dy4 = _contig(_to_nhwc(dya, prob.fmt), dt)
    dx_out, dk_out, db_out = _grad_out_arrays(out, x, kernel, prob.f, dt)
    if not pp.fused:
        # windows the fused kernels do not take: unpool, then the plain backward
        if y4 is not None:
            dy4 = np.array(dy4, dtype=dt, order="C")  # a copy: masked next
            _kernels.relu_mask(dy4, y4)
        n, oh, ow, f = prob.n, prob.spec.oh, prob.spec.ow, prob.f
        dz = np.empty((n, oh, ow, f), dtype=dt)
        kh, kw, sh, sw = pp.pshape
        _kernels.pool2d_backward(dy4, None, idx4, dz, kh, kw, sh, sw, pp.pool.pt, pp.pool.pl,
                                 pp.mode)
        return conv2d_backward(_from_nhwc(dz, prob.fmt), x, kernel, strides, padding,
                               dilation_rate, data_format, input_grad=input_grad, out=out)
    n, h, w, c = prob.x.shape
    dx4 = None
    if input_grad:
        use = dx_out is not None and prob.fmt == "channels_last"
        dx4 = dx_out if use else np.empty((n, h, w, c), dtype=dt)
    dk4, db = _kernel_grad_buffers(prob, dk_out, db_out)
    x4, dy4, idx4, k4, y4 = _unaliased((dx_out, dk_out, db_out), _contig(prob.x, dt), dy4,
                                       idx4, _contig(prob.kernel, dt), y4)
    _kernels.conv2d_pool2d_backward(x4, dy4, idx4, k4, dx4, dk4, db, prob.shape, pp.pshape,
                                    pp.mode, y4)
    dx = None if dx4 is None else _deliver(dx4, prob.fmt, dx_out)
    return dx, _deliver_kernel_grad(dk4, dk_out, prob.fmt), db


def _check_index_range(ia: np.ndarray, plane: tuple, where: str) -> None:
    """Indices wider than int32 must lie in the plane before the int32 copy (which
    could wrap them onto valid cells); int32 ones are checked by the window test."""
    if ia.dtype == np.int32 or not ia.size:
        return
    h, w = plane
    lo, hi = int(ia.min()), int(ia.max())
    if lo < 0 or hi >= h * w:
        raise ValueError(f"indices must lie in [0, {where}) = [0, {h * w}), got values in "
                         f"[{lo}, {hi}]")


def _check_window_indices(ia: np.ndarray, idx4: np.ndarray, fmt: str, plane: tuple,
                          window: tuple, where: str) -> None:
    """Refuse indices that are not cells of their own pooling window.

    ia: the user's indices; idx4: the same as NHWC int32. plane: the (H, W) they
    index into; window: (kh, kw, sh, sw, pt, pl). The backward would silently drop
    the gradient of such an index, so one C pass finds the first, if any. Indices
    wider than int32 must have passed _check_index_range already.
    """
    if not ia.size:
        return
    h, w = plane
    pos = _kernels.pool2d_first_stray_index(idx4, h, w, *window)
    if pos < 0:
        return
    n_, oh, ow, c = np.unravel_index(pos, idx4.shape)
    v = int(idx4[n_, oh, ow, c])
    kh, kw, sh, sw, pt, pl = window
    r0, c0 = max(oh * sh - pt, 0), max(ow * sw - pl, 0)
    r1, c1 = min(oh * sh - pt + kh, h), min(ow * sw - pl + kw, w)
    at = list(map(int, (n_, oh, ow, c) if fmt == "channels_last" else (n_, c, oh, ow)))
    if not 0 <= v < h * w:
        raise ValueError(f"indices must lie in [0, {where}) = [0, {h * w}), got {v} at "
                         f"indices{at}")
    raise ValueError(
        f"indices{at} = {v}, cell ({v // w}, {v % w}) of the {h}x{w} plane, is not in its "
        f"pooling window, rows [{r0}, {r1}) x columns [{c0}, {c1}): indices must come from "
        "the forward with return_indices=True on the same input and pooling arguments"
    )


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

