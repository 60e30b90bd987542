"""Data-parallel training over MPI (mpi4py): one training program on many processes.

Run the same script on N ranks (``mpiexec -n N python train.py``) and call
``model.fit(..., distributed=True)`` on every rank with the same arguments and the same
data. Then ``fit`` (through ``MPIStrategy``, the strategy protocol of
``cnnfast._strategy``):

* gives every rank rank 0's weights, optimizer state and random generators
  (``broadcast_weights``, ``broadcast_generators``), so every rank draws the same
  permutation and the same dropout keys;
* splits each global batch into N contiguous slices, one per rank (the first ``m % N``
  ranks one sample more; in a short last batch some ranks may hold none: they still
  join every collective), so each sample is used once per epoch whatever N is;
* draws dropout masks by the sample's index in the global batch
  (``layers.Dropout.sample_offset``): N ranks draw the mask one process draws for the
  global batch;
* sums the gradients, each weighted by its rank's share of the global batch
  (``n_local / n_global``: the losses are means over the batch), so the result is the
  gradient of the global batch's mean loss. One ``Allgather`` per step moves one flat,
  preallocated buffer per rank (every gradient, then the step's loss sum and accuracy
  counts in float64) into an [N, row] buffer, and every rank adds the rows in rank
  order: the same bits on every rank, and the same bits from one run to the next with
  the same N (a plain ``Allreduce`` promises no order);
* reports the global loss and accuracy (and the validation metrics, the validation set
  split across the ranks the same way); rank 0 alone prints, and only rank 0 writes
  ``model.save_weights`` / ``model.save`` and the callbacks' files (atomically, as
  always); the callbacks run on every rank with the same logs, so they decide alike.

An uncaught exception on any rank prints that rank's traceback to stderr and aborts the
whole job (``abort_on_exception``, installed by ``fit``), so no rank waits forever in a
collective. ``mpi4py`` is imported by the first call that needs MPI; importing this
module does not start MPI. The design and the measured costs: notes/distributed.md.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

import numpy as np

from . import _config
from . import utils as _utils
from .layers import Dropout
from .ops import empty_aligned

__all__ = ["MPIStrategy", "abort_on_exception", "broadcast_generators",
           "broadcast_weights", "rank", "size", "threads_per_rank", "world"]


def _mpi():
    """The ``mpi4py.MPI`` module (importing it initialises MPI)."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(
            "cnnfast.distributed needs mpi4py and an MPI library: pip install "
            "'cnnfast[mpi]' (mpi4py and the mpich wheel, which brings mpiexec), or "
            "mpi4py built over the system's MPI"
        ) from e
    return MPI


def world():
    """``MPI.COMM_WORLD``: every rank of the job (one rank when not under mpiexec)."""
    return _mpi().COMM_WORLD


def rank(comm=None) -> int:
    """This process's rank in ``comm`` (default: the whole job)."""
    return int((comm if comm is not None else world()).Get_rank())


def size(comm=None) -> int:
    """The number of ranks in ``comm`` (default: the whole job)."""
    return int((comm if comm is not None else world()).Get_size())


def _split(m: int, parts: int, part: int) -> tuple[int, int]:
    """Rows ``[a, b)`` of ``m`` that part ``part`` of ``parts`` holds: contiguous, the
    first ``m % parts`` parts one row more."""
    q, r = divmod(m, parts)
    a = part * q + min(part, r)
    return a, a + q + (1 if part < r else 0)


def threads_per_rank(comm=None) -> int:
    """Kernel threads for this rank: the cores the ranks on this host may run on,
    divided among them (at least 1), and no more than this rank's own cores.

    The ranks of one host are those of ``comm``'s shared-memory split
    (``MPI.COMM_TYPE_SHARED``); their CPU affinity sets are pooled, so ranks pinned
    by the launcher (``-bind-to``) are counted as pinned.
    """
    MPI = _mpi()
    comm = comm if comm is not None else MPI.COMM_WORLD
    try:
        own = set(os.sched_getaffinity(0))
    except AttributeError:  # not Linux: every core counts
        own = set(range(os.cpu_count() or 1))
    host = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        pooled = set().union(*host.allgather(sorted(own)))
        share = len(pooled) // host.Get_size()
    finally:
        host.Free()
    return max(1, min(share, len(own)))


_hook_installed = False
#: seconds between a raising rank's message and the abort (see abort_on_exception)
_ABORT_GRACE_S = 1.0


def abort_on_exception(comm=None) -> None:
    """Make an uncaught exception on this rank abort the whole MPI job.

    The rank prints its traceback to stderr (prefixed with its rank), flushes its
    output and calls ``comm.Abort(1)``: every rank ends and ``mpiexec`` exits non-zero,
    instead of the other ranks waiting forever in their next collective. Installed
    once per process (``sys.excepthook``); ``fit(distributed=True)`` installs it.
    """
    global _hook_installed
    if _hook_installed:
        return
    comm = comm if comm is not None else world()
    previous = sys.excepthook
    me, n = comm.Get_rank(), comm.Get_size()

    def hook(kind, value, tb):
        try:
            sys.stdout.flush()
            sys.stderr.write(f"cnnfast.distributed: rank {me} of {n} raised "
                             f"{kind.__name__}; aborting the job\n")
            previous(kind, value, tb)
            sys.stderr.flush()
            # mpiexec forwards a rank's output through its proxies and drops what is
            # still in flight when the job is aborted: give it a moment to pass on
            # the message (and another raising rank the time to write its own)
            time.sleep(_ABORT_GRACE_S)
        finally:
            comm.Abort(1)

    sys.excepthook = hook
    _hook_installed = True


def broadcast_weights(model, comm=None, root: int = 0) -> None:
    """Copy rank ``root``'s weights and optimizer state (moments, step count) into the
    model on every rank of ``comm``. Every rank calls it with the same model layout."""
    comm = comm if comm is not None else world()
    model._require_built()
    for w in model.weights:
        _bcast_array(comm, w, root)
    opt = model.optimizer
    if opt is None:
        return
    # Every rank builds the state for its parameters (zeros, as a first step would):
    # the same arrays everywhere, then filled with the root's.
    opt.build(model.trainable_weights)
    opt.iterations = int(comm.bcast(opt.iterations, root))
    slots = opt.state()
    for name in sorted(slots):
        for a in slots[name]:
            _bcast_array(comm, a, root)


def _bcast_array(comm, a: np.ndarray, root: int) -> None:
    if a.flags.c_contiguous and a.flags.writeable:
        comm.Bcast(a, root)
    else:
        tmp = np.ascontiguousarray(a)
        comm.Bcast(tmp, root)
        np.copyto(a, tmp)


def broadcast_generators(model, comm=None, root: int = 0) -> None:
    """Give every rank rank ``root``'s random generators: the shared one of
    ``cnnfast.utils`` (shuffling, dropout keys) and those of layers given a ``seed``."""
    comm = comm if comm is not None else world()
    gens = [_utils.get_rng()] + [layer._rng for layer in model.layers
                                  if isinstance(layer, Dropout) and layer._rng is not None]
    states = comm.bcast([g.bit_generator.state for g in gens], root)
    if len(states) != len(gens):
        raise ValueError(f"rank {comm.Get_rank()} has {len(gens)} random generators, "
                         f"rank {root} has {len(states)}: the ranks built different models")
    for g, state in zip(gens, states):
        g.bit_generator.state = state


class _StepBuffers:
    """The one send row and the [size, row] receive buffer of a step's all-gather.

    A row holds every gradient (each tensor starting on a 64-byte boundary, in the
    model's dtype) and then three float64: the loss sum, the correct and the judged
    counts. ``out`` holds the sum of the rows; ``grads`` are views of it shaped like
    the parameters, which the optimizer reads.
    """

    def __init__(self, params: Sequence[np.ndarray], ranks: int) -> None:
        dtype = np.dtype(params[0].dtype)
        self.key = [(p.shape, p.dtype) for p in params]
        offsets, end = [], 0
        for p in params:
            offsets.append(end)
            end += -(-p.size * dtype.itemsize // 64) * 64
        self.grad_bytes = end
        row = end + 64  # the three float64 sums, padded to a cache line
        self.send = empty_aligned((row,), np.uint8)
        self.recv = empty_aligned((ranks, row), np.uint8)
        self.out = empty_aligned((row,), np.uint8)
        for buf in (self.send, self.recv, self.out):
            buf.fill(0)  # the padding between tensors stays zero

        def views(buf: np.ndarray) -> list[np.ndarray]:
            return [buf[o:o + p.size * dtype.itemsize].view(dtype).reshape(p.shape)
                    for o, p in zip(offsets, params)]

        self.send_grads = views(self.send)
        self.grads = views(self.out)
        self.send_sums = self.send[end:end + 24].view(np.float64)
        self.out_sums = self.out[end:end + 24].view(np.float64)
        self.dtype = dtype

    def sum_rows(self) -> None:
        """``out`` = row 0 + row 1 + ... in rank order, gradients in their dtype."""
        g = self.grad_bytes
        out_g = self.out[:g].view(self.dtype)
        np.copyto(out_g, self.recv[0, :g].view(self.dtype))
        np.copyto(self.out_sums, self.recv[0, g:g + 24].view(np.float64))
        for r in range(1, self.recv.shape[0]):
            out_g += self.recv[r, :g].view(self.dtype)
            self.out_sums += self.recv[r, g:g + 24].view(np.float64)


class MPIStrategy:
    """Data-parallel ``fit`` over the ranks of ``comm`` (default: the whole job); see
    the module docstring. ``threads``: kernel threads per rank; None keeps the current
    count, lowered to ``threads_per_rank(comm)`` so the ranks of a host do not
    oversubscribe its cores."""

    def __init__(self, comm=None, threads: int | None = None) -> None:
        self.comm = comm if comm is not None else world()
        self.rank = int(self.comm.Get_rank())
        self.size = int(self.comm.Get_size())
        self.is_chief = self.rank == 0
        self.threads = threads
        self._dropouts: list[Dropout] = []
        self._buffers: _StepBuffers | None = None

    def begin(self, model, n: int, batch_size: int) -> None:
        abort_on_exception(self.comm)
        mine = (int(n), int(batch_size), [tuple(w.shape) for w in model.weights])
        every = self.comm.allgather(mine)
        for r, theirs in enumerate(every):
            if theirs != mine:  # every rank sees the same list: all raise together
                raise ValueError(
                    f"fit(distributed=True): rank {r} has (samples, batch size, weight "
                    f"shapes) {theirs[:2]} and rank {self.rank} {mine[:2]}, or other "
                    "weights: every rank must fit the same model on the same data")
        if self.threads is not None:
            _config.set_num_threads(self.threads)
        else:
            share = threads_per_rank(self.comm)
            if _config.get_num_threads() > share:
                _config.set_num_threads(share)
        broadcast_weights(model, self.comm)
        broadcast_generators(model, self.comm)
        model.distribution = self
        self._dropouts = [layer for layer in model.layers if isinstance(layer, Dropout)]

    def shard(self, lo: int, hi: int) -> tuple[int, int]:
        a, b = _split(hi - lo, self.size, self.rank)
        for layer in self._dropouts:
            layer.sample_offset = a  # this rank's first sample in the global batch
        return lo + a, lo + b

    def skip_batch(self, model) -> None:
        # The dropout layers take their keys as if the forward pass ran, so that the
        # shared generator stays the same on every rank.
        for layer in self._dropouts:
            if layer.draws(True):
                layer.draw_key()

    def reduce_gradients(self, grads: Sequence[np.ndarray] | None,
                         params: Sequence[np.ndarray], n_local: int, n_global: int,
                         sums: tuple[float, int, int]):
        for layer in self._dropouts:
            layer.sample_offset = 0  # the offset holds for this step's forward only
        buf = self._buffers
        if buf is None or buf.key != [(p.shape, p.dtype) for p in params]:
            buf = self._buffers = _StepBuffers(params, self.size)
        if grads is None:
            for dst in buf.send_grads:
                dst.fill(0)
        else:
            scale = n_local / n_global  # the losses are means over the batch
            for g, dst in zip(grads, buf.send_grads):
                np.multiply(g, scale, out=dst)
        buf.send_sums[:] = sums
        self.comm.Allgather(buf.send, buf.recv)
        buf.sum_rows()
        s = buf.out_sums
        return buf.grads, (float(s[0]), int(s[1]), int(s[2]))

    def evaluate_sums(self, model, x: np.ndarray, y: np.ndarray,
                      batch_size: int) -> tuple[float, int, int]:
        a, b = _split(x.shape[0], self.size, self.rank)
        mine = np.array(model._evaluate_sums(x[a:b], y[a:b], batch_size), np.float64)
        every = np.empty((self.size, mine.size), np.float64)
        self.comm.Allgather(mine, every)
        total = every[0].copy()
        for r in range(1, self.size):
            total += every[r]
        return float(total[0]), int(total[1]), int(total[2])
