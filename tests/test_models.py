"""Sequential model: whole-model gradients, fit/evaluate/predict, weights files, summary,
reproducibility, input checking; losses, optimizers, to_categorical, progress bar."""

from __future__ import annotations

import io

import numpy as np
import pytest

from cnnfast import layers, losses, models, optimizers, utils
from cnnfast.progress import Progbar


def _tiny_model(last="softmax", separate_softmax=False, dtype="float64"):
    stack = [
        layers.Conv2D(3, 3, padding="same", activation="relu", input_shape=(6, 6, 2)),
        layers.MaxPooling2D(2),
        layers.Conv2D(2, 2, activation="tanh"),
        layers.AveragePooling2D(1),
        layers.Flatten(),
        layers.Dense(5, activation="relu"),
    ]
    if separate_softmax:
        stack += [layers.Dense(4), layers.Activation("softmax")]
    else:
        stack.append(layers.Dense(4, activation=last))
    return models.Sequential(stack, dtype=dtype)


def _data(n=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6, 6, 2))
    labels = rng.integers(0, 4, n)
    return x, labels


@pytest.mark.parametrize("loss, last, separate", [
    ("categorical_crossentropy", "softmax", False),
    ("categorical_crossentropy", "softmax", True),
    ("sparse_categorical_crossentropy", "softmax", False),
    ("mse", "sigmoid", False),
    ("categorical_crossentropy", "sigmoid", False),  # CE on non-softmax outputs
])
def test_whole_model_gradient_matches_finite_differences(loss, last, separate):
    utils.set_random_seed(0)
    model = _tiny_model(last, separate)
    model.compile(optimizer="sgd", loss=loss)
    x, labels = _data()
    y = labels if loss.startswith("sparse") else utils.to_categorical(labels, 4)
    y = model.loss.check_targets(y, len(x), (4,), np.float64)
    assert model._plan().logits == (last == "softmax")
    loss_value, _, grads = model._compute_gradients(x, y)
    grads = [np.array(g) for g in grads]

    def f():
        out = model._forward(x, training=False)
        return model._loss_and_grad(y, out)[0]

    assert abs(f() - loss_value) < 1e-12
    eps = 1e-6
    for w, g in zip(model.trainable_weights, grads):
        num = np.zeros_like(w)
        for i in range(w.size):
            old = w.flat[i]
            w.flat[i] = old + eps
            fp = f()
            w.flat[i] = old - eps
            fm = f()
            w.flat[i] = old
            num.flat[i] = (fp - fm) / (2 * eps)
        np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("pool", [layers.MaxPooling2D, layers.MinPooling2D])
def test_relu_mask_moved_after_pooling_gives_the_same_gradients(pool):
    # Overlapping, padded windows: the hardest case for moving the ReLU mask.
    from cnnfast import _plan

    utils.set_random_seed(0)
    model = models.Sequential([
        layers.Conv2D(4, 3, padding="same", activation="relu", input_shape=(7, 7, 2)),
        pool(3, strides=2, padding="same"),
        layers.Flatten(),
        layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    plan = model._plan()
    # the plan owns the mask: on the pooled gradient, not in either layer
    assert [type(s).__name__ for s in plan.steps] == \
        ["ReluPoolStep", "Flatten", "SoftmaxOutputStep"]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 7, 7, 2)).astype(np.float32)
    y = utils.to_categorical(rng.integers(0, 3, 5), 3)
    moved = [np.array(g) for g in model._compute_gradients(x, y)[2]]
    # the same layers one by one: Conv2D masks its own dy
    plain = _plan.Plan(list(model.layers[:2]) + plan.steps[1:], plan.logits, model.layers)
    out = plain.forward(x, True)
    plain.backward(plain.loss_and_grad(model.loss, y, out)[1])
    for a, b in zip(moved, plain.gradients()):
        np.testing.assert_array_equal(a, b)


def _mnist_like(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 8, 8, 1)).astype(np.uint8)
    y = rng.integers(0, 3, n)
    return x, y


def _small_cnn(dtype="float32"):
    return models.Sequential([
        layers.Input(shape=(8, 8, 1)),
        layers.Conv2D(4, (3, 3), padding="same", activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(8, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(3, activation="softmax"),
    ], dtype=dtype)


def test_fit_evaluate_predict_shapes_and_history():
    utils.set_random_seed(0)
    model = _small_cnn()
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    x, labels = _mnist_like()
    y = utils.to_categorical(labels, 3)
    hist = model.fit(x / 255.0, y, batch_size=10, epochs=3, verbose=0,
                     validation_data=(x[:20] / 255.0, y[:20]))
    assert set(hist.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 3 for v in hist.history.values())
    assert hist.epoch == [0, 1, 2] and len(hist.train_seconds) == 3
    res = model.evaluate(x[:20] / 255.0, y[:20], batch_size=10, verbose=0)
    assert isinstance(res, list) and len(res) == 2
    np.testing.assert_allclose(res, [hist.history["val_loss"][-1],
                                     hist.history["val_accuracy"][-1]], rtol=1e-6)
    p = model.predict(x / 255.0, batch_size=7)
    assert p.shape == (64, 3) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5)
    # Without metrics evaluate returns the loss alone.
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    assert isinstance(model.evaluate(x / 255.0, y, verbose=0), float)


def test_validation_split_takes_the_last_fraction():
    utils.set_random_seed(1)
    model = _small_cnn()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x, labels = _mnist_like(50)
    xf = x.astype(np.float32) / 255
    hist = model.fit(xf, labels, batch_size=8, epochs=2, validation_split=0.2, verbose=0)
    assert hist.params["steps"] == 5  # 40 training samples
    val = model.evaluate(xf[40:], labels[40:], batch_size=8, verbose=0)
    np.testing.assert_allclose(val, [hist.history["val_loss"][-1],
                                     hist.history["val_accuracy"][-1]], rtol=1e-6)


def test_training_run_repeats_bit_for_bit():
    def run():
        utils.set_random_seed(42)
        model = _small_cnn()
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        x, labels = _mnist_like(48)
        hist = model.fit(x, utils.to_categorical(labels, 3), batch_size=16, epochs=2,
                         verbose=0)
        return model.get_weights(), hist.history

    w1, h1 = run()
    w2, h2 = run()
    assert h1 == h2
    for a, b in zip(w1, w2):
        assert a.tobytes() == b.tobytes()


def test_loss_falls_on_a_learnable_problem():
    utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 120)
    x = rng.normal(0, 0.3, (120, 8, 8, 1)).astype(np.float32)
    x[np.arange(120), labels * 3, labels * 3, 0] += 3.0  # class = position of a bright pixel
    model = _small_cnn()
    model.compile(optimizer=optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    hist = model.fit(x, labels, batch_size=16, epochs=8, verbose=0)
    assert hist.history["loss"][-1] < 0.5 * hist.history["loss"][0]
    assert model.evaluate(x, labels, verbose=0)[1] > 0.9


def test_inputs_are_cast_and_checked_before_any_work():
    utils.set_random_seed(0)
    model = _small_cnn()
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    x, labels = _mnist_like(8)
    y = utils.to_categorical(labels, 3)
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"\(None, 8, 8, 1\)"):
        model.fit(x[..., 0], y, verbose=0)
    with pytest.raises(ValueError, match="y has shape"):
        model.fit(x, y[:5], verbose=0)
    with pytest.raises(ValueError, match="expected"):
        model.fit(x, labels, verbose=0)  # integer labels with categorical_crossentropy
    with pytest.raises(TypeError, match="dtype"):
        model.predict(x.astype(np.complex64))
    assert model.optimizer.iterations == 0
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    # Any int/float dtype gives the same result as float32.
    for dt in (np.uint8, np.int32, np.float64):
        np.testing.assert_array_equal(model.predict(x.astype(dt)),
                                      model.predict(x.astype(np.float32)))


def test_float64_model():
    utils.set_random_seed(0)
    model = _small_cnn(dtype="float64")
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    assert all(w.dtype == np.float64 for w in model.weights)
    x, labels = _mnist_like(8)
    model.fit(x / 255.0, utils.to_categorical(labels, 3), epochs=1, verbose=0)
    assert model.predict(x).dtype == np.float64
    with pytest.raises(TypeError, match="dtype"):
        models.Sequential(dtype="float16")


def test_save_load_weights_roundtrip_and_mismatch(tmp_path):
    utils.set_random_seed(0)
    a = _small_cnn()
    x, _ = _mnist_like(5)
    path = tmp_path / "w.npz"
    a.save_weights(path)
    b = _small_cnn()
    assert not np.array_equal(a.predict(x), b.predict(x))
    b.load_weights(path)
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
    # The file is a plain npz readable without pickle.
    with np.load(path, allow_pickle=False) as z:
        assert "__meta__" in z.files and len(z.files) == 1 + len(a.weights)

    other = models.Sequential([
        layers.Input(shape=(8, 8, 1)),
        layers.Conv2D(5, (3, 3), padding="same", activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(8, activation="relu"),
        layers.Dense(3, activation="softmax"),
    ])
    with pytest.raises(ValueError, match="does not match"):
        other.load_weights(path)
    fewer = models.Sequential([layers.Flatten(input_shape=(8, 8, 1)), layers.Dense(3)])
    with pytest.raises(ValueError, match="holds weights for 3 layers"):
        fewer.load_weights(path)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a cnnfast weights file"):
        b.load_weights(bad)


def test_get_set_weights():
    utils.set_random_seed(0)
    model = _small_cnn()
    w = model.get_weights()
    assert [a.shape for a in w] == [(3, 3, 1, 4), (4,), (64, 8), (8,), (8, 3), (3,)]
    zeros = [np.zeros_like(a) for a in w]
    kernel = model.layers[0].kernel
    model.set_weights(zeros)
    assert model.layers[0].kernel is kernel and not kernel.any()
    with pytest.raises(ValueError, match="expected shape"):
        model.set_weights([np.zeros((2, 2))] + zeros[1:])
    with pytest.raises(ValueError, match="weight arrays"):
        model.set_weights(zeros[:-1])


def test_summary_table():
    model = models.Sequential([
        layers.Conv2D(32, (3, 3), padding="same", activation="relu", input_shape=(28, 28, 1)),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), padding="same", activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ], name="tutorial")
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert lines[0] == 'Model: "tutorial"'
    assert "(None, 28, 28, 32)" in text and "(None, 7, 7, 64)" in text
    assert "(None, 3136)" in text and "401,536" in text and "18,496" in text
    assert "Total params: 421,642" in text and "Non-trainable params: 0" in text
    assert "(Conv2D)" in text and "(MaxPooling2D)" in text and "(Dropout)" in text
    unbuilt = models.Sequential([layers.Dense(3)])
    with pytest.raises(ValueError, match="not been built"):
        unbuilt.summary()


def test_lazy_build_and_input_layer():
    model = models.Sequential()
    model.add(layers.Dense(4, activation="relu"))
    model.add(layers.Dense(2))
    assert not model.built
    p = model.predict(np.ones((3, 5)))
    assert model.built and p.shape == (3, 2) and model.input_shape == (None, 5)
    m2 = models.Sequential([layers.Input((5,)), layers.Dense(2)])
    assert len(m2.layers) == 1 and m2.layers[0].input_shape == (None, 5)
    m3 = models.Sequential([layers.Dense(2, input_dim=7)])
    assert m3.output_shape == (None, 2) and m3.count_params() == 16


def test_train_on_batch_and_non_trainable_layer():
    utils.set_random_seed(0)
    model = _small_cnn()
    model.layers[0].trainable = False
    model.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])
    frozen = model.layers[0].kernel.copy()
    x, labels = _mnist_like(16)
    loss, acc = model.train_on_batch(x, utils.to_categorical(labels, 3))
    assert np.isfinite(loss) and 0 <= acc <= 1
    np.testing.assert_array_equal(model.layers[0].kernel, frozen)
    lines = []
    model.summary(print_fn=lines.append)
    assert "Non-trainable params: 40" in "\n".join(lines)


# ---- losses ---------------------------------------------------------------------------

def test_crossentropy_from_logits_is_stable_and_correct():
    z = np.array([[1000.0, 0.0, -1000.0], [0.2, 0.1, -0.3]])
    y = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    loss, grad = losses.CategoricalCrossentropy().value_and_grad_logits(y, z)
    p1 = np.exp(z[1] - z[1].max()) / np.exp(z[1] - z[1].max()).sum()
    expected = (1000.0 + -np.log(p1[0])) / 2
    assert np.isfinite(loss) and abs(loss - expected) < 1e-9
    p = np.stack([[1.0, 0.0, 0.0], p1])
    np.testing.assert_allclose(grad, (p - y) / 2, atol=1e-12)
    sparse_loss, sparse_grad = losses.SparseCategoricalCrossentropy().value_and_grad_logits(
        np.array([1, 0]), z)
    assert abs(sparse_loss - loss) < 1e-9
    np.testing.assert_allclose(sparse_grad, grad, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_crossentropy_one_pass_matches_numpy(dtype):
    # C-contiguous arrays of one dtype take the C pass; Fortran-ordered copies the NumPy
    # formulation. With one-hot targets and the forward's probabilities (what training
    # passes) the gradients are the same bits; the loss is summed in double in C.
    from cnnfast import _kernels
    rng = np.random.default_rng(5)
    cce = losses.CategoricalCrossentropy()
    z = (rng.standard_normal((37, 10)) * 4).astype(dtype)
    y = np.eye(10, dtype=dtype)[rng.integers(0, 10, 37)]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    p = (e / e.sum(axis=1, keepdims=True)).astype(dtype)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    for probs in (p, None):
        fast = cce.value_and_grad_logits(y, z, probs)
        slow = cce.value_and_grad_logits(np.asfortranarray(y), np.asfortranarray(z),
                                         None if probs is None else np.asfortranarray(probs))
        assert fast[1].dtype == dtype and fast[1].flags.c_contiguous
        assert abs(fast[0] - slow[0]) <= tol * abs(slow[0])
        if probs is not None:
            assert np.array_equal(fast[1], slow[1])
        else:
            np.testing.assert_allclose(fast[1], slow[1], rtol=tol, atol=tol / 37)
    soft = rng.dirichlet(np.ones(10), 37).astype(dtype)  # rows that need not sum to 1 exactly
    fast = cce.value_and_grad_logits(soft, z, p)
    slow = cce.value_and_grad_logits(np.asfortranarray(soft), np.asfortranarray(z),
                                     np.asfortranarray(p))
    assert abs(fast[0] - slow[0]) <= tol * abs(slow[0])
    np.testing.assert_allclose(fast[1], slow[1], rtol=tol, atol=tol / 37)
    g = np.empty_like(z)
    with pytest.raises(ValueError, match="y must be a"):
        _kernels.softmax_xent(z, y[:, :9].copy(), None, g)
    with pytest.raises(ValueError, match="probs must be"):
        _kernels.softmax_xent(z, y, p.astype(np.float16), g)
    with pytest.raises(ValueError, match="C-contiguous"):
        _kernels.softmax_xent(z, np.asfortranarray(y), None, g)
    with pytest.raises(TypeError, match="unsupported dtype"):
        _kernels.softmax_xent(z.astype(np.int64), y, None, g)


def test_loss_functions_on_probabilities():
    """The plain functions give one loss per sample, as Keras's do; the classes the mean."""
    y = np.array([[0, 1, 0], [0, 0, 1]], np.float64)
    p = np.array([[0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
    per_sample = -np.log([0.8, 0.6])
    np.testing.assert_allclose(losses.categorical_crossentropy(y, p), per_sample, rtol=1e-12)
    np.testing.assert_allclose(losses.sparse_categorical_crossentropy([1, 2], p), per_sample,
                               rtol=1e-12)
    np.testing.assert_allclose(losses.mse(y, p), np.mean((y - p) ** 2, axis=-1), rtol=1e-12)
    assert abs(losses.CategoricalCrossentropy()(y, p) - per_sample.mean()) < 1e-12
    z = np.log(p) + 3.0  # logits whose softmax is p
    np.testing.assert_allclose(losses.categorical_crossentropy(y, z, from_logits=True),
                               per_sample, rtol=1e-12)
    np.testing.assert_allclose(losses.sparse_categorical_crossentropy([1, 2], z, True),
                               per_sample, rtol=1e-12)
    # Probabilities of exactly 0 are clipped (Keras' epsilon), not log(0).
    assert np.isfinite(losses.categorical_crossentropy(y, np.array([[1.0, 0, 0]] * 2))).all()
    with pytest.raises(ValueError, match="labels must lie"):
        losses.sparse_categorical_crossentropy([3, 0], p)
    with pytest.raises(ValueError, match="unknown loss"):
        losses.get("hinge_of_doom")


# ---- optimizers -----------------------------------------------------------------------

def _run_optimizer(opt, steps=3):
    w = np.array([1.0, -2.0, 0.5])
    grads = [np.array([0.1, -0.3, 0.2]), np.array([0.05, 0.1, -0.4]), np.array([1, 2, 3.0])]
    for g in grads[:steps]:
        opt.apply([w], [g])
    return w, grads


def test_sgd_plain_momentum_nesterov():
    w, grads = _run_optimizer(optimizers.SGD(0.1))
    np.testing.assert_allclose(w, np.array([1.0, -2.0, 0.5]) - 0.1 * sum(grads))
    for nesterov in (False, True):
        w, grads = _run_optimizer(optimizers.SGD(0.1, momentum=0.9, nesterov=nesterov))
        ref, v = np.array([1.0, -2.0, 0.5]), np.zeros(3)
        for g in grads:
            v = 0.9 * v - 0.1 * g
            ref = ref + (0.9 * v - 0.1 * g if nesterov else v)
        np.testing.assert_allclose(w, ref, rtol=1e-12)


def test_adam_matches_keras_formula():
    w, grads = _run_optimizer(optimizers.Adam())
    ref, m, v = np.array([1.0, -2.0, 0.5]), np.zeros(3), np.zeros(3)
    for t, g in enumerate(grads, start=1):
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        alpha = 0.001 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        ref = ref - alpha * m / (np.sqrt(v) + 1e-7)
    np.testing.assert_allclose(w, ref, rtol=1e-12)
    opt = optimizers.get("adam")
    assert opt.epsilon == 1e-7 and opt.learning_rate == 0.001
    assert isinstance(optimizers.get("SGD"), optimizers.SGD)
    with pytest.raises(ValueError, match="unknown optimizer"):
        optimizers.get("adagrad_plus")


def test_rmsprop_matches_keras_formula():
    """Keras's RMSprop: epsilon inside the square root, lr * g / sqrt(a + eps)."""
    w, grads = _run_optimizer(optimizers.RMSprop(0.01))
    ref, a = np.array([1.0, -2.0, 0.5]), np.zeros(3)
    for g in grads:
        a = 0.9 * a + 0.1 * g * g
        ref = ref - 0.01 * g / np.sqrt(a + 1e-7)
    np.testing.assert_allclose(w, ref, rtol=1e-12)
    # a gradient near sqrt(eps): with epsilon outside the root the step is 10x larger
    p = np.array([0.0])
    optimizers.RMSprop().apply([p], [np.array([1e-4])])
    np.testing.assert_allclose(p, [-1e-3 * 1e-4 / np.sqrt(0.1 * 1e-8 + 1e-7)], rtol=1e-12)


# ---- utils ----------------------------------------------------------------------------

def test_to_categorical():
    y = utils.to_categorical([0, 2, 1])
    np.testing.assert_array_equal(y, [[1, 0, 0], [0, 0, 1], [0, 1, 0]])
    assert y.dtype == np.float32
    assert utils.to_categorical(np.array([[1], [3]]), 5).shape == (2, 5)
    assert utils.to_categorical(np.zeros((2, 3), int), 4).shape == (2, 3, 4)
    with pytest.raises(ValueError, match="out of range"):
        utils.to_categorical([0, 5], 3)
    with pytest.raises(ValueError, match="integer"):
        utils.to_categorical([0.5])


def test_set_random_seed_validation():
    with pytest.raises(TypeError):
        utils.set_random_seed(1.5)
    utils.set_random_seed(3)
    a = utils.get_rng().random()
    utils.set_random_seed(3)
    assert utils.get_rng().random() == a


# ---- progress bar ---------------------------------------------------------------------

class _TTY(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_terminal_and_log_output():
    log = io.StringIO()
    bar = Progbar(10, stream=log, interval=0)
    for i in range(1, 10):
        bar.update(i, [("loss", 0.5)])
    bar.update(10, [("loss", 0.25), ("accuracy", 0.9612)], finalize=True)
    text = log.getvalue()
    assert "\r" not in text and text.count("\n") == 1
    assert text.startswith("10/10 [==============================] - ")
    assert "/step - loss: 0.2500 - accuracy: 0.9612" in text

    tty = _TTY()
    bar = Progbar(10, stream=tty, interval=0)
    for i in range(1, 10):
        bar.update(i, [("loss", 0.5)])
    bar.update(10, [("loss", 0.25)], finalize=True)
    out = tty.getvalue()
    assert out.count("\r") == 10 and "ETA:" in out and " 5/10 [" + "=" * 14 + ">" in out
    assert out.endswith("\n")


def test_fit_verbose_output_when_not_a_terminal(capsys):
    utils.set_random_seed(0)
    model = _small_cnn()
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    x, labels = _mnist_like(40)
    model.fit(x, utils.to_categorical(labels, 3), batch_size=10, epochs=2, verbose=1)
    out = capsys.readouterr().out
    assert "\r" not in out
    lines = out.strip().splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2"
    assert lines[1].startswith("4/4 [") and "- loss: " in lines[1] and "- accuracy: " in lines[1]
    model.fit(x, utils.to_categorical(labels, 3), batch_size=10, epochs=1, verbose=0)
    assert capsys.readouterr().out == ""


def test_unaligned_inputs_train_and_predict_like_aligned_ones():
    """Data read with np.frombuffer / np.memmap at an odd byte offset is C-contiguous but
    not aligned: the model copies each batch, with the same bits as aligned data."""
    x, labels = _mnist_like()
    x = (x / 255.0).astype(np.float32)
    buf = np.zeros(x.nbytes + 1, np.uint8)
    xu = np.frombuffer(buf.data, np.float32, x.size, offset=1).reshape(x.shape)
    xu[...] = x
    assert not xu.flags.aligned
    results = []
    for data in (x, xu):
        utils.set_random_seed(1)
        model = _small_cnn()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(data, labels, batch_size=16, epochs=1, verbose=0)
        results.append((model.predict(data, batch_size=10), model(data[:5]),
                        model.layers[0](data[:3])))
    for got, want in zip(results[1], results[0]):
        np.testing.assert_array_equal(got, want)


def test_targets_without_the_last_unit_axis_are_expanded_as_in_keras():
    """(N,) targets for a Dense(1) output train exactly as the same targets of shape
    (N, 1), as Keras reads them; other shapes are still refused."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((12, 4))
    t = rng.standard_normal(12)
    results = []
    for y in (t, t[:, None]):
        utils.set_random_seed(2)
        model = models.Sequential([layers.Dense(1, input_shape=(4,))], dtype="float64")
        model.compile(optimizer="sgd", loss="mse")
        hist = model.fit(x, y, batch_size=5, epochs=2, verbose=0)
        results.append((hist.history["loss"], model.evaluate(x, y, verbose=0),
                        model.get_weights()))
    assert results[0][:2] == results[1][:2]
    for a, b in zip(results[0][2], results[1][2]):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"y has shape \(12, 2\), expected \(12, 1\)"):
        model.fit(x, np.zeros((12, 2)), verbose=0)
    with pytest.raises(ValueError, match=r"y has shape \(12,\), expected \(12, 3\)"):
        m3 = models.Sequential([layers.Dense(3, input_shape=(4,))])
        m3.compile(optimizer="sgd", loss="mse")
        m3.fit(x, t, verbose=0)


def test_crossentropy_on_sequence_outputs_averages_over_every_position():
    """(N, T, classes) outputs: Keras's reduction averages over N * T per-position losses,
    and the gradient is scaled alike (not N times T larger)."""
    rng = np.random.default_rng(6)
    z = rng.standard_normal((4, 5, 3))
    y = np.eye(3)[rng.integers(0, 3, (4, 5))]
    per_position = losses.categorical_crossentropy(y, z, from_logits=True)
    assert per_position.shape == (4, 5)
    loss = losses.CategoricalCrossentropy(from_logits=True)
    value, grad = loss.value_and_grad(y, z)
    assert abs(value - per_position.mean()) < 1e-12
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    np.testing.assert_allclose(grad, (p - y) / 20, rtol=1e-10, atol=1e-15)
    value_p, _ = losses.CategoricalCrossentropy().value_and_grad(y, p)
    assert abs(value_p - per_position.mean()) < 1e-9


def test_binary_accuracy_compares_targets_as_they_are():
    """Keras's binary accuracy: (p > 0.5) == y; a target that is not 0 or 1 never matches."""
    y = np.array([[3.7], [0.0], [1.0], [0.9]])
    p = np.ones((4, 1))
    assert losses.count_correct(losses.MeanSquaredError(), y, p) == 1


def test_layer_dtype_is_honoured_or_refused_never_ignored():
    """A layer's dtype= is the model's (fine), a standalone layer's own, or an error:
    cnnfast runs one dtype per model."""
    x = np.ones((2, 3), np.float32)
    m = models.Sequential([layers.Dense(2, dtype="float32", input_shape=(3,))])
    assert m.predict(x).dtype == np.float32
    with pytest.raises(ValueError, match="asks for dtype float64, but the model computes in "
                                         "float32"):
        models.Sequential([layers.Dense(2, dtype="float64", input_shape=(3,))])
    m = models.Sequential([layers.Dense(2, dtype="float64")])  # built on first use
    with pytest.raises(ValueError, match="asks for dtype float64"):
        m.predict(x)
    m64 = models.Sequential([layers.Dense(2, dtype="float64", input_shape=(3,))],
                            dtype="float64")
    assert m64.predict(x).dtype == np.float64
    assert layers.Dense(2, dtype="float64")(x).dtype == np.float64
    for bad in ("int32", "mixed_float16"):
        with pytest.raises(ValueError, match="dtype must be float32 or float64"):
            layers.Dense(2, dtype=bad)


def test_accuracy_is_logged_under_the_name_given():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((20, 4)), rng.integers(0, 3, 20)
    for name in ("accuracy", "acc"):
        m = models.Sequential([layers.Dense(3, activation="softmax", input_shape=(4,))])
        m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=[name])
        hist = m.fit(x, y, epochs=1, verbose=0, validation_data=(x, y))
        assert set(hist.history) == {"loss", name, "val_loss", "val_" + name}
        assert m.metrics_names == ["loss", name]
        assert set(m.evaluate(x, y, verbose=0, return_dict=True)) == {"loss", name}


@pytest.mark.parametrize("sparse", [False, True])
def test_crossentropy_on_probabilities_gradient_and_clipping(sparse):
    """From probabilities (no softmax before the loss): Keras's row normalisation and
    clipping to [1e-7, 1 - 1e-7], its value against the formula, and the gradient
    against central differences, zero where a probability is clipped."""
    rng = np.random.default_rng(8)
    p = rng.uniform(0.05, 1.0, (5, 4))
    p[0, 2] = 1e-9  # clipped to 1e-7 after normalisation: no gradient through it
    labels = np.array([2, 1, 0, 3, 1])
    y = labels if sparse else np.eye(4)[labels]
    loss = (losses.SparseCategoricalCrossentropy() if sparse
            else losses.CategoricalCrossentropy())
    yt = loss.check_targets(y, 5, (4,), np.float64)
    value, grad = loss.value_and_grad(yt, p)
    q = np.clip(p / p.sum(-1, keepdims=True), 1e-7, 1 - 1e-7)
    assert abs(value - np.mean(-np.log(q[np.arange(5), labels]))) < 1e-12
    eps = 1e-7
    num = np.zeros_like(p)
    for i in np.ndindex(p.shape):
        if i == (0, 2):
            continue
        hi, lo = p.copy(), p.copy()
        hi[i] += eps
        lo[i] -= eps
        num[i] = (loss.value_and_grad(yt, hi)[0] - loss.value_and_grad(yt, lo)[0]) / (2 * eps)
    mask = np.ones(p.shape, bool)
    mask[0, 2] = False
    np.testing.assert_allclose(grad[mask], num[mask], rtol=1e-5, atol=1e-8)
    # row 0's labelled probability is the clipped one: no gradient flows in that row
    np.testing.assert_array_equal(grad[0], 0.0)


def test_fit_shuffle_false_and_initial_epoch():
    """shuffle=False trains on the batches in order (the same bits as train_on_batch
    on them); initial_epoch numbers and counts the epochs as Keras does."""
    rng = np.random.default_rng(12)
    x, y = rng.standard_normal((10, 3)), rng.integers(0, 2, 10)

    def model():
        utils.set_random_seed(3)
        m = models.Sequential([layers.Dense(2, activation="softmax", input_shape=(3,))],
                              dtype="float64")
        m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        return m

    a, b = model(), model()
    a.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    for lo in (0, 4, 8):
        b.train_on_batch(x[lo:lo + 4], y[lo:lo + 4])
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    hist = model().fit(x, y, epochs=5, initial_epoch=3, verbose=0)
    assert hist.epoch == [3, 4] and len(hist.history["loss"]) == 2
