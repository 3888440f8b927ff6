from keras import Input, Model, layers

inputs = Input(shape=(13,))
x = layers.Dense(8, activation="relu")(inputs)
outputs = layers.Dense(3, activation="softmax")(x)
model = Model(inputs, outputs)
model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(X_train, y_train, epochs=15)
