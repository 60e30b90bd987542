"""How ``Sequential.fit`` shares its work: the one-process default.

``fit`` asks a strategy object, at a few fixed points, which samples of each global
batch this process computes, how its gradients and metric sums become the global
ones, and whether it is the process that prints and writes files. ``LocalStrategy``
is the answer for one process: the whole batch, everything as it is. The data-parallel
strategy over MPI (``cnnfast.distributed.MPIStrategy``, imported only when a fit asks
for it) answers the same questions for N processes.

The protocol, in the order ``fit`` calls it:

* ``begin(model, n, batch_size)``: once per ``fit``, before the first random draw.
* ``shard(lo, hi) -> (a, b)``: the rows ``[a, b)`` of the epoch's order this process
  computes of the global batch ``[lo, hi)``.
* ``skip_batch(model)``: instead of computing, when ``shard`` gave no rows.
* ``reduce_gradients(grads, params, n_local, n_global, sums) -> (grads, sums)``: the
  gradients of the global batch's mean loss, and its summed ``(loss * samples,
  correct, judged)``, from this process's (``grads`` is None with no rows).
* ``evaluate_sums(model, x, y, batch_size) -> (loss sum, correct, judged)`` over
  the validation set.
* ``is_chief``: whether this process prints progress and writes weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["LocalStrategy", "resolve_strategy"]


class LocalStrategy:
    """One process: every sample of every batch here; gradients and sums unchanged."""

    is_chief = True

    def begin(self, model, n: int, batch_size: int) -> None:
        """Nothing to agree on with anyone."""

    def shard(self, lo: int, hi: int) -> tuple[int, int]:
        return lo, hi

    def skip_batch(self, model) -> None:
        raise AssertionError("a one-process batch always has samples")

    def reduce_gradients(self, grads: Sequence[np.ndarray] | None,
                         params: Sequence[np.ndarray], n_local: int, n_global: int,
                         sums: tuple[float, int, int]):
        return grads, sums

    def evaluate_sums(self, model, x: np.ndarray, y: np.ndarray,
                      batch_size: int) -> tuple[float, int, int]:
        return model._evaluate_sums(x, y, batch_size)


def resolve_strategy(distributed):
    """The strategy of ``fit(distributed=...)``: False or None, one process; True, MPI
    (``cnnfast.distributed``, which imports mpi4py); else the strategy object given."""
    if distributed is False or distributed is None:
        return LocalStrategy()
    if distributed is True:
        from . import distributed as _distributed

        return _distributed.MPIStrategy()
    return distributed
