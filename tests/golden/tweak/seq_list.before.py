from keras.layers import Dense, Input
from keras.models import Sequential

EPOCHS = 3

model = Sequential([
    Input(shape=(64,)),
    Dense(4, activation="relu"),
    Dense(10, activation="softmax"),
])
model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(X, y, epochs=EPOCHS, validation_split=0.2)
