"""ops prediction drift: what scoring a deployed model in the sandbox costs, in one invocation.

A LightGBM classifier is fitted inside the sandbox on 20,000 rows (as validate keeps a solution's model: pickled
there, copied out as bytes) and packaged as `loom deploy` lays it out. Then, on a reference and a current table of
ROWS x 8 columns (the current one shifted):

1. Loom: ``ops_champion.score`` (stage both tables, one sandboxed process unpickles the model and predicts both,
   predictions copied back) + the drift of the predictions (``prediction_series`` / ``drift_of``);
2. reference: the same estimator unpickled in this process, ``predict_proba`` on both tables (what scoring would
   cost if the model's code ran in Loom's own process, which Loom never does).

Printed: seconds of each, the ratio, the largest difference between the two sets of probabilities (must be 0)
and the prediction-drift decisions.

    python bench/ops_prediction_bench.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "py"))
os.environ.setdefault("METAFLOW_USER", "loom")

SOLUTION = """
def make_model():
    import lightgbm
    return lightgbm.LGBMClassifier(n_estimators=200, num_leaves=31, verbose=-1, n_jobs=1, random_state=0)
"""


def table(n: int, seed: int, shift: float):
    import numpy as np
    import pandas as pd

    g = np.random.default_rng(seed)
    X = g.normal(size=(n, 8))
    X[:, 0] += shift
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(8)])
    y = (g.random(n) < 1 / (1 + np.exp(-(1.5 * X[:, 0] - X[:, 1] + 0.5 * X[:, 2] * X[:, 3])))).astype(int)
    return df, y


def main() -> None:
    import numpy as np

    from loom_py.verbs import ops_champion as oc
    from loom_py.verbs.solution import SandboxedSolution

    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()

    Xtr, ytr = table(20_000, 0, 0.0)
    sol = SandboxedSolution("bench", SOLUTION, timeout=600, mem_mb=4096)
    try:
        sol.fit_predict("classification", Xtr, ytr, Xtr.head(10))
        blob = sol.last_model_bytes
    finally:
        sol.close()
    features = list(Xtr.columns)
    meta = {"task": "classification", "target": "y", "features": features, "classes": [0, 1]}
    ref, _ = table(a.rows, 1, 0.0)
    cur, _ = table(a.rows, 2, 0.3)
    with tempfile.TemporaryDirectory(prefix="loom-bench-") as tmp:
        arts = os.path.join(tmp, "artifacts")
        os.makedirs(arts)
        for name, data in (("model.pkl", blob), ("solution.py", SOLUTION.encode()), ("loom.json", json.dumps(meta).encode())):
            with open(os.path.join(arts, name), "wb") as f:
                f.write(data)
        est = pickle.loads(blob)  # the bench's own LightGBM model: no model-written code
        loom_s, drift_s, ref_s, scored = [], [], [], None
        for _ in range(a.repeats):  # interleaved, so the box's load falls on both alike
            t0 = time.perf_counter()
            scored = oc.score(tmp, meta, ref, cur)
            loom_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            recs = oc.drift_of(oc.prediction_series(scored))
            drift_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            p_ref, p_cur = est.predict_proba(ref[features]), est.predict_proba(cur[features])
            ref_s.append(time.perf_counter() - t0)
    diff = max(float(np.abs(scored["reference"]["proba"] - p_ref).max()), float(np.abs(scored["current"]["proba"] - p_cur).max()))
    lm, rm, dm = statistics.median(loom_s), statistics.median(ref_s), statistics.median(drift_s)
    print(f"rows per table: {a.rows:,} x {len(features)} features; median of {a.repeats}")
    print(f"Loom: scored in the sandbox ({scored['isolation'].get('os_sandbox') or 'audit hook only'}): {lm:.2f} s "
          f"(sandbox process {scored['wall_seconds']:.2f} s: {scored['timings']}); prediction drift statistics: {dm:.2f} s")
    print(f"reference: the same model in this process: {rm:.2f} s")
    print(f"each run, Loom / in-process: " + ", ".join(f"{x:.2f}/{y:.2f}" for x, y in zip(loom_s, ref_s)))
    print(f"ratio (Loom scoring / in-process): {lm / rm:.2f}x; max |probability difference|: {diff:g}")
    print("prediction drift: " + ", ".join(f"{r['column']} {r['test']} {r['statistic']:.4g} "
                                           f"{'DRIFT' if r['drifted'] else 'no drift'}" for r in recs))


if __name__ == "__main__":
    main()
