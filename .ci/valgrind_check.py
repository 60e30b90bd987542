"""A short workload of every kernel and a few training steps, for the memory checkers.

Default (tiny shapes): for valgrind memcheck (.ci/valgrind), run with
PYTHONMALLOC=malloc (so memcheck sees CPython's allocations, not pymalloc's
arenas), OMP_NUM_THREADS=1 and CNNFAST_CPU_FEATURES at most avx2 (valgrind
does not emulate AVX-512); under memcheck every instruction costs ~50x.

``--threaded``: shapes past the work thresholds (65536 multiply-adds or
elements) below which pooling, GEMM, the elementwise and optimizer kernels
stay on one thread, so that with OMP_NUM_THREADS >= 2 every kernel surely
runs on a thread team. The sanitizer job (.ci/sanitize) runs this after the
tests, whose shapes are chosen for the code paths rather than the thresholds.
"""

from __future__ import annotations

import sys

import numpy as np

import cnnfast
from cnnfast import layers, models, optimizers, utils


def kernels(big: bool) -> None:
    rng = np.random.default_rng(0)
    n, hw, c, f = (8, 32, 8, 16) if big else (2, 9, 3, 4)
    m, kk, nn = (70, 90, 80) if big else (13, 21, 17)
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal((n, hw, hw, c)).astype(dtype)
        k = rng.standard_normal((3, 3, c, f)).astype(dtype)
        b = rng.standard_normal(f).astype(dtype)
        for padding, strides, dil in (("same", 1, 1), ("valid", 2, 1), ("valid", 1, 2)):
            y = cnnfast.conv2d(x, k, b, strides=strides, padding=padding, dilation_rate=dil,
                               activation="relu")
            cnnfast.conv2d_backward(np.ones_like(y), x, k, strides=strides, padding=padding,
                                    dilation_rate=dil)
        for mode in ("max", "min"):
            p, idx = cnnfast.conv2d_pool2d(x, k, b, padding="same", activation="relu",
                                           pool_size=2, pool_mode=mode, return_indices=True)
            cnnfast.conv2d_pool2d_backward(np.ones_like(p), x, k, idx, p, padding="same",
                                           activation="relu", pool_size=2, pool_mode=mode)
        for mode in ("max", "avg", "min"):
            for pool, stride, padding in ((2, None, "valid"), (3, 2, "same")):
                p = cnnfast.pool2d(x, pool, strides=stride, padding=padding, mode=mode)
                cnnfast.pool2d_backward(np.ones_like(p), x, pool, strides=stride,
                                        padding=padding, mode=mode)
        a = rng.standard_normal((m, kk)).astype(dtype)
        w = rng.standard_normal((kk, nn)).astype(dtype)
        cnnfast.matmul(a, w)
        cnnfast.matmul(a.T, a)
        cnnfast.dense(a, w, rng.standard_normal(nn).astype(dtype), activation="relu")


def training(big: bool) -> None:
    hw, f, batch = (32, 16, 16) if big else (8, 4, 8)
    utils.set_random_seed(0)
    model = models.Sequential([
        layers.Input(shape=(hw, hw, 1)),
        layers.Conv2D(f, (3, 3), padding="same", activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(32, activation="relu"),  # 131072 weights when big: Adam on a team
        layers.Dropout(0.25),
        layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer=optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(1)
    x = rng.random((batch, hw, hw, 1)).astype(np.float32)
    y = rng.integers(0, 3, batch)
    for _ in range(3):
        loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    model.predict(x, verbose=0)


if __name__ == "__main__":
    big = "--threaded" in sys.argv[1:]
    kernels(big)
    training(big)
    print(f"valgrind_check: done ({'threaded' if big else 'tiny'} shapes, "
          f"{cnnfast.simd_level()}, {cnnfast.get_num_threads()} thread(s))")
