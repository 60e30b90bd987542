"""The MNIST handwritten digits, as ``keras.datasets.mnist.load_data`` returns them.

The four standard IDX files (``train-images-idx3-ubyte`` ...), gzipped or not, are
read from, in this order:

1. the ``path`` argument (a directory),
2. the directory named by ``$CNNFAST_DATA``,
3. the user cache, ``$XDG_CACHE_HOME/cnnfast/mnist`` (``~/.cache/cnnfast/mnist``).

Only in the cache are missing files downloaded (from the public mirrors in
``MIRRORS``, first that works); an explicit ``path`` or ``$CNNFAST_DATA`` that lacks
them is an error that names the missing files. Every file is checked against the
known SHA-256 of its *uncompressed* content before use: a corrupt, truncated or
foreign file raises ``MNISTDataError`` and is never used silently.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.request
import zlib
from pathlib import Path

import numpy as np

__all__ = ["load_data", "MNISTDataError", "FILES", "SHA256", "MIRRORS", "default_cache_dir"]

# (role, file name without .gz, IDX magic, expected dims)
FILES = [
    ("x_train", "train-images-idx3-ubyte", 0x0803, (60000, 28, 28)),
    ("y_train", "train-labels-idx1-ubyte", 0x0801, (60000,)),
    ("x_test", "t10k-images-idx3-ubyte", 0x0803, (10000, 28, 28)),
    ("y_test", "t10k-labels-idx1-ubyte", 0x0801, (10000,)),
]

# SHA-256 of the uncompressed files (the same bytes in every mirror).
SHA256: dict[str, str] = {
    "train-images-idx3-ubyte":
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte":
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte":
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte":
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

# Public mirrors serving the four files gzipped under their standard names.
MIRRORS: list[str] = [
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]

_DOWNLOAD_TIMEOUT_S = 30.0


class MNISTDataError(ValueError):
    """An MNIST file is missing, corrupt, truncated or not the expected one."""


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cnnfast" / "mnist"


def _find(directory: Path, name: str) -> Path | None:
    """The raw file if present, else the gzipped one, else None."""
    for candidate in (directory / name, directory / (name + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def _read_content(path: Path) -> bytes:
    """The uncompressed bytes of ``path`` (gzip recognised by its magic number)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise MNISTDataError(
                f"{path}: corrupt or truncated gzip file ({e}); delete it and fetch it again"
            ) from e
    return data


def _check_hash(path: Path, name: str, data: bytes) -> None:
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256[name]:
        raise MNISTDataError(
            f"{path}: SHA-256 of the uncompressed content is {digest}, expected "
            f"{SHA256[name]} ({len(data)} bytes read): the file is corrupt, truncated or "
            "not the standard MNIST file; delete it and fetch it again"
        )


def _parse_idx(path: Path, data: bytes, magic: int, dims: tuple) -> np.ndarray:
    """Parse an unsigned-byte IDX file of ``len(dims)`` dimensions."""
    ndim = len(dims)
    header = 4 + 4 * ndim
    if len(data) < header:
        raise MNISTDataError(f"{path}: too short for an IDX header ({len(data)} bytes)")
    got_magic = int.from_bytes(data[:4], "big")
    if got_magic != magic:
        raise MNISTDataError(f"{path}: IDX magic {got_magic:#010x}, expected {magic:#010x}")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if shape[1:] != tuple(dims[1:]):
        raise MNISTDataError(f"{path}: IDX dimensions {shape}, expected (n, *{dims[1:]})")
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise MNISTDataError(
            f"{path}: {len(data)} bytes, expected {expected} for dimensions {shape}: "
            "the file is truncated or corrupt"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def _fetch(url: str, dest: Path) -> None:
    """Download ``url`` to ``dest`` (tests replace this function or use file:// URLs)."""
    with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as resp, \
            open(dest, "wb") as out:
        shutil.copyfileobj(resp, out)


def _download(directory: Path, name: str) -> Path:
    """Fetch ``name``.gz into ``directory`` from the first mirror that serves a good copy."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / (name + ".gz")
    errors = []
    for mirror in MIRRORS:
        url = mirror + name + ".gz"
        fd, tmp_name = tempfile.mkstemp(prefix=name + ".", suffix=".part", dir=directory)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            _fetch(url, tmp)
            _check_hash(tmp, name, _read_content(tmp))
        except Exception as e:  # noqa: BLE001 - any failure means: try the next mirror
            errors.append(f"{url}: {e}")
            tmp.unlink(missing_ok=True)
            continue
        os.replace(tmp, target)  # atomic: a half-written file never carries the real name
        return target
    raise MNISTDataError(
        f"could not download {name}.gz; tried:\n  " + "\n  ".join(errors) + "\n"
        + _where_to_put(directory)
    )


def _where_to_put(directory: Path) -> str:
    names = ", ".join(f[1] + ".gz" for f in FILES)
    return (
        f"Put the four MNIST files ({names}; gzipped or not) in {directory}, "
        "or in a directory named by $CNNFAST_DATA, or pass "
        "load_data(path=<that directory>)."
    )


def load_data(path: str | os.PathLike | None = None
              ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Return ``(x_train, y_train), (x_test, y_test)``: uint8 arrays of shapes
    (60000, 28, 28), (60000,), (10000, 28, 28), (10000,)."""
    if path is not None:
        directory, may_download = Path(path).expanduser(), False
    elif os.environ.get("CNNFAST_DATA"):
        directory, may_download = Path(os.environ["CNNFAST_DATA"]).expanduser(), False
    else:
        directory, may_download = default_cache_dir(), True
    if path is not None and directory.is_file():
        raise MNISTDataError(f"{directory}: expected a directory holding the MNIST files")

    found: dict[str, Path] = {}
    missing = []
    for _, name, _, _ in FILES:
        p = _find(directory, name)
        if p is None:
            missing.append(name)
        else:
            found[name] = p
    if missing and not may_download:
        source = "path" if path is not None else "$CNNFAST_DATA"
        raise MNISTDataError(
            f"MNIST files missing in {directory} (from {source}): {', '.join(missing)}. "
            + _where_to_put(directory)
        )
    for name in missing:
        found[name] = _download(directory, name)

    arrays = {}
    for role, name, magic, dims in FILES:
        p = found[name]
        data = _read_content(p)
        _check_hash(p, name, data)
        arrays[role] = _parse_idx(p, data, magic, dims)
    for a, b in (("x_train", "y_train"), ("x_test", "y_test")):
        if arrays[a].shape[0] != arrays[b].shape[0]:
            raise MNISTDataError(
                f"{a} has {arrays[a].shape[0]} images but {b} {arrays[b].shape[0]} labels"
            )
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])
