"""The classic Keras MNIST CNN tutorial, on cnnfast: only the imports differ from Keras.

The tutorial's model and split: Conv2D(32) -> MaxPooling2D -> Conv2D(64) ->
MaxPooling2D -> Flatten -> Dense(128) -> Dropout(0.5) -> Dense(10, softmax), Adam,
batch 128, on the 70,000 MNIST images split 70/30 with
``train_test_split(random_state=1)``. The tutorial fetched the images with
``fetch_openml("mnist_784")``; MNIST's train + test files concatenated are the same
70,000 images in the same order, read here offline by ``mnist.load_data()``
(from $CNNFAST_DATA or ~/.cache/cnnfast/mnist, downloaded there when missing).

Run:  CNNFAST_DATA=/path/to/mnist python examples/mnist_cnn.py
"""

import numpy as np
from sklearn.model_selection import train_test_split

# Keras: from keras.datasets import mnist
from cnnfast.datasets import mnist

# Keras: from keras.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from cnnfast.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D

# Keras: from keras.models import Sequential
from cnnfast.models import Sequential

# Keras: from keras.utils import to_categorical
from cnnfast.utils import to_categorical

batch_size = 128
num_classes = 10
epochs = 3

# The 70,000 images (train then test), as fetch_openml("mnist_784") returns them.
(x_train, y_train), (x_test, y_test) = mnist.load_data()
X = np.concatenate([x_train, x_test]).reshape(-1, 28, 28, 1).astype("float32") / 255
y = to_categorical(np.concatenate([y_train, y_test]), num_classes)

X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=1)
print(X_train.shape[0], "train samples,", X_test.shape[0], "test samples")

model = Sequential()
model.add(Conv2D(32, kernel_size=(3, 3), padding="same", activation="relu",
                 input_shape=(28, 28, 1)))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Conv2D(64, kernel_size=(3, 3), padding="same", activation="relu"))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Flatten())
model.add(Dense(128, activation="relu"))
model.add(Dropout(0.5))
model.add(Dense(num_classes, activation="softmax"))

model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
model.summary()

history = model.fit(X_train, y_train, batch_size=batch_size, epochs=epochs, verbose=1,
                    validation_data=(X_test, y_test))
score = model.evaluate(X_test, y_test, verbose=0)
print("Test loss:", score[0])
print("Test accuracy:", score[1])
