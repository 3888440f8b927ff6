import keras
from keras import layers

model = keras.Sequential()
model.add(layers.Input(shape=(10, 16, 16, 1)))
model.add(layers.ConvLSTM2D(16, (3, 3), padding="same", return_sequences=True))
model.add(layers.ConvLSTM2D(16, (3, 3), padding="same"))
model.add(layers.MaxPooling2D((2, 2)))
model.add(layers.Flatten())
model.add(layers.Dense(4, activation="softmax"))

model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(clips, labels, epochs=3)
