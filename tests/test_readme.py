"""The README's functional-API, DLPack, threads and Keras-namespace examples, and the full
functional-API example of notes/functional-api.md, run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FUNCTIONAL_NOTES = ROOT / "notes" / "functional-api.md"


def _python_blocks(path: Path = README) -> list[str]:
    if not path.exists():
        pytest.skip(f"{path.name} is not next to the tests (installed without the source tree)")
    return re.findall(r"```python\n(.*?)```", path.read_text(), re.S)


def test_functional_and_threads_examples_run():
    blocks = _python_blocks()
    functional = next(b for b in blocks if "cnnfast.conv2d(" in b and "Sequential" not in b)
    threads = next(b for b in blocks if "set_num_threads" in b)
    namespace: dict = {}
    exec(compile(functional, "README functional example", "exec"), namespace)
    try:
        exec(compile(threads, "README threads example", "exec"), namespace)
    finally:
        import cnnfast

        cnnfast.set_num_threads(None)


def test_dlpack_example_runs():
    pytest.importorskip("torch", reason="the DLPack example passes torch tensors")
    block = next(b for b in _python_blocks() if "__dlpack__" in b)
    namespace: dict = {}
    exec(compile(block, "README DLPack example", "exec"), namespace)
    import numpy as np

    assert isinstance(namespace["y"], np.ndarray) and namespace["y"].shape == (8, 28, 28, 16)


def test_functional_notes_example_runs():
    blocks = _python_blocks(FUNCTIONAL_NOTES)
    example = next(b for b in blocks if "cnnfast.conv2d_pool2d_backward(" in b)
    exec(compile(example, "notes/functional-api.md example", "exec"), {})


def test_keras_namespace_example_runs(tmp_path, monkeypatch):
    pytest.importorskip("h5py", reason="the example saves a Keras .weights.h5 (needs h5py)")
    block = next(b for b in _python_blocks() if "from cnnfast import keras" in b)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, "README Keras namespace example", "exec"), namespace)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "best.keras", "model.weights.h5", "training.csv"]
    x = namespace["x"]
    assert namespace["history"].history["val_accuracy"][-1] > 0.8
    assert namespace["restored"].predict(x).shape == (256, 2)
