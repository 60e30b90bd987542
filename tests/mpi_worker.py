"""The program tests/test_distributed.py runs under ``mpiexec`` (and alone, as the
one-process reference): a small CNN with dropout on synthetic data, 20 optimizer steps.

    python mpi_worker.py MODE OUT_DIR

MODE ``local``: one process, ``fit()``; ``mpi``: ``fit(distributed=True)``; ``raise``:
like ``mpi``, but rank 1 raises in its 3rd step; ``perturb``: like ``mpi``, but rank 1
starts from other weights, optimizer state and random generator (``fit`` must replace
them with rank 0's); ``mismatch``: rank 1 has one sample fewer. Each rank writes
OUT_DIR/rank<r>.npz: the final weights, a SHA-256 of its weights after every step, the
history; and calls ``save_weights(OUT_DIR/saved_by_<r>.npz)``, and its callbacks write
``log_<r>.csv`` and ``ckpt_<r>.npz`` (only rank 0 should write); a learning-rate schedule
halves the rate in the second epoch (on every rank alike).
"""

from __future__ import annotations

import hashlib
import os
import sys

import numpy as np

from cnnfast.callbacks import CSVLogger, LearningRateScheduler, ModelCheckpoint
from cnnfast.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from cnnfast.models import Sequential
from cnnfast.utils import set_random_seed, to_categorical

# 280 samples in batches of 31: 9 batches of 31 (16 + 15 samples on 2 ranks) and one
# of 1 (rank 1 holds none): 10 steps per epoch, 20 in 2 epochs.
N, BATCH, EPOCHS = 280, 31, 2


def main(mode: str, out_dir: str) -> None:
    data = np.random.default_rng(7)
    x = data.standard_normal((N, 8, 8, 1)).astype(np.float32)
    y = to_categorical(data.integers(0, 3, N), 3)
    xv = data.standard_normal((45, 8, 8, 1)).astype(np.float32)
    yv = to_categorical(data.integers(0, 3, 45), 3)
    set_random_seed(11)
    model = Sequential([
        Conv2D(4, 3, padding="same", activation="relu", input_shape=(8, 8, 1)),
        MaxPooling2D(2), Flatten(), Dense(16, activation="relu"), Dropout(0.5),
        Dense(3, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    rank = 0
    if mode != "local":
        from mpi4py import MPI

        rank = MPI.COMM_WORLD.Get_rank()
    if rank == 1 and mode == "perturb":
        set_random_seed(99)
        for w in model.weights:
            w += 1.0
        model.optimizer.build(model.trainable_weights)
        for slot in model.optimizer.state().values():
            for a in slot:
                a.fill(3.0)
        model.optimizer.iterations = 7
    if rank == 1 and mode == "mismatch":
        x, y = x[:-1], y[:-1]
    digests: list[str] = []
    apply = model.optimizer.apply

    def apply_and_record(params, grads):
        apply(params, grads)
        if mode == "raise" and rank == 1 and model.optimizer.iterations == 3:
            raise RuntimeError("rank 1 fails on purpose in step 3")
        h = hashlib.sha256()
        for w in model.weights:
            h.update(np.ascontiguousarray(w).tobytes())
        digests.append(h.hexdigest())

    model.optimizer.apply = apply_and_record
    callbacks = [
        CSVLogger(os.path.join(out_dir, f"log_{rank}.csv")),
        ModelCheckpoint(os.path.join(out_dir, f"ckpt_{rank}.npz"), save_weights_only=True),
        LearningRateScheduler(lambda epoch, lr: lr / 2 if epoch == 1 else lr),
    ]
    hist = model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, verbose=2, callbacks=callbacks,
                     validation_data=(xv, yv), distributed=mode != "local")
    model.save_weights(os.path.join(out_dir, f"saved_by_{rank}.npz"))
    np.savez(os.path.join(out_dir, f"rank{rank}.npz"), *model.get_weights(),
             digests=np.array(digests),
             history=np.array([hist.history[k] for k in sorted(hist.history)]))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
