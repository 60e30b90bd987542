"""Atomic file writes: every file cnnfast writes goes through ``atomic_write``.

The data goes to a temporary file in the target's directory (same file system, so
the final rename is atomic), is flushed and ``fsync``-ed, and is then renamed over
the target with ``os.replace``; the directory is ``fsync``-ed too where the platform
allows it, so the rename itself survives a crash. Until that rename the previous
file is untouched: an exception in the middle of a write (an ``OSError`` such as a
full disk, a ``KeyboardInterrupt``) removes the temporary file and leaves the old
file, or no file, exactly as it was. Readers never see a half-written file.

The file ends up with the permissions a plain ``open(path, "w")`` would give it: an
existing file's mode is kept, a new file gets ``0o666`` minus the umask (``mkstemp``
alone would make it ``0o600``). A symbolic link as the target is followed, so the
file it points to is replaced and the link stays, as with ``open``.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from typing import IO, Any

__all__ = ["atomic_write", "save_figure"]


def _current_umask() -> int:
    # os.umask can only be read by setting it; the old value goes straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _blame(err: OSError, path: str) -> OSError:
    """Name the target, not the temporary file, in an error from the write machinery."""
    err.filename, err.filename2 = path, None
    return err


def _fsync_directory(directory: str) -> None:
    """Make a rename in ``directory`` durable; a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # Windows, or a directory we may write but not read
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a directory; the data is synced
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", *,
                 encoding: str | None = None, newline: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file for writing; on a clean exit it replaces ``path``.

    ``mode`` is ``"wb"`` or ``"w"`` (text, then ``encoding`` and ``newline`` apply)::

        with atomic_write("weights.npz") as f:
            np.savez(f, **arrays)

    The file is written at exactly ``path`` (no suffix is added). Any exception
    inside the block, ``KeyboardInterrupt`` included, removes the temporary file
    and re-raises; the previous content of ``path`` is then unchanged. Errors from
    creating or renaming the temporary file name ``path`` in their ``filename``.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    target = os.path.realpath(os.fspath(path))
    directory, name = os.path.split(target)
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    except OSError as e:
        raise _blame(e, os.fspath(path)) from None
    try:
        try:
            existing = os.stat(target).st_mode
        except OSError:
            perms = 0o666 & ~_current_umask()
        else:
            perms = stat.S_IMODE(existing)
        with contextlib.suppress(OSError):  # a file system without modes keeps its own
            os.chmod(tmp, perms)
        with open(fd, mode, encoding=encoding, newline=newline) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        try:
            os.replace(tmp, target)
        except OSError as e:
            raise _blame(e, os.fspath(path)) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def save_figure(fig: Any, path: str | os.PathLike, **kwargs: Any) -> str:
    """``fig.savefig(path, **kwargs)`` through ``atomic_write``; returns the path written.

    The file format and name follow matplotlib's own rule for a path: the format
    comes from the extension, and a name without one gets
    ``rcParams["savefig.format"]`` and that extension appended.
    """
    import matplotlib

    path = os.fspath(path)
    fmt = os.path.splitext(path)[1][1:].lower()
    if not fmt:
        fmt = str(matplotlib.rcParams["savefig.format"])
        path = path.rstrip(".") + "." + fmt
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format=fmt, **kwargs)
    return path
