"""loom_py.stats.drift on its own: alignment, missing values, new categories, skipped kinds, and the
false-alarm / detection rates of the default tests over many generated cases (figures in decision 0800)."""
import numpy as np
import pandas as pd
import pytest

from loom_py.runtime.errors import UsageError
from loom_py.stats import drift


def test_misaligned_schemas_name_the_columns():
    a = pd.DataFrame({"x": [1.0, 2.0], "y": ["a", "b"], "only_ref": [1, 2]})
    b = pd.DataFrame({"x": [1.0, 2.0], "y": ["a", "b"], "only_cur": [1, 2]})
    with pytest.raises(UsageError) as e:
        drift.align(a, b)
    assert "not in the reference: only_cur" in e.value.message and "not in the current table: only_ref" in e.value.message
    assert drift.align(a, b, ["x", "y"]) == ["x", "y"]
    with pytest.raises(UsageError, match="not in the current table: only_ref"):
        drift.align(a, b, ["x", "only_ref"])
    c = pd.DataFrame({"x": ["1", "2"], "y": ["a", "b"]})
    with pytest.raises(UsageError, match="numeric in one table and not in the other: x"):
        drift.align(a[["x", "y"]], c)


def test_missing_share_change_and_new_categories_are_reported():
    g = np.random.default_rng(0)
    ref = pd.DataFrame({"v": g.normal(size=500), "c": g.choice(list("abc"), 500)})
    cur = pd.DataFrame({"v": g.normal(size=500), "c": g.choice(list("abcq"), 500)})
    cur.loc[:99, "v"] = np.nan  # 20% missing now
    res = drift.dataset_drift(ref, cur)
    v = next(r for r in res["columns"] if r["column"] == "v")
    assert v["missing"] == {"reference": 0.0, "current": 0.2, "changed": True}
    assert v["drifted"] is False  # the remaining values are from the same distribution
    c = next(r for r in res["columns"] if r["column"] == "c")
    assert c["new_categories"]["count"] == 1 and c["new_categories"]["values"] == ["q"]
    assert 0.15 < c["new_categories"]["share"] < 0.35
    assert res["missing_changed"] == ["v"] and res["new_categories"] == ["c"]


def test_text_and_datetime_columns_are_not_tested_and_not_counted():
    n = 300
    ref = pd.DataFrame({"id": [f"id{i}" for i in range(n)], "t": pd.date_range("2024-01-01", periods=n),
                        "x": np.linspace(0, 1, n)})
    res = drift.dataset_drift(ref, ref.copy())
    kinds = {r["column"]: (r["kind"], r["skipped"] is not None) for r in res["columns"]}
    assert kinds == {"id": ("text", True), "t": ("datetime", True), "x": ("numeric", False)}
    assert res["tested"] == 1 and res["dataset_drift"] is False


def test_target_is_reported_apart_from_the_share():
    g = np.random.default_rng(1)
    ref = pd.DataFrame({"x": g.normal(size=400), "y": g.choice([0, 1], 400, p=[0.8, 0.2])})
    cur = pd.DataFrame({"x": g.normal(size=400), "y": g.choice([0, 1], 400, p=[0.4, 0.6])})
    res = drift.dataset_drift(ref, cur, target="y")
    assert [r["column"] for r in res["columns"]] == ["x"]
    assert res["target"]["test"] == "z" and res["target"]["drifted"] is True


def _rate(fn, cases=200):
    return sum(fn(s) for s in range(cases)) / cases


@pytest.mark.parametrize("n_ref,test", [(400, "ks"), (5000, "wasserstein")])
def test_numeric_false_alarm_and_detection_rates(n_ref, test):
    def case(seed, shift):
        g = np.random.default_rng(seed)
        r = drift.column_drift(pd.Series(g.normal(0, 1, n_ref)), pd.Series(g.normal(shift, 1, n_ref)))
        assert r["test"] == test
        return r["drifted"]
    fa = _rate(lambda s: case(s, 0.0))
    det = _rate(lambda s: case(10_000 + s, 0.5))
    if test == "ks":
        assert 0.02 <= fa <= 0.09  # the nominal 5% of a p < 0.05 test
    else:
        assert fa == 0.0  # a 0.1-sd distance is never reached by sampling noise at 5,000 rows
    assert det >= 0.99


def test_categorical_false_alarm_and_detection_rates():
    p0, p1 = [0.5, 0.3, 0.2], [0.4, 0.3, 0.3]

    def case(seed, p, n):
        g = np.random.default_rng(seed)
        return drift.column_drift(pd.Series(g.choice(list("abc"), n, p=p0)), pd.Series(g.choice(list("abc"), n, p=p)))["drifted"]
    # Evidently's chi-square is a goodness-of-fit test against the reference's shares taken as exact: the
    # reference's own sampling noise is ignored, so with equal sizes it alarms far above the nominal 5%
    # (measured ~23% at 500 vs 500 rows; decision 0800). Loom keeps Evidently's test and says so.
    assert 0.12 <= _rate(lambda s: case(s, p0, 500)) <= 0.35
    assert _rate(lambda s: case(20_000 + s, p1, 500)) >= 0.9
    assert _rate(lambda s: case(30_000 + s, p0, 5000)) == 0.0  # Jensen-Shannon ≥ 0.1
    # the distance has no sample-size scaling: a 10-point move of two shares (JS 0.08) stays under 0.1
    assert _rate(lambda s: case(40_000 + s, p1, 5000)) <= 0.1
    assert _rate(lambda s: case(50_000 + s, [0.3, 0.3, 0.4], 5000)) >= 0.99  # JS 0.16


def test_most_drifted_puts_drifted_columns_first():
    rows = [{"column": "a", "test": "ks", "statistic": 0.3, "threshold": 0.05, "drifted": False},
            {"column": "b", "test": "wasserstein", "statistic": 0.4, "threshold": 0.1, "drifted": True},
            {"column": "c", "test": "ks", "statistic": 1e-30, "threshold": 0.05, "drifted": True},
            {"column": "d", "test": None, "statistic": None, "threshold": None, "drifted": False}]
    assert [r["column"] for r in drift.most_drifted(rows)] == ["c", "b", "a"]
