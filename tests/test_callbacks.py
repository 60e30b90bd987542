"""Keras's callbacks in ``Sequential.fit``: the hooks and their logs, each callback's
semantics (Keras's arguments and defaults), ``stop_training``, a settable learning
rate, and refusals of what cnnfast does not implement."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from cnnfast import callbacks, layers, models, optimizers, utils


def _data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6, 6, 1)).astype(np.float32)
    y = utils.to_categorical(rng.integers(0, 3, n), 3)
    return x, y


def _model(optimizer="adam"):
    utils.set_random_seed(0)
    m = models.Sequential([layers.Input((6, 6, 1)), layers.Conv2D(2, 3, activation="relu"),
                           layers.Flatten(), layers.Dense(3, activation="softmax")])
    m.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])
    return m


class Recorder(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append(("train_begin", self.params.get("steps")))

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(("epoch_begin", epoch))

    def on_train_batch_begin(self, batch, logs=None):
        self.calls.append(("batch_begin", batch))

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(("batch_end", batch, sorted(logs)))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch_end", epoch, sorted(logs)))

    def on_train_end(self, logs=None):
        self.calls.append(("train_end", sorted(logs)))


def test_hooks_are_called_in_keras_order_with_keras_logs():
    x, y = _data(40)
    m = _model()
    rec = Recorder()
    hist = m.fit(x, y, batch_size=16, epochs=2, validation_split=0.2, verbose=0,
                 callbacks=[rec])
    assert rec.model is m
    per_epoch = lambda e: ([("epoch_begin", e)] + [  # noqa: E731
        c for b in range(2) for c in (("batch_begin", b),
                                      ("batch_end", b, ["accuracy", "loss"]))]
        + [("epoch_end", e, ["accuracy", "loss", "val_accuracy", "val_loss"])])
    assert rec.calls == ([("train_begin", 2)] + per_epoch(0) + per_epoch(1)
                         + [("train_end", ["accuracy", "loss", "val_accuracy", "val_loss"])])
    assert isinstance(hist, callbacks.History) and m.history is hist
    assert hist.epoch == [0, 1] and len(hist.history["val_loss"]) == 2


def test_a_history_given_in_callbacks_is_the_one_returned():
    x, y = _data()
    h = callbacks.History()
    assert _model().fit(x, y, epochs=1, verbose=0, callbacks=[h]) is h
    assert h.history["loss"]


def test_stop_training_is_checked_after_every_step():
    x, y = _data(64)
    m = _model()
    stop = callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: setattr(m, "stop_training", batch == 1))
    seen = []
    count = callbacks.LambdaCallback(on_train_batch_begin=lambda b, logs: seen.append(b))
    hist = m.fit(x, y, batch_size=8, epochs=5, verbose=0, callbacks=[stop, count])
    assert seen == [0, 1] and hist.epoch == [0] and m.optimizer.iterations == 2


def test_early_stopping_patience_and_restore_best_weights():
    x, y = _data()
    m = _model()
    losses = iter([1.0, 0.5, 0.6, 0.7, 0.8, 0.9])
    weights_at = []

    class Fake(callbacks.Callback):  # a controlled monitored value, before EarlyStopping
        def on_epoch_end(self, epoch, logs=None):
            logs["score"] = next(losses)
            weights_at.append(self.model.get_weights())

    es = callbacks.EarlyStopping(monitor="score", mode="min", patience=2,
                                 restore_best_weights=True)
    hist = m.fit(x, y, epochs=6, verbose=0, callbacks=[Fake(), es])
    # best at epoch 1; epochs 2 and 3 do not improve: patience 2 stops after epoch 3
    assert hist.epoch == [0, 1, 2, 3] and es.stopped_epoch == 3 and es.best_epoch == 1
    for a, b in zip(m.get_weights(), weights_at[1]):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_min_delta_baseline_start_from_epoch_and_auto_mode():
    es = callbacks.EarlyStopping(monitor="val_accuracy", min_delta=0.1)
    assert es._direction() is False  # accuracy is maximised
    assert es._is_improvement(0.75, 0.6) and not es._is_improvement(0.65, 0.6)
    assert callbacks.EarlyStopping()._direction() is True  # val_loss
    with pytest.raises(ValueError, match="mode='max'"):
        callbacks.EarlyStopping(monitor="f1")._direction()
    with pytest.raises(ValueError, match="mode"):
        callbacks.EarlyStopping(mode="biggest")
    x, y = _data()

    class Fake(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["score"] = [1.0, 0.9, 0.95, 0.95, 0.95, 0.95][epoch]

    def run(**kwargs):
        es = callbacks.EarlyStopping(monitor="score", patience=2, mode="min", **kwargs)
        return _model().fit(x, y, epochs=6, verbose=0, callbacks=[Fake(), es]).epoch

    # Keras: improvements that do not beat the baseline leave the patience counting
    assert run(baseline=0.5) == [0, 1, 2]
    assert run() == [0, 1, 2, 3]
    es = callbacks.EarlyStopping(monitor="loss", min_delta=100.0, start_from_epoch=2)
    hist = _model().fit(x, y, epochs=5, verbose=0, callbacks=[es])
    assert hist.epoch == [0, 1, 2, 3]


def test_early_stopping_warns_when_the_metric_is_missing():
    x, y = _data()
    with pytest.warns(UserWarning, match="val_loss.*not available"):
        hist = _model().fit(x, y, epochs=2, verbose=0,
                            callbacks=[callbacks.EarlyStopping()])
    assert hist.epoch == [0, 1]


def test_model_checkpoint_formats_names_and_saves_best_only(tmp_path):
    x, y = _data()
    m = _model()
    vals = iter([0.5, 0.4, 0.45])

    class Fake(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["val_loss"] = next(vals)

    ck = callbacks.ModelCheckpoint(str(tmp_path / "m_{epoch:02d}_{val_loss:.2f}.keras"),
                                   save_best_only=True)
    m.fit(x, y, epochs=3, verbose=0, callbacks=[Fake(), ck])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m_01_0.50.keras",
                                                          "m_02_0.40.keras"]
    loaded = models.load_model(tmp_path / "m_02_0.40.keras")
    assert loaded.optimizer.iterations == 4  # 2 epochs of 2 steps (batch 32)


def test_model_checkpoint_weights_only_and_save_freq(tmp_path):
    x, y = _data()
    m = _model()
    ck = callbacks.ModelCheckpoint(tmp_path / "w.weights.npz", save_weights_only=True)
    m.fit(x, y, epochs=1, verbose=0, callbacks=[ck])
    other = _model()
    other.load_weights(tmp_path / "w.weights.npz")
    for a, b in zip(m.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
    ck = callbacks.ModelCheckpoint(str(tmp_path / "s{epoch}_{batch}.keras"), save_freq=3)
    _model().fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[ck])
    assert sorted(p.name for p in tmp_path.glob("s*")) == ["s1_3.keras", "s1_6.keras"]


def test_model_checkpoint_refuses_what_it_cannot_write(tmp_path):
    with pytest.raises(ValueError, match=r"\.keras"):
        callbacks.ModelCheckpoint(tmp_path / "m.h5")
    with pytest.raises(ValueError, match="save_freq"):
        callbacks.ModelCheckpoint(tmp_path / "m.keras", save_freq="batch")
    with pytest.raises(TypeError, match="options"):
        callbacks.ModelCheckpoint(tmp_path / "m.keras", options=None)


def test_csv_logger_rows_separator_and_append(tmp_path):
    x, y = _data()
    path = tmp_path / "log.tsv"
    _model().fit(x, y, epochs=2, verbose=0, validation_split=0.25,
                 callbacks=[callbacks.CSVLogger(path, separator="\t")])
    rows = list(csv.reader(path.open(), delimiter="\t"))
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [r[0] for r in rows[1:]] == ["0", "1"]
    _model().fit(x, y, epochs=1, verbose=0, validation_split=0.25,
                 callbacks=[callbacks.CSVLogger(path, separator="\t", append=True)])
    rows = list(csv.reader(path.open(), delimiter="\t"))
    assert len(rows) == 4 and rows[3][0] == "0"  # one header, three rows
    # without validation data Keras still writes val_ columns, as NA
    path2 = tmp_path / "log.csv"
    _model().fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.CSVLogger(path2)])
    rows = list(csv.reader(path2.open()))
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert rows[1][3:] == ["NA", "NA"]


def test_terminate_on_nan_stops_at_the_step(capsys):
    x, y = _data(64)
    x[20] = np.nan
    m = _model("sgd")
    hist = m.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0,
                 callbacks=[callbacks.TerminateOnNaN()])
    assert "Batch 2: Invalid loss, terminating training" in capsys.readouterr().out
    assert m.optimizer.iterations == 3 and hist.epoch == [0]
    with pytest.raises(RuntimeError, match="NaN or Inf loss encountered at batch 2"):
        _model("sgd").fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0,
                          callbacks=[callbacks.TerminateOnNaN(raise_error=True)])


def test_lambda_callback_refuses_hooks_fit_does_not_call():
    with pytest.raises(TypeError, match="on_test_begin"):
        callbacks.LambdaCallback(on_test_begin=print)
    with pytest.raises(TypeError, match="callable"):
        callbacks.LambdaCallback(on_epoch_end=3)


def test_learning_rate_is_settable_and_used_by_the_next_step():
    p = np.ones(3, np.float32)
    g = np.ones(3, np.float32)
    opt = optimizers.SGD(learning_rate=0.1)
    opt.apply([p], [g])
    opt.learning_rate = 0.5
    opt.apply([p], [g])
    np.testing.assert_allclose(p, 1 - 0.1 - 0.5, rtol=1e-6)
    with pytest.raises(ValueError, match="learning_rate"):
        opt.learning_rate = -1.0
    with pytest.raises(TypeError, match="LearningRateScheduler"):
        opt.learning_rate = lambda step: 0.1


def test_learning_rate_scheduler_sets_each_epoch_and_logs_it():
    x, y = _data()
    m = _model(optimizers.SGD(learning_rate=0.1))
    seen = []
    spy = callbacks.LambdaCallback(
        on_epoch_begin=lambda e, logs: seen.append(m.optimizer.learning_rate))
    hist = m.fit(x, y, epochs=3, verbose=0, callbacks=[
        callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5), spy])
    assert seen == [0.05, 0.025, 0.0125] and hist.history["learning_rate"] == seen
    m.fit(x, y, epochs=1, verbose=0,
          callbacks=[callbacks.LearningRateScheduler(lambda epoch: 0.3)])
    assert m.optimizer.learning_rate == 0.3
    with pytest.raises(ValueError, match="should be a float"):
        m.fit(x, y, epochs=1, verbose=0,
              callbacks=[callbacks.LearningRateScheduler(lambda epoch, lr: "fast")])


def test_reduce_lr_on_plateau_factor_patience_cooldown_min_lr():
    x, y = _data()
    m = _model(optimizers.SGD(learning_rate=1.0))
    scores = iter([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    lrs = []

    class Fake(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["score"] = next(scores)

    rl = callbacks.ReduceLROnPlateau(monitor="score", mode="min", factor=0.5, patience=1,
                                     cooldown=2, min_lr=0.2)
    spy = callbacks.LambdaCallback(
        on_epoch_end=lambda e, logs: lrs.append(m.optimizer.learning_rate))
    m.fit(x, y, epochs=7, verbose=0, callbacks=[Fake(), rl, spy])
    # epoch 0 sets best; 1 reduces (patience 1); 2 is cooldown (Keras counts the cooldown
    # down before it tests it, so cooldown=2 rests one epoch); 3 reduces; 4 rests;
    # 5 reduces to max(0.125, min_lr)
    assert lrs == [1.0, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2]
    with pytest.raises(ValueError, match="factor >= 1.0"):
        callbacks.ReduceLROnPlateau(factor=1.5)


def test_callbacks_keras_has_and_cnnfast_lacks_are_refused_by_name():
    with pytest.raises(AttributeError, match="keras.callbacks.TensorBoard"):
        callbacks.TensorBoard  # noqa: B018
    with pytest.raises(TypeError, match="Callback"):
        _model().fit(*_data(), epochs=1, verbose=0, callbacks=[print])
    with pytest.raises(TypeError, match="restore_best"):
        callbacks.EarlyStopping(restore_best=True)


def test_non_finite_loss_without_terminate_on_nan_still_ends_the_epoch():
    x, y = _data(32)
    x[0] = np.inf
    m = _model("sgd")
    hist = m.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    assert hist.epoch == [0] and m.optimizer.iterations == 4
    assert not math.isfinite(hist.history["loss"][0])
