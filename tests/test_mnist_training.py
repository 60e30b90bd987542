"""The acceptance test of the Keras-style API: the tutorial's CNN, written as in Keras,
learns real MNIST digits (a few hundred of them, from $CNNFAST_DATA)."""

from __future__ import annotations

import os

import pytest

from cnnfast.datasets import mnist
from cnnfast.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from cnnfast.models import Sequential
from cnnfast.utils import set_random_seed, to_categorical

DATA = os.environ.get("CNNFAST_DATA")

pytestmark = pytest.mark.skipif(
    not DATA or not os.path.isdir(DATA),
    reason="needs the real MNIST files: set CNNFAST_DATA to the directory holding the "
           "four IDX files",
)


def test_tutorial_model_learns_real_mnist():
    (x_train, y_train), (x_test, y_test) = mnist.load_data(DATA)
    n_train, n_test = 600, 300
    x_train = x_train[:n_train].reshape(-1, 28, 28, 1).astype("float32") / 255
    x_test = x_test[:n_test].reshape(-1, 28, 28, 1).astype("float32") / 255
    y_train = to_categorical(y_train[:n_train], 10)
    y_test = to_categorical(y_test[:n_test], 10)

    set_random_seed(1)
    model = Sequential()
    model.add(Conv2D(32, kernel_size=(3, 3), padding="same", activation="relu",
                     input_shape=(28, 28, 1)))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Conv2D(64, kernel_size=(3, 3), padding="same", activation="relu"))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Flatten())
    model.add(Dense(128, activation="relu"))
    model.add(Dropout(0.5))
    model.add(Dense(10, activation="softmax"))
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])

    chance_loss, chance_acc = model.evaluate(x_test, y_test, verbose=0)
    hist = model.fit(x_train, y_train, batch_size=32, epochs=3, verbose=0,
                     validation_data=(x_test, y_test))
    loss = hist.history["loss"]
    assert loss[-1] < 0.5 * loss[0], loss
    assert hist.history["accuracy"][-1] > hist.history["accuracy"][0]
    test_loss, test_acc = model.evaluate(x_test, y_test, verbose=0)
    # Chance is 10%; 600 images for 3 epochs reach about 85-90% on held-out digits.
    assert test_acc > 0.75, (chance_acc, test_acc)
    assert test_loss < 0.5 * chance_loss
    predicted = model.predict(x_test).argmax(axis=1)
    assert (predicted == y_test.argmax(axis=1)).mean() == pytest.approx(test_acc)
