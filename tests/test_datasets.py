"""MNIST loader: IDX parsing (gzip or raw), SHA-256 checks, search order, download into
the cache through a local file:// mirror (never the network), clear errors."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from cnnfast.datasets import mnist

REAL = os.environ.get("CNNFAST_DATA")


def _idx(arr: np.ndarray, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


@pytest.fixture
def fake(monkeypatch):
    """Small MNIST-like contents for the four files, with the loader's hashes patched."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": (rng.integers(0, 256, (5, 28, 28)), 0x0803),
        "train-labels-idx1-ubyte": (rng.integers(0, 10, 5), 0x0801),
        "t10k-images-idx3-ubyte": (rng.integers(0, 256, (3, 28, 28)), 0x0803),
        "t10k-labels-idx1-ubyte": (rng.integers(0, 10, 3), 0x0801),
    }
    contents = {name: _idx(a, m) for name, (a, m) in arrays.items()}
    monkeypatch.setattr(mnist, "SHA256",
                        {n: hashlib.sha256(c).hexdigest() for n, c in contents.items()})
    monkeypatch.delenv("CNNFAST_DATA", raising=False)
    return contents, {n: a for n, (a, _) in arrays.items()}


def _write(directory: Path, contents: dict, gz: set = frozenset()) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
        if name in gz:
            (directory / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)


def _check(result, arrays):
    (xtr, ytr), (xte, yte) = result
    assert xtr.dtype == np.uint8 and xtr.shape == (5, 28, 28) and ytr.shape == (5,)
    np.testing.assert_array_equal(xtr, arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(ytr, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(xte, arrays["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(yte, arrays["t10k-labels-idx1-ubyte"])


@pytest.mark.parametrize("gz", [set(), {"train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"},
                                "all"])
def test_load_raw_and_gzipped(tmp_path, fake, gz):
    contents, arrays = fake
    _write(tmp_path, contents, set(contents) if gz == "all" else gz)
    _check(mnist.load_data(tmp_path), arrays)


def test_search_order_env_then_cache(tmp_path, fake, monkeypatch):
    contents, arrays = fake
    _write(tmp_path / "env", contents)
    monkeypatch.setenv("CNNFAST_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "nocache"))
    _check(mnist.load_data(), arrays)
    # An explicit path wins over the environment.
    with pytest.raises(mnist.MNISTDataError, match="missing"):
        mnist.load_data(tmp_path / "elsewhere")
    monkeypatch.delenv("CNNFAST_DATA")
    _write(tmp_path / "nocache" / "cnnfast" / "mnist", contents, set(contents))
    assert mnist.default_cache_dir() == tmp_path / "nocache" / "cnnfast" / "mnist"
    _check(mnist.load_data(), arrays)


def test_bad_hash_is_an_error(tmp_path, fake):
    contents, _ = fake
    bad = dict(contents)
    data = bytearray(bad["t10k-labels-idx1-ubyte"])
    data[-1] ^= 1
    bad["t10k-labels-idx1-ubyte"] = bytes(data)
    _write(tmp_path, bad)
    with pytest.raises(mnist.MNISTDataError, match="SHA-256") as e:
        mnist.load_data(tmp_path)
    assert "t10k-labels-idx1-ubyte" in str(e.value)


def test_truncated_gzip_is_an_error(tmp_path, fake):
    contents, _ = fake
    _write(tmp_path, contents, set(contents))
    p = tmp_path / "train-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:-40])
    with pytest.raises(mnist.MNISTDataError, match="truncated"):
        mnist.load_data(tmp_path)


def test_truncated_raw_file_is_an_error(tmp_path, fake, monkeypatch):
    contents, _ = fake
    short = contents["train-labels-idx1-ubyte"][:-2]
    _write(tmp_path, {**contents, "train-labels-idx1-ubyte": short})
    with pytest.raises(mnist.MNISTDataError, match="SHA-256"):
        mnist.load_data(tmp_path)
    # Even with a matching hash the IDX size check refuses the short file.
    monkeypatch.setitem(mnist.SHA256, "train-labels-idx1-ubyte",
                        hashlib.sha256(short).hexdigest())
    with pytest.raises(mnist.MNISTDataError, match="truncated or corrupt"):
        mnist.load_data(tmp_path)


def test_missing_files_say_where_to_put_them(tmp_path, fake):
    contents, _ = fake
    _write(tmp_path, {k: v for k, v in contents.items() if not k.startswith("t10k")})
    with pytest.raises(mnist.MNISTDataError) as e:
        mnist.load_data(tmp_path)
    msg = str(e.value)
    assert "t10k-images-idx3-ubyte" in msg and "t10k-labels-idx1-ubyte" in msg
    assert str(tmp_path) in msg and "CNNFAST_DATA" in msg


def test_download_into_cache_from_a_file_mirror(tmp_path, fake, monkeypatch):
    contents, arrays = fake
    mirror = tmp_path / "mirror"
    _write(mirror, contents, set(contents))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    # The first mirror does not exist: the loader must go on to the next.
    monkeypatch.setattr(mnist, "MIRRORS", [(tmp_path / "gone").as_uri() + "/",
                                           mirror.as_uri() + "/"])
    _check(mnist.load_data(), arrays)
    cache = tmp_path / "cache" / "cnnfast" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(n + ".gz" for n in contents)
    # Second call: served from the cache, no fetch at all.
    monkeypatch.setattr(mnist, "_fetch", lambda url, dest: pytest.fail("fetched again"))
    _check(mnist.load_data(), arrays)


def test_download_of_a_corrupt_copy_is_refused(tmp_path, fake, monkeypatch):
    contents, _ = fake
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(mnist, "MIRRORS", ["https://mirror.invalid/"])

    def fetch(url, dest):
        Path(dest).write_bytes(gzip.compress(b"\x00\x00\x08\x03 not mnist"))

    monkeypatch.setattr(mnist, "_fetch", fetch)
    with pytest.raises(mnist.MNISTDataError, match="SHA-256"):
        mnist.load_data()
    cache = tmp_path / "cache" / "cnnfast" / "mnist"
    assert list(cache.iterdir()) == []  # nothing half-written left behind


def test_offline_without_a_copy(tmp_path, fake, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def offline(url, dest):
        raise OSError("network unreachable")

    monkeypatch.setattr(mnist, "_fetch", offline)
    with pytest.raises(mnist.MNISTDataError) as e:
        mnist.load_data()
    msg = str(e.value)
    assert "network unreachable" in msg and "Put the four MNIST files" in msg
    assert str(tmp_path / "cache" / "cnnfast" / "mnist") in msg


@pytest.mark.skipif(not REAL, reason="CNNFAST_DATA not set: no real MNIST copy to check")
def test_real_mnist_copy():
    (xtr, ytr), (xte, yte) = mnist.load_data(REAL)
    assert xtr.shape == (60000, 28, 28) and xte.shape == (10000, 28, 28)
    assert xtr.dtype == np.uint8 and ytr.dtype == np.uint8
    assert np.bincount(ytr).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265,
                                         5851, 5949]
    assert np.bincount(yte).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974,
                                         1009]
