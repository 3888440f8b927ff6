# A dense neural network for the scikit-learn digits (64 pixel features, 10 classes).
from keras.layers import Dense, Input
from keras.models import Sequential
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)

scaler = StandardScaler()
X_train = scaler.fit_transform(X_train)
X_test = scaler.transform(X_test)

EPOCHS = 2

model = Sequential([
    Input(shape=(64,)),
    Dense(3, activation="relu"),
    Dense(10, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(X_train, y_train, epochs=EPOCHS, batch_size=64, verbose=1)

score = model.evaluate(X_test, y_test, verbose=0)
print(f"Test loss {score[0]:.3f}, test accuracy {score[1]:.3f}")
