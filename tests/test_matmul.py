"""cnnfast.matmul: the Dense layers' GEMM on cnnfast's own micro-kernels."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import simd_level_params
from hypothesis import given
from hypothesis import strategies as st

import cnnfast
from cnnfast import _kernels

# the level each test found, restored after it changes the cap
_START_LEVEL = cnnfast.simd_level()


def _views(a):
    """The same matrix as C-order, Fortran-order, a transposed copy's .T and a strided view."""
    big = np.zeros((a.shape[0] * 2, a.shape[1] * 3), a.dtype)
    big[::2, ::3] = a
    return [a, np.asfortranarray(a), np.ascontiguousarray(a.T).T, big[::2, ::3]]


@given(m=st.integers(0, 40), k=st.integers(0, 700), n=st.integers(0, 70),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_matches_numpy(m, k, n, dtype, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    expected = a.astype(np.float64) @ b.astype(np.float64)
    tol = 1e-4 * np.sqrt(max(k, 1)) if dtype == np.float32 else 1e-11 * np.sqrt(max(k, 1))
    for av in _views(a):
        for bv in _views(b)[:2]:
            got = cnnfast.matmul(av, bv)
            assert got.dtype == dtype and got.shape == (m, n)
            np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("level", simd_level_params())
def test_every_simd_level_and_thread_count_agree(level):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((130, 800)).astype(np.float32)
    b = rng.standard_normal((800, 77)).astype(np.float32)
    try:
        _kernels.set_simd_cap(level)
        results = []
        for threads in (1, 2, 3):
            cnnfast.set_num_threads(threads)
            results.append(cnnfast.matmul(a, b))
    finally:
        _kernels.set_simd_cap(_START_LEVEL)
        cnnfast.set_num_threads(None)
    assert all(np.array_equal(results[0], r) for r in results[1:])
    np.testing.assert_allclose(results[0], a.astype(np.float64) @ b, rtol=1e-4, atol=1e-3)


def test_out_and_accumulate():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((9, 20))
    b = rng.standard_normal((20, 5))
    out = np.ones((9, 5))
    assert cnnfast.matmul(a, b, out=out, accumulate=True) is out
    np.testing.assert_allclose(out, 1 + a @ b, rtol=1e-12)
    cnnfast.matmul(a, b, out=out)
    np.testing.assert_allclose(out, a @ b, rtol=1e-12)


def test_dtype_promotion():
    a = np.arange(6, dtype=np.int64).reshape(2, 3)
    b = np.ones((3, 2), dtype=np.float32)
    assert cnnfast.matmul(a, b).dtype == np.float64
    assert cnnfast.matmul(a.astype(np.float32), b).dtype == np.float32


@pytest.mark.parametrize(
    "a, b, kw, exc, word",
    [
        (np.ones((2, 3)), np.ones((4, 2)), {}, ValueError, "chain"),
        (np.ones(3), np.ones((3, 2)), {}, ValueError, "2-D"),
        (np.ones((2, 3)), np.ones((3, 2)), {"out": np.ones((3, 3))}, ValueError, "out"),
        (np.ones((2, 3)), np.ones((3, 2)), {"out": np.ones((2, 2), np.float32)}, ValueError,
         "out"),
        (np.ones((2, 3), complex), np.ones((3, 2)), {}, TypeError, "a"),
        (None, np.ones((3, 2)), {}, TypeError, "a"),
    ],
)
def test_bad_input(a, b, kw, exc, word):
    with pytest.raises(exc, match=word):
        cnnfast.matmul(a, b, **kw)


@pytest.mark.parametrize("shape", [(128, 128, 3136), (20, 300, 700), (3, 1000, 400)])
@pytest.mark.parametrize("level", simd_level_params())
def test_wide_products(shape, level):
    """n >> m takes the path that splits B's column panels over the threads."""
    m, k, n = shape
    rng = np.random.default_rng(m + k + n)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    expected = a.astype(np.float64) @ b.astype(np.float64)
    try:
        _kernels.set_simd_cap(level)
        results = []
        for threads in (1, 2):
            cnnfast.set_num_threads(threads)
            results.append(cnnfast.matmul(a, b))
            results.append(cnnfast.matmul(a, np.asfortranarray(b)))  # B packed per panel
    finally:
        _kernels.set_simd_cap(_START_LEVEL)
        cnnfast.set_num_threads(None)
    assert all(np.array_equal(results[0], r) for r in results[1:])
    np.testing.assert_allclose(results[0], expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("shape", [(1, 3136, 128), (2, 700, 300), (3, 1000, 130), (4, 385, 129)])
@pytest.mark.parametrize("level", simd_level_params())
def test_few_rows_products(shape, level):
    """One to four rows (a Dense layer on one sample) take the few-rows kernel for a
    row-contiguous B; a transposed B takes the tiled path: for these wide products
    (n >= 4 tiles of columns at every level) the same bits, with bias and ReLU, at
    every thread count."""
    m, k, n = shape
    rng = np.random.default_rng(m * k + n)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    expected = np.maximum(a.astype(np.float64) @ b.astype(np.float64) + bias, 0)
    try:
        _kernels.set_simd_cap(level)
        results = []
        for threads in (1, 2, 3):
            cnnfast.set_num_threads(threads)
            for bb in (b, np.asfortranarray(b)):
                results.append(cnnfast.dense(a, bb, bias, "relu"))
                results.append(cnnfast.dense(a.astype(np.float64), bb.astype(np.float64),
                                             bias.astype(np.float64), "relu"))
    finally:
        _kernels.set_simd_cap(_START_LEVEL)
        cnnfast.set_num_threads(None)
    for got in results[2::2]:
        np.testing.assert_array_equal(got, results[0])
    for got in results[3::2]:
        np.testing.assert_array_equal(got, results[1])
    np.testing.assert_allclose(results[0], expected, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(results[1], expected, rtol=1e-12, atol=1e-10)


def _dense_expected(a, b, bias, activation):
    z = a.astype(np.float64) @ b.astype(np.float64)
    if bias is not None:
        z = z + bias
    return np.maximum(z, 0.0) if activation == "relu" else z


@given(m=st.integers(0, 40), k=st.integers(0, 300), n=st.integers(0, 70),
       dtype=st.sampled_from([np.float32, np.float64]), with_bias=st.booleans(),
       activation=st.sampled_from([None, "linear", "relu"]), seed=st.integers(0, 2**16))
def test_dense_matches_numpy(m, k, n, dtype, with_bias, activation, seed):
    """x @ kernel + bias, relu: on every layout of x and kernel (rows of x read in
    place, packed panels, a transposed-copy kernel), the epilogue on the last k block."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    bias = rng.standard_normal(n).astype(dtype) if with_bias else None
    expected = _dense_expected(a, b, bias, activation)
    tol = 1e-4 * np.sqrt(max(k, 1)) if dtype == np.float32 else 1e-11 * np.sqrt(max(k, 1))
    for av in _views(a):
        for bv in _views(b)[:2]:
            got = cnnfast.dense(av, bv, bias, activation)
            assert got.dtype == dtype and got.shape == (m, n)
            np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("shape", [(130, 800, 77), (128, 3136, 128), (3, 50, 10)])
@pytest.mark.parametrize("level", simd_level_params())
def test_dense_every_simd_level_and_thread_count_agree(shape, level):
    """A last panel of fewer than MR rows (read from a padded copy), a last column
    panel narrower than NR: bit-identical for 1-3 threads on every SIMD level."""
    m, k, n = shape
    rng = np.random.default_rng(m + k)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    out = np.full((m, n), np.nan, np.float32)
    try:
        _kernels.set_simd_cap(level)
        results = []
        for threads in (1, 2, 3):
            cnnfast.set_num_threads(threads)
            results.append(cnnfast.dense(a, b, bias, "relu").copy())
        assert cnnfast.dense(a, b, bias, "relu", out=out) is out
    finally:
        _kernels.set_simd_cap(_START_LEVEL)
        cnnfast.set_num_threads(None)
    assert all(np.array_equal(results[0], r) for r in results[1:] + [out])
    np.testing.assert_allclose(results[0], _dense_expected(a, b, bias, "relu"), rtol=1e-4,
                               atol=1e-3)


@pytest.mark.parametrize("kw, exc, word", [
    ({"bias": np.ones(3)}, ValueError, r"bias must have shape \(2,\)"),
    ({"bias": np.ones((1, 2))}, ValueError, "bias"),
    ({"bias": np.ones(2, complex)}, TypeError, "bias"),
    ({"activation": "tanh"}, ValueError, "activation"),
])
def test_dense_bad_input(kw, exc, word):
    with pytest.raises(exc, match=word):
        cnnfast.dense(np.ones((4, 3)), np.ones((3, 2)), **kw)


@pytest.mark.parametrize("which", ["a", "b", "bias"])
def test_unaligned_operands_are_copied(which):
    """C-contiguous operands at an odd byte offset (np.frombuffer, np.memmap) give the
    same bits as aligned ones."""
    rng = np.random.default_rng(3)
    a, b, bias = (rng.standard_normal(s).astype(np.float32) for s in ((5, 7), (7, 9), (9,)))
    want = cnnfast.dense(a, b, bias, "relu")
    ops = {"a": a, "b": b, "bias": bias}
    buf = np.zeros(ops[which].nbytes + 1, np.uint8)
    u = np.frombuffer(buf.data, np.float32, ops[which].size, offset=1).reshape(ops[which].shape)
    u[...] = ops[which]
    assert not u.flags.aligned
    ops[which] = u
    np.testing.assert_array_equal(cnnfast.dense(ops["a"], ops["b"], ops["bias"], "relu"), want)
    if which != "bias":
        np.testing.assert_array_equal(cnnfast.matmul(ops["a"], ops["b"]), cnnfast.matmul(a, b))


@pytest.mark.parametrize("bias_dtype, want", [(np.float32, np.float32), (np.float64, np.float64),
                                              (np.int64, np.float64), (np.float16, np.float32)])
def test_dense_dtype_promotes_over_the_bias_too(bias_dtype, want):
    """numpy promotion over every input, as conv2d does: a float64 bias is not cast down."""
    x = np.ones((2, 3), np.float32)
    k = np.ones((3, 4), np.float32)
    y = cnnfast.dense(x, k, np.arange(4).astype(bias_dtype))
    assert y.dtype == want
    np.testing.assert_array_equal(y, [[3, 4, 5, 6]] * 2)


@pytest.mark.parametrize("alias", ["a", "b", "both"])
@pytest.mark.parametrize("accumulate", [False, True])
def test_out_sharing_memory_with_an_operand(alias, accumulate):
    """out= that is (or overlaps) a or b: the operand is read as it was before the call,
    as numpy's matmul does (the kernel would otherwise read what it already wrote)."""
    rng = np.random.default_rng(11)
    m = rng.standard_normal((48, 48)).astype(np.float32)
    other = rng.standard_normal((48, 48)).astype(np.float32)
    a, b = (m, other) if alias == "a" else (other, m) if alias == "b" else (m, m)
    start = m.copy()
    want = cnnfast.matmul(a.copy(), b.copy(), out=start.copy(), accumulate=accumulate)
    buf = m.copy()
    args = {"a": (buf, other), "b": (other, buf), "both": (buf, buf)}[alias]
    got = cnnfast.matmul(*args, out=buf, accumulate=accumulate)
    assert got is buf
    np.testing.assert_array_equal(got, want)
