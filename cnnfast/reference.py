"""Naive NumPy reference implementations of every cnnfast kernel: the test oracle.

Each function here has the same name and signature as its counterpart in
``cnnfast.ops`` (minus fast-path-only extras) and follows the functional API
contract (``notes/api-contract.md``) to the letter, but is written to be read,
not to be fast: explicit Python loops over the batch, the output pixels and the
kernel taps, with NumPy used only for the dot products over channels.

It deliberately shares no code with the compiled engine or ``cnnfast._spec``
(padding and output sizes are worked out again here), so that an error in one
cannot hide the same error in the other.

Precision: every computation runs in float64; results are cast back to the
computation dtype of the inputs (float32, or float64 when any input is float64
or an integer array), which is numpy's promotion of the inputs with float32.
A float32 result is therefore the correctly rounded float64 answer, which is
at least as accurate as any float32 kernel.

Layouts: every input is first copied to a C-ordered float64 array (so the
results do not depend on the memory layout of the inputs), and
``channels_first`` inputs are transposed to ``channels_last`` on the
way in and the results transposed back on the way out; the loops only ever see
x (N, H, W, C), kernel (KH, KW, C, F), y (N, OH, OW, F).
"""

from __future__ import annotations

import math
import numbers
from typing import Union

import numpy as np

IntOrPair = Union[int, tuple[int, int]]
Padding = Union[str, int, tuple[int, int], tuple[tuple[int, int], tuple[int, int]]]

__all__ = [
    "conv2d",
    "conv2d_backward",
    "pool2d",
    "pool2d_backward",
    "max_pool2d",
    "avg_pool2d",
    "min_pool2d",
    "max_pool2d_backward",
    "avg_pool2d_backward",
    "min_pool2d_backward",
    "same_padding",
    "resolve_padding",
    "output_size",
]


# ---------------------------------------------------------------------------
# Argument handling
# ---------------------------------------------------------------------------


def _is_int(v: object) -> bool:
    # bool is an int subclass but True as a stride is almost surely a mistake.
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _pair(value: object, name: str) -> tuple[int, int]:
    """An int or a pair of ints, each >= 1, as a (h, w) tuple."""
    if _is_int(value):
        items = (value, value)
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        items = tuple(value)
    else:
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    for v in items:
        if not _is_int(v):
            raise ValueError(f"{name} must hold integers, got {value!r}")
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {value!r}")
    return int(items[0]), int(items[1])


def _array(value: object, name: str) -> np.ndarray:
    if value is None:
        raise TypeError(f"{name} must be an array, got None")
    a = np.asarray(value)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real numeric array, got dtype {a.dtype}")
    return a


def _f64(a: np.ndarray) -> np.ndarray:
    """A C-ordered float64 copy: the loops then never depend on the caller's memory layout."""
    return np.ascontiguousarray(a, dtype=np.float64)


def _out_dtype(*arrays: np.ndarray) -> np.dtype:
    """The contract's computation dtype: numpy promotion of the inputs with float32."""
    return np.result_type(np.float32, *[a.dtype for a in arrays])


def _layout(data_format: object) -> str:
    if not isinstance(data_format, str) or data_format.lower() not in (
        "channels_last",
        "channels_first",
    ):
        raise ValueError(
            f"data_format must be 'channels_last' or 'channels_first', got {data_format!r}"
        )
    return data_format.lower()


def same_padding(size: int, k: int, s: int, d: int = 1) -> tuple[int, int]:
    """TensorFlow/Keras 'same' padding (before, after) for one axis.

    out = ceil(size / s); total = max((out - 1) * s + (k - 1) * d + 1 - size, 0);
    the smaller half goes before (top/left), the rest after (bottom/right).
    """
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def resolve_padding(
    padding: Padding,
    in_hw: tuple[int, int],
    k_hw: tuple[int, int],
    s_hw: tuple[int, int],
    d_hw: tuple[int, int] = (1, 1),
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Any contract padding form as ((top, bottom), (left, right))."""
    if isinstance(padding, str):
        word = padding.lower()
        if word == "valid":
            return (0, 0), (0, 0)
        if word == "same":
            return (
                same_padding(in_hw[0], k_hw[0], s_hw[0], d_hw[0]),
                same_padding(in_hw[1], k_hw[1], s_hw[1], d_hw[1]),
            )
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    if _is_int(padding):
        pads = ((padding, padding), (padding, padding))
    elif isinstance(padding, (tuple, list)) and len(padding) == 2:
        if all(_is_int(p) for p in padding):
            pads = ((padding[0], padding[0]), (padding[1], padding[1]))
        elif all(
            isinstance(p, (tuple, list)) and len(p) == 2 and all(_is_int(q) for q in p)
            for p in padding
        ):
            pads = (tuple(padding[0]), tuple(padding[1]))
        else:
            raise ValueError(f"padding is malformed: {padding!r}")
    else:
        raise ValueError(f"padding is malformed: {padding!r}")
    if any(p < 0 for side in pads for p in side):
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    return (int(pads[0][0]), int(pads[0][1])), (int(pads[1][0]), int(pads[1][1]))


def output_size(size: int, k: int, s: int, d: int, before: int, after: int) -> int:
    """out = (size + before + after - ((k - 1) * d + 1)) // s + 1, or 0 if empty."""
    span = size + before + after - ((k - 1) * d + 1)
    if span < 0:
        return 0
    return span // s + 1


# ---------------------------------------------------------------------------
# Convolution
# ---------------------------------------------------------------------------


def _conv_setup(x, kernel, strides, padding, dilation_rate, data_format):
    """Validate, convert to float64 channels_last, and work out the geometry."""
    fmt = _layout(data_format)
    x = _array(x, "x")
    kernel = _array(kernel, "kernel")
    if x.ndim != 4:
        raise ValueError(f"x must be 4-D, got shape {x.shape}")
    if kernel.ndim != 4:
        raise ValueError(f"kernel must be 4-D, got shape {kernel.shape}")
    s = _pair(strides, "strides")
    d = _pair(dilation_rate, "dilation_rate")
    dtype = _out_dtype(x, kernel)
    if fmt == "channels_first":
        x64 = _f64(np.transpose(x, (0, 2, 3, 1)))
        k64 = _f64(np.transpose(kernel, (2, 3, 1, 0)))
    else:
        x64 = _f64(x)
        k64 = _f64(kernel)
    n, h, w, c = x64.shape
    kh, kw, kc, f = k64.shape
    if kc != c:
        raise ValueError(
            f"kernel has {kc} input channels but x has {c} (x {x.shape}, kernel {kernel.shape})"
        )
    if min(h, w, c, kh, kw, f) < 1:
        raise ValueError(f"x {x.shape} and kernel {kernel.shape} must have non-zero sizes")
    (pt, pb), (pl, pr) = resolve_padding(padding, (h, w), (kh, kw), s, d)
    oh = output_size(h, kh, s[0], d[0], pt, pb)
    ow = output_size(w, kw, s[1], d[1], pl, pr)
    if oh < 1 or ow < 1:
        raise ValueError(
            f"empty output: x {x.shape}, kernel {kernel.shape}, padding {padding!r}, "
            f"strides {s}, dilation_rate {d}"
        )
    geom = dict(n=n, h=h, w=w, c=c, kh=kh, kw=kw, f=f, oh=oh, ow=ow, s=s, d=d, pt=pt, pl=pl)
    return fmt, dtype, x64, k64, geom


def _zero_padded(x64: np.ndarray, g: dict) -> np.ndarray:
    """x with enough zero rows/columns around it that every tap of every output is inside."""
    # Rows used: oh_i*sh + i*dh - pt for oh_i < oh, i < kh. Pad so that all are valid.
    need_h = (g["oh"] - 1) * g["s"][0] + (g["kh"] - 1) * g["d"][0] + 1
    need_w = (g["ow"] - 1) * g["s"][1] + (g["kw"] - 1) * g["d"][1] + 1
    xp = np.zeros(
        (g["n"], max(need_h, g["pt"] + g["h"]), max(need_w, g["pl"] + g["w"]), g["c"])
    )
    xp[:, g["pt"] : g["pt"] + g["h"], g["pl"] : g["pl"] + g["w"], :] = x64
    return xp


def conv2d(
    x: np.ndarray,
    kernel: np.ndarray,
    bias: np.ndarray | None = None,
    strides: IntOrPair = 1,
    padding: Padding = "valid",
    dilation_rate: IntOrPair = 1,
    data_format: str = "channels_last",
    activation: str | None = None,
) -> np.ndarray:
    """y[n, oh, ow, f] = bias[f]
    + sum_{i, j, c} xpad[n, oh*sh + i*dh, ow*sw + j*dw, c] * k[i, j, c, f].

    Cross-correlation (no kernel flip), zero padding, like Keras and PyTorch.
    activation: None / "linear" (identity) or "relu" (max(y, 0)).
    """
    fmt, dtype, x64, k64, g = _conv_setup(x, kernel, strides, padding, dilation_rate, data_format)
    if activation is not None and activation not in ("linear", "relu"):
        raise ValueError(f"activation must be None, 'linear' or 'relu', got {activation!r}")
    b64 = np.zeros(g["f"])
    if bias is not None:
        b = _array(bias, "bias")
        if b.shape != (g["f"],):
            raise ValueError(f"bias must have shape ({g['f']},), got {b.shape}")
        dtype = np.result_type(dtype, b.dtype)
        b64 = _f64(b)

    xp = _zero_padded(x64, g)
    (sh, sw), (dh, dw) = g["s"], g["d"]
    y = np.zeros((g["n"], g["oh"], g["ow"], g["f"]))
    for n in range(g["n"]):
        for oi in range(g["oh"]):
            for oj in range(g["ow"]):
                acc = b64.copy()
                for i in range(g["kh"]):
                    for j in range(g["kw"]):
                        pixel = xp[n, oi * sh + i * dh, oj * sw + j * dw, :]  # (C,)
                        acc += pixel @ k64[i, j]  # (C,) @ (C, F) -> (F,)
                y[n, oi, oj] = acc
    if activation == "relu":
        y = np.maximum(y, 0.0)
    if fmt == "channels_first":
        y = np.transpose(y, (0, 3, 1, 2))
    return np.ascontiguousarray(y, dtype=dtype)


def conv2d_backward(
    dy: np.ndarray,
    x: np.ndarray,
    kernel: np.ndarray,
    strides: IntOrPair = 1,
    padding: Padding = "valid",
    dilation_rate: IntOrPair = 1,
    data_format: str = "channels_last",
    input_grad: bool = True,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of conv2d (without activation) for an upstream gradient dy.

    Returns (dx or None when input_grad is False, dkernel, dbias), each laid
    out like x, kernel and bias. Every (output pixel, tap) pair scatters its
    contribution: dx gets k[i, j] @ dy, dkernel gets outer(x, dy); dbias is
    the sum of dy over batch and space.
    """
    fmt, dtype, x64, k64, g = _conv_setup(x, kernel, strides, padding, dilation_rate, data_format)
    dy = _array(dy, "dy")
    dtype = np.result_type(dtype, dy.dtype)
    want = (g["n"], g["oh"], g["ow"], g["f"])
    if fmt == "channels_first":
        want_user = (g["n"], g["f"], g["oh"], g["ow"])
        dy64 = _f64(np.transpose(dy, (0, 2, 3, 1))) if dy.ndim == 4 else None
    else:
        want_user = want
        dy64 = _f64(dy)
    if dy.shape != want_user:
        raise ValueError(f"dy must have shape {want_user}, got {dy.shape}")

    xp = _zero_padded(x64, g)
    dxp = np.zeros_like(xp)
    dk = np.zeros_like(k64)
    (sh, sw), (dh, dw) = g["s"], g["d"]
    for n in range(g["n"]):
        for oi in range(g["oh"]):
            for oj in range(g["ow"]):
                g_out = dy64[n, oi, oj]  # (F,)
                for i in range(g["kh"]):
                    for j in range(g["kw"]):
                        r, c = oi * sh + i * dh, oj * sw + j * dw
                        dxp[n, r, c, :] += k64[i, j] @ g_out  # (C, F) @ (F,)
                        dk[i, j] += np.outer(xp[n, r, c, :], g_out)
    db = dy64.sum(axis=(0, 1, 2)) if g["n"] else np.zeros(g["f"])

    dx = None
    if input_grad:
        dx = dxp[:, g["pt"] : g["pt"] + g["h"], g["pl"] : g["pl"] + g["w"], :]
        if fmt == "channels_first":
            dx = np.transpose(dx, (0, 3, 1, 2))
        dx = np.ascontiguousarray(dx, dtype=dtype)
    if fmt == "channels_first":
        dk = np.transpose(dk, (3, 2, 0, 1))
    return dx, np.ascontiguousarray(dk, dtype=dtype), np.ascontiguousarray(db, dtype=dtype)


# ---------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------


def _pool_setup(x, pool_size, strides, padding, mode, data_format):
    fmt = _layout(data_format)
    if not isinstance(mode, str) or mode.lower() not in ("max", "avg", "min"):
        raise ValueError(f"mode must be 'max', 'avg' or 'min', got {mode!r}")
    x = _array(x, "x")
    if x.ndim != 4:
        raise ValueError(f"x must be 4-D, got shape {x.shape}")
    k = _pair(pool_size, "pool_size")
    s = k if strides is None else _pair(strides, "strides")
    dtype = _out_dtype(x)
    x64 = _f64(np.transpose(x, (0, 2, 3, 1)) if fmt == "channels_first" else x)
    n, h, w, c = x64.shape
    if min(h, w, c) < 1:
        raise ValueError(f"x must have non-zero sizes, got shape {x.shape}")
    (pt, pb), (pl, pr) = resolve_padding(padding, (h, w), k, s)
    if max(pt, pb) >= k[0] or max(pl, pr) >= k[1]:
        raise ValueError(
            f"padding {padding!r} -> (({pt}, {pb}), ({pl}, {pr})) must be smaller than "
            f"pool_size {k} on each side"
        )
    oh = output_size(h, k[0], s[0], 1, pt, pb)
    ow = output_size(w, k[1], s[1], 1, pl, pr)
    if oh < 1 or ow < 1:
        raise ValueError(f"empty output: x {x.shape}, pool_size {k}, padding {padding!r}")
    geom = dict(n=n, h=h, w=w, c=c, kh=k[0], kw=k[1], oh=oh, ow=ow, s=s, pt=pt, pl=pl)
    return fmt, dtype, x64, mode.lower(), geom


def _window(g: dict, oi: int, oj: int) -> list[tuple[int, int]]:
    """In-bounds cells (row, col) of output (oi, oj)'s window, in row-major order."""
    cells = []
    for i in range(g["kh"]):
        for j in range(g["kw"]):
            r = oi * g["s"][0] - g["pt"] + i
            c = oj * g["s"][1] - g["pl"] + j
            if 0 <= r < g["h"] and 0 <= c < g["w"]:
                cells.append((r, c))
    return cells


def _winner(values: list[float], mode: str) -> int:
    """Position of the max/min: first in order on ties; the first NaN if any."""
    best = 0
    for p in range(1, len(values)):
        if math.isnan(values[best]):
            break
        v = values[p]
        if math.isnan(v) or (v > values[best] if mode == "max" else v < values[best]):
            best = p
    return best


def pool2d(
    x: np.ndarray,
    pool_size: IntOrPair = 2,
    strides: IntOrPair | None = None,
    padding: Padding = "valid",
    mode: str = "max",
    data_format: str = "channels_last",
    return_indices: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Max / average / min pooling.

    Padded cells never win a max/min and are not counted by avg (divisor =
    in-bounds cells). Max/min ties go to the first cell in row-major window
    order; a NaN in a window makes the result NaN (and is the winner).
    return_indices (max/min): also return int32 flat indices r*W + c of the
    winners inside their (H, W) plane, shaped like y.
    """
    fmt, dtype, x64, mode, g = _pool_setup(x, pool_size, strides, padding, mode, data_format)
    if return_indices and mode == "avg":
        raise ValueError("return_indices is only defined for mode 'max' or 'min'")
    y = np.zeros((g["n"], g["oh"], g["ow"], g["c"]))
    idx = np.zeros(y.shape, dtype=np.int64)
    for n in range(g["n"]):
        for oi in range(g["oh"]):
            for oj in range(g["ow"]):
                cells = _window(g, oi, oj)
                for ch in range(g["c"]):
                    values = [x64[n, r, c, ch] for r, c in cells]
                    if mode == "avg":
                        y[n, oi, oj, ch] = sum(values) / len(values)
                    else:
                        p = _winner(values, mode)
                        y[n, oi, oj, ch] = values[p]
                        idx[n, oi, oj, ch] = cells[p][0] * g["w"] + cells[p][1]
    if fmt == "channels_first":
        y = np.transpose(y, (0, 3, 1, 2))
        idx = np.transpose(idx, (0, 3, 1, 2))
    y = np.ascontiguousarray(y, dtype=dtype)
    if return_indices:
        return y, np.ascontiguousarray(idx, dtype=np.int32)
    return y


def pool2d_backward(
    dy: np.ndarray,
    x: np.ndarray,
    pool_size: IntOrPair = 2,
    strides: IntOrPair | None = None,
    padding: Padding = "valid",
    mode: str = "max",
    data_format: str = "channels_last",
    indices: np.ndarray | None = None,
) -> np.ndarray:
    """Gradient of pool2d for an upstream gradient dy, laid out like x.

    max/min: each dy goes whole to its window's winner (found again from x,
    or taken from ``indices`` when given). avg: each dy is shared equally by
    the window's in-bounds cells. Overlapping windows add up.
    """
    fmt, dtype, x64, mode, g = _pool_setup(x, pool_size, strides, padding, mode, data_format)
    dy = _array(dy, "dy")
    dtype = np.result_type(dtype, dy.dtype)
    shape = (g["n"], g["oh"], g["ow"], g["c"])
    user_shape = (g["n"], g["c"], g["oh"], g["ow"]) if fmt == "channels_first" else shape
    if dy.shape != user_shape:
        raise ValueError(f"dy must have shape {user_shape}, got {dy.shape}")
    dy64 = _f64(np.transpose(dy, (0, 2, 3, 1)) if fmt == "channels_first" else dy)
    idx = None
    if indices is not None and mode != "avg":
        ind = np.asarray(indices)
        if ind.shape != user_shape or ind.dtype.kind not in "iu":
            raise ValueError(
                f"indices must be an integer array of shape {user_shape}, "
                f"got {ind.dtype} {ind.shape}"
            )
        idx = np.transpose(ind, (0, 2, 3, 1)) if fmt == "channels_first" else ind
        if idx.size and (idx.min() < 0 or idx.max() >= g["h"] * g["w"]):
            raise ValueError(f"indices must lie in [0, {g['h'] * g['w']})")

    dx = np.zeros_like(x64)
    for n in range(g["n"]):
        for oi in range(g["oh"]):
            for oj in range(g["ow"]):
                cells = _window(g, oi, oj)
                for ch in range(g["c"]):
                    grad = dy64[n, oi, oj, ch]
                    if mode == "avg":
                        for r, c in cells:
                            dx[n, r, c, ch] += grad / len(cells)
                    else:
                        if idx is not None:
                            flat = int(idx[n, oi, oj, ch])
                            r, c = divmod(flat, g["w"])
                        else:
                            values = [x64[n, rr, cc, ch] for rr, cc in cells]
                            r, c = cells[_winner(values, mode)]
                        dx[n, r, c, ch] += grad
    if fmt == "channels_first":
        dx = np.transpose(dx, (0, 3, 1, 2))
    return np.ascontiguousarray(dx, dtype=dtype)


def max_pool2d(
    x: np.ndarray,
    pool_size: IntOrPair = 2,
    strides: IntOrPair | None = None,
    padding: Padding = "valid",
    data_format: str = "channels_last",
    return_indices: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """pool2d with mode='max'."""
    return pool2d(x, pool_size, strides, padding, "max", data_format, return_indices)


def avg_pool2d(
    x: np.ndarray,
    pool_size: IntOrPair = 2,
    strides: IntOrPair | None = None,
    padding: Padding = "valid",
    data_format: str = "channels_last",
) -> np.ndarray:
    """pool2d with mode='avg'."""
    return pool2d(x, pool_size, strides, padding, "avg", data_format)


def min_pool2d(
    x: np.ndarray,
    pool_size: IntOrPair = 2,
    strides: IntOrPair | None = None,
    padding: Padding = "valid",
    data_format: str = "channels_last",
    return_indices: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """pool2d with mode='min'."""
    return pool2d(x, pool_size, strides, padding, "min", data_format, return_indices)


def max_pool2d_backward(
    dy: np.ndarray,
    x: np.ndarray,
    pool_size: IntOrPair = 2,
    strides: IntOrPair | None = None,
    padding: Padding = "valid",
    data_format: str = "channels_last",
    indices: np.ndarray | None = None,
) -> np.ndarray:
    """pool2d_backward with mode='max'."""
    return pool2d_backward(dy, x, pool_size, strides, padding, "max", data_format, indices)


def avg_pool2d_backward(
    dy: np.ndarray,
    x: np.ndarray,
    pool_size: IntOrPair = 2,
    strides: IntOrPair | None = None,
    padding: Padding = "valid",
    data_format: str = "channels_last",
) -> np.ndarray:
    """pool2d_backward with mode='avg'."""
    return pool2d_backward(dy, x, pool_size, strides, padding, "avg", data_format)


def min_pool2d_backward(
    dy: np.ndarray,
    x: np.ndarray,
    pool_size: IntOrPair = 2,
    strides: IntOrPair | None = None,
    padding: Padding = "valid",
    data_format: str = "channels_last",
    indices: np.ndarray | None = None,
) -> np.ndarray:
    """pool2d_backward with mode='min'."""
    return pool2d_backward(dy, x, pool_size, strides, padding, "min", data_format, indices)
