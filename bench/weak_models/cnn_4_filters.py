# A CNN with 4 filters trained for one epoch.
import numpy as np
from tensorflow.keras.layers import Conv2D, Dense, Flatten, MaxPooling2D
from tensorflow.keras.models import Sequential
from sklearn.datasets import load_digits

digits = load_digits()
X = digits.images[..., np.newaxis] / 16.0
y = digits.target
model = Sequential()
model.add(Conv2D(4, (3, 3), activation="relu", input_shape=(8, 8, 1)))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Flatten())
model.add(Dense(10, activation="softmax"))
model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(X, y, epochs=1, batch_size=128, validation_split=0.25)
