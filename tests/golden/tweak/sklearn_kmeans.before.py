from sklearn.cluster import KMeans

km = KMeans(n_clusters=2, random_state=0)  # two segments, for now
labels = km.fit_predict(X)
