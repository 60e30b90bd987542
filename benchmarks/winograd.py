"""Winograd against the direct path on the bench's 3x3 stride-1 cells, side by side.

    python benchmarks/winograd.py          # avx512 and avx2 (those the CPU has), 2 threads
    python benchmarks/winograd.py --levels avx2 --repeats 21 --cells b,c

Each SIMD level runs in a child process (``CNNFAST_CPU_FEATURES``). There every
round times each cell's direction with ``algorithm="direct"`` and then
``"winograd"`` back to back, and the table gives medians over rounds: the time,
the effective rate (the direct convolution's FLOPs / time) as a multiple of the
FMA-loop ceiling measured in the same process (``csrc/calibrate.c``), and the
median of each round's direct/winograd ratio. Timing noise on a shared machine
cancels in the ratio far better than in either time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

DIRECTIONS = ("fwd", "bwd-input", "bwd-kernel")


def _child(cells: list[str], repeats: int, threads: int) -> None:
    import numpy as np

    import cnnfast
    from cnnfast import _kernels
    from cnnfast.bench import CONV_WORKLOADS, conv_inputs

    cnnfast.set_num_threads(threads)

    def ceiling() -> float:
        rates = []
        for _ in range(5):
            t = time.perf_counter()
            flops = _kernels.fma_ceiling(2_000_000)
            rates.append(flops / (time.perf_counter() - t))
        return statistics.median(rates)

    ceil = ceiling()
    print(f"level {cnnfast.simd_level()}, {threads} threads, FMA-loop ceiling "
          f"{ceil / 1e9:.1f} GFLOP/s")
    print(f"{'cell':<5}{'direction':<12}{'direct ms':>10}{'x ceil':>8}{'winograd ms':>13}"
          f"{'x ceil':>8}{'speed-up':>10}")
    for name in cells:
        wl = CONV_WORKLOADS[name]
        inp = conv_inputs(wl)
        x, k, dy = inp["x"], inp["kernel"], inp["dy"]
        y = np.empty(dy.shape, dtype=x.dtype)
        flops = wl.flops()

        def run(direction: str, alg: str, x=x, k=k, y=y, dy=dy) -> None:
            if direction == "fwd":
                cnnfast.conv2d(x, k, padding="same", out=y, algorithm=alg)
            elif direction == "bwd-input":
                cnnfast.conv2d_backward(dy, x, k, padding="same", kernel_grad=False,
                                        algorithm=alg)
            else:
                cnnfast.conv2d_backward(dy, x, k, padding="same", input_grad=False,
                                        algorithm=alg)

        for direction in DIRECTIONS:
            times: dict[str, list[float]] = {"direct": [], "winograd": []}
            for alg in times:
                run(direction, alg)  # warm-up: workspaces, caches
            for _ in range(repeats):
                for alg in times:
                    t = time.perf_counter()
                    run(direction, alg)
                    times[alg].append(time.perf_counter() - t)
            md = {alg: statistics.median(v) for alg, v in times.items()}
            ratio = statistics.median(d / w for d, w in zip(times["direct"], times["winograd"]))
            print(f"{name:<5}{direction:<12}{md['direct'] * 1e3:>10.2f}"
                  f"{flops / md['direct'] / ceil:>8.2f}{md['winograd'] * 1e3:>13.2f}"
                  f"{flops / md['winograd'] / ceil:>8.2f}{ratio:>10.2f}")
    print(f"ceiling again: {ceiling() / 1e9:.1f} GFLOP/s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", default="avx512,avx2")
    ap.add_argument("--cells", default="b,c")
    ap.add_argument("--repeats", type=int, default=11)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    cells = args.cells.split(",")
    if args.child:
        _child(cells, args.repeats, args.threads)
        return 0
    from cnnfast import _kernels

    detected = _kernels.simd_detected()
    order = ["scalar", "avx2", "avx512"]
    for level in args.levels.split(","):
        if order.index(level) > order.index(detected):
            print(f"level {level}: not on this CPU ({detected})")
            continue
        env = dict(os.environ, CNNFAST_CPU_FEATURES=level)
        subprocess.run([sys.executable, __file__, "--child", "--cells", args.cells,
                        "--repeats", str(args.repeats), "--threads", str(args.threads)],
                       env=env, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
