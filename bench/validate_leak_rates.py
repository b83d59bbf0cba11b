"""validate's "holdout implausibly above CV" leakage check: false alarms on clean data and detection of
planted leaks, for the rule in use (the holdout's own sampling error combined with the CV-mean SE,
``stats.uncertainty.holdout_vs_cv``) and, in the same invocation, the rule it replaced (a fixed tolerance
max(0.05, 3 × CV std) that ignored the holdout's size) as the reference.

Clean data: logistic data sets (4 features, 2 informative) over sizes x positive rates x seeds, and
regression sets (metric rmse) over sizes x seeds, each evaluated by ``validate.evaluate`` with the default
model, exactly as a run does; plus the bundled example (examples/churn.csv through ingest's reader and the
features recipe, its real seal) over seeds.
Planted leak: a status field that agrees with the label on (1 - f_cv) of the CV rows and on (1 - f_h) of
the sealed rows (written after the outcome for the records the holdout holds): a holdout that truly is
better than CV. Detection is counted for f_cv = 0.3 and f_h in {0, 0.1, 0.2}.

Prints counts, rates with a 95% Wilson upper bound for the false-alarm rate, and the rate at other z.

usage: .venv/bin/python bench/validate_leak_rates.py [SEEDS]
       .venv/bin/python bench/validate_leak_rates.py --calibration [SEEDS]   (the calibration bounds only)
       .venv/bin/python bench/validate_leak_rates.py --fairness [SEEDS]      (the fairness decision threshold only)
"""

from __future__ import annotations

import math
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "py"))


def wilson_upper(k: int, n: int, z: float = 1.96) -> float:
    p = k / n
    den = 1 + z * z / n
    return (p + z * z / (2 * n) + z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / den


def gen(n, rate, seed, task="classification"):
    import numpy as np
    import pandas as pd

    r = np.random.default_rng(seed)
    X = r.normal(size=(n, 4))
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(4)])
    if task == "regression":
        df["y"] = 2 * X[:, 0] - X[:, 1] + 0.5 * X[:, 2] * X[:, 3] + r.normal(0, 1.5, n)
        return df
    z = 1.2 * X[:, 0] - 0.8 * X[:, 1] + math.log(rate / (1 - rate))
    df["y"] = (r.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return df


def main() -> None:
    import numpy as np

    from loom_py.runtime import flowkit
    from loom_py.verbs import validate

    flowkit.pin_threads(1)
    seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 8

    def evaluate(df, seed, h="sha256:bench", metric=None):
        p = {"target": "y" if "y" in df.columns else "churned", "seed": seed}
        if metric:
            p["metric"] = metric
        opts = validate.resolve_options(df, p)
        return validate.evaluate(df, opts, content_hash=h)["summary"]

    def rules(s):
        a = s["agreement"]
        gap, std = a["gap_in_holdout_favour"], s["cv"]["std"]
        old = gap > max(validate.tolerance(s["metric"], a["cv_mean"], validate.DEFAULT_BOUNDS), 3 * std)
        at = {z: bool(gap > max(a["floor"], z * a["combined_se"])) for z in (2.326, 2.576, 3.0)}
        return old, a["improbable"], at

    t0 = time.perf_counter()
    clean = []
    for n in (300, 800, 2000):
        for rate in (0.05, 0.1, 0.3, 0.5):
            for s in range(seeds):
                clean.append((f"logistic n={n} rate={rate} seed={s}", gen(n, rate, 100 * s + n), s, None))
        for s in range(seeds):
            clean.append((f"regression n={n} seed={s}", gen(n, 0, 100 * s + n, "regression"), s, "rmse"))
    old_k = new_k = 0
    at_k = {2.326: 0, 2.576: 0, 3.0: 0}
    for name, df, s, metric in clean:
        o, nw, at = rules(evaluate(df, s, metric=metric))
        old_k += o
        new_k += nw
        for z in at_k:
            at_k[z] += at[z]
        if nw:
            print(f"  FALSE ALARM (new rule) on {name}")
    m = len(clean)
    print(f"clean generated data: {m} evaluations ({time.perf_counter() - t0:.0f} s)")
    print(f"  false alarms, rule in use (z=3):    {new_k}/{m} = {new_k / m:.3f} (95% upper bound {wilson_upper(new_k, m):.3f})")
    print(f"  false alarms, old fixed tolerance:  {old_k}/{m} = {old_k / m:.3f}")
    print("  false alarms at other z: " + ", ".join(f"z={z}: {k}/{m}" for z, k in at_k.items()))

    from loom_py.runtime.data import content_hash, from_frame
    from loom_py.verbs import features, ingest

    table, _ = ingest.read_file(os.path.join(ROOT, "examples", "churn.csv"))
    churn, _, _ = features.build(table.to_pandas(), "churned")
    h = content_hash(from_frame(churn))
    old_k = new_k = 0
    for s in range(20):
        o, nw, _ = rules(evaluate(churn, s, h))
        old_k += o
        new_k += nw
    print(f"bundled example (churn, features, its own seal), 20 seeds: alarms rule in use {new_k}/20, old rule {old_k}/20")

    print("planted leak (status field: 30% flips in CV rows, f_h flips in the sealed rows):")
    for fh in (0.0, 0.1, 0.2):
        for n in (800, 2000):
            old_k = new_k = 0
            for s in range(seeds):
                df = gen(n, 0.3, 7000 + s)
                opts = validate.resolve_options(df, {"target": "y"})
                seal = validate.sealed(df, opts, "sha256:bench")["seal"]
                r = np.random.default_rng(s)
                flip = r.random(len(df)) < 0.3
                flip[seal.holdout] = r.random(len(seal.holdout)) < fh
                df["status"] = np.where(flip, 1 - df["y"], df["y"])
                o, nw, _ = rules(evaluate(df, s))
                old_k += o
                new_k += nw
            print(f"  f_h={fh:<4} n={n:<5} detected: rule in use {new_k}/{seeds}, old rule {old_k}/{seeds}")
    print(f"total {time.perf_counter() - t0:.0f} s")


def calibration_rates(seeds: int) -> None:
    """The calibration bounds (slope 0.8-1.25, intercept ±0.5, on 95% intervals; ECE 0.10): false alarms on
    probabilities calibrated by construction (an unpenalized logistic regression of correctly specified
    logistic data, fitted on 4x the holdout's rows), and detection of squashed (z / 3) and overconfident
    (z x 2, z x 2.5) versions of the same probabilities (z / 2 also); holdouts of 300-1000 rows, positive rates 10-50%."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from loom_py.stats import calibration as C

    b = {"max_ece": 0.10, "min_slope": 0.8, "max_slope": 1.25, "max_abs_intercept": 0.5, "min_rows": 200}
    print("calibration bounds (holdout rows x positive rate x seeds):")
    for kind, f in (("calibrated", lambda z: z), ("squashed z/3", lambda z: z / 3), ("squashed z/2", lambda z: z / 2),
                    ("overconfident z*2", lambda z: z * 2), ("overconfident z*2.5", lambda z: z * 2.5)):
        fails, ece_only, total = 0, 0, 0
        for n in (300, 600, 1000):
            for rate in (0.1, 0.3, 0.5):
                for s in range(seeds):
                    r = np.random.default_rng(10_000 + 97 * s + n)
                    m = 5 * n
                    X = r.normal(size=(m, 4))
                    zt = 1.2 * X[:, 0] - 0.8 * X[:, 1] + math.log(rate / (1 - rate))
                    y = (r.random(m) < 1 / (1 + np.exp(-zt))).astype(int)
                    lr = LogisticRegression(C=1e6, max_iter=1000).fit(X[: 4 * n], y[: 4 * n])
                    z = lr.decision_function(X[4 * n:])
                    p = 1 / (1 + np.exp(-f(z)))
                    rep = C.calibration_report(y[4 * n:], np.c_[1 - p, p], [0, 1])
                    j = C.judge(rep, max_ece=b["max_ece"], min_slope=b["min_slope"], max_slope=b["max_slope"],
                                max_abs_intercept=b["max_abs_intercept"], min_rows=b["min_rows"])
                    total += 1
                    fails += not j["passed"]
                    ece_only += rep["ece"] > b["max_ece"]
        print(f"  {kind:<20} failed {fails}/{total} = {fails / total:.3f} (95% upper bound {wilson_upper(fails, total):.3f}); "
              f"ECE alone would fail {ece_only}/{total}")


def fairness_rates(seeds: int) -> None:
    """Fairness gaps at the base-rate-matching decision threshold: false alarms on a random 3-level attribute
    the model ignores, detection when the scores favour one group (+1 on the logit), and how often the check
    is not assessable; the old 0.5 cut on the same scores as the reference (how often it selects no one)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from loom_py.stats import fairness as F

    print("fairness at the base-rate threshold (holdout rows x positive rate x seeds):")
    for kind, bias in (("attribute ignored", 0.0), ("scores favour group c (+1 logit)", 1.0)):
        fail = na = degenerate_05 = total = 0
        for n in (300, 600, 1000):
            for rate in (0.05, 0.1, 0.3):
                for s in range(seeds):
                    r = np.random.default_rng(20_000 + 31 * s + n)
                    m = 5 * n
                    X = r.normal(size=(m, 4))
                    zt = 1.2 * X[:, 0] - 0.8 * X[:, 1] + math.log(rate / (1 - rate))
                    y = (r.random(m) < 1 / (1 + np.exp(-zt))).astype(int)
                    g = r.choice(["a", "b", "c"], m)
                    lr = LogisticRegression(C=1e6, max_iter=1000).fit(X[: 4 * n], y[: 4 * n])
                    z = lr.decision_function(X[4 * n:]) + bias * (g[4 * n:] == "c")
                    p = 1 / (1 + np.exp(-z))
                    yh, gh = y[4 * n:], g[4 * n:]
                    dec = F.decision_threshold(p, float(y[: 4 * n].mean()))
                    pred = (p >= dec["threshold"]).astype(int)
                    fr = F.slice_report(yh, pred, gh, positive=1, score_pos=p, seed=s)
                    total += 1
                    degenerate_05 += int((p >= 0.5).sum() == 0)
                    if fr.get("assessable") is False:
                        na += 1
                        continue
                    boot = fr.get("bootstrap") or {}
                    lo = [(boot.get(k) or {}).get("lower", fr[k]) for k in ("demographic_parity_difference", "equalized_odds_difference")
                          if fr.get(k) is not None]
                    fail += any(v > 0.10 for v in lo)
        print(f"  {kind:<34} gap above 0.10 (on the 95% lower bound): {fail}/{total}; not assessable {na}/{total}; "
              f"the 0.5 cut selected no one in {degenerate_05}/{total}")


if __name__ == "__main__":
    if "--fairness" in sys.argv:
        fairness_rates(int(next((a for a in sys.argv[1:] if a.isdigit()), "20")))
        sys.exit(0)
    if "--calibration" in sys.argv:
        calibration_rates(int(next((a for a in sys.argv[1:] if a.isdigit()), "20")))
        sys.exit(0)
    main()
