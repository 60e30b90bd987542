"""Training callbacks with Keras's names, arguments, defaults and semantics
(``keras.callbacks``): ``Callback``, ``History``, ``EarlyStopping``,
``ModelCheckpoint``, ``CSVLogger``, ``TerminateOnNaN``, ``LambdaCallback``,
``ReduceLROnPlateau``, ``LearningRateScheduler``.

``Sequential.fit(callbacks=[...])`` wraps the list in a ``CallbackList`` and calls its
hooks: ``on_train_begin``, then per epoch ``on_epoch_begin``, per step
``on_train_batch_begin`` / ``on_train_batch_end`` (logs: the epoch's running ``loss``
and metrics), ``on_epoch_end`` (logs: the epoch's metrics and ``val_*``), and
``on_train_end``. A callback stops training with ``self.model.stop_training = True``;
``fit`` checks it after every step. Keras's callbacks that cnnfast does not provide
(``TensorBoard``, ``BackupAndRestore``, ...) and arguments it does not implement
raise an error naming them; none is ignored.
"""

from __future__ import annotations

import csv
import math
import os
import sys
import warnings

import numpy as np

__all__ = [
    "Callback", "CallbackList", "History", "EarlyStopping", "ModelCheckpoint",
    "CSVLogger", "TerminateOnNaN", "LambdaCallback", "ReduceLROnPlateau",
    "LearningRateScheduler",
]

# keras.callbacks names cnnfast does not provide: refused by name, not ignored
_NOT_PROVIDED = ("BackupAndRestore", "ProgbarLogger", "RemoteMonitor", "TensorBoard",
                 "SwapEMAWeights", "OrbaxCheckpoint", "MonitorCallback")


def __getattr__(name: str):
    if name in _NOT_PROVIDED:
        raise AttributeError(f"keras.callbacks.{name} is not implemented by cnnfast "
                             f"(available: {', '.join(__all__)})")
    raise AttributeError(f"module 'cnnfast.callbacks' has no attribute {name!r}")


def _print(msg: str) -> None:
    print(msg)


def _writes_files(model) -> bool:
    """False on the ranks other than 0 of a data-parallel fit (``cnnfast.distributed``):
    rank 0 writes the job's logs (its ``save``/``save_weights`` gate themselves)."""
    distribution = getattr(model, "distribution", None)
    return distribution is None or distribution.is_chief
    sys.stdout.flush()


class Callback:
    """Base class: every hook does nothing; ``model`` and ``params`` are set by ``fit``."""

    def __init__(self) -> None:
        self.model = None
        self.params: dict = {}

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = params

    def on_train_begin(self, logs: dict | None = None) -> None: ...
    def on_train_end(self, logs: dict | None = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None: ...
    def on_batch_begin(self, batch: int, logs: dict | None = None) -> None: ...
    def on_batch_end(self, batch: int, logs: dict | None = None) -> None: ...

    # Keras: the train-batch hooks call the generic batch hooks by default
    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.on_batch_end(batch, logs=logs)


class History(Callback):
    """Records the epoch logs: ``history`` maps each metric name to its per-epoch list.

    ``fit`` returns it (and sets ``model.history``). cnnfast adds ``train_seconds``, the
    wall time of each epoch's training steps, and ``epoch_seconds``, the whole epoch
    including validation.
    """

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.train_seconds: list[float] = []
        self.epoch_seconds: list[float] = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(float(v))
        if self.model is not None:
            self.model.history = self

    def __repr__(self) -> str:
        return f"<History epochs={len(self.epoch)} keys={list(self.history)}>"


class CallbackList:
    """The callbacks of one ``fit`` call, with its ``History`` last (as in Keras)."""

    def __init__(self, callbacks, model, params: dict) -> None:
        if callbacks is None:
            callbacks = []
        elif isinstance(callbacks, Callback):
            callbacks = [callbacks]
        callbacks = list(callbacks)
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be cnnfast.callbacks.Callback instances, "
                                f"got {cb!r}")
        self.history = next((cb for cb in callbacks if isinstance(cb, History)), None)
        if self.history is None:
            self.history = History()
            callbacks.append(self.history)
        self.callbacks = callbacks
        for cb in callbacks:
            cb.set_model(model)
            cb.set_params(params)

    def on_train_begin(self, logs=None):
        for cb in self.callbacks:
            cb.on_train_begin(logs)

    def on_train_end(self, logs=None):
        for cb in self.callbacks:
            cb.on_train_end(logs)

    def on_epoch_begin(self, epoch, logs=None):
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        for cb in self.callbacks:
            cb.on_train_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        for cb in self.callbacks:
            cb.on_train_batch_end(batch, logs)


class _MonitorCallback(Callback):
    """Watches ``monitor`` in the epoch logs; ``mode`` "min", "max" or "auto" (from the
    name: a loss is minimised, an accuracy maximised)."""

    def __init__(self, monitor: str = "val_loss", mode: str = "auto", baseline=None,
                 min_delta: float = 0.0) -> None:
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"{type(self).__name__}: mode must be 'auto', 'min' or 'max', "
                             f"got {mode!r}")
        if not isinstance(monitor, str):
            raise TypeError(f"{type(self).__name__}: monitor must be a metric name, "
                            f"got {monitor!r}")
        self.monitor = monitor
        self.mode = mode
        self.best = baseline
        self.min_delta = abs(float(min_delta))
        self._minimise: bool | None = None

    def _direction(self) -> bool:
        """True when the monitored value is to be minimised."""
        if self._minimise is None:
            if self.mode != "auto":
                self._minimise = self.mode == "min"
            else:
                metric = self.monitor.removeprefix("val_")
                if metric == "loss":
                    self._minimise = True
                elif metric in ("accuracy", "acc"):
                    self._minimise = False
                else:
                    raise ValueError(
                        f"{type(self).__name__} callback received monitor={self.monitor}, "
                        "but cannot tell whether that metric should be maximized or "
                        "minimized: pass mode='max' or mode='min'")
        return self._minimise

    def _is_improvement(self, value, reference) -> bool:
        if reference is None:
            return True
        if self._direction():
            return bool(value + self.min_delta < reference)
        return bool(value - self.min_delta > reference)

    def _monitored(self, logs, what: str):
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(f"{what} conditioned on metric `{self.monitor}` which is not "
                          f"available. Available metrics are: {','.join(logs or {})}",
                          stacklevel=3)
        return value


class EarlyStopping(_MonitorCallback):
    """Stops training when ``monitor`` has not improved for ``patience`` epochs."""

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0, patience: int = 0,
                 verbose: int = 0, mode: str = "auto", baseline: float | None = None,
                 restore_best_weights: bool = False, start_from_epoch: int = 0) -> None:
        super().__init__(monitor, mode, None, min_delta)
        self.patience = int(patience)
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = int(start_from_epoch)
        self.wait = 0
        self.stopped_epoch = 0
        self.best_weights = None
        self.best_epoch = 0

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best_epoch = 0, 0, 0
        self.best = None
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        self._direction()
        current = self._monitored(logs, "Early stopping")
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            # with a baseline, patience runs until the baseline itself is beaten
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            _print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                _print("Restoring model weights from the end of the best epoch: "
                       f"{self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(_MonitorCallback):
    """Saves the model (``.keras``: ``model.save``) or its weights
    (``save_weights_only=True``: ``model.save_weights``) at the end of every epoch, or
    every ``save_freq`` steps. ``filepath`` may hold ``{epoch:02d}`` and any epoch log
    (``{val_loss:.2f}``). Each write is atomic."""

    def __init__(self, filepath, monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, save_weights_only: bool = False,
                 mode: str = "auto", save_freq="epoch",
                 initial_value_threshold: float | None = None) -> None:
        super().__init__(monitor, mode, initial_value_threshold)
        self.filepath = os.fspath(filepath)
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        if save_freq != "epoch" and (isinstance(save_freq, bool)
                                     or not isinstance(save_freq, int) or save_freq < 1):
            raise ValueError(f"Unrecognized save_freq: {save_freq!r}: expected 'epoch' or "
                             "a positive integer (steps)")
        self.save_freq = save_freq
        if not self.save_weights_only and not self.filepath.endswith(".keras"):
            raise ValueError("ModelCheckpoint: the filepath must end in `.keras` (the whole "
                             "model; the legacy `.h5` model format is not supported by "
                             f"cnnfast), or pass save_weights_only=True. Received: "
                             f"filepath={self.filepath}")
        self._epoch = 0
        self._steps_since_save = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._steps_since_save += 1
        if self._steps_since_save >= self.save_freq:
            self._steps_since_save = 0
            self._save(self._epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._direction()
        if self.save_freq == "epoch":
            self._save(epoch, None, logs)

    def _save(self, epoch: int, batch: int | None, logs) -> None:
        logs = dict(logs or {})
        try:
            if batch is None or "batch" in logs:
                path = self.filepath.format(epoch=epoch + 1, **logs)
            else:
                path = self.filepath.format(epoch=epoch + 1, batch=batch + 1, **logs)
        except KeyError as e:
            raise KeyError(f'Failed to format this callback filepath: "{self.filepath}". '
                           f"Reason: {e}") from None
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(f"Can save best model only with {self.monitor} available.",
                              stacklevel=2)
            else:
                best = "None" if self.best is None else f"{self.best:.5f}"
                if not self._is_improvement(current, self.best):
                    if self.verbose > 0:
                        _print(f"Epoch {epoch + 1}: {self.monitor} did not improve "
                               f"from {best}")
                    return
                if self.verbose > 0:
                    _print(f"Epoch {epoch + 1}: {self.monitor} improved from {best} to "
                           f"{current:.5f}, saving model to {path}")
                self.best = current
        elif self.verbose > 0:
            _print(f"Epoch {epoch + 1}: saving model to {path}")
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)


class CSVLogger(Callback):
    """Writes one row per epoch (``epoch`` and the sorted epoch logs) to ``filename``."""

    def __init__(self, filename, separator: str = ",", append: bool = False) -> None:
        super().__init__()
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = bool(append)
        self.keys: list[str] | None = None
        self._file = None
        self._writer = None
        self._header = True

    def on_train_begin(self, logs=None):
        if not _writes_files(self.model):
            return
        if self.append and os.path.exists(self.filename):
            with open(self.filename, encoding="utf-8") as f:
                self._header = not f.readline()
        else:
            self._header = True
        if self._file is not None and not self._file.closed:
            self._file.close()
        # a log grows row by row (it is read while training runs), so it is not an
        # atomic write: each row is flushed as it is written
        self._file = open(self.filename, "a" if self.append else "w",
                          newline="", encoding="utf-8")
        self._writer = None
        self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        if self._file is None or self._file.closed:  # not rank 0 of a data-parallel fit
            return
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(k.startswith("val_") for k in self.keys):
                self.keys += [f"val_{k}" for k in self.keys]
        if self._writer is None:
            self._writer = csv.DictWriter(self._file, fieldnames=["epoch"] + self.keys,
                                          delimiter=self.sep, lineterminator="\r\n")
            if self._header:
                self._writer.writeheader()
        row = {"epoch": epoch}
        row.update((k, logs.get(k, "NA")) for k in self.keys)
        self._writer.writerow(row)
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None and not self._file.closed:
            self._file.close()
        self._writer = None


class TerminateOnNaN(Callback):
    """Stops training at the first step whose loss is NaN or infinite
    (``raise_error=True``: raises ``RuntimeError`` instead)."""

    def __init__(self, raise_error: bool = False) -> None:
        super().__init__()
        self.raise_error = bool(raise_error)

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            if self.raise_error:
                raise RuntimeError(f"NaN or Inf loss encountered at batch {batch}. "
                                   f"Loss value: {loss}. Terminating training immediately.")
            _print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


_LAMBDA_HOOKS = ("on_epoch_begin", "on_epoch_end", "on_train_begin", "on_train_end",
                 "on_train_batch_begin", "on_train_batch_end", "on_batch_begin",
                 "on_batch_end")


class LambdaCallback(Callback):
    """A callback from functions: ``on_epoch_end(epoch, logs)``,
    ``on_train_batch_end(batch, logs)``, ``on_train_begin(logs)``, ..."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None,
                 on_train_end=None, on_train_batch_begin=None, on_train_batch_end=None,
                 **kwargs) -> None:
        super().__init__()
        unknown = sorted(set(kwargs) - set(_LAMBDA_HOOKS))
        if unknown:
            raise TypeError(f"LambdaCallback: {', '.join(unknown)} not supported by "
                            f"cnnfast (fit calls only {', '.join(_LAMBDA_HOOKS)})")
        given = dict(kwargs, on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end,
                     on_train_begin=on_train_begin, on_train_end=on_train_end,
                     on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end)
        for hook, fn in given.items():
            if fn is not None:
                if not callable(fn):
                    raise TypeError(f"LambdaCallback: {hook} must be callable, got {fn!r}")
                setattr(self, hook, fn)


def _learning_rate(model) -> float:
    if getattr(model, "optimizer", None) is None:
        raise RuntimeError("this callback needs a compiled model (an optimizer)")
    return float(model.optimizer.learning_rate)


class ReduceLROnPlateau(_MonitorCallback):
    """Multiplies the learning rate by ``factor`` when ``monitor`` has not improved for
    ``patience`` epochs (then waits ``cooldown`` epochs), never below ``min_lr``."""

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 verbose: int = 0, mode: str = "auto", min_delta: float = 1e-4,
                 cooldown: int = 0, min_lr: float = 0.0) -> None:
        super().__init__(monitor, mode, None, min_delta)
        if factor >= 1.0:
            raise ValueError("ReduceLROnPlateau does not support a factor >= 1.0. "
                             f"Received factor={factor}")
        self.factor = float(factor)
        self.patience = int(patience)
        self.verbose = verbose
        self.cooldown = int(cooldown)
        self.min_lr = float(min_lr)
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs=None):
        self.best = None
        self.cooldown_counter = 0
        self.wait = 0

    def on_epoch_end(self, epoch, logs=None):
        self._direction()
        logs = logs if logs is not None else {}
        logs["learning_rate"] = _learning_rate(self.model)
        current = self._monitored(logs, "Learning rate reduction")
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = _learning_rate(self.model)
                if old > np.float32(self.min_lr):
                    new = max(old * self.factor, self.min_lr)
                    self.model.optimizer.learning_rate = new
                    if self.verbose > 0:
                        _print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning "
                               f"rate to {new}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


class LearningRateScheduler(Callback):
    """Sets the learning rate at the start of each epoch to ``schedule(epoch, lr)``
    (or ``schedule(epoch)``)."""

    def __init__(self, schedule, verbose: int = 0) -> None:
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler: schedule must be callable, "
                            f"got {schedule!r}")
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        lr = _learning_rate(self.model)
        try:
            lr = self.schedule(epoch, lr)
        except TypeError:  # Keras: a one-argument schedule(epoch)
            lr = self.schedule(epoch)
        if isinstance(lr, bool) or not isinstance(lr, (float, int, np.floating, np.integer)):
            raise ValueError(f"The output of the `schedule` function should be a float. "
                             f"Got: {lr!r}")
        self.model.optimizer.learning_rate = float(lr)
        if self.verbose > 0:
            _print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to "
                   f"{float(lr)}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = _learning_rate(self.model)
