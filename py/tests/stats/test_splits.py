"""Sealed holdout and CV schemes; purged K-fold checked against timeseriescv (reference implementation)."""

import numpy as np
import pandas as pd
import pytest

from loom_py.stats import splits


def _reference(n, k, horizon_days, embargo_rows):
    from timeseriescv.cross_validation import CombPurgedKFoldCV

    t0 = pd.Series(pd.date_range("2024-01-01", periods=n, freq="D"))
    t1 = t0 + pd.Timedelta(days=horizon_days)
    X = pd.DataFrame({"x": np.arange(n)})
    cv = CombPurgedKFoldCV(n_splits=k, n_test_splits=1, embargo_td=pd.Timedelta(days=embargo_rows))
    out = [(np.sort(tr), np.sort(te)) for tr, te in cv.split(X, pred_times=t0, eval_times=t1)]
    return sorted(out, key=lambda p: p[1][0]), t0, t1


@pytest.mark.parametrize("n,k,horizon,embargo", [(100, 5, 3, 1), (97, 4, 0, 2), (250, 5, 10, 3), (60, 3, 5, 0)])
def test_purged_kfold_equals_reference(n, k, horizon, embargo):
    ref, t0, t1 = _reference(n, k, horizon, embargo)
    to_num = lambda s: s.astype("int64").to_numpy().astype("float64")  # noqa: E731
    mine = splits.purged_kfold(to_num(t0), to_num(t1), k, embargo)
    assert len(mine) == len(ref) == k
    for f, (rtr, rte) in zip(mine, ref):
        np.testing.assert_array_equal(f.test, rte)
        np.testing.assert_array_equal(np.sort(f.train), rtr)
        # every row is test, train, purged or embargoed, exactly once
        assert len(f.train) + len(f.test) + f.purged + f.embargoed == n


def test_purged_kfold_counts_and_no_overlap():
    n, h, e = 200, 4, 2
    t0 = np.arange(n, dtype=float)
    t1 = t0 + h
    folds = splits.purged_kfold(t0, t1, 5, e)
    inner = folds[2]  # a middle fold: purged on both sides, embargoed after
    assert inner.purged == 2 * h and inner.embargoed == e
    assert folds[0].purged == h and folds[-1].embargoed == 0
    for f in folds:
        lo, hi = t0[f.test].min(), t1[f.test].max()
        tr = f.train
        # no training label interval [t0, t1] overlaps the test span [lo, hi]
        assert not np.any((t1[tr] >= lo) & (t0[tr] <= hi))


def test_purged_kfold_rejects_unsorted_and_too_many_folds():
    with pytest.raises(ValueError):
        splits.purged_kfold(np.array([2.0, 1.0, 3.0]), np.array([2.0, 1.0, 3.0]), 2, 0)
    with pytest.raises(ValueError):
        splits.purged_kfold(np.arange(3.0), np.arange(3.0), 5, 0)


def _frame(n=400, seed=0):
    r = np.random.default_rng(seed)
    return pd.DataFrame({"x": r.normal(size=n), "g": r.integers(0, 40, n).astype(str),
                         "t": pd.date_range("2023-01-01", periods=n, freq="h")[r.permutation(n)],
                         "y": (r.random(n) < 0.3).astype(int)})


def test_seal_is_deterministic_and_depends_on_choices():
    df = _frame()
    a = splits.carve_holdout(df, "y", "classification", content_hash="sha256:1")
    b = splits.carve_holdout(df, "y", "classification", content_hash="sha256:1")
    c = splits.carve_holdout(df, "y", "classification", content_hash="sha256:2")
    assert a.seal_id == b.seal_id and a.rows_hash == b.rows_hash
    np.testing.assert_array_equal(a.holdout, b.holdout)
    assert c.seal_id != a.seal_id and not np.array_equal(c.holdout, a.holdout)
    assert np.intersect1d(a.cv, a.holdout).size == 0 and len(a.cv) + len(a.holdout) == len(df)


def test_stratified_holdout_keeps_class_share():
    df = _frame(1000)
    s = splits.carve_holdout(df, "y", "classification", content_hash="sha256:x")
    assert abs(len(s.holdout) - 200) <= 2
    assert abs(df.y.iloc[s.holdout].mean() - df.y.mean()) < 0.01


def test_time_holdout_is_the_latest_rows():
    df = _frame()
    t0, kind = splits.time_values(df["t"])
    s = splits.carve_holdout(df, "y", "classification", content_hash="sha256:x", time_col="t", t0=t0)
    assert kind == "datetime"
    assert df.t.iloc[s.holdout].min() > df.t.iloc[s.cv].max()
    assert len(s.holdout) == 80


def test_group_holdout_keeps_groups_whole():
    df = _frame()
    s = splits.carve_holdout(df, "y", "classification", content_hash="sha256:x", group_col="g")
    assert set(df.g.iloc[s.holdout]).isdisjoint(set(df.g.iloc[s.cv]))
    assert 0.1 < len(s.holdout) / len(df) < 0.3


def test_group_kfold_keeps_groups_whole():
    df = _frame()
    for f in splits.group_kfold(df.g.to_numpy(), 4, 0, y=df.y.to_numpy()):
        assert set(df.g.iloc[f.train]).isdisjoint(set(df.g.iloc[f.test]))


@pytest.mark.parametrize("values,kind,ok", [
    (["2024-01-01", "2024-01-02"], "datetime", True),
    ([3, 1], "numeric", True),
    (["2024-01-01", "not a date"], "unparsed", False),
])
def test_time_values(values, kind, ok):
    v, k = splits.time_values(pd.Series(values))
    assert k == kind and (v is not None) == ok


@pytest.mark.parametrize("h,kind,expect", [("2D", "datetime", 2 * 86400e9), ("12h", "datetime", 12 * 3600e9),
                                          ("3", "numeric", 3.0), (None, "numeric", 0.0)])
def test_horizon_value(h, kind, expect):
    assert splits.horizon_value(h, kind) == expect


@pytest.mark.parametrize("labels", [
    np.array([3, 1, 3, 2, 1, 1, 3, 2, 2, 3] * 40),           # ints, first appearance not sorted
    np.array([10, 2, 10, 2, 2] * 60),                         # "10" < "2" as strings, 2 < 10 as ints
    np.array([True, False, False, True, False] * 50),
    np.array([0, 1] * 150, dtype="uint8"),
    np.array(["b", "a", "c", "a", "b"] * 60, dtype=object),   # strings keep the string path
])
def test_stratified_kfold_class_codes_give_the_string_folds(labels):
    from sklearn.model_selection import StratifiedKFold

    ref = StratifiedKFold(5, shuffle=True, random_state=7).split(np.zeros(len(labels)), labels.astype(str))
    got = splits.stratified_kfold(labels, 5, 7)
    for f, (tr, te) in zip(got, ref):
        assert np.array_equal(f.train, tr) and np.array_equal(f.test, te)


@pytest.mark.parametrize("y", [
    pd.Series([3, 1, 3, 2, 1, 10, 3, 2, 2, 3] * 30),
    pd.Series(["b", "a", None, "a", "b", "c"] * 40, dtype=object),
    pd.Series([1, "1", 2.5, "x", 2.5, 1] * 30, dtype=object),        # 1 and "1" are one class as strings
    pd.Series([True, False, True] * 50),
    pd.Series([0.5, 1.5, float("nan"), 0.5] * 40),
])
def test_stratified_holdout_draws_each_class_by_its_string_form(y):
    """The seal's rows are drawn per class in the order of the classes' string forms (what it has always
    done with y.astype("string")); coding the distinct values first must draw the very same rows."""
    codes = y.astype("string").fillna("<NA>").to_numpy()
    pos = np.arange(len(y))
    expect = [pos[codes == c] for c in np.unique(codes)]
    got = splits._rows_by_class(y)
    assert len(got) == len(expect) and all(np.array_equal(a, b) for a, b in zip(got, expect))
