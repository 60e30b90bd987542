"""Hypothesis fuzzing of the whole functional API against the contract.

What is fuzzed: conv2d, conv2d_backward, conv2d_pool2d, conv2d_pool2d_backward,
pool2d (max/avg/min, and the bound max_/avg_/min_pool2d), pool2d_backward (with and
without indices), matmul and dense. Each example builds a small *valid* problem
(N <= 2, H, W <= 7, C, F <= 4: cnnfast.reference's plain loops are slow) with values that
may hold NaN, +-inf, 1e38, subnormals and -0.0, in float32/float64, in either
data_format, with every padding form, then mutates at most one thing into an adversarial
one:

- an array argument's memory: Fortran order, strided slice, negative strides, permuted
  axes, read-only, unaligned (np.frombuffer at an odd offset), a Python list, a
  broadcast (zero-stride) view: the result must be bit-identical to the call with the
  same values in a plain C-contiguous array;
- an array argument's dtype (int8/int32/int64/uint8/bool/float16/float32/float64/
  longdouble/complex64/object/str, a scalar, None) or shape (an axis more or less, a
  size changed to 0, 1 or +-1);
- an array argument as a huge virtual view (as_strided with zero strides, so nothing
  is allocated), sizes near and beyond the int32/int64 limits;
- a scalar argument (strides, padding, dilation_rate, pool_size, pool_strides,
  pool_padding, data_format, mode, activation) into a wrong, huge or unusual form;
- out=: arrays overlapping an input, entries overlapping each other, and entries of
  the wrong shape / dtype / layout.

The contract checked on every call: cnnfast either returns the answer of
cnnfast.reference (the oracle, plain loops in float64; a dtype-appropriate tolerance
derived from the same computation on absolute values; NaN positions equal, infinities
equal; max/min pooling exact, indices equal outside windows holding NaN) or raises
ValueError/TypeError whose message names the offending argument. Any other exception,
a crash or a wrong answer fails. Huge virtual shapes may also give MemoryError (they
would need terabytes).

The examples are deterministic (derandomize=True, no database). Their number per test
is CNNFAST_FUZZ_EXAMPLES (default 500); a bug hunt runs e.g. CNNFAST_FUZZ_EXAMPLES=5000.
"""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import as_strided

import cnnfast
from cnnfast import reference as R

EXAMPLES = int(os.environ.get("CNNFAST_FUZZ_EXAMPLES", "500"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                print_blob=True, suppress_health_check=list(HealthCheck))

FMTS = ["channels_last", "channels_first"]
SPECIALS = [np.nan, np.inf, -np.inf, 1e38, -1e38, -0.0, 0.0, 1e-40, -3e-42, 5e-324, 1e-310]
HUGE_INTS = [2**31 - 2, 2**31 - 1, 2**31, 2**32, 2**62, 2**63 - 1, 2**63, 2**64, 10**30]
HUGE_LIMIT = 2**31 - 1  # the boundary's per-size limit (notes/api-contract.md)


# ------------------------------------------------------------------ helpers --

def _names_re(names) -> re.Pattern:
    alts = "|".join(re.escape(n) for n in names)
    return re.compile(rf"(?<![A-Za-z_])(?:{alts})(?![A-Za-z_])")


def describe(v):
    """A short, reproducible description of an argument for hypothesis' notes."""
    if isinstance(v, np.ndarray):
        s = (f"ndarray{v.shape} {v.dtype} strides={v.strides} C={v.flags.c_contiguous} "
             f"W={v.flags.writeable} A={v.flags.aligned}")
        if v.size <= 64 and max(v.shape, default=0) <= 64 and v.dtype.kind in "fiub":
            s += f" {v.tolist()!r}"
        return s
    if isinstance(v, tuple) and any(isinstance(e, np.ndarray) for e in v):
        return "(" + ", ".join(describe(e) for e in v) + ")"
    r = repr(v)
    return r if len(r) < 200 else r[:200] + "..."


def note_kwargs(label, kw):
    note(f"{label}: " + ", ".join(f"{k}={describe(v)}" for k, v in kw.items()))


def values(data, shape, dtype, label):
    """Random values for an array: normal floats, small integers (exact ties) or
    normal floats with about a fifth replaced by special values."""
    seed = data.draw(st.integers(0, 2**32 - 1), label=f"{label} seed")
    kind = data.draw(st.sampled_from(["normal", "ints", "special"]), label=f"{label} values")
    rng = np.random.default_rng(seed)
    if kind == "ints":
        a = rng.integers(-3, 4, size=shape).astype(dtype)
    else:
        a = rng.standard_normal(shape).astype(dtype)
    if kind == "special" and a.size:
        m = rng.random(shape) < 0.2
        with np.errstate(all="ignore"):
            a[m] = np.array(SPECIALS)[rng.integers(0, len(SPECIALS), int(m.sum()))]
    return a


def absf(a):
    """|a| as float64 with non-finite values as 0: the finite magnitudes, for bounds."""
    if a is None:
        return None
    a = np.asarray(a, dtype=np.float64)
    return np.abs(np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0))


def check_arith(got, want, bound, what):
    """got == want up to rounding: NaN where want is NaN; elsewhere, where no order of the
    sums can overflow (bound, the same sums over finite |values|, far below the
    dtype's max), the same infinities and finite values within 512 ulps of the bound."""
    assert isinstance(got, np.ndarray), f"{what}: got {type(got).__name__}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype}, reference {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape}, reference {want.shape}"
    fi = np.finfo(want.dtype)
    bound = np.broadcast_to(bound, want.shape)
    nan_w = np.isnan(want)
    assert np.isnan(got[nan_w]).all(), f"{what}: reference NaN, got {got[nan_w]}"
    ok = ~nan_w & (bound <= fi.max / 8)
    g, w, b = got[ok], want[ok], bound[ok]
    bad = np.isnan(g)
    assert not bad.any(), f"{what}: NaN where the reference is {w[bad]}"
    inf = np.isinf(w)
    assert np.array_equal(g[inf], w[inf]), f"{what}: infinities {g[inf]} vs {w[inf]}"
    gf, wf = g[~inf].astype(np.float64), w[~inf].astype(np.float64)
    tol = 512 * float(fi.eps) * b[~inf] + 512 * float(fi.smallest_subnormal)
    with np.errstate(all="ignore"):
        err = np.abs(gf - wf)
    bad = ~(err <= tol)
    assert not bad.any(), (f"{what}: got {gf[bad][:5]}, reference {wf[bad][:5]} "
                           f"(tolerance {tol[bad][:5]})")


def check_exact(got, want, what):
    """Bit-for-bit equality up to NaN payloads (the sign of zero included)."""
    assert isinstance(got, np.ndarray), f"{what}: got {type(got).__name__}"
    assert got.dtype == want.dtype and got.shape == want.shape, \
        f"{what}: {got.dtype}{got.shape} vs {want.dtype}{want.shape}"
    if got.dtype.kind == "f":
        assert np.array_equal(np.isnan(got), np.isnan(want)), f"{what}: NaN positions differ"
        m = ~np.isnan(want)
        assert np.array_equal(got[m], want[m]), f"{what}: {got[m]} vs {want[m]}"
        assert np.array_equal(np.signbit(got[m]), np.signbit(want[m])), \
            f"{what}: signs of zero differ"
    else:
        assert np.array_equal(got, want), f"{what}: {got} vs {want}"


def same_result(got, want, what):
    """The bit-identical rule between two cnnfast calls (arrays or tuples of them)."""
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want), f"{what}: {type(got)}"
        for i, (g, w) in enumerate(zip(got, want)):
            same_result(g, w, f"{what}[{i}]")
    elif want is None:
        assert got is None, f"{what}: expected None"
    else:
        check_exact(got, want, what)


def outcome(fn):
    """('ok', result) or ('err', exc) for ValueError/TypeError; any other exception
    (IndexError, OverflowError, SystemError, ...) propagates and fails the test."""
    try:
        with np.errstate(all="ignore"):
            return "ok", fn()
    except (ValueError, TypeError) as e:
        return "err", e


# ------------------------------------------------------------- geometries --

def draw_pair_form(data, pair, label):
    a, b = pair
    forms = ["tuple", "list", "numpy"] + (["int", "npint"] if a == b else [])
    form = data.draw(st.sampled_from(forms), label=f"{label} form")
    return {"tuple": (a, b), "list": [a, b], "numpy": (np.int64(a), np.int32(b)),
            "int": a, "npint": np.int64(a)}[form]


def draw_padding(data, label, maxpad=(2, 2, 2, 2)):
    """(the argument, its explicit pads or None for 'same')."""
    kind = data.draw(st.sampled_from(["valid", "same", "int", "pair", "pairs", "word"]),
                     label=f"{label} kind")
    if kind == "valid":
        return "valid", (0, 0, 0, 0)
    if kind == "same":
        return "same", None
    if kind == "word":
        word = data.draw(st.sampled_from(["VALID", "Same", "sAmE"]), label=label)
        return word, (0, 0, 0, 0) if word == "VALID" else None
    t, b, left, r = (data.draw(st.integers(0, m), label=label) for m in maxpad)
    if kind == "int":
        p = min(maxpad)
        p = data.draw(st.integers(0, p), label=label)
        return data.draw(st.sampled_from([p, np.int64(p)]), label=label), (p, p, p, p)
    if kind == "pair":
        return (t, left), (t, t, left, left)
    return data.draw(st.sampled_from([((t, b), (left, r)), [[t, b], [left, r]]]),
                     label=label), (t, b, left, r)


def _out_len(size, eff, s, before, after):
    span = size + before + after - eff
    return span // s + 1 if span >= 0 else 0


def conv_problem(data):
    fmt = data.draw(st.sampled_from(FMTS), label="data_format")
    dt = data.draw(st.sampled_from([np.float32, np.float64]), label="dtype")
    n = data.draw(st.sampled_from([1, 2, 0]), label="N")
    c, f = data.draw(st.integers(1, 4), label="C"), data.draw(st.integers(1, 4), label="F")
    kh, kw = data.draw(st.integers(1, 3), label="KH"), data.draw(st.integers(1, 3), label="KW")
    s = (data.draw(st.integers(1, 3), label="SH"), data.draw(st.integers(1, 3), label="SW"))
    d = (data.draw(st.integers(1, 2), label="DH"), data.draw(st.integers(1, 2), label="DW"))
    padding, pads = draw_padding(data, "padding")
    h, w = data.draw(st.integers(1, 7), label="H"), data.draw(st.integers(1, 7), label="W")
    eff = ((kh - 1) * d[0] + 1, (kw - 1) * d[1] + 1)
    if pads is not None:  # make the output non-empty
        h = max(h, eff[0] - pads[0] - pads[1])
        w = max(w, eff[1] - pads[2] - pads[3])
    xs = (n, h, w, c) if fmt == "channels_last" else (n, c, h, w)
    ks = (kh, kw, c, f) if fmt == "channels_last" else (f, c, kh, kw)
    kw_ = dict(x=values(data, xs, dt, "x"), kernel=values(data, ks, dt, "kernel"),
               strides=draw_pair_form(data, s, "strides"), padding=padding,
               dilation_rate=draw_pair_form(data, d, "dilation_rate"), data_format=fmt)
    return kw_


def conv_out_shape(kw):
    """The output shape of the conv problem kw (NHWC or NCHW like x), via the oracle."""
    return R.conv2d(np.zeros(np.shape(kw["x"])), np.zeros(np.shape(kw["kernel"])),
                    strides=kw["strides"], padding=kw["padding"],
                    dilation_rate=kw["dilation_rate"], data_format=kw["data_format"]).shape


def pool_problem(data, x_shape=None, dt=None, fmt=None):
    fmt = fmt or data.draw(st.sampled_from(FMTS), label="data_format")
    kh, kw = data.draw(st.integers(1, 3), label="PKH"), data.draw(st.integers(1, 3), label="PKW")
    strides = data.draw(st.sampled_from(["none", "pair"]), label="pool strides kind")
    if strides == "none":
        s, sarg = (kh, kw), None
    else:
        s = (data.draw(st.integers(1, 3), label="PSH"), data.draw(st.integers(1, 3), label="PSW"))
        sarg = draw_pair_form(data, s, "strides")
    padding, pads = draw_padding(data, "pool padding", (kh - 1, kh - 1, kw - 1, kw - 1))
    if x_shape is None:
        dt = data.draw(st.sampled_from([np.float32, np.float64]), label="dtype")
        n = data.draw(st.sampled_from([1, 2, 0]), label="N")
        c = data.draw(st.integers(1, 4), label="C")
        h, w = data.draw(st.integers(1, 7), label="H"), data.draw(st.integers(1, 7), label="W")
    else:
        n, h, w, c = x_shape
    if pads is None:  # 'same': the pads must stay below the window (else refused)
        ph = (-(-h // s[0]) - 1) * s[0] + kh - h
        pw = (-(-w // s[1]) - 1) * s[1] + kw - w
        if max(ph - ph // 2, 0) >= kh or max(pw - pw // 2, 0) >= kw:
            padding, pads = "valid", (0, 0, 0, 0)
    if pads is not None:
        if x_shape is None:
            h, w = max(h, kh - pads[0] - pads[1]), max(w, kw - pads[2] - pads[3])
        elif _out_len(h, kh, s[0], *pads[:2]) < 1 or _out_len(w, kw, s[1], *pads[2:]) < 1:
            return None
    return dict(pool_size=draw_pair_form(data, (kh, kw), "pool_size"), strides=sarg,
                padding=padding, data_format=fmt, _shape=(n, h, w, c), _dtype=dt)


# --------------------------------------------------------------- mutations --

def _embed_strided(a):
    big = np.zeros(tuple(2 * s + 1 for s in a.shape), a.dtype)
    v = big[tuple(slice(1, None, 2) for _ in a.shape)]
    v[...] = a
    return v


def _unaligned(a):
    raw = np.zeros(a.nbytes + 1, np.uint8)
    raw[1:] = np.ascontiguousarray(a).view(np.uint8).ravel()
    return np.frombuffer(raw.data, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)


def layout_mutation(data, a, label):
    """(a view/copy with a's values in another memory layout, the canonical array)."""
    kinds = ["fortran", "strided", "reversed", "permuted", "readonly", "list", "broadcast"]
    if a.size and a.dtype.itemsize > 1:
        kinds.append("unaligned")
    kind = data.draw(st.sampled_from(kinds), label=f"{label} layout")
    if kind == "fortran":
        return np.asfortranarray(a), a
    if kind == "strided":
        return _embed_strided(a), a
    if kind == "reversed":
        axes = tuple(range(a.ndim))
        return np.flip(np.flip(a, axes).copy(), axes), a
    if kind == "permuted":
        perm = data.draw(st.permutations(range(a.ndim)), label=f"{label} perm")
        return np.ascontiguousarray(a.transpose(perm)).transpose(np.argsort(perm)), a
    if kind == "readonly":
        b = a.copy()
        b.flags.writeable = False
        return b, a
    if kind == "list":
        return a.tolist(), np.asarray(a.tolist())
    if kind == "broadcast":
        if a.ndim == 0 or a.shape[0] == 0:
            return a, a
        b = np.broadcast_to(a[:1], a.shape)
        return b, np.ascontiguousarray(b)
    return _unaligned(a), a


INT_DTYPES = [np.int8, np.int32, np.int64, np.uint8, np.int16]


def dtype_mutation(data, a, label, optional=False):
    """(the mutated argument, expectation): 'either' = the oracle decides (cnnfast must
    agree), 'may_refuse' = cnnfast may refuse by name (TypeError) though the oracle
    computes, 'refuse' = must raise naming the argument."""
    kinds = ["int", "bool", "float16", "float32", "float64", "longdouble", "complex64",
             "object", "str", "scalar", "none", "datetime"]
    kind = data.draw(st.sampled_from(kinds), label=f"{label} dtype")
    with np.errstate(all="ignore"):
        if kind == "int":
            dt = data.draw(st.sampled_from(INT_DTYPES), label=f"{label} int dtype")
            lo, hi = np.iinfo(dt).min, np.iinfo(dt).max
            return np.clip(np.nan_to_num(a, nan=0, posinf=hi, neginf=lo), lo, hi).astype(dt), \
                "either"
        if kind == "bool":
            return a != 0, "may_refuse"
        if kind in ("float16", "float32", "float64"):
            return a.astype(kind), "either"
        if kind == "longdouble":
            return a.astype(np.longdouble), \
                "refuse" if np.dtype(np.longdouble).itemsize > 8 else "either"
        if kind == "complex64":
            return a.astype(np.complex64), "refuse"
        if kind == "object":
            return a.astype(object), "refuse"
        if kind == "str":
            return a.astype(str), "refuse"
        if kind == "datetime":
            return np.zeros(a.shape, "datetime64[s]"), "refuse"
        if kind == "scalar":
            return data.draw(st.sampled_from([1.0, np.float32(2.0), 3]), label=label), "either"
    return None, "either" if optional else "refuse"


def shape_mutation(data, a, label):
    kind = data.draw(st.sampled_from(["drop", "add", "resize"]), label=f"{label} shape")
    if kind == "drop" and a.ndim:
        return a[0] if a.shape[0] else np.zeros(a.shape[1:], a.dtype)
    if kind == "add" or a.ndim == 0:
        return a[None]
    ax = data.draw(st.integers(0, a.ndim - 1), label=f"{label} axis")
    new = data.draw(st.sampled_from([0, 1, a.shape[ax] + 1, max(a.shape[ax] - 1, 0)]),
                    label=f"{label} size")
    shape = list(a.shape)
    shape[ax] = new
    b = np.zeros(shape, a.dtype)
    idx = tuple(slice(0, min(p, q)) for p, q in zip(a.shape, shape))
    b[idx] = a[idx]
    return b


def huge_view(data, a, label, dims=None):
    """A zero-stride read-only view of a's first element (or of 0) with one or two sizes
    near or beyond the int32/int64 limits and at least 2**41 virtual elements, so that
    anything copying or allocating it fails at once (and it is never touched)."""
    shape = [max(int(s), 1) for s in np.shape(a)] or [1]
    dims = list(range(len(shape))) if dims is None else dims
    picks = data.draw(st.lists(st.sampled_from(dims), min_size=1, max_size=2, unique=True),
                      label=f"{label} huge axes")
    for ax in picks:
        shape[ax] = data.draw(st.sampled_from([2**31 - 1, 2**31, 2**32, 2**41, 2**45,
                                               2**62 - 1]), label=f"{label} huge size")
    total = int(np.prod([float(s) for s in shape]))
    while total >= 2**59:  # numpy itself cannot describe more bytes
        ax = max(range(len(shape)), key=lambda i: shape[i])
        shape[ax] //= 2**20
        total = int(np.prod([float(s) for s in shape]))
    if total < 2**41:
        ax = picks[0]
        shape[ax] = max(shape[ax], 2**41 // max(total // shape[ax], 1))
    dt = a.dtype if isinstance(a, np.ndarray) else np.float64
    return as_strided(np.zeros(1, dt), shape=tuple(shape), strides=(0,) * len(shape),
                      writeable=False)


BAD_SIZES = [0, -1, True, False, 1.5, 2.0, "2", None, (1,), (1, 1, 1), (1, -1), (True, 1),
             [2, 0], np.float64(2), np.bool_(True), (2, None), 2, (2, 1), [1, 3],
             np.int64(2), np.uint8(3), (np.int16(1), 2)]
BAD_PADDINGS = ["full", "", "valid ", "SAME", "Valid", -1, (1, -1), ((0, 0), (-1, 2)),
                (1, 2, 3), ((1, 2), (3,)), ((1, 2), 3), 1.5, None, True, False,
                ((1, 1), (1.0, 1)), "1", np.int64(1), (np.int8(1), 0), [[0, 1], [1, 0]],
                b"same", 1, (0, 1), ((1, 0), (0, 1)), ((2, 0), (0, 2)), 2**31 - 1, 2**40,
                ((0, 2**62), (0, 0)), 2**63, ((0, 0), (2**64, 1)), (2**31, 0)]
BAD_FORMATS = ["NHWC", "channels-last", "CHANNELS_LAST", "Channels_First", "", None, 1,
               b"channels_last", "channels_last ", "channels_first", "channels_last"]
BAD_MODES = ["sum", "", None, 2, "MAX", "Avg", "median", b"max", "min", "avg", "max"]
BAD_ACTIVATIONS = ["tanh", "", "RELU", "Linear", 1, "relu ", None, "relu", b"relu"]


def _is_huge(v):
    if isinstance(v, (list, tuple)):
        return any(_is_huge(e) for e in v)
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and int(v) > 64


def _reduce(v, odd_even=True):
    """v with every integer > 64 replaced by 64 or 65 (same parity): for the tiny
    problems here a stride, pool size or dilation that large gives the same result."""
    if isinstance(v, (list, tuple)):
        return type(v)(_reduce(e) for e in v)
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool) and int(v) > 64:
        return 64 + int(v) % 2
    return v


def scalar_mutation(data, kw, choices):
    """(new kwargs, argument name, the value) for one scalar argument."""
    name = data.draw(st.sampled_from(sorted(choices)), label="scalar argument")
    pool = choices[name]
    if name in ("strides", "dilation_rate", "pool_size", "pool_strides"):
        v = data.draw(st.sampled_from(pool + HUGE_INTS + [(1, 2**31 - 1), (2**63, 1)]),
                      label=name)
    else:
        v = data.draw(st.sampled_from(pool), label=name)
    new = dict(kw)
    new[name] = v
    return new, name, v


# ------------------------------------------------------------ the contract --

def contract(fast, ref, compare, kw, names, expect="either", ref_kw=None):
    """Run cnnfast (fast) and the oracle (ref) on kw; check the outcome pair.

    expect: 'either' (cnnfast does what the oracle does), 'may_refuse' (cnnfast may
    also refuse, by name, what the oracle computes), 'refuse' (cnnfast must raise)."""
    note_kwargs("call", kw)
    st_f, got = outcome(lambda: fast(kw))
    if st_f == "err":
        assert _names_re(names).search(str(got)), \
            f"{type(got).__name__} does not name any of {names}: {got}"
    if expect == "refuse":
        assert st_f == "err", f"accepted, must refuse by one of {names}"
        return
    st_r, want = outcome(lambda: ref(ref_kw if ref_kw is not None else kw))
    if st_f == "err":
        assert st_r == "err" or expect == "may_refuse", \
            f"cnnfast refused ({got}) a call the oracle computes"
        return
    assert st_r == "ok", f"cnnfast accepted a call the oracle refuses: {want}"
    compare(got, want, kw)


def bit_identical(fast, kw_mut, kw_canon, label):
    note_kwargs(f"{label} (mutated)", kw_mut)
    st_c, want = outcome(lambda: fast(kw_canon))
    st_m, got = outcome(lambda: fast(kw_mut))
    assert st_c == st_m, f"{label}: canonical {st_c} ({want}), mutated {st_m} ({got})"
    if st_c == "ok":
        same_result(got, want, label)


def huge_call(fast, kw, names):
    """A call with a huge virtual argument: refused by name, or MemoryError."""
    note_kwargs("huge call", kw)
    try:
        with np.errstate(all="ignore"):
            r = fast(kw)
    except (ValueError, TypeError) as e:
        assert _names_re(names).search(str(e)), f"does not name any of {names}: {e}"
        return
    except MemoryError:
        return
    if all(e is None or (isinstance(e, np.ndarray) and e.size == 0) for e in _out_slots(r)):
        # nothing asked for (input_grad=kernel_grad=False) or an empty result
        # (matmul of (2**41, k) @ (k, 0)): nothing to index, nothing computed
        return
    pytest.fail(f"a call with a huge virtual argument returned {describe(r)}")


# --------------------------------------------------------- out= mutations --

def _out_slots(result):
    return list(result) if isinstance(result, tuple) else [result]


def out_aliasing(data, fast, kw, array_names, result):
    """out= entries that overlap an input (of any dtype, at 8-byte aligned offsets of one
    shared buffer): the result must be exactly the call's without out=."""
    slots = _out_slots(result)
    tuple_out = isinstance(result, tuple)
    cands = [n for n in array_names if isinstance(kw.get(n), np.ndarray) and kw[n].size]
    if not cands or all(s is None for s in slots):
        return
    name = data.draw(st.sampled_from(cands), label="aliased input")
    a = np.ascontiguousarray(kw[name])
    give = [s is not None and data.draw(st.booleans(), label=f"give out[{i}]")
            for i, s in enumerate(slots)]
    if not any(give):
        give = [s is not None for s in slots]
    sizes = [(-(-s.nbytes // 8) * 8) if g else 0 for s, g in zip(slots, give)]
    o_in = 8 * data.draw(st.integers(0, 8), label="input offset")
    o_out = 8 * data.draw(st.integers(0, 8), label="out offset")
    buf = np.zeros(max(o_in + a.nbytes, o_out + sum(sizes)) + 64, np.uint8)
    inp = buf[o_in:o_in + a.nbytes].view(a.dtype).reshape(a.shape)
    inp[...] = a
    outs, pos = [], o_out
    for s, g, size in zip(slots, give, sizes):
        if g:
            outs.append(buf[pos:pos + s.nbytes].view(s.dtype).reshape(s.shape))
        else:
            outs.append(None)
        pos += size
    new = dict(kw)
    new[name] = inp
    new["out"] = tuple(outs) if tuple_out else outs[0]
    note(f"out aliasing {name} at {o_in}, outs at {o_out}")
    note_kwargs("out call", new)
    with np.errstate(all="ignore"):
        got = fast(new)
    for i, (g, o) in enumerate(zip(_out_slots(got), outs)):
        if o is not None and g is not None:
            assert g is o, f"result {i} is not the out array"
    same_result(got, result, "out= overlapping an input")


def out_bad(data, fast, kw, result):
    """An out entry of the wrong shape/dtype/layout, or entries overlapping each other:
    ValueError naming out (unless the array happens to meet every requirement)."""
    slots = _out_slots(result)
    idx = [i for i, s in enumerate(slots) if s is not None]
    if not idx:
        return
    i = data.draw(st.sampled_from(idx), label="bad out entry")
    s = slots[i]
    kind = data.draw(st.sampled_from(["shape", "ndim", "dtype", "fortran", "strided",
                                      "readonly", "unaligned", "list", "overlap"]),
                     label="bad out kind")
    outs = [None] * len(slots)
    if kind == "overlap":
        others = [j for j in idx if j != i and slots[j].size]
        if not others or not s.size:
            return
        j = data.draw(st.sampled_from(others), label="overlapping entry")
        buf = np.zeros(s.nbytes + slots[j].nbytes + 64, np.uint8)
        outs[i] = buf[:s.nbytes].view(s.dtype).reshape(s.shape)
        start = -(-max(s.nbytes - 8, 0) // 8) * 8  # inside entry i's last 8 bytes
        outs[j] = buf[start:start + slots[j].nbytes].view(slots[j].dtype).reshape(
            slots[j].shape)
        acceptable = False
    else:
        b = {"shape": lambda: np.zeros(s.shape[:-1] + (s.shape[-1] + 1,), s.dtype),
             "ndim": lambda: np.zeros(s.shape + (1,), s.dtype),
             "dtype": lambda: np.zeros(s.shape, data.draw(st.sampled_from(
                 [np.float32, np.float64, np.int32, np.int64, np.float16]),
                 label="out dtype")),
             "fortran": lambda: np.asfortranarray(np.zeros(s.shape, s.dtype)),
             "strided": lambda: _embed_strided(np.zeros(s.shape, s.dtype)),
             "readonly": lambda: _ro(np.zeros(s.shape, s.dtype)),
             "unaligned": lambda: _unaligned(np.zeros(s.shape, s.dtype)),
             "list": lambda: np.zeros(s.shape, s.dtype).tolist()}[kind]()
        outs[i] = b
        acceptable = (isinstance(b, np.ndarray) and b.shape == s.shape and b.dtype == s.dtype
                      and b.flags.c_contiguous and b.flags.writeable and b.flags.aligned)
    new = dict(kw)
    new["out"] = tuple(outs) if isinstance(result, tuple) else outs[0]
    note_kwargs(f"bad out ({kind})", new)
    st_f, got = outcome(lambda: fast(new))
    if acceptable:
        assert st_f == "ok", f"refused an acceptable out: {got}"
        same_result(got, result, "out=")
    else:
        assert st_f == "err" and isinstance(got, ValueError), f"accepted a bad out: {got}"
        assert _names_re(["out"]).search(str(got)), f"does not name out: {got}"


def _ro(a):
    a.flags.writeable = False
    return a


# ------------------------------------------------------------ the oracles --

def _ref_act(v):
    return v.lower() if isinstance(v, str) else v


def _geom(kw):
    return {k: kw[k] for k in ("strides", "padding", "dilation_rate", "data_format")}


def conv_fast(kw):
    return cnnfast.conv2d(**kw)


def conv_ref(kw):
    geo = _geom(kw)
    want = R.conv2d(kw["x"], kw["kernel"], kw.get("bias"), activation=_ref_act(
        kw.get("activation")), **geo)
    bound = R.conv2d(absf(kw["x"]), absf(kw["kernel"]), absf(kw.get("bias")), **geo)
    return want, bound


def conv_compare(got, want, kw):
    check_arith(got, want[0], want[1], "conv2d")
    assert got.flags.c_contiguous


def convb_fast(kw):
    return cnnfast.conv2d_backward(**kw)


def convb_ref(kw):
    geo = _geom(kw)
    dx, dk, db = R.conv2d_backward(kw["dy"], kw["x"], kw["kernel"], **geo)
    bx, bk, bb = R.conv2d_backward(absf(kw["dy"]), absf(kw["x"]), absf(kw["kernel"]), **geo)
    return (dx, dk, db), (bx, bk, bb)


def convb_compare(got, want, kw):
    (dx, dk, db), (bx, bk, bb) = want
    assert isinstance(got, tuple) and len(got) == 3
    if kw.get("input_grad", True):
        check_arith(got[0], dx, bx, "dx")
    else:
        assert got[0] is None
    if kw.get("kernel_grad", True):
        check_arith(got[1], dk, bk, "dkernel")
        check_arith(got[2], db, bb, "dbias")
    else:
        assert got[1] is None and got[2] is None


def pool_fast(kw):
    kw = dict(kw)
    fn = kw.pop("_fn", "pool2d")
    if fn != "pool2d":
        kw.pop("mode")
        return getattr(cnnfast, fn)(**kw)
    return cnnfast.pool2d(**kw)


def pool_ref(kw):
    kw = {k: v for k, v in kw.items() if k not in ("out", "_fn")}
    want = R.pool2d(**kw)
    bound = None
    mode = kw.get("mode", "max")
    if isinstance(mode, str) and mode.lower() == "avg":
        bound = R.pool2d(**dict(kw, x=absf(kw["x"])))
    return want, bound


def check_pool_indices(got_i, want_i, want_y, x, fmt, what):
    assert isinstance(got_i, np.ndarray) and got_i.dtype == np.int32 and \
        got_i.shape == want_i.shape, f"{what}: {describe(got_i)}"
    nan = np.isnan(want_y)
    assert np.array_equal(got_i[~nan], want_i[~nan]), f"{what}: {got_i} vs {want_i}"
    if nan.any():  # the winner of a window holding NaN must be a NaN cell
        x4 = np.asarray(x, dtype=np.float64)
        if fmt == "channels_first":
            x4 = x4.transpose(0, 2, 3, 1)
        gi = got_i if fmt == "channels_last" else got_i.transpose(0, 2, 3, 1)
        n_, _, _, c_ = np.nonzero(np.isnan(want_y if fmt == "channels_last"
                                           else want_y.transpose(0, 2, 3, 1)))
        flat = gi[np.isnan(want_y if fmt == "channels_last" else want_y.transpose(0, 2, 3, 1))]
        w = x4.shape[2]
        assert np.isnan(x4[n_, flat // w, flat % w, c_]).all(), f"{what}: NaN winner"


def pool_compare(got, want, kw):
    (y, bound) = want
    mode = pool_mode(kw)
    idx = None
    if isinstance(y, tuple):
        y, idx = y
        assert isinstance(got, tuple) and len(got) == 2
        got, gi = got
        check_pool_indices(gi, idx, y, kw["x"], kw["data_format"].lower(), "indices")
    if mode == "avg":
        check_arith(got, y, bound, "avg pool")
    else:
        nan = np.isnan(y)
        assert isinstance(got, np.ndarray) and got.dtype == y.dtype and got.shape == y.shape
        assert np.isnan(got[nan]).all(), "max/min of a window holding NaN is not NaN"
        check_exact(got[~nan], y[~nan], f"{mode} pool")


def pool_mode(kw):
    fn = kw.get("_fn", "pool2d")
    if fn != "pool2d":
        return fn.split("_")[0]
    m = kw.get("mode", "max")
    return m.lower() if isinstance(m, str) else m


# ------------------------------------------------------------------ tests --

def _choose(data, options, label="mutation"):
    return data.draw(st.sampled_from(options), label=label)


MUTATIONS = ["none", "none", "layout", "dtype", "shape", "huge", "scalar", "out", "out_bad"]


def run_mutations(data, fast, ref, compare, kw, arrays, optional, scalars, names):
    """The shared driver: the unmutated call against the oracle, or one mutation.

    With indices given, a changed geometry or shape may make them cells outside their
    windows, which cnnfast refuses (by name) and the oracle does not check."""
    geo_expect = "may_refuse" if kw.get("indices") is not None else "either"
    if geo_expect == "may_refuse":
        names = names + ["indices"]
    m = _choose(data, MUTATIONS)
    note(f"mutation: {m}")
    if m == "none":
        contract(fast, ref, compare, kw, names)
    elif m == "layout":
        name = _choose(data, [a for a in arrays + optional if isinstance(kw.get(a), np.ndarray)],
                       "array")
        mut, canon = layout_mutation(data, kw[name], name)
        kc = dict(kw, **{name: canon})
        bit_identical(fast, dict(kw, **{name: mut}), kc, f"layout of {name}")
        contract(fast, ref, compare, kc, names)
    elif m == "dtype":
        name = _choose(data, arrays + optional, "array")
        if kw.get(name) is None:
            return
        mut, expect = dtype_mutation(data, kw[name], name, optional=name in optional)
        ranames = names if expect == "either" else [name]
        contract(fast, ref, compare, dict(kw, **{name: mut}), ranames, expect)
    elif m == "shape":
        name = _choose(data, arrays + optional, "array")
        if kw.get(name) is None:
            return
        contract(fast, ref, compare, dict(kw, **{name: shape_mutation(data, kw[name], name)}),
                 names + ["empty"], geo_expect)
    elif m == "huge":
        name = _choose(data, arrays + optional, "array")
        if kw.get(name) is None:
            return
        huge_call(fast, dict(kw, **{name: huge_view(data, kw[name], name)}),
                  names + ["output", "empty", "padding", "strides", "dilation_rate"])
    elif m == "scalar":
        new, name, v = scalar_mutation(data, kw, scalars)
        geo_names = [name, "empty", "pool_padding" if name.startswith("pool_") else "padding",
                     "x"]
        if name == "data_format":
            geo_names = names + ["empty", name]
        if geo_expect == "may_refuse":
            geo_names = geo_names + ["indices"]
        if _is_huge(v):
            red = _reduce(v)
            if name == "padding" or red == v:
                huge_call(fast, new, geo_names + ["output", "dilation_rate", "strides"])
                return
            # a huge stride / pool size / dilation: refused by name, or exactly the
            # result with the reduced (equivalent) value
            note_kwargs("huge scalar", new)
            st_f, got = outcome(lambda: fast(new))
            if st_f == "err":
                assert _names_re(geo_names + ["strides", "dilation_rate", "pool_size"]
                                 ).search(str(got)), f"{got}"
                return
            kr = dict(kw, **{name: red})
            st_r, want = outcome(lambda: fast(kr))
            assert st_r == "ok", f"accepted {name}={v!r} but refuses {red!r}: {want}"
            same_result(got, want, f"{name}={v!r} vs {red!r}")
            contract(fast, ref, compare, kr, names)
            return
        contract(fast, ref, compare, new, geo_names, geo_expect)
    elif m in ("out", "out_bad"):
        st_f, result = outcome(lambda: fast(kw))
        assert st_f == "ok", f"a valid problem was refused: {result}"
        if m == "out":
            out_aliasing(data, fast, kw, arrays + optional, result)
        else:
            out_bad(data, fast, kw, result)


CONV_SCALARS = dict(strides=BAD_SIZES, dilation_rate=BAD_SIZES, padding=BAD_PADDINGS,
                    data_format=BAD_FORMATS, activation=BAD_ACTIVATIONS)


@FUZZ
@given(data=st.data())
def test_fuzz_conv2d(data):
    kw = conv_problem(data)
    if data.draw(st.booleans(), label="bias"):
        f = np.shape(kw["kernel"])[3 if kw["data_format"] == "channels_last" else 0]
        kw["bias"] = values(data, (f,), kw["x"].dtype, "bias")
    kw["activation"] = _choose(data, [None, "relu", "linear", "ReLU"], "activation")
    run_mutations(data, conv_fast, conv_ref, conv_compare, kw, ["x", "kernel"], ["bias"],
                  CONV_SCALARS, ["x", "kernel", "bias"])


@FUZZ
@given(data=st.data())
def test_fuzz_conv2d_backward(data):
    kw = conv_problem(data)
    kw["dy"] = values(data, conv_out_shape(kw), kw["x"].dtype, "dy")
    kw["input_grad"] = data.draw(st.sampled_from([True, True, False]), label="input_grad")
    kw["kernel_grad"] = data.draw(st.sampled_from([True, True, False]), label="kernel_grad")
    run_mutations(data, convb_fast, convb_ref, convb_compare, kw, ["dy", "x", "kernel"], [],
                  {k: v for k, v in CONV_SCALARS.items() if k != "activation"},
                  ["dy", "x", "kernel"])


POOL_SCALARS = dict(strides=BAD_SIZES + [None], pool_size=BAD_SIZES, padding=BAD_PADDINGS,
                    data_format=BAD_FORMATS, mode=BAD_MODES)


def _pool_kwargs(data):
    p = pool_problem(data)
    (n, h, w, c), dt, fmt = p.pop("_shape"), p.pop("_dtype"), p["data_format"]
    xs = (n, h, w, c) if fmt == "channels_last" else (n, c, h, w)
    kw = dict(x=values(data, xs, dt, "x"), **p)
    kw["mode"] = _choose(data, ["max", "avg", "min", "MAX", "Min"], "mode")
    return kw


@FUZZ
@given(data=st.data())
def test_fuzz_pool2d(data):
    kw = _pool_kwargs(data)
    scalars = dict(POOL_SCALARS)
    if data.draw(st.booleans(), label="bound function"):
        kw["_fn"] = f"{kw['mode'].lower()}_pool2d"
        del scalars["mode"]
    if kw["mode"].lower() != "avg":
        kw["return_indices"] = data.draw(st.booleans(), label="return_indices")
    run_mutations(data, pool_fast, pool_ref, pool_compare, kw, ["x"], [], scalars, ["x"])


def _window_of(pos, shape_nhwc, plane, window):
    """Rows and columns [r0, r1) x [c0, c1) of output pos's pooling window in its plane."""
    kh, kw, sh, sw, pt, pl = window
    _, oi, oj, _ = np.unravel_index(pos, shape_nhwc)
    h, w = plane
    return (max(oi * sh - pt, 0), min(oi * sh - pt + kh, h),
            max(oj * sw - pl, 0), min(oj * sw - pl + kw, w))


def index_mutation(data, ind, fmt, plane, window):
    """indices with one entry changed: (new indices, whether it is still a cell of its
    own window)."""
    i4 = ind if fmt == "channels_last" else ind.transpose(0, 2, 3, 1)
    i4 = np.array(i4, dtype=np.int64)
    pos = data.draw(st.integers(0, i4.size - 1), label="index position")
    h, w = plane
    v = data.draw(st.sampled_from([-1, 0, h * w - 1, h * w, 2**31 - 1, -2**31, 2**40,
                                   data.draw(st.integers(-2, h * w + 2), label="v")]),
                  label="index value")
    r0, r1, c0, c1 = _window_of(pos, i4.shape, plane, window)
    inside = 0 <= v < h * w and r0 <= v // w < r1 and c0 <= v % w < c1
    i4.flat[pos] = v
    dt = np.int32 if -2**31 <= v < 2**31 and data.draw(st.booleans(), label="int32") \
        else np.int64
    out = i4.astype(dt)
    return (out if fmt == "channels_last" else out.transpose(0, 3, 1, 2)), inside


def _pool_args(kw):
    return {k: kw[k] for k in ("pool_size", "strides", "padding", "mode", "data_format")}


def poolb_fast(kw):
    return cnnfast.pool2d_backward(**kw)


def poolb_ref(kw):
    pa = _pool_args(kw)
    R.pool2d(kw["x"], **pa)  # the oracle's argument checks
    ind = kw.get("indices")
    avg = pa["mode"].lower() == "avg"
    if ind is None and not avg:
        _, ind = cnnfast.pool2d(kw["x"], **pa, return_indices=True)
    want = R.pool2d_backward(kw["dy"], kw["x"], **pa, indices=None if avg else ind)
    bound = R.pool2d_backward(absf(kw["dy"]), kw["x"], **pa, indices=None if avg else ind)
    return want, bound


def poolb_compare(got, want, kw):
    check_arith(got, want[0], want[1], "pool2d_backward")


def _resolved_window(kw, plane, pool_size, strides, padding):
    kh, kw_ = R._pair(pool_size, "pool_size")
    s = (kh, kw_) if strides is None else R._pair(strides, "strides")
    (pt, _), (pl, _) = R.resolve_padding(padding, plane, (kh, kw_), s)
    return (kh, kw_, s[0], s[1], pt, pl)


@FUZZ
@given(data=st.data())
def test_fuzz_pool2d_backward(data):
    kw = _pool_kwargs(data)
    fmt, avg = kw["data_format"], kw["mode"].lower() == "avg"
    y, ind = (cnnfast.pool2d(**kw), None) if avg else \
        cnnfast.pool2d(**kw, return_indices=True)
    kw["dy"] = values(data, y.shape, kw["x"].dtype, "dy")
    if not avg and data.draw(st.booleans(), label="with indices"):
        kw["indices"] = ind
        if ind.size and data.draw(st.integers(0, 4), label="mutate an index") == 0:
            x4 = kw["x"] if fmt == "channels_last" else kw["x"].transpose(0, 2, 3, 1)
            plane = x4.shape[1:3]
            win = _resolved_window(kw, plane, kw["pool_size"], kw["strides"], kw["padding"])
            kw["indices"], inside = index_mutation(data, ind, fmt, plane, win)
            contract(poolb_fast, poolb_ref, poolb_compare, kw, ["indices"],
                     "either" if inside else "refuse")
            return
    run_mutations(data, poolb_fast, poolb_ref, poolb_compare, kw, ["dy", "x"],
                  ["indices"] if "indices" in kw else [],
                  {k: v for k, v in POOL_SCALARS.items() if k != "mode"},
                  ["dy", "x", "indices"])


# ------------------------------------------------- convolution + pooling --

def _conv_pool_kwargs(data, modes):
    kw = conv_problem(data)
    fmt = kw["data_format"]
    if data.draw(st.booleans(), label="bias"):
        f = np.shape(kw["kernel"])[3 if fmt == "channels_last" else 0]
        kw["bias"] = values(data, (f,), kw["x"].dtype, "bias")
    kw["activation"] = _choose(data, [None, "relu", "linear"], "activation")
    zs = conv_out_shape(kw)
    z4 = zs if fmt == "channels_last" else (zs[0], zs[2], zs[3], zs[1])
    p = pool_problem(data, z4, kw["x"].dtype, fmt)
    if p is None:
        p = dict(pool_size=1, strides=None, padding="valid")
    kw.update(pool_size=p["pool_size"], pool_strides=p["strides"], pool_padding=p["padding"],
              pool_mode=_choose(data, modes, "pool_mode"))
    return kw


def _conv_args(kw):
    return {k: kw[k] for k in ("strides", "padding", "dilation_rate", "data_format")}


def _pool_of(kw):
    return dict(pool_size=kw["pool_size"], strides=kw["pool_strides"],
                padding=kw["pool_padding"], mode=kw["pool_mode"],
                data_format=kw["data_format"])


def cp_fast(kw):
    return cnnfast.conv2d_pool2d(**kw)


def cp_ref(kw):
    z = R.conv2d(kw["x"], kw["kernel"], kw.get("bias"), activation=_ref_act(
        kw.get("activation")), **_conv_args(kw))
    R.pool2d(z, **_pool_of(kw), return_indices=kw.get("return_indices", False))
    bound = R.conv2d(absf(kw["x"]), absf(kw["kernel"]), absf(kw.get("bias")),
                     **_conv_args(kw))
    return z, bound


def cp_compare(got, want, kw):
    """bit-identical to cnnfast's pool2d(conv2d(...)); that conv2d matches the oracle,
    and the fused pooling is the oracle's pooling of cnnfast's conv2d output."""
    z = cnnfast.conv2d(kw["x"], kw["kernel"], kw.get("bias"), activation=kw.get("activation"),
                       **_conv_args(kw))
    ri = kw.get("return_indices", False)
    same_result(got, cnnfast.pool2d(z, **_pool_of(kw), return_indices=ri),
                "conv2d_pool2d vs pool2d(conv2d)")
    check_arith(z, want[0], want[1], "conv2d (in conv2d_pool2d)")
    pk = dict(_pool_of(kw), x=z)
    if ri:
        pk["return_indices"] = True
    pool_compare(got, pool_ref(pk), pk)


CP_SCALARS = dict(CONV_SCALARS, pool_size=BAD_SIZES, pool_strides=BAD_SIZES + [None],
                  pool_padding=BAD_PADDINGS, pool_mode=BAD_MODES)


@FUZZ
@given(data=st.data())
def test_fuzz_conv2d_pool2d(data):
    kw = _conv_pool_kwargs(data, ["max", "min", "avg", "MAX"])
    if kw["pool_mode"].lower() != "avg":
        kw["return_indices"] = data.draw(st.booleans(), label="return_indices")
    run_mutations(data, cp_fast, cp_ref, cp_compare, kw, ["x", "kernel"], ["bias"],
                  CP_SCALARS, ["x", "kernel", "bias"])


def cpb_fast(kw):
    return cnnfast.conv2d_pool2d_backward(**kw)


def cpb_ref(kw):
    """Composed oracle: the ReLU mask (y > 0) on dy, the pooling backward onto the
    convolution output's plane through the indices, then the convolution backward."""
    if not isinstance(kw["pool_mode"], str) or kw["pool_mode"].lower() not in ("max", "min"):
        raise ValueError(f"pool_mode must be max or min, got {kw['pool_mode']!r}")
    act = _ref_act(kw.get("activation"))
    if act not in (None, "linear", "relu"):
        raise ValueError(f"activation {act!r}")
    z = R.conv2d(np.zeros(np.shape(kw["x"])), np.zeros(np.shape(kw["kernel"])),
                 **_conv_args(kw))
    R.pool2d(z, **_pool_of(kw))  # the pooling arguments' checks
    dy = R._array(kw["dy"], "dy")
    if act == "relu":
        if kw.get("y") is None:
            raise ValueError("activation='relu' needs y")
        y = R._array(kw["y"], "y")
        if y.shape != dy.shape:
            raise ValueError(f"y must have dy's shape {dy.shape}, got {y.shape}")
        dy = np.where(y > 0, dy, 0)
    dt = np.result_type(np.float32, R._array(kw["x"], "x"), R._array(kw["kernel"], "kernel"),
                        kw["dy"])
    out = []
    for d in (dy, absf(dy)):
        dz = R.pool2d_backward(d, z, **_pool_of(kw), indices=kw["indices"])
        xs = kw["x"] if d is dy else absf(kw["x"])
        ks = kw["kernel"] if d is dy else absf(kw["kernel"])
        dx, dk, db = R.conv2d_backward(dz, xs, ks, **_conv_args(kw))
        out.append((None if dx is None else dx.astype(dt), dk.astype(dt), db.astype(dt)))
    return tuple(out)


def cpb_compare(got, want, kw):
    convb_compare(got, want, dict(kw, kernel_grad=True))


@FUZZ
@given(data=st.data())
def test_fuzz_conv2d_pool2d_backward(data):
    kw = _conv_pool_kwargs(data, ["max", "min", "Max"])
    y, ind = cnnfast.conv2d_pool2d(**kw, return_indices=True)
    kw.pop("bias", None)
    kw["dy"] = values(data, y.shape, kw["x"].dtype, "dy")
    kw["indices"] = ind
    kw["y"] = y if kw["activation"] == "relu" else None
    kw["input_grad"] = data.draw(st.sampled_from([True, True, False]), label="input_grad")
    if ind.size and data.draw(st.integers(0, 4), label="mutate an index") == 0:
        zs = conv_out_shape(kw)
        fmt = kw["data_format"]
        plane = zs[1:3] if fmt == "channels_last" else zs[2:]
        win = _resolved_window(kw, plane, kw["pool_size"], kw["pool_strides"],
                               kw["pool_padding"])
        kw["indices"], inside = index_mutation(data, ind, fmt, plane, win)
        contract(cpb_fast, cpb_ref, cpb_compare, kw, ["indices"],
                 "either" if inside else "refuse")
        return
    scalars = {k: v for k, v in CP_SCALARS.items()}
    scalars["pool_mode"] = [m for m in BAD_MODES if m not in ("avg",)]
    run_mutations(data, cpb_fast, cpb_ref, cpb_compare, kw,
                  ["dy", "x", "kernel", "indices"], (["y"] if kw["y"] is not None and
                                                        kw["activation"] == "relu" else []),
                  scalars,
                  ["dy", "x", "kernel", "indices", "y", "activation", "pool_mode"])


# ---------------------------------------------------------------- GEMM --

def _gemm_names(kw):
    return ("a", "b") if "a" in kw else ("x", "kernel")


def gemm_fast(kw):
    if "a" in kw:
        return cnnfast.matmul(**kw)
    return cnnfast.dense(**kw)


def gemm_ref(kw):
    """a @ b (+ bias) (relu) by einsum's own loops in float64 (no BLAS shortcuts)."""
    na, nb = _gemm_names(kw)
    a, b = R._array(kw[na], na), R._array(kw[nb], nb)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"{na} {a.shape} and {nb} {b.shape} do not chain")
    bias = kw.get("bias")
    arrays = [a, b]
    if bias is not None:
        bias = R._array(bias, "bias")
        if bias.shape != (b.shape[1],):
            raise ValueError(f"bias shape {bias.shape}")
        arrays.append(bias)
    act = _ref_act(kw.get("activation"))
    if act not in (None, "linear", "relu"):
        raise ValueError(f"activation {act!r}")
    dt = np.result_type(np.float32, *arrays)
    res = []
    for f in ((lambda v: np.asarray(v, np.float64)), absf):
        r = np.einsum("ik,kj->ij", f(a), f(b), optimize=False)
        if bias is not None:
            r = r + f(bias)
        res.append(r)
    want = res[0]
    if act == "relu":
        want = np.maximum(want, 0)
    return want.astype(dt), res[1]


def gemm_compare(got, want, kw):
    check_arith(got, want[0], want[1], "matmul/dense")


@FUZZ
@given(data=st.data())
def test_fuzz_matmul_dense(data):
    dt = data.draw(st.sampled_from([np.float32, np.float64]), label="dtype")
    m, k, n = (data.draw(st.integers(0, 6), label=s) for s in "MKN")
    dense = data.draw(st.booleans(), label="dense")
    na, nb = ("x", "kernel") if dense else ("a", "b")
    kw = {na: values(data, (m, k), dt, na), nb: values(data, (k, n), dt, nb)}
    if data.draw(st.booleans(), label="transposed operands"):
        kw[na] = np.ascontiguousarray(kw[na].T).T
    optional = []
    scalars = dict(accumulate=[True, False, 1, 0])
    if dense:
        if data.draw(st.booleans(), label="bias"):
            kw["bias"] = values(data, (n,), dt, "bias")
        kw["activation"] = _choose(data, [None, "relu", "linear", "Relu"], "activation")
        optional, scalars = ["bias"], dict(activation=BAD_ACTIVATIONS)
    elif m * n and data.draw(st.integers(0, 5), label="accumulate") == 0:
        o = values(data, (m, n), dt, "out")
        kw["out"], kw["accumulate"] = o.copy(), True
        note_kwargs("accumulate", kw)
        with np.errstate(all="ignore"):
            got = cnnfast.matmul(**kw)
        want, bound = gemm_ref({na: kw[na], nb: kw[nb]})
        with np.errstate(all="ignore"):
            want = (o.astype(np.float64) + want.astype(np.float64)).astype(dt)
        assert got is kw["out"]
        check_arith(got, want, bound + absf(o), "matmul accumulate")
        return
    run_mutations(data, gemm_fast, gemm_ref, gemm_compare, kw, [na, nb], optional, scalars,
                  [na, nb, "bias"])


# ------------------------------------------------------ found by the fuzzer --

@pytest.mark.parametrize("strides", [1, 2])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_dx_nonfinite_kernel_taps_spread(strides, bad):
    """dx[r, c] = sum of dy * k over the taps that reach (r, c) (the oracle): a
    non-finite tap must only reach the cells it touches."""
    x = np.ones((1, 5, 5, 1))
    k = np.arange(9.0).reshape(3, 3, 1, 1) + 1
    k[0, 2] = bad
    dy = np.ones(R.conv2d(x, k, strides=strides).shape)
    with np.errstate(all="ignore"):
        got = cnnfast.conv2d_backward(dy, x, k, strides=strides)[0]
        want = R.conv2d_backward(dy, x, k, strides=strides)[0]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want)
