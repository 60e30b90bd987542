"""cnnfast and PyTorch convolutions in one process, alternating: two OpenMP runtimes.

    python benchmarks/torch_side_by_side.py                 # cnnfast imported first
    python benchmarks/torch_side_by_side.py --torch-first
    python benchmarks/torch_side_by_side.py --rounds 30 --workload c

With cnnfast's manylinux wheel the process holds two GNU OpenMP runtimes: the wheel's
renamed libgomp and PyTorch's (with a build from source, or with torch imported first,
one; see cnnfast/_openmp_env.py). Each keeps its own worker threads, which spin for a
while after a parallel region before they sleep, so alternating calls could leave one
library's workers spinning on the cores the other needs. This times the bench's
convolution forward (workload b by default, float32, channels-last) three ways, every
round back to back: cnnfast alone, torch alone, then cnnfast and torch alternately,
and reports per-call medians, the process's CPU time over wall time in each phase
(about the thread count when no one spins in vain), the OS threads the process holds
and whether the two results agree. cnnfast's ``info`` fields for the runtimes are
printed first.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import time


def _threads_in_process() -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _timed(fn, calls: int) -> tuple[float, float]:
    """(median wall seconds per call, process CPU seconds / wall seconds) over calls."""
    walls = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t)
    wall = time.perf_counter() - wall0
    return statistics.median(walls), (time.process_time() - cpu0) / wall


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--torch-first", action="store_true", help="import torch before cnnfast")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--calls", type=int, default=5, help="calls per phase and round")
    ap.add_argument("--workload", default="b", help="a convolution of cnnfast bench (a-e)")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads for both (default: each library's own default)")
    args = ap.parse_args(argv)

    order = ("torch", "cnnfast") if args.torch_first else ("cnnfast", "torch")
    modules = {name: importlib.import_module(name) for name in order}
    cnnfast, torch = modules["cnnfast"], modules["torch"]
    import numpy as np

    from cnnfast._config import config_dict
    from cnnfast.bench import CONV_WORKLOADS, conv_inputs

    if args.threads:
        cnnfast.set_num_threads(args.threads)
        torch.set_num_threads(args.threads)
    cfg = config_dict()
    print(f"imported: {'torch, cnnfast' if args.torch_first else 'cnnfast, torch'}; "
          f"cnnfast {cnnfast.__version__} from {os.path.dirname(cnnfast.__file__)}; "
          f"torch {torch.__version__}")
    for key in ("openmp_library", "other_openmp_runtimes", "GOMP_SPINCOUNT", "simd_in_use"):
        print(f"  {key}: {cfg[key]}")
    print(f"  threads: cnnfast {cnnfast.get_num_threads()}, torch {torch.get_num_threads()}")

    wl = CONV_WORKLOADS[args.workload]
    inp = conv_inputs(wl)
    x, k = inp["x"], inp["kernel"]
    y = cnnfast.empty_aligned(inp["dy"].shape)
    tx = torch.from_numpy(x).permute(0, 3, 1, 2)  # NCHW view of NHWC: channels_last
    tk = torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1)))
    tk = tk.contiguous(memory_format=torch.channels_last)

    def run_cnnfast():
        cnnfast.conv2d(x, k, strides=wl.stride, padding="same", out=y)

    def run_torch():
        with torch.no_grad():
            return torch.nn.functional.conv2d(tx, tk, stride=wl.stride, padding=wl.k // 2)

    def alternate():
        run_cnnfast()
        run_torch()

    run_cnnfast()
    got = run_torch().permute(0, 2, 3, 1).numpy()
    err = float(np.max(np.abs(got - y)))
    print(f"conv {args.workload} {wl.n}x{wl.h}x{wl.w}x{wl.c} -> {wl.f}, {wl.k}x{wl.k}: "
          f"max |cnnfast - torch| = {err:.2e}")
    phases = {"cnnfast alone": run_cnnfast, "torch alone": run_torch,
              "alternating (cnnfast + torch)": alternate}
    times = {name: [] for name in phases}
    ratios = {name: [] for name in phases}
    for _ in range(args.rounds):
        for name, fn in phases.items():
            t, r = _timed(fn, args.calls)
            times[name].append(t)
            ratios[name].append(r)
    print(f"OS threads in the process: {_threads_in_process()}")
    print(f"{'phase':32} {'median ms/call':>15} {'CPU/wall':>9}  ({args.rounds} rounds "
          f"x {args.calls} calls)")
    for name in phases:
        print(f"{name:32} {1e3 * statistics.median(times[name]):15.2f} "
              f"{statistics.median(ratios[name]):9.2f}")
    alone = statistics.median(times["cnnfast alone"]) + statistics.median(times["torch alone"])
    print(f"alternating / (cnnfast alone + torch alone): "
          f"{statistics.median(times['alternating (cnnfast + torch)']) / alone:.3f}")
    return 0 if err < 1e-3 else 1


if __name__ == "__main__":
    sys.exit(main())
