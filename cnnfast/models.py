"""Keras-style ``Sequential`` model: compile / fit / evaluate / predict / summary / weights.

The model checks every input once per call (shape, dtype) before any work, then
runs whole batches through its execution plan (``cnnfast._plan``: which layers fuse,
where ReLU masks apply, whether the loss is computed from the logits of a softmax
output), made once per input shape.

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

Weights files: ``cnnfast._weights_io`` (and ``cnnfast._keras_h5`` for Keras's
``.weights.h5``); whole-model files (``save`` / ``load_model``): ``cnnfast.saving``;
callbacks: ``cnnfast.callbacks``.

Ctrl-C: a ``KeyboardInterrupt`` in ``fit`` or ``train_on_batch`` propagates at once,
except while the optimizer writes a step's updates into the weights: SIGINT is held
there (``cnnfast._sigint.SigintDeferred``) and raised when the step is complete, so the weights and
the optimizer state are always those after a whole number of steps.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import time
from collections.abc import Sequence

import numpy as np

from . import _plan as _planner
from . import _weights_io
from . import callbacks as _callbacks
from . import losses as _losses
from . import optimizers as _optimizers
from . import saving as _saving
from . import utils as _utils
from ._layer_base import InputLayer, Layer, _auto_name
from ._sigint import SigintDeferred
from ._strategy import resolve_strategy
from .callbacks import History
from .progress import Progbar

__all__ = ["Sequential", "History", "load_model", "save_model"]

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
        if self.blas_threads is None:  # the default: no context to enter (predict latency)
            return method(self, *args, **kwargs)
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
    #: (``cnnfast._plan``; same results bit for bit, less memory traffic).
    fuse_layers: bool = True
    #: the strategy of the last ``fit(distributed=...)`` (``cnnfast.distributed``), or
    #: None: with one, only its chief process writes ``save_weights``' file.
    distribution = None

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
        self._plan_key: tuple | None = None
        # bumped whenever the layers or their input shapes change (add, pop, build)
        self._layout_version = 0
        self._plan_cache: _planner.Plan | None = None
        self.stop_training = False
        self.history: History | None = None
        for layer in layers or []:
            self.add(layer)

    # ---- construction -------------------------------------------------------------------
    def add(self, layer: Layer) -> None:
        """Append a layer; builds it right away when the input shape is known."""
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a Layer, got {layer!r}")
        self._layout_version += 1
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
        self._layout_version += 1
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
        self._layout_version += 1
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

    def save_weights(self, filepath: str | os.PathLike) -> None:
        """Write all weights to ``filepath`` as an ``.npz`` archive (no pickle), or, for
        a name ending in ``.h5`` (``x.weights.h5``), in Keras 3's ``.weights.h5`` layout
        (needs h5py).

        The file is written at exactly ``filepath``: unlike ``numpy.savez`` given a
        name, no ``.npz`` suffix is added. The write is atomic (a temporary file in
        the same directory, renamed over ``filepath`` once complete), so an error or
        a Ctrl-C in the middle leaves any previous file there intact. After a
        ``fit(distributed=True)`` only rank 0 writes (the others return at once).
        """
        self._require_built()
        if self.distribution is not None and not self.distribution.is_chief:
            return  # data-parallel ranks hold the same weights: rank 0 writes them
        _weights_io.save_weights(self, filepath)

    def load_weights(self, filepath: str | os.PathLike) -> None:
        """Read weights written by ``save_weights``, or by Keras 3's ``save_weights``
        (a ``.weights.h5`` of a model made of the same layers; needs h5py), into this model.

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
        _weights_io.load_weights(self, filepath)

    def save(self, filepath: str | os.PathLike, overwrite: bool = True) -> None:
        """Write the whole model (layers, weights, optimizer and its state) to one zip
        file, atomically (``cnnfast.saving``); read it back with ``load_model``. After a
        ``fit(distributed=True)`` only rank 0 writes."""
        if self.distribution is not None and not self.distribution.is_chief:
            return
        if not overwrite and os.path.exists(filepath):
            raise FileExistsError(f"{os.fspath(filepath)} exists and overwrite=False")
        _saving.save(self, filepath)

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
        xb = x[sel]
        if xb.dtype == self.dtype and xb.flags.c_contiguous and xb.flags.aligned:
            return xb
        return np.require(xb, dtype=self.dtype, requirements=("C", "A"))

    # ---- forward / backward -------------------------------------------------------------
    def _plan(self) -> _planner.Plan:
        """The execution plan for the built layers (made again only when the layers,
        their input shapes, the loss or ``fuse_layers`` change)."""
        key = (self.fuse_layers, id(self.loss), self._layout_version, len(self.layers))
        if key != self._plan_key:
            self._plan_cache = _planner.make_plan(self.layers, self.loss, self.fuse_layers)
            self._plan_key = key
        return self._plan_cache

    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        return self._plan().forward(x, training)

    def _loss_and_grad(self, y: np.ndarray, out: np.ndarray):
        return self._plan().loss_and_grad(self.loss, y, out)

    def _compute_gradients(self, x: np.ndarray, y: np.ndarray, training: bool = True):
        """(loss, outputs, gradients of the trainable weights) for one batch."""
        plan = self._plan()
        out = plan.forward(x, training)
        loss, grad = plan.loss_and_grad(self.loss, y, out)
        plan.backward(grad)
        return loss, out, plan.gradients()

    @_with_blas_limit
    def train_on_batch(self, x, y) -> float | list[float]:
        """One optimizer step on one batch; returns the loss (and accuracy)."""
        x, y = self._check_xy(x, y)
        xb = self._batch(x, slice(None))
        loss, out, grads = self._compute_gradients(xb, y)
        with SigintDeferred():  # a step is applied whole or not at all
            self.optimizer.apply(self.trainable_weights, grads)
        if self._want_accuracy:
            acc = _losses.count_correct(self.loss, y, out) / max(
                _losses.accuracy_denominator(self.loss, out), 1)
            return [float(loss), acc]
        return float(loss)

    def _fit_step(self, x: np.ndarray, y: np.ndarray, sel, n_global: int, strategy):
        """One optimizer step of a (global) batch of ``n_global`` samples, of which this
        process computes ``sel``; returns the global batch's (loss sum, correct, judged)."""
        params = self.trainable_weights
        grads, sums = None, (0.0, 0, 0)
        yb = y[sel]
        if len(yb):
            loss, out, grads = self._compute_gradients(self._batch(x, sel), yb)
            sums = (float(loss) * len(yb),) + ((
                _losses.count_correct(self.loss, yb, out),
                _losses.accuracy_denominator(self.loss, out)) if self._want_accuracy else (0, 0))
        else:  # a data-parallel rank with no samples in a short last batch
            strategy.skip_batch(self)
        grads, sums = strategy.reduce_gradients(grads, params, len(yb), n_global, sums)
        with SigintDeferred():  # a step is applied whole or not at all
            self.optimizer.apply(params, grads)
        return sums

    # ---- fit / evaluate / predict -------------------------------------------------------
    @_with_blas_limit
    def fit(self, x=None, y=None, batch_size: int | None = None, epochs: int = 1,
            verbose: int | str = 1, callbacks=None, validation_split: float = 0.0,
            validation_data=None, shuffle: bool = True, initial_epoch: int = 0,
            distributed=False) -> History:
        """Train for ``epochs`` epochs; returns a ``History``.

        ``callbacks``: ``cnnfast.callbacks`` objects, called at Keras's hook points
        (``CallbackList``); ``model.stop_training = True`` ends training after the step.

        ``distributed=True``: data-parallel over the MPI job this process is part of
        (``mpiexec -n N``; ``cnnfast.distributed``), every rank called with the same
        arguments and data; or a strategy object (``cnnfast._strategy``).

        Ctrl-C (``KeyboardInterrupt``) stops training within the current batch and
        propagates, as in Keras. The model stays usable: its weights and optimizer
        state are those after the last completed step (a step's updates are applied
        whole, see ``_SigintDeferred``), ``model.history`` holds the epochs that
        finished, and ``fit`` can be called again to go on training.
        """
        if self.optimizer is None or self.loss is None:
            raise RuntimeError("compile the model before fit")
        verbose = 1 if verbose == "auto" else int(verbose)
        bs = self._batch_size(batch_size)
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
        strategy = resolve_strategy(distributed)
        strategy.begin(self, n, bs)
        verbose = verbose if strategy.is_chief else 0
        cbs = _callbacks.CallbackList(
            callbacks, self, {"verbose": verbose, "epochs": epochs, "steps": steps})
        hist = self.history = cbs.history
        rng = _utils.get_rng()
        self.stop_training = False
        bar = None
        epoch_logs: dict = {}
        cbs.on_train_begin()
        try:
            for epoch in range(initial_epoch, epochs):
                cbs.on_epoch_begin(epoch)
                if verbose:
                    print(f"Epoch {epoch + 1}/{epochs}")
                    sys.stdout.flush()
                bar = Progbar(steps, verbose=verbose)
                t0 = time.perf_counter()
                order = rng.permutation(n) if shuffle else None
                loss_sum, seen, correct, judged = 0.0, 0, 0, 0
                finite = True
                for step in range(steps):
                    cbs.on_train_batch_begin(step)
                    lo, hi = step * bs, min((step + 1) * bs, n)
                    a, b = strategy.shard(lo, hi)
                    sel = order[a:b] if order is not None else slice(a, b)
                    step_loss, step_correct, step_judged = self._fit_step(
                        x, y, sel, hi - lo, strategy)
                    loss_sum += step_loss
                    seen += hi - lo
                    logs = {"loss": loss_sum / seen}
                    if self._want_accuracy:
                        correct += step_correct
                        judged += step_judged
                        logs[self._accuracy_name] = correct / max(judged, 1)
                    finite = finite and bool(np.isfinite(step_loss))
                    if step + 1 < steps:
                        bar.update(step + 1, list(logs.items()))
                    cbs.on_train_batch_end(step, dict(logs))
                    if self.stop_training:
                        break
                train_time = time.perf_counter() - t0
                epoch_logs = dict(logs)
                if xv is not None:
                    val_loss, val_correct, val_judged = strategy.evaluate_sums(self, xv, yv, bs)
                    epoch_logs["val_loss"] = val_loss / max(xv.shape[0], 1)
                    if self._want_accuracy:
                        epoch_logs["val_" + self._accuracy_name] = val_correct / max(val_judged, 1)
                bar.update(steps, list(epoch_logs.items()), finalize=True)
                hist.train_seconds.append(train_time)
                hist.epoch_seconds.append(time.perf_counter() - t0)
                cbs.on_epoch_end(epoch, epoch_logs)
                if not finite:
                    self.stop_training = True
                    if verbose:
                        print("Training stopped: the loss is not finite")
                if self.stop_training:
                    break
        except KeyboardInterrupt:
            if bar is not None:
                bar.abort()  # end a half-drawn bar line before the traceback
            raise
        cbs.on_train_end(epoch_logs)
        return hist

    def _evaluate_arrays(self, x: np.ndarray, y: np.ndarray, bs: int,
                         bar: Progbar | None = None) -> list[float]:
        loss_sum, correct, judged = self._evaluate_sums(x, y, bs, bar)
        res = [loss_sum / max(x.shape[0], 1)]
        if self._want_accuracy:
            res.append(correct / max(judged, 1))
        return res

    def _evaluate_sums(self, x: np.ndarray, y: np.ndarray, bs: int,
                       bar: Progbar | None = None) -> tuple[float, int, int]:
        """(loss * samples, correct, judged) summed over x in batches of ``bs``."""
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
        return loss_sum, correct, judged

    @_with_blas_limit
    def evaluate(self, x=None, y=None, batch_size: int | None = None,
                 verbose: int | str = 1, return_dict: bool = False):
        """``[loss, accuracy]`` (or the loss alone when compiled without metrics)."""
        verbose = 1 if verbose == "auto" else int(verbose)
        bs = self._batch_size(batch_size)
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
        bs = self._batch_size(batch_size)
        x = self._check_x(x)
        n = x.shape[0]
        if 0 < n <= bs and not verbose:
            # one batch (a server's single request): one C call where the plan has a
            # chain form (no Python between the layers), into a new array
            return self._plan().predict(self._batch(x, slice(None)))
        verbose = 1 if verbose == "auto" else int(verbose)
        out = np.empty((n,) + self.layers[-1]._out_shape, dtype=self.dtype)
        steps = -(-n // bs)
        bar = Progbar(steps, verbose=verbose) if verbose else None
        plan = self._plan()
        for step in range(steps):
            lo, hi = step * bs, min((step + 1) * bs, n)
            plan.predict(self._batch(x, slice(lo, hi)), out=out[lo:hi])
            if bar is not None:
                bar.update(step + 1)
        return out

    def predict_on_batch(self, x) -> np.ndarray:
        """Model outputs for one batch ``x`` (``keras.Model.predict_on_batch``; a new array)."""
        return self(x)

    @_with_blas_limit
    def __call__(self, x, training: bool = False) -> np.ndarray:
        x = self._check_x(x)
        xb = self._batch(x, slice(None))
        if not training:
            return self._plan().predict(xb)
        return np.array(self._forward(xb, training), copy=True)


def load_model(filepath: str | os.PathLike, compile: bool = True) -> Sequential:
    """A model written by ``Sequential.save`` (``keras.models.load_model``); with
    ``compile=False`` the optimizer and loss are not restored."""
    return _saving.load(filepath, Sequential, compile=compile)


def save_model(model: Sequential, filepath: str | os.PathLike, overwrite: bool = True) -> None:
    """``model.save(filepath)`` (``keras.models.save_model``)."""
    model.save(filepath, overwrite=overwrite)
