"""Loom's offline proposer vs FLAML at the same wall-clock budget, on five data sets that ship with
scikit-learn. Both see the same dev rows; both are scored by Loom's scorer on the same test rows that
neither search saw (Loom's best solution refit on all dev rows, as `load_solution` gives it; FLAML retrains
its best on dev). Ratio > 1: Loom better.

FLAML is a bench-only dependency:  python -m pip install --target /tmp/flaml_pkgs --no-deps flaml==2.3.6
Usage: .venv/bin/python bench/optimize_flaml.py [SECONDS=20] [FLAML_PATH=/tmp/flaml_pkgs] [DATASETS=all, comma-separated] [REPEATS=1]

REPEATS > 1: each data set is split into dev/test REPEATS times (seeds 0..R-1); the ratio is that of the mean test
scores (a 38-row iris test split alone swings log loss by 2x).
"""

import sys
import time
import warnings

from optimize_common import DATASETS, dev_test, load, loom_search, ratio, refit_best, spec_for, test_score

warnings.filterwarnings("ignore")
budget = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0
sys.path.insert(0, sys.argv[2] if len(sys.argv) > 2 else "/tmp/flaml_pkgs")
from flaml import AutoML  # noqa: E402

import os  # noqa: E402

if hasattr(os, "sched_setaffinity"):  # one core for both searches (Loom's cross-validation folds run concurrently otherwise)
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
print(f"budget {budget:g} s each, 1 core per search (n_jobs=1; the process is pinned to one CPU)")
print(f"{'dataset':14} {'rows':>5} {'metric':10} {'loom':>9} {'flaml':>9} {'ratio':>6} {'loom nodes':>10} {'loom best':>20}")
ratios = []
only = sys.argv[3].split(",") if len(sys.argv) > 3 and sys.argv[3] not in ("", "all") else list(DATASETS)
repeats = int(sys.argv[4]) if len(sys.argv) > 4 else 1
for name, (_, text, task, fmetric) in DATASETS.items():
    if name not in only:
        continue
    df = load(name)
    spec = spec_for(name)
    ls, fs, nodes, bests, sel = [], [], [], [], ""
    for rep in range(repeats):
        dev, test = dev_test(df, task, seed=rep)
        t0 = time.time()
        rec = loom_search(dev, spec, time_limit_s=budget)
        model, best = refit_best(rec, dev)
        loom_s = test_score(spec, model, test)
        loom_wall = time.time() - t0
        automl = AutoML()
        ests = ["lgbm", "rf", "extra_tree"] + (["lrl1"] if task == "classification" else [])
        t0 = time.time()
        automl.fit(dev.drop(columns=["target"]), dev["target"], task=task, metric=fmetric, time_budget=budget,
                   estimator_list=ests, seed=0, n_jobs=1, verbose=0)
        flaml_wall = time.time() - t0
        flaml_s = test_score(spec, automl, test)
        ls.append(loom_s), fs.append(flaml_s), nodes.append(len(rec["journal"])), bests.append(best["model"])
        sel = rec["selection"]["kind"]
        if repeats > 1:
            print(f"  {name} split {rep}: loom {loom_s:.4f} ({best['model']}, {len(rec['journal'])} nodes, {loom_wall:.1f}s) "
                  f"flaml {flaml_s:.4f} ({automl.best_estimator}, {flaml_wall:.1f}s) ratio {ratio(spec, loom_s, flaml_s):.3f}", flush=True)
    loom_s, flaml_s = sum(ls) / len(ls), sum(fs) / len(fs)
    r = ratio(spec, loom_s, flaml_s)
    ratios.append(r)
    print(f"{name:14} {len(df):5d} {spec['metric']:10} {loom_s:9.4f} {flaml_s:9.4f} {r:6.3f} {sum(nodes) / len(nodes):10.0f} "
          f"{'/'.join(sorted(set(bests))):>20}  (selection {sel}, {repeats} split(s))", flush=True)
print(f"mean ratio {sum(ratios) / len(ratios):.4f}, min {min(ratios):.4f}  (goal: mean >= 1.0, never below 0.98)")
