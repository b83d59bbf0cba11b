import os
import sys

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from leakdata import PLANTED, clean, planted  # noqa: E402

from loom_py.verbs import eda  # noqa: E402
from loom_py.runtime.errors import UsageError  # noqa: E402


def test_profile_planted_sections_and_flags():
    df = planted(1200, 0)
    s = eda.profile(df, "target", time_col="signup")
    assert s["shape"] == {"rows": 1200, "columns": df.shape[1]}
    types = {d["column"]: d["semantic_type"] for d in s["dtypes"]}
    assert types["row_id"] == "identifier" and types["region"] == "categorical"
    assert types["signup"] == "datetime" and types["income"] == "numeric" and types["target"] == "boolean"
    assert s["missingness"]["columns"]["closed_at"] == pytest.approx(df["closed_at"].isna().mean(), abs=1e-6)
    tb = s["target_balance"]
    assert tb["task"] == "classification" and sum(tb["classes"].values()) == 1200
    assert tb["imbalance_ratio"] == pytest.approx(max(tb["classes"].values()) / min(tb["classes"].values()))
    assert {f["column"]: f["reason"] for f in s["leakage_flags"]} == PLANTED
    methods = {r["column"]: r["method"] for r in s["top_correlations"]["with_target"]}
    assert methods["age"] == "correlation_ratio" and methods.get("plan", "cramers_v") == "cramers_v"
    assert s["top_correlations"]["with_target"][0]["column"] in ("noisy_copy", "score_exp")
    alerts = {(a["column"], a["alert"]) for a in s["alerts"]}
    assert ("city", "high_cardinality") in alerts and ("closed_at", "missing") in alerts
    assert ("row_id", "all_unique") in alerts
    assert all("threshold" in a for a in s["alerts"])
    assert s["sampling"] == []


def test_clean_profile_has_no_flags_and_regression_balance():
    s = eda.profile(clean(1500, 1, "regression"), "target")
    assert s["leakage_flags"] == [] and s["task"] == "regression"
    assert set(s["target_balance"]["quantiles"]) >= {"p5", "p50", "p95"}
    pairs = s["top_correlations"]["with_target"]
    assert {r["method"] for r in pairs} <= {"pearson", "spearman", "correlation_ratio"}


@pytest.mark.parametrize("loader", ["load_breast_cancer", "load_wine", "load_diabetes"])
def test_sklearn_profiles_clean(loader):
    from sklearn import datasets

    s = eda.profile(getattr(datasets, loader)(as_frame=True).frame, "target")
    assert s["leakage_flags"] == []


def test_duplicates_constant_and_skew_alerts():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"k": np.ones(100), "x": np.r_[rng.normal(size=95), [40, 50, 60, 70, 80]], "y": rng.integers(0, 2, 100)})
    df = pd.concat([df, df.iloc[:7]], ignore_index=True)
    s = eda.profile(df, "y")
    assert s["duplicate_rows"] == 7
    alerts = {(a["column"], a["alert"]) for a in s["alerts"]}
    assert ("k", "constant") in alerts and ("x", "skewed") in alerts


@pytest.mark.parametrize("target,kw,msg", [
    ("nope", {}, "unknown target"),
    ("allnan", {}, "entirely missing"),
    ("one", {}, "single value"),
    ("word", {"task": "regression"}, "not numeric"),
    ("y", {"task": "nonsense"}, "--task"),
])
def test_bad_targets(target, kw, msg):
    df = pd.DataFrame({"x": range(30), "y": [0, 1] * 15, "allnan": [np.nan] * 30, "one": [1] * 30, "word": ["a", "b", "c"] * 10})
    with pytest.raises(UsageError, match=msg):
        eda.profile(df, target, **kw)


def test_no_target_flags_only_identifiers():
    df = planted(500)
    s = eda.profile(df)
    assert [f["column"] for f in s["leakage_flags"]] == ["row_id"] and s["target_balance"] is None


def test_imbalance_measure():
    assert eda.imbalance([50, 50]) == pytest.approx(0.0)
    assert eda.imbalance([99, 1]) > 0.5
    assert eda.imbalance([10]) == 1.0


def test_card_charts_are_vega_lite_with_titles_and_axes():
    import json

    df = planted(400)
    s = eda.profile(df, "target")
    charts = eda.card_charts(df, s)
    assert len(charts) == 3
    for c in charts:
        json.dumps(c)
        assert c["title"] and c["data"]["values"]
        assert c["encoding"]["x"]["title"] and c["encoding"]["y"]["title"]
    classes = {v["class"]: v["rows"] for v in charts[1]["data"]["values"]}
    assert classes == s["target_balance"]["classes"]
    reg = clean(300, 0, "regression")
    sr = eda.profile(reg, "target")
    hist = eda.card_charts(reg, sr)[1]
    assert sum(v["rows"] for v in hist["data"]["values"]) == 300


@pytest.mark.parametrize("values,task,msg", [
    ([None, None, None], None, "entirely missing"),
    ([float("nan"), float("nan"), 1.0, 1.0], None, "single value"),
    (["a", "b", None], "regression", "not numeric"),
    ([0, 1, 1], "bogus", "--task"),
])
def test_check_target_column_arrow(values, task, msg):
    import pyarrow as pa

    with pytest.raises(UsageError, match=msg):
        eda.check_target_column(pa.chunked_array([pa.array(values)]), "t", task)


def test_check_target_column_accepts_good_targets():
    import pyarrow as pa

    eda.check_target_column(pa.chunked_array([pa.array([0, 1, None])]), "t")
    eda.check_target_column(pa.chunked_array([pa.array([0.5, 1.5, float("nan")])]), "t", "regression")


def test_nested_cells_are_profiled_as_json_text():
    n = 100
    df = pd.DataFrame({"x": np.arange(n) * 1.5, "tags": [np.array(["a", "b"]) if i % 3 else ["c"] for i in range(n)],
                       "meta": [{"k": i % 4} for i in range(n)], "y": [0, 1] * (n // 2)})
    s = eda.profile(df, "y")
    types = {d["column"]: d["semantic_type"] for d in s["dtypes"]}
    assert types["tags"] == "categorical" and types["meta"] == "categorical"
    assert {d["column"]: d["unique"] for d in s["dtypes"]}["meta"] == 4
    assert isinstance(df["meta"].iloc[0], dict)  # the caller's frame is untouched
