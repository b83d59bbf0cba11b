"""The optimism the seal removes: the search's best score against validate's holdout score for the model it
chose, before (the search scores on its own split of every row, the sealed ones included) and after (the
search never sees the rows validate seals; loom_py.verbs.optimize.seal).

For each data set and search seed, in-process and on the same data object bytes:
  before  search.run_search on every row (the old behaviour)
  after   search.run_search on seal.exclude(...) (what OptimizeFlow does now)
then, as `validate --model` does: the best solution's make_model() fitted on validate's CV rows (every row but
the seal), scored once on the sealed holdout with validate.score. Printed per data set: the sealed rows the
search saw (trained candidates on / scored candidates on), the search's best score, the holdout score, and the
gap (search best − holdout, in the "better" direction: positive = the search's figure was optimistic),
as medians over the seeds.

Usage: python bench/seal_optimism.py [--steps=S] [--seeds=K]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "py"))
os.environ.setdefault("METAFLOW_USER", "bench")


def datasets():
    import pandas as pd
    from sklearn.datasets import load_breast_cancer, load_diabetes

    churn = pd.read_csv(os.path.join(ROOT, "examples", "churn.csv")).drop(columns=["customer_id"])
    bc = load_breast_cancer(as_frame=True).frame
    db = load_diabetes(as_frame=True, scaled=False).frame
    return [("churn (bundled)", churn, "churned", "Maximize ROC-AUC on a held-out split.", "roc_auc"),
            ("breast cancer", bc, "target", "Maximize ROC-AUC on a held-out split.", "roc_auc"),
            ("diabetes", db, "target", "Minimize RMSE on a held-out split.", "rmse")]


def holdout_score(code, df, target, task, metric, seal):
    import numpy as np

    from loom_py.verbs import validate
    from loom_py.verbs.solution import module_from_code

    lab = df[df[target].notna()].reset_index(drop=True)
    cv = np.setdiff1d(np.arange(len(lab)), seal.holdout)
    X, y = lab.drop(columns=[target]), lab[target].to_numpy()
    est = module_from_code(code).make_model()
    est.fit(X.iloc[cv], y[cv])
    Xh, yh = X.iloc[seal.holdout], y[seal.holdout]
    if task == "classification":
        classes = sorted(np.unique(y).tolist())
        proba = est.predict_proba(Xh)
        return validate.score(metric, yh, proba=proba, pred=np.asarray(classes)[proba.argmax(1)], classes=classes)
    return validate.score(metric, yh, pred=est.predict(Xh))


def one(df, target, metric_text, metric, seed, steps, exclude):
    import numpy as np

    from loom_py.runtime.data import content_hash
    from loom_py.stats import splits
    from loom_py.stats.tabular import infer_task
    from loom_py.verbs import validate
    from loom_py.verbs.optimize import metric_spec, search, seal as sealmod

    task = infer_task(df[target])
    import pyarrow as pa

    h = content_hash(pa.Table.from_pandas(df, preserve_index=False))
    opts = {"target": target, "task": task, "time": None, "group": None, "holdout": 0.2, "horizon": 0.0}
    seal = validate.sealed(df, opts, h)["seal"]
    data = sealmod.exclude(df, target, task, h)[0] if exclude else df
    spec = metric_spec.parse_metric(metric_text)
    cfg = {"target": target, "spec": spec, "goal": "g", "steps": steps, "provider": "offline", "seed": seed,
           "parallel": 2, "node_timeout": 120}
    with tempfile.TemporaryDirectory() as wd:
        rec = search.run_search(data, cfg, workdir=wd)
    best = next(n for n in rec["journal"] if n["id"] == rec["best_id"])
    # which sealed rows did the search use? (row hashes of the sealed rows in what it was given)
    sealed_h = set(splits.row_hashes(df.iloc[seal.holdout]).tolist())
    seen = int(np.isin(splits.row_hashes(data), list(sealed_h)).sum())
    hold = holdout_score(best["code"], df, target, task, metric, seal)
    higher = spec["direction"] == "maximize"
    gap = (best["score"] - hold) if higher else (hold - best["score"])
    return {"search": best["score"], "holdout": hold, "gap": gap, "sealed_rows_seen": seen, "sealed": len(seal.holdout)}


def main():
    steps = int(next((a.split("=")[1] for a in sys.argv[1:] if a.startswith("--steps=")), 10))
    seeds = int(next((a.split("=")[1] for a in sys.argv[1:] if a.startswith("--seeds=")), 3))
    print(f"offline search --steps {steps}, seeds 0..{seeds - 1}; medians over the seeds; gap = search best − holdout "
          "(positive: the search's figure was optimistic)")
    print(f"{'data set':<16} {'':<7} {'sealed rows seen':>16} {'search best':>11} {'holdout':>8} {'gap':>8}  per-seed gaps")
    for name, df, target, mtext, metric in datasets():
        for label, excl in (("before", False), ("after", True)):
            rs = [one(df, target, mtext, metric, s, steps, excl) for s in range(seeds)]
            med = lambda k: statistics.median(r[k] for r in rs)  # noqa: E731
            gaps = " ".join("%+.4f" % r["gap"] for r in rs)
            print(f"{name:<16} {label:<7} {rs[0]['sealed_rows_seen']:>7} of {rs[0]['sealed']:<6} {med('search'):>11.4f} "
                  f"{med('holdout'):>8.4f} {med('gap'):>+8.4f}  {gaps}", flush=True)


if __name__ == "__main__":
    main()
