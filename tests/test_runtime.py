"""Process-level runtime behaviour: kernels in a forked child, the memory kept by
short-lived threads and release_workspaces(), and flushing subnormals.

No timing assertions: a hang in a forked child fails its test after a timeout
instead of blocking the run; memory is read from /proc/self/statm.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import warnings

import numpy as np
import pytest
import threadpoolctl

import cnnfast
from cnnfast import reference as ref

HAS_FORK = "fork" in multiprocessing.get_all_start_methods()
HAS_STATM = os.path.exists("/proc/self/statm")
FORK_TIMEOUT_S = 60


@pytest.fixture(autouse=True)
def _defaults():
    """Every test starts and ends with the default thread count and no flushing."""
    cnnfast.set_num_threads(0)
    cnnfast.set_flush_denormal(False)
    yield
    cnnfast.set_num_threads(0)
    cnnfast.set_flush_denormal(False)


def _assert_identical(a_list, b_list):
    assert len(a_list) == len(b_list)
    for a, b in zip(a_list, b_list):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()  # bit-identical, not merely close


# ------------------------------------------------------------------- fork --

def _training_step():
    """One training step of a tiny CNN from a fixed seed: loss and new weights."""
    from cnnfast import layers, models, utils

    utils.set_random_seed(5)
    model = models.Sequential([
        layers.Conv2D(6, 3, padding="same", activation="relu", input_shape=(12, 12, 2)),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(4, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    rng = np.random.default_rng(6)
    x = rng.standard_normal((16, 12, 12, 2)).astype(np.float32)
    y = utils.to_categorical(rng.integers(0, 4, 16), 4)
    loss = model.train_on_batch(x, y)
    return [np.float64(loss), *model.get_weights()]


def _kernel_results():
    """conv2d, conv2d_backward, pool2d, matmul (each large enough for a 2-thread
    team) and a training step."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 33, 31, 16)).astype(np.float32)
    k = rng.standard_normal((3, 3, 16, 12)).astype(np.float32)
    y = cnnfast.conv2d(x, k, padding="same")
    res = [y, *cnnfast.conv2d_backward(np.cos(y), x, k, padding="same")]
    p, idx = cnnfast.pool2d(x, 2, return_indices=True)
    res += [p, idx, cnnfast.pool2d_backward(np.sin(p), x, 2, indices=idx)]
    a = rng.standard_normal((150, 170))
    res.append(cnnfast.matmul(a, rng.standard_normal((170, 140))))
    return res + _training_step()


def _in_forked_child(fn):
    """fn() in a child started with multiprocessing's "fork" method: its result,
    or a test failure when the child raises or gives nothing within the timeout
    (the child is then killed, so a hang cannot block the run)."""
    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)

    def target():
        try:
            send.send(("ok", fn()))
        except BaseException as exc:  # reported by the parent
            send.send(("error", repr(exc)))

    with warnings.catch_warnings():
        # Python 3.12+ warns that fork with threads may deadlock: the case under test
        warnings.simplefilter("ignore", DeprecationWarning)
        proc = ctx.Process(target=target, daemon=True)
        proc.start()
    send.close()
    try:
        if not recv.poll(FORK_TIMEOUT_S):
            pytest.fail(f"the forked child gave no result within {FORK_TIMEOUT_S} s "
                        "(hung in a kernel?)")
        status, value = recv.recv()
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()
        recv.close()
    assert status == "ok", value
    return value


needs_fork = pytest.mark.skipif(not HAS_FORK, reason="no fork start method here")


@needs_fork
def test_kernels_in_a_forked_child_after_the_parent_used_threads():
    # The parent's OpenMP pool exists (2 threads, warm); GNU OpenMP's pool does
    # not survive fork, and a multi-threaded region in the child would wait for
    # it forever. The child runs single-threaded and gets the same bits.
    cnnfast.set_num_threads(2)
    want = _kernel_results()
    assert cnnfast.get_num_threads() == (2 if cnnfast.openmp_enabled() else 1)

    def child():
        return cnnfast.get_num_threads(), _kernel_results()

    threads, got = _in_forked_child(child)
    assert threads == 1
    _assert_identical(want, got)
    # the parent is unaffected
    assert cnnfast.get_num_threads() == (2 if cnnfast.openmp_enabled() else 1)
    _assert_identical(want, _kernel_results())


@needs_fork
def test_set_num_threads_in_a_forked_child_is_capped_with_a_warning():
    cnnfast.set_num_threads(2)
    _kernel_results()

    def child():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cnnfast.set_num_threads(2)
            after_two = cnnfast.get_num_threads()
            cnnfast.set_num_threads(1)  # no warning: nothing to cap
            cnnfast.set_num_threads(None)
            after_default = cnnfast.get_num_threads()
        return (after_two, after_default, cnnfast._config.config_dict()["forked_child"],
                [(w.category.__name__, str(w.message)) for w in caught])

    after_two, after_default, forked, caught = _in_forked_child(child)
    assert (after_two, after_default, forked) == (1, 1, True)
    assert len(caught) == 1, caught
    category, message = caught[0]
    assert category == "RuntimeWarning"
    assert "forked child" in message and "single-threaded" in message
    assert cnnfast._config.config_dict()["forked_child"] is False


@needs_fork
def test_threadpoolctl_in_a_forked_child():
    cnnfast.set_num_threads(2)
    _kernel_results()

    def child():
        info = threadpoolctl.threadpool_info()  # calls omp_get_max_threads
        with threadpoolctl.threadpool_limits(1):  # calls omp_set_num_threads
            inside = cnnfast.get_num_threads()
            y = _kernel_results()[0]
        return len(info), inside, y

    n_info, inside, y = _in_forked_child(child)
    assert n_info >= 1 and inside == 1
    cnnfast.set_num_threads(1)
    _assert_identical([_kernel_results()[0]], [y])


@needs_fork
def test_fork_while_other_threads_are_inside_kernels():
    # Threads of the parent that are inside a kernel (holding the call gate, and
    # their own workspaces) at the moment of the fork do not exist in the child:
    # the child neither waits for them (release_workspaces) nor reuses their buffers.
    cnnfast.set_num_threads(2)
    want = _kernel_results()
    stop = threading.Event()
    rng = np.random.default_rng(8)
    x = rng.standard_normal((8, 64, 64, 16)).astype(np.float32)
    k = rng.standard_normal((3, 3, 16, 16)).astype(np.float32)

    def busy():
        while not stop.is_set():
            cnnfast.conv2d(x, k, padding="same")

    busy_threads = [threading.Thread(target=busy) for _ in range(2)]
    for t in busy_threads:
        t.start()
    try:
        def child():
            cnnfast.release_workspaces()
            res = _kernel_results()
            cnnfast.release_workspaces()
            return res

        for _ in range(3):
            _assert_identical(want, _in_forked_child(child))
    finally:
        stop.set()
        for t in busy_threads:
            t.join()


# ------------------------------------------------------------ workspaces --

def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


needs_statm = pytest.mark.skipif(not HAS_STATM, reason="needs /proc/self/statm")


@needs_statm
def test_short_lived_threads_do_not_grow_memory():
    # Each short-lived Python thread runs one convolution that keeps workspaces
    # (a padded image per team thread, about 0.6 MB each): those of the thread
    # and of its OpenMP workers are freed when they exit. Without that, 500
    # threads kept about 1 MB each. 10 threads warm the allocator up first.
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 96, 96, 16)).astype(np.float32)
    k = rng.standard_normal((3, 3, 16, 16)).astype(np.float32)
    cnnfast.set_num_threads(2)

    def run(count):
        for _ in range(count):
            t = threading.Thread(target=cnnfast.conv2d, args=(x, k), kwargs={"padding": "same"})
            t.start()
            t.join()

    run(10)
    before = _rss_mb()
    run(500)
    growth = _rss_mb() - before
    assert growth < 64, f"RSS grew by {growth:.0f} MB over 500 short-lived threads"


@needs_statm
def test_release_workspaces_returns_memory():
    # One image, two threads: the padded copy of the whole image (about 20 MB)
    # is a workspace of the calling thread, kept after the call.
    rng = np.random.default_rng(10)
    x = rng.standard_normal((1, 400, 400, 32)).astype(np.float32)
    k = rng.standard_normal((3, 3, 32, 8)).astype(np.float32)
    cnnfast.set_num_threads(2)
    want = cnnfast.conv2d(x, k, padding="same")
    cnnfast.release_workspaces()
    start = _rss_mb()
    y = cnnfast.conv2d(x, k, padding="same")
    held = _rss_mb()
    cnnfast.release_workspaces()
    released = _rss_mb()
    assert held - start > 10, (start, held)  # the workspace really was kept
    assert held - released > 10, (start, held, released)
    # and the next call allocates again and gives the same bits
    _assert_identical([want, want], [y, cnnfast.conv2d(x, k, padding="same")])


def test_release_workspaces_with_no_workspaces_and_twice():
    cnnfast.release_workspaces()
    cnnfast.release_workspaces()
    x = np.ones((2, 5, 5, 3))
    assert cnnfast.conv2d(x, np.ones((3, 3, 3, 2)), padding="same").shape == (2, 5, 5, 2)


# ---------------------------------------------------------- subnormals --

def _subnormal(dtype) -> float:
    """A subnormal value of dtype, about 2**8 above the smallest one."""
    return float(np.finfo(dtype).smallest_subnormal) * 256


def _flush(a: np.ndarray) -> np.ndarray:
    """a with its subnormals replaced by zero (what denormals-are-zero reads)."""
    tiny = np.finfo(a.dtype).tiny
    return np.where(np.abs(a) < tiny, np.zeros_like(a), a)


def _require_flush_support():
    if not cnnfast.set_flush_denormal(True):
        pytest.skip("no flush-to-zero control on this platform")


def test_flush_denormal_api():
    assert cnnfast.get_flush_denormal() is False
    supported = cnnfast.set_flush_denormal(True)
    assert isinstance(supported, bool)
    assert cnnfast.get_flush_denormal() is supported
    assert cnnfast.set_flush_denormal(False) is supported
    assert cnnfast.get_flush_denormal() is False
    assert cnnfast._config.config_dict()["flush_denormal"] is False


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_flush_denormal_conv_subnormal_inputs(dtype):
    # Image 0 holds subnormals only, image 1 normal values: with flushing, image
    # 0's output is exactly zero (its inputs read as zero), image 1's is unchanged.
    rng = np.random.default_rng(11)
    x = rng.uniform(1.0, 2.0, (4, 9, 10, 3)).astype(dtype)
    x[0] = _subnormal(dtype)
    x[2] *= _subnormal(dtype)  # subnormal too, spread over the range
    k = rng.standard_normal((3, 3, 3, 5)).astype(dtype)
    cnnfast.set_num_threads(2)  # both the caller and a worker see subnormal images
    off = cnnfast.conv2d(x, k, padding="same")
    assert np.all(off[0] != 0)  # not flushed
    want_off = ref.conv2d(x, k, padding="same")
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    scale = float(np.max(np.abs(want_off)))
    np.testing.assert_allclose(off[[1, 3]], want_off[[1, 3]], rtol=0, atol=rtol * scale)
    # subnormal results carry fewer bits: a few units of the smallest subnormal
    np.testing.assert_allclose(off[[0, 2]], want_off[[0, 2]], rtol=0,
                               atol=64 * float(np.finfo(dtype).smallest_subnormal))

    _require_flush_support()
    on = cnnfast.conv2d(x, k, padding="same")
    want = ref.conv2d(_flush(x), k, padding="same")
    assert not np.any(on[0]) and not np.any(on[2])
    assert not np.any(want[0]) and not np.any(want[2])
    np.testing.assert_array_equal(on[[1, 3]], off[[1, 3]])
    np.testing.assert_allclose(on, want, rtol=0, atol=rtol * scale)

    cnnfast.set_flush_denormal(False)
    np.testing.assert_array_equal(cnnfast.conv2d(x, k, padding="same"), off)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_flush_denormal_subnormal_weights_and_results(dtype):
    # Normal inputs whose products are subnormal: flushed to zero with the mode on
    # (flush-to-zero), kept (exactly the kernel's unflushed result) with it off.
    tiny = np.finfo(dtype).tiny
    small = np.sqrt(tiny) / dtype(64)  # products of two such values are subnormal
    rng = np.random.default_rng(12)
    x = rng.uniform(1.0, 2.0, (3, 8, 8, 4)).astype(dtype) * small
    k = rng.uniform(1.0, 2.0, (3, 3, 4, 6)).astype(dtype) * small
    a = rng.uniform(1.0, 2.0, (40, 30)).astype(dtype) * small
    assert x.dtype == k.dtype == a.dtype == dtype
    cnnfast.set_num_threads(2)
    off = [cnnfast.conv2d(x, k, padding="same"), cnnfast.matmul(a, a.T.copy())]
    assert all(np.all(o != 0) and np.all(np.abs(o) < tiny) for o in off)  # subnormal
    # subnormal results carry fewer bits: a few units of the smallest subnormal
    np.testing.assert_allclose(off[0], ref.conv2d(x, k, padding="same"), rtol=0,
                               atol=64 * float(np.finfo(dtype).smallest_subnormal))

    _require_flush_support()
    on = [cnnfast.conv2d(x, k, padding="same"), cnnfast.matmul(a, a.T.copy())]
    for o in on:
        assert not np.any(o)
    # subnormal weights with normal inputs: every product reads as zero
    ks = np.full((3, 3, 4, 6), _subnormal(dtype), dtype)
    xs = rng.uniform(1.0, 2.0, (3, 8, 8, 4)).astype(dtype)
    assert not np.any(cnnfast.conv2d(xs, ks, padding="same"))
    cnnfast.set_flush_denormal(False)
    assert np.all(cnnfast.conv2d(xs, ks, padding="same") != 0)
    _assert_identical(off, [cnnfast.conv2d(x, k, padding="same"),
                            cnnfast.matmul(a, a.T.copy())])


def test_flush_denormal_leaves_the_callers_arithmetic_alone():
    # The mode is the kernels' own: NumPy in the calling thread (and in other
    # Python threads that call kernels) still computes subnormals afterwards.
    _require_flush_support()
    tiny = np.finfo(np.float32).tiny
    x = np.ones((2, 6, 6, 2), np.float32)
    k = np.ones((3, 3, 2, 2), np.float32)

    def subnormal_arithmetic_works() -> bool:
        s = np.full(16, tiny, np.float32) / np.float32(4)  # a subnormal result
        return bool(np.all(s > 0) and np.all(s * np.float32(2) > 0))

    assert subnormal_arithmetic_works()
    cnnfast.conv2d(x, k, padding="same")
    cnnfast.matmul(np.ones((64, 64)), np.ones((64, 64)))
    assert subnormal_arithmetic_works()
    assert sys.float_info.min / 4 > 0.0  # Python floats too

    seen = []

    def thread():
        cnnfast.conv2d(x, k, padding="same")
        seen.append(subnormal_arithmetic_works())

    t = threading.Thread(target=thread)
    t.start()
    t.join()
    assert seen == [True]
