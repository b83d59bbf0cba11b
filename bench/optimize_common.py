"""Shared pieces for the optimize benchmarks: data sets that ship in packages, a dev/test split that no
search sees, and scoring the refit best solution on the test rows with Loom's own scorer."""

from __future__ import annotations

import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "py"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from loom_py.verbs.optimize import metric_spec, scoring, search  # noqa: E402
from loom_py.verbs.solution import module_from_code  # noqa: E402

# name -> (loader, metric text, task, FLAML metric)
DATASETS = {
    "breast_cancer": ("load_breast_cancer", "Maximize ROC-AUC", "classification", "roc_auc"),
    "wine": ("load_wine", "Maximize accuracy", "classification", "accuracy"),
    "digits": ("load_digits", "Maximize accuracy", "classification", "accuracy"),
    "iris": ("load_iris", "Minimize log loss", "classification", "log_loss"),
    "diabetes": ("load_diabetes", "Minimize RMSE", "regression", "rmse"),
}


def load(name: str):
    import sklearn.datasets as D

    X, y = getattr(D, DATASETS[name][0])(return_X_y=True, as_frame=True)
    X = X.copy()
    X.columns = [f"f_{c}".replace(" ", "_") for c in X.columns]
    df = X.copy()
    df["target"] = y.to_numpy()
    return df


def dev_test(df, task: str, seed: int = 0):
    from sklearn.model_selection import train_test_split

    strat = df["target"] if task == "classification" else None
    dev, test = train_test_split(df, test_size=0.25, random_state=seed + 1000, stratify=strat)
    return dev.reset_index(drop=True), test.reset_index(drop=True)


def test_score(spec, model, test) -> float:
    X, y = test.drop(columns=["target"]), test["target"].to_numpy()
    pred = {"labels": np.asarray(model.predict(X))}
    if spec["task"] == "classification" and hasattr(model, "predict_proba"):
        pred["proba"] = np.asarray(model.predict_proba(X))
    return scoring.score(spec, y, pred, classes=getattr(model, "classes_", None))


def loom_search(dev, spec, *, steps=1000, time_limit_s=None, policy="aide", seed=0, parallel=1, **extra):
    cfg = {"target": "target", "spec": spec, "goal": "bench", "steps": steps, "provider": "offline", "seed": seed,
           "parallel": parallel, "node_timeout": 120, "policy": policy,
           "time_limit_min": (time_limit_s / 60.0) if time_limit_s else None,
           "final_fit": False, **extra}  # the bench refits the best itself (refit_best), as load_solution does
    with tempfile.TemporaryDirectory(prefix="loom-bench-") as wd:
        return search.run_search(dev, cfg, workdir=wd)


def refit_best(rec, dev):
    best = next(n for n in rec["journal"] if n["id"] == rec["best_id"])
    model = module_from_code(best["code"]).make_model()
    model.fit(dev.drop(columns=["target"]), dev["target"])
    return model, best


def ratio(spec, loom_score: float, ref_score: float) -> float:
    """> 1 means Loom is better, whatever the direction."""
    if spec["direction"] == "maximize":
        return loom_score / ref_score
    return ref_score / loom_score


def spec_for(name):
    return metric_spec.parse_metric(DATASETS[name][1])


def use_sandbox(config: str) -> tuple[str, str]:
    """Set the launcher and the OS sandbox for a bench config "zygote|process/bwrap|hook"; (launcher, box)."""
    from loom_py.verbs.optimize import sandbox

    launcher, box = config.split("/")
    os.environ["LOOM_SANDBOX_ZYGOTE"] = "1" if launcher == "zygote" else "0"
    os.environ["LOOM_SANDBOX_BWRAP"] = "1" if box == "bwrap" else "0"
    sandbox._bwrap_works.cache_clear()
    assert (sandbox.os_sandbox() is not None) == (box == "bwrap"), f"{config}: bubblewrap does not run here"
    return launcher, box
