"""The ``cnnfast`` command: dispatch, ``train`` on the offline digits and on real MNIST,
and its error messages."""

from __future__ import annotations

import os
import sys
import types

import numpy as np
import pytest

from cnnfast import cli, models

DATA = os.environ.get("CNNFAST_DATA")


def test_usage_and_unknown_command(capsys):
    assert cli.main([]) == 2
    assert "train" in capsys.readouterr().out
    assert cli.main(["--help"]) == 0
    assert cli.main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_info_prints_the_configuration(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "cnnfast" in out and "openmp" in out.lower()


def test_bench_dispatch(monkeypatch):
    seen = []
    fake = types.ModuleType("cnnfast.bench")
    fake.main = lambda argv: seen.append(list(argv)) or 3
    monkeypatch.setitem(sys.modules, "cnnfast.bench", fake)
    assert cli.main(["bench", "--quick", "--json", "x.json"]) == 3
    assert seen == [["--quick", "--json", "x.json"]]


def test_train_digits_offline(tmp_path, capsys):
    pytest.importorskip("sklearn")
    weights, png = tmp_path / "w.npz", tmp_path / "curves.png"
    argv = ["train", "--dataset", "digits", "--epochs", "8", "--threads", "1",
            "--verbose", "2", "--save-weights", str(weights)]
    try:
        import matplotlib  # noqa: F401

        argv += ["--plot", str(png)]
    except ImportError:
        png = None
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "1,257 training / 540 test images" in out
    assert "Epoch 8/8" in out and "val_accuracy" in out
    line = next(x for x in out.splitlines() if x.startswith("Test accuracy:"))
    assert float(line.split()[2]) > 0.5  # 10 classes: chance is 0.1
    model = cli.build_tutorial_model((8, 8, 1))
    model.load_weights(weights)
    if png is not None:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_is_reproducible_with_a_seed(tmp_path):
    pytest.importorskip("sklearn")
    paths = [tmp_path / "a.npz", tmp_path / "b.npz"]
    for p in paths:
        assert cli.main(["train", "--dataset", "digits", "--epochs", "1", "--seed", "5",
                         "--verbose", "0", "--save-weights", str(p)]) == 0
    a, b = (np.load(p) for p in paths)
    # __meta__ holds the layers' auto-generated names, which differ between the runs.
    assert a.files == b.files
    assert all(a[k].tobytes() == b[k].tobytes() for k in a.files if k != "__meta__")


@pytest.mark.skipif(not DATA, reason="CNNFAST_DATA not set: no real MNIST copy")
def test_train_mnist_subset(capsys):
    pytest.importorskip("sklearn")
    assert cli.main(["train", "--data", DATA, "--limit", "1000", "--epochs", "1",
                     "--verbose", "1"]) == 0
    out = capsys.readouterr().out
    assert "MNIST (28x28): 700 training / 300 test images" in out
    assert "\r" not in out  # captured output is not a terminal: no carriage returns
    assert "6/6 [==============================]" in out
    assert "Test accuracy:" in out


def test_train_missing_data_is_a_clear_error(tmp_path, capsys):
    pytest.importorskip("sklearn")
    assert cli.main(["train", "--data", str(tmp_path), "--epochs", "1"]) == 1
    err = capsys.readouterr().err
    assert "missing" in err and "train-images-idx3-ubyte" in err and str(tmp_path) in err


def test_train_without_scikit_learn_or_matplotlib(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sklearn.model_selection", None)
    assert cli.main(["train", "--dataset", "digits"]) == 1
    assert "needs scikit-learn" in capsys.readouterr().err
    monkeypatch.delitem(sys.modules, "sklearn.model_selection")
    pytest.importorskip("sklearn")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert cli.main(["train", "--dataset", "digits", "--plot", "x.png"]) == 1
    assert "--plot needs matplotlib" in capsys.readouterr().err


def test_train_rejects_bad_numbers(capsys):
    assert cli.main(["train", "--epochs", "0"]) == 2
    assert "--epochs must be >= 1" in capsys.readouterr().err


def test_tutorial_model_shape():
    model = cli.build_tutorial_model()
    assert isinstance(model, models.Sequential)
    assert model.output_shape == (None, 10) and model.count_params() == 421_642
