"""Whole-model files: ``model.save("m.keras")`` / ``load_model``: a bit-identical round
trip that goes on training exactly as the saved model would, atomic writes, and
loading that refuses unsafe or malformed archives with a clear ValueError."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from cnnfast import layers, models, optimizers, utils


def _model(optimizer="adam", dtype="float32", data_format="channels_last"):
    utils.set_random_seed(3)
    shape = (10, 10, 2) if data_format == "channels_last" else (2, 10, 10)
    m = models.Sequential([
        layers.Input(shape),
        layers.Conv2D(4, 3, padding="same", activation="relu", data_format=data_format),
        layers.MaxPooling2D(2, data_format=data_format),
        layers.Conv2D(3, (2, 2), strides=2, use_bias=False, data_format=data_format),
        layers.AveragePooling2D(1, data_format=data_format),
        layers.MinPooling2D(1, data_format=data_format),
        layers.Flatten(data_format=data_format),
        layers.Dropout(0.25, seed=11),
        layers.Dense(8, activation="tanh"),
        layers.Activation("relu"),
        layers.Dense(3, activation="softmax"),
    ], name="saved_net", dtype=dtype)
    m.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["acc"])
    return m


def _data(shape=(10, 10, 2)):
    rng = np.random.default_rng(7)
    return (rng.standard_normal((40,) + shape).astype(np.float32),
            utils.to_categorical(rng.integers(0, 3, 40), 3))


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop", "sgd",
                                       optimizers.SGD(0.05, momentum=0.9, nesterov=True)])
def test_training_goes_on_exactly_after_save_and_load(tmp_path, optimizer):
    x, y = _data()
    straight = _model(optimizer)
    straight.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    straight.save(tmp_path / "m.keras")
    straight.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)

    resumed = models.load_model(tmp_path / "m.keras")
    assert resumed.optimizer.iterations == 10
    resumed.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert resumed.optimizer.iterations == straight.optimizer.iterations == 20
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype,data_format", [("float32", "channels_last"),
                                               ("float64", "channels_first")])
def test_loaded_model_predicts_bit_identically_with_the_same_config(tmp_path, dtype,
                                                                    data_format):
    m = _model(dtype=dtype, data_format=data_format)
    x, y = _data(m.input_shape[1:])
    m.fit(x, y, batch_size=8, epochs=1, verbose=0)
    m.save(tmp_path / "m.keras")
    n = models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(m.predict(x), n.predict(x))
    assert n.name == "saved_net" and n.dtype == np.dtype(dtype)
    assert [type(a) for a in n.layers] == [type(b) for b in m.layers]
    assert [a.name for a in n.layers] == [b.name for b in m.layers]
    assert n.metrics_names == ["loss", "acc"]
    assert n.layers[2].strides == (2, 2) and not n.layers[2].use_bias
    assert n.layers[0].data_format == data_format


def test_save_before_compile_and_load_without_compile(tmp_path):
    m = models.Sequential([layers.Input((4,)), layers.Dense(2)])
    m.save(tmp_path / "m.keras")
    assert models.load_model(tmp_path / "m.keras").optimizer is None
    c = _model()
    c.save(tmp_path / "c.keras")  # compiled, never trained: no optimizer state yet
    assert models.load_model(tmp_path / "c.keras").optimizer.iterations == 0
    assert models.load_model(tmp_path / "c.keras", compile=False).optimizer is None


def test_keras_namespace_and_overwrite(tmp_path):
    from cnnfast import keras

    m = _model()
    keras.models.save_model(m, tmp_path / "m.keras")
    assert isinstance(keras.saving.load_model(tmp_path / "m.keras"), keras.Sequential)
    with pytest.raises(FileExistsError):
        m.save(tmp_path / "m.keras", overwrite=False)


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "m.keras"
    m = _model()
    m.save(path)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        m.save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]


def _rewrite(src, dst, edit=None, extra=()):
    """Copy the archive src to dst, ``edit(name, data) -> (name, data) or None`` on each
    entry, then add ``extra`` (name, data) entries."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            item = (info.filename, zin.read(info.filename))
            item = edit(*item) if edit else item
            if item is not None:
                zout.writestr(item[0], item[1])
        for name, data in extra:
            zout.writestr(name, data)


def _edit_config(fn):
    def edit(name, data):
        if name == "config.json":
            config = json.loads(data)
            fn(config)
            return name, json.dumps(config)
        return name, data
    return edit


def _set(path, value):
    def fn(config):
        node = config
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return fn


_BAD = [
    (dict(extra=[("../evil.npy", b"x")]), "outside the archive"),
    (dict(extra=[("/abs.npy", b"x")]), "outside the archive"),
    (dict(extra=[("weights/../../x", b"x")]), "outside the archive"),
    (dict(extra=[("weights\\0_0.npy", b"x")]), "outside the archive"),
    (dict(extra=[("notes.txt", b"x")]), "unexpected archive entries"),
    (dict(edit=lambda n, d: None if n == "weights/0_0.npy" else (n, d)),
     "missing archive entry 'weights/0_0.npy'"),
    (dict(edit=_edit_config(_set(["model", "layers", 0, "class_name"], "Lambda"))),
     "unknown layer class 'Lambda'"),
    (dict(edit=_edit_config(_set(["model", "layers", 0, "config", "function"], "eval"))),
     "unknown argument"),
    (dict(edit=_edit_config(_set(["model", "layers", 0, "config", "filters"], -2))),
     "malformed config of layer 0"),
    (dict(edit=_edit_config(_set(["model", "layers"], "Conv2D"))), "malformed model config"),
    (dict(edit=_edit_config(_set(["model", "input_shape"], [10.5, 10, 2]))),
     "malformed model config"),
    (dict(edit=_edit_config(_set(["model", "layers", 1, "config", "name"], 7))),
     "a string 'name'"),
    (dict(edit=_edit_config(_set(["compile", "optimizer", "class_name"], "Adafactor"))),
     "malformed compile config"),
    (dict(edit=_edit_config(_set(["format"], "keras"))), "not a cnnfast model file"),
    (dict(edit=_edit_config(_set(["version"], 99))), "version 99"),
    (dict(edit=lambda n, d: (n, b"{not json") if n == "config.json" else (n, d)),
     "unreadable config.json"),
    (dict(edit=lambda n, d: (n, d[:60]) if n == "weights/0_0.npy" else (n, d)),
     "not a readable .npy"),
    (dict(edit=lambda n, d: (n, d + b"\0" * 10000) if n == "weights/0_0.npy" else (n, d)),
     "larger than its content needs"),
]


@pytest.mark.parametrize("change,message", _BAD)
def test_loading_refuses_unsafe_or_malformed_archives(tmp_path, change, message):
    m = _model()
    x, y = _data()
    m.fit(x, y, batch_size=8, epochs=1, verbose=0)
    m.save(tmp_path / "good.keras")
    _rewrite(tmp_path / "good.keras", tmp_path / "bad.keras", **change)
    with pytest.raises(ValueError, match=message) as info:
        models.load_model(tmp_path / "bad.keras")
    assert str(info.value).startswith(str(tmp_path / "bad.keras") + ": ")


def test_loading_refuses_pickled_arrays_and_wrong_shapes(tmp_path):
    m = _model()
    m.save(tmp_path / "good.keras")
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    _rewrite(tmp_path / "good.keras", tmp_path / "p.keras",
             lambda n, d: (n, pickled.getvalue()) if n == "weights/0_0.npy" else (n, d))
    with pytest.raises(ValueError, match="not a readable .npy"):
        models.load_model(tmp_path / "p.keras")
    wrong = io.BytesIO()
    np.save(wrong, np.zeros((3, 3, 2, 5), np.float32))
    _rewrite(tmp_path / "good.keras", tmp_path / "s.keras",
             lambda n, d: (n, wrong.getvalue()) if n == "weights/0_0.npy" else (n, d))
    with pytest.raises(ValueError, match=r"shape \(3, 3, 2, 5\).*\(3, 3, 2, 4\)"):
        models.load_model(tmp_path / "s.keras")
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a zip archive"):
        models.load_model(tmp_path / "junk.keras")
    with pytest.raises(FileNotFoundError):
        models.load_model(tmp_path / "missing.keras")


def test_saving_refuses_what_it_cannot_describe(tmp_path):
    class Custom(layers.Layer):
        def forward(self, x, training=False):
            return x

    m = models.Sequential([layers.Input((3,)), Custom(), layers.Dense(2)])
    with pytest.raises(ValueError, match="Custom is not one of cnnfast's layers"):
        m.save(tmp_path / "m.keras")
    assert not (tmp_path / "m.keras").exists()
