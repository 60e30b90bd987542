"""Inference as one C call (``ops.training.InferenceChain``, built by the plan).

``Sequential.predict`` and ``model(x)`` run a plan whose every step has a chain form
as one C call; the contract is the same bits as the steps' own ``forward``, on every
model the chain takes, for any batch size and thread count, with the weights as they
are at the call (updated in place or replaced), and a fallback to the steps for any
model it does not take.
"""

from __future__ import annotations

import numpy as np
import pytest

import cnnfast
from cnnfast import layers, models
from cnnfast.ops import training


def _stack(kind: str) -> list:
    """Small models: each exercises a different set of chain steps."""
    L = layers
    if kind == "tutorial":  # fused pairs, Flatten, Dropout, Dense(relu), Dense(softmax)
        return [L.Conv2D(8, 3, activation="relu", padding="same", input_shape=(12, 12, 1)),
                L.MaxPooling2D(), L.Conv2D(16, 3, activation="relu", padding="same"),
                L.MaxPooling2D(), L.Flatten(), L.Dense(20, activation="relu"),
                L.Dropout(0.5), L.Dense(5, activation="softmax")]
    if kind == "winograd":  # a 3x3 stride-1 layer of 32 -> 64 channels on 14 x 14
        return [L.Conv2D(32, 3, activation="relu", padding="same", input_shape=(14, 14, 3)),
                L.Conv2D(64, 3, activation="relu", padding="same"), L.MaxPooling2D(),
                L.Flatten(), L.Dense(4)]
    if kind == "unfusable":  # avg pooling, overlapping max windows, linear conv
        return [L.Conv2D(6, 3, activation="relu", input_shape=(15, 14, 2)),
                L.AveragePooling2D(), L.Conv2D(7, (2, 3), strides=(1, 2), padding="same"),
                L.MaxPooling2D(pool_size=3, strides=1), L.MinPooling2D(pool_size=(2, 1)),
                L.Flatten(), L.Dense(3, activation="relu")]
    if kind == "activation-layers":  # Input, Activation softmax / linear, Dense on 3-D
        return [L.Input((6, 4)), L.Dense(5), L.Activation("linear"), L.Dense(3),
                L.Activation("softmax")]
    if kind == "sigmoid":  # no chain form: the steps run
        return [L.Dense(4, activation="sigmoid", input_shape=(3,)), L.Dense(2)]
    if kind == "channels-first":  # no chain form
        return [L.Conv2D(4, 3, data_format="channels_first", input_shape=(2, 6, 6)),
                L.Flatten(), L.Dense(2)]
    raise ValueError(kind)


CHAINED = ["tutorial", "winograd", "unfusable", "activation-layers"]
NOT_CHAINED = ["sigmoid", "channels-first"]


def _model(kind: str, dtype="float32", compiled=True, fuse=True) -> models.Sequential:
    cnnfast.utils.set_random_seed(3)
    m = models.Sequential(_stack(kind), dtype=dtype)
    m.fuse_layers = fuse
    if compiled:
        m.compile("adam", "categorical_crossentropy")
    return m


def _x(model: models.Sequential, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n,) + model._input_shape).astype(model.dtype)


def _steps_output(model: models.Sequential, x: np.ndarray) -> np.ndarray:
    """The plan's steps, one forward after the other (the chain's definition)."""
    return np.array(model._plan().forward(model._batch(x, slice(None)), False))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("kind", CHAINED)
def test_chain_gives_the_steps_bits(kind, fuse, dtype):
    m = _model(kind, dtype=dtype, fuse=fuse)
    for n in (1, 3, 40):
        x = _x(m, n, seed=n)
        got = m.predict(x, batch_size=64)
        assert m._plan()._chains.get(n) is not None, "the plan should have a chain form"
        assert got.dtype == m.dtype and got.shape == (n,) + m.layers[-1]._out_shape
        np.testing.assert_array_equal(got, _steps_output(m, x))
        np.testing.assert_array_equal(m(x), got)


def test_chain_covers_uncompiled_softmax_and_batches_with_a_remainder():
    m = _model("tutorial", compiled=False)  # Dense(softmax) as a plain layer
    x = _x(m, 70)
    got = m.predict(x, batch_size=32)  # batches of 32, 32 and 6, straight into out
    want = np.concatenate([_steps_output(m, x[i:i + 32]) for i in range(0, 70, 32)])
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("kind", NOT_CHAINED)
def test_models_without_a_chain_form_run_their_steps(kind):
    m = _model(kind)
    x = _x(m, 4)
    got = m.predict(x)
    assert m._plan()._chains.get(4, False) is None
    np.testing.assert_array_equal(got, _steps_output(m, x))


def test_chain_bits_do_not_depend_on_the_thread_count():
    m = _model("winograd")
    x = _x(m, 5)
    try:
        outs = []
        for threads in (1, 2, 3):
            cnnfast.set_num_threads(threads)
            outs.append(m.predict(x))
        for out in outs[1:]:
            np.testing.assert_array_equal(out, outs[0])
    finally:
        cnnfast.set_num_threads(None)


def test_chain_reads_the_weights_as_they_are_at_the_call():
    m = _model("tutorial")
    x = _x(m, 2)
    before = m.predict(x)
    y = np.eye(5, dtype=np.float32)[[1, 3]]
    m.train_on_batch(x, y)  # the optimizer updates the arrays in place
    after = m.predict(x)
    assert not np.array_equal(before, after)
    np.testing.assert_array_equal(after, _steps_output(m, x))
    m.set_weights([w * 0.5 for w in m.get_weights()])  # in place too
    np.testing.assert_array_equal(m.predict(x), _steps_output(m, x))


def test_a_layer_given_new_weight_arrays_gets_a_new_chain():
    m = _model("tutorial")
    x = _x(m, 2)
    m.predict(x)
    dense = m.layers[5]
    dense.kernel = dense.kernel * 2.0  # a new array, not the one the chain holds
    dense.weights[0] = dense.kernel
    np.testing.assert_array_equal(m.predict(x), _steps_output(m, x))
    conv = m.layers[0]
    conv.activation = cnnfast.activations.get("linear")
    np.testing.assert_array_equal(m.predict(x), _steps_output(m, x))


def test_a_conv_given_another_activation_predicts_with_it():
    m = _model("unfusable")  # its second Conv2D runs alone (no fused pooling)
    x = _x(m, 3)
    conv = m.layers[2]
    linear = m.predict(x)
    conv.activation = cnnfast.activations.get("relu")
    relu = m.predict(x)
    np.testing.assert_array_equal(relu, _steps_output(m, x))
    assert not np.array_equal(relu, linear)
    conv.activation = cnnfast.activations.get("linear")
    np.testing.assert_array_equal(m.predict(x), linear)


def _dense_chain(rows=2, depth=3, units=4, dtype=np.float32):
    k = np.ones((depth, units), dtype)
    return training.InferenceChain(dtype, (rows, depth), (rows, units),
                                   [("dense", rows, k, None, False)]), k


def test_chain_runs_a_single_step_into_out():
    chain, _ = _dense_chain()
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = np.full((2, 4), np.nan, np.float32)
    assert chain(x, out) is out
    np.testing.assert_array_equal(out, x @ np.ones((3, 4), np.float32))


def test_chain_refuses_what_it_cannot_run():
    k = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match="takes 6 values, the one before gives 8"):
        training.InferenceChain(np.float32, (2, 4), (2, 4), [("dense", 2, k, None, False)])
    with pytest.raises(ValueError, match="out_shape"):
        training.InferenceChain(np.float32, (2, 3), (2, 5), [("dense", 2, k, None, False)])
    with pytest.raises(ValueError, match="kernel: expected dtype float32"):
        training.InferenceChain(np.float32, (2, 3), (2, 4),
                                [("dense", 2, k.astype(np.float64), None, False)])
    with pytest.raises(ValueError, match="bias: expected shape"):
        training.InferenceChain(np.float32, (2, 3), (2, 4),
                                [("dense", 2, k, np.zeros(3, np.float32), False)])
    with pytest.raises(ValueError, match="unknown kind 'gelu'"):
        training.InferenceChain(np.float32, (2, 3), (2, 3), [("gelu",)])
    with pytest.raises(ValueError, match="softmax sizes out of range"):
        training.InferenceChain(np.float32, (2, 0), (2, 0), [("softmax", 2, 0)])
    with pytest.raises(ValueError, match="at least one step"):
        training.InferenceChain(np.float32, (2, 3), (2, 3), [])
    with pytest.raises(TypeError, match="float32 or float64"):
        training.InferenceChain(np.int32, (2, 3), (2, 4), [("dense", 2, k, None, False)])


def test_chain_checks_each_call_s_arrays():
    chain, _ = _dense_chain()
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"x: expected shape \(2, 3\)"):
        chain(np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match="x: expected dtype float32"):
        chain(x.astype(np.float64))
    with pytest.raises(ValueError, match="aligned C-contiguous"):
        chain(np.zeros((3, 2), np.float32).T)
    with pytest.raises(ValueError, match="out: output array is read-only"):
        out = np.zeros((2, 4), np.float32)
        out.flags.writeable = False
        chain(x, out)
    square, _ = _dense_chain(rows=2, depth=4, units=4)
    both = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match="out: must not overlap x"):
        square(both, both)


def test_a_chain_whose_construction_failed_runs_nothing():
    from cnnfast import _kernels

    k = np.ones((3, 4), np.float32)
    chain = _kernels.InferenceChain.__new__(_kernels.InferenceChain)
    x, out = np.zeros((2, 3), np.float32), np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match="was not built"):
        chain.run(x, out)
    alloc = lambda count: np.empty(count, np.float32)  # noqa: E731
    chain.__init__(np.float32, (2, 3), (2, 4), [("dense", 2, k, None, False)], alloc)
    chain.run(x, out)
    with pytest.raises(ValueError, match="unknown kind"):
        chain.__init__(np.float32, (2, 3), (2, 4),
                       [("dense", 2, k, None, False), ("gelu",)], alloc)
    with pytest.raises(ValueError, match="was not built"):
        chain.run(x, out)
