"""Non-finite kernel taps reach exactly the cells the definition says they reach.

The definition (cnnfast.reference): the forward multiplies the zero-padded x
by every tap, so a NaN/inf tap over the padding makes NaN in the forward
(0 * inf), as the reference and PyTorch/Keras do; the input gradient adds
k[tap] @ dy[pixel] for each real (output pixel, tap) pair to the cell it
reaches, so a non-finite tap must not spread to cells it never reaches. The
stride-1 and by-phases C drivers convolve a zero-padded dy, so a kernel with a
non-finite value takes the col2im driver instead (csrc/conv2d_input_grad_impl.h),
in the plain and the fused convolution + pooling backward. Every SIMD level,
1 and 2 threads.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import simd_level_params

import cnnfast
from cnnfast import _kernels
from cnnfast import reference as ref

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

_START_LEVEL = cnnfast.simd_level()


@pytest.fixture(params=[pytest.param((p.values[0], t), marks=p.marks,
                                     id=f"{p.values[0]}-{t}t")
                        for p in simd_level_params() for t in (1, 2)])
def level_threads(request):
    level, threads = request.param
    _kernels.set_simd_cap(level)
    cnnfast.set_num_threads(threads)
    yield
    _kernels.set_simd_cap(_START_LEVEL)
    cnnfast.set_num_threads(None)


def _same_nan_and_close(got, want, rtol):
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)


GEOMS = [
    dict(strides=1, padding="valid", dilation_rate=1),
    dict(strides=1, padding="same", dilation_rate=1),
    dict(strides=1, padding="same", dilation_rate=2),
    dict(strides=2, padding="same", dilation_rate=1),
    dict(strides=(2, 3), padding="valid", dilation_rate=1),
    dict(strides=5, padding="same", dilation_rate=1),  # 25 phases: col2im anyway
]


@pytest.mark.parametrize("geom", GEOMS,
                         ids=lambda g: f"s{g['strides']}-{g['padding']}-d{g['dilation_rate']}")
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dx_reaches_only_its_cells(level_threads, geom, bad, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 9, 10, 3)).astype(dtype)
    k = rng.standard_normal((3, 3, 3, 5)).astype(dtype)
    k[0, 2, 1, 3] = bad
    dy = rng.standard_normal(ref.conv2d(x, k, **geom).shape).astype(dtype)
    with np.errstate(all="ignore"):
        got = cnnfast.conv2d_backward(dy, x, k, **geom)
        want = ref.conv2d_backward(dy, x, k, **geom)
        # the kernel gradient does not read the kernel: the same bits as with a finite tap
        k_fin = k.copy()
        k_fin[0, 2, 1, 3] = 1
        fin = cnnfast.conv2d_backward(dy, x, k_fin, **geom)
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    _same_nan_and_close(got[0], want[0], rtol)
    assert np.isfinite(got[0]).any()  # the tap does not reach every cell here
    assert np.array_equal(got[1], fin[1]) and np.array_equal(got[2], fin[2])


@pytest.mark.parametrize("strides", [1, 2])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_issue_example(bad, strides):
    x = np.ones((1, 3, 3, 1))
    k = np.arange(9.0).reshape(3, 3, 1, 1) + 1
    k[0, 2] = bad
    dy = np.ones(ref.conv2d(x, k, strides=strides).shape)
    with np.errstate(all="ignore"):
        got = cnnfast.conv2d_backward(dy, x, k, strides=strides)[0]
        want = ref.conv2d_backward(dy, x, k, strides=strides)[0]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want)
    if bad != bad:  # NaN: the example from the issue
        want_cells = np.array([[1, 2, np.nan], [4, 5, 6], [7, 8, 9]])
        np.testing.assert_array_equal(got[0, :, :, 0], want_cells)


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("activation", [None, "relu"])
@pytest.mark.parametrize("n", [1, 4, 6])  # 4 and more: the fused direct route
def test_fused_conv_pool_dx(level_threads, padding, activation, n):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, 8, 8, 3))
    k = rng.standard_normal((3, 3, 3, 4))
    k[2, 0, 0, 1] = np.nan
    geo = dict(pool_size=2, pool_strides=2, pool_padding="valid", pool_mode="max")
    with np.errstate(all="ignore"):
        y, idx = cnnfast.conv2d_pool2d(x, k, padding=padding, activation=activation,
                                       return_indices=True, **geo)
        dy = rng.standard_normal(y.shape)
        got = cnnfast.conv2d_pool2d_backward(dy, x, k, idx, y, padding=padding,
                                             activation=activation, **geo)
        # the same pooled gradient, unpooled by hand, through the plain backward
        dyz = dy * (y > 0) if activation == "relu" else dy
        z_shape = ref.conv2d(x, k, padding=padding).shape
        dz = np.zeros(z_shape)
        nn, _, _, cc = np.indices(idx.shape)
        np.add.at(dz.reshape(n, -1, z_shape[3]), (nn, idx, cc), dyz)
        want = ref.conv2d_backward(dz, x, k, padding=padding)
        k_fin = k.copy()
        k_fin[2, 0, 0, 1] = 0.5
        fin = cnnfast.conv2d_pool2d_backward(dy, x, k_fin, idx, y, padding=padding,
                                             activation=activation, **geo)
    _same_nan_and_close(got[0], want[0], 1e-10)
    assert np.isfinite(got[0]).any()
    # the kernel gradient keeps its route and its bits
    assert np.array_equal(got[1], fin[1]) and np.array_equal(got[2], fin[2])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_forward_multiplies_the_padding_as_the_reference_does(level_threads, bad):
    """The forward's definition multiplies the zero-padded x by every tap:
    0 * inf is NaN there, in cnnfast and the reference alike."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 6, 7, 2))
    k = rng.standard_normal((3, 3, 2, 3))
    k[0, 0, 1, 2] = bad
    with np.errstate(all="ignore"):
        got = cnnfast.conv2d(x, k, padding="same")
        want = ref.conv2d(x, k, padding="same")
    _same_nan_and_close(got, want, 1e-10)
    # the first row and column see the top-left tap over the padding
    assert np.isnan(got[:, 0, :, 2]).all() and np.isnan(got[:, :, 0, 2]).all()
