"""Every bad input of the contract raises ValueError/TypeError naming the argument.

Also the sizes that would overflow int64 / size_t inside the C kernels (huge
padding, dilation or strides; huge zero-stride views whose outputs could not
exist): they must be refused up front, never crash, never return garbage.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

import cnnfast
from cnnfast import _spec

X = np.zeros((2, 6, 6, 3))
K = np.zeros((3, 3, 3, 4))
Y = np.zeros((2, 4, 4, 4))  # conv2d(X, K) output
P = np.zeros((2, 3, 3, 3))  # pool2d(X, 2) output
XCF = np.zeros((2, 3, 6, 6))
KCF = np.zeros((4, 3, 3, 3))


def raises_naming(name, exc=(ValueError, TypeError)):
    """pytest.raises for `exc` whose message names argument `name` as a word."""
    return pytest.raises(exc, match=rf"(?<![A-Za-z_]){re.escape(name)}(?![A-Za-z_])")


def _c(**kw):
    args = dict(x=X, kernel=K)
    args.update(kw)
    return lambda: cnnfast.conv2d(**args)


def _cb(**kw):
    args = dict(dy=Y, x=X, kernel=K)
    args.update(kw)
    return lambda: cnnfast.conv2d_backward(**args)


def _p(**kw):
    args = dict(x=X)
    args.update(kw)
    return lambda: cnnfast.pool2d(**args)


def _pb(**kw):
    args = dict(dy=P, x=X)
    args.update(kw)
    return lambda: cnnfast.pool2d_backward(**args)


VALUE_ERRORS = [
    # (id, call, argument name expected in the message)
    ("conv x 3-D", _c(x=np.zeros((6, 6, 3))), "x"),
    ("conv x 5-D", _c(x=np.zeros((1, 2, 6, 6, 3))), "x"),
    ("conv kernel 3-D", _c(kernel=np.zeros((3, 3, 3))), "kernel"),
    ("conv kernel channels", _c(kernel=np.zeros((3, 3, 2, 4))), "kernel"),
    ("conv kernel channels cf", _c(x=XCF, kernel=np.zeros((4, 2, 3, 3)),
                                   data_format="channels_first"), "kernel"),
    ("conv bias shape", _c(bias=np.zeros(5)), "bias"),
    ("conv bias 2-D", _c(bias=np.zeros((1, 4))), "bias"),
    ("conv bias scalar", _c(bias=np.float64(1.0)), "bias"),
    ("conv strides 0", _c(strides=0), "strides"),
    ("conv strides negative", _c(strides=(1, -2)), "strides"),
    ("conv strides triple", _c(strides=(1, 1, 1)), "strides"),
    ("conv strides single", _c(strides=(1,)), "strides"),
    ("conv dilation 0", _c(dilation_rate=0), "dilation_rate"),
    ("conv dilation pair 0", _c(dilation_rate=(2, 0)), "dilation_rate"),
    ("conv padding word", _c(padding="full"), "padding"),
    ("conv padding empty word", _c(padding=""), "padding"),
    ("conv padding negative", _c(padding=-1), "padding"),
    ("conv padding negative pair", _c(padding=(1, -1)), "padding"),
    ("conv padding negative pairs", _c(padding=((0, 0), (-1, 2))), "padding"),
    ("conv padding triple", _c(padding=(1, 2, 3)), "padding"),
    ("conv padding ragged", _c(padding=((1, 2), (3,))), "padding"),
    ("conv padding mixed", _c(padding=((1, 2), 3)), "padding"),
    ("conv data_format", _c(data_format="NHWC"), "data_format"),
    ("conv data_format dash", _c(data_format="channels-last"), "data_format"),
    ("conv empty output", _c(x=np.zeros((1, 2, 2, 3))), "empty"),
    ("conv empty output dilated", _c(x=np.zeros((1, 4, 6, 3)), dilation_rate=2), "empty"),
    ("conv zero height", _c(x=np.zeros((1, 0, 6, 3)), padding="same"), "x"),
    ("conv activation", _c(activation="tanh"), "activation"),
    ("convb dy spatial", _cb(dy=np.zeros((2, 3, 4, 4))), "dy"),
    ("convb dy filters", _cb(dy=np.zeros((2, 4, 4, 5))), "dy"),
    ("convb dy batch", _cb(dy=np.zeros((1, 4, 4, 4))), "dy"),
    ("convb dy 3-D", _cb(dy=np.zeros((4, 4, 4))), "dy"),
    ("convb dy layout", _cb(dy=np.zeros((2, 4, 4, 4)), x=XCF, kernel=KCF,
                            data_format="channels_first", padding="same"), "dy"),
    ("convb x 3-D", _cb(x=np.zeros((6, 6, 3))), "x"),
    ("convb kernel channels", _cb(kernel=np.zeros((3, 3, 2, 4))), "kernel"),
    ("convb strides", _cb(strides=0), "strides"),
    ("convb padding", _cb(padding="full"), "padding"),
    ("pool x 3-D", _p(x=np.zeros((6, 6, 3))), "x"),
    ("pool pool_size 0", _p(pool_size=0), "pool_size"),
    ("pool pool_size pair 0", _p(pool_size=(2, 0)), "pool_size"),
    ("pool pool_size triple", _p(pool_size=(2, 2, 2)), "pool_size"),
    ("pool strides 0", _p(strides=0), "strides"),
    ("pool strides negative", _p(strides=(-1, 1)), "strides"),
    ("pool mode", _p(mode="sum"), "mode"),
    ("pool mode empty", _p(mode=""), "mode"),
    ("pool padding >= window", _p(padding=2), "padding"),
    ("pool padding >= window pair", _p(pool_size=3, padding=(0, 3)), "padding"),
    ("pool padding >= window bottom", _p(pool_size=2, padding=((0, 2), (0, 0))), "padding"),
    ("pool padding negative", _p(padding=-1), "padding"),
    ("pool padding word", _p(padding="full"), "padding"),
    ("pool data_format", _p(data_format="NCHW"), "data_format"),
    ("pool empty output", _p(x=np.zeros((1, 1, 5, 3))), "empty"),
    ("pool zero width", _p(x=np.zeros((1, 4, 0, 3)), padding="same"), "x"),
    ("poolb dy shape", _pb(dy=np.zeros((2, 3, 2, 3))), "dy"),
    ("poolb dy channels", _pb(dy=np.zeros((2, 3, 3, 2))), "dy"),
    ("poolb dy 3-D", _pb(dy=np.zeros((3, 3, 3))), "dy"),
    ("poolb mode", _pb(mode="median"), "mode"),
    ("poolb pool_size", _pb(pool_size=-2), "pool_size"),
    ("poolb indices shape", _pb(indices=np.zeros((2, 3, 3, 2), np.int32)), "indices"),
    ("poolb indices range", _pb(indices=np.full((2, 3, 3, 3), 36, np.int32)), "indices"),
    ("poolb indices negative", _pb(indices=np.full((2, 3, 3, 3), -1, np.int32)), "indices"),
    ("poolb indices float", _pb(indices=np.zeros((2, 3, 3, 3))), "indices"),
]


@pytest.mark.parametrize("name, call, arg", VALUE_ERRORS, ids=[v[0] for v in VALUE_ERRORS])
def test_bad_values(name, call, arg):
    with raises_naming(arg):
        call()


NOT_INTEGERS = [1.5, 2.0, "2", None, (1, 1.5), (1, None), True]


@pytest.mark.parametrize("bad", NOT_INTEGERS, ids=repr)
def test_non_integer_sizes(bad):
    with raises_naming("strides"):
        _c(strides=bad)()
    with raises_naming("dilation_rate"):
        _c(dilation_rate=bad)()
    with raises_naming("strides"):
        _cb(strides=bad)()
    if bad is not None:  # strides=None means pool_size for pooling
        with raises_naming("strides"):
            _p(strides=bad)()
    with raises_naming("pool_size"):
        _p(pool_size=bad)()
    with raises_naming("pool_size"):
        _pb(pool_size=bad)()


@pytest.mark.parametrize("bad", [1.5, None, True, ((1, 1), (1.0, 1)), "1"], ids=repr)
def test_malformed_padding(bad):
    with raises_naming("padding"):
        _c(padding=bad)()
    with raises_naming("padding"):
        _p(padding=bad)()


@pytest.mark.parametrize("bad", [None, 1, "CHANNELS_LAST_", ""], ids=repr)
def test_bad_data_format(bad):
    with raises_naming("data_format"):
        _c(data_format=bad)()
    with raises_naming("data_format"):
        _pb(data_format=bad)()


@pytest.mark.parametrize("bad", [None, 2, "MAXIMUM"], ids=repr)
def test_bad_mode(bad):
    with raises_naming("mode"):
        _p(mode=bad)()


def test_data_format_and_mode_words_case_insensitive():
    a = cnnfast.pool2d(XCF, 2, mode="MAX", data_format="Channels_First")
    np.testing.assert_array_equal(a, cnnfast.pool2d(XCF, 2, data_format="channels_first"))


BAD_DTYPES = {
    "complex": np.zeros((2, 6, 6, 3), np.complex128),
    "object": np.zeros((2, 6, 6, 3), object),
    "string": np.full((2, 6, 6, 3), "a"),
    "bytes": np.full((2, 6, 6, 3), b"a"),
    "datetime": np.zeros((2, 6, 6, 3), "datetime64[s]"),
    "None": None,
    "str literal": "x",
    "ragged": [[1.0, 2.0], [3.0]],
}
if np.dtype(np.longdouble).itemsize > 8:  # x86-64 Linux: 80-bit extended, not float64
    BAD_DTYPES["longdouble"] = np.zeros((2, 6, 6, 3), np.longdouble)


@pytest.mark.parametrize("kind", list(BAD_DTYPES))
def test_bad_array_types(kind):
    bad = BAD_DTYPES[kind]
    exc = (TypeError,) if kind != "ragged" else (TypeError, ValueError)
    with raises_naming("x", exc):
        _c(x=bad)()
    with raises_naming("kernel", exc):
        _c(kernel=bad)()
    with raises_naming("x", exc):
        _p(x=bad)()
    with raises_naming("dy", exc):
        _cb(dy=bad)()
    with raises_naming("dy", exc):
        _pb(dy=bad)()
    with raises_naming("x", exc):
        _pb(x=bad)()
    if kind != "None":  # bias=None is valid; otherwise a length-4 bias of the bad type
        bias = bad[0, 0, 0, :4].copy() if isinstance(bad, np.ndarray) else bad
        with raises_naming("bias", exc):
            _c(bias=bias)()


@pytest.mark.parametrize("kind", ["complex", "longdouble", "string"])
def test_matmul_and_dense_bad_types_name_the_argument(kind):
    if kind not in BAD_DTYPES:
        pytest.skip("long double is float64 on this platform")
    bad = BAD_DTYPES[kind][0, 0]  # (6, 3)
    good = np.ones((3, 3))
    with raises_naming("a", TypeError):
        cnnfast.matmul(bad, good)
    with raises_naming("b", TypeError):
        cnnfast.matmul(good, bad.T)
    with raises_naming("x", TypeError):
        cnnfast.dense(bad, good)
    with raises_naming("kernel", TypeError):
        cnnfast.dense(good, bad.T)
    with raises_naming("bias", TypeError):
        cnnfast.dense(good, good, bad[:3, 0])


def test_complex_bias_and_dy():
    with raises_naming("bias", TypeError):
        _c(bias=np.zeros(4, np.complex64))()
    with raises_naming("dy", TypeError):
        _cb(dy=Y.astype(np.complex128))()
    with raises_naming("dy", TypeError):
        _pb(dy=P.astype(np.complex64))()


# ---------------------------------------------------------------------------
# Sizes that would overflow
# ---------------------------------------------------------------------------

TINY = np.ones((1, 1, 1, 1))


@pytest.mark.parametrize("padding", [2**40, (2**62, 0), ((2**62, 2**62), (0, 0)), 2**63,
                                     ((0, 0), (2**64, 1))], ids=repr)
def test_conv_huge_padding_refused(padding):
    # The output would hold ~2**80 elements, or the padded size itself does not fit int64.
    with pytest.raises(ValueError):
        cnnfast.conv2d(TINY, np.ones((1, 1, 1, 1)), padding=padding)


@pytest.mark.parametrize("value", [2**63, 2**64, 10**30], ids=repr)
def test_values_beyond_int64_refused_or_exact(value):
    # Mathematically these are valid (one window at the origin, or an empty output);
    # they do not fit the kernels' int64, so either the exact answer or a ValueError /
    # TypeError, never an OverflowError from the C conversion, a crash or garbage.
    rng = np.random.default_rng(1)
    x, k = rng.standard_normal((2, 6, 6, 3)), rng.standard_normal((3, 3, 3, 4))
    for kw, small in (("strides", 100), ("dilation_rate", 100)):
        try:
            want = cnnfast.conv2d(x, k, **{kw: small})
        except ValueError:  # dilation 100: empty output, so must be refused too
            with pytest.raises((ValueError, TypeError)):
                cnnfast.conv2d(x, k, **{kw: value})
            continue
        try:
            got = cnnfast.conv2d(x, k, **{kw: value})
        except (ValueError, TypeError) as e:
            assert kw in str(e)
        else:
            np.testing.assert_array_equal(got, want)
    with pytest.raises((ValueError, TypeError)):  # window larger than the input
        cnnfast.pool2d(x, pool_size=value)
    try:
        got = cnnfast.pool2d(x, 2, strides=(1, value))
    except (ValueError, TypeError) as e:
        assert "strides" in str(e)
    else:
        np.testing.assert_array_equal(got, cnnfast.pool2d(x, 2, strides=(1, 100)))


def test_huge_dilation_refused_or_exact():
    # (k - 1) * d + 1 = 2**63 + 1 does not fit int64. With 'valid' the output is
    # empty; with 'same' the true answer is x times the centre tap (every other
    # tap lands in the padding), so either that exact answer or a ValueError.
    rng = np.random.default_rng(0)
    x, k = rng.standard_normal((1, 5, 5, 2)), rng.standard_normal((3, 3, 2, 3))
    with pytest.raises(ValueError):
        cnnfast.conv2d(x, k, dilation_rate=2**62)
    try:
        y = cnnfast.conv2d(x, k, dilation_rate=2**62, padding="same")
    except ValueError:
        return
    np.testing.assert_allclose(y, np.einsum("nhwc,cf->nhwf", x, k[1, 1]), rtol=1e-12)


@pytest.mark.parametrize("stride", [10**6, 2**31 - 1, 2**31, 2**40, 2**62], ids=repr)
def test_huge_stride_same_exact_or_refused(stride):
    # out = ceil(5 / stride) = 1; total pad = max(3 - 5, 0) = 0: the top-left 3x3
    # window. A stride beyond the kernels' index range may be refused by name.
    rng = np.random.default_rng(0)
    x, k = rng.standard_normal((1, 5, 5, 2)), rng.standard_normal((3, 3, 2, 3))
    try:
        y = cnnfast.conv2d(x, k, strides=stride, padding="same")
    except ValueError as e:
        assert stride > 2**31 - 1 and "strides" in str(e)
        return
    np.testing.assert_allclose(y.reshape(3), np.einsum("hwc,hwcf->f", x[0, :3, :3], k),
                               rtol=1e-12)


def _zero_stride(shape, dtype=np.float64):
    """A read-only view of one zero with the given (possibly astronomically large) shape."""
    return as_strided(np.zeros(1, dtype), shape=shape, strides=(0,) * len(shape),
                      writeable=False)


def test_conv_output_overflowing_int64_refused():
    # x holds 2**59 (virtual) elements; the output would hold 2**59 * 2**5 = 2**64.
    x = _zero_stride((2**19, 2**20, 2**20, 1))
    k = np.zeros((1, 1, 1, 32))
    with pytest.raises(ValueError):
        cnnfast.conv2d(x, k)


def test_conv_huge_view_never_crashes():
    # 2**57 (virtual) pixels: the output and any im2col workspace (9 values per
    # pixel) cannot be allocated. Refuse or fail to allocate, never crash.
    x = _zero_stride((2**17, 2**20, 2**20, 1))
    k = np.zeros((3, 3, 1, 1))
    with pytest.raises((ValueError, MemoryError)):
        cnnfast.conv2d(x, k, padding="same")


def test_pool_indices_beyond_int32_refused():
    # H * W = 2**59 cells: the flat index of the last window (about 2**59) cannot be
    # an int32. Either refuse (ValueError), or fail to allocate a copy of x: never
    # return wrapped indices.
    h, w = 2**30, 2**29
    x = _zero_stride((1, h, w, 1))
    with pytest.raises((ValueError, MemoryError)):
        cnnfast.pool2d(x, 1, strides=(h - 1, w - 1), return_indices=True)


def test_huge_view_pool_never_crashes():
    x = _zero_stride((2**20, 2**20, 2**10, 2))
    with pytest.raises((ValueError, MemoryError)):
        cnnfast.pool2d(x, 2)
    with pytest.raises((ValueError, MemoryError)):
        cnnfast.pool2d_backward(_zero_stride((2**20, 2**19, 2**9, 2)), x, 2)


_D = 2**30 - 1  # each factor fits the boundary's limits; their products do not


@pytest.mark.parametrize("call", ["fwd", "dk", "dx-strided", "conv-pool"])
def test_padded_geometry_too_large_for_int64_refused(call):
    """Dilation and padding that are each accepted but together make a padded image
    of 2**64 elements: the boundary refuses it by name (it used to wrap in C and
    write past a small buffer)."""
    f32 = np.float32
    geo = dict(dilation_rate=_D, padding=((_D, 0), (_D, 0)))
    with raises_naming("padding", ValueError):
        if call == "fwd":
            cnnfast.conv2d(np.ones((1, 1, 1, 16), f32), np.ones((2, 2, 16, 1), f32), **geo)
        elif call == "dk":
            cnnfast.conv2d_backward(np.ones((4, 1, 1, 1), f32), np.ones((4, 1, 1, 16), f32),
                                    np.ones((2, 2, 16, 1), f32), input_grad=False, **geo)
        elif call == "dx-strided":
            geo = dict(dilation_rate=_D - 1, padding=((_D - 1, 0), (_D - 1, 0)), strides=2)
            cnnfast.conv2d_backward(np.ones((1, 1, 1, 64), f32), np.ones((1, 1, 1, 1), f32),
                                    np.ones((2, 2, 1, 64), f32), kernel_grad=False, **geo)
        else:
            cnnfast.conv2d_pool2d(np.ones((1, 1, 1, 16), f32), np.ones((2, 2, 16, 1), f32),
                                  pool_size=1, **geo)


def _forged(spec, **fields) -> SimpleNamespace:
    """A stand-in for a resolved spec: its fields, some replaced."""
    values = {name: getattr(spec, name) for name in type(spec).__slots__}
    return SimpleNamespace(**{**values, **fields})


def test_resolved_specs_are_immutable():
    spec = _spec.conv_spec((1, 4, 4, 1), (2, 2, 1, 1))
    with pytest.raises(AttributeError, match="immutable"):
        spec.dh = 2
    assert spec.with_batch(7).n == 7 and spec.n == 1


def test_private_wrappers_check_what_memory_safety_needs():
    """cnnfast._kernels is private, but its wrappers still refuse geometries the C
    drivers would index out of bounds with, and malformed arrays, instead of crashing."""
    from cnnfast import _kernels

    f32 = np.float32
    x, k, y = np.ones((1, 4, 4, 1), f32), np.ones((2, 2, 1, 1), f32), np.zeros((1, 4, 4, 1), f32)
    # specs the Python layer would never build: the fields of a real one, some set by
    # hand (the wrappers read fields by name)
    spec = _forged(_spec.conv_spec(x.shape, k.shape, 1, "same"), dh=-1000, dw=-1000)
    with pytest.raises(ValueError, match="dilations must be in"):
        _kernels.conv2d_forward(x, k, None, y, spec, False)
    spec = _forged(_spec.conv_spec((1, 1, 1, 16), (2, 2, 16, 1), 1, "same"), dh=_D, dw=_D,
                   pt=_D, pl=_D)
    with pytest.raises(ValueError, match="too large for the kernels' index arithmetic"):
        _kernels.conv2d_forward(np.ones((1, 1, 1, 16), f32), np.ones((2, 2, 16, 1), f32), None,
                                np.zeros((1, 1, 1, 1), f32), spec, False)
    spec = _spec.conv_spec(x.shape, k.shape, 1, "same")
    with pytest.raises(ValueError, match="expected shape"):
        _kernels.conv2d_forward(x, k, None, np.zeros((1, 3, 3, 1), f32), spec, False)
    with pytest.raises(ValueError, match="2-D arrays expected"):
        _kernels.gemm(np.ones((2, 1), f32), np.array(1.0, f32), np.zeros((2, 1), f32), False,
                      np.zeros(2, f32))
    pool = _forged(_spec.pool_spec((1, 1, 1, 1), 1), sw=2**62 + 1)
    with pytest.raises(ValueError, match="strides must be in"):
        _kernels.pool2d_forward(np.ones((1, 1, 1, 1), f32), np.zeros((1, 1, 1, 1), f32), None,
                                pool)
    pool = _forged(_spec.pool_spec((1, 1, 1, 1), 1), ow=3, sw=2)
    with pytest.raises(ValueError, match="a window would hold only padding"):
        _kernels.pool2d_forward(np.ones((1, 1, 1, 1), f32), np.zeros((1, 1, 3, 1), f32), None,
                                pool)
    pool = _spec.pool_spec((1, 4, 4, 1), 2)
    with pytest.raises(ValueError, match="does not match"):
        _kernels.pool2d_forward(np.ones((1, 4, 4, 1), f32), np.zeros((1, 3, 3, 1), f32), None,
                                pool)


@pytest.mark.parametrize("fn", ["forward", "backward"])
@pytest.mark.parametrize("kw, name", [
    (dict(pool_strides=True), "pool_strides"),
    (dict(pool_strides=(2, 0)), "pool_strides"),
    (dict(pool_strides=1.5), "pool_strides"),
    (dict(pool_padding="full"), "pool_padding"),
    (dict(pool_padding=-1), "pool_padding"),
    (dict(pool_padding=(1, 2, 3)), "pool_padding"),
])
def test_conv2d_pool2d_names_pool_strides_and_pool_padding(fn, kw, name):
    # found by tests/test_fuzz.py: these said "strides" / "padding", the names of the
    # convolution's own arguments of the same call
    x, k = np.ones((1, 6, 6, 1)), np.ones((3, 3, 1, 2))
    with raises_naming(name):
        if fn == "forward":
            cnnfast.conv2d_pool2d(x, k, **kw)
        else:
            cnnfast.conv2d_pool2d_backward(np.ones((1, 2, 2, 2)), x, k,
                                           np.zeros((1, 2, 2, 2), np.int32), **kw)
