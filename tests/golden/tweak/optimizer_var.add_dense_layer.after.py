from tensorflow.keras.layers import Dense
from tensorflow.keras.models import Sequential
from tensorflow.keras.optimizers import SGD

opt = SGD(learning_rate=0.1, momentum=0.9)
model = Sequential([Dense(32, activation="relu", input_shape=(20,)), Dense(64, activation="relu"), Dense(1, activation="sigmoid")])
model.compile(optimizer=opt, loss="binary_crossentropy", metrics=["accuracy"])
model.fit(X, y, epochs=5)
