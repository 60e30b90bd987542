"""Argument checks shared by the ``cnnfast train`` and ``cnnfast bench`` command lines.

Each one is an argparse ``type=`` (or a check run before any work), so a bad value
ends in argparse's one-line usage error and exit status 2, not in a traceback after
minutes of training or benchmarking.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

from ._config import MAX_THREADS


def int_in(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in [lo, hi] (no upper bound when hi is None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    return parse


def thread_count(text: str) -> int:
    """An argparse type: a thread count, 1 to cnnfast's limit."""
    return int_in(1, MAX_THREADS)(text)


def output_path(text: str) -> str:
    """An argparse type: a file path whose directory exists and is writable, checked
    before the work whose result it will hold."""
    directory = os.path.dirname(os.path.abspath(os.path.expanduser(text))) or "."
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a directory, expected a file path")
    if not os.path.isdir(directory):
        raise argparse.ArgumentTypeError(f"directory {directory!r} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"directory {directory!r} is not writable")
    return text


def matplotlib_missing() -> str | None:
    """None when matplotlib can draw to files here, else what to install."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401
    except ImportError:
        return "--plot needs matplotlib: pip install 'cnnfast[plot]' (or matplotlib)"
    return None
