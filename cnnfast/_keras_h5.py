"""Keras 3 ``.weights.h5`` files: read into a Sequential model, and written in the same
layout (``load_weights`` / ``save_weights`` given such a file name; h5py is an optional
dependency, ``pip install h5py``).

Keras 3 stores a Sequential model's weights as ``layers/<key>/vars/<i>``, where ``<key>``
is not the layer's name but its class name in snake case with a per-class counter in
model order (``conv2d``, ``conv2d_1``, ``dense``, ...: Keras's ``saving_lib``). HDF5
lists groups alphabetically (``dense_10`` before ``dense_2``), so the layers are
matched by that key computed from this model's own layer order, never by listing
order or by the layers' names. Kernels are stored in Keras's layout
(``(kh, kw, in, filters)`` for Conv2D whatever its data_format, ``(in, units)`` for
Dense). The optimizer variables Keras also writes there are not read. Every layer's
count and shapes are checked before any weight is assigned.
"""

from __future__ import annotations

import io
import os
import re

import numpy as np

from ._fileio import atomic_write

__all__ = ["HDF5_SIGNATURE", "parse_weights", "save_weights"]

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _h5py():
    try:
        import h5py
    except ImportError as e:
        raise ImportError("Keras .weights.h5 files need h5py: pip install h5py "
                          "(or pip install 'cnnfast[keras]')") from e
    return h5py


def _snake_case(name: str) -> str:
    """Keras's ``naming.to_snake_case``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _keys(model) -> list[str]:
    """Keras's key of each layer of ``model``, in model order."""
    used: dict[str, int] = {}
    keys = []
    for layer in model.layers:
        base = _snake_case(type(layer).__name__)
        if base in used:
            used[base] += 1
            keys.append(f"{base}_{used[base]}")
        else:
            used[base] = 0
            keys.append(base)
    return keys


def _to_keras(layer, j: int, w: np.ndarray) -> np.ndarray:
    """Weight ``j`` of ``layer`` in Keras's layout (Conv2D channels_first: transposed)."""
    if j == 0 and getattr(layer, "data_format", None) == "channels_first" and w.ndim == 4:
        return w.transpose(2, 3, 1, 0)
    return w


def _from_keras(layer, j: int, w: np.ndarray) -> np.ndarray:
    """The inverse of ``_to_keras``."""
    if j == 0 and getattr(layer, "data_format", None) == "channels_first" and w.ndim == 4:
        return w.transpose(3, 2, 0, 1)
    return w


def parse_weights(model, name: str, data: bytes) -> list[tuple[np.ndarray, np.ndarray]]:
    """(model array, file array) pairs from a Keras 3 ``.weights.h5`` file's bytes."""
    h5py = _h5py()

    def bad(what: str) -> ValueError:
        return ValueError(f"{name}: {what}")

    try:
        f = h5py.File(io.BytesIO(data), "r")
    except OSError as e:
        raise bad(f"not a readable HDF5 file ({e})") from e
    with f:
        group = f.get("layers")
        if not isinstance(group, h5py.Group):
            raise bad("not a Keras 3 weights file (no 'layers' group)")
        stored = {}
        for key, g in group.items():
            vars_ = g.get("vars") if isinstance(g, h5py.Group) else None
            if isinstance(vars_, h5py.Group) and len(vars_):
                stored[key] = vars_
        keys = _keys(model)
        mine = [(k, layer) for k, layer in zip(keys, model.layers) if layer.weights]
        missing = [f"{layer.name!r} ({type(layer).__name__}, Keras key {k!r})"
                   for k, layer in mine if k not in stored]
        extra = sorted(set(stored) - {k for k, _ in mine})
        if missing or extra:
            raise bad(f"holds weights for {len(stored)} layers ({', '.join(sorted(stored))}), "
                      f"this model has {len(mine)} layers with weights"
                      + (f"; not in the file: {', '.join(missing)}" if missing else "")
                      + (f"; not in the model: {', '.join(extra)}" if extra else ""))
        updates = []
        for key, layer in mine:
            vars_ = stored[key]
            names = sorted(vars_, key=lambda s: int(s) if s.isdigit() else -1)
            if names != [str(i) for i in range(len(names))] or len(names) != len(
                    layer.weights):
                raise bad(f"layer {layer.name!r} ({type(layer).__name__}, Keras key "
                          f"{key!r}) has {len(layer.weights)} weight arrays, the file has "
                          f"{len(names)} ({', '.join(names)})")
            for j, w in enumerate(layer.weights):
                ds = vars_[str(j)]
                if not isinstance(ds, h5py.Dataset) or ds.dtype.kind != "f":
                    raise bad(f"layers/{key}/vars/{j} is not a float array")
                expected = tuple(_to_keras(layer, j, w).shape)
                if tuple(ds.shape) != expected:
                    raise bad(f"layer {layer.name!r} ({type(layer).__name__}, Keras key "
                              f"{key!r}) weight {j}: the model has shape {expected} "
                              f"(Keras layout), the file has {tuple(ds.shape)}")
                updates.append((w, _from_keras(layer, j, np.asarray(ds[()]))))
    return updates


def save_weights(model, filepath: str | os.PathLike) -> None:
    """Write the layer weights as Keras 3 does in a ``.weights.h5`` (atomically)."""
    h5py = _h5py()
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        layers = f.create_group("layers")
        for key, layer in zip(_keys(model), model.layers):
            vars_ = layers.create_group(key).create_group("vars")
            vars_.attrs["name"] = layer.name
            for j, w in enumerate(layer.weights):
                vars_.create_dataset(str(j), data=np.ascontiguousarray(_to_keras(layer, j, w)))
        f.create_group("vars").attrs["name"] = model.name
    with atomic_write(filepath, "wb") as out:
        out.write(buf.getvalue())
