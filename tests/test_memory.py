"""No memory growth from calling the kernels, or training, thousands of times.

Each case runs one call (or one training step) WARMUP times, so that every
lazily grown buffer (the C per-thread workspaces, numpy's small-array cache,
the optimizer's slots) reaches its steady size, then ITERS more times, and
compares three figures taken after the warm-up and after the loop:

- RSS (/proc/self/statm): sees everything, the C side's malloc'd workspaces
  included. Bound RSS_BOUND = 4 MiB: every case's smallest per-call result is
  at least 4 KiB, so leaking it on every call grows RSS by about
  ITERS * 4 KiB = 6 MiB or more, while allocator noise (glibc arenas, page
  granularity) stays well under a megabyte on a steady loop (0 measured).
- tracemalloc's traced memory: Python objects and numpy's array buffers
  (numpy reports its data allocations to tracemalloc), precise to the byte.
  Bound TRACED_BOUND = 16 KiB: one leaked Python object per call (the
  smallest, a float, is 24 bytes) grows it by ITERS * 24 bytes = 35 KiB
  (24 KiB over the training step's 1000 steps), while the loop's own noise
  is about 1 KiB.
- sys.getrefcount of every input array: a reference the boundary takes and
  never drops leaks no memory on its own, but keeps the array alive forever.

No timing is asserted. The shapes are small so the whole module runs in
about 15 s; the figures are printed (run with -s to see them). Not run under
the sanitizers (.ci/sanitize): ASan's quarantine holds freed memory back on
purpose, so RSS grows there.
"""

from __future__ import annotations

import gc
import os
import sys
import tracemalloc

import numpy as np
import pytest

import cnnfast
from cnnfast import layers, models, optimizers, utils

WARMUP = 100
ITERS = 1500
RSS_BOUND = 4 << 20
TRACED_BOUND = 16 << 10

pytestmark = pytest.mark.skipif(
    not os.path.exists("/proc/self/statm"), reason="needs /proc/self/statm (Linux)"
)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _assert_no_growth(name: str, step, inputs, warmup: int = WARMUP, iters: int = ITERS):
    """Run `step` warmup + iters times; assert RSS, traced memory and the inputs'
    reference counts do not grow over the last `iters` calls."""
    tracemalloc.start()
    try:
        for _ in range(warmup):
            step()
        gc.collect()
        refs0 = [sys.getrefcount(a) for a in inputs]
        traced0 = tracemalloc.get_traced_memory()[0]
        rss0 = _rss_bytes()
        for _ in range(iters):
            step()
        gc.collect()
        rss1 = _rss_bytes()
        traced1 = tracemalloc.get_traced_memory()[0]
        refs1 = [sys.getrefcount(a) for a in inputs]
    finally:
        tracemalloc.stop()
    d_rss, d_traced = rss1 - rss0, traced1 - traced0
    print(f"\n{name}: {iters} calls, RSS {d_rss / 1024:+.0f} KiB, "
          f"traced {d_traced / 1024:+.1f} KiB")
    assert refs1 == refs0, f"{name}: input reference counts {refs0} -> {refs1}"
    assert d_traced < TRACED_BOUND, f"{name}: traced memory grew by {d_traced} bytes"
    assert d_rss < RSS_BOUND, f"{name}: RSS grew by {d_rss} bytes"


def _conv_inputs(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 12, 12, 3)).astype(dtype)
    k = rng.standard_normal((3, 3, 3, 8)).astype(dtype)
    b = rng.standard_normal(8).astype(dtype)
    return x, k, b


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_forward_and_backward(dtype):
    x, k, b = _conv_inputs(dtype)
    y = cnnfast.conv2d(x, k, b, padding="same", activation="relu")
    dy = np.ones_like(y)

    def step():
        cnnfast.conv2d(x, k, b, padding="same", activation="relu")
        cnnfast.conv2d_backward(dy, x, k, padding="same")

    _assert_no_growth(f"conv2d {np.dtype(dtype).name}", step, [x, k, b, dy])


@pytest.mark.parametrize("mode", ["max", "min"])
def test_conv2d_pool2d_forward_and_backward(mode):
    # unpadded non-overlapping pooling windows: the fused path
    x, k, b = _conv_inputs(np.float32)
    p, idx = cnnfast.conv2d_pool2d(x, k, b, padding="same", activation="relu", pool_size=2,
                                   pool_mode=mode, return_indices=True)
    dp = np.ones_like(p)

    def step():
        cnnfast.conv2d_pool2d(x, k, b, padding="same", activation="relu", pool_size=2,
                              pool_mode=mode, return_indices=True)
        cnnfast.conv2d_pool2d_backward(dp, x, k, idx, p, padding="same", activation="relu",
                                       pool_size=2, pool_mode=mode)

    _assert_no_growth(f"conv2d_pool2d {mode}", step, [x, k, b, p, idx, dp])


@pytest.mark.parametrize("mode", ["max", "avg", "min"])
def test_pool2d_forward_and_backward(mode):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 16, 16, 8)).astype(np.float32)
    want_idx = mode != "avg"
    out = cnnfast.pool2d(x, 2, mode=mode, return_indices=want_idx)
    dy = np.ones_like(out[0] if want_idx else out)
    idx = out[1] if want_idx else None

    def step():
        cnnfast.pool2d(x, 2, mode=mode, return_indices=want_idx)
        cnnfast.pool2d_backward(dy, x, 2, mode=mode, indices=idx)
        if want_idx:  # the backward that searches the windows again
            cnnfast.pool2d_backward(dy, x, 2, mode=mode)

    _assert_no_growth(f"pool2d {mode}", step, [a for a in (x, dy, idx) if a is not None])


def test_matmul_and_dense():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((32, 48)).astype(np.float32)
    bm = rng.standard_normal((48, 32)).astype(np.float32)
    w = rng.standard_normal((48, 40)).astype(np.float32)
    bias = rng.standard_normal(40).astype(np.float32)
    out = np.zeros((32, 32), np.float32)

    def step():
        cnnfast.matmul(a, bm)
        cnnfast.matmul(a.T, a)                      # a transposed view read in place
        cnnfast.matmul(a, bm, out=out, accumulate=True)
        cnnfast.dense(a, w, bias, activation="relu")

    _assert_no_growth("matmul + dense", step, [a, bm, w, bias, out])


def test_training_step():
    utils.set_random_seed(0)
    model = models.Sequential([
        layers.Input(shape=(12, 12, 1)),
        layers.Conv2D(8, (3, 3), padding="same", activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dropout(0.25),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(3)
    x = rng.random((16, 12, 12, 1)).astype(np.float32)
    y = rng.integers(0, 10, 16)

    def step():
        model.train_on_batch(x, y)

    _assert_no_growth("training step", step, [x, y], warmup=50, iters=1000)
