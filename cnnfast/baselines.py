"""Vectorised NumPy baselines for the benchmarks: what a user would write by hand.

Convolution is the classic im2col + one BLAS matmul (forward and kernel gradient)
and matmul + col2im with KH*KW strided adds (input gradient). Pooling loops over
the KH*KW cells of the window, each step vectorised over the whole batch.
There are no Python loops over samples or pixels, only over kernel taps.

The functions take the same arguments as ``cnnfast.ops`` / ``cnnfast.reference``
(minus ``bias``, ``activation`` and the dtype promotion rules: inputs are used
in their own float dtype) so that ``cnnfast bench`` and the test-suite can swap
them in. They are checked against ``cnnfast.reference`` in ``tests/test_bench.py``.
Padding semantics come from ``cnnfast._spec`` (the one place that defines them).
"""

from __future__ import annotations

from typing import Union

import numpy as np

from cnnfast import _spec

__all__ = ["conv2d", "conv2d_backward", "pool2d", "pool2d_backward"]

IntPair = Union[int, tuple]


def _to_nhwc(a: np.ndarray, data_format: str) -> np.ndarray:
    return a if data_format == "channels_last" else a.transpose(0, 2, 3, 1)


def _from_nhwc(a: np.ndarray, data_format: str) -> np.ndarray:
    if data_format == "channels_last":
        return np.ascontiguousarray(a)
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2))


def _conv_geometry(x_shape, k_shape, strides, padding, dilation_rate):
    """Resolved sizes for an NHWC input and an HWCF kernel."""
    _, h, w, _ = x_shape
    kh, kw, _, _ = k_shape
    ws = _spec.window_spec((h, w), (kh, kw), strides, padding, dilation_rate)
    return (ws.sh, ws.sw), (ws.dh, ws.dw), (ws.pt, ws.pb, ws.pl, ws.pr), (ws.oh, ws.ow)


def _tap(i: int, d: int, s: int, o: int) -> slice:
    """Rows (or columns) of the padded input read by kernel tap i for o outputs."""
    return slice(i * d, i * d + (o - 1) * s + 1, s)


def _im2col(xp: np.ndarray, kh, kw, sh, sw, dh, dw, oh, ow) -> np.ndarray:
    """(N*OH*OW, KH*KW*C) patch matrix of the padded NHWC input."""
    n, _, _, c = xp.shape
    cols = np.empty((n, oh, ow, kh, kw, c), dtype=xp.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, :, i, j, :] = xp[:, _tap(i, dh, sh, oh), _tap(j, dw, sw, ow), :]
    return cols.reshape(n * oh * ow, kh * kw * c)


def _kernel_to_hwcf(kernel: np.ndarray, data_format: str) -> np.ndarray:
    return kernel if data_format == "channels_last" else kernel.transpose(2, 3, 1, 0)


def _pad_nhwc(x: np.ndarray, pads, value=0.0) -> np.ndarray:
    pt, pb, pl, pr = pads
    if not any(pads):
        return x
    # Explicit pads can be smaller than what the windows would read at the far
    # end (stride leftovers); np.pad only ever adds, so clip negatives to 0.
    return np.pad(
        x,
        ((0, 0), (pt, max(pb, 0)), (pl, max(pr, 0)), (0, 0)),
        constant_values=value,
    )


def conv2d(
    x: np.ndarray,
    kernel: np.ndarray,
    strides: IntPair = 1,
    padding="valid",
    dilation_rate: IntPair = 1,
    data_format: str = "channels_last",
) -> np.ndarray:
    """Forward convolution (cross-correlation) by im2col + matmul."""
    xn = _to_nhwc(np.asarray(x), data_format)
    k = _kernel_to_hwcf(np.asarray(kernel), data_format)
    (sh, sw), (dh, dw), pads, (oh, ow) = _conv_geometry(
        xn.shape, k.shape, strides, padding, dilation_rate
    )
    kh, kw, c, f = k.shape
    n = xn.shape[0]
    cols = _im2col(_pad_nhwc(xn, pads), kh, kw, sh, sw, dh, dw, oh, ow)
    y = cols @ np.ascontiguousarray(k).reshape(kh * kw * c, f)
    return _from_nhwc(y.reshape(n, oh, ow, f), data_format)


def conv2d_backward(
    dy: np.ndarray,
    x: np.ndarray,
    kernel: np.ndarray,
    strides: IntPair = 1,
    padding="valid",
    dilation_rate: IntPair = 1,
    data_format: str = "channels_last",
    input_grad: bool = True,
    kernel_grad: bool = True,
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray]:
    """(dx or None, dkernel or None, dbias) of :func:`conv2d`.

    ``kernel_grad=False`` skips the kernel gradient (and its im2col), so the
    benchmarks can time the input gradient alone.
    """
    xn = _to_nhwc(np.asarray(x), data_format)
    dyn = _to_nhwc(np.asarray(dy), data_format)
    k = _kernel_to_hwcf(np.asarray(kernel), data_format)
    (sh, sw), (dh, dw), pads, (oh, ow) = _conv_geometry(
        xn.shape, k.shape, strides, padding, dilation_rate
    )
    kh, kw, c, f = k.shape
    n, h, w, _ = xn.shape
    dy2 = np.ascontiguousarray(dyn).reshape(n * oh * ow, f)
    db = dy2.sum(axis=0)
    dk = None
    if kernel_grad:
        cols = _im2col(_pad_nhwc(xn, pads), kh, kw, sh, sw, dh, dw, oh, ow)
        dk = (cols.T @ dy2).reshape(kh, kw, c, f)
        if data_format != "channels_last":
            dk = np.ascontiguousarray(dk.transpose(3, 2, 0, 1))
    dx = None
    if input_grad:
        pt, pb, pl, pr = pads
        dcols = (dy2 @ np.ascontiguousarray(k).reshape(kh * kw * c, f).T).reshape(
            n, oh, ow, kh, kw, c
        )
        hp, wp = h + pt + max(pb, 0), w + pl + max(pr, 0)
        dxp = np.zeros((n, hp, wp, c), dtype=dcols.dtype)
        # col2im: every tap adds its slice back; taps of one output overlap, so
        # this stays a sequence of strided adds rather than one scatter.
        for i in range(kh):
            for j in range(kw):
                dxp[:, _tap(i, dh, sh, oh), _tap(j, dw, sw, ow), :] += dcols[:, :, :, i, j, :]
        dx = _from_nhwc(dxp[:, pt : pt + h, pl : pl + w, :], data_format)
    return dx, dk, db


def _pool_geometry(x_shape, pool_size, strides, padding):
    _, h, w, _ = x_shape
    kh, kw = _spec.as_pair(pool_size, "pool_size")
    ws = _spec.window_spec(
        (h, w), (kh, kw), (kh, kw) if strides is None else strides, padding,
        window_name="pool",
    )
    if max(ws.pt, ws.pb) >= kh or max(ws.pl, ws.pr) >= kw:
        raise ValueError(f"padding: every side must be < the window {(kh, kw)}")
    return (kh, kw), (ws.sh, ws.sw), (ws.pt, ws.pb, ws.pl, ws.pr), (ws.oh, ws.ow)


def _cell_flat_index(i, j, sh, sw, pt, pl, oh, ow, w) -> np.ndarray:
    """Flat index ih*W+iw of window cell (i, j) for every output, shape (OH, OW, 1)."""
    ih = np.arange(oh) * sh - pt + i
    iw = np.arange(ow) * sw - pl + j
    return (ih[:, None] * w + iw[None, :])[:, :, None].astype(np.int32)


def pool2d(
    x: np.ndarray,
    pool_size: IntPair = 2,
    strides: IntPair | None = None,
    padding="valid",
    mode: str = "max",
    data_format: str = "channels_last",
    return_indices: bool = False,
):
    """Max / avg / min pooling; indices (max, min) as flat ih*W+iw per plane."""
    mode = mode.lower()
    if mode not in ("max", "avg", "min"):
        raise ValueError(f"mode must be 'max', 'avg' or 'min', got {mode!r}")
    xn = _to_nhwc(np.asarray(x), data_format)
    (kh, kw), (sh, sw), pads, (oh, ow) = _pool_geometry(xn.shape, pool_size, strides, padding)
    pt, _, pl, _ = pads
    w = xn.shape[2]
    if mode == "avg":
        xp = _pad_nhwc(xn, pads, 0.0)
        ones = _pad_nhwc(np.ones((1,) + xn.shape[1:3] + (1,), dtype=xn.dtype), pads, 0.0)
        acc = np.zeros((xn.shape[0], oh, ow, xn.shape[3]), dtype=xn.dtype)
        cnt = np.zeros((1, oh, ow, 1), dtype=xn.dtype)
        for i in range(kh):
            for j in range(kw):
                rows, cols = _tap(i, 1, sh, oh), _tap(j, 1, sw, ow)
                acc += xp[:, rows, cols, :]
                cnt += ones[:, rows, cols, :]
        y = acc / cnt
        return _from_nhwc(y, data_format)
    fill = -np.inf if mode == "max" else np.inf
    xp = _pad_nhwc(xn, pads, fill)
    better = np.greater if mode == "max" else np.less
    best = None
    idx = None
    for i in range(kh):
        for j in range(kw):
            v = xp[:, _tap(i, 1, sh, oh), _tap(j, 1, sw, ow), :]
            if best is None:
                best = v.copy()
                if return_indices:
                    cell = _cell_flat_index(i, j, sh, sw, pt, pl, oh, ow, w)
                    idx = np.broadcast_to(cell, best.shape).copy()
                continue
            # Strictly better: ties keep the first cell in row-major window order.
            take = better(v, best)
            np.copyto(best, v, where=take)
            if return_indices:
                np.copyto(idx, _cell_flat_index(i, j, sh, sw, pt, pl, oh, ow, w), where=take)
    y = _from_nhwc(best, data_format)
    if return_indices:
        return y, _from_nhwc(idx, data_format)
    return y


def pool2d_backward(
    dy: np.ndarray,
    x: np.ndarray,
    pool_size: IntPair = 2,
    strides: IntPair | None = None,
    padding="valid",
    mode: str = "max",
    data_format: str = "channels_last",
    indices: np.ndarray | None = None,
) -> np.ndarray:
    """Gradient of :func:`pool2d` w.r.t. x; max/min reuse ``indices`` when given."""
    mode = mode.lower()
    xn = _to_nhwc(np.asarray(x), data_format)
    dyn = _to_nhwc(np.asarray(dy), data_format)
    (kh, kw), (sh, sw), pads, (oh, ow) = _pool_geometry(xn.shape, pool_size, strides, padding)
    pt, pb, pl, pr = pads
    n, h, w, c = xn.shape
    dxp = np.zeros((n, h + pt + pb, w + pl + pr, c), dtype=np.result_type(dyn, xn))
    if mode == "avg":
        ones = _pad_nhwc(np.ones((1, h, w, 1), dtype=dxp.dtype), pads, 0.0)
        cnt = np.zeros((1, oh, ow, 1), dtype=dxp.dtype)
        for i in range(kh):
            for j in range(kw):
                cnt += ones[:, _tap(i, 1, sh, oh), _tap(j, 1, sw, ow), :]
        g = dyn / cnt
        for i in range(kh):
            for j in range(kw):
                dxp[:, _tap(i, 1, sh, oh), _tap(j, 1, sw, ow), :] += g
    else:
        if indices is None:
            _, idx = pool2d(xn, (kh, kw), (sh, sw), ((pt, pb), (pl, pr)), mode,
                            "channels_last", return_indices=True)
        else:
            idx = _to_nhwc(np.asarray(indices), data_format)
        for i in range(kh):
            for j in range(kw):
                cell = _cell_flat_index(i, j, sh, sw, pt, pl, oh, ow, w)
                dxp[:, _tap(i, 1, sh, oh), _tap(j, 1, sw, ow), :] += np.where(
                    idx == cell, dyn, 0
                )
    return _from_nhwc(dxp[:, pt : pt + h, pl : pl + w, :], data_format)
