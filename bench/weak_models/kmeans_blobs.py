from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs

X, y = make_blobs(n_samples=800, centers=6, cluster_std=0.8, random_state=11)
km = KMeans(n_clusters=3, n_init=10, random_state=0).fit(X)
print(km.inertia_)
