from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, random_state=0)
clf = MLPClassifier(hidden_layer_sizes=(3,), max_iter=40, random_state=0)
clf.fit(X_train, y_train)
print("test accuracy", clf.score(X_test, y_test))
