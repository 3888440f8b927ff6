# Handwritten digit recognition with a small convolutional network.
# Data: the 8x8 digits bundled with scikit-learn (no download needed).
import numpy as np
from keras import layers, models
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

digits = load_digits()
X = digits.images.astype("float32") / 16.0
X = X.reshape(-1, 8, 8, 1)
y = digits.target

X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=42)

model = models.Sequential()
model.add(layers.Input(shape=(8, 8, 1)))
model.add(layers.Conv2D(2, (3, 3), activation="relu"))
model.add(layers.MaxPooling2D((2, 2)))
model.add(layers.Flatten())
model.add(layers.Dense(10, activation="softmax"))

model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(X_train, y_train, epochs=1, batch_size=32, validation_split=0.1)

loss, accuracy = model.evaluate(X_test, y_test)
print("test accuracy:", accuracy)
print("predictions:", np.argmax(model.predict(X_test[:5]), axis=1), "truth:", y_test[:5])
