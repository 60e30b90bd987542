"""The one place where stride, dilation, pool-size and padding arguments are parsed.

Every public entry point turns its user-facing arguments into plain resolved
integers here (TensorFlow/Keras semantics for ``"same"``); the kernels and
the layers only ever see the resolved numbers.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

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


# ------------------------------------------------------ resolved problems --
#
# A resolved problem holds every number the kernels need, in NHWC / HWCF
# order, after every geometry check: the functional API builds one per call
# (cached per argument set), the layers one per input shape, and the Cython
# boundary copies its fields into the C struct (cf_conv2d_shape,
# cf_pool2d_shape) without deriving anything.

# Every resolved size, stride, dilation and padding stays below MAX_DIM and
# every array below MAX_ELEMS elements, so that the C kernels' index
# arithmetic fits in int64 with room to spare.
MAX_DIM = 2**31 - 1
MAX_ELEMS = (2**63 - 1) // 8
# The largest padded image (rows x columns x the larger channel count) the C
# drivers index: their offsets, slack and phase images stay within a few
# multiples of it. Real geometries are many orders of magnitude below.
MAX_PADDED_ELEMS = 2**55
# Pooling indices are int32 flat cells of an (H, W) plane.
MAX_PLANE = 2**31 - 1

POOL_MODES = {"max": 0, "avg": 1, "min": 2}
POOL_MODE_NAMES = ("max", "avg", "min")

_LAYOUTS = {
    ("channels_last", "x"): "(N, H, W, C)",
    ("channels_first", "x"): "(N, C, H, W)",
    ("channels_last", "kernel"): "(KH, KW, C, F)",
    ("channels_first", "kernel"): "(F, C, KH, KW)",
}


def layout_name(fmt: str, what: str) -> str:
    """How ``what`` ("x" or "kernel") is laid out in data format ``fmt``, for messages."""
    return _LAYOUTS[(fmt, what)]


def check_sizes(name: str, *values: int) -> None:
    """Refuse a size, stride, dilation or padding the kernels cannot index."""
    for v in values:
        if v > MAX_DIM:
            raise ValueError(
                f"{name}: size {v} is too large (would overflow the kernels' index arithmetic;"
                f" limit {MAX_DIM})"
            )


def check_elems(name: str, shape: tuple) -> None:
    """Refuse an array shape whose element count the kernels cannot index."""
    total = 1
    for s in shape:
        total *= int(s)
    if total > MAX_ELEMS:
        raise ValueError(f"{name}: shape {shape} has {total} elements, which would overflow")


def parse_activation(activation: object) -> bool:
    """True for a fused ReLU, False for none / "linear"; anything else is refused."""
    if activation is None:
        return False
    if not isinstance(activation, str) or activation.lower() not in ("linear", "relu"):
        raise ValueError(
            f"activation must be None, 'linear' or 'relu' (the fused ones), got {activation!r}"
        )
    return activation.lower() == "relu"


def parse_pool_mode(mode: object, name: str = "mode") -> int:
    """The kernels' pooling mode number (0 max, 1 avg, 2 min) of a mode name."""
    if not isinstance(mode, str) or mode.lower() not in POOL_MODES:
        raise ValueError(f"{name} must be 'max', 'avg' or 'min', got {mode!r}")
    return POOL_MODES[mode.lower()]


class _Resolved:
    """Immutable after construction: resolved problems are cached and shared (by the
    functional API's cache and by the layers), so nothing may change one in place."""

    __slots__ = ()

    def _set(self, **fields: Any) -> None:
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable (set {name!r})")

    def with_batch(self, n: int):
        """The same problem on a batch of n images."""
        copy = object.__new__(type(self))
        for name in type(self).__slots__:
            object.__setattr__(copy, name, getattr(self, name))
        copy._rebatch(n)
        return copy

    def _rebatch(self, n: int) -> None:
        object.__setattr__(self, "n", n)


ALGORITHMS = ("auto", "direct", "winograd")

#: The output tile m of Winograd's F(m x m, 3 x 3) (csrc/winograd.h): 2, or
#: WINOGRAD_LARGE_TILE for layers of at least WINOGRAD_LARGE_MIN_CHANNELS input
#: channels and filters and an output of at least WINOGRAD_LARGE_MIN_SIZE rows and
#: columns, where F(4x4, 3x3)'s 4x fewer products beat its costlier transforms and a
#: 4 x 4 grid wastes little (a 14 x 14 output would compute 16 x 16), and its error
#: stays within the bound (notes/winograd.md). The kernel gradient runs F(2x2)
#: whatever the tile (csrc/winograd.h: F(4x4)'s kernel-gradient error is over it).
WINOGRAD_TILE = 2
WINOGRAD_LARGE_TILE = 4
WINOGRAD_LARGE_MIN_CHANNELS = 32
WINOGRAD_LARGE_MIN_SIZE = 28


def winograd_tile(c: int, f: int, out_hw: tuple[int, int]) -> int:
    """Winograd's output tile m for a layer of ``c`` input channels, ``f`` filters and
    an output of ``out_hw``: a fixed rule on the geometry (the same bits every call)."""
    if min(c, f) >= WINOGRAD_LARGE_MIN_CHANNELS and min(out_hw) >= WINOGRAD_LARGE_MIN_SIZE:
        return WINOGRAD_LARGE_TILE
    return WINOGRAD_TILE

#: "auto" picks Winograd for 3x3 stride-1 layers of at least this many input
#: channels and filters and an output of at least WINOGRAD_MIN_SIZE rows and
#: columns: below them the transforms and the tiles' overhang outweigh the
#: products saved (measured: notes/winograd.md).
WINOGRAD_MIN_CHANNELS = 32
WINOGRAD_MIN_SIZE = 14
#: ... and at least this many output pixels per call (batch x rows x columns): the
#: kernel's transform is paid on every call, and a call of a few small images has
#: too few tiles to spread over the threads (measured: notes/winograd.md).
WINOGRAD_MIN_PIXELS = 1024


def winograd_geometry(kh: int, kw: int, sh: int, sw: int, dh: int, dw: int) -> bool:
    """Whether Winograd takes the layer: a 3x3 kernel, stride 1, dilation 1."""
    return (kh, kw, sh, sw, dh, dw) == (3, 3, 1, 1, 1, 1)


def resolve_algorithm(algorithm: object, kernel: tuple[int, int], strides: tuple[int, int],
                      dilation: tuple[int, int], c: int, f: int,
                      out_hw: tuple[int, int] = (0, 0), n: int = 1) -> str:
    """"direct" or "winograd" for ``algorithm`` ("auto", "direct" or "winograd").

    "auto" is a fixed rule on the geometry (never a timing, so a call always
    gives the same bits, and the same at every SIMD level): Winograd for 3x3
    stride-1 layers of at least WINOGRAD_MIN_CHANNELS input channels and
    filters, an output of at least WINOGRAD_MIN_SIZE x WINOGRAD_MIN_SIZE and
    at least WINOGRAD_MIN_PIXELS output pixels over the batch of ``n`` images,
    the direct path else."""
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be 'auto', 'direct' or 'winograd', got {algorithm!r}")
    fits = winograd_geometry(*kernel, *strides, *dilation)
    if algorithm == "winograd" and not fits:
        raise ValueError(
            f"algorithm='winograd' takes 3x3 kernels of stride 1 and dilation 1, got kernel "
            f"{tuple(kernel)}, strides {tuple(strides)}, dilation_rate {tuple(dilation)}")
    if algorithm == "auto":
        fits = (fits and min(c, f) >= WINOGRAD_MIN_CHANNELS
                and min(out_hw) >= WINOGRAD_MIN_SIZE
                and n * out_hw[0] * out_hw[1] >= WINOGRAD_MIN_PIXELS)
        return "winograd" if fits else "direct"
    return algorithm


class ConvSpec(_Resolved):
    """A resolved 2-D convolution: x (n, h, w, c) * kernel (kh, kw, c, f) -> (n, oh, ow, f).

    ``fmt`` is the caller's data format; every size here is in NHWC / HWCF
    terms. The field names are those of the C struct ``cf_conv2d_shape``;
    ``algorithm`` is "direct" or "winograd" (resolved), ``winograd_tile`` the
    C struct's ``winograd`` (0, or Winograd's output tile); ``requested`` is what
    the caller asked for, so the same problem on another batch (``with_batch``)
    resolves "auto" again.
    """

    __slots__ = ("fmt", "n", "h", "w", "c", "f", "kh", "kw", "sh", "sw", "dh", "dw",
                 "pt", "pb", "pl", "pr", "oh", "ow", "algorithm", "winograd_tile",
                 "requested")

    def __init__(self, fmt: str, n: int, h: int, w: int, c: int, f: int, kh: int, kw: int,
                 window: WindowSpec, algorithm: str = "direct",
                 requested: str | None = None) -> None:
        self._set(fmt=fmt, n=n, h=h, w=w, c=c, f=f, kh=kh, kw=kw, sh=window.sh, sw=window.sw,
                  dh=window.dh, dw=window.dw, pt=window.pt, pb=window.pb, pl=window.pl,
                  pr=window.pr, oh=window.oh, ow=window.ow, algorithm=algorithm,
                  winograd_tile=(winograd_tile(c, f, (window.oh, window.ow))
                                 if algorithm == "winograd" else 0),
                  requested=algorithm if requested is None else requested)

    def _rebatch(self, n: int) -> None:
        super()._rebatch(n)
        if self.requested == "auto":
            algorithm = resolve_algorithm("auto", (self.kh, self.kw), (self.sh, self.sw),
                                          (self.dh, self.dw), self.c, self.f,
                                          (self.oh, self.ow), n)
            object.__setattr__(self, "algorithm", algorithm)
            object.__setattr__(self, "winograd_tile",
                               winograd_tile(self.c, self.f, (self.oh, self.ow))
                               if algorithm == "winograd" else 0)

    @property
    def x_nhwc(self) -> tuple[int, int, int, int]:
        return (self.n, self.h, self.w, self.c)

    @property
    def kernel_hwcf(self) -> tuple[int, int, int, int]:
        return (self.kh, self.kw, self.c, self.f)

    @property
    def out_nhwc(self) -> tuple[int, int, int, int]:
        return (self.n, self.oh, self.ow, self.f)

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        """x's shape in the caller's layout."""
        return _user_shape(self.x_nhwc, self.fmt)

    @property
    def kernel_shape(self) -> tuple[int, int, int, int]:
        """The kernel's shape in the caller's layout."""
        if self.fmt == "channels_last":
            return self.kernel_hwcf
        return (self.f, self.c, self.kh, self.kw)

    @property
    def out_shape(self) -> tuple[int, int, int, int]:
        """The output's shape in the caller's layout."""
        return _user_shape(self.out_nhwc, self.fmt)

    @property
    def padded_hw(self) -> tuple[int, int]:
        """Rows and columns of the zero-padded image the output reads."""
        return ((self.oh - 1) * self.sh + (self.kh - 1) * self.dh + 1,
                (self.ow - 1) * self.sw + (self.kw - 1) * self.dw + 1)

    def __repr__(self) -> str:
        return (f"ConvSpec(x {self.x_nhwc}, kernel {self.kernel_hwcf}, out {self.out_nhwc}, "
                f"strides ({self.sh}, {self.sw}), dilation ({self.dh}, {self.dw}), padding "
                f"(({self.pt}, {self.pb}), ({self.pl}, {self.pr})), {self.fmt}, "
                f"{self.algorithm})")


def _user_shape(nhwc: tuple, fmt: str) -> tuple:
    if fmt == "channels_last":
        return nhwc
    n, h, w, c = nhwc
    return (n, c, h, w)


def conv_spec(x_shape: tuple, kernel_shape: tuple, strides: object = 1,
              padding: object = "valid", dilation_rate: object = 1,
              data_format: object = "channels_last", algorithm: object = "auto") -> ConvSpec:
    """Resolve and check a convolution of an x of ``x_shape`` with a kernel of
    ``kernel_shape`` (both in ``data_format``'s layout), and its algorithm
    (:func:`resolve_algorithm`)."""
    fmt = check_data_format(data_format)
    if len(x_shape) != 4:
        raise ValueError(f"x must be 4-D {layout_name(fmt, 'x')}, got shape {tuple(x_shape)} "
                         f"({len(x_shape)}-D)")
    if len(kernel_shape) != 4:
        raise ValueError(f"kernel must be 4-D {layout_name(fmt, 'kernel')}, got shape "
                         f"{tuple(kernel_shape)} ({len(kernel_shape)}-D)")
    if fmt == "channels_last":
        n, h, w, c = (int(v) for v in x_shape)
        kh, kw, kc, f = (int(v) for v in kernel_shape)
    else:
        n, c, h, w = (int(v) for v in x_shape)
        f, kc, kh, kw = (int(v) for v in kernel_shape)
    if kc != c:
        raise ValueError(
            f"kernel expects {kc} input channels but x has {c}: x shape {tuple(x_shape)}, "
            f"kernel shape {tuple(kernel_shape)} ({fmt}: x {layout_name(fmt, 'x')}, kernel "
            f"{layout_name(fmt, 'kernel')})"
        )
    if min(h, w, c) < 1:
        raise ValueError(f"x must have non-zero H, W and C, got shape {tuple(x_shape)}")
    if min(kh, kw, f) < 1:
        raise ValueError(f"kernel must have non-zero KH, KW and F, got shape "
                         f"{tuple(kernel_shape)}")
    check_sizes("x", n, h, w, c)
    check_sizes("kernel", kh, kw, f)
    check_elems("x", tuple(x_shape))
    sp = window_spec((h, w), (kh, kw), strides, padding, dilation_rate)
    check_sizes("strides", sp.sh, sp.sw)
    check_sizes("dilation_rate", sp.dh, sp.dw, (kh - 1) * sp.dh + 1, (kw - 1) * sp.dw + 1)
    check_sizes("padding", sp.pt, sp.pb, sp.pl, sp.pr, h + sp.pt + sp.pb, w + sp.pl + sp.pr)
    check_elems("output", (n, sp.oh, sp.ow, f))
    check_elems("kernel", (kh, kw, c, f))
    spec = ConvSpec(fmt, n, h, w, c, f, kh, kw, sp,
                    resolve_algorithm(algorithm, (kh, kw), (sp.sh, sp.sw), (sp.dh, sp.dw), c, f,
                                      (sp.oh, sp.ow), n),
                    algorithm)
    # Each factor alone fits, but the kernels index a padded image of hp x wp
    # x channels: with huge dilations and paddings together that product
    # would wrap int64 (a heap overflow in C, not an error).
    hp, wp = spec.padded_hw
    if hp * wp * max(c, f) > MAX_PADDED_ELEMS:
        raise ValueError(
            f"padding / dilation_rate / strides: the padded geometry they make, "
            f"{hp} x {wp} x {max(c, f)} elements for x {tuple(x_shape)} and kernel "
            f"{tuple(kernel_shape)}, is too large for the kernels' index arithmetic (limit "
            f"2**55)"
        )
    return spec


class PoolSpec(_Resolved):
    """A resolved pooling of x (n, h, w, c) by (kh, kw) windows -> (n, oh, ow, c).

    ``mode`` is the kernels' number (0 max, 1 avg, 2 min). The field names
    are those of the C struct ``cf_pool2d_shape``.
    """

    __slots__ = ("fmt", "mode", "n", "h", "w", "c", "kh", "kw", "sh", "sw", "pt", "pb", "pl",
                 "pr", "oh", "ow")

    def __init__(self, fmt: str, mode: int, n: int, h: int, w: int, c: int,
                 window: WindowSpec) -> None:
        self._set(fmt=fmt, mode=mode, n=n, h=h, w=w, c=c, kh=window.kh, kw=window.kw,
                  sh=window.sh, sw=window.sw, pt=window.pt, pb=window.pb, pl=window.pl,
                  pr=window.pr, oh=window.oh, ow=window.ow)

    @property
    def x_nhwc(self) -> tuple[int, int, int, int]:
        return (self.n, self.h, self.w, self.c)

    @property
    def out_nhwc(self) -> tuple[int, int, int, int]:
        return (self.n, self.oh, self.ow, self.c)

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        return _user_shape(self.x_nhwc, self.fmt)

    @property
    def out_shape(self) -> tuple[int, int, int, int]:
        return _user_shape(self.out_nhwc, self.fmt)

    @property
    def plane_cells(self) -> int:
        """Cells of one (H, W) plane: the range of the int32 indices."""
        return self.h * self.w

    @property
    def tiles(self) -> bool:
        """Unpadded windows that do not overlap (what the fused kernels take)."""
        return (self.pt == self.pb == self.pl == self.pr == 0 and self.sh >= self.kh
                and self.sw >= self.kw)

    def window_bounds(self, oh: int, ow: int) -> tuple[int, int, int, int]:
        """Rows [r0, r1) x columns [c0, c1) of the plane that window (oh, ow) covers."""
        r0, c0 = oh * self.sh - self.pt, ow * self.sw - self.pl
        return (max(r0, 0), min(r0 + self.kh, self.h), max(c0, 0), min(c0 + self.kw, self.w))

    def __repr__(self) -> str:
        return (f"PoolSpec({POOL_MODE_NAMES[self.mode]}, x {self.x_nhwc}, window "
                f"({self.kh}, {self.kw}), strides ({self.sh}, {self.sw}), padding "
                f"(({self.pt}, {self.pb}), ({self.pl}, {self.pr})), out {self.out_nhwc}, "
                f"{self.fmt})")


def _pool_window(in_hw: tuple[int, int], pool_size: object, strides: object, padding: object,
                 names: tuple[str, str, str], input_name: str) -> WindowSpec:
    size_name, strides_name, padding_name = names
    kh, kw = as_pair(pool_size, size_name)
    check_sizes(size_name, kh, kw)
    if strides is None:
        strides = (kh, kw)
    sp = window_spec(in_hw, (kh, kw), strides, padding, 1, window_name=size_name,
                     input_name=input_name, strides_name=strides_name,
                     padding_name=padding_name)
    check_sizes(strides_name, sp.sh, sp.sw)
    if max(sp.pt, sp.pb) >= kh or max(sp.pl, sp.pr) >= kw:
        raise ValueError(
            f"{padding_name} (({sp.pt}, {sp.pb}), ({sp.pl}, {sp.pr})) must be smaller than "
            f"{size_name} ({kh}, {kw}) on each side: a window would hold only padding"
        )
    return sp


def pool_spec(x_shape: tuple, pool_size: object = 2, strides: object = None,
              padding: object = "valid", mode: object = "max",
              data_format: object = "channels_last") -> PoolSpec:
    """Resolve and check a pooling of an x of ``x_shape`` (``data_format``'s layout)."""
    fmt = check_data_format(data_format)
    mode_id = parse_pool_mode(mode)
    if len(x_shape) != 4:
        raise ValueError(f"x must be 4-D {layout_name(fmt, 'x')}, got shape {tuple(x_shape)} "
                         f"({len(x_shape)}-D)")
    n, h, w, c = (int(v) for v in (x_shape if fmt == "channels_last" else
                                   (x_shape[0], x_shape[2], x_shape[3], x_shape[1])))
    if min(h, w, c) < 1:
        raise ValueError(f"x must have non-zero H, W and C, got shape {tuple(x_shape)}")
    check_sizes("x", n, h, w, c)
    check_elems("x", tuple(x_shape))
    sp = _pool_window((h, w), pool_size, strides, padding,
                      ("pool_size", "strides", "padding"), "x")
    if h * w > MAX_PLANE:
        raise ValueError(f"x: plane {h}x{w} too large for int32 indices (overflow)")
    return PoolSpec(fmt, mode_id, n, h, w, c, sp)


class ConvPoolSpec(_Resolved):
    """pool(act(conv(x))): the convolution, the pooling of its (NHWC) output, the
    fused ReLU, and whether the fused kernels apply (``fused``: max/min pooling
    by unpadded windows that do not overlap). The one owner of that rule."""

    __slots__ = ("conv", "pool", "relu", "fused")

    def __init__(self, conv: ConvSpec, pool: PoolSpec, relu: bool) -> None:
        self._set(conv=conv, pool=pool, relu=relu,
                  fused=pool.mode != POOL_MODES["avg"] and pool.tiles)

    @property
    def out_shape(self) -> tuple[int, int, int, int]:
        return _user_shape(self.pool.out_nhwc, self.conv.fmt)

    def with_batch(self, n: int) -> ConvPoolSpec:
        """The same problem on a batch of n images."""
        return ConvPoolSpec(self.conv.with_batch(n), self.pool.with_batch(n), self.relu)


def conv_pool_spec(x_shape: tuple, kernel_shape: tuple, strides: object = 1,
                   padding: object = "valid", dilation_rate: object = 1,
                   data_format: object = "channels_last", activation: object = None,
                   pool_size: object = 2, pool_strides: object = None,
                   pool_padding: object = "valid", pool_mode: object = "max",
                   algorithm: object = "auto") -> ConvPoolSpec:
    """Resolve and check pool(act(conv(x))) (see conv_spec and pool_spec). The
    convolution's algorithm is conv_spec's: the fused and unfused forms agree."""
    conv = conv_spec(x_shape, kernel_shape, strides, padding, dilation_rate, data_format,
                     algorithm)
    relu = parse_activation(activation)
    mode_id = parse_pool_mode(pool_mode, "pool_mode")
    try:
        sp = _pool_window((conv.oh, conv.ow), pool_size, pool_strides, pool_padding,
                          ("pool_size", "pool_strides", "pool_padding"),
                          "the convolution output")
    except ValueError as e:
        raise ValueError(f"{e} (x {tuple(x_shape)}, kernel {tuple(kernel_shape)})") from None
    if conv.oh * conv.ow > MAX_PLANE:
        raise ValueError(f"convolution output plane {conv.oh}x{conv.ow} too large for int32 "
                         "indices (overflow)")
    pool = PoolSpec("channels_last", mode_id, conv.n, conv.oh, conv.ow, conv.f, sp)
    return ConvPoolSpec(conv, pool, relu)
