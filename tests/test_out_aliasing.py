"""``out=`` arrays that overlap an input: the result is the call's result without ``out=``.

The rule (README, notes/api-contract.md): an input that shares memory with an
output is copied before any kernel runs, so in-place updates such as
``conv2d(x, k, out=x)`` are exact; ``out`` entries of one call that overlap each
other are refused with a ValueError naming both.
"""

from __future__ import annotations

import numpy as np
import pytest

import cnnfast

FMTS = ["channels_last", "channels_first"]


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.mark.parametrize("fmt", FMTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_out_is_x_1x1(fmt, dtype):
    # the case: a 1x1 kernel, 32 -> 32 channels, written over its input
    rng = _rng(1)
    shape = (4, 9, 9, 32) if fmt == "channels_last" else (4, 32, 9, 9)
    x = rng.standard_normal(shape).astype(dtype)
    k = rng.standard_normal((1, 1, 32, 32) if fmt == "channels_last" else (32, 32, 1, 1))
    k = k.astype(dtype)
    b = rng.standard_normal(32).astype(dtype)
    ref = cnnfast.conv2d(x, k, b, data_format=fmt, activation="relu")
    got = cnnfast.conv2d(x, k, b, data_format=fmt, activation="relu", out=x)
    assert got is x
    assert np.array_equal(got, ref)


def test_conv2d_out_overlaps_kernel_and_bias():
    # out is a view of one buffer that also holds the kernel and the bias
    rng = _rng(2)
    buf = rng.standard_normal(4 * 5 * 5 * 3 + 3 * 3 * 3 * 3 + 3)
    k = buf[: 81].reshape(3, 3, 3, 3)
    b = buf[81:84]
    x = rng.standard_normal((4, 7, 7, 3))
    ref = cnnfast.conv2d(x, k, b)
    out = buf[: 4 * 5 * 5 * 3].reshape(4, 5, 5, 3)
    assert np.array_equal(cnnfast.conv2d(x, k, b, out=out), ref)


@pytest.mark.parametrize("fmt", FMTS)
def test_conv2d_backward_out_is_dy(fmt):
    # 'same' padding and C == F: dx has dy's shape; the kernel gradient reads dy after
    # dx is written
    rng = _rng(3)
    shape = (3, 8, 8, 6) if fmt == "channels_last" else (3, 6, 8, 8)
    x = rng.standard_normal(shape)
    k = rng.standard_normal((3, 3, 6, 5))
    k = np.concatenate([k, k[..., :1]], axis=3)  # (3, 3, 6, 6), not symmetric in C, F
    if fmt == "channels_first":
        k = np.ascontiguousarray(k.transpose(3, 2, 0, 1))
    dy = rng.standard_normal(shape)
    ref = cnnfast.conv2d_backward(dy, x, k, padding="same", data_format=fmt)
    dyc = dy.copy()
    got = cnnfast.conv2d_backward(dyc, x, k, padding="same", data_format=fmt,
                                  out=(dyc, None, None))
    assert got[0] is dyc
    for g, r in zip(got, ref):
        assert np.array_equal(g, r)


def test_conv2d_backward_out_is_x_and_kernel():
    rng = _rng(4)
    x = rng.standard_normal((2, 6, 6, 4))
    k = rng.standard_normal((3, 3, 4, 4))
    dy = rng.standard_normal((2, 6, 6, 4))
    ref = cnnfast.conv2d_backward(dy, x, k, padding="same")
    xc, kc = x.copy(), k.copy()
    got = cnnfast.conv2d_backward(dy, xc, kc, padding="same", out=(xc, kc, None))
    assert got[0] is xc and got[1] is kc
    for g, r in zip(got, ref):
        assert np.array_equal(g, r)


def test_conv2d_backward_outs_overlapping_each_other_refused():
    x = np.ones((1, 3, 3, 1))
    k = np.ones((1, 1, 1, 1))
    dy = np.ones((1, 3, 3, 1))
    buf = np.empty(9)
    with pytest.raises(ValueError, match=r"out\[0\] \(dx\) and out\[1\] \(dkernel\)"):
        cnnfast.conv2d_backward(dy, x, k, out=(buf.reshape(1, 3, 3, 1), buf[:1].reshape(k.shape),
                                               None))


@pytest.mark.parametrize("mode", ["max", "avg", "min"])
def test_pool2d_out_overlaps_x(mode):
    rng = _rng(5)
    x = rng.standard_normal((2, 8, 8, 3))
    ref = cnnfast.pool2d(x, 2, mode=mode)
    xc = x.copy()
    out = xc.reshape(-1)[: ref.size].reshape(ref.shape)
    assert np.array_equal(cnnfast.pool2d(xc, 2, mode=mode, out=out), ref)


def test_pool2d_indices_overlap_y_refused():
    x = np.ones((1, 4, 4, 1), np.float32)
    buf = np.empty(4, np.float32)
    with pytest.raises(ValueError, match=r"out\[0\] \(y\) and out\[1\] \(indices\)"):
        cnnfast.pool2d(x, 2, return_indices=True,
                       out=(buf.reshape(1, 2, 2, 1), buf.view(np.int32).reshape(1, 2, 2, 1)))


@pytest.mark.parametrize("mode", ["max", "avg", "min"])
@pytest.mark.parametrize("with_indices", [False, True])
def test_pool2d_backward_out_overlaps_inputs(mode, with_indices):
    rng = _rng(6)
    x = rng.standard_normal((2, 6, 6, 3))
    y, idx = (cnnfast.pool2d(x, 3, strides=1, mode=mode, return_indices=True)
              if mode != "avg" else (cnnfast.pool2d(x, 3, strides=1, mode=mode), None))
    dy = rng.standard_normal(y.shape)
    indices = idx if with_indices else None
    ref = cnnfast.pool2d_backward(dy, x, 3, strides=1, mode=mode, indices=indices)
    # out over x (which the max/min search reads)
    xc = x.copy()
    got = cnnfast.pool2d_backward(dy, xc, 3, strides=1, mode=mode, indices=indices, out=xc)
    assert np.array_equal(got, ref)
    # out over a buffer whose head holds dy
    buf = np.zeros(x.size)
    buf[: dy.size] = dy.ravel()
    dyv = buf[: dy.size].reshape(dy.shape)
    got = cnnfast.pool2d_backward(dyv, x, 3, strides=1, mode=mode, indices=indices,
                                  out=buf.reshape(x.shape))
    assert np.array_equal(got, ref)


@pytest.mark.parametrize("relu", [None, "relu"])
def test_conv2d_pool2d_out_overlaps_x(relu):
    rng = _rng(7)
    x = rng.standard_normal((2, 8, 8, 4))
    k = rng.standard_normal((3, 3, 4, 4))
    b = rng.standard_normal(4)
    ref, ref_i = cnnfast.conv2d_pool2d(x, k, b, padding="same", activation=relu,
                                       return_indices=True)
    xc = x.copy()
    yv = xc.reshape(-1)[: ref.size].reshape(ref.shape)
    iv = np.empty(ref.shape, np.int32)
    y, i = cnnfast.conv2d_pool2d(xc, k, b, padding="same", activation=relu,
                                 return_indices=True, out=(yv, iv))
    assert np.array_equal(y, ref) and np.array_equal(i, ref_i)


@pytest.mark.parametrize("relu", [None, "relu"])
def test_conv2d_pool2d_backward_out_overlaps_inputs(relu):
    rng = _rng(8)
    x = rng.standard_normal((2, 8, 8, 4))
    k = rng.standard_normal((3, 3, 4, 4))
    y, idx = cnnfast.conv2d_pool2d(x, k, padding="same", activation=relu, return_indices=True)
    dy = rng.standard_normal(y.shape)
    ref = cnnfast.conv2d_pool2d_backward(dy, x, k, idx, y, padding="same", activation=relu)
    xc, kc = x.copy(), k.copy()
    got = cnnfast.conv2d_pool2d_backward(dy, xc, kc, idx, y, padding="same", activation=relu,
                                         out=(xc, kc, None))
    for g, r in zip(got, ref):
        assert np.array_equal(g, r)


@pytest.mark.parametrize("accumulate", [False, True])
def test_matmul_dense_out_overlaps_operands(accumulate):
    rng = _rng(9)
    a = rng.standard_normal((16, 16))
    b = rng.standard_normal((16, 16))
    ref = a @ b + (a if accumulate else 0)
    ac = a.copy()
    assert np.allclose(cnnfast.matmul(ac, b, out=ac, accumulate=accumulate), ref, atol=1e-12)
    bias = rng.standard_normal(16)
    ref_d = cnnfast.dense(a, b, bias, activation="relu")
    buf = np.concatenate([bias, np.zeros(16 * 16 - 16)])
    got = cnnfast.dense(a, b, buf[:16], activation="relu", out=buf.reshape(16, 16))
    assert np.array_equal(got, ref_d)
