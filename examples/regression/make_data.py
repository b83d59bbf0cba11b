"""scikit-learn's diabetes table (ships with the package): disease progression one year after baseline.
Writes the CSV to argv[1]."""

import sys

from sklearn.datasets import load_diabetes

df = load_diabetes(as_frame=True, scaled=False).frame.rename(columns={"target": "progression"})
df.to_csv(sys.argv[1], index=False)
