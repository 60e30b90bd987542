"""Reliability of the model's files and of training under Ctrl-C: atomic writes
(``cnnfast._fileio``), ``load_weights`` on damaged or foreign files, and a
``KeyboardInterrupt`` at any point of ``fit`` / ``train_on_batch``.

Interrupts are delivered deterministically from inside a patched forward or optimizer
update, either as a real SIGINT (``signal.raise_signal``, handled by Python's default
handler) or as a raised ``KeyboardInterrupt``.
"""

from __future__ import annotations

import io
import os
import signal
import stat
import threading
import zipfile

import numpy as np
import pytest

from cnnfast import _sigint, layers, models, optimizers, utils
from cnnfast._fileio import atomic_write, save_figure
from cnnfast.progress import Progbar

BATCH = 4


def _model(seed=0):
    utils.set_random_seed(seed)
    model = models.Sequential([
        layers.Conv2D(3, 3, padding="same", activation="relu", input_shape=(6, 6, 2)),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(5, activation="relu"),
        layers.Dense(4, activation="softmax"),
    ], dtype="float64")
    model.compile(optimizer=optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    return model


def _data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 6, 6, 2)), rng.integers(0, 4, n)


def _state(model):
    """Weights and optimizer state, copied."""
    opt = model.optimizer
    return {"weights": model.get_weights(), "iterations": opt.iterations,
            "m": [a.copy() for a in opt._m], "v": [a.copy() for a in opt._v]}


def _assert_same_state(a, b):
    assert a["iterations"] == b["iterations"]
    for key in ("weights", "m", "v"):
        assert len(a[key]) == len(b[key])
        for x, y in zip(a[key], b[key]):
            np.testing.assert_array_equal(x, y)


def _reference_after(steps):
    """State of a fresh model after ``steps`` train_on_batch calls on fit's first batches
    (shuffle=False)."""
    model = _model()
    x, y = _data()
    for k in range(steps):
        model.train_on_batch(x[k * BATCH:(k + 1) * BATCH], y[k * BATCH:(k + 1) * BATCH])
    return _state(model)


@pytest.fixture
def default_sigint():
    """Python's own SIGINT handler for the test, and the one before it put back after."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _interrupt_on_call(obj, name, when, how="signal"):
    """Patch ``obj.name`` so that its call number ``when`` (from 1) is interrupted."""
    original = getattr(obj, name)
    calls = [0]

    def patched(*args, **kwargs):
        calls[0] += 1
        if calls[0] == when:
            if how == "signal":
                signal.raise_signal(signal.SIGINT)
            else:
                raise KeyboardInterrupt
        return original(*args, **kwargs)

    setattr(obj, name, patched)
    return lambda: delattr(obj, name)


# ---- Ctrl-C in fit / train_on_batch --------------------------------------------------

@pytest.mark.parametrize("how", ["signal", "raise"])
def test_interrupt_in_forward_leaves_the_weights_of_the_completed_steps(default_sigint, how):
    model = _model()
    x, y = _data()
    k = 3  # steps completed before the interrupt
    undo = _interrupt_on_call(model.layers[-2], "forward", k + 1, how)
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    undo()
    _assert_same_state(_state(model), _reference_after(k))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_interrupt_in_backward_propagates_at_once(default_sigint):
    model = _model()
    x, y = _data()
    undo = _interrupt_on_call(model.layers[-2], "backward", 2, "raise")
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=BATCH, shuffle=False, verbose=0)
    undo()
    _assert_same_state(_state(model), _reference_after(1))


@pytest.mark.parametrize("entry", ["fit", "train_on_batch"])
def test_sigint_during_the_updates_completes_the_step_then_raises(default_sigint, entry):
    model = _model()
    x, y = _data()
    opt = model.optimizer
    original = opt._update
    seen = []

    def update(i, p, g, tmp):
        # SIGINT after the first parameter of step 3 is updated, before the others
        if opt.iterations == 3 and i == 1:
            signal.raise_signal(signal.SIGINT)
        seen.append((opt.iterations, i))
        original(i, p, g, tmp)

    opt._update = update
    n_params = len(model.trainable_weights)
    with pytest.raises(KeyboardInterrupt):
        if entry == "fit":
            model.fit(x, y, batch_size=BATCH, shuffle=False, verbose=0)
        else:
            for k in range(6):
                model.train_on_batch(x[k * BATCH:(k + 1) * BATCH],
                                     y[k * BATCH:(k + 1) * BATCH])
    del opt._update
    # every parameter of step 3 was updated, nothing of step 4 ran
    assert [i for it, i in seen if it == 3] == list(range(n_params))
    assert max(it for it, _ in seen) == 3
    _assert_same_state(_state(model), _reference_after(3))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_fit_after_an_interrupt_trains_normally(default_sigint):
    model = _model()
    x, y = _data()
    undo = _interrupt_on_call(model.layers[-2], "forward", 8)
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=BATCH, epochs=3, shuffle=False, verbose=0)
    undo()
    assert len(model.history.epoch) == 1  # the epoch that finished before Ctrl-C
    assert model.optimizer.iterations == 7
    hist = model.fit(x, y, batch_size=BATCH, epochs=4, verbose=0)
    assert hist.epoch == [0, 1, 2, 3] and model.history is hist
    assert model.optimizer.iterations == 7 + 4 * 6
    loss = hist.history["loss"]
    assert loss[-1] < loss[0]


def test_interrupted_bar_line_is_ended():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    bar = Progbar(10, stream=out, interval=0.0)
    bar.update(3, [("loss", 1.0)])
    bar.abort()
    bar.update(10, [("loss", 0.5)])  # ignored after abort
    text = out.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1 and "10/10" not in text


def test_fit_outside_the_main_thread_leaves_signals_alone():
    model = _model()
    x, y = _data()
    errors = []

    def run():
        try:
            model.fit(x, y, batch_size=BATCH, verbose=0)
        except BaseException as e:  # reported to the main thread below
            errors.append(e)

    before = signal.getsignal(signal.SIGINT)
    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert not errors and model.optimizer.iterations == 6
    assert signal.getsignal(signal.SIGINT) is before


def test_held_sigint_goes_to_a_custom_handler(default_sigint):
    received = []

    def handler(signum, frame):
        received.append(signum)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        with _sigint.SigintDeferred():
            signal.raise_signal(signal.SIGINT)
            assert received == []  # held inside the block
        assert received == [signal.SIGINT]
        assert signal.getsignal(signal.SIGINT) is handler
    finally:
        signal.signal(signal.SIGINT, previous)


# ---- atomic writes ------------------------------------------------------------------

def test_save_weights_keeps_the_exact_name_and_loads_back(tmp_path):
    model = _model()
    path = tmp_path / "weights"  # no suffix: none is added
    model.save_weights(path)
    assert os.listdir(tmp_path) == ["weights"]
    other = _model(seed=1)
    other.load_weights(path)
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("error", [KeyboardInterrupt, OSError(28, "No space left on device")])
def test_interrupted_save_leaves_the_previous_file_intact(tmp_path, monkeypatch, error):
    model = _model()
    path = tmp_path / "w.npz"
    model.save_weights(path)
    before = path.read_bytes()
    model.fit(*_data(), batch_size=BATCH, verbose=0)  # new weights to save

    real_savez = np.savez

    def failing_savez(f, **arrays):
        f.write(b"PK\x03\x04 half an archive")  # part of the new file is written...
        raise error  # ...then the save is interrupted

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(type(error) if isinstance(error, BaseException) else error):
        model.save_weights(path)
    monkeypatch.setattr(np, "savez", real_savez)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["w.npz"]  # no temporary file left behind
    _model().load_weights(path)


def test_atomic_write_permissions_symlinks_and_text(tmp_path):
    target = tmp_path / "out.json"
    with atomic_write(target, "w", encoding="utf-8") as f:
        f.write("{}\n")
    assert target.read_text() == "{}\n"
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    target.chmod(0o640)
    link = tmp_path / "link.json"
    link.symlink_to(target)
    with atomic_write(link, "w") as f:
        f.write("[]\n")
    assert link.is_symlink() and target.read_text() == "[]\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # an existing file's mode is kept
    assert sorted(os.listdir(tmp_path)) == ["link.json", "out.json"]


def test_atomic_write_errors_name_the_target(tmp_path):
    missing = tmp_path / "no-such-dir" / "w.npz"
    with pytest.raises(FileNotFoundError) as info:
        with atomic_write(missing) as f:
            f.write(b"x")
    assert info.value.filename == str(missing)
    (tmp_path / "adir").mkdir()
    with pytest.raises(IsADirectoryError) as info:
        with atomic_write(tmp_path / "adir") as f:
            f.write(b"x")
    assert info.value.filename == str(tmp_path / "adir")
    assert os.listdir(tmp_path) == ["adir"] and not os.listdir(tmp_path / "adir")
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "x", "a"):
            pass


def test_save_figure_follows_matplotlibs_naming(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure()
    try:
        assert save_figure(fig, tmp_path / "a.png") == str(tmp_path / "a.png")
        assert save_figure(fig, tmp_path / "b") == str(tmp_path / "b.png")
    finally:
        plt.close(fig)
    for name in ("a.png", "b.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(os.listdir(tmp_path)) == ["a.png", "b.png"]


# ---- load_weights on bad files ------------------------------------------------------

@pytest.fixture
def trained(tmp_path):
    """(a model with optimizer state, a good weights file of a different model state)."""
    model = _model()
    x, y = _data()
    path = tmp_path / "w.npz"
    model.save_weights(path)
    model.fit(x, y, batch_size=BATCH, verbose=0)  # weights and Adam moments differ now
    return model, path


def _rewrite(src, dst, change):
    """Copy weights file ``src`` to ``dst`` with ``change(dict of arrays)`` applied."""
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    with open(dst, "wb") as f:
        np.savez(f, **arrays)


def _corrupt_array_bytes(path, dst):
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        info = zf.getinfo("layer0.w0.npy")
    # past the local header and the .npy header: inside the array data
    offset = info.header_offset + 30 + len(info.filename) + 128 + 8
    data[offset] ^= 0xFF
    dst.write_bytes(bytes(data))


def _float32_kernel(a):
    a["layer0.w0"] = a["layer0.w0"].astype(np.float32)


def _wrong_shape_last(a):
    a["layer4.w1"] = np.zeros(7)


def _drop_last(a):
    del a["layer4.w1"]


def _add_extra(a):
    a["stray"] = np.zeros(3)


def _bad_meta(a):
    a["__meta__"] = np.array("{not json")


def _future_version(a):
    import json

    meta = json.loads(str(a["__meta__"]))
    meta["version"] = 99
    a["__meta__"] = np.array(json.dumps(meta))


def _int_meta(a):
    a["__meta__"] = np.arange(3)


def _make(kind, path, dst):
    if kind == "truncated":
        dst.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    elif kind == "truncated-tail":
        dst.write_bytes(path.read_bytes()[:-10])
    elif kind == "corrupted":
        _corrupt_array_bytes(path, dst)
    elif kind == "not-zip":
        dst.write_bytes(b"this is a text file\n")
    elif kind == "empty":
        dst.write_bytes(b"")
    elif kind == "npy":
        with open(dst, "wb") as f:
            np.save(f, np.zeros(3))
    else:
        _rewrite(path, dst, kind)


@pytest.mark.parametrize("kind, message", [
    ("truncated", "truncated or corrupted"),
    ("truncated-tail", "truncated or corrupted"),
    ("corrupted", r"array layer0\.w0 is truncated or corrupted \(Bad CRC-32"),
    ("not-zip", r"not a cnnfast weights file \(not a zip/\.npz archive\)"),
    ("empty", r"the file is empty"),
    ("npy", r"a single \.npy array"),
    (_float32_kernel, r"array layer0\.w0 has dtype float32, but the file declares float64"),
    (_wrong_shape_last, r"array layer4\.w1 has shape \(7,\), but the file describes it as \(4,\)"),
    (_drop_last, r"missing array\(s\) layer4\.w1"),
    (_add_extra, r"unexpected array\(s\) stray"),
    (_bad_meta, "unreadable weights description"),
    (_future_version, "weights format version 99 is not supported"),
    (_int_meta, "unreadable weights description"),
], ids=lambda v: v if isinstance(v, str) and " " not in v else getattr(v, "__name__", None))
def test_bad_weights_file_raises_and_changes_nothing(trained, tmp_path, kind, message):
    model, path = trained
    bad = tmp_path / "bad.npz"
    _make(kind, path, bad)
    before = _state(model)
    with pytest.raises(ValueError, match=message) as info:
        model.load_weights(bad)
    assert str(info.value).startswith(str(bad) + ": ")
    _assert_same_state(_state(model), before)
    model.load_weights(path)  # the good file still loads
    assert model.optimizer.iterations == before["iterations"]


def test_weights_file_for_another_model_changes_nothing(trained, tmp_path):
    model, _ = trained
    other = models.Sequential([
        layers.Conv2D(3, 3, padding="same", activation="relu", input_shape=(6, 6, 2)),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(5, activation="relu"),
        layers.Dense(3, activation="softmax"),
    ], dtype="float64")
    path = tmp_path / "other.npz"
    other.save_weights(path)
    before = _state(model)
    with pytest.raises(ValueError, match="does not match this model's layer"):
        model.load_weights(path)
    _assert_same_state(_state(model), before)


def test_missing_weights_file_is_a_file_not_found_error(trained, tmp_path):
    model, _ = trained
    before = _state(model)
    with pytest.raises(FileNotFoundError):
        model.load_weights(tmp_path / "nope.npz")
    _assert_same_state(_state(model), before)


def test_float32_file_loads_into_a_float64_model(trained, tmp_path):
    model, _ = trained
    utils.set_random_seed(3)
    small = models.Sequential([
        layers.Conv2D(3, 3, padding="same", activation="relu", input_shape=(6, 6, 2)),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(5, activation="relu"),
        layers.Dense(4, activation="softmax"),
    ])
    path = tmp_path / "f32.npz"
    small.save_weights(path)
    model.load_weights(path)
    for a, b in zip(model.get_weights(), small.get_weights()):
        assert a.dtype == np.float64
        np.testing.assert_array_equal(a, b.astype(np.float64))
