from sklearn.cluster import KMeans

km = KMeans(n_clusters=4, random_state=0)  # two segments, for now
labels = km.fit_predict(X)
