"""Keras-style layers: gradients against float64 central finite differences, shapes,
Dropout semantics, activations, initializers."""

from __future__ import annotations

import numpy as np
import pytest

from cnnfast import activations, initializers, layers, utils


def _numeric_grad(f, a: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar f() w.r.t. every element of ``a`` (in place)."""
    g = np.zeros_like(a)
    flat, gflat = a.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        fp = f()
        flat[i] = old - eps
        fm = f()
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * eps)
    return g


def check_layer_gradients(layer, x: np.ndarray, seed: int = 0, rtol=1e-5, atol=1e-7):
    """Compare backward() with finite differences of sum(forward(x) * R)."""
    rng = np.random.default_rng(seed)
    x = x.astype(np.float64)
    layer.build(x.shape[1:], np.float64)
    # Non-zero biases so that they matter in the check.
    for w in layer.weights:
        if w.ndim == 1:
            w[...] = rng.uniform(-0.3, 0.3, w.shape)
    y = layer.forward(x, training=True)
    assert y.shape == (x.shape[0],) + layer.compute_output_shape(x.shape[1:])
    assert y.dtype == np.float64
    r = rng.standard_normal(y.shape)
    dx = layer.backward(r.copy(), input_grad=True)
    dx = None if dx is None else np.array(dx)
    grads = [np.array(g) for g in layer.gradients]

    def f():
        return float(np.sum(layer.forward(x, training=True) * r))

    np.testing.assert_allclose(dx, _numeric_grad(f, x), rtol=rtol, atol=atol)
    assert len(grads) == len(layer.weights)
    for g, w in zip(grads, layer.weights):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, _numeric_grad(f, w), rtol=rtol, atol=atol)


def _x(shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("kwargs, shape", [
    (dict(filters=3, kernel_size=3, activation="relu"), (2, 5, 6, 2)),
    (dict(filters=2, kernel_size=(2, 3), padding="same", strides=2, activation="tanh"),
     (2, 5, 5, 3)),
    (dict(filters=2, kernel_size=2, dilation_rate=2, use_bias=False), (1, 6, 5, 2)),
    (dict(filters=4, kernel_size=3, padding="same", activation="sigmoid"), (2, 4, 4, 1)),
    (dict(filters=3, kernel_size=1, activation="softmax"), (2, 3, 3, 2)),
])
def test_conv2d_gradients(kwargs, shape):
    check_layer_gradients(layers.Conv2D(**kwargs), _x(shape))


def test_conv2d_channels_first_gradients():
    layer = layers.Conv2D(3, 3, padding="same", activation="relu", data_format="channels_first")
    check_layer_gradients(layer, _x((2, 2, 5, 4)))
    assert layer.kernel.shape == (3, 2, 3, 3)


@pytest.mark.parametrize("cls", [layers.MaxPooling2D, layers.AveragePooling2D,
                                 layers.MinPooling2D])
@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(pool_size=3, strides=2, padding="same"),
    dict(pool_size=(2, 3), strides=(1, 2)),
])
def test_pooling_gradients(cls, kwargs):
    check_layer_gradients(cls(**kwargs), _x((2, 6, 7, 3)))


@pytest.mark.parametrize("activation", ["linear", "relu", "sigmoid", "tanh", "softmax"])
def test_dense_gradients(activation):
    check_layer_gradients(layers.Dense(4, activation=activation), _x((3, 5)))


def test_dense_on_last_axis_of_3d_input():
    layer = layers.Dense(3, activation="relu")
    check_layer_gradients(layer, _x((2, 4, 5)))
    assert layer.compute_output_shape((4, 5)) == (4, 3)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_flatten_gradients(data_format):
    check_layer_gradients(layers.Flatten(data_format=data_format), _x((2, 3, 4, 2)))


def test_flatten_channels_first_gives_the_channels_last_feature_order():
    """Keras's rule: the channel axis moves last before flattening, so a channels_first
    tensor flattens to the features of its channels_last form."""
    x = np.arange(24.0).reshape(2, 3, 2, 2)  # (N, C, H, W)
    got = layers.Flatten(data_format="channels_first")(x)
    np.testing.assert_array_equal(got, x.transpose(0, 2, 3, 1).reshape(2, -1))
    np.testing.assert_array_equal(got[0], [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11])
    np.testing.assert_array_equal(layers.Flatten()(x), x.reshape(2, -1))
    # nothing to move on 2-D input
    np.testing.assert_array_equal(layers.Flatten(data_format="channels_first")(x[:, :, 0, 0]),
                                  x[:, :, 0, 0])


@pytest.mark.parametrize("activation", ["linear", "relu", "sigmoid", "tanh", "softmax"])
def test_activation_layer_gradients(activation):
    check_layer_gradients(layers.Activation(activation), _x((3, 6)))


def test_dropout_training_semantics():
    utils.set_random_seed(0)
    layer = layers.Dropout(0.25)
    x = np.ones((200, 50), np.float32)
    layer.build(x.shape[1:], np.float32)
    y = np.array(layer.forward(x, training=True))
    kept = y != 0
    # Inverted dropout: kept values scaled by 1 / (1 - rate), about `rate` dropped.
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    assert abs((~kept).mean() - 0.25) < 0.02
    dy = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    dx = layer.backward(dy)
    np.testing.assert_allclose(dx, dy * y, rtol=1e-6)  # y is the mask here (x = 1)
    # Inference: identity, gradient passes unchanged.
    assert layer.forward(x, training=False) is x
    np.testing.assert_array_equal(layer.backward(dy), dy)


def test_dropout_gradient_matches_finite_differences_for_a_fixed_mask():
    layer = layers.Dropout(0.5, seed=3)
    x = _x((4, 6))
    layer.build(x.shape[1:], np.float64)
    y = np.array(layer.forward(x, training=True))
    mask = np.divide(y, x)
    r = _x((4, 6), seed=2)
    dx = layer.backward(r)
    # With the mask fixed the layer is x * mask, linear: gradient r * mask.
    np.testing.assert_allclose(dx, r * mask)
    assert set(np.unique(mask).round(6)) <= {0.0, 2.0}


def test_dropout_seed_and_rate_validation():
    a, b = layers.Dropout(0.5, seed=7), layers.Dropout(0.5, seed=7)
    x = np.ones((10, 10), np.float32)
    for layer in (a, b):
        layer.build((10,), np.float32)
    np.testing.assert_array_equal(a.forward(x, True), b.forward(x, True))
    with pytest.raises(ValueError, match="rate"):
        layers.Dropout(1.0)
    with pytest.raises(ValueError, match="rate"):
        layers.Dropout(-0.1)


def test_layer_call_builds_and_returns_a_copy():
    layer = layers.Dense(2, kernel_initializer="ones")
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    y1 = layer(x)
    y2 = layer(x + 1)
    np.testing.assert_allclose(y1, [[3, 3], [12, 12]])
    assert not np.shares_memory(y1, y2)
    with pytest.raises(ValueError, match="expects input shape"):
        layer(np.ones((2, 4), np.float32))


def test_conv2d_output_shapes_and_validation():
    layer = layers.Conv2D(8, 3, strides=2, padding="same")
    assert layer.compute_output_shape((28, 28, 1)) == (14, 14, 8)
    assert layers.Conv2D(8, 3).compute_output_shape((28, 28, 1)) == (26, 26, 8)
    assert layers.Conv2D(8, 3, dilation_rate=2).compute_output_shape((9, 9, 2)) == (5, 5, 8)
    with pytest.raises(ValueError, match="filters"):
        layers.Conv2D(0, 3)
    with pytest.raises(ValueError):
        layers.Conv2D(4, 5).compute_output_shape((3, 3, 1))  # empty output
    with pytest.raises(ValueError, match="Conv2D expects"):
        layers.Conv2D(4, 3).build((10, 10), np.float32)


def test_pooling_output_shapes():
    assert layers.MaxPooling2D().compute_output_shape((28, 28, 32)) == (14, 14, 32)
    assert layers.MaxPooling2D(2).compute_output_shape((7, 7, 4)) == (3, 3, 4)
    assert layers.AveragePooling2D(2, padding="same").compute_output_shape((7, 7, 4)) == (4, 4, 4)
    assert layers.MinPooling2D(3, strides=1).compute_output_shape((5, 6, 2)) == (3, 4, 2)


def test_max_pool_indices_used_in_backward():
    layer = layers.MaxPooling2D()
    x = _x((2, 4, 4, 3)).astype(np.float32)
    layer.build(x.shape[1:], np.float32)
    layer.forward(x, training=True)
    assert layer._idx is not None and layer._idx.dtype == np.int32
    # Inference keeps no indices (nothing to differentiate).
    layer.forward(x, training=False)
    assert layer._idx is None


def test_auto_names_are_unique():
    a, b = layers.Conv2D(1, 1), layers.Conv2D(1, 1)
    assert a.name.startswith("conv2d") and b.name.startswith("conv2d") and a.name != b.name
    assert layers.MaxPooling2D().name.startswith("max_pooling2d")
    assert layers.Dense(1, name="head").name == "head"


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "softmax", "linear"])
def test_activation_functions(name):
    x = np.array([[-2.0, -0.5, 0.0, 0.5, 3.0]])
    expected = {
        "relu": np.maximum(x, 0),
        "sigmoid": 1 / (1 + np.exp(-x)),
        "tanh": np.tanh(x),
        "softmax": np.exp(x) / np.exp(x).sum(),
        "linear": x,
    }[name]
    np.testing.assert_allclose(getattr(activations, name)(x), expected, rtol=1e-12)
    assert activations.get(name).name == name


def test_activations_extreme_inputs_are_finite():
    x = np.array([[-1000.0, 0.0, 1000.0]], np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = activations.softmax(x)
    np.testing.assert_allclose(s, [[0, 0, 1]], atol=1e-7)
    sig = activations.sigmoid(x)
    np.testing.assert_allclose(sig, [[0, 0.5, 1]], atol=1e-7)
    with pytest.raises(ValueError, match="unknown activation"):
        activations.get("swishy")


def test_glorot_uniform_uses_receptive_field_fans():
    utils.set_random_seed(0)
    shape = (3, 3, 16, 32)
    assert initializers.compute_fans(shape) == (3 * 3 * 16, 3 * 3 * 32)
    w = initializers.get("glorot_uniform")(shape)
    limit = np.sqrt(6 / (144 + 288))
    assert w.dtype == np.float32 and np.abs(w).max() <= limit
    assert np.abs(w).max() > 0.95 * limit
    np.testing.assert_allclose(w.std(), limit / np.sqrt(3), rtol=0.05)


@pytest.mark.parametrize("name, std", [
    ("glorot_normal", np.sqrt(2 / (400 + 300))),
    ("he_normal", np.sqrt(2 / 400)),
    ("he_uniform", np.sqrt(2 / 400)),
    ("random_normal", 0.05),
    ("random_uniform", 0.1 / np.sqrt(12)),
])
def test_initializer_scales(name, std):
    utils.set_random_seed(1)
    w = initializers.get(name)((400, 300), "float64")
    assert w.dtype == np.float64
    np.testing.assert_allclose(w.std(), std, rtol=0.03)
    if name.endswith("normal") and name != "random_normal":
        # Truncated at two standard deviations of the underlying normal.
        assert np.abs(w).max() <= 2 * std / 0.87962566103423978 + 1e-12


def test_initializers_constant_and_seeded():
    assert np.all(initializers.get("zeros")((2, 3)) == 0)
    assert np.all(initializers.get("ones")((2, 3)) == 1)
    a = initializers.GlorotUniform(seed=5)((4, 4))
    b = initializers.GlorotUniform(seed=5)((4, 4))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="unknown initializer"):
        initializers.get("nope")
