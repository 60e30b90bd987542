"""The one place where stride, dilation, pool-size and padding arguments are parsed.

Every public entry point turns its user-facing arguments into plain resolved
integers here (TensorFlow/Keras semantics for ``"same"``); the kernels and
the layers only ever see the resolved numbers.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

Pads = tuple[tuple[int, int], tuple[int, int]]

_DATA_FORMATS = ("channels_last", "channels_first")


def check_data_format(data_format: object) -> str:
    """Return the data format as a lower-case string or raise."""
    if not isinstance(data_format, str):
        raise TypeError(
            f"data_format must be 'channels_last' or 'channels_first', got {data_format!r}"
        )
    fmt = data_format.lower()
    if fmt not in _DATA_FORMATS:
        raise ValueError(
            f"data_format must be 'channels_last' or 'channels_first', got {data_format!r}"
        )
    return fmt


def _as_int(value: object, name: str) -> int:
    if isinstance(value, (bool,)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer or a pair of integers, got {value!r}")
    return int(value)


def as_pair(value: object, name: str, minimum: int = 1) -> tuple[int, int]:
    """An int or a pair of ints (h, w), each >= minimum."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an integer or a pair (h, w), got {value!r}")
        pair = (_as_int(value[0], name), _as_int(value[1], name))
    else:
        v = _as_int(value, name)
        pair = (v, v)
    if pair[0] < minimum or pair[1] < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return pair


def _same_pads(size: int, eff_k: int, stride: int) -> tuple[int, int]:
    out = -(-size // stride)  # ceil
    total = max((out - 1) * stride + eff_k - size, 0)
    return total // 2, total - total // 2


def resolve_padding(
    padding: object,
    in_hw: tuple[int, int],
    eff_k: tuple[int, int],
    strides: tuple[int, int],
    name: str = "padding",
) -> Pads:
    """Resolve a padding argument into ((top, bottom), (left, right)).

    ``eff_k`` is the effective (dilated) window size ``(k - 1) * d + 1``.
    """
    if isinstance(padding, str):
        word = padding.lower()
        if word == "valid":
            return (0, 0), (0, 0)
        if word == "same":
            return (
                _same_pads(in_hw[0], eff_k[0], strides[0]),
                _same_pads(in_hw[1], eff_k[1], strides[1]),
            )
        raise ValueError(
            f"{name} must be 'valid', 'same', an int, a pair or ((top, bottom), (left, right));"
            f" got the unknown word {padding!r}"
        )
    if padding is None or isinstance(padding, bool):
        raise TypeError(f"{name} must be 'valid', 'same', an int or pairs, got {padding!r}")
    if isinstance(padding, numbers.Integral):
        p = int(padding)
        pads = ((p, p), (p, p))
    elif isinstance(padding, (tuple, list)) and len(padding) == 2:
        a, b = padding
        if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
            if len(a) != 2 or len(b) != 2:
                raise ValueError(
                    f"{name} must be ((top, bottom), (left, right)), got {padding!r}"
                )
            pads = (
                (_as_int(a[0], name), _as_int(a[1], name)),
                (_as_int(b[0], name), _as_int(b[1], name)),
            )
        elif not isinstance(a, (tuple, list)) and not isinstance(b, (tuple, list)):
            ph, pw = _as_int(a, name), _as_int(b, name)
            pads = ((ph, ph), (pw, pw))
        else:
            raise ValueError(
                f"{name} must be an int, (ph, pw) or ((top, bottom), (left, right)),"
                f" got {padding!r}"
            )
    else:
        raise ValueError(
            f"{name} must be 'valid', 'same', an int, (ph, pw) or ((top, bottom), (left, right)),"
            f" got {padding!r}"
        )
    if min(pads[0] + pads[1]) < 0:
        raise ValueError(f"{name} must not be negative, got {padding!r}")
    return pads


def output_size(size: int, eff_k: int, stride: int, before: int, after: int) -> int:
    """Number of window positions: floor((size + before + after - eff_k) / stride) + 1."""
    span = size + before + after - eff_k
    if span < 0:
        return 0
    return span // stride + 1


@dataclass(frozen=True)
class WindowSpec:
    """A resolved sliding window over an (H, W) plane."""

    h: int
    w: int
    kh: int
    kw: int
    sh: int
    sw: int
    dh: int
    dw: int
    pt: int
    pb: int
    pl: int
    pr: int
    oh: int
    ow: int


def window_spec(
    in_hw: tuple[int, int],
    window: tuple[int, int],
    strides: object,
    padding: object,
    dilation_rate: object = 1,
    *,
    window_name: str = "kernel",
    input_name: str = "x",
    strides_name: str = "strides",
    padding_name: str = "padding",
) -> WindowSpec:
    """Resolve strides/padding/dilation of a window over ``in_hw``; raise on an empty output.

    ``strides_name`` / ``padding_name``: the caller's names of those arguments, for the
    messages (``pool_strides`` / ``pool_padding`` in conv2d_pool2d)."""
    sh, sw = as_pair(strides, strides_name)
    dh, dw = as_pair(dilation_rate, "dilation_rate")
    kh, kw = window
    eff = ((kh - 1) * dh + 1, (kw - 1) * dw + 1)
    (pt, pb), (pl, pr) = resolve_padding(padding, in_hw, eff, (sh, sw), padding_name)
    oh = output_size(in_hw[0], eff[0], sh, pt, pb)
    ow = output_size(in_hw[1], eff[1], sw, pl, pr)
    if oh < 1 or ow < 1:
        raise ValueError(
            f"empty output: {input_name} spatial size {tuple(in_hw)} with padding "
            f"((top, bottom), (left, right)) = (({pt}, {pb}), ({pl}, {pr})) is smaller than the "
            f"{window_name} window {kh}x{kw} (dilated to {eff[0]}x{eff[1]}); output would be "
            f"{oh}x{ow}"
        )
    return WindowSpec(in_hw[0], in_hw[1], kh, kw, sh, sw, dh, dw, pt, pb, pl, pr, oh, ow)
