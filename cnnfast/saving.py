"""Whole-model files (``model.save("m.keras")`` / ``cnnfast.models.load_model``).

A model file is a zip archive written by cnnfast (not Keras's ``.keras`` content; the
suffix is Keras's name for "the whole model in one file")::

    config.json                    format, version, the model's layers and compile config
    weights/<layer>_<i>.npy        weight i of layer number <layer> (model order)
    optimizer/<slot>_<i>.npy       the optimizer's state for trainable weight i

``config.json`` records the optimizer's class, arguments and step count, and for a
``Dropout`` with its own ``seed`` the state of its generator, so a loaded model
predicts bit for bit as the saved one and goes on training exactly as it would have.
Weight initialisers are not stored: the weights are.

Loading reads everything with ``json`` and ``numpy.load(allow_pickle=False)`` and
executes nothing from the file. It refuses (``ValueError`` naming the file): entries
whose names are absolute or contain ``..`` or backslashes, entries it does not expect,
missing entries, layer or optimizer class names it does not know, configs a layer's
constructor rejects, arrays whose shape or dtype do not match the config, entries
larger than their declared arrays need. Writing is atomic (``cnnfast._fileio``).

This module does not import ``cnnfast.models`` (which imports it): ``load`` is given
the model class to build.
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import zipfile

import numpy as np

from . import activations as _activations
from . import layers as _layers
from . import losses as _losses
from . import optimizers as _optimizers
from ._fileio import atomic_write
from ._version import __version__

__all__ = ["save", "load"]

FORMAT = "cnnfast-model"
VERSION = 1
CONFIG = "config.json"
_NPY_HEADER_MAX = 4096  # an .npy header is < 4 KiB for the arrays written here

# The constructor arguments saved for each layer class (besides name and trainable).
_LAYER_ARGS = {
    "Conv2D": ("filters", "kernel_size", "strides", "padding", "data_format",
               "dilation_rate", "activation", "use_bias"),
    "MaxPooling2D": ("pool_size", "strides", "padding", "data_format"),
    "AveragePooling2D": ("pool_size", "strides", "padding", "data_format"),
    "MinPooling2D": ("pool_size", "strides", "padding", "data_format"),
    "Flatten": ("data_format",),
    "Dense": ("units", "activation", "use_bias"),
    "Dropout": ("rate", "seed"),
    "Activation": ("activation",),
}
_LAYER_CLASSES = {name: getattr(_layers, name) for name in _LAYER_ARGS}
_LOSS_CLASSES = {cls.__name__: cls for cls in (
    _losses.CategoricalCrossentropy, _losses.SparseCategoricalCrossentropy,
    _losses.MeanSquaredError)}


def _jsonable(value):
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, _activations.Activation):
        if _activations.get(value.name) is not value:
            raise ValueError(f"cannot save the custom activation {value!r}: only "
                             "cnnfast's named activations are stored by name")
        return value.name
    if isinstance(value, np.integer):
        return int(value)
    return value


def layer_config(layer) -> dict:
    """``{"class_name": ..., "config": {...}}`` of one layer (ValueError when unsupported)."""
    cls = type(layer).__name__
    if cls not in _LAYER_ARGS or type(layer) is not _LAYER_CLASSES[cls]:
        raise ValueError(f"cannot save layer {layer.name!r}: {cls} is not one of cnnfast's "
                         f"layers ({', '.join(_LAYER_ARGS)})")
    config = {"name": layer.name, "trainable": layer.trainable}
    config.update((arg, _jsonable(getattr(layer, arg))) for arg in _LAYER_ARGS[cls])
    entry = {"class_name": cls, "config": config}
    if cls == "Dropout" and layer._rng is not None:
        entry["rng_state"] = layer._rng.bit_generator.state
    return entry


def _compile_config(model) -> dict | None:
    if model.optimizer is None or model.loss is None:
        return None
    opt, loss = model.optimizer, model.loss
    if type(opt).__name__ not in _optimizers.CLASSES:
        raise ValueError(f"cannot save the optimizer {opt!r}: not one of "
                         f"{sorted(_optimizers.CLASSES)}")
    if type(loss).__name__ not in _LOSS_CLASSES:
        raise ValueError(f"cannot save the loss {loss!r}: not one of {sorted(_LOSS_CLASSES)}")
    loss_config = {"from_logits": loss.from_logits} if hasattr(loss, "from_logits") else {}
    state = opt.state()
    return {
        "optimizer": {"class_name": type(opt).__name__, "config": opt.get_config(),
                      "iterations": opt.iterations,
                      "slots": {k.lstrip("_"): len(v) for k, v in state.items() if v}},
        "loss": {"class_name": type(loss).__name__, "config": loss_config},
        "metrics": [model._accuracy_name] if model._want_accuracy else [],
    }


def save(model, filepath: str | os.PathLike) -> None:
    """Write the whole model to ``filepath`` (the layout is in the module docstring)."""
    model._require_built()
    compile_config = _compile_config(model)
    config = {
        "format": FORMAT, "version": VERSION, "cnnfast_version": __version__,
        "model": {"class_name": "Sequential", "name": model.name,
                  "dtype": model.dtype.name, "input_shape": list(model._input_shape),
                  "layers": [layer_config(layer) for layer in model.layers]},
        "compile": compile_config,
    }
    entries: dict[str, np.ndarray] = {}
    for i, layer in enumerate(model.layers):
        for j, w in enumerate(layer.weights):
            entries[f"weights/{i}_{j}.npy"] = w
    if compile_config is not None:
        for slot, arrays in model.optimizer.state().items():
            for j, a in enumerate(arrays):
                entries[f"optimizer/{slot.lstrip('_')}_{j}.npy"] = a
    with atomic_write(filepath, "wb") as f, \
            zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(CONFIG, json.dumps(config, indent=1))
        for name, array in entries.items():
            buf = io.BytesIO()
            np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
            zf.writestr(name, buf.getvalue())


class _Reader:
    """The checked entries of one model archive."""

    def __init__(self, name: str, zf: zipfile.ZipFile) -> None:
        self.name, self.zf = name, zf
        self.unread: set[str] = set()
        for info in zf.infolist():
            n = info.filename
            if (n.startswith("/") or "\\" in n or ":" in n
                    or ".." in n.split("/") or posixpath.normpath(n) != n):
                raise self.bad(f"archive entry {n!r} points outside the archive")
            if n in self.unread:
                raise self.bad(f"archive entry {n!r} appears twice")
            self.unread.add(n)

    def bad(self, what: str) -> ValueError:
        return ValueError(f"{self.name}: {what}")

    def read(self, entry: str, limit: int) -> bytes:
        if entry not in self.unread:
            raise self.bad(f"missing archive entry {entry!r}")
        self.unread.discard(entry)
        if self.zf.getinfo(entry).file_size > limit:
            raise self.bad(f"archive entry {entry!r} is larger than its content needs")
        return self.zf.read(entry)

    def array(self, entry: str, shape: tuple, dtype: np.dtype) -> np.ndarray:
        data = self.read(entry, int(np.prod(shape)) * dtype.itemsize + _NPY_HEADER_MAX)
        try:
            a = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise self.bad(f"archive entry {entry!r} is not a readable .npy array ({e})") \
                from e
        if a.shape != tuple(shape) or a.dtype != dtype:
            raise self.bad(f"archive entry {entry!r} holds a {a.dtype} array of shape "
                           f"{a.shape}, the model needs {dtype} {tuple(shape)}")
        return a


def _build_layer(reader: _Reader, i: int, entry):
    if not (isinstance(entry, dict) and isinstance(entry.get("config"), dict)):
        raise reader.bad(f"malformed config of layer {i}: {entry!r}")
    cls = entry.get("class_name")
    if cls not in _LAYER_CLASSES:
        raise reader.bad(f"unknown layer class {cls!r} (layer {i}); cnnfast knows "
                         f"{', '.join(_LAYER_CLASSES)}")
    config = entry["config"]
    unknown = sorted(set(config) - set(_LAYER_ARGS[cls]) - {"name", "trainable"})
    if unknown:
        raise reader.bad(f"malformed config of layer {i} ({cls}): unknown argument(s) "
                         f"{', '.join(unknown)}")
    if not isinstance(config.get("name"), str) or not isinstance(config.get("trainable"), bool):
        raise reader.bad(f"malformed config of layer {i} ({cls}): a string 'name' and a "
                         "boolean 'trainable' are expected")
    try:
        layer = _LAYER_CLASSES[cls](**config)
        if "rng_state" in entry and cls == "Dropout" and layer._rng is not None:
            layer._rng.bit_generator.state = entry["rng_state"]
    except (TypeError, ValueError, KeyError, NotImplementedError) as e:
        raise reader.bad(f"malformed config of layer {i} ({cls}): {e}") from e
    return layer


def load(filepath: str | os.PathLike, model_class, compile: bool = True):
    """Read a file written by ``save`` into a new ``model_class`` (``Sequential``)."""
    name = os.fspath(filepath)
    with open(filepath, "rb") as fh:
        data = fh.read()
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as e:
        raise ValueError(f"{name}: not a cnnfast model file (not a zip archive)") from e
    with zf:
        reader = _Reader(name, zf)
        try:
            config = json.loads(reader.read(CONFIG, 1 << 24))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise reader.bad(f"unreadable {CONFIG} ({e})") from e
        except zipfile.BadZipFile as e:
            raise reader.bad(f"the archive is corrupted ({e})") from e
        if not isinstance(config, dict) or config.get("format") != FORMAT:
            raise reader.bad("not a cnnfast model file (its config.json is not a cnnfast "
                             "model description)")
        if config.get("version") != VERSION:
            raise reader.bad(f"model format version {config.get('version')!r} is not "
                             f"supported (this cnnfast reads version {VERSION})")
        try:
            model = _build_model(reader, config, model_class, compile)
        except zipfile.BadZipFile as e:
            raise reader.bad(f"the archive is corrupted ({e})") from e
        if reader.unread:
            raise reader.bad(f"unexpected archive entries {sorted(reader.unread)}")
    return model


def _build_model(reader: _Reader, config: dict, model_class, compile: bool):
    spec = config.get("model")
    if not (isinstance(spec, dict) and spec.get("class_name") == "Sequential"
            and isinstance(spec.get("layers"), list) and spec["layers"]
            and isinstance(spec.get("input_shape"), list)
            and all(type(n) is int and n > 0 for n in spec["input_shape"])
            and spec.get("dtype") in ("float32", "float64")):
        raise reader.bad("malformed model config (a Sequential with layers, an "
                         "input_shape and a float32/float64 dtype is expected)")
    layers = [_build_layer(reader, i, e) for i, e in enumerate(spec["layers"])]
    try:
        model = model_class(layers, name=spec.get("name"), dtype=spec["dtype"])
        model.build((None,) + tuple(spec["input_shape"]))
    except (TypeError, ValueError) as e:
        raise reader.bad(f"malformed model config: {e}") from e
    dtype = model.dtype
    for i, layer in enumerate(model.layers):
        for j, w in enumerate(layer.weights):
            np.copyto(w, reader.array(f"weights/{i}_{j}.npy", w.shape, dtype))
    comp = config.get("compile")
    if comp is None:
        return model
    try:
        opt_spec, loss_spec = comp["optimizer"], comp["loss"]
        opt_cls = _optimizers.CLASSES[opt_spec["class_name"]]
        loss_cls = _LOSS_CLASSES[loss_spec["class_name"]]
        optimizer = opt_cls(**opt_spec["config"])
        loss = loss_cls(**loss_spec["config"])
        iterations, slots = opt_spec["iterations"], opt_spec["slots"]
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
            raise ValueError(f"iterations {iterations!r}")
        metrics = comp["metrics"]
    except (TypeError, ValueError, KeyError) as e:
        raise reader.bad(f"malformed compile config ({type(e).__name__}: {e})") from e
    params = model.trainable_weights
    state = {}
    for slot in optimizer._slot_names:
        if slots.get(slot.lstrip("_")) is None:
            continue
        if slots[slot.lstrip("_")] != len(params):
            raise reader.bad(f"malformed compile config: optimizer slot {slot!r} holds "
                             f"{slots[slot.lstrip('_')]!r} arrays for {len(params)} weights")
        state[slot] = [reader.array(f"optimizer/{slot.lstrip('_')}_{j}.npy", p.shape, dtype)
                       for j, p in enumerate(params)]
    if compile:
        try:
            model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
        except (TypeError, ValueError) as e:
            raise reader.bad(f"malformed compile config: {e}") from e
        if state or iterations:
            if set(state) != set(optimizer._slot_names):
                raise reader.bad("malformed compile config: the optimizer state is "
                                 "incomplete")
            optimizer.set_state(params, iterations, state)
    return model
