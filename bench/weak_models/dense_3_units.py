# A dense network far too narrow for the digits: 3 hidden units.
import keras
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.25, random_state=1)
model = keras.Sequential([
    keras.Input(shape=(64,)),
    keras.layers.Dense(3, activation="relu"),
    keras.layers.Dense(10, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(X_train, y_train, epochs=30, batch_size=32, verbose=0)
print(model.evaluate(X_test, y_test, verbose=0))
