"""Ctrl-C during updates that must happen whole: ``SigintDeferred`` holds SIGINT
inside a block and delivers it when the block ends (a training step's parameter
updates, the copy of loaded weights)."""

from __future__ import annotations

import signal
import threading

__all__ = ["SigintDeferred"]


class SigintDeferred:
    """Hold SIGINT inside the block and deliver it when the block ends.

    For updates that must happen all or not at all (a step's parameter updates, the
    copy of loaded weights): Ctrl-C in the middle would leave some layers updated and
    others not. The handler only records the signal; on exit the previous handler is
    restored and called with it (Python's default raises ``KeyboardInterrupt``).
    Signal handlers can only be set from the main thread, and only a handler that
    Python installed can be put back, so elsewhere the block runs unguarded (there
    SIGINT cannot raise inside it anyway, or it is ignored).
    """

    def __init__(self) -> None:
        self._previous = None
        self._received: tuple | None = None

    def _record(self, signum, frame) -> None:
        self._received = (signum, frame)

    def __enter__(self) -> SigintDeferred:
        self._previous, self._received = None, None
        if threading.current_thread() is not threading.main_thread():
            return self
        previous = signal.getsignal(signal.SIGINT)
        if previous is None or previous is signal.SIG_IGN:
            return self
        signal.signal(signal.SIGINT, self._record)
        self._previous = previous
        return self

    def __exit__(self, *exc) -> bool:
        previous, self._previous = self._previous, None
        if previous is None:
            return False
        signal.signal(signal.SIGINT, previous)
        if self._received is not None:
            signum, frame = self._received
            self._received = None
            if callable(previous):
                previous(signum, frame)
            else:  # SIG_DFL: what the signal would have done without the hold
                signal.raise_signal(signum)
        return False
