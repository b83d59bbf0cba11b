import os
import sys

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from leakdata import PLANTED, clean, planted  # noqa: E402

from loom_py.stats import leakage as L  # noqa: E402
from loom_py.runtime.errors import UsageError  # noqa: E402


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("seed", [0, 1])
def test_planted_leaks_found_with_their_reasons(task, seed):
    flags = {f["column"]: f["reason"] for f in L.find_leaks(planted(1500, seed, task), "target")}
    assert flags == PLANTED


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clean_generated_data_gets_no_flags(task, seed):
    assert L.find_leaks(clean(1500, seed, task), "target") == []
    assert L.find_leaks(clean(1500, seed, task), "target", time_col="signup") == []


@pytest.mark.parametrize("loader", ["load_breast_cancer", "load_wine", "load_diabetes"])
def test_sklearn_datasets_get_no_flags(loader):
    from sklearn import datasets

    df = getattr(datasets, loader)(as_frame=True).frame
    assert L.find_leaks(df, "target") == []


def test_single_feature_predictor_on_categorical_copy():
    df = clean(1000, 3)
    df["status"] = np.where(df["target"] == 1, "churned", "stayed")
    flags = {f["column"]: f for f in L.find_leaks(df, "target")}
    assert list(flags) == ["status"]
    assert flags["status"]["reason"] == "target_copy"
    assert "single_feature_predictor" in flags["status"]["evidence"]["also"]
    sfp = L.single_feature_predictors(df, "target")
    assert [f["column"] for f in sfp] == ["status"] and sfp[0]["evidence"]["score"] >= 0.99


def test_after_prediction_time_and_post_outcome():
    df = clean(1000, 4)
    df["decided_at"] = df["signup"] + pd.to_timedelta(np.arange(1000) % 90 + 1, unit="D")
    flags = {f["column"]: f["reason"] for f in L.temporal_leaks(df, "target", "signup")}
    assert flags == {"decided_at": "after_prediction_time"}
    assert L.temporal_leaks(df, "target", None) == []


def test_identifier_kinds():
    n = 200
    rng = np.random.default_rng(0)
    df = pd.DataFrame({
        "seq": np.arange(n), "uuid": [f"k{rng.integers(1e12):x}" for _ in range(n)],
        "customer_id": np.r_[np.arange(n - 5), np.arange(5)] * 7 + 3,
        "amount": rng.normal(size=n), "count": rng.integers(0, 5, n), "target": rng.integers(0, 2, n)})
    assert {f["column"] for f in L.identifier_columns(df, "target")} == {"seq", "uuid", "customer_id"}


def test_unknown_columns_are_usage_errors():
    df = clean(100)
    with pytest.raises(UsageError):
        L.find_leaks(df, "nope")
    with pytest.raises(UsageError):
        L.temporal_leaks(df, "target", "nope")


def test_bin_codes_missing_gets_its_own_bin():
    s = pd.Series([1.0, 2.0, np.nan, 4.0])
    codes, n = L.bin_codes(s)
    assert len(set(codes)) == 4 and codes[2] == n - 1
    codes, n = L.bin_codes(pd.Series(["a", None, "b", "a"]))
    assert codes[0] == codes[3] and codes[1] == n - 1


def test_large_data_is_sampled_and_fast():
    import time

    df = planted(300_000, 0)
    t = time.time()
    flags = L.find_leaks(df, "target")
    assert time.time() - t < 30
    assert {f["column"] for f in flags} == set(PLANTED)
    assert L.sampled(df)
    assert flags[0]["evidence"].get("rows_used", L.SAMPLE_ROWS) <= L.SAMPLE_ROWS


def test_roc_auc_matches_sklearn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    s = np.round(y + rng.normal(0, 1, 500), 1)  # ties included
    assert abs(L.roc_auc(y == 1, s) - roc_auc_score(y, s)) < 1e-12


def _oof_rowwise(codes, n_codes, y, task, k, seed=0, smoothing=2.0):
    """The one-feature estimator written row by row, fold by fold (what oof_score computes in one pass),
    scored with scikit-learn's metrics."""
    from sklearn.metrics import r2_score, roc_auc_score

    fold = L._folds(len(codes), seed)
    if task == "classification":
        proba = np.zeros((len(codes), k))
        for f in range(L.N_FOLDS):
            tr, te = fold != f, fold == f
            prior = np.bincount(y[tr], minlength=k) / tr.sum()
            counts = np.zeros((n_codes, k))
            np.add.at(counts, (codes[tr], y[tr]), 1)
            proba[te] = (counts[codes[te]] + smoothing * prior) / (counts[codes[te]].sum(1, keepdims=True) + smoothing)
        if k == 2:
            return roc_auc_score(y, proba[:, 1])
        return roc_auc_score(y, proba, multi_class="ovr", average="macro")
    pred = np.zeros(len(codes))
    for f in range(L.N_FOLDS):
        tr, te = fold != f, fold == f
        for i in np.flatnonzero(te):
            same = tr & (codes == codes[i])
            pred[i] = (y[same].sum() + smoothing * y[tr].mean()) / (same.sum() + smoothing)
    return r2_score(y, pred)


@pytest.mark.parametrize("task,k", [("classification", 2), ("classification", 4), ("regression", 0)])
@pytest.mark.parametrize("seed", [0, 3])
def test_oof_score_one_pass_equals_the_rowwise_estimator(task, k, seed):
    rng = np.random.default_rng(seed)
    n, n_codes = 1200, 9
    codes = rng.integers(0, n_codes - 1, n)  # the last bin stays empty
    if task == "classification":
        y = (codes + rng.integers(0, 3, n)) % k
    else:
        y = codes * 0.5 + rng.normal(0, 1, n)
    got = L.oof_score(codes, n_codes, y, task, k, seed=seed)
    assert got == pytest.approx(_oof_rowwise(codes, n_codes, y, task, k, seed=seed), abs=1e-12)


# ---- the blind band: near-copies with a few percent noise (issue 17) -----------------------------------

def near_copy(n, seed, task, kind, f):
    df = clean(n, seed, task)
    rng = np.random.default_rng(900 + seed)
    y = df["target"].to_numpy()
    flip = rng.random(n) < f
    if task == "regression":
        df["copy"] = np.where(flip, rng.permutation(y), y + rng.normal(0, 0.01 * y.std(), n))
    else:
        noisy = np.where(flip, 1 - y, y)
        df["copy"] = np.where(noisy == 1, "closed", "open") if kind == "categorical" else noisy + rng.normal(0, 0.1, n)
    return df


@pytest.mark.parametrize("task,kind,n,f,seed", [
    ("classification", "categorical", 1000, 0.02, 0), ("classification", "categorical", 3000, 0.05, 1),
    ("classification", "numeric", 1000, 0.03, 2), ("classification", "numeric", 3000, 0.05, 3),
    ("regression", "numeric", 1000, 0.02, 4), ("regression", "numeric", 3000, 0.05, 5),
])
def test_near_copy_in_the_blind_band_is_flagged(task, kind, n, f, seed):
    df = near_copy(n, seed, task, kind, f)
    scores = L.single_feature_scores(df, "target")
    assert scores["copy"] < (L.THRESHOLD_AUC if task == "classification" else L.THRESHOLD_R2)  # under the old bar
    flags = {x["column"]: x for x in L.find_leaks(df, "target")}
    assert set(flags) == {"copy"}, flags
    assert flags["copy"]["reason"] in ("near_deterministic", "dominant_predictor", "target_copy")
    assert flags["copy"]["reason"] != "single_feature_predictor"


def test_near_deterministic_low_cardinality_status():
    df = near_copy(2000, 7, "classification", "categorical", 0.02)
    f = L.near_deterministic(df, "target")
    assert [x["column"] for x in f] == ["copy"] and f[0]["evidence"]["conditional_entropy"] <= L.NEAR_DET_ENTROPY
    assert L.near_deterministic(clean(2000, 7), "target") == []  # region, plan: genuine, far from determining


def test_genuine_strong_features_are_not_dominant():
    """breast_cancer: many single features reach AUC 0.9-0.97, but the rest of the table does as well."""
    from sklearn import datasets

    df = datasets.load_breast_cancer(as_frame=True).frame
    assert L.dominant_predictors(df, "target") == []
