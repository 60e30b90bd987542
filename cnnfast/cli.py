"""The ``cnnfast`` command: ``cnnfast train | bench | info``.

``cnnfast train`` trains the tutorial's MNIST CNN with the Keras-style API --
Conv2D(32, 3x3, same, relu) -> MaxPooling2D(2) -> Conv2D(64, 3x3, same, relu) ->
MaxPooling2D(2) -> Flatten -> Dense(128, relu) -> Dropout(0.5) -> Dense(10, softmax),
Adam, batch 128 -- on the tutorial's split: the 70,000 MNIST images (train then
test, OpenML's ``mnist_784`` order), 70/30 as scikit-learn's
``train_test_split(random_state=1)`` draws it (the same indices, made here without
scikit-learn). It prints progress, the time of every epoch and the accuracy on the
21,000 held-out images, and can save the weights and a PNG of the training curves.
``--dataset digits`` runs the same architecture on scikit-learn's bundled 8x8
digits, offline (that one needs scikit-learn). ``--distributed`` trains data-parallel
over the MPI job it runs in (``mpiexec -n 2 cnnfast train --distributed``;
``cnnfast.distributed``): rank 0 alone prints and writes files.

The model and the split live in ``cnnfast.tutorial`` (``cnnfast bench`` times the same
model); this module re-exports them. ``cnnfast bench`` is ``cnnfast.bench.main``,
imported only when that command runs; ``cnnfast info`` prints ``cnnfast.show_config()``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Sequence

import numpy as np

from ._cli_args import int_in, matplotlib_missing, output_path, thread_count
from ._fileio import save_figure
from .tutorial import build_tutorial_model, tutorial_split

__all__ = ["main", "build_tutorial_model", "tutorial_split"]

_USAGE = """\
usage: cnnfast <command> [options]

commands:
  train   train the tutorial's MNIST CNN (cnnfast train --help)
  bench   benchmark cnnfast against NumPy and PyTorch (cnnfast bench --help)
  info    print the build and run-time configuration
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cnnfast`` console script; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_USAGE, end="")
        return 0 if args else 2
    cmd, rest = args[0], args[1:]
    if cmd == "train":
        return train_main(rest)
    if cmd == "bench":
        from cnnfast.bench import main as bench_main

        return int(bench_main(rest) or 0)
    if cmd == "info":
        try:
            argparse.ArgumentParser(
                prog="cnnfast info",
                description="Print the build and run-time configuration "
                            "(cnnfast.show_config()).",
            ).parse_args(rest)
        except SystemExit as e:  # argparse has printed the usage error (or --help)
            return int(e.code or 0)
        import cnnfast

        cnnfast.show_config()
        return 0
    if cmd in ("--version", "-V"):
        import cnnfast

        print(f"cnnfast {cnnfast.__version__}")
        return 0
    print(f"cnnfast: unknown command {cmd!r}\n\n{_USAGE}", end="", file=sys.stderr)
    return 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cnnfast train",
        description="Train the tutorial's MNIST CNN (Keras-style API, Adam, 70/30 split).",
    )
    p.add_argument("--dataset", choices=("mnist", "digits"), default="mnist",
                   help="mnist (default) or scikit-learn's bundled 8x8 digits (offline)")
    p.add_argument("--epochs", type=int_in(1), default=None,
                   help="epochs (default: 3 for mnist, 30 for digits)")
    p.add_argument("--batch-size", type=int_in(1), default=128,
                   help="batch size (default 128)")
    p.add_argument("--threads", type=thread_count, default=None,
                   help="threads of the cnnfast kernels, Dense layers included (default: "
                        "all cores; with --distributed, per rank: a host's cores divided "
                        "among its ranks)")
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel over the MPI job (mpiexec -n N cnnfast train "
                        "--distributed; needs pip install 'cnnfast[mpi]')")
    p.add_argument("--data", default=None,
                   help="directory with the MNIST IDX files (default: $CNNFAST_DATA, "
                        "else ~/.cache/cnnfast/mnist, downloading when missing)")
    p.add_argument("--seed", type=int_in(0), default=1,
                   help="random seed for weights, shuffling and dropout (default 1)")
    p.add_argument("--limit", type=int_in(2), default=None,
                   help="use only the first N >= 2 images before the split (quick runs)")
    p.add_argument("--save-weights", metavar="PATH", type=output_path, default=None,
                   help="save the trained weights to PATH (.npz)")
    p.add_argument("--plot", metavar="PNG", type=output_path, default=None,
                   help="save the training curves to PNG (needs matplotlib)")
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                   help="1: progress bar (default), 2: one line per epoch, 0: quiet")
    return p


def _load(args) -> tuple:
    """(x, y, description) for the chosen dataset: x float32 in [0, 1], NHWC."""
    if args.dataset == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        x = (d.images / 16.0).astype(np.float32)[..., None]
        return x, d.target.astype(np.int64), "scikit-learn digits (8x8)"
    from .datasets import mnist

    (x_tr, y_tr), (x_te, y_te) = mnist.load_data(args.data)
    # Train then test = the 70,000 images in OpenML mnist_784's order (the tutorial's).
    x = np.concatenate([x_tr, x_te])
    y = np.concatenate([y_tr, y_te]).astype(np.int64)
    return x, y, "MNIST (28x28)"


def train_main(argv: Sequence[str]) -> int:
    """``cnnfast train``; returns the exit status."""
    try:
        args = _parser().parse_args(list(argv))
    except SystemExit as e:  # argparse has printed the usage error (or --help)
        return int(e.code or 0)
    if args.epochs is None:
        args.epochs = 30 if args.dataset == "digits" else 3
    if args.dataset == "digits":
        try:
            import sklearn  # noqa: F401
        except ImportError:
            print("cnnfast train: --dataset digits needs scikit-learn (its bundled 8x8 "
                  "digits): pip install scikit-learn", file=sys.stderr)
            return 1
    missing = matplotlib_missing() if args.plot else None
    if missing:
        print(f"cnnfast train: {missing}", file=sys.stderr)
        return 1

    import cnnfast

    previous_threads = cnnfast.get_num_threads()
    with contextlib.ExitStack() as stack:
        if args.distributed:
            from . import distributed

            try:
                strategy = distributed.MPIStrategy()  # imports mpi4py, starts MPI
            except ImportError as e:  # mpi4py missing: say what to install
                print(f"cnnfast train: --distributed: {e}", file=sys.stderr)
                return 1
            distributed.abort_on_exception(strategy.comm)  # a failing rank ends the job
            if args.threads is None:
                args.threads = distributed.threads_per_rank(strategy.comm)
            strategy.threads = args.threads
            args.distributed = strategy
            if not args.distributed.is_chief:  # rank 0 prints for the job
                devnull = stack.enter_context(open(os.devnull, "w"))
                stack.enter_context(contextlib.redirect_stdout(devnull))
        if args.threads is not None:
            cnnfast.set_num_threads(args.threads)
        try:
            return _train(args)
        finally:
            if args.threads is not None:
                cnnfast.set_num_threads(previous_threads)


def _train(args) -> int:
    import cnnfast

    from .datasets.mnist import MNISTDataError
    from .utils import set_random_seed, to_categorical

    if args.data is not None and not os.path.isdir(os.path.expanduser(args.data)):
        print(f"cnnfast train: --data {args.data}: no such directory (it must hold the four "
              "MNIST IDX files; without --data, $CNNFAST_DATA or the download cache is "
              "used)", file=sys.stderr)
        return 1
    try:
        x_all, y_all, what = _load(args)
    except MNISTDataError as e:
        print(f"cnnfast train: {e}", file=sys.stderr)
        return 1
    if args.limit is not None:
        x_all, y_all = x_all[:args.limit], y_all[:args.limit]
    idx_train, idx_test = tutorial_split(len(x_all))
    x_train, x_test = _prepare(x_all[idx_train]), _prepare(x_all[idx_test])
    num_classes = 10
    y_train = to_categorical(y_all[idx_train], num_classes)
    y_test = to_categorical(y_all[idx_test], num_classes)

    set_random_seed(args.seed)
    model = build_tutorial_model(x_train.shape[1:], num_classes)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])

    ranks = f"MPI ranks: {args.distributed.size} | " if args.distributed else ""
    print(f"cnnfast {cnnfast.__version__} | {ranks}kernel threads: "
          f"{cnnfast.get_num_threads()}{' per rank' if ranks else ''} | "
          f"SIMD: {cnnfast.simd_level()} | seed: {args.seed}")
    print(f"{what}: {len(x_train):,} training / {len(x_test):,} test images "
          "(70/30 train_test_split, random_state=1)")
    if args.verbose:
        model.summary()
    t0 = time.perf_counter()
    hist = model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
                     verbose=args.verbose, validation_data=(x_test, y_test),
                     distributed=args.distributed)
    total = time.perf_counter() - t0
    h = hist.history
    print()
    print("epoch  train s  loss    accuracy  test loss  test accuracy")
    for i in range(len(hist.epoch)):
        print(f"{i + 1:>5}  {hist.train_seconds[i]:7.1f}  {h['loss'][i]:.4f}  "
              f"{h['accuracy'][i]:.4f}    {h['val_loss'][i]:.4f}     {h['val_accuracy'][i]:.4f}")
    mean_s = float(np.mean(hist.train_seconds))
    print(f"Test accuracy: {h['val_accuracy'][-1]:.4f} on {len(x_test):,} held-out images "
          f"after {len(hist.epoch)} epochs; {mean_s:.1f} s per epoch (training), "
          f"{total:.1f} s in all")
    try:
        if args.save_weights:
            model.save_weights(args.save_weights)
            print(f"weights saved to {args.save_weights}")
        if args.plot and (not args.distributed or args.distributed.is_chief):
            written = _plot(hist, args.plot, what)
            print(f"training curves saved to {written}")
    except OSError as e:  # checked up front, but the disk can still fill or vanish
        print(f"cnnfast train: could not write {e.filename or ''}: {e.strerror or e}",
              file=sys.stderr)
        return 1
    return 0


def _prepare(x: np.ndarray) -> np.ndarray:
    """uint8 images (N, H, W) -> float32 (N, H, W, 1) in [0, 1]; floats pass unscaled."""
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255.0
    if x.ndim == 3:
        x = x[..., None]
    return np.ascontiguousarray(x, dtype=np.float32)


def _plot(hist, path: str, what: str) -> str:
    """Training curves to ``path``, written atomically; returns the path written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = hist.history
    epochs: list[int] = [e + 1 for e in hist.epoch]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, h["loss"], "o-", label="training")
    ax1.plot(epochs, h["val_loss"], "o-", label="test")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("cross-entropy loss")
    ax1.legend()
    ax2.plot(epochs, h["accuracy"], "o-", label="training")
    ax2.plot(epochs, h["val_accuracy"], "o-", label="test")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("accuracy")
    ax2.legend()
    fig.suptitle(f"cnnfast train: {what}")
    fig.tight_layout()
    try:
        return save_figure(fig, path, dpi=100)
    finally:
        plt.close(fig)
