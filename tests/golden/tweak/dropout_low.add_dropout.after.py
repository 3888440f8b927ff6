from tensorflow import keras
from tensorflow.keras import layers

model = keras.Sequential()
model.add(layers.Input(shape=(64,)))
model.add(layers.Dense(128, activation="relu"))
model.add(layers.Dropout(0.3))  # a little dropout already
model.add(layers.Dense(64, activation="relu"))
model.add(layers.Dropout(rate=0.5))
model.add(layers.Dense(32, activation="relu"))
model.add(layers.Dropout(0.3))
model.add(layers.Dense(10, activation="softmax"))
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(X, y, epochs=20, validation_split=0.2)
