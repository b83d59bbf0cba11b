"""Leakage detection: false positives on clean data measured as carefully as detection on planted leaks.

Clean data (no column may be flagged):
  - scikit-learn's bundled breast_cancer, wine, diabetes, iris, digits (real-world data no one here wrote);
  - make_classification / make_regression (informative, redundant and noise features), many seeds;
  - py/tests/leakdata.clean (mixed types, missing values, datetimes, high-cardinality categoricals), many
    seeds, sizes and both tasks.
Planted leaks (each must be flagged with its reason): leakdata.planted, many seeds, sizes, both tasks;
and a noise sweep of the "noisy copy" to show where detection stops (the threshold's margin).

Prints counts, rates (with a 95% Wilson upper bound for zero-event rates), the closest genuine
single-feature score to each threshold, and the wall time per data set.

usage: .venv/bin/python bench/eda_leakage_rates.py [SEEDS]
"""

from __future__ import annotations

import math
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "py"))
sys.path.insert(0, os.path.join(ROOT, "py", "tests"))


def wilson_upper(k: int, n: int, z: float = 1.96) -> float:
    if n == 0:
        return float("nan")
    p = k / n
    den = 1 + z * z / n
    centre = p + z * z / (2 * n)
    adj = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre + adj) / den


def main() -> None:
    import numpy as np
    import pandas as pd
    from sklearn import datasets

    from leakdata import PLANTED, clean, planted
    from loom_py.stats import leakage as L

    seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    clean_sets: list[tuple[str, pd.DataFrame]] = []
    for name in ("load_breast_cancer", "load_wine", "load_diabetes", "load_iris", "load_digits"):
        clean_sets.append((name[5:], getattr(datasets, name)(as_frame=True).frame))
    for s in range(seeds):
        X, y = datasets.make_classification(n_samples=2000, n_features=20, n_informative=8, n_redundant=4,
                                            class_sep=1.5, random_state=s)
        df = pd.DataFrame(X, columns=[f"f{i}" for i in range(20)])
        df["target"] = y
        clean_sets.append((f"make_classification/{s}", df))
        X, y = datasets.make_regression(n_samples=2000, n_features=20, n_informative=8, noise=10, random_state=s)
        df = pd.DataFrame(X, columns=[f"f{i}" for i in range(20)])
        df["target"] = y
        clean_sets.append((f"make_regression/{s}", df))
        for task in ("classification", "regression"):
            for n in (300, 3000):
                clean_sets.append((f"leakdata.clean/{task}/{n}/{s}", clean(n, s, task)))

    cols_checked = flagged_cols = sets_flagged = 0
    t_total = 0.0
    worst = {"classification": (0.0, ""), "regression": (-1.0, "")}
    for name, df in clean_sets:
        t = time.perf_counter()
        flags = L.find_leaks(df, "target")
        t_total += time.perf_counter() - t
        cols_checked += df.shape[1] - 1
        flagged_cols += len(flags)
        sets_flagged += bool(flags)
        if flags:
            print(f"  FALSE POSITIVE on {name}: {[(f['column'], f['reason']) for f in flags]}")
        task = L._task(df, "target", None)
        scores = L.single_feature_scores(df, "target", task)
        best = max(((v, k) for k, v in scores.items() if v is not None), default=(0.0, ""))
        if best[0] > worst[task][0]:
            worst[task] = (best[0], f"{name}:{best[1]}")
    print(f"clean data: {len(clean_sets)} data sets, {cols_checked} feature columns")
    print(f"  flagged columns: {flagged_cols} / {cols_checked} = {flagged_cols / cols_checked:.4f} "
          f"(95% upper bound {wilson_upper(flagged_cols, cols_checked):.4f})")
    print(f"  data sets with any flag: {sets_flagged} / {len(clean_sets)} (95% upper bound {wilson_upper(sets_flagged, len(clean_sets)):.3f})")
    print(f"  best genuine single-feature out-of-fold score: ROC-AUC {worst['classification'][0]:.4f} ({worst['classification'][1]}) "
          f"vs threshold {L.THRESHOLD_AUC}; R2 {worst['regression'][0]:.4f} ({worst['regression'][1]}) vs threshold {L.THRESHOLD_R2}")
    print(f"  mean time per data set: {t_total / len(clean_sets) * 1000:.0f} ms")

    found = expected = wrong_reason = extra = 0
    runs = 0
    t_total = 0.0
    for s in range(seeds):
        for task in ("classification", "regression"):
            for n in (300, 3000):
                df = planted(n, s, task)
                t = time.perf_counter()
                flags = {f["column"]: f["reason"] for f in L.find_leaks(df, "target")}
                t_total += time.perf_counter() - t
                runs += 1
                for col, reason in PLANTED.items():
                    expected += 1
                    if col in flags:
                        found += 1
                        wrong_reason += flags[col] != reason
                extra += len(set(flags) - set(PLANTED))
    print(f"planted leaks: {runs} data sets x {len(PLANTED)} leaks = {expected}")
    print(f"  detected: {found} / {expected} = {found / expected:.4f}; with another reason than planted: {wrong_reason}; "
          f"genuine columns flagged alongside: {extra}")
    print(f"  mean time per data set: {t_total / runs * 1000:.0f} ms")

    print("noise sweep (classification, n=3000, noisy copy = target + N(0, sigma*sd(target))):")
    for sigma in (0.05, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0):
        hits = 0
        for s in range(seeds):
            df = clean(3000, s)
            y = df["target"].to_numpy().astype(float)
            df["copy"] = y + np.random.default_rng(s).normal(0, sigma * y.std(), len(y))
            flags = {f["column"] for f in L.find_leaks(df, "target")}
            hits += "copy" in flags
        auc = L.single_feature_scores(df, "target")["copy"]
        print(f"  sigma={sigma:<5} flagged {hits}/{seeds}   (one-feature out-of-fold ROC-AUC on the last seed {auc:.4f})")


def near_copy_sweep(seeds: int) -> None:
    """The blind band between the single-feature bar and the target-copy bar: a near-copy of the label
    whose values disagree with it on a share f of the rows (f = 0..10%). Categorical: a status string;
    numeric: the label plus small noise, flipped on f of the rows (classification) or replaced by a draw
    from the target's distribution on f of the rows (regression). Which reason flags it, per f."""
    import numpy as np

    from leakdata import clean
    from loom_py.stats import leakage as L

    print("near-copy sweep (n=2000, leakdata.clean + one near-copy; flagged / seeds, by reason):")
    for kind in ("categorical", "numeric", "numeric-regression"):
        task = "regression" if kind == "numeric-regression" else "classification"
        row = []
        for f in (0.0, 0.01, 0.02, 0.03, 0.05, 0.07, 0.10):
            hits, reasons = 0, {}
            for s in range(seeds):
                df = clean(2000, s, task)
                rng = np.random.default_rng(500 + s)
                y = df["target"].to_numpy()
                flip = rng.random(len(y)) < f
                if task == "regression":
                    df["copy"] = np.where(flip, rng.permutation(y), y + rng.normal(0, 0.01 * y.std(), len(y)))
                else:
                    noisy = np.where(flip, 1 - y, y)
                    df["copy"] = np.where(noisy == 1, "closed", "open") if kind == "categorical" else \
                        noisy + rng.normal(0, 0.1, len(y))
                flags = {fl["column"]: fl["reason"] for fl in L.find_leaks(df, "target")}
                if "copy" in flags:
                    hits += 1
                    reasons[flags["copy"]] = reasons.get(flags["copy"], 0) + 1
                extra = set(flags) - {"copy"}
                if extra:
                    print(f"    genuine column flagged alongside ({kind}, f={f}, seed {s}): {sorted(extra)}")
            row.append(f"{f:.0%}: {hits}/{seeds} " + ",".join(f"{r.split('_')[0]}={k}" for r, k in sorted(reasons.items())))
        print(f"  {kind:<19} " + " | ".join(row))


if __name__ == "__main__":
    main()
    near_copy_sweep(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
