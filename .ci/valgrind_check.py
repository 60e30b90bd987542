"""A short workload for valgrind memcheck (.ci/valgrind): each kernel a few times
and a few training steps of a small Sequential model.

Run it under ``valgrind --error-exitcode=1 --leak-check=full`` with
PYTHONMALLOC=malloc (so memcheck sees CPython's allocations, not pymalloc's
arenas), OMP_NUM_THREADS=1 and CNNFAST_CPU_FEATURES at most avx2 (valgrind
does not emulate AVX-512). Shapes are tiny: under memcheck every instruction
costs ~50x.
"""

from __future__ import annotations

import numpy as np

import cnnfast
from cnnfast import layers, models, optimizers, utils


def kernels() -> None:
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal((2, 9, 9, 3)).astype(dtype)
        k = rng.standard_normal((3, 3, 3, 4)).astype(dtype)
        b = rng.standard_normal(4).astype(dtype)
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
        a = rng.standard_normal((13, 21)).astype(dtype)
        m = rng.standard_normal((21, 17)).astype(dtype)
        cnnfast.matmul(a, m)
        cnnfast.matmul(a.T, a)
        cnnfast.dense(a, m, rng.standard_normal(17).astype(dtype), activation="relu")


def training() -> None:
    utils.set_random_seed(0)
    model = models.Sequential([
        layers.Input(shape=(8, 8, 1)),
        layers.Conv2D(4, (3, 3), padding="same", activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dropout(0.25),
        layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer=optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(1)
    x = rng.random((8, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    for _ in range(3):
        loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    model.predict(x, verbose=0)


if __name__ == "__main__":
    kernels()
    training()
    print(f"valgrind_check: done ({cnnfast.simd_level()}, {cnnfast.get_num_threads()} thread)")
