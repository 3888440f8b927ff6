from keras.layers import Dense, Input
from keras.models import Sequential
import keras

EPOCHS = 3

model = Sequential([
    Input(shape=(64,)),
    Dense(4, activation="relu"),
    Dense(10, activation="softmax"),
])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(X, y, epochs=EPOCHS, validation_split=0.2)
