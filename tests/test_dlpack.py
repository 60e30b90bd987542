"""DLPack in: the functional API reads CPU tensors of other libraries without a copy.

Any object with ``__dlpack__`` (torch, JAX, CuPy, ...) is read with
``np.from_dlpack``; results are numpy arrays. A tensor on another device, or one
that requires grad, is a TypeError naming the argument. The torch cases skip
without torch; the protocol itself is checked with a minimal producer.
"""

from __future__ import annotations

import numpy as np
import pytest

import cnnfast


class _Producer:
    """A minimal DLPack producer around a numpy array (not an ndarray itself)."""

    def __init__(self, array: np.ndarray, device: tuple[int, int] = (1, 0)) -> None:
        self._array = array
        self._device = device

    def __dlpack__(self, **kwargs):
        return self._array.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._device


def test_dlpack_producer_is_read_in_place():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    k = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    ref = cnnfast.conv2d(x, k, padding="same")
    got = cnnfast.conv2d(_Producer(x), _Producer(k), padding="same")
    assert type(got) is np.ndarray and np.array_equal(got, ref)
    assert np.array_equal(cnnfast.pool2d(_Producer(x), 2), cnnfast.pool2d(x, 2))
    a = rng.standard_normal((5, 7))
    assert np.array_equal(cnnfast.matmul(_Producer(a), _Producer(a.T.copy())),
                          cnnfast.matmul(a, a.T.copy()))


def test_dlpack_on_another_device_is_a_type_error():
    x = np.ones((1, 4, 4, 1), np.float32)
    with pytest.raises(TypeError, match=r"x lives on a non-CPU device \(DLPack device \(2, 0\)"):
        cnnfast.conv2d(_Producer(x, (2, 0)), np.ones((1, 1, 1, 1), np.float32))
    with pytest.raises(TypeError, match="kernel lives on a non-CPU device"):
        cnnfast.conv2d(x, _Producer(np.ones((1, 1, 1, 1), np.float32), (2, 0)))


def test_torch_tensors_in_numpy_arrays_out():
    torch = pytest.importorskip("torch")
    x = torch.randn(2, 3, 8, 8)
    k = torch.randn(4, 3, 3, 3)
    got = cnnfast.conv2d(x, k, padding="same", data_format="channels_first")
    ref = cnnfast.conv2d(x.numpy(), k.numpy(), padding="same", data_format="channels_first")
    assert type(got) is np.ndarray and np.array_equal(got, ref)
    # channels_last memory format: an NCHW view of NHWC memory, read without a copy
    xl = x.to(memory_format=torch.channels_last)
    assert np.array_equal(cnnfast.conv2d(xl, k, padding="same",
                                         data_format="channels_first"), ref)


def test_torch_tensor_requiring_grad_is_a_type_error():
    torch = pytest.importorskip("torch")
    x = torch.randn(1, 4, 4, 1, requires_grad=True)
    with pytest.raises(TypeError, match=r"x is a tensor that requires grad.*detach\(\)"):
        cnnfast.pool2d(x, 2)
