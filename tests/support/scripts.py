"""Training scripts that several test modules push, in the styles people write them."""

from __future__ import annotations

from tweak.codemods import SetEstimatorParam

# KMeans on four well separated blobs, pushed with k=2: tuning finds the elbow at 4.
KMEANS = """
    from sklearn.cluster import KMeans
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(n_samples=400, centers=4, cluster_std=0.5, random_state=3)
    model = KMeans(n_clusters=2, n_init=5, random_state=0)
    model.fit(X)
    print("inertia", model.inertia_)
"""

# The same clustering in a script that keeps the labels make_blobs returns (the adjusted Rand index).
KMEANS_LABELLED = """
    from sklearn.cluster import KMeans
    from sklearn.datasets import make_blobs

    X, y = make_blobs(n_samples=400, centers=4, cluster_std=0.5, random_state=3)
    KMeans(n_clusters=2, n_init=5, random_state=0).fit(X)
"""

# A logistic regression so strongly regularized that it underfits (C=1e-05).
CLASSIFIER = """
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, random_state=0)
    model = LogisticRegression(C=1e-05, max_iter=200)
    model.fit(Xtr, ytr)
    print("<b>test accuracy</b>", model.score(Xte, yte))
"""

# The tweak that fixes it.
TWEAK = SetEstimatorParam(estimators=["LogisticRegression"], param="C", value=1.0)

# A small Keras network on the digits, with a validation split (learning curves) and an evaluate.
KERAS = """
    import keras
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X / 16.0, y, random_state=0)
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(0.001), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(Xtr, ytr, epochs=4, batch_size=32, validation_split=0.2, verbose=0)
    model.evaluate(Xte, yte, verbose=0)
"""

# A Keras training whose epochs are long enough to be killed in the middle of (EPOCHS is replaced).
SLOW_KERAS = """
import time
import keras
from sklearn.datasets import load_digits

X, y = load_digits(return_X_y=True)
X = X / 16.0


class Pace(keras.callbacks.Callback):  # epochs long enough to be killed in the middle of
    def on_train_batch_end(self, batch, logs=None):
        time.sleep(0.04)


model = keras.Sequential([keras.Input(shape=(64,)), keras.layers.Dense(32, activation="relu"),
                          keras.layers.Dense(10, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(X, y, epochs=EPOCHS, batch_size=64, validation_split=0.2, callbacks=[Pace()])
"""
