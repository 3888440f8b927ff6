# Customer segmentation, the textbook way: KMeans on two features.
# The data is generated, so it runs anywhere without a download.
import matplotlib.pyplot as plt
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import silhouette_score

X, _ = make_blobs(n_samples=600, centers=5, cluster_std=0.7, random_state=7)

kmeans = KMeans(n_clusters=2, n_init=10, random_state=0)
labels = kmeans.fit_predict(X)

print("inertia:", kmeans.inertia_)
print("silhouette:", silhouette_score(X, labels))

plt.scatter(X[:, 0], X[:, 1], c=labels, s=8)
plt.scatter(*kmeans.cluster_centers_.T, c="red", marker="x")
plt.title("segments")
plt.savefig("segments.png")
plt.show()
