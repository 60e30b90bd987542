"""Keras 3 ``.weights.h5`` files in cnnfast: models trained in Keras (the fixtures in
tests/fixtures/keras, written by tests/fixtures/make_keras_weights.py with Keras 3 on
the PyTorch backend) predict the same in cnnfast; layers are matched in model order,
not by HDF5's alphabetical listing; mismatches are ValueErrors naming layer and shapes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from cnnfast import keras
from cnnfast.keras import layers

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "keras"

h5py = pytest.importorskip("h5py", reason="Keras .weights.h5 files need h5py "
                                          "(pip install h5py)")


def mnist_cnn(data_format=None):
    shape = (28, 28, 1) if data_format != "channels_first" else (1, 28, 28)
    kw = {} if data_format is None else {"data_format": data_format}
    return keras.Sequential([
        keras.Input(shape=shape),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu", **kw),
        layers.MaxPooling2D(pool_size=(2, 2), **kw),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu", **kw),
        layers.MaxPooling2D(pool_size=(2, 2), **kw),
        layers.Flatten(**kw),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ])


def deep_stack():
    stack = [keras.Input(shape=(8, 8, 2)),
             layers.Conv2D(3, 3, padding="same", activation="relu"),
             layers.AveragePooling2D(2), layers.Flatten()]
    stack += [layers.Dense(6 + i % 3, activation="tanh") for i in range(11)]
    stack += [layers.Dense(4, activation="softmax")]
    return keras.Sequential(stack)


def _fixture(name):
    path = FIXTURES / f"{name}.weights.h5"
    if not path.exists():
        pytest.skip(f"{path} is not next to the tests (installed without the source tree)")
    return path, np.load(FIXTURES / f"{name}_x.npy"), np.load(FIXTURES / f"{name}_y.npy")


@pytest.mark.parametrize("name,make", [("mnist_cnn", mnist_cnn), ("deep_stack", deep_stack)])
def test_a_model_trained_in_keras_predicts_the_same(name, make):
    path, x, expected = _fixture(name)
    model = make()
    model.load_weights(path)
    got = model.predict(x)
    assert np.max(np.abs(got - expected)) <= 1e-5


def test_layers_are_matched_in_model_order_not_hdf5_order():
    path, x, expected = _fixture("deep_stack")
    with h5py.File(path, "r") as f:
        listed = list(f["layers"])
        assert listed.index("dense_10") < listed.index("dense_2")  # what HDF5 lists
        last = f["layers/dense_11/vars/0"][()]
    model = deep_stack()
    model.load_weights(path)
    np.testing.assert_array_equal(model.layers[-1].kernel, last)


def test_channels_first_model_takes_keras_kernels_transposed():
    path, x, expected = _fixture("mnist_cnn")
    model = mnist_cnn("channels_first")
    model.load_weights(path)
    got = model.predict(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    assert np.max(np.abs(got - expected)) <= 1e-5


def test_save_weights_h5_round_trip_in_keras_layout(tmp_path):
    path, x, expected = _fixture("mnist_cnn")
    a = mnist_cnn()
    a.load_weights(path)
    a.save_weights(tmp_path / "copy.weights.h5")
    with h5py.File(tmp_path / "copy.weights.h5", "r") as f:
        assert sorted(f["layers"]) == sorted(
            ["conv2d", "conv2d_1", "max_pooling2d", "max_pooling2d_1", "flatten",
             "dropout", "dense"])
        assert f["layers/conv2d_1/vars/0"].shape == (3, 3, 32, 64)
    b = mnist_cnn()
    b.load_weights(tmp_path / "copy.weights.h5")
    np.testing.assert_array_equal(a.predict(x), b.predict(x))


def test_mismatched_models_are_refused_naming_layer_and_shapes():
    path, _, _ = _fixture("mnist_cnn")
    wider = keras.Sequential([
        keras.Input(shape=(28, 28, 1)), layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(2), layers.Conv2D(48, 3, activation="relu"),
        layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(10)])
    before = wider.get_weights()
    with pytest.raises(ValueError, match=r"conv2d_1.*weight 0: the model has shape "
                                         r"\(3, 3, 32, 48\).*the file has \(3, 3, 32, 64\)"):
        wider.load_weights(path)
    for a, b in zip(before, wider.get_weights()):  # nothing assigned
        np.testing.assert_array_equal(a, b)
    extra = keras.Sequential([keras.Input(shape=(28, 28, 1)), layers.Conv2D(32, 3),
                              layers.Flatten(), layers.Dense(10), layers.Dense(10)])
    with pytest.raises(ValueError, match="holds weights for 3 layers.*has 3 layers with "
                                         "weights.*not in the file.*dense_1"):
        extra.load_weights(path)
    no_bias = keras.Sequential([keras.Input(shape=(28, 28, 1)),
                                layers.Conv2D(32, 3, use_bias=False), layers.MaxPooling2D(2),
                                layers.Conv2D(64, 3), layers.MaxPooling2D(2),
                                layers.Flatten(), layers.Dense(10)])
    with pytest.raises(ValueError, match="has 1 weight arrays, the file has 2"):
        no_bias.load_weights(path)


def test_a_missing_h5py_is_a_clear_import_error(monkeypatch, tmp_path):
    path, _, _ = _fixture("mnist_cnn")
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match="pip install h5py"):
        mnist_cnn().load_weights(path)
    with pytest.raises(ImportError, match="pip install h5py"):
        mnist_cnn().save_weights(tmp_path / "w.weights.h5")
