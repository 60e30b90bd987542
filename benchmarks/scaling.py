"""cnnfast's speed-up from 1 thread to N threads, measured interleaved.

    python benchmarks/scaling.py                 # 1 vs 2 threads: FMA ceiling, b, c, train
    python benchmarks/scaling.py --threads 1,2,4 --repeats 9

``cnnfast bench --threads N`` runs one thread count per invocation, so on a
noisy shared machine a 1-thread run and a 2-thread run minutes apart can
differ by the machine's drift alone. Here every round times each workload at
every thread count back to back (``cnnfast.set_num_threads`` between calls),
and the table gives the median over rounds of each time and of each round's
speed-up, which cancels most of the drift. cnnfast only (PyTorch's scaling is
in ``cnnfast bench``'s per-thread-count runs).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np

import cnnfast
import cnnfast._config
from cnnfast.bench import CONV_WORKLOADS, conv_inputs


def _conv_cases(name: str) -> dict:
    wl = CONV_WORKLOADS[name]
    inp = conv_inputs(wl)
    x, k, dy = inp["x"], inp["kernel"], inp["dy"]
    s = wl.stride
    y = cnnfast.empty_aligned(dy.shape)
    dx = cnnfast.empty_aligned(x.shape)
    dk = cnnfast.empty_aligned(k.shape)
    db = cnnfast.empty_aligned((k.shape[-1],))
    return {
        f"conv {name} fwd": lambda: cnnfast.conv2d(x, k, strides=s, padding="same", out=y),
        f"conv {name} bwd-input": lambda: cnnfast.conv2d_backward(
            dy, x, k, strides=s, padding="same", kernel_grad=False, out=(dx, None, None)),
        f"conv {name} bwd-kernel": lambda: cnnfast.conv2d_backward(
            dy, x, k, strides=s, padding="same", input_grad=False, out=(None, dk, db)),
    }


def _fma_case() -> dict:
    """The cores' arithmetic ceiling: a registers-only FMA loop (no memory, no
    synchronisation inside) on every thread. On a shared or virtual machine its
    speed-up is what the second core actually gives at the moment."""
    steps = 2_000_000  # split over the team: the same work at every thread count
    return {"FMA loop (registers only)":
            lambda: cnnfast._config.fma_ceiling(steps // cnnfast.get_num_threads())}


def _train_case() -> dict:
    from cnnfast.optimizers import Adam
    from cnnfast.tutorial import build_tutorial_model

    rng = np.random.default_rng(0)
    x = rng.random((128, 28, 28, 1), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 128)]
    model = build_tutorial_model()
    model.compile(optimizer=Adam(1e-3), loss="categorical_crossentropy")
    return {"training step, batch 128": lambda: model.train_on_batch(x, y)}


def _time(fn, min_s: float) -> float:
    """Median seconds of one call over calls spanning about min_s."""
    samples = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
        if time.perf_counter() - start >= min_s and len(samples) >= 3:
            return statistics.median(samples)


# The limit of cnnfast.set_num_threads, checked up front so that an out-of-range
# count is a usage error rather than a traceback mid-run.
MAX_THREADS = cnnfast._config.MAX_THREADS

WORKLOADS = (*CONV_WORKLOADS, "train", "fma")


def _comma_list(text: str, allowed: str) -> list[str]:
    """The items of a comma list; an empty list or item is an error ending in allowed."""
    items = [item.strip() for item in text.split(",")]
    if not text.strip():
        raise argparse.ArgumentTypeError(f"empty list; {allowed}")
    if "" in items:
        raise argparse.ArgumentTypeError(f"empty item in {text!r}; {allowed}")
    return items


def _thread_counts(text: str) -> list[int]:
    """argparse type: comma list of distinct thread counts in 1..MAX_THREADS."""
    allowed = f"allowed: a comma list of distinct integers 1-{MAX_THREADS}"
    counts = []
    for item in _comma_list(text, allowed):
        try:
            n = int(item)
        except ValueError:
            n = 0
        if not 1 <= n <= MAX_THREADS:
            raise argparse.ArgumentTypeError(f"invalid thread count {item!r}; {allowed}")
        counts.append(n)
    # A repeated count would pool two columns' samples into one key of the tables.
    if len(set(counts)) != len(counts):
        raise argparse.ArgumentTypeError(f"repeated thread count in {text!r}; {allowed}")
    return counts


def _workload_names(text: str) -> list[str]:
    """argparse type: comma list of names from WORKLOADS (repeats dropped)."""
    allowed = f"allowed: a comma list of {', '.join(WORKLOADS)}"
    items = _comma_list(text, allowed)
    for item in items:
        if item not in WORKLOADS:
            raise argparse.ArgumentTypeError(f"unknown workload {item!r}; {allowed}")
    return list(dict.fromkeys(items))


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        # 0 rounds would leave nothing to take the median of
        raise argparse.ArgumentTypeError(f"invalid value {text!r}; allowed: an integer >= 1")
    return n


def _sample_seconds(text: str) -> float:
    try:
        s = float(text)
    except ValueError:
        s = math.nan
    # NaN or infinity would never satisfy _time's stopping test: it would loop forever
    if not (math.isfinite(s) and s >= 0):
        raise argparse.ArgumentTypeError(
            f"invalid value {text!r}; allowed: a finite number of seconds >= 0")
    return s


def _table(cases, threads, times, ratios) -> list[str]:
    """Markdown lines; the speed-up columns only exist with a second thread count."""
    def row(cells):
        return "| " + " | ".join(cells) + " |"

    head = ["workload", *(f"{t} thr ms" for t in threads),
            *(f"x{t} vs {threads[0]}" for t in threads[1:])]
    lines = [row(head), "|---" * len(head) + "|"]
    for case in cases:
        ms = [f"{statistics.median(times[case, t]) * 1e3:.2f}" for t in threads]
        rs = [f"{statistics.median(ratios[case, t]):.2f}x" for t in threads[1:]]
        lines.append(row([case, *ms, *rs]))
    return lines


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=_thread_counts, default="1,2",
                    help="comma list, first is the baseline")
    ap.add_argument("--workloads", type=_workload_names, default="fma,b,c,train",
                    help="comma list of a-e, train and fma (the machine's FMA ceiling)")
    ap.add_argument("--repeats", type=_positive_int, default=7, help="rounds (default 7)")
    ap.add_argument("--sample", type=_sample_seconds, default=0.3, help="seconds per sample")
    args = ap.parse_args(argv)
    threads = args.threads
    cases: dict = {}
    for name in args.workloads:
        if name == "train":
            cases.update(_train_case())
        elif name == "fma":
            cases.update(_fma_case())
        else:
            cases.update(_conv_cases(name))
    times = {(c, t): [] for c in cases for t in threads}
    ratios = {(c, t): [] for c in cases for t in threads[1:]}
    try:
        for fn in cases.values():  # warm-up: workspaces, thread teams
            for t in threads:
                cnnfast.set_num_threads(t)
                fn()
        for _ in range(args.repeats):
            for case, fn in cases.items():
                base = None
                for t in threads:
                    cnnfast.set_num_threads(t)
                    s = _time(fn, args.sample)
                    times[case, t].append(s)
                    if base is None:
                        base = s
                    else:
                        ratios[case, t].append(base / s)
    finally:
        cnnfast.set_num_threads(None)
    print("\n".join(_table(cases, threads, times, ratios)))
    print(f"\n{args.repeats} interleaved rounds, medians; cnnfast {cnnfast.__version__}, "
          f"SIMD {cnnfast.simd_level()}")


if __name__ == "__main__":
    main()
