"""scikit-learn's breast-cancer table (ships with the package) plus one planted leak: `biopsy_result`, the
target itself with a little noise, recorded after the diagnosis. Writes the CSV to argv[1]."""

import sys

import numpy as np
from sklearn.datasets import load_breast_cancer

df = load_breast_cancer(as_frame=True).frame
df.columns = [c.replace(" ", "_") for c in df.columns]
df = df.rename(columns={"target": "benign"})
rng = np.random.default_rng(11)
df["biopsy_result"] = df["benign"] + rng.normal(scale=0.02, size=len(df))
df.to_csv(sys.argv[1], index=False)
