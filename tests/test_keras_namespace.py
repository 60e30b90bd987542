"""``cnnfast.keras``: laid out like Keras, refuses Keras names it lacks, stays out of a
plain ``import cnnfast``; Keras programs run with only their imports changed (the
keras.io "Simple MNIST convnet" in examples/, a program with callbacks)."""

from __future__ import annotations

import csv
import os
import runpy
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import cnnfast
from cnnfast import keras
from cnnfast.keras import layers

ROOT = Path(__file__).resolve().parents[1]


def test_the_namespace_is_laid_out_like_keras():
    import cnnfast.keras.layers as keras_layers
    from cnnfast.keras.datasets import mnist

    assert keras.Sequential is cnnfast.models.Sequential
    assert keras.Input is cnnfast.layers.Input
    assert keras_layers.Conv2D is layers.Conv2D is cnnfast.layers.Conv2D
    assert mnist.load_data is cnnfast.datasets.mnist.load_data
    assert keras.models.load_model is cnnfast.models.load_model
    assert keras.callbacks.EarlyStopping is cnnfast.callbacks.EarlyStopping
    assert keras.utils.to_categorical is cnnfast.utils.to_categorical
    for module, name in [("optimizers", "Adam"), ("losses", "CategoricalCrossentropy"),
                         ("initializers", "HeNormal"), ("activations", "relu"),
                         ("saving", "load_model"), ("layers", "MaxPooling2D")]:
        assert hasattr(getattr(keras, module), name), (module, name)


@pytest.mark.parametrize("expr,name", [
    ("keras.Model", "keras.Model"),
    ("keras.ops", "keras.ops"),
    ("layers.BatchNormalization", "keras.layers.BatchNormalization"),
    ("keras.callbacks.TensorBoard", "keras.callbacks.TensorBoard"),
    ("keras.optimizers.AdamW", "keras.optimizers.AdamW"),
    ("keras.datasets.cifar10", "keras.datasets.cifar10"),
])
def test_keras_names_cnnfast_lacks_are_refused_by_name(expr, name):
    with pytest.raises(AttributeError, match=f"{name} is not implemented by cnnfast"):
        eval(expr)


def test_importing_cnnfast_does_not_import_the_keras_namespace(tmp_path):
    code = ("import sys, cnnfast; "
            "print(sorted(m for m in sys.modules if m.startswith(('cnnfast.keras', "
            "'cnnfast.models', 'cnnfast.callbacks', 'cnnfast.saving', 'h5py'))))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(cnnfast.__file__).parents[1])] + sys.path))
    # from tmp_path: ``-c`` puts the working directory first on sys.path
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True, cwd=tmp_path).stdout
    assert out.strip() == "[]"


def _learnable_mnist(n_train=512, n_test=128, seed=0):
    """MNIST-shaped uint8 digits a convnet can learn: class k lights a square at a
    position of its own."""
    rng = np.random.default_rng(seed)

    def make(n):
        y = rng.integers(0, 10, n).astype(np.uint8)
        x = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, k in enumerate(y):
            r, c = 2 + 8 * (k // 4), 2 + 8 * (k % 4)
            x[i, r:r + 6, c:c + 6] = 255
        return x, y

    return make(n_train), make(n_test)


def test_the_keras_io_mnist_convnet_runs_unchanged(monkeypatch, capsys):
    # the script as shipped (15 epochs) on a small learnable stand-in for MNIST, seeded
    # (the script itself draws unseeded weights and dropout masks)
    monkeypatch.setattr(cnnfast.datasets.mnist, "load_data", lambda: _learnable_mnist())
    cnnfast.utils.set_random_seed(0)
    script = ROOT / "examples" / "mnist_convnet.py"
    if not script.exists():
        pytest.skip("examples/ is not next to the tests")
    source = script.read_text()
    assert "from cnnfast import keras\nfrom cnnfast.keras import layers\n" in source
    namespace = runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    assert "x_train shape: (512, 28, 28, 1)" in out and "Epoch 15/15" in out
    assert "Total params: 34,826" in out
    accuracy = float(out.split("Test accuracy:")[1].split()[0])
    # it learns (chance: 0.1): 60 Adam steps reach 0.898-0.914 on 128 test images over
    # seeds 0-5 (2026-12-07, Xeon), so the bound leaves room for other SIMD levels' bits
    assert accuracy > 0.85
    assert len(namespace["model"].history.history["val_accuracy"]) == 15


CALLBACKS_PROGRAM = """
from cnnfast import keras
from cnnfast.keras import layers

keras.utils.set_random_seed(1)
(x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
x_train = x_train.astype("float32")[..., None] / 255
y_train = keras.utils.to_categorical(y_train, 10)

model = keras.Sequential([
    keras.Input(shape=(28, 28, 1)),
    layers.Conv2D(8, 3, activation="relu"),
    layers.MaxPooling2D(2),
    layers.Flatten(),
    layers.Dense(10, activation="softmax"),
])
model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.Adam(1e-3),
              metrics=["accuracy"])
callbacks = [
    keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, min_delta=5.0,
                                  restore_best_weights=True, verbose=1),
    keras.callbacks.ModelCheckpoint("ckpt/model_{epoch:02d}.keras", monitor="val_loss",
                                    save_best_only=True),
    keras.callbacks.CSVLogger("training.csv"),
]
history = model.fit(x_train, y_train, batch_size=64, epochs=20, validation_split=0.2,
                    callbacks=callbacks, verbose=0)
best = keras.models.load_model("ckpt/model_01.keras")
"""


def test_a_keras_program_with_callbacks_runs(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(cnnfast.datasets.mnist, "load_data", lambda: _learnable_mnist())
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(textwrap.dedent(CALLBACKS_PROGRAM), "callbacks program", "exec"),
         namespace)
    history = namespace["history"]
    # min_delta=5 makes only the first epoch count as an improvement: patience 2
    # stops after the third, and the weights go back to the first epoch's
    assert history.epoch == [0, 1, 2]
    assert "Epoch 3: early stopping" in capsys.readouterr().out
    val = history.history["val_loss"]
    improved = [e for e in range(3) if e == 0 or val[e] < min(val[:e])]
    assert sorted(os.listdir("ckpt")) == [f"model_{e + 1:02d}.keras" for e in improved]
    rows = list(csv.DictReader(open("training.csv")))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert [float(r["val_loss"]) for r in rows] == pytest.approx(history.history["val_loss"])
    x = namespace["x_train"][:32]
    np.testing.assert_array_equal(namespace["model"].predict(x),
                                  namespace["best"].predict(x))
