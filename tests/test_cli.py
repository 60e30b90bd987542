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
    assert cli.main(["train", "--data", DATA, "--limit", "1000", "--epochs", "1",
                     "--verbose", "1"]) == 0
    out = capsys.readouterr().out
    assert "MNIST (28x28): 700 training / 300 test images" in out
    assert "\r" not in out  # captured output is not a terminal: no carriage returns
    assert "6/6 [==============================]" in out
    assert "Test accuracy:" in out


def test_train_missing_data_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["train", "--data", str(tmp_path), "--epochs", "1"]) == 1
    err = capsys.readouterr().err
    assert "missing" in err and "train-images-idx3-ubyte" in err and str(tmp_path) in err


def test_train_without_scikit_learn_or_matplotlib(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    assert cli.main(["train", "--dataset", "digits"]) == 1
    assert "--dataset digits needs scikit-learn" in capsys.readouterr().err
    monkeypatch.delitem(sys.modules, "sklearn")
    pytest.importorskip("sklearn")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert cli.main(["train", "--dataset", "digits", "--plot", str(tmp_path / "x.png")]) == 1
    assert "--plot needs matplotlib" in capsys.readouterr().err


@pytest.mark.skipif(not DATA, reason="CNNFAST_DATA not set: no real MNIST copy")
def test_train_mnist_needs_no_scikit_learn(monkeypatch, capsys):
    """The tutorial's split is made without scikit-learn (the same indices)."""
    for name in ("sklearn", "sklearn.model_selection"):
        monkeypatch.setitem(sys.modules, name, None)
    assert cli.main(["train", "--data", DATA, "--limit", "300", "--epochs", "1",
                     "--verbose", "0"]) == 0
    assert "MNIST (28x28): 210 training / 90 test images" in capsys.readouterr().out


@pytest.mark.parametrize("n", [2, 3, 10, 1000, 70000])
def test_tutorial_split_is_scikit_learns(n):
    sk = pytest.importorskip("sklearn.model_selection")
    want = sk.train_test_split(np.arange(n), test_size=0.3, random_state=1)
    got = cli.tutorial_split(n)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "0"], "argument --epochs: must be >= 1, got 0"),
    (["--batch-size", "-3"], "argument --batch-size: must be >= 1, got -3"),
    (["--threads", "100000"], "argument --threads: must be in [1, 4096], got 100000"),
    (["--threads", "abc"], "argument --threads: expected an integer, got 'abc'"),
    (["--seed", "-1"], "argument --seed: must be >= 0, got -1"),
    (["--limit", "1"], "argument --limit: must be >= 2, got 1"),
    (["--save-weights", "/nonexistent-dir/w.npz"],
     "argument --save-weights: directory '/nonexistent-dir' does not exist"),
    (["--plot", "/nonexistent-dir/c.png"],
     "argument --plot: directory '/nonexistent-dir' does not exist"),
])
def test_train_rejects_bad_arguments_before_any_work(argv, message, capsys):
    assert cli.main(["train", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_train_save_weights_into_a_directory_is_refused(tmp_path, capsys):
    assert cli.main(["train", "--save-weights", str(tmp_path)]) == 2
    assert "is a directory, expected a file path" in capsys.readouterr().err


def test_train_data_directory_that_does_not_exist(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert cli.main(["train", "--data", str(missing), "--epochs", "1"]) == 1
    err = capsys.readouterr().err
    assert f"--data {missing}: no such directory" in err


def test_info_takes_no_arguments(capsys):
    assert cli.main(["info", "--help"]) == 0
    assert "usage: cnnfast info" in capsys.readouterr().out
    assert cli.main(["info", "--bogus"]) == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_tutorial_model_shape():
    model = cli.build_tutorial_model()
    assert isinstance(model, models.Sequential)
    assert model.output_shape == (None, 10) and model.count_params() == 421_642
