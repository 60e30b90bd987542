"""``torch.nn.functional``-style convolution and pooling on cnnfast's kernels.

The public functions (``conv2d``, ``max_pool2d``, ``avg_pool2d``, ``min_pool2d``) take
PyTorch's arguments and NCHW semantics, check them as PyTorch does, resolve the padding
to explicit pads, and call four ``torch.library`` custom ops:

- ``cnnfast::conv2d`` / ``cnnfast::conv2d_backward``
- ``cnnfast::pool2d`` / ``cnnfast::pool2d_backward``

Each forward op has an autograd formula (its backward is the matching backward op, so
``torch.compile`` can trace both) and every op has a fake (shape) function.

Layouts: a tensor whose memory is NHWC (``x.is_contiguous(memory_format=
torch.channels_last)``, which includes every single-channel NCHW tensor) is handed to
cnnfast's channels_last path as the permuted view, without a copy, and its result comes
back as a channels_last NCHW tensor over cnnfast's NHWC array (no copy either). Other
tensors go through cnnfast's channels_first path (which transposes to NHWC and back)
and give contiguous results. Weights ``(F, C, KH, KW)`` are reordered to cnnfast's
``(KH, KW, C, F)`` by the kernels' input conversion (a small copy).

Differences from PyTorch, by design: a window whose maximum is NaN gives NaN in both,
but cnnfast's index (and so the gradient) goes to the first NaN of the window in
row-major order where PyTorch picks the last; ties of equal values go to the first
cell in both. Only ``groups=1``, ``ceil_mode=False`` and pooling ``dilation=1`` are
implemented (anything else is a ``ValueError`` naming the argument).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Optional, Union

import numpy as np
import torch
from torch import Tensor

from .. import _spec
from .. import ops as _ops

IntOrPair = Union[int, Sequence[int]]
ConvPadding = Union[str, int, Sequence[int]]

_FLOATS = (torch.float32, torch.float64)
# pooling modes; the avg divisor 0 means "the in-bounds cells" (cnnfast's own rule)
_MODES = ("max", "avg", "min")


# ---------------------------------------------------------------------------
# tensor <-> numpy, layout choice
# ---------------------------------------------------------------------------


def _nhwc(t: Tensor) -> bool:
    """True when the tensor's memory is NHWC: cnnfast reads it in place."""
    return t.is_contiguous(memory_format=torch.channels_last)


def _np(t: Tensor) -> np.ndarray:
    """The tensor's memory as a numpy array (shared, no copy; any strides)."""
    return t.detach().numpy()


def _as_nhwc(t: Tensor) -> np.ndarray:
    """An NCHW tensor as an NHWC numpy view (contiguous when the tensor is channels_last)."""
    return _np(t).transpose(0, 2, 3, 1)


def _from_nhwc(a: np.ndarray) -> Tensor:
    """An NHWC array as a channels_last NCHW tensor over the same memory."""
    return torch.from_numpy(a).permute(0, 3, 1, 2)


def _empty_like_layout(shape: Sequence[int], like: Tensor, nhwc: bool) -> Tensor:
    """The fake functions' outputs: the shape, dtype and strides the real op returns."""
    fmt = torch.channels_last if nhwc else torch.contiguous_format
    return torch.empty(shape, dtype=like.dtype, device=like.device, memory_format=fmt)


_EMPTY_SHAPE = (0,)


def _none_tensor(like: Tensor) -> Tensor:
    """The placeholder for a gradient that was not asked for (custom ops return tensors)."""
    return like.new_empty(_EMPTY_SHAPE)


# ---------------------------------------------------------------------------
# convolution ops
# ---------------------------------------------------------------------------


def _out_size(size: int, k: int, s: int, lo: int, hi: int, d: int) -> int:
    return _spec.output_size(size, (k - 1) * d + 1, s, lo, hi)


# Optional[...] rather than "X | None": the schema inference evaluates the annotations,
# and "X | None" does not evaluate on Python 3.9
@torch.library.custom_op("cnnfast::conv2d", mutates_args=())
def _conv2d_op(x: Tensor, weight: Tensor, bias: Optional[Tensor], stride: list[int],  # noqa: UP045
               padding: list[int], dilation: list[int]) -> Tensor:
    """y = conv(x, weight) + bias; padding = [top, bottom, left, right] (zeros)."""
    pads = ((padding[0], padding[1]), (padding[2], padding[3]))
    b = None if bias is None else _np(bias)
    if _nhwc(x):
        y = _ops.conv2d(_as_nhwc(x), _np(weight).transpose(2, 3, 1, 0), b, tuple(stride), pads,
                        tuple(dilation))
        return _from_nhwc(y)
    y = _ops.conv2d(_np(x), _np(weight), b, tuple(stride), pads, tuple(dilation),
                    "channels_first")
    return torch.from_numpy(y)


@_conv2d_op.register_fake
def _(x, weight, bias, stride, padding, dilation):
    n, _, h, w = x.shape
    f, _, kh, kw = weight.shape
    oh = _out_size(h, kh, stride[0], padding[0], padding[1], dilation[0])
    ow = _out_size(w, kw, stride[1], padding[2], padding[3], dilation[1])
    return _empty_like_layout((n, f, oh, ow), x, _nhwc(x))


@torch.library.custom_op("cnnfast::conv2d_backward", mutates_args=())
def _conv2d_backward_op(grad: Tensor, x: Tensor, weight: Tensor, stride: list[int],
                        padding: list[int], dilation: list[int], input_grad: bool,
                        kernel_grad: bool) -> tuple[Tensor, Tensor, Tensor]:
    """(dx, dweight, dbias); those not asked for are empty tensors."""
    pads = ((padding[0], padding[1]), (padding[2], padding[3]))
    if _nhwc(x):
        dx, dk, db = _ops.conv2d_backward(
            _as_nhwc(grad), _as_nhwc(x), _np(weight).transpose(2, 3, 1, 0), tuple(stride), pads,
            tuple(dilation), input_grad=input_grad, kernel_grad=kernel_grad)
        tdx = _from_nhwc(dx) if input_grad else _none_tensor(x)
        # (KH, KW, C, F) -> PyTorch's (F, C, KH, KW), contiguous as the optimizer prefers
        tdk = torch.from_numpy(dk).permute(3, 2, 0, 1).contiguous() if kernel_grad else None
    else:
        dx, dk, db = _ops.conv2d_backward(
            _np(grad), _np(x), _np(weight), tuple(stride), pads, tuple(dilation),
            "channels_first", input_grad=input_grad, kernel_grad=kernel_grad)
        tdx = torch.from_numpy(dx) if input_grad else _none_tensor(x)
        tdk = torch.from_numpy(dk) if kernel_grad else None
    if not kernel_grad:
        return tdx, _none_tensor(weight), _none_tensor(weight)
    return tdx, tdk, torch.from_numpy(db)


@_conv2d_backward_op.register_fake
def _(grad, x, weight, stride, padding, dilation, input_grad, kernel_grad):
    dx = _empty_like_layout(x.shape, x, _nhwc(x)) if input_grad else _none_tensor(x)
    if not kernel_grad:
        return dx, _none_tensor(weight), _none_tensor(weight)
    return dx, torch.empty_like(weight, memory_format=torch.contiguous_format), \
        weight.new_empty((weight.shape[0],))


def _conv2d_setup(ctx, inputs, output) -> None:
    x, weight, bias, stride, padding, dilation = inputs
    ctx.save_for_backward(x, weight)
    ctx.geometry = (stride, padding, dilation)
    ctx.has_bias = bias is not None


def _conv2d_grad(ctx, grad: Tensor):
    x, weight = ctx.saved_tensors
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    # the bias gradient comes with the kernel gradient's pass over dy
    kernel_grad = bool(need_w or (need_b and ctx.has_bias))
    dx, dw, db = torch.ops.cnnfast.conv2d_backward(grad, x, weight, *ctx.geometry,
                                                   bool(need_x), kernel_grad)
    return (dx if need_x else None, dw if need_w else None,
            db if need_b and ctx.has_bias else None, None, None, None)


_conv2d_op.register_autograd(_conv2d_grad, setup_context=_conv2d_setup)


# ---------------------------------------------------------------------------
# pooling ops
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _avg_factor(h: int, w: int, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int,
                divisor: int) -> np.ndarray | None:
    """(OH, OW) factors that turn cnnfast's average over the in-bounds cells into
    PyTorch's sum / divisor; None when they are all 1."""
    oh, ow = _out_size(h, kh, sh, ph, ph, 1), _out_size(w, kw, sw, pw, pw, 1)
    r0 = np.arange(oh) * sh - ph
    c0 = np.arange(ow) * sw - pw
    rows = np.minimum(r0 + kh, h) - np.maximum(r0, 0)
    cols = np.minimum(c0 + kw, w) - np.maximum(c0, 0)
    counts = np.outer(rows, cols).astype(np.float64)
    factor = counts / divisor
    if np.all(factor == 1.0):
        return None
    factor.setflags(write=False)
    return factor


def _factor_for(x: Tensor, kernel_size, stride, padding, divisor: int, nhwc: bool):
    """The avg rescaling factor in x's dtype, shaped to broadcast over the layout used."""
    if divisor == 0:
        return None
    f = _avg_factor(x.shape[2], x.shape[3], kernel_size[0], kernel_size[1], stride[0],
                    stride[1], padding[0], padding[1], divisor)
    if f is None:
        return None
    f = f.astype(np.float32 if x.dtype == torch.float32 else np.float64)
    return f[:, :, None] if nhwc else f


def _pool_args(kernel_size, stride, padding):
    k, s, p = tuple(kernel_size), tuple(stride), tuple(padding)
    return k, s, ((p[0], p[0]), (p[1], p[1]))


@torch.library.custom_op("cnnfast::pool2d", mutates_args=())
def _pool2d_op(x: Tensor, kernel_size: list[int], stride: list[int], padding: list[int],
               mode: str, divisor: int) -> tuple[Tensor, Tensor]:
    """(y, int32 indices) of max/min pooling, (y, empty) of avg; symmetric padding
    [ph, pw]. avg divides by ``divisor`` (0: by the in-bounds cells)."""
    k, s, pads = _pool_args(kernel_size, stride, padding)
    nhwc = _nhwc(x)
    xa = _as_nhwc(x) if nhwc else _np(x)
    fmt = "channels_last" if nhwc else "channels_first"
    wrap = _from_nhwc if nhwc else torch.from_numpy
    if mode == "avg":
        y = _ops.pool2d(xa, k, s, pads, "avg", fmt)
        factor = _factor_for(x, k, s, padding, divisor, nhwc)
        if factor is not None:
            y *= factor
        return wrap(y), x.new_empty(_EMPTY_SHAPE, dtype=torch.int32)
    y, idx = _ops.pool2d(xa, k, s, pads, mode, fmt, return_indices=True)
    return wrap(y), wrap(idx)


@_pool2d_op.register_fake
def _(x, kernel_size, stride, padding, mode, divisor):
    n, c, h, w = x.shape
    oh = _out_size(h, kernel_size[0], stride[0], padding[0], padding[0], 1)
    ow = _out_size(w, kernel_size[1], stride[1], padding[1], padding[1], 1)
    nhwc = _nhwc(x)
    y = _empty_like_layout((n, c, oh, ow), x, nhwc)
    if mode == "avg":
        return y, x.new_empty(_EMPTY_SHAPE, dtype=torch.int32)
    fmt = torch.channels_last if nhwc else torch.contiguous_format
    return y, torch.empty((n, c, oh, ow), dtype=torch.int32, device=x.device, memory_format=fmt)


@torch.library.custom_op("cnnfast::pool2d_backward", mutates_args=())
def _pool2d_backward_op(grad: Tensor, x: Tensor, indices: Tensor, kernel_size: list[int],
                        stride: list[int], padding: list[int], mode: str,
                        divisor: int) -> Tensor:
    """dx of pool2d; max/min route each window's gradient to the forward's index."""
    k, s, pads = _pool_args(kernel_size, stride, padding)
    nhwc = _nhwc(x)
    fmt = "channels_last" if nhwc else "channels_first"
    ga = _as_nhwc(grad) if nhwc else _np(grad)
    xa = _as_nhwc(x) if nhwc else _np(x)
    if mode == "avg":
        factor = _factor_for(x, k, s, padding, divisor, nhwc)
        if factor is not None:
            ga = ga * factor
        dx = _ops.pool2d_backward(ga, xa, k, s, pads, "avg", fmt)
    else:
        ia = _as_nhwc(indices) if nhwc else _np(indices)
        dx = _ops.pool2d_backward(ga, xa, k, s, pads, mode, fmt, indices=ia)
    return _from_nhwc(dx) if nhwc else torch.from_numpy(dx)


@_pool2d_backward_op.register_fake
def _(grad, x, indices, kernel_size, stride, padding, mode, divisor):
    return _empty_like_layout(x.shape, x, _nhwc(x))


def _pool2d_setup(ctx, inputs, output) -> None:
    x, kernel_size, stride, padding, mode, divisor = inputs
    ctx.save_for_backward(x, output[1])
    ctx.args = (kernel_size, stride, padding, mode, divisor)
    ctx.mark_non_differentiable(output[1])


def _pool2d_grad(ctx, grad: Tensor, _grad_indices: Tensor):
    x, indices = ctx.saved_tensors
    if not ctx.needs_input_grad[0]:
        return None, None, None, None, None, None
    dx = torch.ops.cnnfast.pool2d_backward(grad, x, indices, *ctx.args)
    return dx, None, None, None, None, None


_pool2d_op.register_autograd(_pool2d_grad, setup_context=_pool2d_setup)


# ---------------------------------------------------------------------------
# argument checks (PyTorch's rules) and the public functions
# ---------------------------------------------------------------------------


def _pair(v: IntOrPair, name: str, minimum: int) -> tuple[int, int]:
    """An int or a 1- or 2-sequence of ints as (h, w), each >= minimum."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        pair = (int(v), int(v))
    elif isinstance(v, (tuple, list, torch.Size)) and len(v) in (1, 2) and all(
            isinstance(e, (int, np.integer)) and not isinstance(e, bool) for e in v):
        pair = (int(v[0]), int(v[-1]))
    else:
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v!r}")
    return pair


def _check_tensor(t: Tensor, name: str, dims: tuple[int, ...]) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() not in dims:
        want = " or ".join(f"{d}-D" for d in dims)
        raise ValueError(f"{name} must be {want} (NCHW), got shape {tuple(t.shape)}")
    if t.dtype not in _FLOATS:
        raise TypeError(f"{name} must be float32 or float64 for cnnfast, got {t.dtype}")
    if t.device.type not in ("cpu", "meta"):
        raise TypeError(f"{name} must be a CPU tensor for cnnfast, got device {t.device}")


def _batched(x: Tensor) -> tuple[Tensor, bool]:
    """(N, C, H, W) input, and whether it was an unbatched (C, H, W) one."""
    return (x.unsqueeze(0), True) if x.dim() == 3 else (x, False)


def _conv_pads(padding: ConvPadding, kernel: tuple[int, int], stride: tuple[int, int],
               dilation: tuple[int, int]) -> list[int]:
    """[top, bottom, left, right] by PyTorch's rules: symmetric ints; "same" needs stride
    1 and puts the odd pixel of an even effective kernel at the bottom/right."""
    if isinstance(padding, str):
        word = padding.lower()
        if word == "valid":
            return [0, 0, 0, 0]
        if word == "same":
            if stride != (1, 1):
                raise ValueError("padding='same' is not supported for strided convolutions "
                                 f"(stride={stride}), as in PyTorch")
            # at stride 1 PyTorch's rule is TensorFlow's: the odd pixel bottom/right
            eff = ((kernel[0] - 1) * dilation[0] + 1, (kernel[1] - 1) * dilation[1] + 1)
            (top, bottom), (left, right) = _spec.resolve_padding("same", (1, 1), eff, (1, 1))
            return [top, bottom, left, right]
        raise ValueError(f"padding must be 'same', 'valid', an int or a pair, got {padding!r}")
    ph, pw = _pair(padding, "padding", 0)
    return [ph, ph, pw, pw]


def _conv_geometry(input: Tensor, weight: Tensor, bias: Tensor | None, stride: IntOrPair,
                   padding: ConvPadding, dilation: IntOrPair
                   ) -> tuple[tuple[int, int], list[int], tuple[int, int]]:
    """(stride, [top, bottom, left, right] pads, dilation) of a convolution call, after
    checking that input, weight and bias share one dtype."""
    if input.dtype != weight.dtype or (bias is not None and bias.dtype != input.dtype):
        raise TypeError(f"input ({input.dtype}), weight ({weight.dtype}) and bias must have "
                        "the same dtype")
    s = _pair(stride, "stride", 1)
    d = _pair(dilation, "dilation", 1)
    return s, _conv_pads(padding, (weight.shape[2], weight.shape[3]), s, d), d


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: IntOrPair = 1,
           padding: ConvPadding = 0, dilation: IntOrPair = 1, groups: int = 1) -> Tensor:
    """``torch.nn.functional.conv2d`` on cnnfast's kernels (NCHW, zero padding).

    ``padding``: an int, a pair, "valid" or "same" (stride 1 only; an even effective
    kernel puts the extra pixel at the bottom/right, as PyTorch does). ``groups`` other
    than 1 is a ValueError. float32 / float64 CPU tensors; autograd and torch.compile
    go through the ``cnnfast::conv2d`` custom op.
    """
    _check_tensor(input, "input", (3, 4))
    _check_tensor(weight, "weight", (4,))
    if groups != 1:
        raise ValueError(f"groups={groups}: cnnfast.torch.conv2d implements groups=1 only "
                         "(use torch.nn.functional.conv2d for grouped convolutions)")
    if bias is not None:
        _check_tensor(bias, "bias", (1,))
    s, pads, d = _conv_geometry(input, weight, bias, stride, padding, dilation)
    x, unbatched = _batched(input)
    y = torch.ops.cnnfast.conv2d(x, weight, bias, list(s), pads, list(d))
    return y.squeeze(0) if unbatched else y


def _pool(input: Tensor, kernel_size: IntOrPair, stride: IntOrPair | None,
          padding: IntOrPair, mode: str, divisor: int, return_indices: bool = False):
    _check_tensor(input, "input", (3, 4))
    k = _pair(kernel_size, "kernel_size", 1)
    # PyTorch: stride None or an empty list means the kernel size
    s = k if stride is None or (isinstance(stride, (list, tuple)) and not stride) \
        else _pair(stride, "stride", 1)
    p = _pair(padding, "padding", 0)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"pad should be at most half of effective kernel size, but got "
                         f"padding={p} and kernel_size={k} (PyTorch's rule)")
    x, unbatched = _batched(input)
    y, idx = torch.ops.cnnfast.pool2d(x, list(k), list(s), list(p), mode, divisor)
    if unbatched:
        y, idx = y.squeeze(0), (idx.squeeze(0) if idx.dim() == 4 else idx)
    if return_indices:
        return y, idx.to(torch.int64)
    return y


def _check_pool_options(dilation: IntOrPair, ceil_mode: bool) -> None:
    if _pair(dilation, "dilation", 1) != (1, 1):
        raise ValueError(f"dilation={dilation!r}: cnnfast pooling implements dilation=1 only")
    if ceil_mode:
        raise ValueError("ceil_mode=True: cnnfast pooling implements ceil_mode=False only")


def max_pool2d(input: Tensor, kernel_size: IntOrPair, stride: IntOrPair | None = None,
               padding: IntOrPair = 0, dilation: IntOrPair = 1, ceil_mode: bool = False,
               return_indices: bool = False):
    """``torch.nn.functional.max_pool2d`` on cnnfast's kernels (padded cells never win).

    ``return_indices=True`` also returns PyTorch's int64 flat indices ``h * W + w``.
    Ties go to the first cell in row-major window order, as in PyTorch; NaN wins, but
    the index is the window's first NaN (PyTorch: its last). ``dilation`` other than 1
    and ``ceil_mode=True`` are ValueErrors.
    """
    _check_pool_options(dilation, ceil_mode)
    return _pool(input, kernel_size, stride, padding, "max", 0, return_indices)


def min_pool2d(input: Tensor, kernel_size: IntOrPair, stride: IntOrPair | None = None,
               padding: IntOrPair = 0, dilation: IntOrPair = 1, ceil_mode: bool = False,
               return_indices: bool = False):
    """Min pooling with ``max_pool2d``'s arguments: ``-max_pool2d(-x)`` in one pass
    (padded cells never win; ties to the first cell)."""
    _check_pool_options(dilation, ceil_mode)
    return _pool(input, kernel_size, stride, padding, "min", 0, return_indices)


def avg_pool2d(input: Tensor, kernel_size: IntOrPair, stride: IntOrPair | None = None,
               padding: IntOrPair = 0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None) -> Tensor:
    """``torch.nn.functional.avg_pool2d`` on cnnfast's kernels.

    PyTorch's divisor: ``divisor_override`` if given, else ``kh * kw`` with
    ``count_include_pad=True`` (padded zeros counted), else the in-bounds cells
    (cnnfast's own rule). cnnfast averages over the in-bounds cells, so the other two
    rescale the result (and the incoming gradient) by count / divisor per window.
    """
    _check_pool_options(1, ceil_mode)
    k = _pair(kernel_size, "kernel_size", 1)
    if divisor_override is not None:
        if isinstance(divisor_override, bool) or not isinstance(divisor_override, int) \
                or divisor_override == 0:
            raise ValueError(f"divisor_override must be a non-zero int, got {divisor_override!r}")
        divisor = divisor_override
    else:
        divisor = k[0] * k[1] if count_include_pad else 0
    return _pool(input, kernel_size, stride, padding, "avg", divisor)


# ---------------------------------------------------------------------------
# convolution + ReLU + max pooling, fused (convert(model, fuse=True))
# ---------------------------------------------------------------------------


@torch.library.custom_op("cnnfast::conv2d_relu_max_pool2d", mutates_args=())
def _conv_relu_pool_op(x: Tensor, weight: Tensor, bias: Optional[Tensor],  # noqa: UP045
                       stride: list[int], padding: list[int], dilation: list[int],
                       pool_size: list[int], pool_stride: list[int]) -> tuple[Tensor, Tensor]:
    """(max_pool2d(relu(conv2d(x))), int32 indices into the convolution's plane), in one
    pass (cnnfast.conv2d_pool2d): the convolution's output is never stored whole."""
    pads = ((padding[0], padding[1]), (padding[2], padding[3]))
    b = None if bias is None else _np(bias)
    geo = (tuple(stride), pads, tuple(dilation))
    pool = dict(activation="relu", pool_size=tuple(pool_size), pool_strides=tuple(pool_stride),
                return_indices=True)
    if _nhwc(x):
        y, idx = _ops.conv2d_pool2d(_as_nhwc(x), _np(weight).transpose(2, 3, 1, 0), b, *geo,
                                    **pool)
        return _from_nhwc(y), _from_nhwc(idx)
    y, idx = _ops.conv2d_pool2d(_np(x), _np(weight), b, *geo, "channels_first", **pool)
    return torch.from_numpy(y), torch.from_numpy(idx)


@_conv_relu_pool_op.register_fake
def _(x, weight, bias, stride, padding, dilation, pool_size, pool_stride):
    n, _, h, w = x.shape
    f, _, kh, kw = weight.shape
    oh = _out_size(h, kh, stride[0], padding[0], padding[1], dilation[0])
    ow = _out_size(w, kw, stride[1], padding[2], padding[3], dilation[1])
    ph = _out_size(oh, pool_size[0], pool_stride[0], 0, 0, 1)
    pw = _out_size(ow, pool_size[1], pool_stride[1], 0, 0, 1)
    nhwc = _nhwc(x)
    fmt = torch.channels_last if nhwc else torch.contiguous_format
    return (_empty_like_layout((n, f, ph, pw), x, nhwc),
            torch.empty((n, f, ph, pw), dtype=torch.int32, device=x.device, memory_format=fmt))


@torch.library.custom_op("cnnfast::conv2d_relu_max_pool2d_backward", mutates_args=())
def _conv_relu_pool_backward_op(grad: Tensor, x: Tensor, weight: Tensor, indices: Tensor,
                                y: Tensor, stride: list[int], padding: list[int],
                                dilation: list[int], pool_size: list[int],
                                pool_stride: list[int],
                                input_grad: bool) -> tuple[Tensor, Tensor, Tensor]:
    """(dx or empty, dweight, dbias) of conv2d_relu_max_pool2d; y is its output (the
    ReLU mask)."""
    pads = ((padding[0], padding[1]), (padding[2], padding[3]))
    geo = (tuple(stride), pads, tuple(dilation))
    pool = dict(activation="relu", pool_size=tuple(pool_size), pool_strides=tuple(pool_stride),
                input_grad=input_grad)
    if _nhwc(x):
        dx, dk, db = _ops.conv2d_pool2d_backward(
            _as_nhwc(grad), _as_nhwc(x), _np(weight).transpose(2, 3, 1, 0), _as_nhwc(indices),
            _as_nhwc(y), *geo, **pool)
        tdx = _from_nhwc(dx) if input_grad else _none_tensor(x)
        return tdx, torch.from_numpy(dk).permute(3, 2, 0, 1).contiguous(), torch.from_numpy(db)
    dx, dk, db = _ops.conv2d_pool2d_backward(_np(grad), _np(x), _np(weight), _np(indices),
                                             _np(y), *geo, "channels_first", **pool)
    tdx = torch.from_numpy(dx) if input_grad else _none_tensor(x)
    return tdx, torch.from_numpy(dk), torch.from_numpy(db)


@_conv_relu_pool_backward_op.register_fake
def _(grad, x, weight, indices, y, stride, padding, dilation, pool_size, pool_stride,
      input_grad):
    dx = _empty_like_layout(x.shape, x, _nhwc(x)) if input_grad else _none_tensor(x)
    return dx, torch.empty_like(weight, memory_format=torch.contiguous_format), \
        weight.new_empty((weight.shape[0],))


def _conv_relu_pool_setup(ctx, inputs, output) -> None:
    x, weight, bias, stride, padding, dilation, pool_size, pool_stride = inputs
    ctx.save_for_backward(x, weight, output[1], output[0])
    ctx.geometry = (stride, padding, dilation, pool_size, pool_stride)
    ctx.has_bias = bias is not None
    ctx.mark_non_differentiable(output[1])


def _conv_relu_pool_grad(ctx, grad: Tensor, _grad_indices: Tensor):
    x, weight, indices, y = ctx.saved_tensors
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    dx, dw, db = torch.ops.cnnfast.conv2d_relu_max_pool2d_backward(
        grad, x, weight, indices, y, *ctx.geometry, bool(need_x))
    return (dx if need_x else None, dw if need_w else None,
            db if need_b and ctx.has_bias else None, None, None, None, None, None)


_conv_relu_pool_op.register_autograd(_conv_relu_pool_grad, setup_context=_conv_relu_pool_setup)


def conv2d_relu_max_pool2d(input: Tensor, weight: Tensor, bias: Tensor | None = None,
                           stride: IntOrPair = 1, padding: ConvPadding = 0,
                           dilation: IntOrPair = 1, pool_kernel_size: IntOrPair = 2,
                           pool_stride: IntOrPair | None = None) -> Tensor:
    """``max_pool2d(relu(conv2d(input, weight, bias, ...)), pool_kernel_size,
    pool_stride)`` in one pass (unpadded pooling): the same values, the convolution's
    output and its gradient never stored whole for non-overlapping windows."""
    _check_tensor(input, "input", (4,))
    _check_tensor(weight, "weight", (4,))
    s, pads, d = _conv_geometry(input, weight, bias, stride, padding, dilation)
    pk = _pair(pool_kernel_size, "pool_kernel_size", 1)
    ps = pk if pool_stride is None else _pair(pool_stride, "pool_stride", 1)
    y, _ = torch.ops.cnnfast.conv2d_relu_max_pool2d(input, weight, bias, list(s), pads, list(d),
                                                    list(pk), list(ps))
    return y
