"""loom_py.stats.drift against Evidently itself (a test-only dependency): on many generated pairs of
tables, small references (≤ 1,000 rows: KS / chi-square / Z) and large ones (Wasserstein / Jensen-Shannon),
every column gets the same test, the same statistic and the same verdict, and the table the same
dataset-drift decision. Evidently's own per-column verdict comes from its DataDriftTable."""
import numpy as np
import pandas as pd
import pytest

from loom_py.stats import drift

evidently = pytest.importorskip("evidently")

from evidently.legacy.metrics import DataDriftTable  # noqa: E402
from evidently.legacy.pipeline.column_mapping import ColumnMapping  # noqa: E402
from evidently.legacy.report import Report  # noqa: E402

EV_NAMES = {v["name"]: k for k, v in drift.TESTS.items()}


def evidently_drift(ref: pd.DataFrame, cur: pd.DataFrame, numeric: list[str], categorical: list[str]) -> dict:
    r = Report(metrics=[DataDriftTable()])
    r.run(reference_data=ref, current_data=cur,
          column_mapping=ColumnMapping(numerical_features=numeric, categorical_features=categorical,
                                       target=None, prediction=None))
    return r.as_dict()["metrics"][0]["result"]


def make_case(seed: int, n_ref: int, n_cur: int):
    """A pair of tables with numeric, integer, binary, categorical columns, some shifted, some with
    missing values and a category the reference never saw."""
    g = np.random.default_rng(seed)
    shift = g.choice([0.0, 0.0, 0.05, 0.2, 0.5])
    scale = g.choice([1.0, 1.0, 1.3])
    ref = pd.DataFrame({
        "num": g.normal(0, 1, n_ref),
        "skew": g.lognormal(0, 1, n_ref),
        "count": g.poisson(30, n_ref).astype("int64"),
        "few": g.integers(0, 4, n_ref).astype("float64"),
        "binary": g.choice(["yes", "no"], n_ref, p=[0.3, 0.7]),
        "cat": g.choice(list("abcdef"), n_ref, p=[0.3, 0.2, 0.2, 0.1, 0.1, 0.1]),
        "flag": g.choice([0, 1], n_ref).astype("int64"),
    })
    pc = np.array([0.3, 0.2, 0.2, 0.1, 0.1, 0.1]) + g.choice([0, 0.08]) * np.array([-1, 1, 0, 0, 0, 0])
    cats = list("abcdef") + (["zz"] if g.random() < 0.3 else [])
    pcat = np.append(pc, 0.05) / np.append(pc, 0.05).sum() if len(cats) == 7 else pc
    cur = pd.DataFrame({
        "num": g.normal(shift, scale, n_cur),
        "skew": g.lognormal(shift, 1, n_cur),
        "count": g.poisson(30 + 10 * shift, n_cur).astype("int64"),
        "few": g.choice([0, 1, 2, 3], n_cur, p=[0.25 + shift / 4, 0.25, 0.25, 0.25 - shift / 4]).astype("float64"),
        "binary": g.choice(["yes", "no"], n_cur, p=[0.3 + shift / 5, 0.7 - shift / 5]),
        "cat": g.choice(cats, n_cur, p=pcat),
        "flag": g.choice([0, 1], n_cur).astype("int64"),
    })
    for df in (ref, cur):  # missing values in two columns
        df.loc[g.random(len(df)) < 0.05, "num"] = np.nan
        df.loc[g.random(len(df)) < 0.03, "cat"] = None
    return ref, cur


def compare(ref, cur):
    numeric = [c for c in ref.columns if drift.column_kind(ref[c]) == "numeric"]
    categorical = [c for c in ref.columns if drift.column_kind(ref[c]) == "categorical"]
    ev = evidently_drift(ref, cur, numeric, categorical)
    ours = drift.dataset_drift(ref, cur)
    for r in ours["columns"]:
        e = ev["drift_by_columns"][r["column"]]
        assert r["test"] == EV_NAMES[e["stattest_name"]], (r["column"], r["test"], e["stattest_name"])
        assert r["threshold"] == pytest.approx(e["stattest_threshold"])
        assert r["statistic"] == pytest.approx(e["drift_score"], rel=1e-7, abs=1e-12), r["column"]
        assert r["drifted"] == bool(e["drift_detected"]), (r["column"], r["statistic"], e["drift_score"])
    assert ours["drifted"] == ev["number_of_drifted_columns"]
    assert ours["dataset_drift"] == ev["dataset_drift"]
    return ours


@pytest.mark.parametrize("seed", range(24))
def test_small_reference_same_tests_statistics_verdicts(seed):
    ref, cur = make_case(seed, n_ref=int(150 + 35 * seed), n_cur=int(300 + 20 * seed))
    ours = compare(ref, cur)
    assert {r["test"] for r in ours["columns"]} >= {"ks", "chisquare", "z"}


@pytest.mark.parametrize("seed", range(16))
def test_large_reference_same_tests_statistics_verdicts(seed):
    ref, cur = make_case(100 + seed, n_ref=1500 + 400 * seed, n_cur=1200 + 300 * seed)
    ours = compare(ref, cur)
    assert {r["test"] for r in ours["columns"]} == {"wasserstein", "jensenshannon"}


def test_boundary_1000_rows_is_small_1001_is_large():
    ref, cur = make_case(7, n_ref=1000, n_cur=1000)
    # the row count Evidently switches on is the reference's non-missing values of the column
    ref = ref.drop(columns=["num", "cat"])
    cur = cur.drop(columns=["num", "cat"])
    assert {r["test"] for r in compare(ref, cur)["columns"]} <= {"ks", "chisquare", "z"}
    ref2 = pd.concat([ref, ref.iloc[:1]], ignore_index=True)
    assert {r["test"] for r in compare(ref2, cur)["columns"]} <= {"wasserstein", "jensenshannon"}


def test_psi_equals_evidentlys():
    from evidently.legacy.calculations.stattests import psi_stat_test
    from evidently.legacy.core import ColumnType

    for seed in range(6):
        ref, cur = make_case(300 + seed, 2000, 1500)
        for col, kind, ctype in (("num", "numeric", ColumnType.Numerical), ("cat", "categorical", ColumnType.Categorical),
                                 ("few", "numeric", ColumnType.Numerical)):
            r, c = ref[col].dropna(), cur[col].dropna()
            ev = psi_stat_test(r, c, ctype, None).drift_score
            ours = drift.column_drift(ref[col], cur[col], kind)["psi"]
            assert ours == pytest.approx(ev, rel=1e-9), (seed, col)
