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


def test_tolerance_floor():
    assert validate.tolerance("roc_auc", 0.70, validate.DEFAULT_BOUNDS) == pytest.approx(0.05)
    assert validate.tolerance("rmse", 2.0, validate.DEFAULT_BOUNDS) == pytest.approx(0.2)


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


# ---- trustworthy verdicts (issue 17; the baseline item of issue 21) -------------------------------------

def churn_features():
    """The bundled example as the product page chains it: ingest's reader, then features (minimal recipe),
    with the content hash the features data object gets (so the seal is the one a user's run carves)."""
    import os

    from loom_py.runtime.data import content_hash, from_frame
    from loom_py.verbs import features, ingest

    path = os.path.join(os.path.dirname(__file__), "..", "..", "..", "examples", "churn.csv")
    table, _ = ingest.read_file(path)
    out, _, _ = features.build(table.to_pandas(), "churned")
    return out, content_hash(from_frame(out))


def test_bundled_example_never_reports_leakage_across_20_seeds():
    df, h = churn_features()
    for seed in range(20):
        opts = validate.resolve_options(df, {"target": "churned", "seed": seed})
        s = validate.evaluate(df, opts, content_hash=h)["summary"]
        assert not s["leakage"]["found"], (seed, s["reasons"])
        assert s["agreement"]["holdout_se"] > 0.03  # ~37 positives: the holdout's own AUC noise is counted


def gen(n, rate, seed, strength=1.0):
    r = np.random.default_rng(seed)
    X = r.normal(size=(n, 4))
    z = strength * (1.2 * X[:, 0] - 0.8 * X[:, 1]) + np.log(rate / (1 - rate))
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(4)])
    df["y"] = (r.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return df


@pytest.mark.parametrize("n,rate,seed", [(300, 0.5, 0), (500, 0.1, 1), (800, 0.05, 2), (1200, 0.3, 3),
                                         (400, 0.08, 4), (2000, 0.15, 5)])
def test_clean_data_is_not_called_leakage(n, rate, seed):
    s = run(gen(n, rate, seed), seed=seed)
    assert not s["leakage"]["holdout_above_cv"], s["agreement"]
    a = s["agreement"]
    assert a["tolerance"] >= a["z"] * a["combined_se"] - 1e-12 and a["holdout_se"] > 0


def test_holdout_only_leak_is_caught():
    """A status field that agrees with the label on 70% of the CV rows but on every sealed row (written
    after the outcome for the records the holdout holds): the holdout beats CV by far more than noise."""
    df = gen(1500, 0.3, 7, strength=0.5)
    opts = validate.resolve_options(df, {"target": "y"})
    seal = validate.sealed(df, opts, "sha256:test")["seal"]
    r = np.random.default_rng(0)
    flip = r.random(len(df)) < 0.3
    flip[seal.holdout] = False
    df["status"] = np.where(flip, 1 - df["y"], df["y"])
    s = run(df)
    assert s["leakage"]["holdout_above_cv"] and any("implausibly better than CV" in r for r in s["reasons"])


def constant_factory(task, X, seed):
    from sklearn.dummy import DummyClassifier, DummyRegressor

    return DummyClassifier(strategy="prior") if task == "classification" else DummyRegressor()


@pytest.mark.parametrize("metric,task,n,seed", [("roc_auc", "classification", 600, 0), ("accuracy", "classification", 900, 1),
                                                ("log_loss", "classification", 1500, 2), ("rmse", "regression", 600, 3),
                                                ("mae", "regression", 700, 4), ("r2", "regression", 800, 5)])
def test_without_threshold_a_constant_model_fails_the_baseline(metric, task, n, seed):
    df = gen(n, 0.3, seed)
    if task == "regression":
        df["y"] = df.x0 * 2 + np.random.default_rng(seed).normal(size=n)
    opts = validate.resolve_options(df, {"target": "y", "metric": metric})
    s = validate.evaluate(df, opts, content_hash="sha256:t", factory=constant_factory, model_name="constant")["summary"]
    assert s["verdict"] == "FAIL" and s["thresholds"]["threshold"] is None
    assert any("does not beat the trivial baseline" in r for r in s["reasons"]), s["reasons"]
    # the default model on the same data beats it
    s2 = run(df, metric=metric)
    assert s2["holdout"]["baseline"]["beats"], s2["holdout"]["baseline"]


def test_pure_noise_does_not_beat_the_baseline():
    df = gen(400, 0.3, 11, strength=0.0)
    s = run(df)
    assert any("does not beat the trivial baseline" in r for r in s["reasons"]) and s["verdict"] == "FAIL"


def squashed_factory(task, X, seed):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=3e-4)  # heavily regularized: probabilities squashed towards the base rate


def calibrated_factory(task, X, seed):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1e6, max_iter=1000)


@pytest.mark.parametrize("n,rate,seed", [(1500, 0.3, 0), (3000, 0.5, 1), (2500, 0.2, 2)])
def test_squashed_probabilities_fail_calibration_on_the_slope(n, rate, seed):
    df = gen(n, rate, seed)
    opts = validate.resolve_options(df, {"target": "y"})
    s = validate.evaluate(df, opts, content_hash="sha256:t", factory=squashed_factory)["summary"]
    c = s["calibration"]
    assert c["slope"] > 1.25 and c["judged"]["failed"]
    assert any(r.startswith("calibration:") and "slope" in r and "above 1.25" in r for r in s["reasons"]), s["reasons"]
    s2 = validate.evaluate(df, opts, content_hash="sha256:t", factory=calibrated_factory)["summary"]
    assert s2["calibration"]["judged"]["passed"], s2["calibration"]["judged"]


def test_calibrate_option_wraps_the_model_and_fixes_the_slope():
    df = gen(2500, 0.3, 3)
    opts = validate.resolve_options(df, {"target": "y", "calibrate": "sigmoid"})
    factory = validate.calibrated(squashed_factory, "sigmoid")
    s = validate.evaluate(df, opts, content_hash="sha256:t", factory=factory)["summary"]
    assert s["calibration"]["judged"]["passed"], s["calibration"]


def rare_df(n=2000, seed=0):
    r = np.random.default_rng(seed)
    df = gen(n, 0.06, seed, strength=0.6)
    df["region"] = r.choice(["north", "south", "east"], n)
    return df


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fairness_uses_a_base_rate_threshold_not_a_degenerate_one(seed):
    df = rare_df(seed=seed)
    s = run(df, sensitive=["region"])
    fr = s["fairness"]["region"]
    dec = fr["decision"]
    assert dec["threshold"] < 0.5 and "base-rate" in dec["how"]
    assert sum(g["positive_decisions"] for g in fr["groups"]) > 0
    assert all(g["auc"] is not None for g in fr["groups"]) and fr["auc_gap"] is not None
    assert any("decision threshold" in c["detail"] for c in s["checks"] if c["check"].startswith("fairness"))


def test_fairness_not_assessable_when_the_decision_selects_no_one():
    df = rare_df(seed=4)
    s = run(df, sensitive=["region"], decision_threshold=0.99)
    fr = s["fairness"]["region"]
    assert fr["assessable"] is False and fr["decision"]["threshold"] == 0.99
    c = [c for c in s["checks"] if c["check"] == "fairness:region"][0]
    assert c["status"] == "not assessable" and not c["passed"] and s["verdict"] == "FAIL"


def test_fairness_not_assessable_when_a_group_has_no_positives():
    df = gen(2000, 0.3, 5)
    df["grp"] = np.where(df.index % 2 == 0, "a", "b")
    df.loc[df.grp == "b", "y"] = 0
    s = run(df, sensitive=["grp"])
    assert s["fairness"]["grp"]["assessable"] is False
    assert any("not assessable" in r and "no positives" in r for r in s["reasons"])


def test_carried_columns_are_not_model_inputs_but_slice():
    df = rare_df(1500, 6)
    df["leaky_carried"] = df["y"]  # were it an input, the leakage checks would flag it
    s = run(df, sensitive=["region"], carried=["region", "leaky_carried"])
    assert "region" in s["fairness"] and not any(f["column"] == "leaky_carried" for f in s["leakage"]["flags"])
    assert s["holdout"]["value"] < 0.95  # the label copy did not feed the model
    s0 = run(df, sensitive=["region"])  # not carried: an input like any other, and flagged
    assert any(f["column"] == "leaky_carried" for f in s0["leakage"]["flags"])


def test_sensitive_encoded_by_features_says_how_to_carry_it():
    df = gen(300, 0.3, 0)
    df["region__north"] = 1
    with pytest.raises(UsageError) as e:
        validate.resolve_options(df, {"target": "y", "sensitive": ["region"]})
    assert "--sensitive region" in e.value.message and "features" in e.value.message
