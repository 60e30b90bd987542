"""Keras-style ``Sequential`` model: compile / fit / evaluate / predict / summary / weights.

The model checks every input once per call (shape, dtype) before any work, then
runs whole batches through its layers (see ``cnnfast.layers``). When the last layer's
activation is softmax and the loss is a cross-entropy, the loss is computed from the
logits and its gradient w.r.t. the logits ``(p - y) / N`` goes straight into that
layer's backward pass (stable, and no softmax Jacobian).

All randomness (initial weights, shuffling, dropout) comes from
``cnnfast.utils.get_rng()``, unless a layer or an initializer is given its own ``seed``:
``cnnfast.utils.set_random_seed(s)`` before building the model makes a whole training
run repeat bit-for-bit.

BLAS threads: the model itself makes no BLAS call (Dense layers run on
``cnnfast.matmul`` under the kernels' OpenMP team). ``Sequential.blas_threads = n``
limits numpy's BLAS to ``n`` threads while the model computes, for custom code that
does call it: OpenBLAS worker threads still spinning after a matmul fight with the
OpenMP threads of the next convolution (measured on the 2-core machine: a Dense forward
on numpy took 87 ms per batch of 128 with 2 BLAS threads against 4.6 ms with 1). The
default, None, leaves BLAS alone: entering threadpoolctl's limit costs about 0.9 ms per
call, 3% of a training step.

Weights files are ``.npz`` archives (``numpy.savez``) holding one array per weight
and a JSON description of the layers; they are read with ``allow_pickle=False``.
``save_weights`` writes atomically (``cnnfast._fileio.atomic_write``): an interrupted
save leaves the previous file intact. ``load_weights`` checks the whole file before
it assigns anything, so a bad file raises ``ValueError`` and changes no weight.

Ctrl-C: a ``KeyboardInterrupt`` in ``fit`` or ``train_on_batch`` propagates at once,
except while the optimizer writes a step's updates into the weights: SIGINT is held
there (``_SigintDeferred``) and raised when the step is complete, so the weights and
the optimizer state are always those after a whole number of steps.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import signal
import struct
import sys
import threading
import time
import zipfile
import zlib
from collections.abc import Sequence

import numpy as np

from . import _fusion
from . import losses as _losses
from . import optimizers as _optimizers
from . import utils as _utils
from ._fileio import atomic_write
from .layers import (
    Conv2D,
    InputLayer,
    Layer,
    MaxPooling2D,
    MinPooling2D,
    _ActivatedLayer,
    _auto_name,
    _Pooling2D,
)
from .progress import Progbar

__all__ = ["Sequential", "History"]

_WEIGHTS_FORMAT = "cnnfast-weights"
_WEIGHTS_VERSION = 1
# What a damaged archive can raise while numpy and zipfile read it.
_UNREADABLE = (ValueError, TypeError, KeyError, EOFError, OSError, RuntimeError,
               NotImplementedError, OverflowError, MemoryError, struct.error, zlib.error,
               zipfile.BadZipFile)


class History:
    """What ``fit`` returns: ``history`` maps metric names to per-epoch lists.

    ``train_seconds`` holds the wall time of each epoch's training steps,
    ``epoch_seconds`` the whole epoch including validation.
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.params: dict[str, object] = {}
        self.train_seconds: list[float] = []
        self.epoch_seconds: list[float] = []
        self.model: Sequential | None = None

    def _append(self, epoch: int, logs: dict[str, float]) -> None:
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(float(v))

    def __repr__(self) -> str:
        return f"<History epochs={len(self.epoch)} keys={list(self.history)}>"


class _SigintDeferred:
    """Hold SIGINT inside the block and deliver it when the block ends.

    For updates that must happen all or not at all (a step's parameter updates, the
    copy of loaded weights): Ctrl-C in the middle would leave some layers updated and
    others not. The handler only records the signal; on exit the previous handler is
    restored and called with it (Python's default raises ``KeyboardInterrupt``).
    Signal handlers can only be set from the main thread, and only a handler that
    Python installed can be put back, so elsewhere the block runs unguarded (there
    SIGINT cannot raise inside it anyway, or it is ignored).
    """

    def __init__(self) -> None:
        self._previous = None
        self._received: tuple | None = None

    def _record(self, signum, frame) -> None:
        self._received = (signum, frame)

    def __enter__(self) -> _SigintDeferred:
        self._previous, self._received = None, None
        if threading.current_thread() is not threading.main_thread():
            return self
        previous = signal.getsignal(signal.SIGINT)
        if previous is None or previous is signal.SIG_IGN:
            return self
        signal.signal(signal.SIGINT, self._record)
        self._previous = previous
        return self

    def __exit__(self, *exc) -> bool:
        previous, self._previous = self._previous, None
        if previous is None:
            return False
        signal.signal(signal.SIGINT, previous)
        if self._received is not None:
            signum, frame = self._received
            self._received = None
            if callable(previous):
                previous(signum, frame)
            else:  # SIG_DFL: what the signal would have done without the hold
                signal.raise_signal(signum)
        return False


def _blas_limit(n: int | None):
    """Limit numpy's BLAS to ``n`` threads inside the block (see the module docstring)."""
    if n is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # a declared dependency; without it just run unlimited
        return contextlib.nullcontext()
    return threadpool_limits(limits=int(n), user_api="blas")


def _with_blas_limit(method):
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with _blas_limit(self.blas_threads):
            return method(self, *args, **kwargs)

    return wrapper


class Sequential:
    """A linear stack of layers (``keras.Sequential``).

    ``dtype`` (``"float32"`` by default, or ``"float64"``) is the dtype of the weights
    and of all computation; inputs of any integer or float dtype are cast to it.
    """

    #: numpy BLAS threads while the model computes; None (default): leave BLAS alone.
    blas_threads: int | None = None
    #: run a Conv2D followed by Max/MinPooling2D as one fused kernel pair
    #: (``cnnfast._fusion``; same results bit for bit, less memory traffic).
    fuse_layers: bool = True

    def __init__(self, layers: Sequence[Layer] | None = None, name: str | None = None,
                 dtype="float32"):
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dtype!r}")
        self.name = name or _auto_name("Sequential")
        self.layers: list[Layer] = []
        self._input_shape: tuple | None = None
        self.built = False
        self.optimizer: _optimizers.Optimizer | None = None
        self.loss: _losses.Loss | None = None
        self.metrics_names: list[str] = []
        self._want_accuracy = False
        self._accuracy_name = "accuracy"
        self._fused_output = False
        self._plan_key: tuple | None = None
        self._plan: list = []
        self.stop_training = False
        self.history: History | None = None
        for layer in layers or []:
            self.add(layer)

    # ---- construction -------------------------------------------------------------------
    def add(self, layer: Layer) -> None:
        """Append a layer; builds it right away when the input shape is known."""
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a Layer, got {layer!r}")
        if any(layer is other for other in self.layers):
            raise ValueError(f"layer {layer.name!r} is already in the model")
        if isinstance(layer, InputLayer):
            # As in Keras, an Input only fixes the input shape; it is not kept as a layer.
            if self.layers:
                raise ValueError("an Input/InputLayer must come before every other layer")
            self._input_shape = layer._declared_input_shape
            return
        if not self.layers and layer._declared_input_shape is not None:
            self._input_shape = layer._declared_input_shape
        self.layers.append(layer)
        if self.built:
            layer.build(self.layers[-2]._out_shape, self.dtype)
        elif self._input_shape is not None:
            self.build((None,) + self._input_shape)

    def pop(self) -> Layer:
        if not self.layers:
            raise TypeError("there are no layers in the model")
        layer = self.layers.pop()
        if not self.layers:
            self.built = False
            self._input_shape = None
        return layer

    def build(self, input_shape) -> None:
        """Build all layers for inputs of shape ``input_shape`` (batch axis included)."""
        shape = tuple(int(s) for s in tuple(input_shape)[1:])
        for layer in self.layers:
            asked = getattr(layer, "_requested_dtype", None)
            if asked is not None and asked != self.dtype:
                raise ValueError(
                    f"layer {layer.name!r} asks for dtype {asked}, but the model computes in "
                    f"{self.dtype}: cnnfast runs one dtype per model (Sequential(dtype=...))"
                )
        self._input_shape = shape
        for layer in self.layers:
            if layer.built and layer._in_shape == shape and layer.dtype == self.dtype:
                pass
            else:
                layer.build(shape, self.dtype)
            shape = layer._out_shape
        self.built = bool(self.layers)

    @property
    def input_shape(self) -> tuple:
        if self._input_shape is None:
            raise AttributeError("the model has no input shape yet")
        return (None,) + self._input_shape

    @property
    def output_shape(self) -> tuple:
        self._require_built()
        return self.layers[-1].output_shape

    def _require_built(self) -> None:
        if not self.built:
            raise ValueError(
                "this model has not been built yet: give the first layer an input_shape, "
                "start with cnnfast.layers.Input(shape), call build(), or fit it on data"
            )

    # ---- weights ------------------------------------------------------------------------
    @property
    def weights(self) -> list[np.ndarray]:
        return [w for layer in self.layers for w in layer.weights]

    @property
    def trainable_weights(self) -> list[np.ndarray]:
        return [w for layer in self.layers if layer.trainable for w in layer.weights]

    def get_weights(self) -> list[np.ndarray]:
        """Copies of all weight arrays, layer by layer."""
        return [w.copy() for w in self.weights]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Set all weights from a list shaped like ``get_weights()`` (copied in place)."""
        self._require_built()
        weights = list(weights)
        own = self.weights
        if len(weights) != len(own):
            raise ValueError(f"the model has {len(own)} weight arrays, got {len(weights)}")
        for i, (dst, src) in enumerate(zip(own, weights)):
            if np.shape(src) != dst.shape:
                raise ValueError(
                    f"weight {i}: expected shape {dst.shape}, got {np.shape(src)}"
                )
        for dst, src in zip(own, weights):
            np.copyto(dst, np.asarray(src), casting="unsafe")

    def count_params(self) -> int:
        return int(sum(layer.count_params() for layer in self.layers))

    def _weight_description(self) -> list:
        return [
            {"index": i, "class": type(layer).__name__, "name": layer.name,
             "shapes": [list(w.shape) for w in layer.weights]}
            for i, layer in enumerate(self.layers) if layer.weights
        ]

    def save_weights(self, filepath: str | os.PathLike) -> None:
        """Write all weights to ``filepath`` as an ``.npz`` archive (no pickle).

        The file is written at exactly ``filepath``: unlike ``numpy.savez`` given a
        name, no ``.npz`` suffix is added. The write is atomic (a temporary file in
        the same directory, renamed over ``filepath`` once complete), so an error or
        a Ctrl-C in the middle leaves any previous file there intact.
        """
        self._require_built()
        meta = {"format": _WEIGHTS_FORMAT, "version": _WEIGHTS_VERSION,
                "dtype": self.dtype.name, "layers": self._weight_description()}
        arrays = {"__meta__": np.array(json.dumps(meta))}
        for i, layer in enumerate(self.layers):
            for j, w in enumerate(layer.weights):
                arrays[f"layer{i}.w{j}"] = w
        # a file object, not a name: np.savez would append ".npz" to a name without it
        with atomic_write(filepath, "wb") as f:
            np.savez(f, **arrays)

    def load_weights(self, filepath: str | os.PathLike) -> None:
        """Read weights written by ``save_weights`` into this model.

        A missing or unreadable file raises the ``OSError`` that opening it raises
        (``FileNotFoundError``, ``PermissionError``...). Anything wrong with the
        content raises ``ValueError`` naming the file and the problem: not an
        ``.npz`` archive, truncated or corrupted, weights for another model (layer
        count, classes, shapes), missing or extra arrays, an array whose shape or
        dtype differs from the file's description. The whole file is read and
        checked before any weight is assigned, so after an error the model's weights
        (and its optimizer's state, which loading never touches) are unchanged.
        """
        self._require_built()
        with open(filepath, "rb") as fh:
            # read at once: I/O errors surface here as OSError, and everything that
            # fails later is about the content
            data = fh.read()
        updates = self._parse_weights(os.fspath(filepath), data)
        with _SigintDeferred():  # all weights or none
            for dst, src in updates:
                np.copyto(dst, src, casting="unsafe")

    def _parse_weights(self, name: str, data: bytes) -> list[tuple[np.ndarray, np.ndarray]]:
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
            mine = self._weight_description()
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
                    updates.append((self.layers[m["index"]].weights[j], arr))
        return updates

    # ---- summary ------------------------------------------------------------------------
    def summary(self, line_length: int | None = None, print_fn=None) -> None:
        """Print a Keras-like table: layer (type), output shape, parameter count."""
        self._require_built()
        print_fn = print_fn or print
        rows = [(f"{layer.name} ({type(layer).__name__})", str(layer.output_shape),
                 f"{layer.count_params():,}") for layer in self.layers]
        w0 = max([29] + [len(r[0]) + 2 for r in rows])
        w1 = max([26] + [len(r[1]) + 2 for r in rows])
        w2 = 10
        width = max(line_length or 0, w0 + w1 + w2)
        trainable = sum(layer.count_params() for layer in self.layers if layer.trainable)
        total = self.count_params()
        lines = [f'Model: "{self.name}"', "_" * width,
                 f"{' Layer (type)':<{w0}}{'Output Shape':<{w1}}{'Param #':<{w2}}",
                 "=" * width]
        for r in rows:
            lines.append(f"{' ' + r[0]:<{w0}}{r[1]:<{w1}}{r[2]:<{w2}}".rstrip())
        lines += ["=" * width, f"Total params: {total:,}", f"Trainable params: {trainable:,}",
                  f"Non-trainable params: {total - trainable:,}", "_" * width]
        for line in lines:
            print_fn(line)

    # ---- training configuration ---------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None) -> None:
        """Choose the optimizer, the loss and the metrics (only ``"accuracy"``, or
        ``"acc"``, logged under that name)."""
        if loss is None:
            raise ValueError("compile needs a loss, e.g. loss='categorical_crossentropy'")
        self.optimizer = _optimizers.get(optimizer)
        self.loss = _losses.get(loss)
        metrics = [] if metrics is None else (
            [metrics] if isinstance(metrics, str) else list(metrics))
        for m in metrics:
            if not (isinstance(m, str) and m.lower() in ("accuracy", "acc")):
                raise ValueError(f"unsupported metric {m!r}: only 'accuracy' is available")
        self._want_accuracy = bool(metrics)
        # logged under the name given, as Keras does: metrics=["acc"] gives "acc", "val_acc"
        self._accuracy_name = metrics[-1].lower() if metrics else "accuracy"
        self.metrics_names = ["loss"] + ([self._accuracy_name] if self._want_accuracy else [])
        self._configure_output()

    def _configure_output(self) -> None:
        """Set the cross-layer fusions: softmax + cross-entropy, ReLU mask after pooling."""
        for layer in self.layers:
            if isinstance(layer, _ActivatedLayer):
                layer._logits_mode = False
            if isinstance(layer, Conv2D):
                layer._dy_premasked = False
            if isinstance(layer, _Pooling2D):
                layer._relu_mask = False
        for conv, pool in zip(self.layers, self.layers[1:]):
            if (isinstance(conv, Conv2D) and conv._fused_relu
                    and isinstance(pool, (MaxPooling2D, MinPooling2D))
                    and conv.data_format == pool.data_format):
                conv._dy_premasked = True
                pool._relu_mask = True
        last = self.layers[-1] if self.layers else None
        self._fused_output = bool(
            last is not None and isinstance(last, _ActivatedLayer)
            and last.activation.name == "softmax"
            and self.loss is not None and self.loss.supports_logits
            and not getattr(self.loss, "from_logits", False)
        )
        if self._fused_output:
            last._logits_mode = True

    # ---- input checking -----------------------------------------------------------------
    def _check_x(self, x, what: str = "x") -> np.ndarray:
        x = np.asarray(x)
        if x.dtype.kind not in "fiu":
            raise TypeError(f"{what} must be an integer or float array, got dtype {x.dtype}")
        if x.ndim < 1:
            raise ValueError(f"{what} must have a batch axis, got a scalar")
        if not self.built:
            if not self.layers:
                raise ValueError("the model has no layers")
            self.build((None,) + x.shape[1:])
        if x.shape[1:] != self._input_shape:
            raise ValueError(
                f"{what} has shape {x.shape}, but the model expects (None, "
                f"{', '.join(map(str, self._input_shape))}) (batch first)"
            )
        return x

    def _check_xy(self, x, y, what: str = "x"):
        x = self._check_x(x, what)
        if self.loss is None:
            raise RuntimeError("compile the model before fit or evaluate")
        y_arr = np.asarray(y)
        if y_arr.ndim < 1 or y_arr.shape[0] != x.shape[0]:
            raise ValueError(
                f"{what} holds {x.shape[0]} samples but y has shape {y_arr.shape}"
            )
        y_arr = self.loss.check_targets(y_arr, x.shape[0], self.layers[-1]._out_shape,
                                        self.dtype)
        return x, y_arr

    @staticmethod
    def _batch_size(batch_size) -> int:
        if batch_size is None:
            return 32
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        return int(batch_size)

    def _batch(self, x: np.ndarray, sel) -> np.ndarray:
        """Batch ``sel`` (a slice or an index array) of x, in the model dtype."""
        # aligned and C-contiguous: a slice of an array at an odd byte offset
        # (np.frombuffer, np.memmap) is copied once here, not in every layer
        return np.require(x[sel], dtype=self.dtype, requirements=("C", "A"))

    # ---- forward / backward -------------------------------------------------------------
    def _steps(self) -> list:
        """The layers as run: single layers, and fused (Conv2D, pooling) pairs."""
        key = (self.fuse_layers, self.dtype,
               tuple((id(layer), layer._in_shape) for layer in self.layers))
        if key != self._plan_key:
            plan: list = []
            i = 0
            while i < len(self.layers):
                layer = self.layers[i]
                nxt = self.layers[i + 1] if i + 1 < len(self.layers) else None
                if self.fuse_layers and nxt is not None and _fusion.fusable(layer, nxt):
                    plan.append(_fusion.ConvPoolStep(layer, nxt))
                    i += 2
                else:
                    plan.append(layer)
                    i += 1
            self._plan, self._plan_key = plan, key
        return self._plan

    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        for step in self._steps():
            x = step.forward(x, training)
        return x

    def _loss_and_grad(self, y: np.ndarray, out: np.ndarray):
        if self._fused_output:
            return self.loss.value_and_grad_logits(y, self.layers[-1].logits, out)
        return self.loss.value_and_grad(y, out)

    def _backward(self, grad: np.ndarray) -> None:
        # Layers before the first one with trainable weights need no gradient at all,
        # and the first trainable layer needs no input gradient.
        steps = self._steps()
        first = next((i for i, step in enumerate(steps)
                      if step.trainable and (isinstance(step, _fusion.ConvPoolStep)
                                             or step.weights)), len(steps))
        for i in range(len(steps) - 1, first - 1, -1):
            grad = steps[i].backward(grad, input_grad=i > first)

    def _compute_gradients(self, x: np.ndarray, y: np.ndarray, training: bool = True):
        """(loss, outputs, gradients of the trainable weights) for one batch."""
        out = self._forward(x, training)
        loss, grad = self._loss_and_grad(y, out)
        self._backward(grad)
        grads = [g for layer in self.layers if layer.trainable and layer.weights
                 for g in layer.gradients]
        return loss, out, grads

    @_with_blas_limit
    def train_on_batch(self, x, y) -> float | list[float]:
        """One optimizer step on one batch; returns the loss (and accuracy)."""
        self._configure_output()
        x, y = self._check_xy(x, y)
        xb = self._batch(x, slice(None))
        loss, out, grads = self._compute_gradients(xb, y)
        with _SigintDeferred():  # a step is applied whole or not at all
            self.optimizer.apply(self.trainable_weights, grads)
        if self._want_accuracy:
            acc = _losses.count_correct(self.loss, y, out) / max(
                _losses.accuracy_denominator(self.loss, out), 1)
            return [float(loss), acc]
        return float(loss)

    # ---- fit / evaluate / predict -------------------------------------------------------
    @_with_blas_limit
    def fit(self, x=None, y=None, batch_size: int | None = None, epochs: int = 1,
            verbose: int | str = 1, callbacks=None, validation_split: float = 0.0,
            validation_data=None, shuffle: bool = True, initial_epoch: int = 0) -> History:
        """Train for ``epochs`` epochs; returns a ``History``.

        Ctrl-C (``KeyboardInterrupt``) stops training within the current batch and
        propagates, as in Keras. The model stays usable: its weights and optimizer
        state are those after the last completed step (a step's updates are applied
        whole, see ``_SigintDeferred``), ``model.history`` holds the epochs that
        finished, and ``fit`` can be called again to go on training.
        """
        if self.optimizer is None or self.loss is None:
            raise RuntimeError("compile the model before fit")
        if callbacks:
            raise NotImplementedError("callbacks are not supported")
        verbose = 1 if verbose == "auto" else int(verbose)
        bs = self._batch_size(batch_size)
        self._configure_output()
        x, y = self._check_xy(x, y)
        if not 0.0 <= float(validation_split) < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")
        if validation_data is not None:
            if len(validation_data) != 2:
                raise ValueError("validation_data must be (x_val, y_val)")
            xv, yv = self._check_xy(validation_data[0], validation_data[1], "validation x")
        elif validation_split > 0:
            # Keras: the last fraction of the data, taken before any shuffling.
            split = int(x.shape[0] * (1.0 - float(validation_split)))
            if split < 1 or split >= x.shape[0]:
                raise ValueError(
                    f"validation_split={validation_split} leaves no training or no "
                    f"validation samples out of {x.shape[0]}"
                )
            x, xv, y, yv = x[:split], x[split:], y[:split], y[split:]
        else:
            xv = yv = None
        n = x.shape[0]
        if n == 0:
            raise ValueError("fit needs at least one sample")
        steps = -(-n // bs)
        hist = History()
        hist.model = self
        self.history = hist
        hist.params = {"verbose": verbose, "epochs": epochs, "steps": steps}
        params = self.trainable_weights
        rng = _utils.get_rng()
        self.stop_training = False
        bar = None
        try:
            for epoch in range(initial_epoch, epochs):
                if verbose:
                    print(f"Epoch {epoch + 1}/{epochs}")
                    sys.stdout.flush()
                bar = Progbar(steps, verbose=verbose)
                t0 = time.perf_counter()
                order = rng.permutation(n) if shuffle else None
                loss_sum, seen, correct, judged = 0.0, 0, 0, 0
                for step in range(steps):
                    lo, hi = step * bs, min((step + 1) * bs, n)
                    sel = order[lo:hi] if order is not None else slice(lo, hi)
                    xb = self._batch(x, sel)
                    yb = y[sel]
                    loss, out, grads = self._compute_gradients(xb, yb)
                    with _SigintDeferred():  # a step is applied whole or not at all
                        self.optimizer.apply(params, grads)
                    loss_sum += float(loss) * (hi - lo)
                    seen += hi - lo
                    logs = [("loss", loss_sum / seen)]
                    if self._want_accuracy:
                        correct += _losses.count_correct(self.loss, yb, out)
                        judged += _losses.accuracy_denominator(self.loss, out)
                        logs.append((self._accuracy_name, correct / max(judged, 1)))
                    if not np.isfinite(loss):
                        self.stop_training = True
                    if step + 1 < steps:
                        bar.update(step + 1, logs)
                train_time = time.perf_counter() - t0
                epoch_logs = dict(logs)
                if xv is not None:
                    val = self._evaluate_arrays(xv, yv, bs)
                    epoch_logs["val_loss"] = val[0]
                    if self._want_accuracy:
                        epoch_logs["val_" + self._accuracy_name] = val[1]
                bar.update(steps, list(epoch_logs.items()), finalize=True)
                hist._append(epoch, epoch_logs)
                hist.train_seconds.append(train_time)
                hist.epoch_seconds.append(time.perf_counter() - t0)
                if self.stop_training:
                    if verbose:
                        print("Training stopped: the loss is not finite")
                    break
        except KeyboardInterrupt:
            if bar is not None:
                bar.abort()  # end a half-drawn bar line before the traceback
            raise
        return hist

    def _evaluate_arrays(self, x: np.ndarray, y: np.ndarray, bs: int,
                         bar: Progbar | None = None) -> list[float]:
        n = x.shape[0]
        loss_sum, correct, judged = 0.0, 0, 0
        steps = -(-n // bs)
        for step in range(steps):
            lo, hi = step * bs, min((step + 1) * bs, n)
            out = self._forward(self._batch(x, slice(lo, hi)), training=False)
            yb = y[lo:hi]
            loss, _ = self._loss_and_grad(yb, out)
            loss_sum += float(loss) * (hi - lo)
            if self._want_accuracy:
                correct += _losses.count_correct(self.loss, yb, out)
                judged += _losses.accuracy_denominator(self.loss, out)
            if bar is not None:
                logs = [("loss", loss_sum / hi)]
                if self._want_accuracy:
                    logs.append((self._accuracy_name, correct / max(judged, 1)))
                bar.update(step + 1, logs)
        res = [loss_sum / max(n, 1)]
        if self._want_accuracy:
            res.append(correct / max(judged, 1))
        return res

    @_with_blas_limit
    def evaluate(self, x=None, y=None, batch_size: int | None = None,
                 verbose: int | str = 1, return_dict: bool = False):
        """``[loss, accuracy]`` (or the loss alone when compiled without metrics)."""
        verbose = 1 if verbose == "auto" else int(verbose)
        bs = self._batch_size(batch_size)
        self._configure_output()
        x, y = self._check_xy(x, y)
        if x.shape[0] == 0:
            raise ValueError("evaluate needs at least one sample")
        bar = Progbar(-(-x.shape[0] // bs), verbose=verbose) if verbose else None
        res = self._evaluate_arrays(x, y, bs, bar)
        if return_dict:
            return dict(zip(self.metrics_names, res))
        return res if self._want_accuracy else res[0]

    @_with_blas_limit
    def predict(self, x, batch_size: int | None = None,
                verbose: int | str = 0) -> np.ndarray:
        """Model outputs for ``x``, batch by batch (a new array)."""
        verbose = 1 if verbose == "auto" else int(verbose)
        bs = self._batch_size(batch_size)
        x = self._check_x(x)
        n = x.shape[0]
        out = np.empty((n,) + self.layers[-1]._out_shape, dtype=self.dtype)
        steps = -(-n // bs)
        bar = Progbar(steps, verbose=verbose) if verbose else None
        for step in range(steps):
            lo, hi = step * bs, min((step + 1) * bs, n)
            out[lo:hi] = self._forward(self._batch(x, slice(lo, hi)), training=False)
            if bar is not None:
                bar.update(step + 1)
        return out

    @_with_blas_limit
    def __call__(self, x, training: bool = False) -> np.ndarray:
        x = self._check_x(x)
        return np.array(self._forward(self._batch(x, slice(None)), training), copy=True)


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
