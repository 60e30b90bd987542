"""ONNX export of a built ``Sequential`` model, for serving it with another runtime.

``export(model, "model.onnx")`` writes an inference graph (ONNX Runtime, TensorRT,
OpenVINO, a browser, ...) that computes what ``model.predict`` computes, with the
model's weights stored in the file. The ``onnx`` package is imported only here, when
this module is imported, so ``import cnnfast`` never pulls it in; install it with
``pip install "cnnfast[onnx]"``.

Layouts. ONNX's Conv and pooling operators are NCHW only, while cnnfast's layers are
channels_last by default. The exporter tracks, for the tensor flowing through the graph,
the permutation that turns cnnfast's own layout into the one the ONNX tensor has, and
emits a ``Transpose`` only where an operator needs another one: a channels_last model
gets one NHWC -> NCHW transpose before its first convolution and one back before
``Flatten`` (Keras flattens in channels_last order, so the Dense weights carry over
unchanged); a channels_first model needs none. The graph's input and output are always
in cnnfast's layout, so the ONNX model takes exactly the arrays ``predict`` takes.

Padding. ``"same"`` is resolved from each layer's input shape into explicit ``pads``
with TensorFlow's rule (the odd pixel bottom/right), never ``auto_pad``. Average pooling
uses ``count_include_pad=0`` (padded cells do not count, as in cnnfast and Keras); max
pooling pads never win in ONNX either; min pooling is ``Neg -> MaxPool -> Neg``.

Anything the exporter cannot reproduce exactly (an unknown or subclassed layer, a
custom activation) is a ``ValueError`` naming the layer, never a silently different
graph.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

try:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError as _e:  # the optional dependency: say how to get it
    raise ImportError(
        "cnnfast.onnx needs the 'onnx' package: pip install \"cnnfast[onnx]\""
    ) from _e

from . import _spec
from . import activations as _activations
from ._fileio import atomic_write
from ._version import __version__
from .layers import (
    Activation,
    AveragePooling2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    InputLayer,
    Layer,
    MaxPooling2D,
    MinPooling2D,
)
from .models import Sequential

__all__ = ["export", "DEFAULT_OPSET", "MIN_OPSET"]

#: Opset written when ``opset`` is not given: old enough for every current runtime.
DEFAULT_OPSET = 17
#: Softmax takes a single axis (not "flatten from this axis on") from opset 13.
MIN_OPSET = 13

_ONNX_ACTIVATIONS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}
_ELEM_TYPES = {np.dtype(np.float32): TensorProto.FLOAT,
               np.dtype(np.float64): TensorProto.DOUBLE}

Perm = tuple[int, ...]


def _identity(rank: int) -> Perm:
    return tuple(range(rank))


class _GraphBuilder:
    """The graph under construction and the state of the tensor flowing through it.

    ``perm`` relates the ONNX tensor ``cur`` to the tensor cnnfast has at the same point:
    ``cur == np.transpose(cnnfast_tensor, perm)`` (batch axis included).
    """

    def __init__(self, dtype: np.dtype, input_name: str, rank: int) -> None:
        self.dtype = dtype
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.cur = input_name
        self.perm: Perm = _identity(rank)
        self._names: set[str] = {input_name}

    def fresh(self, hint: str) -> str:
        """A tensor name not used yet (layer names are unique in a model, but be sure)."""
        name, i = hint, 1
        while name in self._names:
            name, i = f"{hint}_{i}", i + 1
        self._names.add(name)
        return name

    def constant(self, hint: str, value: np.ndarray) -> str:
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], hint: str, **attrs: Any) -> str:
        """Append one node reading ``inputs``; its output becomes the current tensor."""
        out = self.fresh(hint)
        self.nodes.append(helper.make_node(op_type, list(inputs), [out],
                                           name=self.fresh(f"{hint}/{op_type}"), **attrs))
        self.cur = out
        return out

    def to_layout(self, want: Perm, hint: str) -> None:
        """Make ``cur`` equal ``np.transpose(cnnfast_tensor, want)``, transposing if needed."""
        if tuple(want) == self.perm:
            return
        # transpose(transpose(T, perm), p) == transpose(T, perm[p]): solve perm[p] == want
        p = [self.perm.index(a) for a in want]
        self.op("Transpose", [self.cur], f"{hint}/transpose", perm=p)
        self.perm = tuple(want)

    def to_cnnfast_layout(self, hint: str) -> None:
        self.to_layout(_identity(len(self.perm)), hint)


def _refuse(layer: Layer, why: str) -> ValueError:
    return ValueError(f"cannot export layer {layer.name!r} ({type(layer).__name__}) "
                      f"to ONNX: {why}")


def _activation_name(layer: Layer) -> str:
    """The layer's activation, when it is one of cnnfast's own (a custom one is refused:
    its name says nothing certain about what it computes)."""
    act = layer.activation
    name = getattr(act, "name", None)
    try:
        known = _activations.get(name) if isinstance(name, str) else None
    except ValueError:
        known = None
    if known is None or act is not known:
        raise _refuse(layer, f"activation {act!r} is not one of cnnfast's built-in "
                             "activations (relu, sigmoid, tanh, softmax, linear)")
    return name


def _emit_activation(g: _GraphBuilder, layer: Layer, name: str) -> None:
    if name == "linear":
        return
    if name == "softmax":
        # over cnnfast's last axis, wherever the current layout put it
        axis = g.perm.index(len(g.perm) - 1)
        g.op("Softmax", [g.cur], f"{layer.name}/softmax", axis=axis)
        return
    g.op(_ONNX_ACTIVATIONS[name], [g.cur], f"{layer.name}/{name}")


def _nchw_perm(data_format: str) -> Perm:
    """The layout an NCHW operator needs, relative to the layer's cnnfast input layout."""
    return (0, 3, 1, 2) if data_format == "channels_last" else (0, 1, 2, 3)


def _hw(layer: Layer) -> tuple[int, int]:
    shape = layer._in_shape
    return (shape[0], shape[1]) if layer.data_format == "channels_last" else (shape[1], shape[2])


def _pads(spec: _spec.WindowSpec) -> list[int]:
    # ONNX order: [top, left, bottom, right]
    return [spec.pt, spec.pl, spec.pb, spec.pr]


def _emit_conv(g: _GraphBuilder, layer: Conv2D) -> None:
    if len(layer._in_shape) != 3:
        raise _refuse(layer, f"Conv2D input shape {layer.input_shape} is not 4-D")
    act = _activation_name(layer)
    spec = _spec.window_spec(_hw(layer), layer.kernel_size, layer.strides, layer.padding,
                             layer.dilation_rate)
    g.to_layout(_nchw_perm(layer.data_format), layer.name)
    kernel = np.asarray(layer.kernel)
    if layer.data_format == "channels_last":
        kernel = kernel.transpose(3, 2, 0, 1)  # (KH, KW, C, F) -> (F, C, KH, KW)
    inputs = [g.cur, g.constant(f"{layer.name}/kernel", kernel)]
    if layer.use_bias:
        inputs.append(g.constant(f"{layer.name}/bias", np.asarray(layer.bias)))
    g.op("Conv", inputs, f"{layer.name}/conv",
         kernel_shape=list(layer.kernel_size), strides=list(layer.strides),
         dilations=list(layer.dilation_rate), pads=_pads(spec), group=1)
    # an activation over the channels sees them at ONNX axis 1, which perm records
    _emit_activation(g, layer, act)


def _emit_pool(g: _GraphBuilder, layer: MaxPooling2D | AveragePooling2D | MinPooling2D) -> None:
    if len(layer._in_shape) != 3:
        raise _refuse(layer, f"pooling input shape {layer.input_shape} is not 4-D")
    spec = _spec.window_spec(_hw(layer), layer.pool_size, layer.strides, layer.padding)
    if max(spec.pt, spec.pb) >= spec.kh or max(spec.pl, spec.pr) >= spec.kw:
        # ONNX runtimes refuse such pads (a window holding only padding)
        raise _refuse(layer, f"padding {_pads(spec)} is not smaller than the pool window")
    g.to_layout(_nchw_perm(layer.data_format), layer.name)
    attrs: dict[str, Any] = dict(kernel_shape=list(layer.pool_size),
                                 strides=list(layer.strides), pads=_pads(spec))
    if type(layer) is AveragePooling2D:
        g.op("AveragePool", [g.cur], f"{layer.name}/avgpool", count_include_pad=0, **attrs)
    elif type(layer) is MaxPooling2D:
        _emit_max_pool(g, layer, attrs)
    else:
        # min over a window == -max(-x); MaxPool's pads never win, so neither do min's
        g.op("Neg", [g.cur], f"{layer.name}/neg_in")
        _emit_max_pool(g, layer, attrs)
        g.op("Neg", [g.cur], f"{layer.name}/neg_out")


def _emit_max_pool(g: _GraphBuilder, layer: Layer, attrs: dict[str, Any]) -> None:
    pads = attrs["pads"]
    if tuple(attrs["strides"]) == (1, 1) and len(set(pads)) > 1:
        # onnx's reference MaxPool (onnx 1.23) reads 4 pads as (top, bottom, left, right)
        # on its unit-stride path, against the spec's (top, left, bottom, right). A Pad
        # with -inf before an unpadded MaxPool means the same to every runtime, and -inf
        # never wins a window (one with no real cell was refused above).
        top, left, bottom, right = pads
        widths = g.constant(f"{layer.name}/pads", np.array([0, 0, top, left, 0, 0, bottom, right],
                                                           dtype=np.int64))
        value = g.constant(f"{layer.name}/pad_value", np.array(-np.inf, dtype=g.dtype))
        g.op("Pad", [g.cur, widths, value], f"{layer.name}/pad", mode="constant")
        attrs = dict(attrs, pads=[0, 0, 0, 0])
    g.op("MaxPool", [g.cur], f"{layer.name}/maxpool", **attrs)


def _emit_flatten(g: _GraphBuilder, layer: Flatten) -> None:
    rank = len(layer._in_shape) + 1
    if layer.data_format == "channels_first" and rank > 2:
        # Keras moves the channel axis last before flattening (cnnfast does the same)
        want: Perm = (0,) + tuple(range(2, rank)) + (1,)
    else:
        want = _identity(rank)
    g.to_layout(want, layer.name)
    g.op("Flatten", [g.cur], f"{layer.name}/flatten", axis=1)
    g.perm = _identity(2)


def _emit_dense(g: _GraphBuilder, layer: Dense) -> None:
    act = _activation_name(layer)
    # Dense acts on cnnfast's last axis: the tensor must be in cnnfast's own layout
    g.to_cnnfast_layout(layer.name)
    kernel = g.constant(f"{layer.name}/kernel", np.asarray(layer.kernel))
    bias = (g.constant(f"{layer.name}/bias", np.asarray(layer.bias))
            if layer.use_bias else None)
    if len(layer._in_shape) == 1:
        g.op("Gemm", [g.cur, kernel] + ([bias] if bias else []), f"{layer.name}/gemm")
    else:
        g.op("MatMul", [g.cur, kernel], f"{layer.name}/matmul")
        if bias:
            g.op("Add", [g.cur, bias], f"{layer.name}/add")
    _emit_activation(g, layer, act)


def _emit_layer(g: _GraphBuilder, layer: Layer) -> None:
    # Exact types: a subclass may compute something else in its forward.
    kind = type(layer)
    if kind is Conv2D:
        _emit_conv(g, layer)
    elif kind in (MaxPooling2D, AveragePooling2D, MinPooling2D):
        _emit_pool(g, layer)
    elif kind is Flatten:
        _emit_flatten(g, layer)
    elif kind is Dense:
        _emit_dense(g, layer)
    elif kind is Activation:
        _emit_activation(g, layer, _activation_name(layer))
    elif kind in (Dropout, InputLayer):
        pass  # identity at inference
    else:
        raise _refuse(layer, "the ONNX exporter knows Conv2D, MaxPooling2D, "
                             "AveragePooling2D, MinPooling2D, Flatten, Dense, Dropout and "
                             "Activation (exact classes, not subclasses)")


def _check_opset(opset: int | None) -> int:
    if opset is None:
        return DEFAULT_OPSET
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) \
            or not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset must be an integer from {MIN_OPSET} to {newest} "
                         f"(this onnx package's newest), got {opset!r}")
    return int(opset)


def _check_batch_size(batch_size: int | None) -> int | str:
    if batch_size is None:
        return "batch"  # a symbolic dimension: one file serves every batch size
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be None or a positive integer, got {batch_size!r}")
    return int(batch_size)


def to_onnx(model: Sequential, *, opset: int | None = None,
            batch_size: int | None = None) -> onnx.ModelProto:
    """The ONNX model of a built ``Sequential`` (what ``export`` writes), not yet saved."""
    if not isinstance(model, Sequential):
        raise TypeError(f"expected a cnnfast Sequential model, got {type(model).__name__}")
    if not model.built:
        raise ValueError("the model is not built: give its first layer an input_shape, "
                         "call build(), or fit it before exporting")
    opset = _check_opset(opset)
    batch = _check_batch_size(batch_size)
    dtype = np.dtype(model.dtype)
    elem = _ELEM_TYPES[dtype]
    in_shape = tuple(model._input_shape)

    g = _GraphBuilder(dtype, "input", len(in_shape) + 1)
    for layer in model.layers:
        _emit_layer(g, layer)
    g.to_cnnfast_layout("output")
    # the graph output gets its public name through a final Identity (the input may
    # pass straight through, e.g. a model of only Dropout layers)
    g.nodes.append(helper.make_node("Identity", [g.cur], ["output"], name="output/Identity"))

    out_shape = tuple(model.layers[-1]._out_shape)
    graph = helper.make_graph(
        g.nodes, model.name,
        [helper.make_tensor_value_info("input", elem, [batch, *in_shape])],
        [helper.make_tensor_value_info("output", elem, [batch, *out_shape])],
        initializer=g.initializers,
        doc_string=f"cnnfast Sequential {model.name!r}: inputs in cnnfast's layout "
                   f"(batch, {', '.join(map(str, in_shape))})",
    )
    opset_ids = [helper.make_opsetid("", opset)]
    onnx_model = helper.make_model(graph, opset_imports=opset_ids,
                                   producer_name="cnnfast", producer_version=__version__)
    # the oldest IR version that carries this opset, so older runtimes load the file
    onnx_model.ir_version = helper.find_min_ir_version_for(opset_ids)
    return onnx_model


def export(model: Sequential, path: str | os.PathLike, *, opset: int | None = None,
           batch_size: int | None = None) -> str | os.PathLike:
    """Write ``model`` (a built ``Sequential``) as an ONNX file at ``path``; return ``path``.

    ``opset``: the ONNX opset version (default ``DEFAULT_OPSET``, at least ``MIN_OPSET``).
    ``batch_size``: None (default) for a symbolic batch dimension, or a fixed size.
    The graph's input is named ``"input"`` and takes the arrays ``model.predict`` takes
    (same layout and dtype); its output ``"output"`` is what ``predict`` returns. Dropout
    is left out (identity at inference). The file is checked with ``onnx.checker``
    before it is written, atomically: a failed export leaves any previous file intact.
    A layer or option ONNX cannot express exactly raises ``ValueError`` naming it.
    """
    onnx_model = to_onnx(model, opset=opset, batch_size=batch_size)
    onnx.checker.check_model(onnx_model, full_check=True)
    data = onnx_model.SerializeToString()
    with atomic_write(path, "wb") as f:
        f.write(data)
    return path
