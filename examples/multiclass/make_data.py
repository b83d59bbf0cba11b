"""scikit-learn's wine table (ships with the package): three cultivars from 13 chemical measurements.
Writes the CSV to argv[1]."""

import sys

from sklearn.datasets import load_wine

df = load_wine(as_frame=True).frame.rename(columns={"target": "cultivar"})
df["cultivar"] = df["cultivar"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
df.to_csv(sys.argv[1], index=False)
