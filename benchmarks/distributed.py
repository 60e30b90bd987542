"""The parts of a data-parallel training step over MPI, timed (BENCHMARKS.md, "MPI
data-parallel"; notes/distributed.md).

    python benchmarks/distributed.py compute --threads 1,2        # one process
    mpiexec -n 2 python benchmarks/distributed.py allreduce       # N ranks
    mpiexec -n 2 python benchmarks/distributed.py fit             # N ranks, 1 thread each
    python benchmarks/distributed.py fit --local --threads 2      # the same, one process
    python benchmarks/distributed.py model --compute 128=18,64=10,32=6,16=4,8=3

``compute``: the tutorial model's training step (forward, backward, Adam) at local
batches 128, 64, 32, 16 and 8: what one machine computes per step when a global batch
of 128 is split over 1, 2, 4, 8 or 16 machines. Medians of ``--repeats`` rounds, every
batch size timed back to back in each round.

``allreduce``: ``MPIStrategy.reduce_gradients`` on the tutorial model's 421,642 float32
gradients (the one ``Allgather`` of the step, and the packing and rank-order sum around
it), and the ``Allgather`` alone; a barrier before each call, median over calls.

``fit``: ms per step of ``fit`` on the first ``--limit`` training images of MNIST
(``$CNNFAST_DATA``), batch 128, the second epoch (the first warms up), distributed over
the ranks of the job, or ``--local`` in one process.

``model``: the epoch time (383 steps of a global batch of 128, the tutorial's 49,000
images) on 2, 4, 8 and 16 machines, one rank each, at 10 and 25 Gbit/s, from the compute
time per step at each local batch (``--compute``, ms, measured with ``compute``) and a
model of the exchange of the 421,642 float32 gradients: cnnfast's ring ``Allgather``,
``(N - 1) * (alpha + S / B)`` plus ``N + 1`` passes over the gradients here (pack, sum;
timed on this machine), against a ring all-reduce, ``2 (N - 1) * (alpha + S / (N B))``;
``alpha`` (``--latency-us``) per message. Nothing overlaps: step = compute + exchange.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

import cnnfast
from cnnfast.tutorial import build_tutorial_model


def _model():
    cnnfast.utils.set_random_seed(1)
    model = build_tutorial_model()
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def compute(args) -> None:
    model = _model()
    rng = np.random.default_rng(0)
    batches = (128, 64, 32, 16, 8)
    counts = args.threads or [cnnfast.get_num_threads()]
    data = {b: (rng.random((b, 28, 28, 1), dtype=np.float32),
                cnnfast.utils.to_categorical(rng.integers(0, 10, b), 10)) for b in batches}
    times: dict[tuple, list[float]] = {(t, b): [] for t in counts for b in batches}
    for b in batches:  # warm-up: plans and buffers for every shape
        model.train_on_batch(*data[b])
    for _ in range(args.repeats):
        for t in counts:
            cnnfast.set_num_threads(t)
            for b in batches:
                t0 = time.perf_counter()
                for _ in range(5):
                    model.train_on_batch(*data[b])
                times[t, b].append((time.perf_counter() - t0) / 5)
    print(f"SIMD {cnnfast.simd_level()}, {args.repeats} rounds of 5 steps, thread counts "
          "interleaved; ms/step, median (minimum)")
    print("local batch " + "".join(f"{f'{t} thr':>18}" for t in counts))
    for b in batches:
        print(f"{b:>11} " + "".join(
            f"{1e3 * statistics.median(times[t, b]):10.2f} ({1e3 * min(times[t, b]):5.2f})"
            for t in counts))


def allreduce(args) -> None:
    from mpi4py import MPI

    from cnnfast.distributed import MPIStrategy

    model = _model()
    strategy = MPIStrategy()
    comm = strategy.comm
    params = model.trainable_weights
    grads = [np.ones_like(p) for p in params]
    total, gather = [], []
    for i in range(args.repeats + 5):
        comm.Barrier()
        t0 = MPI.Wtime()
        strategy.reduce_gradients(grads, params, 64, 128, (1.0, 1, 1))
        t1 = MPI.Wtime()
        buf = strategy._buffers
        comm.Barrier()
        t2 = MPI.Wtime()
        comm.Allgather(buf.send, buf.recv)
        t3 = MPI.Wtime()
        if i >= 5:
            total.append(t1 - t0)
            gather.append(t3 - t2)
    if strategy.is_chief:
        n = sum(p.size for p in params)
        print(f"{strategy.size} ranks, {n:,} gradients ({buf.send.nbytes:,} bytes per rank), "
              f"median of {args.repeats} calls")
        print(f"reduce_gradients (pack, Allgather, sum): "
              f"{1e3 * statistics.median(total):.3f} ms")
        print(f"Allgather alone:                         "
              f"{1e3 * statistics.median(gather):.3f} ms")


def fit(args) -> None:
    from cnnfast.datasets import mnist

    (x, y), _ = mnist.load_data(os.environ.get("CNNFAST_DATA"))
    x = (x[:args.limit].astype(np.float32) / 255.0)[..., None]
    y = cnnfast.utils.to_categorical(y[:args.limit], 10)
    model = _model()
    hist = model.fit(x, y, batch_size=128, epochs=2, verbose=0,
                     distributed=not args.local)
    steps = -(-len(x) // 128)
    if model.distribution is None or model.distribution.is_chief:
        ranks = 1 if model.distribution is None else model.distribution.size
        print(f"{ranks} rank(s) x {cnnfast.get_num_threads()} thread(s), "
              f"{len(x):,} images, {steps} steps of 128: "
              f"{1e3 * hist.train_seconds[1] / steps:.1f} ms/step (2nd epoch), "
              f"loss {hist.history['loss'][1]:.4f}")


def model(args) -> None:
    compute_ms = {int(k): float(v) for k, v in
                  (item.split("=") for item in args.compute.split(","))}
    n_grad = 421_642
    s_bytes = 4 * n_grad
    g = np.ones(n_grad, np.float32)
    out = np.zeros_like(g)
    t = []
    for _ in range(200):  # one pass over the gradients: out += row
        t0 = time.perf_counter()
        out += g
        t.append(time.perf_counter() - t0)
    pass_ms = 1e3 * statistics.median(t)
    alpha = args.latency_us * 1e-6
    steps = -(-49_000 // 128)
    print(f"S = {s_bytes / 1e6:.2f} MB of gradients, alpha = {args.latency_us:g} us per "
          f"message, one pass over the gradients here {pass_ms:.3f} ms, {steps} steps "
          "of 128 per epoch; 1 machine: "
          f"{compute_ms[128]:.1f} ms/step, {steps * compute_ms[128] / 1e3:.1f} s/epoch")
    print("machines  Gbit/s  local batch  compute ms  allgather ms  epoch s  speed-up"
          "  | ring allreduce ms  epoch s  speed-up")
    for gbit in (10, 25):
        bw = gbit * 1e9 / 8
        for n in (2, 4, 8, 16):
            b = 128 // n
            c = compute_ms[b]
            ag = 1e3 * (n - 1) * (alpha + s_bytes / bw) + (n + 1) * pass_ms
            ring = 1e3 * 2 * (n - 1) * (alpha + s_bytes / (n * bw))
            e_ag, e_ring = steps * (c + ag) / 1e3, steps * (c + ring) / 1e3
            base = steps * compute_ms[128] / 1e3
            print(f"{n:>8}  {gbit:>6}  {b:>11}  {c:>10.2f}  {ag:>12.2f}  {e_ag:>7.2f}  "
                  f"{base / e_ag:>7.2f}x  | {ring:>17.2f}  {e_ring:>7.2f}  "
                  f"{base / e_ring:>7.2f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("compute", "allreduce", "fit", "model"))
    p.add_argument("--threads", type=lambda s: [int(t) for t in s.split(",")], default=None,
                   help="kernel threads (compute: a list, e.g. 1,2, timed interleaved)")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--limit", type=int, default=12_800)
    p.add_argument("--local", action="store_true", help="fit: one process, not distributed")
    p.add_argument("--compute", default="128=18,64=10,32=6,16=4,8=3",
                   help="model: ms per step at local batches 128, 64, 32, 16, 8")
    p.add_argument("--latency-us", type=float, default=30.0,
                   help="model: latency per message, microseconds (TCP over Ethernet)")
    args = p.parse_args()
    if args.threads is not None:
        cnnfast.set_num_threads(args.threads[0])
    {"compute": compute, "allreduce": allreduce, "fit": fit, "model": model}[args.what](args)


if __name__ == "__main__":
    main()
