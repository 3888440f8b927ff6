from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

clf = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(128, 64), random_state=1))
clf.fit(X_train, y_train)
print(clf.score(X_test, y_test))
