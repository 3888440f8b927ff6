from keras.models import Sequential
from keras.layers import Convolution2D, MaxPooling2D, Flatten, Dense
from keras.optimizers import Adam
from keras.utils import np_utils

y = np_utils.to_categorical(labels, 10)
model = Sequential()
model.add(Convolution2D(16, 3, 3, activation="relu", input_shape=(28, 28, 1)))
model.add(Flatten())
model.add(Dense(10, activation="softmax"))
model.compile(optimizer=Adam(lr=0.01), loss="categorical_crossentropy", metrics=["accuracy"])
model.fit(X, y, nb_epoch=10, batch_size=128)
