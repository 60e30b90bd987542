"""The workloads whose instruction counts .ci/callgrind guards.

Run under callgrind by .ci/callgrind, at the avx2 level with one thread, so the
count of instructions executed in cnnfast's C kernels is the same on every x86-64
machine with AVX2 (AVX-512 machines are capped to the same code) and from run to
run: a regression shows as a larger count, never as noise.

    python .ci/callgrind_workload.py mnist-step | conv-cells
"""

from __future__ import annotations

import sys

import numpy as np

import cnnfast
from cnnfast.bench.workloads import CONV_WORKLOADS
from cnnfast.tutorial import build_tutorial_model
from cnnfast.utils import set_random_seed, to_categorical


def mnist_step() -> None:
    """Two training steps of the tutorial CNN (Adam, dropout) on a batch of 8."""
    set_random_seed(1)
    model = build_tutorial_model()
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.random((8, 28, 28, 1), dtype=np.float32)
    y = to_categorical(rng.integers(0, 10, 8), 10)
    for _ in range(2):
        model.train_on_batch(x, y)


def conv_cells() -> None:
    """Forward, input gradient and kernel gradient of each of the bench's convolution
    cells a-e on 2 images."""
    rng = np.random.default_rng(0)
    for wl in CONV_WORKLOADS.values():
        x = rng.standard_normal((2, wl.h, wl.w, wl.c), dtype=np.float32)
        kernel = rng.standard_normal((wl.k, wl.k, wl.c, wl.f), dtype=np.float32)
        y = cnnfast.conv2d(x, kernel, None, wl.stride, "same")
        cnnfast.conv2d_backward(np.ones_like(y), x, kernel, wl.stride, "same")


WORKLOADS = {"mnist-step": mnist_step, "conv-cells": conv_cells}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in WORKLOADS:
        sys.exit(f"usage: {sys.argv[0]} {{{' | '.join(WORKLOADS)}}}")
    cnnfast.set_num_threads(1)
    WORKLOADS[sys.argv[1]]()
