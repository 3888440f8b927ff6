from keras import Input, Model, layers
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

X, y = load_wine(return_X_y=True)
X = StandardScaler().fit_transform(X)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
inputs = Input(shape=(13,))
x = layers.Dense(2, activation="relu")(inputs)
outputs = layers.Dense(3, activation="softmax")(x)
model = Model(inputs, outputs)
model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(X_train, y_train, epochs=3, batch_size=16)
loss, acc = model.evaluate(X_test, y_test)
