"""Generated data sets with planted leaks, and the same data without them.

Used by the pytest files, the integration tests (``python py/tests/leakdata.py OUT_DIR`` writes CSVs)
and bench/eda_leakage_rates.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PLANTED = {"noisy_copy": "target_copy", "row_id": "identifier", "closed_at": "post_outcome_timestamp",
           "score_exp": "target_copy"}


def clean(n: int = 2000, seed: int = 0, task: str = "classification") -> pd.DataFrame:
    """Genuine-looking features with a moderate, learnable signal (no leaks)."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n)
    income = np.round(rng.lognormal(10, 0.6, n), 2)
    tenure = rng.exponential(24, n).round(1)
    region = rng.choice(["north", "south", "east", "west"], n, p=[0.4, 0.3, 0.2, 0.1])
    plan = rng.choice(["basic", "plus", "pro"], n)
    city = rng.choice([f"city_{i:03d}" for i in range(120)], n)
    visits = rng.poisson(3, n).astype(float)
    visits[rng.random(n) < 0.1] = np.nan
    signup = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D")
    z = (0.03 * (age - 50) + 0.4 * np.log(income / 20000) - 0.02 * tenure + 0.5 * (plan == "pro")
         + 0.3 * (region == "west") + rng.normal(0, 1.0, n))
    df = pd.DataFrame({"age": age, "income": income, "tenure": tenure, "region": region, "plan": plan,
                       "city": city, "visits": visits, "signup": signup})
    df["target"] = (z > np.quantile(z, 0.7)).astype(int) if task == "classification" else np.round(z * 10 + 50, 3)
    return df


def planted(n: int = 2000, seed: int = 0, task: str = "classification") -> pd.DataFrame:
    """``clean`` plus four leaks: a noisy copy of the target, a row ID, a timestamp only filled after the
    outcome, and a monotone transform of the target."""
    rng = np.random.default_rng(seed + 1000)
    df = clean(n, seed, task)
    y = df["target"].to_numpy().astype(float)
    sd = y.std() or 1.0
    df.insert(0, "row_id", np.arange(100000, 100000 + n))
    df["noisy_copy"] = y + rng.normal(0, 0.05 * sd, n)
    closed = df["signup"] + pd.to_timedelta(rng.integers(30, 400, n), unit="D")
    positive = y > np.median(y) if task == "regression" else y == 1
    df["closed_at"] = closed.where(positive)
    df["score_exp"] = np.exp((y - y.mean()) / sd) * 100 + (rng.normal(0, 0.01, n) if task == "regression" else 0)
    return df


if __name__ == "__main__":
    import os
    import sys

    out = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(out, exist_ok=True)
    planted(1500).to_csv(os.path.join(out, "planted.csv"), index=False)
    clean(1500).to_csv(os.path.join(out, "clean.csv"), index=False)
    planted(1500, task="regression").to_csv(os.path.join(out, "planted_reg.csv"), index=False)
