"""Data-parallel training over MPI (cnnfast.distributed): ``mpiexec -n 2`` against one
process, run to run, rank to rank, and a rank that fails.

The MPI runs start tests/mpi_worker.py in a temporary directory (not the repository
root, whose cnnfast/ may have no compiled extension), with this process's environment.
They skip when mpi4py or mpiexec is missing (``pip install 'cnnfast[mpi]'``); the dropout
offset test needs neither.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cnnfast.layers import Dropout

WORKER = Path(__file__).resolve().parent / "mpi_worker.py"


def _mpiexec() -> str | None:
    # the mpich wheel puts mpiexec beside the interpreter of its environment
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def _mpi_missing() -> str | None:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install 'cnnfast[mpi]')"
    if _mpiexec() is None:
        return "no mpiexec on PATH (pip install 'cnnfast[mpi]' brings MPICH's)"
    return None


needs_mpi = pytest.mark.skipif(_mpi_missing() is not None, reason=str(_mpi_missing()))


def _run(mode: str, out: Path, ranks: int | None, timeout: float = 120):
    """Run the worker (under ``mpiexec -n ranks`` unless ranks is None) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(WORKER), mode, str(out)]
    if ranks is not None:
        cmd = [_mpiexec(), "-n", str(ranks)] + cmd
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(cmd, cwd=out, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _load(path: Path) -> dict:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def _weights(result: dict) -> list[np.ndarray]:
    return [result[f"arr_{i}"] for i in range(sum(k.startswith("arr_") for k in result))]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One process (plain fit), two 2-rank runs and one 1-rank run of the worker."""
    if _mpi_missing():
        pytest.skip(_mpi_missing())
    base = tmp_path_factory.mktemp("mpi")
    done = {}
    for name, mode, ranks in (("local", "local", None), ("a", "mpi", 2), ("b", "mpi", 2),
                              ("one", "mpi", 1), ("perturbed", "perturb", 2)):
        proc = _run(mode, base / name, ranks)
        assert proc.returncode == 0, f"{name}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
        done[name] = (base / name, proc)
    return done


@needs_mpi
def test_two_ranks_give_the_one_process_weights(runs):
    local = _load(runs["local"][0] / "rank0.npz")
    two = _load(runs["a"][0] / "rank0.npz")
    assert len(two["digests"]) == 20  # 20 optimizer steps, short last batches included
    for i, (w2, w1) in enumerate(zip(_weights(two), _weights(local))):
        rel = np.linalg.norm(w2 - w1) / np.linalg.norm(w1)
        assert rel <= 1e-3, f"weight {i}: relative L2 difference {rel:.2e}"
    # the loss, accuracy and validation metrics are those of the whole batch
    np.testing.assert_allclose(two["history"], local["history"], rtol=1e-4, atol=1e-6)


@needs_mpi
def test_two_rank_runs_are_bit_identical(runs):
    a, b = _load(runs["a"][0] / "rank0.npz"), _load(runs["b"][0] / "rank0.npz")
    assert np.array_equal(a["digests"], b["digests"])
    for wa, wb in zip(_weights(a), _weights(b)):
        assert np.array_equal(wa, wb)


@needs_mpi
def test_fit_starts_every_rank_from_rank_0s_weights_state_and_generator(runs):
    a, p = _load(runs["a"][0] / "rank1.npz"), _load(runs["perturbed"][0] / "rank1.npz")
    assert np.array_equal(a["digests"], p["digests"])
    assert np.array_equal(a["history"], p["history"])


@needs_mpi
def test_ranks_that_disagree_on_the_data_all_raise(tmp_path):
    proc = _run("mismatch", tmp_path, 2, timeout=30)
    assert proc.returncode != 0
    assert "every rank must fit the same model on the same data" in proc.stderr


@needs_mpi
def test_ranks_hold_the_same_weights_after_every_step(runs):
    r0, r1 = _load(runs["a"][0] / "rank0.npz"), _load(runs["a"][0] / "rank1.npz")
    assert len(r0["digests"]) == 20
    assert np.array_equal(r0["digests"], r1["digests"])
    assert np.array_equal(r0["history"], r1["history"])


@needs_mpi
def test_one_rank_is_bit_identical_to_plain_fit(runs):
    local, one = _load(runs["local"][0] / "rank0.npz"), _load(runs["one"][0] / "rank0.npz")
    assert np.array_equal(local["digests"], one["digests"])
    assert np.array_equal(local["history"], one["history"])


@needs_mpi
def test_rank_0_alone_prints_and_writes_the_weights_and_logs(runs):
    out, proc = runs["a"]
    assert proc.stdout.count("Epoch 1/2") == 1
    for name in ("saved_by", "ckpt", "log"):
        suffix = ".csv" if name == "log" else ".npz"
        assert (out / f"{name}_0{suffix}").exists(), name
        assert not (out / f"{name}_1{suffix}").exists(), name
    assert len((out / "log_0.csv").read_text().splitlines()) == 3  # header, 2 epochs


@needs_mpi
def test_a_failing_rank_ends_the_job_with_its_message(tmp_path):
    t0 = time.monotonic()
    try:
        proc = _run("raise", tmp_path, 2, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("a rank raised and the job was still running after 30 s")
    assert proc.returncode != 0
    assert "rank 1 fails on purpose in step 3" in proc.stderr
    assert "rank 1 of 2 raised RuntimeError" in proc.stderr
    assert time.monotonic() - t0 < 30


def test_dropout_sample_offset_draws_the_global_batchs_mask():
    """Ranks holding samples [lo, hi) of a global batch, with the same key and
    ``sample_offset = lo``, draw the rows of the one-call mask of the global batch."""
    x = np.random.default_rng(0).standard_normal((31, 4, 5)).astype(np.float32)
    whole = Dropout(0.5, seed=9)
    y_whole = whole.forward(x, training=True).copy()
    for lo, hi in ((0, 16), (16, 31), (30, 31)):
        part = Dropout(0.5, seed=9)
        part.sample_offset = lo
        y = part.forward(np.ascontiguousarray(x[lo:hi]), training=True)
        assert np.array_equal(y, y_whole[lo:hi]), (lo, hi)
    shifted = Dropout(0.5, seed=9)
    shifted.sample_offset = 1
    assert not np.array_equal(shifted.forward(x[:16], training=True), y_whole[:16])


def test_importing_cnnfast_does_not_import_mpi4py():
    code = ("import sys, cnnfast, cnnfast.models, cnnfast.layers, cnnfast.callbacks, "
            "cnnfast.keras, cnnfast.cli; "
            "assert 'mpi4py' not in sys.modules and 'cnnfast.distributed' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60,
                   cwd=Path(__file__).resolve().parent)


@needs_mpi
def test_cnnfast_train_distributed_on_two_ranks(tmp_path):
    if os.environ.get("CNNFAST_DATA"):
        data = ["--limit", "1000"]  # real MNIST, the first 1,000 images
    else:
        pytest.importorskip("sklearn", reason="no CNNFAST_DATA (MNIST), and --dataset "
                                              "digits needs scikit-learn")
        data = ["--dataset", "digits"]
    cmd = [_mpiexec(), "-n", "2", sys.executable, "-m", "cnnfast", "train", "--distributed",
           *data, "--epochs", "2", "--verbose", "2", "--save-weights", str(tmp_path / "w.npz")]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert out.count("MPI ranks: 2 | kernel threads: ") == 1  # rank 0 alone prints
    assert out.count("Epoch 2/2") == 1 and "Test accuracy:" in out
    assert (tmp_path / "w.npz").exists()


def test_cnnfast_train_distributed_without_mpi4py_says_what_to_install(monkeypatch, capsys):
    from cnnfast import cli

    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py raises ImportError
    assert cli.main(["train", "--distributed", "--epochs", "1"]) == 1  # before any data
    err = capsys.readouterr().err
    assert "--distributed" in err and "pip install 'cnnfast[mpi]'" in err
