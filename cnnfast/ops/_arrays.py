"""Array handling shared by the functional API: input conversion, dtypes, ``out=``
arrays (checks, aliasing, delivery in the caller's layout), layouts, pooling indices.

Geometry is not here: it is resolved once in ``cnnfast._spec``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _kernels


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

_DLPACK_CPU = 1  # kDLCPU in DLPack's device enumeration


def _from_dlpack(a: Any, name: str) -> np.ndarray:
    """A CPU tensor of another library (torch, JAX, CuPy...) as a numpy array that
    shares its memory (``np.from_dlpack``): no copy where the layout allows."""
    if getattr(a, "requires_grad", False):
        raise TypeError(
            f"{name} is a tensor that requires grad: cnnfast's functional API computes on "
            f"plain arrays; pass {name}.detach(), or use cnnfast.torch for autograd"
        )
    device = a.__dlpack_device__() if hasattr(a, "__dlpack_device__") else None
    if device is not None and int(device[0]) != _DLPACK_CPU:
        raise TypeError(
            f"{name} lives on a non-CPU device (DLPack device {tuple(device)}): cnnfast "
            f"computes on the CPU; copy it there first (e.g. {name}.cpu())"
        )
    try:
        return np.from_dlpack(a)
    except (BufferError, RuntimeError, TypeError, ValueError) as exc:
        raise TypeError(f"{name} could not be read through DLPack: {exc}") from None


def _as_real_array(a: Any, name: str) -> np.ndarray:
    if a is None:
        raise TypeError(f"{name} must be an array of real numbers, got None")
    if type(a) is np.ndarray:
        arr = a  # the usual case
    elif hasattr(a, "__dlpack__") and not isinstance(a, np.ndarray):
        arr = _from_dlpack(a, name)
    else:
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


_FLOAT32 = np.dtype(np.float32)
_FLOAT64 = np.dtype(np.float64)


def _compute_dtype(*arrays: np.ndarray) -> np.dtype:
    """numpy's promotion of the inputs' dtypes with float32 (float16 computes in
    float32); float32 or float64, else TypeError."""
    first = arrays[0].dtype
    if (first == _FLOAT32 or first == _FLOAT64) and all(a.dtype == first for a in arrays):
        return first  # the usual case, without np.result_type's cost (about 2 us)
    dt = np.result_type(*[a.dtype for a in arrays], np.float32)
    if dt == np.float16:
        dt = np.dtype(np.float32)
    if dt not in (np.float32, np.float64):
        raise TypeError(
            "inputs must be float32 or float64 (or convertible without loss); "
            f"got dtypes {[str(a.dtype) for a in arrays]}"
        )
    return np.dtype(dt)


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


def _kernel_grad_buffers(spec, dt: np.dtype, dk_out, db_out) -> tuple:
    """(dk4, db): where the kernels write the kernel gradient (HWCF; the caller's
    array when it is already in that layout) and the bias gradient."""
    use = dk_out is not None and spec.fmt == "channels_last"
    dk4 = dk_out if use else np.empty(spec.kernel_hwcf, dtype=dt)
    db = db_out if db_out is not None else np.empty((spec.f,), dtype=dt)
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


def _check_index_range(ia: np.ndarray, spec, where: str) -> None:
    """Indices wider than int32 must lie in the spec's plane before the int32 copy
    (which could wrap them onto valid cells); int32 ones are checked by the window
    test."""
    if ia.dtype == np.int32 or not ia.size:
        return
    cells = spec.plane_cells
    lo, hi = int(ia.min()), int(ia.max())
    if lo < 0 or hi >= cells:
        raise ValueError(f"indices must lie in [0, {where}) = [0, {cells}), got values in "
                         f"[{lo}, {hi}]")


def _check_window_indices(ia: np.ndarray, idx4: np.ndarray, fmt: str, spec,
                          where: str) -> None:
    """Refuse indices that are not cells of their own pooling window.

    ia: the user's indices; idx4: the same as NHWC int32; spec: the resolved
    pooling (PoolSpec) whose plane they index and whose windows they pick from.
    The backward would silently drop the gradient of such an index, so one C
    pass finds the first, if any. Indices wider than int32 must have passed
    _check_index_range already.
    """
    if not ia.size:
        return
    pos = _kernels.pool2d_first_stray_index(idx4, spec)
    if pos < 0:
        return
    n_, oh, ow, c = np.unravel_index(pos, idx4.shape)
    v = int(idx4[n_, oh, ow, c])
    r0, r1, c0, c1 = spec.window_bounds(int(oh), int(ow))
    at = list(map(int, (n_, oh, ow, c) if fmt == "channels_last" else (n_, c, oh, ow)))
    h, w = spec.h, spec.w
    if not 0 <= v < spec.plane_cells:
        raise ValueError(f"indices must lie in [0, {where}) = [0, {spec.plane_cells}), got "
                         f"{v} at indices{at}")
    raise ValueError(
        f"indices{at} = {v}, cell ({v // w}, {v % w}) of the {h}x{w} plane, is not in its "
        f"pooling window, rows [{r0}, {r1}) x columns [{c0}, {c1}): indices must come from "
        "the forward with return_indices=True on the same input and pooling arguments"
    )
