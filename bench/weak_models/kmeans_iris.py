from sklearn.cluster import KMeans
from sklearn.datasets import load_iris
from sklearn.preprocessing import StandardScaler

X = StandardScaler().fit_transform(load_iris().data)
labels = KMeans(n_clusters=8, n_init=10, random_state=0).fit_predict(X)
