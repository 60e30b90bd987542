"""Keras-like progress bar for ``fit`` / ``evaluate`` / ``predict``.

On a terminal the bar is redrawn in place (carriage return), at most every
``interval`` seconds::

    123/469 [=======>......................] - ETA: 2s - loss: 0.3120 - accuracy: 0.9052

and the finished epoch ends with::

    469/469 [==============================] - 3s 6ms/step - loss: 0.1234 - accuracy: 0.9612

When the output is not a terminal (a log file, a pipe, CI) there are no carriage
returns: only the finished line is printed, once per epoch.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import IO

__all__ = ["Progbar", "format_duration", "format_per_step"]


def format_duration(seconds: float) -> str:
    """``3s``, ``1:05``, ``1:02:03`` as Keras prints elapsed times and ETAs."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}:{(s % 3600) // 60:02d}:{s % 60:02d}"
    if s >= 60:
        return f"{s // 60}:{s % 60:02d}"
    return f"{s}s"


def format_per_step(seconds: float) -> str:
    """``1s/step``, ``20ms/step`` or ``350us/step``."""
    if seconds >= 1:
        return f"{seconds:.0f}s/step"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/step"
    return f"{seconds * 1e6:.0f}us/step"


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class Progbar:
    """Progress of ``target`` steps; ``verbose=1`` draws a bar, ``2`` one line at the end."""

    def __init__(self, target: int, verbose: int = 1, width: int = 30,
                 interval: float = 0.05, stream: IO[str] | None = None):
        self.target = int(target)
        self.verbose = int(verbose)
        self.width = width
        self.interval = interval
        self.stream = stream if stream is not None else sys.stdout
        self.dynamic = _is_terminal(self.stream)
        self._start = time.perf_counter()
        self._last_draw = 0.0
        self._last_len = 0
        self._done = False

    def update(self, current: int, values: Sequence[tuple[str, float]] = (),
               finalize: bool | None = None) -> None:
        """Report that ``current`` steps are done; ``values`` are running metric values."""
        if self.verbose == 0 or self._done:
            return
        if finalize is None:
            finalize = current >= self.target
        now = time.perf_counter()
        elapsed = now - self._start
        metrics = "".join(f" - {k}: {_fmt_value(v)}" for k, v in values)
        if finalize:
            self._done = True
            per_step = elapsed / max(current, 1)
            if self.verbose == 1:
                line = (f"{self._counter(current)} {self._bar(current)} - "
                        f"{format_duration(elapsed)} {format_per_step(per_step)}{metrics}")
            else:
                line = (f"{self._counter(current)} - {format_duration(elapsed)} - "
                        f"{format_per_step(per_step)}{metrics}")
            self._write(line, final=True)
            return
        if self.verbose != 1 or not self.dynamic:
            return
        if now - self._last_draw < self.interval:
            return
        self._last_draw = now
        eta = elapsed / max(current, 1) * (self.target - current)
        line = (f"{self._counter(current)} {self._bar(current)} - ETA: "
                f"{format_duration(eta)}{metrics}")
        self._write(line, final=False)

    def abort(self) -> None:
        """Give up on a bar that will not finish (Ctrl-C): end a half-drawn line so the
        next output starts on its own line; later updates are ignored."""
        if self._done:
            return
        self._done = True
        if self.dynamic and self._last_len:
            self.stream.write("\n")
            self.stream.flush()

    def _counter(self, current: int) -> str:
        digits = len(str(self.target))
        return f"{current:>{digits}d}/{self.target}"

    def _bar(self, current: int) -> str:
        frac = min(max(current / max(self.target, 1), 0.0), 1.0)
        filled = int(self.width * frac)
        if current >= self.target:
            body = "=" * self.width
        else:
            body = "=" * max(filled - 1, 0) + (">" if filled > 0 else "")
            body += "." * (self.width - len(body))
        return f"[{body}]"

    def _write(self, line: str, final: bool) -> None:
        if self.dynamic:
            pad = " " * max(self._last_len - len(line), 0)
            self.stream.write("\r" + line + pad + ("\n" if final else ""))
            self._last_len = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _fmt_value(v: float) -> str:
    v = float(v)
    return f"{v:.4f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.4e}"
