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
from cnnfast.tutorial import build_tutorial_model
from cnnfast.utils import set_random_seed, to_categorical

# the bench's convolution cells a-e (cnnfast bench), at a small batch:
# (H, W, C, F, kernel, stride)
CONV_CELLS = {
    "a": (28, 28, 1, 32, 3, 1),
    "b": (14, 14, 32, 64, 3, 1),
    "c": (56, 56, 64, 64, 3, 1),
    "d": (56, 56, 64, 128, 3, 2),
    "e": (28, 28, 1, 32, 5, 1),
}


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
    """Forward, input gradient and kernel gradient of each cell on 2 images."""
    rng = np.random.default_rng(0)
    for h, w, c, f, k, s in CONV_CELLS.values():
        x = rng.standard_normal((2, h, w, c), dtype=np.float32)
        kernel = rng.standard_normal((k, k, c, f), dtype=np.float32)
        y = cnnfast.conv2d(x, kernel, None, s, "same")
        cnnfast.conv2d_backward(np.ones_like(y), x, kernel, s, "same")


WORKLOADS = {"mnist-step": mnist_step, "conv-cells": conv_cells}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in WORKLOADS:
        sys.exit(f"usage: {sys.argv[0]} {{{' | '.join(WORKLOADS)}}}")
    cnnfast.set_num_threads(1)
    WORKLOADS[sys.argv[1]]()
