"""The benchmark table: N rows x 20 columns of mixed types (numeric, skewed, integer, categorical of low
and high cardinality, boolean, datetime, missing values) with a binary target. Deterministic (seed)."""

from __future__ import annotations


def make(n: int, seed: int = 0):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    cols = {}
    for i in range(6):
        cols[f"num_{i}"] = rng.normal(i, 1 + i, n)
    for i in range(3):
        cols[f"skew_{i}"] = rng.lognormal(0, 1 + 0.3 * i, n)
    for i in range(3):
        cols[f"int_{i}"] = rng.integers(0, 100 * (i + 1), n)
    cols["cat_low_0"] = rng.choice(np.array(["a", "b", "c", "d"], dtype=object), n)
    cols["cat_low_1"] = rng.choice(np.array([f"g{i}" for i in range(12)], dtype=object), n)
    cols["cat_high"] = rng.choice(np.array([f"city_{i}" for i in range(800)], dtype=object), n)
    cols["flag"] = rng.random(n) < 0.3
    cols["when"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 1500, n), unit="D")
    df = pd.DataFrame(cols)
    df.loc[rng.random(n) < 0.1, "num_1"] = np.nan
    df.loc[rng.random(n) < 0.25, "cat_low_1"] = None
    z = 0.5 * df["num_0"] - 0.2 * df["num_2"].fillna(0) + (df["cat_low_0"] == "b") + rng.normal(0, 2, n)
    df["amount"] = np.round(rng.gamma(2, 50, n), 2)
    df["ratio"] = rng.random(n)
    df["target"] = (z > 1).astype(int)
    assert df.shape[1] == 20
    return df


if __name__ == "__main__":
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    out = sys.argv[2] if len(sys.argv) > 2 else f"/tmp/eda_bench_{n}.parquet"
    make(n).to_parquet(out, index=False)
    print(out)
