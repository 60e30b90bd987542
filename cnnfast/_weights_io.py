"""Weights files of a Sequential model: ``save_weights`` / ``load_weights``.

Weights files are ``.npz`` archives (``numpy.savez``) holding one array per weight
and a JSON description of the layers; they are read with ``allow_pickle=False``.
``save_weights`` writes atomically (``cnnfast._fileio.atomic_write``): an interrupted
save leaves the previous file intact. ``load_weights`` checks the whole file before
it assigns anything, so a bad file raises ``ValueError`` and changes no weight.
The functions take the model (anything with ``layers`` and ``dtype``); the
``Sequential`` methods of the same names call them. A file name ending in ``.h5``
is written, and a file starting with the HDF5 signature is read, as a Keras 3
``.weights.h5`` (``cnnfast._keras_h5``).
"""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile
import zlib

import numpy as np

from . import _keras_h5
from ._fileio import atomic_write
from ._sigint import SigintDeferred

__all__ = ["save_weights", "load_weights", "parse_weights", "weight_description"]

_WEIGHTS_FORMAT = "cnnfast-weights"
_WEIGHTS_VERSION = 1
# What a damaged archive can raise while numpy and zipfile read it.
_UNREADABLE = (ValueError, TypeError, KeyError, EOFError, OSError, RuntimeError,
               NotImplementedError, OverflowError, MemoryError, struct.error, zlib.error,
               zipfile.BadZipFile)


def weight_description(model) -> list:
    """The layers with weights as a weights file describes them."""
    return [
        {"index": i, "class": type(layer).__name__, "name": layer.name,
         "shapes": [list(w.shape) for w in layer.weights]}
        for i, layer in enumerate(model.layers) if layer.weights
    ]


def save_weights(model, filepath: str | os.PathLike) -> None:
    """Write all weights to ``filepath`` as an ``.npz`` archive (no pickle).

    The file is written at exactly ``filepath``: unlike ``numpy.savez`` given a
    name, no ``.npz`` suffix is added. The write is atomic (a temporary file in
    the same directory, renamed over ``filepath`` once complete), so an error or
    a Ctrl-C in the middle leaves any previous file there intact.
    """
    if os.fspath(filepath).endswith(".h5"):
        _keras_h5.save_weights(model, filepath)
        return
    meta = {"format": _WEIGHTS_FORMAT, "version": _WEIGHTS_VERSION,
            "dtype": model.dtype.name, "layers": weight_description(model)}
    arrays = {"__meta__": np.array(json.dumps(meta))}
    for i, layer in enumerate(model.layers):
        for j, w in enumerate(layer.weights):
            arrays[f"layer{i}.w{j}"] = w
    # a file object, not a name: np.savez would append ".npz" to a name without it
    with atomic_write(filepath, "wb") as f:
        np.savez(f, **arrays)


def load_weights(model, filepath: str | os.PathLike) -> None:
    """``Sequential.load_weights``: the file read at once, everything checked before any
    weight is assigned (the contract is in that method's docstring)."""
    with open(filepath, "rb") as fh:
        # read at once: I/O errors surface here as OSError, and everything that
        # fails later is about the content
        data = fh.read()
    if data.startswith(_keras_h5.HDF5_SIGNATURE):
        updates = _keras_h5.parse_weights(model, os.fspath(filepath), data)
    else:
        updates = parse_weights(model, os.fspath(filepath), data)
    with SigintDeferred():  # all weights or none
        for dst, src in updates:
            np.copyto(dst, src, casting="unsafe")


def parse_weights(model, name: str, data: bytes) -> list[tuple[np.ndarray, np.ndarray]]:
    """(model array, file array) pairs from a weights file's bytes, all checked."""
    def bad(what: str) -> ValueError:
        return ValueError(f"{name}: {what}")

    if not data:
        raise bad("not a cnnfast weights file (the file is empty)")
    if data.startswith(b"\x93NUMPY"):
        raise bad("not a cnnfast weights file (a single .npy array, not an .npz "
                  "archive written by save_weights)")
    if not data.startswith(b"PK"):
        raise bad("not a cnnfast weights file (not a zip/.npz archive)")
    try:
        archive = np.load(io.BytesIO(data), allow_pickle=False)
    except _UNREADABLE as e:
        raise bad(f"not a cnnfast weights file: the archive is truncated or "
                  f"corrupted ({_reason(e)})") from e
    with archive:
        files = list(archive.files)
        if "__meta__" not in files:
            raise bad("not a cnnfast weights file (no __meta__ entry)")
        try:
            raw = archive["__meta__"]
            if raw.ndim != 0 or raw.dtype.kind != "U":
                raise ValueError(f"a {raw.dtype} array of shape {raw.shape}, not a string")
            meta = json.loads(str(raw))
        except _UNREADABLE as e:
            raise bad(f"unreadable weights description ({_reason(e)})") from e
        if not isinstance(meta, dict) or meta.get("format") != _WEIGHTS_FORMAT:
            raise bad("not a cnnfast weights file (its __meta__ entry is not a "
                      "cnnfast weights description)")
        if meta.get("version") != _WEIGHTS_VERSION:
            raise bad(f"weights format version {meta.get('version')!r} is not "
                      f"supported (this cnnfast reads version {_WEIGHTS_VERSION})")
        file_dtype = meta.get("dtype")
        if file_dtype not in ("float32", "float64"):
            raise bad(f"unsupported weights dtype {file_dtype!r} in the description")
        saved = meta.get("layers")
        problem = _check_description(saved)
        if problem:
            raise bad(f"malformed weights description: {problem}")
        mine = weight_description(model)
        if len(saved) != len(mine):
            raise bad(
                f"holds weights for {len(saved)} layers ({_describe(saved)}), but "
                f"this model has {len(mine)} layers with weights ({_describe(mine)})"
            )
        for s, m in zip(saved, mine):
            if s["class"] != m["class"] or s["shapes"] != m["shapes"]:
                raise bad(
                    f"layer {s['name']!r} ({s['class']}, shapes "
                    f"{[tuple(x) for x in s['shapes']]}) does not match this model's "
                    f"layer {m['name']!r} ({m['class']}, shapes "
                    f"{[tuple(x) for x in m['shapes']]})"
                )
        expected = [f"layer{s['index']}.w{j}" for s in saved
                    for j in range(len(s["shapes"]))]
        if len(set(expected)) != len(expected):
            raise bad("malformed weights description: a layer index appears twice")
        missing = [k for k in expected if k not in files]
        if missing:
            raise bad(f"missing array(s) {', '.join(missing)}: the file is incomplete")
        extra = sorted(set(files) - set(expected) - {"__meta__"})
        if extra:
            raise bad(f"unexpected array(s) {', '.join(extra)} that the weights "
                      "description does not list")
        updates = []
        keys = iter(expected)
        for s, m in zip(saved, mine):
            for j, shape in enumerate(s["shapes"]):
                key = next(keys)
                try:
                    arr = archive[key]
                except _UNREADABLE as e:
                    raise bad(f"array {key} is truncated or corrupted "
                              f"({_reason(e)})") from e
                if arr.dtype != np.dtype(file_dtype):
                    raise bad(f"array {key} has dtype {arr.dtype}, but the file "
                              f"declares {file_dtype}")
                if arr.shape != tuple(shape):
                    raise bad(f"array {key} has shape {arr.shape}, but the file "
                              f"describes it as {tuple(shape)}")
                updates.append((model.layers[m["index"]].weights[j], arr))
    return updates


def _reason(e: BaseException) -> str:
    return str(e) or type(e).__name__


def _check_description(layers) -> str | None:
    """What is wrong with a weights file's ``layers`` list, or None when it is sound."""
    if not isinstance(layers, list):
        return f"'layers' is {type(layers).__name__}, not a list"
    for d in layers:
        if not (isinstance(d, dict) and isinstance(d.get("index"), int)
                and isinstance(d.get("class"), str) and isinstance(d.get("name"), str)
                and isinstance(d.get("shapes"), list)):
            return f"bad layer entry {d!r}"
        for shape in d["shapes"]:
            if not (isinstance(shape, list)
                    and all(isinstance(n, int) and n >= 0 for n in shape)):
                return f"bad shape {shape!r} in layer entry {d['name']!r}"
    return None


def _describe(layers: list) -> str:
    return ", ".join(f"{d['class']} {[tuple(s) for s in d['shapes']]}" for d in layers)
