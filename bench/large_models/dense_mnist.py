# A dense network on MNIST-shaped images, as a first try: raw pixels, plain SGD, one epoch.
from mnist_like import load_data
from tensorflow import keras

(x_train, y_train), (x_test, y_test) = load_data()
x_train = x_train.reshape(-1, 784)
x_test = x_test.reshape(-1, 784)

model = keras.Sequential(
    [
        keras.Input(shape=(784,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ]
)
model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train, epochs=1, batch_size=32, validation_split=0.1)
loss, acc = model.evaluate(x_test, y_test)
print("test accuracy:", acc)
