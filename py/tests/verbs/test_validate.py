"""validate's pure logic on plain DataFrames: input checks (exit 2) and the verdict on planted data."""

import numpy as np
import pandas as pd
import pytest

from loom_py.runtime import flowkit
from loom_py.verbs import validate
from loom_py.runtime.errors import UsageError

flowkit.pin_threads(1)


def clean(n=1500, seed=0):
    r = np.random.default_rng(seed)
    X = r.normal(size=(n, 4))
    logit = 1.5 * X[:, 0] - 1.0 * X[:, 1] + 0.5 * X[:, 2] * X[:, 3]
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(4)])
    df["cat"] = r.choice(["a", "b", "c"], n)
    df["y"] = (r.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return df


def run(df, **params):
    opts = validate.resolve_options(df, {"target": "y", **params})
    return validate.evaluate(df, opts, content_hash="sha256:test")["summary"]


@pytest.mark.parametrize("params,needle", [
    ({"target": "nope"}, "unknown target column"),
    ({"target": "const"}, "is constant"),
    ({"metric": "rmse"}, "is for regression"),
    ({"metric": "bogus"}, "unknown --metric"),
    ({"time": "when"}, "does not parse"),
    ({"folds": 500}, "more than the data allows"),
    ({"folds": 1}, "at least 2"),
    ({"sensitive": ["one"]}, "single group"),
    ({"sensitive": ["missing_col"]}, "unknown --sensitive"),
    ({"horizon": "3D"}, "needs --time"),
    ({"time": "t", "group": "cat"}, "not both"),
    ({"max_ece": "abc"}, "must be a number"),
])
def test_bad_input_is_one_line_usage_error(params, needle):
    df = clean(200)
    df["const"] = 1
    df["when"] = ["2024-01-01"] * 199 + ["garbage"]
    df["one"] = "x"
    df["t"] = np.arange(200)
    with pytest.raises(UsageError) as e:
        validate.resolve_options(df, {"target": "y", **params})
    assert needle in e.value.message and "\n" not in e.value.message


def test_metric_defaults_follow_task():
    df = clean(200)
    assert validate.resolve_options(df, {"target": "y"})["metric"] == "roc_auc"
    df["r"] = df.x0 * 2.5 + 0.1
    assert validate.resolve_options(df, {"target": "r"})["metric"] == "rmse"


@pytest.fixture(scope="module")
def clean_pass():
    return run(clean(), threshold=0.7)


def test_clean_data_passes_reachable_threshold(clean_pass):
    s = clean_pass
    assert s["verdict"] == "PASS" and s["reasons"] == []
    assert s["cv"]["scheme"] == "stratified_kfold" and len(s["cv"]["per_fold"]) == 5
    assert s["holdout"]["rows"] == 300 and 0.7 <= s["holdout"]["value"] <= 1
    assert s["calibration"]["bins"] == 15 and s["calibration"]["ece"] <= s["thresholds"]["max_ece"]
    assert s["leakage"]["found"] is False and s["seal"]["evaluations"] == 1


def test_unreachable_threshold_fails_with_one_reason():
    s = run(clean(), threshold=0.99)
    assert s["verdict"] == "FAIL"
    assert len(s["reasons"]) == 1 and "misses the bar" in s["reasons"][0]


def test_lower_is_better_threshold():
    df = clean(800)
    df["r"] = df.x0 * 3 + np.random.default_rng(1).normal(size=len(df))
    df = df.drop(columns="y").rename(columns={"r": "y"})
    s = run(df, metric="mae", threshold=100)
    assert s["task"] == "regression" and s["calibration"] is None
    assert not any("bar" in r for r in s["reasons"])
    s2 = run(df, metric="mae", threshold=0.01)
    assert any("misses the bar" in r for r in s2["reasons"])


def test_planted_leak_is_named():
    df = clean()
    df["leak"] = df.y + np.random.default_rng(2).normal(scale=0.01, size=len(df))
    s = run(df, threshold=0.7)
    assert s["verdict"] == "FAIL"
    assert any("'leak'" in r for r in s["reasons"])
    assert "leak" in [f["column"] for f in s["leakage"]["flags"]]


def test_duplicated_rows_between_cv_and_holdout():
    df = clean(1000)
    df = pd.concat([df, df.iloc[:500]], ignore_index=True)  # a third of the rows appear twice
    s = run(df)
    d = s["leakage"]["duplicates"]
    assert d["flagged"] and d["holdout_rows_in_cv"] > 0
    assert any("also occur in the CV data" in r for r in s["reasons"])


def test_time_ordered_data_uses_purged_scheme():
    df = clean(1200)
    df["day"] = pd.date_range("2022-01-01", periods=len(df), freq="D")
    s = run(df, time="day", horizon="5D")
    cv = s["cv"]
    assert cv["scheme"] == "purged_kfold" and cv["purged"] > 0 and cv["embargoed"] > 0
    assert cv["purged_before_holdout"] == 5
    assert s["seal"]["how"].startswith("latest rows")


def test_biased_model_on_sensitive_attribute_is_found():
    r = np.random.default_rng(3)
    df = clean(2000)
    df["grp"] = r.choice(["p", "q"], len(df))
    # the label is tied to the group in the training data: the model learns to select group q
    df.loc[df.grp == "q", "y"] = (r.random((df.grp == "q").sum()) < 0.9).astype(int)
    df.loc[df.grp == "p", "y"] = (r.random((df.grp == "p").sum()) < 0.1).astype(int)
    s = run(df, sensitive=["grp"])
    fr = s["fairness"]["grp"]
    assert fr["demographic_parity_difference"] > 0.5
    assert all(g["roc_auc"] is not None and 0 <= g["roc_auc"] <= 1 for g in fr["groups"])
    assert any("fairness on grp: demographic-parity" in r for r in s["reasons"])


def test_holdout_implausibly_above_cv_is_leakage():
    agreement = validate.tolerance("roc_auc", 0.70, 0.01, validate.DEFAULT_BOUNDS)
    assert agreement == pytest.approx(0.05)
    assert validate.tolerance("rmse", 2.0, 0.01, validate.DEFAULT_BOUNDS) == pytest.approx(0.2)
    assert validate.tolerance("roc_auc", 0.7, 0.05, validate.DEFAULT_BOUNDS) == pytest.approx(0.15)


@pytest.mark.parametrize("metric,y,proba,pred,expect", [
    ("accuracy", [0, 1, 1], None, [0, 1, 0], 2 / 3),
    ("roc_auc", [0, 1, 1, 0], [[.9, .1], [.2, .8], [.6, .4], [.7, .3]], None, 1.0),
    ("rmse", [1.0, 3.0], None, [2.0, 2.0], 1.0),
    ("mae", [1.0, 4.0], None, [2.0, 2.0], 1.5),
])
def test_score_table(metric, y, proba, pred, expect):
    v = validate.score(metric, np.array(y), proba=None if proba is None else np.array(proba),
                       pred=None if pred is None else np.array(pred), classes=[0, 1])
    assert v == pytest.approx(expect)


def test_holdout_far_above_cv_is_flagged():
    # the latest 20% (the time-sealed holdout) is almost noise-free, the earlier rows are noisy
    r = np.random.default_rng(4)
    n = 1000
    x = r.normal(size=n)
    noise = np.where(np.arange(n) >= 800, 0.01, 3.0) * r.normal(size=n)
    df = pd.DataFrame({"x0": x, "t": np.arange(n, dtype=float) + 0.5, "y": 2 * x + noise})
    s = run(df, time="t", metric="r2")
    assert s["leakage"]["holdout_above_cv"] is True
    assert any("implausibly better than CV" in r for r in s["reasons"])


def test_time_ordered_folds_equal_the_reference_implementation():
    """The folds validate used on a time-ordered set equal timeseriescv's purged/embargoed folds on the
    same CV rows (one row per day, so a row embargo of E is an embargo of E days)."""
    from timeseriescv.cross_validation import CombPurgedKFoldCV

    df = clean(1000)
    df["day"] = pd.date_range("2022-01-01", periods=len(df), freq="D")
    s = run(df, time="day", horizon="3D", embargo=0.02)
    cv = s["cv"]
    n = cv["rows"]
    t0 = pd.Series(df["day"].iloc[:n].to_numpy())
    ref = CombPurgedKFoldCV(n_splits=5, n_test_splits=1, embargo_td=pd.Timedelta(days=cv["embargo_rows"]))
    folds = sorted(ref.split(pd.DataFrame(index=range(n)), pred_times=t0, eval_times=t0 + pd.Timedelta(days=3)),
                   key=lambda p: min(p[1]))
    assert cv["embargo_rows"] == 16  # ceil(0.02 * 797)
    assert [(f["train_rows"], f["test_rows"]) for f in cv["per_fold"]] == [(len(tr), len(te)) for tr, te in folds]


@pytest.mark.parametrize("params,needle", [
    ({"target": "nope"}, "unknown target column"),
    ({"target": "const"}, "is constant"),
    ({"time": "when"}, "does not parse"),
    ({"sensitive": ["one"]}, "single group"),
    ({"sensitive": ["missing_col"]}, "unknown --sensitive"),
    ({"group": "nope"}, "unknown --group"),
    ({"folds": 500}, "more than the data allows"),
])
def test_launcher_checks_on_only_the_named_columns_match_the_whole_frame(params, needle):
    """prepare reads only the columns the options name (plus every name from the schema): the same
    UsageError, with the whole column listing, as on the whole frame."""
    df = clean(200)
    df["const"] = 1
    df["when"] = ["2024-01-01"] * 199 + ["garbage"]
    df["one"] = "x"
    p = {"target": "y", **params}
    named = [c for c in [p.get("target"), p.get("time"), p.get("group")] + list(p.get("sensitive") or []) if c in df.columns]
    with pytest.raises(UsageError) as whole:
        validate.resolve_options(df, p)
    with pytest.raises(UsageError) as part:
        validate.resolve_options(df[named], p, list(df.columns))
    assert needle in part.value.message and part.value.message == whole.value.message


def test_launcher_options_on_named_columns_equal_whole_frame():
    df = clean(300)
    p = {"target": "y", "sensitive": ["cat"], "folds": 3}
    assert validate.resolve_options(df[["y", "cat"]], p, list(df.columns)) == validate.resolve_options(df, p)
