import pandas as pd
from sklearn import linear_model
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LinearRegression

df = pd.read_csv("houses.csv")
X, y = df[["area", "rooms"]], df["price"]

model = LinearRegression(fit_intercept=True, n_jobs=-1)
model.fit(X, y)
baseline = linear_model.LinearRegression().fit(X, y)
forest = RandomForestRegressor(random_state=0, max_depth=8)
forest.fit(X, y)
area = float(input("area of the house: "))
print("predicted price:", model.predict([[area, 3]]))
